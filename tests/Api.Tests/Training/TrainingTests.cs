using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Forecaster.Api.Tests.Infrastructure;
using Forecaster.Api.Training;
using Npgsql;

namespace Forecaster.Api.Tests.Training;

/// <summary>Training runs over the demo fleet through the API: registry, forecasts, capacity models, peaks and failures.</summary>
public sealed class TrainingTests(TrainingFixture fx) : IClassFixture<TrainingFixture>
{
    const string Trained = "('qps', 'records_in_rate', 'cpu_cores', 'memory_bytes')";

    [Fact]
    public async Task ADemoRunActivatesAModelAndAForecastForEverySeries()
    {
        var id = await fx.FullRunAsync();
        var run = await fx.WaitForRunAsync(id);
        Assert.Equal("succeeded", run.GetProperty("status").GetString());
        var expected = await fx.ScalarAsync<int>($"SELECT count(*)::int FROM series s JOIN resources r ON r.id = s.resource_id WHERE s.metric IN (r.load_metric, 'cpu_cores', 'memory_bytes')");
        Assert.Equal(75, expected);
        var progress = run.GetProperty("progress");
        Assert.Equal(expected, progress.GetProperty("total").GetInt32());
        Assert.Equal(expected, progress.GetProperty("done").GetInt32());
        Assert.Equal(0, progress.GetProperty("failed").GetInt32());
        Assert.Equal(3, run.GetProperty("shards").GetArrayLength());
        Assert.StartsWith("resources=25 planned=25 cannot=0", await Plans.RunPlanning.WaitAsync(fx, id), StringComparison.Ordinal);

        Assert.Equal(expected, await fx.ScalarAsync<int>($"SELECT count(*)::int FROM model_versions WHERE status = 'active' AND run_id = {id}"));
        Assert.Equal(expected * 48, await fx.ScalarAsync<int>($"SELECT sum(cardinality(f.forecast))::int FROM series_forecasts f JOIN model_versions mv ON mv.id = f.model_version_id AND mv.status = 'active'"));
        Assert.Equal(0, await fx.ScalarAsync<int>("SELECT count(*)::int FROM series_forecasts, unnest(forecast, lower, upper) AS h(forecast, lower, upper) WHERE NOT (h.lower <= h.forecast AND h.forecast <= h.upper)"));
        // Forecasts start at the first hour after the history (the fixture's clock is 12:00, the last sample at 11:00).
        Assert.Equal(ApiFixture.Now.UtcDateTime, await fx.ScalarAsync<DateTime>("SELECT min(start) FROM series_forecasts"));
        Assert.Equal(25, await fx.ScalarAsync<int>("SELECT count(*)::int FROM capacity_models"));
        Assert.Equal(25, await fx.ScalarAsync<int>("SELECT count(*)::int FROM weekly_peaks WHERE cpu_cores > 0 AND memory_bytes > 0"));
        Assert.True(await fx.ScalarAsync<int>("SELECT count(*)::int FROM model_versions WHERE beats_seasonal_naive IS NOT NULL") > 0);

        // Two load backtest origins give 96 errors, under the 100 a table of upper errors needs (UpperErrors.MinSamples): none is
        // stored, and a risk-targeted plan extrapolates the band as before (TrainCommandTests stores some with three).
        Assert.Equal(0, await fx.ScalarAsync<int>($"SELECT count(*)::int FROM model_versions WHERE run_id = {id} AND upper_tail IS NOT NULL"));
    }

    [Fact]
    public async Task ARunTrainsOneFleetWideModelThatEveryLoadSeriesReferences()
    {
        var id = await fx.FullRunAsync();
        Assert.Equal("succeeded", (await fx.WaitForRunAsync(id)).GetProperty("status").GetString());
        var version = FleetModel.RelativePath(id);
        // The ML.NET zip is under the models directory, once for the run (not per shard or per series).
        Assert.True(File.Exists(Path.Combine(fx.ModelsDir, version)), $"{version} missing");
        Assert.Single(Directory.GetFiles(Path.Combine(fx.ModelsDir, "global"), $"run-{id}.zip*"));
        // Every load series' version names it; cpu and memory do not use it.
        Assert.Equal(25, await fx.ScalarAsync<int>($"""
            SELECT count(*)::int FROM model_versions mv JOIN resources r ON r.id = mv.resource_id
            WHERE mv.run_id = {id} AND mv.metric = r.load_metric AND mv.parameters->>'globalModel' = '{version}'
            """));
        Assert.Equal(0, await fx.ScalarAsync<int>($"SELECT count(*)::int FROM model_versions WHERE run_id = {id} AND metric IN ('cpu_cores', 'memory_bytes') AND parameters->>'globalModel' IS NOT NULL"));
        // It competed in each load series' backtest.
        Assert.Equal(25, await fx.ScalarAsync<int>($$"""
            SELECT count(*)::int FROM model_versions mv JOIN resources r ON r.id = mv.resource_id
            WHERE mv.run_id = {{id}} AND mv.metric = r.load_metric AND (mv.parameters->'candidates')::jsonb @> '[{"model":"lgbm"}]'
            """));
    }

    [Fact]
    public async Task TheRegistryArtifactReproducesTheStoredForecast()
    {
        await fx.FullRunAsync();
        await using var conn = new NpgsqlConnection(fx.ConnectionString);
        var (version, artifact, offset, length, horizon, level) = await conn.QuerySingleAsync<(long, string, long, int, int, double)>("""
            SELECT mv.id, mv.artifact, mv.artifact_offset, mv.artifact_length, mv.horizon, mv.level FROM model_versions mv JOIN resources r ON r.id = mv.resource_id
            WHERE r.name = 'search' AND mv.metric = 'qps' AND mv.status = 'active'
            """);
        var (header, model) = ModelArtifact.Read(fx.ModelsDir, new ArtifactPlace(artifact, offset, length));
        Assert.Equal(version, header.Version);
        Assert.Equal(("search", "qps"), (header.Resource, header.Metric));
        var forecast = model.Forecast(horizon, level);
        var stored = (await conn.QueryAsync<(DateTime Ts, double Forecast, double Lower, double Upper)>(
            """
            SELECT f.start + (h.k - 1) * f.step AS ts, h.forecast, h.lower, h.upper
            FROM series_forecasts f, unnest(f.forecast, f.lower, f.upper) WITH ORDINALITY AS h(forecast, lower, upper, k)
            WHERE f.model_version_id = @version ORDER BY h.k
            """, new { version })).ToList();
        Assert.Equal(horizon, stored.Count);
        for (int h = 0; h < horizon; h++)
        {
            Assert.Equal(forecast.TimestampAt(h).UtcDateTime, stored[h].Ts);
            Assert.Equal(forecast.Point[h], stored[h].Forecast, 9);
            Assert.Equal(forecast.Lower[h], stored[h].Lower, 9);
            Assert.Equal(forecast.Upper[h], stored[h].Upper, 9);
        }
    }

    [Fact]
    public async Task ASeriesWhoseDataMakesFittingFailKeepsItsPreviousModelAndForecast()
    {
        await fx.FullRunAsync();
        await using var conn = new NpgsqlConnection(fx.ConnectionString);
        const string active = """
            SELECT mv.id FROM model_versions mv JOIN resources r ON r.id = mv.resource_id
            WHERE r.name = @name AND mv.metric = @metric AND mv.status = 'active'
            """;
        var before = await conn.ExecuteScalarAsync<long>(active, new { name = "reviews", metric = "memory_bytes" });
        var cartBefore = await conn.ExecuteScalarAsync<long>(active, new { name = "cart", metric = "qps" });
        // The series loses its history: nothing left in the window to fit.
        await conn.ExecuteAsync("""
            DELETE FROM samples WHERE series_id = (SELECT s.id FROM series s JOIN resources r ON r.id = s.resource_id WHERE r.name = 'reviews' AND s.metric = 'memory_bytes')
            """);

        var id = await fx.RunAsync(["reviews", "cart"]);
        var run = await fx.WaitForRunAsync(id);
        Assert.Equal("succeeded", run.GetProperty("status").GetString());
        Assert.Equal(1, run.GetProperty("progress").GetProperty("failed").GetInt32());
        var failure = Assert.Single(run.GetProperty("failures").EnumerateArray());
        Assert.Equal("reviews", failure.GetProperty("resource").GetString());
        Assert.Equal("memory_bytes", failure.GetProperty("metric").GetString());
        Assert.Contains("no samples", failure.GetProperty("error").GetString(), StringComparison.Ordinal);

        Assert.Equal(before, await conn.ExecuteScalarAsync<long>(active, new { name = "reviews", metric = "memory_bytes" }));
        Assert.Equal(48, await conn.ExecuteScalarAsync<int>("SELECT coalesce(sum(cardinality(forecast)), 0)::int FROM series_forecasts WHERE model_version_id = @before", new { before }));
        Assert.Equal("failed", await conn.ExecuteScalarAsync<string>(
            "SELECT status FROM model_versions WHERE run_id = @id AND metric = 'memory_bytes' AND resource_id = (SELECT id FROM resources WHERE name = 'reviews')", new { id }));
        // The other series of the run moved on, and the old version stepped down.
        var cartAfter = await conn.ExecuteScalarAsync<long>(active, new { name = "cart", metric = "qps" });
        Assert.NotEqual(cartBefore, cartAfter);
        Assert.Equal("superseded", await conn.ExecuteScalarAsync<string>("SELECT status FROM model_versions WHERE id = @cartBefore", new { cartBefore }));
        Assert.Equal(0, await conn.ExecuteScalarAsync<int>("SELECT coalesce(sum(cardinality(forecast)), 0)::int FROM series_forecasts WHERE model_version_id = @cartBefore", new { cartBefore }));
    }

    [Fact]
    public async Task ModelsAndForecastEndpointsReturnVersionsAndBounds()
    {
        await fx.FullRunAsync();
        using var client = fx.Reader();
        var models = await client.GetFromJsonAsync<JsonElement>("/api/v1/resources/checkout/models?metric=qps");
        var latest = models.GetProperty("items")[0];
        Assert.Equal("active", latest.GetProperty("status").GetString());
        Assert.True(latest.GetProperty("mase").GetDouble() > 0);
        Assert.InRange(latest.GetProperty("coverage").GetDouble(), 0, 1);

        var forecast = await client.GetFromJsonAsync<JsonElement>("/api/v1/resources/checkout/forecast?from=2026-11-21T12:00:00Z&to=2026-11-21T23:00:00Z");
        Assert.Equal("qps", forecast.GetProperty("metric").GetString());
        Assert.Equal(latest.GetProperty("version").GetInt64(), forecast.GetProperty("modelVersion").GetInt64());
        var points = forecast.GetProperty("points");
        Assert.Equal(12, points.GetArrayLength());
        Assert.All(points.EnumerateArray(), p => Assert.True(p.GetProperty("lower").GetDouble() <= p.GetProperty("forecast").GetDouble()
            && p.GetProperty("forecast").GetDouble() <= p.GetProperty("upper").GetDouble()));

        var bad = await client.GetAsync("/api/v1/resources/checkout/forecast?from=yesterday");
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal("application/problem+json", bad.Content.Headers.ContentType?.MediaType);
        Assert.Contains("from", await bad.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/api/v1/resources/nope/forecast")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/api/v1/resources/checkout/forecast?metric=backlog_records")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/api/v1/resources/nope/models")).StatusCode);
    }

    [Fact]
    public async Task TheCapacityModelRecoversEachServicesCostOfLoad()
    {
        await fx.FullRunAsync();
        await using var conn = new NpgsqlConnection(fx.ConnectionString);
        var fits = (await conn.QueryAsync<(string Name, double Slope, double Intercept, bool PerReplica)>("""
            SELECT r.name, c.slope, c.intercept, c.per_replica FROM capacity_models c JOIN resources r ON r.id = c.resource_id
            """)).ToDictionary(f => f.Name);
        foreach (var r in Forecaster.Api.Demo.DemoFleet.Resources())
        {
            var fit = fits[r.Name];
            Assert.True(fit.PerReplica);
            // The demo fleet's cpu per replica is 0.1 + (load per replica) / LoadPerCore (3% noise): the slope is 1 / LoadPerCore.
            Assert.InRange(fit.Slope * r.LoadPerCore, 0.9, 1.1);
            Assert.InRange(fit.Intercept, 0.05, 0.15);
        }
    }

    [Fact]
    public async Task BadRunRequestsAndASecondActiveRunAreProblems()
    {
        using var client = fx.Writer();
        var unknown = await client.PostAsync("/api/v1/training-runs", ApiFixture.Json("""{"resources":["checkout","no-such"]}"""));
        Assert.Equal(HttpStatusCode.BadRequest, unknown.StatusCode);
        Assert.Contains("resources[1]", await unknown.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var malformed = await client.PostAsync("/api/v1/training-runs", ApiFixture.Json("""{"resources":"checkout"}"""));
        Assert.Equal(HttpStatusCode.BadRequest, malformed.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await fx.Reader().PostAsync("/api/v1/training-runs", ApiFixture.Json("{}"))).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/api/v1/training-runs/999999")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await client.GetAsync("/api/v1/training-runs?limit=0")).StatusCode);

        await fx.FullRunAsync();
        await using var conn = new NpgsqlConnection(fx.ConnectionString);
        var blocking = await conn.ExecuteScalarAsync<long>("INSERT INTO training_runs (trigger, status, created_at) VALUES ('cli', 'running', now()) RETURNING id");
        try
        {
            var conflict = await client.PostAsync("/api/v1/training-runs", ApiFixture.Json("{}"));
            Assert.Equal(HttpStatusCode.Conflict, conflict.StatusCode);
            Assert.Contains($"/api/v1/training-runs/{blocking}", await conflict.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        finally
        {
            await conn.ExecuteAsync("UPDATE training_runs SET status = 'failed' WHERE id = @blocking", new { blocking });
        }
        var list = await client.GetFromJsonAsync<JsonElement>("/api/v1/training-runs");
        Assert.Contains(list.GetProperty("items").EnumerateArray(), r => r.GetProperty("id").GetInt64() == blocking);
    }

    [Fact]
    public async Task ARunAbandonedByADeadProcessIsFailedAndTheNextRunWorks()
    {
        await fx.FullRunAsync();
        await using var db = NpgsqlDataSource.Create(fx.ConnectionString);
        await using var conn = await db.OpenConnectionAsync();
        var now = ApiFixture.Now;
        var dead = await conn.ExecuteScalarAsync<long>("""
            INSERT INTO training_runs (trigger, status, created_at, started_at, heartbeat_at, shard_count, shard_slots) VALUES ('nightly', 'running', @t, @t, @t, 1, 1) RETURNING id
            """, new { t = now.AddHours(-2) });
        await conn.ExecuteAsync("INSERT INTO training_shards (run_id, shard, status, slot_from, slot_to) VALUES (@dead, 0, 'running', 0, 1)", new { dead });
        Assert.Equal([dead], await TrainingRuns.FailStaleAsync(db, now.AddMinutes(-15), now, default));
        Assert.StartsWith("abandoned", await conn.ExecuteScalarAsync<string>("SELECT error FROM training_runs WHERE id = @dead", new { dead }), StringComparison.Ordinal);
        var next = await fx.RunAsync(["payments"]);
        Assert.Equal("succeeded", (await fx.WaitForRunAsync(next)).GetProperty("status").GetString());
    }
}
