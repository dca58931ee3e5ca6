using System.Text;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Forecaster.Api.Demo;
using Forecaster.Api.Security;
using Forecaster.Api.Tests.Infrastructure;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Forecaster.Api.Tests;

/// <summary>`serve --demo` on an empty database: seeded, a key generated, the fleet trained at once and its plans served.</summary>
public sealed class DemoModeTests
{
    [Fact]
    public async Task DemoModeSeedsTrainsAndServesPlansWithAGeneratedKey()
    {
        var db = await TestCluster.CreateDatabaseAsync("demomode");
        var models = TestEnvironment.NewHome("models");
        var home = TestEnvironment.NewHome("demokey");
        await using var factory = new WebApplicationFactory<Program>().WithWebHostBuilder(web =>
        {
            web.UseSetting("FORECASTER_DB", db);
            web.UseSetting("FORECASTER_HOME", home);
            web.UseSetting("Forecaster:Demo", "true");
            web.UseSetting("Forecaster:Training:ModelsPath", models);
            web.UseSetting("Forecaster:Training:LoadBacktestOrigins", "2");
            web.UseSetting("Forecaster:Training:UsageBacktestOrigins", "1");
            web.UseSetting("Forecaster:Training:SchedulerIdleSeconds", "1");
        });
        try
        {
            var client = factory.CreateClient();
            var key = factory.Services.GetRequiredService<ApiKeyRing>().GeneratedKey;
            Assert.StartsWith("demo-", key, StringComparison.Ordinal);
            // Kept in FORECASTER_HOME, so the next start has the same key.
            Assert.Equal(key, (await File.ReadAllTextAsync(Path.Combine(home, DemoKey.FileName))).Trim());

            // Readiness waits for the seeding: the first 200 already sees the whole fleet.
            for (var i = 0; i < 600 && (await client.GetAsync("/health/ready")).StatusCode != HttpStatusCode.OK; i++)
            {
                await Task.Delay(100);
            }
            var fleet = await client.GetFromJsonAsync<JsonElement>("/api/v1/resources?limit=100");
            Assert.Equal(DemoFleet.Resources().Count, fleet.GetProperty("items").GetArrayLength());

            JsonElement current = default;
            for (var i = 0; i < 600; i++)
            {
                var response = await client.GetAsync("/api/v1/resources/checkout/plan/current");
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    current = await response.Content.ReadFromJsonAsync<JsonElement>();
                    if (current.GetProperty("source").GetString() == "forecast")
                    {
                        break;
                    }
                }
                await Task.Delay(200);
            }
            Assert.Equal("forecast", current.GetProperty("source").GetString());
            Assert.True(current.GetProperty("replicas").GetInt32() >= 2);
            var runs = await client.GetFromJsonAsync<JsonElement>("/api/v1/training-runs");
            Assert.Equal(1, runs.GetProperty("items").GetArrayLength());

            // The generated key is the one that writes.
            client.DefaultRequestHeaders.Add("X-Api-Key", key);
            Assert.Equal(HttpStatusCode.Created, (await client.PutAsync("/api/v1/resources/extra", ApiFixture.Json("""{"kind":"service","loadMetric":"qps"}"""))).StatusCode);
        }
        finally
        {
            TestEnvironment.TryDelete(home);
            if (Directory.Exists(models))
            {
                Directory.Delete(models, recursive: true);
            }
        }
    }
}

public sealed class DemoKeyTests : IDisposable
{
    readonly string _home = TestEnvironment.NewHome("demokey");

    [Fact]
    public void TheKeyStaysTheSameUntilANewOneIsAskedFor()
    {
        var path = Path.Combine(_home, DemoKey.FileName);
        var first = DemoKey.LoadOrCreate(path, renew: false);
        Assert.Equal(first, DemoKey.LoadOrCreate(path, renew: false));
        var renewed = DemoKey.LoadOrCreate(path, renew: true);
        Assert.NotEqual(first, renewed);
        Assert.Equal(renewed, DemoKey.LoadOrCreate(path, renew: false));
        // Plain ASCII, no byte-order mark: `key=$(cat ~/.forecaster/demo-api-key)` must give exactly the key.
        Assert.Equal(Encoding.ASCII.GetBytes(renewed + Environment.NewLine), File.ReadAllBytes(path));
        Assert.Contains("--Forecaster:NewDemoKey=true", Forecaster.Api.Cli.Verbs.ServeArguments(["serve", "--demo", "--new-key"]));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }
    }

    [Fact]
    public void TheBannerNamesTheAddressesAndTheKey()
    {
        var text = DemoBanner.Text(DemoBanner.BaseUrl("http://0.0.0.0:9000/;http://[::]:9001"), jobs: true, "demo-abc", "/h/demo-api-key");
        Assert.Contains("Dashboard   http://127.0.0.1:9000/", text, StringComparison.Ordinal);
        Assert.Contains("Swagger UI  http://127.0.0.1:9000/swagger", text, StringComparison.Ordinal);
        Assert.Contains("Jobs        http://127.0.0.1:9000/jobs", text, StringComparison.Ordinal);
        Assert.Contains("API key     demo-abc", text, StringComparison.Ordinal);
        Assert.DoesNotContain("/jobs", DemoBanner.Text("http://h:1", jobs: false, "k", "f"), StringComparison.Ordinal);
    }

    public void Dispose() => TestEnvironment.TryDelete(_home);
}
