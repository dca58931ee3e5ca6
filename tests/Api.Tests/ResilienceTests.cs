using System.Net;
using System.Text.Json;
using Forecaster.Api.Database;
using Forecaster.Api.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Forecaster.Api.Tests;

/// <summary>Per-key rate limits answer 429 with Retry-After and a problem document.</summary>
public sealed class RateLimitTests(RateLimitTests.TightLimits api) : IClassFixture<RateLimitTests.TightLimits>
{
    public sealed class TightLimits : ApiFixture
    {
        protected override IEnumerable<KeyValuePair<string, string?>> Settings =>
        [
            new("Forecaster:ApiKeys:1", "test-key-2"),
            new("Forecaster:RateLimit:PermitsPerPeriod", "1"),
            new("Forecaster:RateLimit:Burst", "3"),
            new("Forecaster:RateLimit:PeriodSeconds", "3600"),
        ];
    }

    [Fact]
    public async Task AKeyOverItsBudgetGets429WhileOtherKeysAndHealthProbesGoOn()
    {
        var first = api.Writer();
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(HttpStatusCode.NotFound, (await first.GetAsync($"/api/v1/resources/none-{i}")).StatusCode);
        }
        var limited = await first.GetAsync("/api/v1/resources/none");
        await SamplesApiTests.AssertProblem(limited, HttpStatusCode.TooManyRequests, null, "retry in");
        Assert.True(limited.Headers.RetryAfter?.Delta > TimeSpan.Zero);

        var second = api.Reader();
        second.DefaultRequestHeaders.Add("X-Api-Key", "test-key-2");
        Assert.Equal(HttpStatusCode.NotFound, (await second.GetAsync("/api/v1/resources/none")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await first.GetAsync("/health/live")).StatusCode);
    }
}

/// <summary>
/// PostgreSQL really stops mid-test (its own cluster, not the shared one): writes answer 503 with Retry-After, readiness
/// reports why, and everything recovers by itself when the server is back, without restarting the service.
/// </summary>
public sealed class DatabaseOutageTests : PrivateClusterHost
{
    [Fact]
    public async Task WritesAnswer503WhileTheDatabaseIsDownAndRecoverWhenItReturns()
    {
        var client = Writer();
        var body = ApiFixture.Json("""{"kind":"service","loadMetric":"qps"}""");
        Assert.Equal(HttpStatusCode.Created, (await client.PutAsync("/api/v1/resources/before", body)).StatusCode);

        await Cluster.StopAsync();
        var down = await client.PutAsync("/api/v1/resources/during", ApiFixture.Json("""{"kind":"service","loadMetric":"qps"}"""));
        await SamplesApiTests.AssertProblem(down, HttpStatusCode.ServiceUnavailable, null, "Nothing was stored");
        Assert.NotNull(down.Headers.RetryAfter);
        // Degraded, still 200: plans go on being served from memory, so the instance stays behind the load balancer.
        var ready = await client.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        var readiness = await ready.Content.ReadAsStringAsync();
        Assert.Contains("Degraded", readiness, StringComparison.Ordinal);
        Assert.Contains("database unreachable", readiness, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/live")).StatusCode);

        await Cluster.EnsureRunningAsync();
        HttpStatusCode status = default;
        for (var attempt = 0; attempt < 20 && status != HttpStatusCode.Created; attempt++)
        {
            status = (await client.PutAsync("/api/v1/resources/after", ApiFixture.Json("""{"kind":"service","loadMetric":"qps"}"""))).StatusCode;
            if (status != HttpStatusCode.Created)
            {
                await Task.Delay(250);
            }
        }
        Assert.Equal(HttpStatusCode.Created, status);
        Assert.Contains("Healthy", await client.GetStringAsync("/health/ready"), StringComparison.Ordinal);
        var names = JsonDocument.Parse(await client.GetStringAsync("/api/v1/resources")).RootElement.GetProperty("items")
            .EnumerateArray().Select(i => i.GetProperty("name").GetString());
        Assert.Equal(["after", "before"], names);
    }
}
