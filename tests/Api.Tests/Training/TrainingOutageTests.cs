using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Forecaster.Api.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Forecaster.Api.Tests.Training;

/// <summary>
/// PostgreSQL really stops in the middle of a training run (its own cluster): the service keeps answering, the run ends
/// `failed` once the database is back, no series loses the model it had, and the next run works.
/// </summary>
public sealed class TrainingOutageTests : PrivateClusterHost
{
    readonly string _models = TestEnvironment.NewHome("models");

    protected override IEnumerable<KeyValuePair<string, string?>> Settings =>
    [
        new("Forecaster:Training:ModelsPath", _models),
        new("Forecaster:Training:Shards", "2"),
        new("Forecaster:Training:BatchResources", "2"),
        new("Forecaster:Training:SchedulerIdleSeconds", "1"),
        // Fewer backtest origins: the same code path, less work on the suite's two cores.
        new("Forecaster:Training:LoadBacktestOrigins", "2"),
        new("Forecaster:Training:UsageBacktestOrigins", "1"),
    ];

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        await TestCluster.SeedDemoAsync(ConnectionString, ApiFixture.Now);
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        if (Directory.Exists(_models))
        {
            Directory.Delete(_models, recursive: true);
        }
    }

    [Fact]
    public async Task ARunThatLosesTheDatabaseEndsFailedKeepsEveryModelAndTheNextRunWorks()
    {
        var client = Writer();
        var first = await StartAndWaitAsync(client);
        Assert.Equal("succeeded", first.GetProperty("status").GetString());
        var activeBefore = await ActiveModelsAsync();
        Assert.Equal(75, activeBefore.Count);

        var response = await client.PostAsync("/api/v1/training-runs", ApiFixture.Json("{}"));
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        // Stop the server while the run is under way (as soon as it has started training).
        string? statusAtStop = null;
        for (var i = 0; i < 1000; i++)
        {
            var progress = await client.GetFromJsonAsync<JsonElement>($"/api/v1/training-runs/{id}");
            statusAtStop = progress.GetProperty("status").GetString();
            if (progress.GetProperty("progress").GetProperty("done").GetInt32() > 0 || statusAtStop is "succeeded" or "failed")
            {
                break;
            }
            await Task.Delay(10);
        }
        await Cluster.StopAsync();
        NpgsqlConnection.ClearAllPools();

        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/live")).StatusCode);
        // Plans are still served from memory: readiness says degraded rather than taking the instance away.
        Assert.Contains("Degraded", await (await client.GetAsync("/health/ready")).Content.ReadAsStringAsync(), StringComparison.Ordinal);
        await Task.Delay(TimeSpan.FromSeconds(2));

        await Cluster.EnsureRunningAsync();
        var run = await WaitAsync(client, id, TimeSpan.FromMinutes(2));
        // A run still under way when the server stopped fails cleanly once it can say so; it never hangs as "running".
        Assert.Equal("running", statusAtStop);
        Assert.Equal("failed", run.GetProperty("status").GetString());
        var activeAfter = await ActiveModelsAsync();
        Assert.Equal(activeBefore.Keys.Order(), activeAfter.Keys.Order());

        var next = await StartAndWaitAsync(client);
        Assert.Equal("succeeded", next.GetProperty("status").GetString());
    }

    async Task<Dictionary<(int, string), long>> ActiveModelsAsync()
    {
        await using var conn = new NpgsqlConnection(ConnectionString);
        return (await conn.QueryAsync<(int ResourceId, string Metric, long Id)>("SELECT resource_id, metric, id FROM model_versions WHERE status = 'active'"))
            .ToDictionary(r => (r.ResourceId, r.Metric), r => r.Id);
    }

    static async Task<JsonElement> StartAndWaitAsync(HttpClient client)
    {
        HttpResponseMessage response = null!;
        // Right after a database restart the scheduler may need a moment to answer again.
        for (var attempt = 0; attempt < 60; attempt++)
        {
            response = await client.PostAsync("/api/v1/training-runs", ApiFixture.Json("{}"));
            if (response.StatusCode == HttpStatusCode.Accepted)
            {
                break;
            }
            await Task.Delay(500);
        }
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        return await WaitAsync(client, id, TimeSpan.FromMinutes(3));
    }

    static async Task<JsonElement> WaitAsync(HttpClient client, long id, TimeSpan timeout)
    {
        var deadline = TimeProvider.System.GetUtcNow() + timeout;
        while (true)
        {
            var response = await client.GetAsync($"/api/v1/training-runs/{id}");
            if (response.StatusCode == HttpStatusCode.OK)
            {
                var run = await response.Content.ReadFromJsonAsync<JsonElement>();
                if (run.GetProperty("status").GetString() is "succeeded" or "failed")
                {
                    return run;
                }
            }
            Assert.True(TimeProvider.System.GetUtcNow() < deadline, $"run {id} did not finish");
            await Task.Delay(250);
        }
    }
}
