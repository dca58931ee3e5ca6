using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Forecaster.Api.Tests.Infrastructure;
using Npgsql;

namespace Forecaster.Api.Tests.Sources;

/// <summary>
/// Prometheus as a history source, against a real Prometheus holding synthetic history. The tests share one Prometheus
/// and one service and run one after another (one class); each sets the clock it needs.
/// </summary>
public sealed class PrometheusSourcesTests(SourcesFixture f) : IClassFixture<SourcesFixture>
{
    static readonly DateTimeOffset Now = SourcesFixture.Now;
    static readonly TimeSpan Step = TimeSpan.FromMinutes(1);

    [PrometheusFact]
    public async Task SourceBackfillsTheGeneratingFunctionsHourlyMeansThenTrainsAndServesAForecast()
    {
        f.Clock.Now = Now;
        var put = await f.Client.PutAsync("/api/v1/resources/checkout", ApiFixture.Json("""
            {"kind":"service","group":"shop-a","loadMetric":"qps","policy":{"minReplicas":1,"maxReplicas":40,"capacityPerReplica":20},
             "sources":{"qps":"load{service=\"checkout\"}","cpu_cores":"cpu{service=\"checkout\"}"}}
            """));
        Assert.Equal(HttpStatusCode.Created, put.StatusCode);

        var round = await f.Puller.PullDueAsync(default);
        Assert.Equal(0, round.Failed);

        var resource = await f.Client.GetFromJsonAsync<JsonElement>("/api/v1/resources/checkout");
        var qps = resource.GetProperty("sources").GetProperty("qps");
        Assert.Equal("load{service=\"checkout\"}", qps.GetProperty("query").GetString());
        Assert.Equal("default", qps.GetProperty("server").GetString());
        Assert.Equal(Now, qps.GetProperty("watermark").GetDateTimeOffset());
        Assert.Equal(Now, qps.GetProperty("lastSuccessAt").GetDateTimeOffset());
        Assert.Equal(JsonValueKind.Null, qps.TryGetProperty("lastError", out var e) ? e.ValueKind : JsonValueKind.Null);

        // Every minute of the backfill window once (two query_range chunks: 20,161 points > 11,000), hourly means exact.
        var from = Now.AddDays(-SourcesFixture.BackfillDays);
        await AssertHourlyMeansAsync("checkout", "qps", from, Now, t => SyntheticLoad.Load(t, 200));
        await AssertHourlyMeansAsync("checkout", "cpu_cores", from, Now, t => 0.5 + 0.01 * SyntheticLoad.Load(t, 200));

        var run = await f.Client.PostAsync("/api/v1/training-runs", ApiFixture.Json("""{"resources":["checkout"]}"""));
        Assert.Equal(HttpStatusCode.Accepted, run.StatusCode);
        var id = (await run.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        JsonElement current = default;
        for (var i = 0; i < 600; i++)
        {
            var state = await f.Client.GetFromJsonAsync<JsonElement>($"/api/v1/training-runs/{id}");
            Assert.NotEqual("failed", state.GetProperty("status").GetString());
            var answer = await f.Client.GetAsync("/api/v1/resources/checkout/plan/current");
            if (answer.IsSuccessStatusCode)
            {
                current = await answer.Content.ReadFromJsonAsync<JsonElement>();
                if (current.GetProperty("source").GetString() == "forecast")
                {
                    break;
                }
            }
            await Task.Delay(200);
        }
        Assert.Equal("forecast", current.GetProperty("source").GetString());
        Assert.InRange(current.GetProperty("replicas").GetInt32(), 1, 40);
    }

    [PrometheusFact]
    public async Task GroupTemplateResolvesEachResourcesNameAndAResourcesOwnSourceOverridesIt()
    {
        f.Clock.Now = Now;
        var bad = await f.Client.PutAsync("/api/v1/groups/shop-b/sources", ApiFixture.Json("""{"sources":{"qps":"http_load{service=\"{{nmae}}\"}"}}"""));
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        var problem = await bad.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Contains("{{nmae}}", problem.GetProperty("errors").GetProperty("sources.qps")[0].GetString());

        var put = await f.Client.PutAsync("/api/v1/groups/shop-b/sources", ApiFixture.Json("""{"sources":{"qps":"http_load{service=\"{{name}}\"}"}}"""));
        Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        foreach (var name in new[] { "svc-a", "svc-b", "svc-c" })
        {
            var r = await f.Client.PutAsync($"/api/v1/resources/{name}",
                ApiFixture.Json("""{"kind":"service","group":"shop-b","loadMetric":"qps","policy":{"minReplicas":1,"maxReplicas":10}}"""));
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        }
        Assert.Equal(0, (await f.Puller.PullDueAsync(default)).Failed);

        var hour = Now.AddDays(-2);
        foreach (var (name, level) in new[] { ("svc-a", 100.0), ("svc-b", 200.0), ("svc-c", 300.0) })
        {
            var qps = (await f.Client.GetFromJsonAsync<JsonElement>($"/api/v1/resources/{name}")).GetProperty("sources").GetProperty("qps");
            Assert.Equal($"http_load{{service=\"{name}\"}}", qps.GetProperty("query").GetString());
            Assert.Equal("group", qps.GetProperty("origin").GetString());
            Assert.Equal(Now, qps.GetProperty("watermark").GetDateTimeOffset());
            await AssertHourlyMeansAsync(name, "qps", hour, hour.AddHours(3).AddMinutes(-1), t => SyntheticLoad.Load(t, level));
        }

        // Its own source wins over the group's for the same metric.
        var own = await f.Client.PutAsync("/api/v1/resources/svc-c", ApiFixture.Json("""
            {"kind":"service","group":"shop-b","loadMetric":"qps","policy":{"minReplicas":1,"maxReplicas":10},"sources":{"qps":"http_load{service=\"svc-a\"}"}}
            """));
        Assert.Equal(HttpStatusCode.OK, own.StatusCode);
        var svcC = (await own.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("sources").GetProperty("qps");
        Assert.Equal("resource", svcC.GetProperty("origin").GetString());
        Assert.Equal("http_load{service=\"svc-a\"}", svcC.GetProperty("query").GetString());
        // A changed query is backfilled anew: no watermark until then.
        Assert.False(svcC.TryGetProperty("watermark", out _));

        // The one resource record carries its own sources (not its group's templates, which are the group's).
        await using var db = Npgsql.NpgsqlDataSource.Create(f.ConnectionString);
        await using var conn = await db.OpenConnectionAsync();
        var c = await Forecaster.Api.Resources.ResourceStore.FindAsync(conn, "svc-c", default);
        var source = Assert.Single(c!.Sources);
        Assert.Equal(("qps", "http_load{service=\"svc-a\"}", ""), (source.Key, source.Value.Query, source.Value.Server));
        Assert.Empty((await Forecaster.Api.Resources.ResourceStore.FindAsync(conn, "svc-a", default))!.Sources);
    }

    [PrometheusFact]
    public async Task QueryReturningTwoSeriesOrNoneIsAPerSourceErrorAndStoresNothing()
    {
        f.Clock.Now = Now;
        var two = await f.Client.PutAsync("/api/v1/resources/dupe", ApiFixture.Json("""
            {"kind":"service","loadMetric":"qps","policy":{"minReplicas":1,"maxReplicas":10},"sources":{"qps":"dup","cpu_cores":"cpu{service=\"checkout\"}"}}
            """));
        Assert.Equal(HttpStatusCode.BadRequest, two.StatusCode);
        var errors = (await two.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("errors");
        var message = errors.GetProperty("sources.qps")[0].GetString()!;
        Assert.Contains("2 series", message);
        Assert.Contains("pod=\"a\"", message);
        Assert.Contains("pod=\"b\"", message);
        Assert.False(errors.TryGetProperty("sources.cpu_cores", out _));

        var none = await f.Client.PutAsync("/api/v1/resources/dupe", ApiFixture.Json("""
            {"kind":"service","loadMetric":"qps","policy":{"minReplicas":1,"maxReplicas":10},"sources":{"qps":"no_such_metric{job=\"x\"}"}}
            """));
        Assert.Equal(HttpStatusCode.BadRequest, none.StatusCode);
        Assert.Contains("no series", (await none.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("errors").GetProperty("sources.qps")[0].GetString());

        Assert.Equal(HttpStatusCode.NotFound, (await f.Client.GetAsync("/api/v1/resources/dupe")).StatusCode);
        await using var conn = new NpgsqlConnection(f.ConnectionString);
        Assert.Equal(0, await conn.ExecuteScalarAsync<long>("""
            SELECT (SELECT count(*) FROM resources WHERE name = 'dupe') + (SELECT count(*) FROM source_pulls p JOIN resources r ON r.id = p.resource_id WHERE r.name = 'dupe')
            """));
    }

    [PrometheusFact]
    public async Task PrometheusStoppedMidPullRecordsTheErrorKeepsServingAndResumesFromTheWatermark()
    {
        f.Clock.Now = Now;
        var put = await f.Client.PutAsync("/api/v1/resources/steady", ApiFixture.Json("""
            {"kind":"service","loadMetric":"qps","policy":{"minReplicas":2,"maxReplicas":10},"sources":{"qps":"steady{service=\"steady\"}"}}
            """));
        Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        await f.Puller.PullDueAsync(default);
        Assert.Equal(Now, (await SourceAsync("steady")).GetProperty("watermark").GetDateTimeOffset());

        f.Clock.Now = Now.AddHours(1);
        await f.Prometheus.StopAsync();
        try
        {
            var failed = await f.Puller.PullDueAsync(default);
            Assert.True(failed.Failed >= 1, $"{failed}");
            var state = await SourceAsync("steady");
            Assert.Contains("pull from default failed", state.GetProperty("lastError").GetString());
            Assert.Equal(Now, state.GetProperty("watermark").GetDateTimeOffset());
            Assert.Equal(1, state.GetProperty("failures").GetInt32());
            // Serving never depended on Prometheus.
            var answer = await f.Client.GetAsync("/api/v1/resources/steady/plan/current");
            Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        }
        finally
        {
            await f.Prometheus.StartAsync();
        }

        // Past the per-source backoff (one pull interval after the first failure).
        var end = Now.AddHours(1).AddMinutes(10);
        f.Clock.Now = end;
        await f.Puller.PullDueAsync(default);
        var after = await SourceAsync("steady");
        Assert.Equal(end, after.GetProperty("watermark").GetDateTimeOffset());
        Assert.Equal(JsonValueKind.Null, after.TryGetProperty("lastError", out var le) ? le.ValueKind : JsonValueKind.Null);

        // No gap and no duplicate: every minute from the backfill's start to the new watermark exactly once, with its value.
        await using var conn = new NpgsqlConnection(f.ConnectionString);
        var rows = (await conn.QueryAsync<(DateTime Ts, double Value)>("""
            SELECT sa.ts, sa.value FROM sample_points sa JOIN series s ON s.id = sa.series_id JOIN resources r ON r.id = s.resource_id
            WHERE r.name = 'steady' AND s.metric = 'qps' ORDER BY sa.ts
            """)).ToList();
        var start = Now.AddDays(-SourcesFixture.BackfillDays);
        Assert.Equal((int)((end - start) / Step) + 1, rows.Count);
        for (var i = 0; i < rows.Count; i++)
        {
            var t = start + i * Step;
            Assert.Equal(t.UtcDateTime, DateTime.SpecifyKind(rows[i].Ts, DateTimeKind.Utc));
            Assert.Equal(SyntheticLoad.Load(t.ToUnixTimeSeconds(), 50), rows[i].Value, 1e-9);
        }
    }

    [PrometheusFact]
    public async Task ASeriesWhoseRowsTheDatabaseRefusesStoresNothingAndLosesNoneOfTheOthersInItsBatch()
    {
        f.Clock.Now = Now;
        await using var conn = new NpgsqlConnection(f.ConnectionString);
        // A real database error on one series' rows only, mid-series (the poisoned hour is two days before the end).
        await conn.ExecuteAsync($$"""
            CREATE FUNCTION refuse_poisoned_sample() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF {{SyntheticLoad.PoisonedValue.ToString(System.Globalization.CultureInfo.InvariantCulture)}} = ANY(NEW.vals) OR NEW.value = {{SyntheticLoad.PoisonedValue.ToString(System.Globalization.CultureInfo.InvariantCulture)}} THEN
                    RAISE EXCEPTION 'poisoned sample in the hour of %', NEW.hour;
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_poisoned_sample BEFORE INSERT ON samples FOR EACH ROW EXECUTE FUNCTION refuse_poisoned_sample();
            """);
        var names = new[] { "batch-a", "batch-b", "batch-c", "batch-d", "batch-poisoned" };
        try
        {
            Assert.Equal(HttpStatusCode.OK, (await f.Client.PutAsync("/api/v1/groups/shop-batch/sources",
                ApiFixture.Json("""{"sources":{"qps":"batch_load{service=\"{{name}}\"}"}}"""))).StatusCode);
            foreach (var name in names)
            {
                Assert.Equal(HttpStatusCode.Created, (await f.Client.PutAsync($"/api/v1/resources/{name}",
                    ApiFixture.Json("""{"kind":"service","group":"shop-batch","loadMetric":"qps","policy":{"minReplicas":1,"maxReplicas":10}}"""))).StatusCode);
            }
            var round = await f.Puller.PullDueAsync(default);
            // Sources other tests left due may join the round; only the poisoned one fails.
            Assert.True(round.Claimed >= 5, $"{round}");
            Assert.Equal(1, round.Failed);
            Assert.Equal(round.Claimed - 1, round.Succeeded);

            // The refused series: its error recorded, no watermark, and not one of its rows kept (all or nothing).
            var poisoned = await SourceAsync("batch-poisoned");
            Assert.Contains("could not be stored", poisoned.GetProperty("lastError").GetString());
            Assert.Contains("poisoned sample", poisoned.GetProperty("lastError").GetString());
            Assert.False(poisoned.TryGetProperty("watermark", out _));
            Assert.Equal(0, await StoredAsync(conn, "batch-poisoned"));

            // The others: every minute of the window once, with its watermark.
            var minutes = (int)(TimeSpan.FromDays(SourcesFixture.BackfillDays) / Step) + 1;
            foreach (var (name, level) in new[] { ("batch-a", 60.0), ("batch-b", 70.0), ("batch-c", 80.0), ("batch-d", 90.0) })
            {
                Assert.Equal(Now, (await SourceAsync(name)).GetProperty("watermark").GetDateTimeOffset());
                Assert.Equal(minutes, await StoredAsync(conn, name));
                await AssertHourlyMeansAsync(name, "qps", Now.AddDays(-1), Now, t => SyntheticLoad.Load(t, level));
            }
        }
        finally
        {
            await conn.ExecuteAsync("DROP TRIGGER refuse_poisoned_sample ON samples; DROP FUNCTION refuse_poisoned_sample()");
        }

        // Once the database takes its rows, the next round after the backoff backfills it whole.
        f.Clock.Now = Now.AddMinutes(6);
        await f.Puller.PullDueAsync(default);
        var healed = await SourceAsync("batch-poisoned");
        Assert.Equal(f.Clock.Now, healed.GetProperty("watermark").GetDateTimeOffset());
        Assert.Equal((int)(TimeSpan.FromDays(SourcesFixture.BackfillDays) / Step) + 1, await StoredAsync(conn, "batch-poisoned"));
        await DeleteAsync(names);
    }

    [PrometheusFact]
    public async Task BackfillOverPushedSamplesOverwritesThemWithoutDuplicates()
    {
        f.Clock.Now = Now;
        Assert.Equal(HttpStatusCode.Created, (await f.Client.PutAsync("/api/v1/resources/pushed",
            ApiFixture.Json("""{"kind":"service","loadMetric":"qps","policy":{"minReplicas":1,"maxReplicas":10}}"""))).StatusCode);
        // Pushed first, with values Prometheus does not have: three minutes a day ago, and one between Prometheus' steps.
        var day = Now.AddDays(-1);
        var pushed = new[] { day, day.AddMinutes(1), day.AddMinutes(2), day.AddSeconds(30) };
        var body = string.Join(",", pushed.Select(t => $$"""{"metric":"qps","timestamp":"{{t:yyyy-MM-ddTHH:mm:ssZ}}","value":1}"""));
        Assert.Equal(HttpStatusCode.OK, (await f.Client.PostAsync("/api/v1/resources/pushed/samples", ApiFixture.Json($$"""{"samples":[{{body}}]}"""))).StatusCode);

        Assert.Equal(HttpStatusCode.OK, (await f.Client.PutAsync("/api/v1/resources/pushed", ApiFixture.Json("""
            {"kind":"service","loadMetric":"qps","policy":{"minReplicas":1,"maxReplicas":10},"sources":{"qps":"pushed{service=\"pushed\"}"}}
            """))).StatusCode);
        Assert.Equal(0, (await f.Puller.PullDueAsync(default)).Failed);
        Assert.Equal(Now, (await SourceAsync("pushed")).GetProperty("watermark").GetDateTimeOffset());

        // Prometheus' minutes replace the pushed values at the same times; the sample between its steps stays.
        await using var conn = new NpgsqlConnection(f.ConnectionString);
        Assert.Equal((int)(TimeSpan.FromDays(SourcesFixture.BackfillDays) / Step) + 2, await StoredAsync(conn, "pushed"));
        var values = (await conn.QueryAsync<(DateTime Ts, double Value)>("""
            SELECT sa.ts, sa.value FROM sample_points sa JOIN series s ON s.id = sa.series_id JOIN resources r ON r.id = s.resource_id
            WHERE r.name = 'pushed' AND sa.ts BETWEEN @from AND @to ORDER BY sa.ts
            """, new { from = day.UtcDateTime, to = day.AddMinutes(2).UtcDateTime })).ToList();
        Assert.Equal(4, values.Count);
        Assert.Equal(1, values.Single(v => v.Ts == day.AddSeconds(30).UtcDateTime).Value);
        foreach (var t in new[] { day, day.AddMinutes(1), day.AddMinutes(2) })
        {
            Assert.Equal(SyntheticLoad.Load(t.ToUnixTimeSeconds(), 120), values.Single(v => v.Ts == t.UtcDateTime).Value, 1e-9);
        }
        await DeleteAsync(["pushed"]);
    }

    /// <summary>Removes a test's resources, so that the sources of the tests that share this service stay as few as
    /// they were (the pull rounds of later tests claim every due source, and the circuit breaker counts their requests).</summary>
    async Task DeleteAsync(IEnumerable<string> names)
    {
        foreach (var name in names)
        {
            Assert.Equal(HttpStatusCode.NoContent, (await f.Client.DeleteAsync($"/api/v1/resources/{name}")).StatusCode);
        }
    }

    static Task<long> StoredAsync(NpgsqlConnection conn, string name) => conn.ExecuteScalarAsync<long>("""
        SELECT count(*) FROM sample_points sa JOIN series s ON s.id = sa.series_id JOIN resources r ON r.id = s.resource_id
        WHERE r.name = @name AND s.metric = 'qps'
        """, new { name });

    [PrometheusFact]
    public async Task NaNAndInfinitePointsAreGapsNotValues()
    {
        f.Clock.Now = Now;
        var put = await f.Client.PutAsync("/api/v1/resources/gappy", ApiFixture.Json("""
            {"kind":"service","loadMetric":"qps","policy":{"minReplicas":1,"maxReplicas":10},"sources":{"qps":"gappy{service=\"gappy\"}"}}
            """));
        Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        await f.Puller.PullDueAsync(default);

        var nan = DateTimeOffset.FromUnixTimeSeconds(SyntheticLoad.NaNHour);
        var view = await f.Client.GetFromJsonAsync<JsonElement>(
            $"/api/v1/resources/gappy/samples?metric=qps&from={nan.AddHours(-1):yyyy-MM-ddTHH:mm:ssZ}&to={nan.AddHours(3):yyyy-MM-ddTHH:mm:ssZ}&step=1h");
        var hours = view.GetProperty("buckets").EnumerateArray().Select(b => b.GetProperty("timestamp").GetDateTimeOffset()).ToList();
        // The hour before and the hour after hold all their minutes; the NaN hour and the ±Inf hour hold none.
        Assert.Equal([nan.AddHours(-1), nan.AddHours(2)], hours);
        await AssertHourlyMeansAsync("gappy", "qps", nan.AddHours(2), nan.AddHours(3).AddMinutes(-1), t => SyntheticLoad.Load(t, 30));
    }

    [PrometheusFact]
    public async Task SourcesTestShowsWhatEachQueryReturnsOverTheLastHours()
    {
        f.Clock.Now = Now;
        var put = await f.Client.PutAsync("/api/v1/resources/probe", ApiFixture.Json("""
            {"kind":"service","loadMetric":"qps","policy":{"minReplicas":1,"maxReplicas":10},"sources":{"qps":"load{service=\"checkout\"}"}}
            """));
        Assert.Equal(HttpStatusCode.Created, put.StatusCode);

        var tested = await (await f.Client.PostAsync("/api/v1/resources/probe/sources/test?hours=3", null)).Content.ReadFromJsonAsync<JsonElement>();
        var qps = tested.GetProperty("sources").GetProperty("qps");
        Assert.True(qps.GetProperty("ok").GetBoolean());
        var series = Assert.Single(qps.GetProperty("series").EnumerateArray());
        Assert.Equal(181, series.GetProperty("points").GetInt32());
        var firstHour = series.GetProperty("hourly")[0];
        Assert.Equal(Now.AddHours(-3), firstHour.GetProperty("hour").GetDateTimeOffset());
        Assert.Equal(Expected(Now.AddHours(-3), Now.AddHours(-2).AddMinutes(-1), t => SyntheticLoad.Load(t, 200)), firstHour.GetProperty("mean").GetDouble(), 1e-9);

        // A query in the body is tried without being stored.
        var dup = await (await f.Client.PostAsync("/api/v1/resources/probe/sources/test", ApiFixture.Json("""{"sources":{"qps":"dup"}}""")))
            .Content.ReadFromJsonAsync<JsonElement>();
        Assert.False(dup.GetProperty("sources").GetProperty("qps").GetProperty("ok").GetBoolean());
        Assert.Equal(2, dup.GetProperty("sources").GetProperty("qps").GetProperty("series").GetArrayLength());

        var (exit, stdout, stderr) = await ForecasterProcess.RunAsync(new Dictionary<string, string>
        {
            ["FORECASTER_DB"] = f.ConnectionString,
            ["Forecaster__Prometheus__Url"] = f.Prometheus.Url,
        }, "sources", "test", "probe", "--hours", "2", "--at", Now.ToString("O"));
        Assert.True(exit == 0, stderr);
        Assert.Contains("qps (default): load{service=\"checkout\"}", stdout);
        Assert.Contains("ok: one series", stdout);
        Assert.Contains("points=121", stdout);
    }

    [PrometheusFact]
    public async Task ASecondPrometheusScrapesForecastersMetrics()
    {
        var target = new Uri(f.BaseUrl).Authority;
        await using var scraper = await PrometheusServer.StartAsync(new Dictionary<string, Func<long, double>>(), Now, Now, Step,
            $"scrape_configs:\n  - job_name: forecaster\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['{target}']\n");
        using var http = new HttpClient();
        var names = new HashSet<string>();
        for (var i = 0; i < 150 && !names.Contains("forecaster_plan_cache_resources"); i++)
        {
            await Task.Delay(200);
            var answer = await http.GetFromJsonAsync<JsonElement>($"{scraper.Url}/api/v1/query?query=" + Uri.EscapeDataString("{__name__=~\"forecaster_.+\"}"));
            names = [.. answer.GetProperty("data").GetProperty("result").EnumerateArray().Select(r => r.GetProperty("metric").GetProperty("__name__").GetString()!)];
        }
        Assert.Contains("forecaster_plan_cache_resources", names);
        Assert.Contains("forecaster_database_unreachable_seconds", names);
        Assert.Contains("forecaster_series_trained_total", names);
        Assert.Contains("forecaster_source_pull_lag_seconds", names);
    }

    async Task<JsonElement> SourceAsync(string name) =>
        (await f.Client.GetFromJsonAsync<JsonElement>($"/api/v1/resources/{name}")).GetProperty("sources").GetProperty("qps");

    /// <summary>The mean of the generating function over the minutes in [from, to].</summary>
    static double Expected(DateTimeOffset from, DateTimeOffset to, Func<long, double> fn)
    {
        double sum = 0;
        var n = 0;
        for (var t = from; t <= to; t += Step)
        {
            sum += fn(t.ToUnixTimeSeconds());
            n++;
        }
        return sum / n;
    }

    /// <summary>The stored series, averaged per hour by the samples API, against the generating function's hourly means.</summary>
    async Task AssertHourlyMeansAsync(string name, string metric, DateTimeOffset from, DateTimeOffset to, Func<long, double> fn)
    {
        var view = await f.Client.GetFromJsonAsync<JsonElement>(
            $"/api/v1/resources/{name}/samples?metric={metric}&from={from:yyyy-MM-ddTHH:mm:ssZ}&to={to.AddSeconds(1):yyyy-MM-ddTHH:mm:ssZ}&step=1h");
        var buckets = view.GetProperty("buckets").EnumerateArray().ToList();
        var hours = (int)Math.Ceiling((to.AddSeconds(1) - from).TotalHours);
        Assert.Equal(hours, buckets.Count);
        foreach (var b in buckets)
        {
            var hour = b.GetProperty("timestamp").GetDateTimeOffset();
            var last = hour.AddHours(1).AddMinutes(-1) < to ? hour.AddHours(1).AddMinutes(-1) : to;
            Assert.Equal((int)((last - hour) / Step) + 1, b.GetProperty("count").GetInt32());
            Assert.Equal(Expected(hour, last, fn), b.GetProperty("mean").GetDouble(), 1e-9);
        }
    }
}
