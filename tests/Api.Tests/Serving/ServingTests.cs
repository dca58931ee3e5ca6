using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Forecaster.Api.Plans;
using Forecaster.Api.Serving;
using Forecaster.Api.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using YamlDotNet.RepresentationModel;

namespace Forecaster.Api.Tests.Serving;

/// <summary>
/// The plan endpoints on a real PostgreSQL with the clock at 2026-11-21T12:00Z (lead 10 minutes): each source, step
/// boundaries, batch against single, ETag and max-age, KEDA. The cache is synced explicitly before asserting, rather than
/// waiting for the listener, so the tests do not depend on notification timing.
/// </summary>
public sealed class ServingTests(ApiFixture api) : IClassFixture<ApiFixture>
{
    const string Sized = "\"capacityPerReplica\":100,\"targetUtilization\":0.5,\"forecastBound\":\"point\",\"scaleDownDelayHours\":0,\"tolerance\":0";

    PlanCache Cache => api.Factory.Services.GetRequiredService<PlanCache>();

    /// <summary>What the listener does on its own within a minute (sync) and ten (history): samples send no notification.</summary>
    async Task SyncAsync()
    {
        await Cache.SyncAsync(default);
        await Cache.RefreshHistoryAsync(default);
    }

    async Task PutAsync(string name, string policy, string group = "serve", string kind = "service")
    {
        var metric = kind == "job" ? "records_in_rate" : "qps";
        var response = await api.Writer().PutAsync($"/api/v1/resources/{name}",
            ApiFixture.Json($$"""{"kind":"{{kind}}","group":"{{group}}","loadMetric":"{{metric}}","policy":""" + policy + "}"));
        response.EnsureSuccessStatusCode();
    }

    async Task SamplesAsync(string name, params (string Timestamp, double Value)[] samples)
    {
        var body = JsonSerializer.Serialize(new { samples = samples.Select(s => new { metric = "qps", timestamp = s.Timestamp, value = s.Value }) });
        (await api.Writer().PostAsync($"/api/v1/resources/{name}/samples", ApiFixture.Json(body))).EnsureSuccessStatusCode();
    }

    /// <summary>An active model whose 48-hour forecast is 200 for the first two hours and 500 after, then a plan from it.</summary>
    async Task ForecastPlanAsync(string name, string metric = "qps")
    {
        await using (var conn = new NpgsqlConnection(api.ConnectionString))
        {
            await conn.ExecuteAsync("""
                WITH mv AS (
                    INSERT INTO model_versions (resource_id, metric, status, trained_at, beats_seasonal_naive)
                    SELECT id, @metric, 'active', @now, true FROM resources WHERE name = @name RETURNING id, resource_id)
                INSERT INTO series_forecasts (resource_id, metric, model_version_id, generated_at, start, step, forecast, lower, upper)
                SELECT mv.resource_id, @metric, mv.id, @now, @now, interval '1 hour',
                       array_agg(v ORDER BY k), array_agg(v * 0.8 ORDER BY k), array_agg(v * 1.2 ORDER BY k)
                FROM mv, generate_series(0, 47) AS k, LATERAL (SELECT CASE WHEN k < 2 THEN 200.0 ELSE 500.0 END AS v) x
                GROUP BY mv.resource_id, mv.id
                """, new { name, metric, now = ApiFixture.Now });
        }
        var planner = api.Factory.Services.GetRequiredService<PlanningPipeline>();
        await planner.PlanAsync(new PlanScope(PlanTrigger.Cli, [name]), null, default);
        await SyncAsync();
    }

    async Task<JsonElement> CurrentAsync(string name, string? at = null)
    {
        var response = await api.Reader().GetAsync($"/api/v1/resources/{name}/plan/current" + (at is null ? "" : $"?at={at}"));
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    [Fact]
    public async Task APlannedResourceIsServedFromItsForecastWithTheNextDifferingStep()
    {
        await PutAsync("svc-forecast", $"{{\"minReplicas\":1,\"maxReplicas\":50,{Sized}}}");
        await ForecastPlanAsync("svc-forecast");
        var version = await api.ScalarAsync<long>("SELECT p.id FROM plan_versions p JOIN resources r ON r.id = p.resource_id JOIN plan_current c ON c.version_id = p.id WHERE r.name = 'svc-forecast'");

        var now = await CurrentAsync("svc-forecast");
        Assert.Equal(4, now.GetProperty("replicas").GetInt32());
        Assert.False(now.TryGetProperty("parallelism", out _));
        Assert.Equal("forecast", now.GetProperty("source").GetString());
        Assert.Equal(version, now.GetProperty("planVersion").GetInt64());
        Assert.False(now.GetProperty("stale").GetBoolean());
        Assert.False(now.GetProperty("forecastOnly").GetBoolean());
        Assert.Equal(ApiFixture.Now.AddMinutes(-10), now.GetProperty("validFrom").GetDateTimeOffset());
        Assert.Equal(ApiFixture.Now.AddMinutes(50), now.GetProperty("validUntil").GetDateTimeOffset());
        Assert.Contains("forecast point 200", now.GetProperty("explanation").GetProperty("sentence").GetString(), StringComparison.Ordinal);
        // 200 / (0.5 × 100) = 4 for 12:00 and 13:00, then 500 → 10: the next step that differs starts at 13:50 (lead 10 min).
        var next = now.GetProperty("next");
        Assert.Equal(10, next.GetProperty("replicas").GetInt32());
        Assert.Equal(ApiFixture.Now.AddMinutes(110), next.GetProperty("validFrom").GetDateTimeOffset());
    }

    [Fact]
    public async Task StepBoundariesFollowTheLead()
    {
        await PutAsync("svc-bounds", $"{{\"minReplicas\":1,\"maxReplicas\":50,{Sized}}}");
        await ForecastPlanAsync("svc-bounds");

        var before = await CurrentAsync("svc-bounds", "2026-11-21T12:49:59Z");
        Assert.Equal(ApiFixture.Now, before.GetProperty("hour").GetDateTimeOffset());
        var second = await CurrentAsync("svc-bounds", "2026-11-21T12:50:00Z");
        Assert.Equal(ApiFixture.Now.AddHours(1), second.GetProperty("hour").GetDateTimeOffset());
        Assert.Equal(4, second.GetProperty("replicas").GetInt32());
        var beforeRise = await CurrentAsync("svc-bounds", "2026-11-21T13:49:59Z");
        Assert.Equal(4, beforeRise.GetProperty("replicas").GetInt32());
        // The rise for 14:00 is in force from 13:50, ten minutes ahead of the load.
        var risen = await CurrentAsync("svc-bounds", "2026-11-21T13:50:00Z");
        Assert.Equal(10, risen.GetProperty("replicas").GetInt32());
        Assert.Equal(ApiFixture.Now.AddHours(2), risen.GetProperty("hour").GetDateTimeOffset());

        var schedule = await api.Reader().GetFromJsonAsync<JsonElement>("/api/v1/resources/svc-bounds/plan?from=2026-11-21T12:00:00Z&to=2026-11-21T15:00:00Z");
        Assert.Equal([4, 4, 10, 10], schedule.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("replicas").GetInt32()));
        Assert.Equal(ApiFixture.Now.AddMinutes(-10), schedule.GetProperty("steps")[0].GetProperty("validFrom").GetDateTimeOffset());
    }

    [Fact]
    public async Task WithoutAPlanTheAnswerComesFromYesterdaysSameHourThenLastWeeksThenStatic()
    {
        // No minReplicas and no history when created: nothing can be planned, so only the serve-time fallback answers.
        await PutAsync("svc-yesterday", $"{{\"maxReplicas\":50,{Sized}}}");
        await PutAsync("svc-lastweek", $"{{\"maxReplicas\":50,{Sized}}}");
        await SamplesAsync("svc-yesterday", ("2026-11-20T12:00:00Z", 280), ("2026-11-20T12:30:00Z", 320), ("2026-11-14T12:00:00Z", 900));
        await SamplesAsync("svc-lastweek", ("2026-11-14T12:00:00Z", 120));
        // Static: a policy with minReplicas is planned (fallback:static); its plan then runs out (here: is withdrawn).
        await PutAsync("svc-static", $"{{\"minReplicas\":3,\"maxReplicas\":50,{Sized}}}");
        await api.ScalarAsync<int>("DELETE FROM plan_current WHERE resource_id = (SELECT id FROM resources WHERE name = 'svc-static')");
        await SyncAsync();

        var yesterday = await CurrentAsync("svc-yesterday");
        Assert.Equal("fallback:yesterday-same-hour", yesterday.GetProperty("source").GetString());
        Assert.Equal(6, yesterday.GetProperty("replicas").GetInt32());
        Assert.Equal(JsonValueKind.Null, yesterday.GetProperty("planVersion").ValueKind);
        Assert.Contains("no plan covers this instant", yesterday.GetProperty("explanation").GetProperty("sentence").GetString(), StringComparison.Ordinal);

        var lastWeek = await CurrentAsync("svc-lastweek");
        Assert.Equal("fallback:last-week-same-hour", lastWeek.GetProperty("source").GetString());
        Assert.Equal(3, lastWeek.GetProperty("replicas").GetInt32());

        var fixedCount = await CurrentAsync("svc-static");
        Assert.Equal("fallback:static", fixedCount.GetProperty("source").GetString());
        Assert.Equal(3, fixedCount.GetProperty("replicas").GetInt32());
        Assert.Equal(JsonValueKind.Null, fixedCount.GetProperty("planVersion").ValueKind);
    }

    [Fact]
    public async Task NoHistoryAndNoBoundsIs404SayingWhatIsMissing()
    {
        await PutAsync("svc-nothing", $"{{\"maxReplicas\":50,{Sized}}}");
        await SyncAsync();
        var response = await api.Reader().GetAsync("/api/v1/resources/svc-nothing/plan/current");
        var problem = await SamplesApiTests.AssertProblem(response, HttpStatusCode.NotFound, null, "minReplicas");
        Assert.Contains("no observed load", problem.GetProperty("missing")[0].GetString(), StringComparison.Ordinal);
        // KEDA gets a neutral 0 instead (the other triggers decide): see ExecutorsApiTests.
        Assert.Equal(HttpStatusCode.OK, (await api.Reader().GetAsync("/api/v1/resources/svc-nothing/keda")).StatusCode);
        await SamplesApiTests.AssertProblem(await api.Reader().GetAsync("/api/v1/resources/no-such/plan/current"), HttpStatusCode.NotFound, null, "No resource");
    }

    [Fact]
    public async Task TheBatchAnswerHasExactlyTheSingleAnswers()
    {
        await PutAsync("batch-a", $"{{\"minReplicas\":2,\"maxReplicas\":50,{Sized}}}", group: "batch");
        await PutAsync("batch-b", $"{{\"minReplicas\":1,\"maxReplicas\":50,{Sized}}}", group: "batch");
        await ForecastPlanAsync("batch-b");
        await PutAsync("batch-job", "{\"minReplicas\":4,\"maxParallelism\":16,\"capacityPerSubtask\":100}", group: "batch", kind: "job");
        await PutAsync("batch-missing", $"{{\"maxReplicas\":50,{Sized}}}", group: "batch");
        await SyncAsync();

        var page = await api.Reader().GetFromJsonAsync<JsonElement>("/api/v1/plans/current?group=batch");
        var items = page.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal(["batch-a", "batch-b", "batch-job", "batch-missing"], items.Select(i => i.GetProperty("resource").GetString()));
        Assert.Equal(4, page.GetProperty("count").GetInt32());
        foreach (var item in items.Take(3))
        {
            var name = item.GetProperty("resource").GetString()!;
            Assert.Equal((await CurrentAsync(name)).GetRawText(), item.GetRawText());
        }
        Assert.Equal(4, items[2].GetProperty("parallelism").GetInt32());
        Assert.True(items[3].GetProperty("missing").GetArrayLength() > 0);

        var jobs = await api.Reader().GetFromJsonAsync<JsonElement>("/api/v1/plans/current?group=batch&kind=job");
        Assert.Equal(["batch-job"], jobs.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("resource").GetString()));
        var first = await api.Reader().GetFromJsonAsync<JsonElement>("/api/v1/plans/current?group=batch&limit=2");
        Assert.Equal("batch-b", first.GetProperty("next").GetString());
        var rest = await api.Reader().GetFromJsonAsync<JsonElement>("/api/v1/plans/current?group=batch&limit=2&after=batch-b");
        Assert.Equal(["batch-job", "batch-missing"], rest.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("resource").GetString()));
        Assert.Equal(JsonValueKind.Null, rest.GetProperty("next").ValueKind);
        await SamplesApiTests.AssertProblem(await api.Reader().GetAsync("/api/v1/plans/current?limit=0"), HttpStatusCode.BadRequest, "limit", "between");
    }

    [Theory]
    [InlineData("/api/v1/resources/etag-svc/plan/current")]
    [InlineData("/api/v1/plans/current?group=etag")]
    [InlineData("/api/v1/resources/etag-svc/plan")]
    public async Task EveryPlanAnswerHasAnETagAnsweredWith304AndAMaxAgeUpToTheStepBoundary(string path)
    {
        await PutAsync("etag-svc", $"{{\"minReplicas\":2,\"maxReplicas\":50,{Sized}}}", group: "etag");
        await SyncAsync();
        var client = api.Reader();
        var first = await client.GetAsync(path);
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        var etag = first.Headers.ETag;
        Assert.NotNull(etag);
        // The step in force ends at 12:50, 50 minutes after the (fixed) clock.
        Assert.Equal(TimeSpan.FromMinutes(50), first.Headers.CacheControl?.MaxAge);

        var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.IfNoneMatch.Add(etag);
        var again = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.NotModified, again.StatusCode);
        Assert.Equal(etag, again.Headers.ETag);

        var other = new HttpRequestMessage(HttpMethod.Get, path);
        other.Headers.IfNoneMatch.Add(new EntityTagHeaderValue("\"something-else\""));
        Assert.Equal(HttpStatusCode.OK, (await client.SendAsync(other)).StatusCode);
    }

    [Fact]
    public async Task TheKedaDocumentIsThePlansReplicas()
    {
        await PutAsync("keda-svc", $"{{\"minReplicas\":1,\"maxReplicas\":50,{Sized}}}");
        await ForecastPlanAsync("keda-svc");
        foreach (var at in new[] { ApiFixture.Now, ApiFixture.Now.AddMinutes(110) })
        {
            api.Clock.Now = at;
            try
            {
                var keda = await api.Reader().GetStringAsync("/api/v1/resources/keda-svc/keda");
                var current = await CurrentAsync("keda-svc");
                Assert.Equal($$"""{"desiredReplicas":{{current.GetProperty("replicas").GetInt32()}}}""", keda);
            }
            finally
            {
                api.Clock.Now = ApiFixture.Now;
            }
        }
        Assert.Equal("""{"desiredReplicas":4}""", await api.Reader().GetStringAsync("/api/v1/resources/keda-svc/keda"));
    }

    [Fact]
    public async Task APublishedPlanReachesTheCacheThroughNotify()
    {
        // No explicit sync: the listener reloads the resource when the PUT's plan is published.
        await PutAsync("svc-notified", $"{{\"minReplicas\":7,\"maxReplicas\":50,{Sized}}}");
        var deadline = TimeProvider.System.GetUtcNow().AddSeconds(30);
        HttpResponseMessage response;
        while ((response = await api.Reader().GetAsync("/api/v1/resources/svc-notified/plan/current")).StatusCode != HttpStatusCode.OK
               || !(await response.Content.ReadAsStringAsync()).Contains("\"replicas\":7", StringComparison.Ordinal))
        {
            Assert.True(TimeProvider.System.GetUtcNow() < deadline, "the published plan never reached the cache");
            await Task.Delay(50);
        }
        Assert.Equal(HttpStatusCode.NoContent, (await api.Writer().DeleteAsync("/api/v1/resources/svc-notified")).StatusCode);
        while ((await api.Reader().GetAsync("/api/v1/resources/svc-notified/plan/current")).StatusCode != HttpStatusCode.NotFound)
        {
            Assert.True(TimeProvider.System.GetUtcNow() < deadline, "the deleted resource stayed in the cache");
            await Task.Delay(50);
        }
    }
}

/// <summary>With <c>Forecaster:RequireApiKeyForReads</c>, the plan endpoints need a key like every read.</summary>
public sealed class ServingReadKeyTests(ServingReadKeyTests.KeyedReads api) : IClassFixture<ServingReadKeyTests.KeyedReads>
{
    public sealed class KeyedReads : ApiFixture
    {
        protected override IEnumerable<KeyValuePair<string, string?>> Settings => [new("Forecaster:RequireApiKeyForReads", "true")];
    }

    [Fact]
    public async Task PlanReadsNeedAKeyWhenConfigured()
    {
        var put = await api.Writer().PutAsync("/api/v1/resources/keyed", ApiFixture.Json("""{"kind":"service","loadMetric":"qps","policy":{"minReplicas":2}}"""));
        put.EnsureSuccessStatusCode();
        await api.Factory.Services.GetRequiredService<PlanCache>().SyncAsync(default);
        foreach (var path in new[] { "/api/v1/resources/keyed/plan/current", "/api/v1/plans/current", "/api/v1/resources/keyed/plan", "/api/v1/resources/keyed/keda" })
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await api.Reader().GetAsync(path)).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await api.Writer().GetAsync(path)).StatusCode);
        }
    }

    /// <summary>The ScaledObject comes with its TriggerAuthentication when reads need a key.</summary>
    [Fact]
    public async Task ReadsThatNeedAKeyGetATriggerAuthentication()
    {
        var put = await api.Writer().PutAsync("/api/v1/resources/keyed-so", ApiFixture.Json("""{"kind":"service","loadMetric":"qps","policy":{"minReplicas":2,"maxReplicas":9}}"""));
        put.EnsureSuccessStatusCode();
        Assert.Equal(HttpStatusCode.Unauthorized, (await api.Reader().GetAsync("/api/v1/resources/keyed-so/scaledobject")).StatusCode);
        var yaml = await api.Writer().GetStringAsync("/api/v1/resources/keyed-so/scaledobject");
        var docs = new YamlStream();
        docs.Load(new StringReader(yaml));
        var auth = (YamlMappingNode)docs.Documents[0].RootNode;
        Assert.Equal("TriggerAuthentication", ((YamlScalarNode)auth["kind"]).Value);
        var secret = (YamlMappingNode)((YamlSequenceNode)((YamlMappingNode)auth["spec"])["secretTargetRef"])[0];
        Assert.Equal(("apiKey", "forecaster-read-key", "apiKey"), (((YamlScalarNode)secret["parameter"]).Value, ((YamlScalarNode)secret["name"]).Value, ((YamlScalarNode)secret["key"]).Value));
        var trigger = (YamlMappingNode)((YamlSequenceNode)((YamlMappingNode)((YamlMappingNode)docs.Documents[1].RootNode)["spec"])["triggers"])[0];
        var metadata = (YamlMappingNode)trigger["metadata"];
        Assert.Equal(("apiKey", "X-Api-Key"), (((YamlScalarNode)metadata["authMode"]).Value, ((YamlScalarNode)metadata["keyParamName"]).Value));
        Assert.Equal("keyed-so", ((YamlScalarNode)((YamlMappingNode)trigger["authenticationRef"])["name"]).Value);
    }
}
