using Forecaster.Api.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.Options;

namespace Forecaster.Api.Tests.Sources;

public sealed class PrometheusOptionsTests
{
    [Fact]
    public async Task BadPrometheusSettingsStopTheServiceWithEveryErrorListed()
    {
        var db = await TestCluster.CreateDatabaseAsync("prometheus-options");
        using var factory = new WebApplicationFactory<Program>().WithWebHostBuilder(web =>
        {
            web.UseSetting("FORECASTER_DB", db);
            web.UseSetting("Forecaster:Prometheus:Url", "prometheus:9090");
            web.UseSetting("Forecaster:Prometheus:Servers:thanos:CaFile", "/nonexistent/ca.pem");
            web.UseSetting("Forecaster:Prometheus:StepSeconds", "0");
        });
        var e = Assert.ThrowsAny<Exception>(() => factory.Server);
        var all = e.ToString();
        Assert.Contains("Forecaster:Prometheus:Url: 'prometheus:9090' is not an absolute http(s) URL", all);
        Assert.Contains("Forecaster:Prometheus:Servers:thanos:Url is required", all);
        Assert.Contains("Forecaster:Prometheus:Servers:thanos:CaFile: '/nonexistent/ca.pem' does not exist", all);
        Assert.Contains("StepSeconds", all);
    }
}
