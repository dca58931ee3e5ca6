using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Forecaster.Api.Tests.Infrastructure;
using Forecaster.Api.Tests.Training;
using Npgsql;

namespace Forecaster.Api.Tests;

/// <summary>Issue 13: a value beyond the accepted range is refused at every door, and one already stored stops nothing but its own series.</summary>
public sealed class SampleValueRangeTests(ApiFixture api) : IClassFixture<ApiFixture>
{
    const string Huge = "1.7976931348623157e308";

    [Fact]
    public async Task AValueAboveTheLimitIsRefusedNamingItsRowInJsonAndCsv()
    {
        var client = api.Writer();
        await api.PutServiceAsync(client, "huge");
        var json = await client.PostAsync("/api/v1/resources/huge/samples", ApiFixture.Json($$"""
            {"samples":[{"metric":"qps","timestamp":"2026-11-20T10:00:00Z","value":1e15},{"metric":"qps","timestamp":"2026-11-20T11:00:00Z","value":{{Huge}}}]}
            """));
        Assert.Equal(HttpStatusCode.BadRequest, json.StatusCode);
        var problem = await json.Content.ReadFromJsonAsync<JsonElement>();
        var message = Assert.Single(problem.GetProperty("errors").GetProperty("samples[1].value").EnumerateArray()).GetString();
        Assert.True(message!.Contains("above the largest accepted value 1000000000000000", StringComparison.Ordinal), message);

        var csv = await client.PostAsync("/api/v1/samples", ApiFixture.Csv($"resource,metric,timestamp,value\nhuge,qps,2026-11-20T10:00:00Z,5\nhuge,qps,2026-11-20T11:00:00Z,{Huge}\n"));
        Assert.Equal(HttpStatusCode.BadRequest, csv.StatusCode);
        problem = await csv.Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(problem.GetProperty("errors").TryGetProperty("line 3: value", out _), problem.ToString());
        Assert.Equal(0, await api.CountSamplesAsync("huge"));

        // The limit itself is a value like any other.
        var atLimit = await client.PostAsync("/api/v1/resources/huge/samples", ApiFixture.Json("""{"samples":[{"metric":"qps","timestamp":"2026-11-20T10:00:00Z","value":1e15}]}"""));
        Assert.Equal(HttpStatusCode.OK, atLimit.StatusCode);
    }

    [Fact]
    public async Task AnInlineSimulationSeriesWithAHugeLoadIsRefusedNamingTheSeries()
    {
        var client = api.Writer();
        var response = await client.PostAsync("/api/v1/simulations", ApiFixture.Json($$"""
            {"series":[{"name":"spiky","points":[{"timestamp":"2026-11-01T00:00:00Z","value":5},{"timestamp":"2026-11-01T01:00:00Z","value":{{Huge}}}]}],
             "policy":{"minReplicas":1,"maxReplicas":10},"trainDays":1}
            """));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        var message = Assert.Single(problem.GetProperty("errors").GetProperty("series").EnumerateArray()).GetString();
        Assert.True(message!.Contains("'spiky' has a load 1.7976931348623157E+308 at 2026-11-01T01:00:00Z, beyond", StringComparison.Ordinal), message);
    }

    [Fact]
    public async Task ImportRefusesAValueAboveTheLimitWithItsLineAndExitCode2()
    {
        var db = await TestCluster.CreateDatabaseAsync("clihuge");
        var hour = TimeProvider.System.GetUtcNow().AddHours(-3).ToString("yyyy-MM-ddTHH:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
        var file = Path.Combine(Path.GetTempPath(), $"forecaster-huge-{Guid.NewGuid():N}.csv");
        await File.WriteAllTextAsync(file, $"resource,metric,timestamp,value\ncli-huge,qps,{hour},10\ncli-huge,qps,{hour},{Huge}\n");
        try
        {
            var (exit, _, stderr) = await ForecasterProcess.RunAsync(db, "import", file, "--create-resources");
            Assert.Equal(2, exit);
            Assert.Contains("line 3: value:", stderr, StringComparison.Ordinal);
            Assert.Contains("above the largest accepted value", stderr, StringComparison.Ordinal);
            await using var conn = new NpgsqlConnection(db);
            Assert.Equal(0, await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM sample_points"));
        }
        finally
        {
            File.Delete(file);
        }
    }
}

/// <summary>The demo fleet with one series poisoned directly in the table, as the API would no longer allow.</summary>
public sealed class PoisonedSeriesTests(TrainingFixture fx) : IClassFixture<TrainingFixture>
{
    [Fact]
    public async Task APoisonedSeriesFailsAloneWhileTheOthersTrainAndItsResourceStillAnswers()
    {
        await using var conn = new NpgsqlConnection(fx.ConnectionString);
        // Two days of cart's load become the largest double, as a key holder once could write them.
        var poisoned = await conn.ExecuteAsync("""
            UPDATE sample_points SET value = 1.7976931348623157e308
            WHERE series_id = (SELECT s.id FROM series s JOIN resources r ON r.id = s.resource_id WHERE r.name = 'cart' AND s.metric = 'qps')
              AND ts >= @from AND ts < @to
            """, new { from = ApiFixture.Now.AddDays(-3).UtcDateTime, to = ApiFixture.Now.AddDays(-1).UtcDateTime });
        Assert.True(poisoned >= 24, $"{poisoned} samples poisoned");

        var id = await fx.RunAsync(["cart", "checkout", "reviews"]);
        var run = await fx.WaitForRunAsync(id);
        Assert.Equal("succeeded", run.GetProperty("status").GetString());
        Assert.Equal(1, run.GetProperty("progress").GetProperty("failed").GetInt32());
        var failure = Assert.Single(run.GetProperty("failures").EnumerateArray());
        Assert.Equal("cart", failure.GetProperty("resource").GetString());
        Assert.Equal("qps", failure.GetProperty("metric").GetString());
        Assert.Contains($"{poisoned} stored samples", failure.GetProperty("error").GetString(), StringComparison.Ordinal);
        // Every other series of the three resources has a fresh active model with its forecast.
        var trained = await conn.QuerySingleAsync<(int Series, int Active, int Forecasts)>("""
            SELECT (SELECT count(*)::int FROM series s JOIN resources r ON r.id = s.resource_id
                    WHERE r.name IN ('cart', 'checkout', 'reviews') AND s.metric IN (r.load_metric, 'cpu_cores', 'memory_bytes')) AS Series,
                   (SELECT count(*)::int FROM model_versions WHERE run_id = @id AND status = 'active') AS Active,
                   (SELECT coalesce(sum(cardinality(f.forecast)), 0)::int FROM series_forecasts f JOIN model_versions mv ON mv.id = f.model_version_id WHERE mv.run_id = @id) AS Forecasts
            """, new { id });
        Assert.Equal(trained.Series - 1, trained.Active);
        Assert.Equal(trained.Active * 48, trained.Forecasts);

        using var client = fx.Writer();
        var series = await client.GetAsync("/api/v1/resources/cart/samples?metric=qps&step=1h&from=2026-11-17T00:00:00Z&to=2026-11-21T12:00:00Z");
        Assert.Equal(HttpStatusCode.OK, series.StatusCode);
        var buckets = (await series.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("buckets").EnumerateArray().ToList();
        Assert.NotEmpty(buckets);
        Assert.All(buckets, b => Assert.True(b.GetProperty("mean").GetDouble() < 1e100, b.ToString()));
        var raw = await client.GetAsync("/api/v1/resources/cart/samples?metric=qps&from=2026-11-18T00:00:00Z&to=2026-11-21T00:00:00Z");
        Assert.Equal(HttpStatusCode.OK, raw.StatusCode);

        // A policy change plans the resource at once, from the same history.
        var put = await client.PutAsync("/api/v1/resources/cart",
            ApiFixture.Json("""{"kind":"service","group":"shop","loadMetric":"qps","policy":{"minReplicas":2,"maxReplicas":30}}"""));
        Assert.True(put.IsSuccessStatusCode, await put.Content.ReadAsStringAsync());
    }
}
