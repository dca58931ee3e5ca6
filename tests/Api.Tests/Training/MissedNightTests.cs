using Dapper;
using Forecaster.Api.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Npgsql;

namespace Forecaster.Api.Tests.Training;

/// <summary>
/// Every instance was down for three nights: the one that starts runs the nightly training once, not once per missed
/// night. The downtime is written into Hangfire's own schedule (the recurring job's next execution three days back).
/// </summary>
public sealed class MissedNightTests
{
    [Fact]
    public async Task AServiceDownForThreeNightsRunsTheNightlyTrainingOnceOnStart()
    {
        var db = await TestCluster.CreateDatabaseAsync("missednight");
        var models = Path.Combine(Path.GetTempPath(), "forecaster-models", Guid.NewGuid().ToString("N")[..12]);
        try
        {
            // A daily schedule registered by an instance that then stopped.
            using (var first = Instance(db, models))
            {
                _ = first.Server;
            }
            NpgsqlConnection.ClearAllPools();
            await using var conn = new NpgsqlConnection(db);
            var missed = TimeProvider.System.GetUtcNow().AddDays(-3);
            Assert.Equal(1, await conn.ExecuteAsync(
                "UPDATE hangfire.set SET score = @score WHERE key = 'recurring-jobs' AND value = 'nightly-training'", new { score = (double)missed.ToUnixTimeSeconds() }));
            Assert.Equal(1, await conn.ExecuteAsync(
                "UPDATE hangfire.hash SET value = @value WHERE key = 'recurring-job:nightly-training' AND field = 'NextExecution'",
                new { value = missed.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffffffZ", System.Globalization.CultureInfo.InvariantCulture) }));

            using var second = Instance(db, models);
            _ = second.Server;
            var deadline = TimeProvider.System.GetUtcNow().AddMinutes(1);
            while (await conn.ExecuteScalarAsync<int>("SELECT count(*)::int FROM training_runs WHERE trigger = 'nightly'") == 0)
            {
                Assert.True(TimeProvider.System.GetUtcNow() < deadline, "the missed night never ran");
                await Task.Delay(250);
            }
            // Every chance for a second or third missed night to show up (the schedule is polled every second here).
            await Task.Delay(TimeSpan.FromSeconds(5));
            Assert.Equal(1, await conn.ExecuteScalarAsync<int>("SELECT count(*)::int FROM training_runs"));
            // The next firing is the coming night, not another missed one.
            var next = DateTime.Parse(await conn.ExecuteScalarAsync<string>(
                "SELECT value FROM hangfire.hash WHERE key = 'recurring-job:nightly-training' AND field = 'NextExecution'") ?? "",
                System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AdjustToUniversal);
            Assert.True(next > TimeProvider.System.GetUtcNow().UtcDateTime, $"next execution {next:o} is in the past");
            Assert.Equal(2, next.Hour);
        }
        finally
        {
            if (Directory.Exists(models))
            {
                Directory.Delete(models, recursive: true);
            }
        }
    }

    static WebApplicationFactory<Program> Instance(string db, string models) =>
        new WebApplicationFactory<Program>().WithWebHostBuilder(web =>
        {
            web.UseSetting("FORECASTER_DB", db);
            web.UseSetting("Forecaster:ApiKeys:0", ApiFixture.ApiKey);
            web.UseSetting("Forecaster:Training:NightlyCron", "0 2 * * *");
            web.UseSetting("Forecaster:Training:ModelsPath", models);
            web.UseSetting("Forecaster:Training:SchedulerIdleSeconds", "1");
        });
}
