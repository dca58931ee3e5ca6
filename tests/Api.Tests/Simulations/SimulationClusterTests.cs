using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Forecaster.Api.Simulations;
using Forecaster.Api.Tests.Infrastructure;
using Hangfire;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Forecaster.Api.Tests.Simulations;

/// <summary>
/// Two instances on one database, a simulation posted to one and delivered a second time through the other (as Hangfire's
/// at-least-once delivery may), and a third instance starting while it runs (whose start-up recovery used to queue it
/// again): it runs exactly once, on one instance, under its lease.
/// </summary>
public sealed class SimulationClusterTests
{
    [Fact]
    public async Task ASimulationRunsExactlyOnceWithTwoInstancesAndADuplicateDelivery()
    {
        var db = await TestCluster.CreateDatabaseAsync("simcluster");
        await TestCluster.SeedDemoAsync(db, ApiFixture.Now);
        using var a = Instance(db);
        using var b = Instance(db);
        _ = a.Server;
        _ = b.Server;

        var client = a.CreateClient();
        client.DefaultRequestHeaders.Add("X-Api-Key", ApiFixture.ApiKey);
        var response = await client.PostAsync("/api/v1/simulations", ApiFixture.Json(
            """{"resources":["checkout","search","fraud-scoring","payments","catalog"],"policy":{"minReplicas":1,"maxReplicas":40},"trainDays":28}"""));
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        // The same simulation delivered again, through the other instance.
        SimulationJob.Enqueue(b.Services.GetRequiredService<IBackgroundJobClient>(), id);
        using var c = Instance(db);
        _ = c.Server;

        await using var conn = new NpgsqlConnection(db);
        var deadline = TimeProvider.System.GetUtcNow().AddMinutes(3);
        while (await conn.ExecuteScalarAsync<string>("SELECT status FROM simulations WHERE id = @id", new { id }) is "queued" or "running")
        {
            Assert.True(TimeProvider.System.GetUtcNow() < deadline, "the simulation did not finish");
            await Task.Delay(200);
        }
        // Give the duplicate every chance to run it a second time.
        var jobs = a.Services.GetRequiredService<JobStorage>();
        while (jobs.GetMonitoringApi().EnqueuedCount("simulations") > 0 || jobs.GetMonitoringApi().ProcessingCount() > 0)
        {
            Assert.True(TimeProvider.System.GetUtcNow() < deadline, "the duplicate delivery was never processed");
            await Task.Delay(200);
        }
        var row = await conn.QuerySingleAsync<(string Status, int Starts, string Instance, string? Error)>(
            "SELECT status, starts, instance_id, error FROM simulations WHERE id = @id", new { id });
        Assert.True(row.Status == "succeeded", row.Error);
        Assert.Equal(1, row.Starts);
        Assert.Equal(1, await conn.ExecuteScalarAsync<int>("SELECT count(*)::int FROM simulations"));
    }

    static WebApplicationFactory<Program> Instance(string db) =>
        new WebApplicationFactory<Program>().WithWebHostBuilder(web =>
        {
            web.UseSetting("FORECASTER_DB", db);
            web.UseSetting("Forecaster:ApiKeys:0", ApiFixture.ApiKey);
            web.UseSetting("Forecaster:Training:SchedulerIdleSeconds", "1");
            web.ConfigureTestServices(s => s.AddSingleton<TimeProvider>(new FakeClock(ApiFixture.Now)));
        });
}
