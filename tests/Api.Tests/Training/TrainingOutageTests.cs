using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Forecaster.Api.Database;
using Forecaster.Api.Demo;
using Forecaster.Api.Samples;
using Forecaster.Api.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Forecaster.Api.Tests.Training;

/// <summary>
/// PostgreSQL really stops in the middle of a training run (its own cluster): the service keeps answering, the run ends
/// `failed` once the database is back, no series loses the model it had, and the next run works.
/// </summary>
public sealed class TrainingOutageTests : IAsyncLifetime
{
    readonly string _home = Path.Combine(Path.GetTempPath(), "forecaster-tests", "train-outage-" + Guid.NewGuid().ToString("N")[..8]);
    readonly string _models = Path.Combine(Path.GetTempPath(), "forecaster-models", Guid.NewGuid().ToString("N")[..12]);
    EmbeddedPostgres _cluster = null!;
    WebApplicationFactory<Program> _factory = null!;
    string _connectionString = "";

    public async Task InitializeAsync()
    {
        _cluster = EmbeddedPostgres.For(_home, fast: true);
        var (cs, _) = await _cluster.EnsureRunningAsync();
        _connectionString = new NpgsqlConnectionStringBuilder(cs) { Timeout = 3, CommandTimeout = 10 }.ConnectionString;
        _factory = new WebApplicationFactory<Program>().WithWebHostBuilder(web =>
        {
            web.UseSetting("FORECASTER_DB", _connectionString);
            web.UseSetting("Forecaster:ApiKeys:0", ApiFixture.ApiKey);
            web.UseSetting("Forecaster:Training:ModelsPath", _models);
            web.UseSetting("Forecaster:Training:Shards", "2");
            web.UseSetting("Forecaster:Training:BatchResources", "2");
            web.UseSetting("Forecaster:Training:SchedulerIdleSeconds", "1");
            web.ConfigureTestServices(s => s.AddSingleton<TimeProvider>(new FakeClock(ApiFixture.Now)));
        });
        _ = _factory.Server;
        await using var db = NpgsqlDataSource.Create(_connectionString);
        await DemoSeeder.SeedAsync(db, new SamplePartitions(db), ApiFixture.Now, NullLogger.Instance, default);
    }

    public async Task DisposeAsync()
    {
        _factory.Dispose();
        NpgsqlConnection.ClearAllPools();
        await _cluster.StopAsync();
        Directory.Delete(_home, recursive: true);
        if (Directory.Exists(_models))
        {
            Directory.Delete(_models, recursive: true);
        }
    }

    [Fact]
    public async Task ARunThatLosesTheDatabaseEndsFailedKeepsEveryModelAndTheNextRunWorks()
    {
        var client = _factory.CreateClient();
        client.DefaultRequestHeaders.Add("X-Api-Key", ApiFixture.ApiKey);
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
        await _cluster.StopAsync();
        NpgsqlConnection.ClearAllPools();

        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/live")).StatusCode);
        // Plans are still served from memory: readiness says degraded rather than taking the instance away.
        Assert.Contains("Degraded", await (await client.GetAsync("/health/ready")).Content.ReadAsStringAsync(), StringComparison.Ordinal);
        await Task.Delay(TimeSpan.FromSeconds(2));

        await _cluster.EnsureRunningAsync();
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
        await using var conn = new NpgsqlConnection(_connectionString);
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
