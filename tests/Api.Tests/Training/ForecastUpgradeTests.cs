using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Forecaster.Api.Database;
using Forecaster.Api.Plans;
using Forecaster.Api.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Forecaster.Api.Tests.Training;

/// <summary>
/// The upgrade to one row of arrays per series (migration 0070) on a database whose forecasts were stored the old way, one
/// row per hour: after it the service plans from them and serves them as before.
/// </summary>
public sealed class ForecastUpgradeTests
{
    static readonly DateTimeOffset Now = ApiFixture.Now;

    [Fact]
    public async Task ADatabaseWithForecastsStoredAsRowsPerHourPlansFromThemAfterTheUpgrade()
    {
        var connectionString = await TestCluster.CreateDatabaseAsync("forecast-upgrade");
        await using (var db = NpgsqlDataSource.Create(connectionString))
        {
            await MigrationRunner.ApplyAsync(db, [.. Migration.Embedded.Where(m => m.Version < 70)], NullLogger.Instance);
            await using var conn = await db.OpenConnectionAsync();
            // As the training of a release before 0070 left them: 48 hourly rows per series (200 for two hours, then 500), and one
            // series whose hours a hand made uneven (12:00, 13:00, 15:00), which start and step cannot describe.
            await conn.ExecuteAsync("""
                INSERT INTO resources (name, kind, "group", load_metric, policy, created_at, updated_at)
                SELECT name, 'service', 'upgrade', 'qps',
                       '{"minReplicas":1,"maxReplicas":50,"capacityPerReplica":100,"targetUtilization":0.5,"forecastBound":"point","scaleDownDelayHours":0,"tolerance":0}'::jsonb,
                       @now, @now
                FROM unnest(ARRAY['up-even', 'up-uneven']) AS name;
                INSERT INTO model_versions (resource_id, metric, status, trained_at, beats_seasonal_naive, level)
                SELECT id, 'qps', 'active', @now, true, 0.9 FROM resources;
                INSERT INTO forecasts (resource_id, metric, ts, forecast, lower, upper, model_version_id, generated_at)
                SELECT mv.resource_id, 'qps', @now + k * interval '1 hour', v, v * 0.8, v * 1.2, mv.id, @now
                FROM model_versions mv JOIN resources r ON r.id = mv.resource_id,
                     generate_series(0, 47) AS k, LATERAL (SELECT CASE WHEN k < 2 THEN 200.0 ELSE 500.0 END AS v) x
                WHERE r.name = 'up-even' OR k IN (0, 1, 3);
                """, new { now = Now });

            Assert.Equal(Migration.Embedded.Count(m => m.Version >= 70), await MigrationRunner.ApplyAsync(db, Migration.Embedded, NullLogger.Instance));

            Assert.Null(await conn.ExecuteScalarAsync<string>("SELECT to_regclass('forecasts')::text"));
            var row = await conn.QuerySingleAsync<(string Name, DateTime Start, TimeSpan Step, double[] Forecast, double[] Lower, double[] Upper, DateTime GeneratedAt)>("""
                SELECT r.name, f.start, f.step, f.forecast, f.lower, f.upper, f.generated_at
                FROM series_forecasts f JOIN resources r ON r.id = f.resource_id
                """);
            Assert.Equal("up-even", row.Name);
            Assert.Equal((Now.UtcDateTime, TimeSpan.FromHours(1), Now.UtcDateTime), (row.Start, row.Step, row.GeneratedAt));
            double[] expected = [.. Enumerable.Range(0, 48).Select(k => k < 2 ? 200.0 : 500.0)];
            Assert.Equal(expected, row.Forecast);
            Assert.Equal(expected.Select(v => v * 0.8), row.Lower);
            Assert.Equal(expected.Select(v => v * 1.2), row.Upper);
        }

        var clock = new FakeClock(Now);
        await using var factory = new WebApplicationFactory<Program>().WithWebHostBuilder(web =>
        {
            web.UseSetting("FORECASTER_DB", connectionString);
            web.UseSetting("Forecaster:ApiKeys:0", ApiFixture.ApiKey);
            web.ConfigureTestServices(services => services.AddSingleton<TimeProvider>(clock));
        });
        await factory.Services.GetRequiredService<PlanningPipeline>().PlanAsync(new PlanScope(PlanTrigger.Cli, ["up-even", "up-uneven"]), null, default);
        await factory.Services.GetRequiredService<Forecaster.Api.Serving.PlanCache>().SyncAsync(default);
        using var client = factory.CreateClient();

        // 200 / (0.5 × 100) = 4 now, then 500 → 10 from 14:00, in force ten minutes ahead: the converted forecast, hour for hour.
        var current = await client.GetFromJsonAsync<JsonElement>("/api/v1/resources/up-even/plan/current");
        Assert.Equal(4, current.GetProperty("replicas").GetInt32());
        Assert.Equal("forecast", current.GetProperty("source").GetString());
        Assert.Equal(10, current.GetProperty("next").GetProperty("replicas").GetInt32());
        Assert.Equal(Now.AddMinutes(110), current.GetProperty("next").GetProperty("validFrom").GetDateTimeOffset());
        // The uneven series was not converted: its resource is planned without a forecast.
        var uneven = await client.GetFromJsonAsync<JsonElement>("/api/v1/resources/up-uneven/plan/current");
        Assert.NotEqual("forecast", uneven.GetProperty("source").GetString());

        var forecast = await client.GetFromJsonAsync<JsonElement>("/api/v1/resources/up-even/forecast?from=2026-11-21T13:00:00Z&to=2026-11-21T15:00:00Z");
        Assert.Equal(0.9, forecast.GetProperty("level").GetDouble());
        var points = forecast.GetProperty("points").EnumerateArray().ToList();
        Assert.Equal([Now.AddHours(1), Now.AddHours(2), Now.AddHours(3)], points.Select(p => p.GetProperty("timestamp").GetDateTimeOffset()));
        Assert.Equal([200.0, 500.0, 500.0], points.Select(p => p.GetProperty("forecast").GetDouble()));
    }
}
