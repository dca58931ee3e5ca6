using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Forecaster.Api.Database;
using Forecaster.Api.Serving;
using Forecaster.Api.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Forecaster.Api.Tests.Serving;

/// <summary>
/// PostgreSQL really stops mid-test (a cluster of this test's own): plans keep being served from memory marked stale, a
/// resource without a plan keeps its fallback from cached history, writes answer 503, readiness says degraded and why;
/// when the server is back everything recovers without restarting the service.
/// </summary>
public sealed class ServingOutageTests : PrivateClusterHost
{
    protected override IEnumerable<KeyValuePair<string, string?>> Settings => [new("Forecaster:Serving:MaxRetrySeconds", "1")];

    [Fact]
    public async Task ReadsKeepWorkingStaleWhileTheDatabaseIsDownAndRecoverWhenItReturns()
    {
        var client = Writer();
        (await client.PutAsync("/api/v1/resources/planned", ApiFixture.Json("""{"kind":"service","loadMetric":"qps","policy":{"minReplicas":3}}"""))).EnsureSuccessStatusCode();
        (await client.PutAsync("/api/v1/resources/unplanned", ApiFixture.Json("""
            {"kind":"service","loadMetric":"qps","policy":{"capacityPerReplica":100,"targetUtilization":0.5,"scaleDownDelayHours":0}}
            """))).EnsureSuccessStatusCode();
        (await client.PostAsync("/api/v1/resources/unplanned/samples",
            ApiFixture.Json("""{"samples":[{"metric":"qps","timestamp":"2026-11-20T12:00:00Z","value":450}]}"""))).EnsureSuccessStatusCode();
        var cache = Factory.Services.GetRequiredService<PlanCache>();
        await cache.SyncAsync(default);
        await cache.RefreshHistoryAsync(default);
        var fresh = await client.GetFromJsonAsync<JsonElement>("/api/v1/resources/planned/plan/current");
        Assert.False(fresh.GetProperty("stale").GetBoolean());

        await Cluster.StopAsync();
        var planned = await WaitForAsync(client, "/api/v1/resources/planned/plan/current", p => p.GetProperty("stale").GetBoolean());
        Assert.Equal(3, planned.GetProperty("replicas").GetInt32());
        Assert.Equal(fresh.GetProperty("planVersion").GetInt64(), planned.GetProperty("planVersion").GetInt64());
        var unplanned = await client.GetFromJsonAsync<JsonElement>("/api/v1/resources/unplanned/plan/current");
        Assert.Equal("fallback:yesterday-same-hour", unplanned.GetProperty("source").GetString());
        Assert.Equal(9, unplanned.GetProperty("replicas").GetInt32());
        Assert.True(unplanned.GetProperty("stale").GetBoolean());
        var batch = await client.GetFromJsonAsync<JsonElement>("/api/v1/plans/current");
        Assert.Equal(2, batch.GetProperty("count").GetInt32());
        Assert.Equal("""{"desiredReplicas":3}""", await client.GetStringAsync("/api/v1/resources/planned/keda"));

        var write = await client.PutAsync("/api/v1/resources/during", ApiFixture.Json("""{"kind":"service","loadMetric":"qps"}"""));
        await SamplesApiTests.AssertProblem(write, HttpStatusCode.ServiceUnavailable, null, "Nothing was stored");
        Assert.NotNull(write.Headers.RetryAfter);
        var ready = await client.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        var health = await ready.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("Degraded", health.GetProperty("status").GetString());
        Assert.Contains("database unreachable", health.GetProperty("checks").GetProperty("plans").GetProperty("description").GetString(), StringComparison.Ordinal);

        await Cluster.EnsureRunningAsync();
        var recovered = await WaitForAsync(client, "/api/v1/resources/planned/plan/current", p => !p.GetProperty("stale").GetBoolean());
        Assert.Equal(3, recovered.GetProperty("replicas").GetInt32());
        var deadline = TimeProvider.System.GetUtcNow().AddSeconds(30);
        HttpResponseMessage put;
        while ((put = await client.PutAsync("/api/v1/resources/planned", ApiFixture.Json("""{"kind":"service","loadMetric":"qps","policy":{"minReplicas":5}}"""))).StatusCode != HttpStatusCode.OK)
        {
            Assert.True(TimeProvider.System.GetUtcNow() < deadline, $"writes did not recover: {put.StatusCode}");
            await Task.Delay(200);
        }
        // The plan published after recovery reaches the cache through the re-established LISTEN.
        var replanned = await WaitForAsync(client, "/api/v1/resources/planned/plan/current", p => p.GetProperty("replicas").GetInt32() == 5);
        Assert.NotEqual(fresh.GetProperty("planVersion").GetInt64(), replanned.GetProperty("planVersion").GetInt64());
        var healthy = await client.GetFromJsonAsync<JsonElement>("/health/ready");
        Assert.Equal("Healthy", healthy.GetProperty("status").GetString());
    }

    static async Task<JsonElement> WaitForAsync(HttpClient client, string path, Func<JsonElement, bool> done)
    {
        var deadline = TimeProvider.System.GetUtcNow().AddSeconds(60);
        while (true)
        {
            var response = await client.GetAsync(path);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var body = await response.Content.ReadFromJsonAsync<JsonElement>();
            if (done(body))
            {
                return body;
            }
            Assert.True(TimeProvider.System.GetUtcNow() < deadline, $"{path} never reached the expected state: {body}");
            await Task.Delay(100);
        }
    }
}
