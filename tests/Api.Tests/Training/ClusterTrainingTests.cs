using Dapper;
using Forecaster.Api.Tests.Infrastructure;
using Forecaster.Api.Training;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Hangfire;
using Npgsql;

namespace Forecaster.Api.Tests.Training;

/// <summary>
/// Two service instances on one database: Hangfire's recurring scheduler fires the nightly job once and both take shards.
/// Both run on the wall clock (no fake clock): the scheduler compares fire times with real time across instances.
/// </summary>
public sealed class ClusterTrainingTests
{
    [Fact]
    public async Task TwoInstancesRunTheNightlyTriggerExactlyOnceAndShareItsShards()
    {
        var db = await TestCluster.CreateDatabaseAsync("cluster");
        await TestCluster.SeedDemoAsync(db, TimeProvider.System.GetUtcNow());
        // The nightly job is registered as configured (never), then moved to a few seconds from now once both instances are
        // up: a start slower than the wait would otherwise put the first firing in the past.
        const string cron = "0 0 31 2 *";
        var models = TestEnvironment.NewHome("models");

        // Removed however the test ends: a failed assertion must not leave the instances' artifacts under the test root.
        try
        {
            using var a = Instance(db, cron, models);
            using var b = Instance(db, cron, models);
            _ = a.Server;
            _ = b.Server;
            // Once, at a second a few seconds ahead (six fields: seconds first), in UTC.
            var at = TimeProvider.System.GetUtcNow().AddSeconds(4);
            TrainingJobs.ScheduleNightly(a.Services.GetRequiredService<IRecurringJobManager>(), $"{at.Second} {at.Minute} {at.Hour} {at.Day} {at.Month} *");

            await using var conn = new NpgsqlConnection(db);
            var deadline = TimeProvider.System.GetUtcNow().AddMinutes(3);
            while (await conn.ExecuteScalarAsync<int>("SELECT count(*)::int FROM training_runs WHERE status IN ('succeeded', 'failed')") == 0)
            {
                Assert.True(TimeProvider.System.GetUtcNow() < deadline, "the nightly run did not finish: " + string.Join("; ",
                    await conn.QueryAsync<string>("SELECT format('run %s %s %s/%s', id, status, series_done, series_total) FROM training_runs")));
                await Task.Delay(250);
            }
            // Give a second firing every chance to show up.
            await Task.Delay(TimeSpan.FromSeconds(3));

            var run = await conn.QuerySingleAsync<(long Id, string Trigger, string Status, int Done, int Total, string? Error)>(
                "SELECT id, trigger, status, series_done, series_total, error FROM training_runs");
            Assert.True(run.Status == "succeeded", $"run {run.Id} {run.Status}: {run.Error}");
            Assert.Equal(("nightly", "succeeded"), (run.Trigger, run.Status));
            Assert.Equal(75, run.Done);
            Assert.Equal(run.Total, run.Done);
            var instances = (await conn.QueryAsync<string>("SELECT DISTINCT instance_id FROM training_shards WHERE run_id = @Id", new { run.Id })).ToList();
            Assert.Equal(2, instances.Count);
        }
        finally
        {
            TestEnvironment.TryDelete(models);
        }
    }

    static WebApplicationFactory<Program> Instance(string db, string cron, string models) =>
        new WebApplicationFactory<Program>().WithWebHostBuilder(web =>
        {
            web.UseSetting("FORECASTER_DB", db);
            web.UseSetting("Forecaster:ApiKeys:0", ApiFixture.ApiKey);
            web.UseSetting("Forecaster:Training:NightlyCron", cron);
            web.UseSetting("Forecaster:Training:ModelsPath", models);
            web.UseSetting("Forecaster:Training:Shards", "6");
            web.UseSetting("Forecaster:Training:BatchResources", "2");
            web.UseSetting("Forecaster:Training:LoadBacktestOrigins", "2");
            web.UseSetting("Forecaster:Training:UsageBacktestOrigins", "1");
            web.UseSetting("Forecaster:Training:SchedulerIdleSeconds", "1");
        });
}
