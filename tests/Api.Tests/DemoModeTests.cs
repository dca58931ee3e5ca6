using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
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
        var models = Path.Combine(Path.GetTempPath(), "forecaster-models", Guid.NewGuid().ToString("N")[..12]);
        await using var factory = new WebApplicationFactory<Program>().WithWebHostBuilder(web =>
        {
            web.UseSetting("FORECASTER_DB", db);
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
            if (Directory.Exists(models))
            {
                Directory.Delete(models, recursive: true);
            }
        }
    }
}
