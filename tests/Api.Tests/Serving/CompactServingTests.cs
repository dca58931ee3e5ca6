using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Forecaster.Api.Plans;
using Forecaster.Api.Serving;
using Forecaster.Api.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Xunit.Abstractions;

namespace Forecaster.Api.Tests.Serving;

/// <summary>
/// Issue 16: plans are held and stored packed. What is served is exactly what the stored plan version says (every field of
/// the step in force, its explanation and sentence, the next differing step), a version stored as JSON before migration
/// 0010 is served the same, a second instance on the same database (also a restart) serves the same answers after its
/// cold start, and a plan published through one instance is served by the other.
/// </summary>
public sealed class CompactServingTests(CompactServingTests.Fixture api, ITestOutputHelper output) : IClassFixture<CompactServingTests.Fixture>
{
    /// <summary>A fleet of varied plans (forecast, window, clamps, job, dry run, static fallback, stale), planned once.</summary>
    public sealed class Fixture : ApiFixture
    {
        public static readonly string[] Names = ["c-forecast", "c-window", "c-clamped", "c-dryrun", "c-static", "c-job", "c-stale"];

        public override async Task InitializeAsync()
        {
            await base.InitializeAsync();
            const string sized = "\"capacityPerReplica\":100,\"targetUtilization\":0.5,\"forecastBound\":\"point\"";
            await PutAsync("c-forecast", $"{{\"minReplicas\":1,\"maxReplicas\":50,{sized},\"scaleDownDelayHours\":0,\"tolerance\":0}}");
            await PutAsync("c-window", $"{{\"minReplicas\":1,\"maxReplicas\":50,{sized},\"windows\":[{{\"days\":\"Mon-Sun\",\"from\":\"13:00\",\"to\":\"20:00\",\"timeZone\":\"Asia/Shanghai\",\"minReplicas\":12}}]}}");
            await PutAsync("c-clamped", $"{{\"minReplicas\":2,\"maxReplicas\":7,{sized},\"maxStepUp\":2,\"maxStepDown\":1,\"scaleDownDelayHours\":3}}");
            await PutAsync("c-dryrun", $"{{\"minReplicas\":1,\"maxReplicas\":50,{sized},\"mode\":\"forecastOnly\"}}");
            await PutAsync("c-static", $"{{\"minReplicas\":3,\"maxReplicas\":50,{sized}}}");
            await PutAsync("c-job", "{\"minReplicas\":2,\"maxParallelism\":64,\"capacityPerSubtask\":40}", kind: "job");
            await PutAsync("c-stale", $"{{\"minReplicas\":1,\"maxReplicas\":50,{sized}}}");
            foreach (var name in Names.Where(n => n != "c-static"))
            {
                await ForecastAsync(name, name == "c-job" ? "records_in_rate" : "qps");
            }
            var planner = Factory.Services.GetRequiredService<PlanningPipeline>();
            await planner.PlanAsync(new PlanScope(PlanTrigger.Cli, [.. Names.Where(n => n != "c-stale")]), null, default);
            // A plan generated 40 hours ago (beyond PlanStaleAfterHours = 30) whose steps still cover now is served stale.
            Clock.Now = Now.AddHours(-40);
            await planner.PlanAsync(new PlanScope(PlanTrigger.Cli, ["c-stale"]), null, default);
            Clock.Now = Now;
            await Factory.Services.GetRequiredService<PlanCache>().SyncAsync(default);
        }

        async Task PutAsync(string name, string policy, string kind = "service")
        {
            var metric = kind == "job" ? "records_in_rate" : "qps";
            var response = await Writer().PutAsync($"/api/v1/resources/{name}",
                Json($$"""{"kind":"{{kind}}","group":"compact","loadMetric":"{{metric}}","policy":""" + policy + "}"));
            response.EnsureSuccessStatusCode();
        }

        /// <summary>A 96-hour forecast from 40 hours ago, rising and falling, so plans have steps that differ and clamp.</summary>
        async Task ForecastAsync(string name, string metric)
        {
            await using var conn = new NpgsqlConnection(ConnectionString);
            await conn.ExecuteAsync("""
                WITH mv AS (
                    INSERT INTO model_versions (resource_id, metric, status, trained_at, beats_seasonal_naive)
                    SELECT id, @metric, 'active', @from, true FROM resources WHERE name = @name RETURNING id, resource_id)
                INSERT INTO series_forecasts (resource_id, metric, model_version_id, generated_at, start, step, forecast, lower, upper)
                SELECT mv.resource_id, @metric, mv.id, @from, @from, interval '1 hour',
                       array_agg(v ORDER BY k), array_agg(v * 0.8 ORDER BY k), array_agg(v * 1.25 ORDER BY k)
                FROM mv, generate_series(0, 95) AS k, LATERAL (SELECT 150 + 140 * sin(k / 3.0) + (k % 5) * 7.3 AS v) x
                GROUP BY mv.resource_id, mv.id
                """, new { name, metric, from = Now.AddHours(-40) });
        }
    }

    static readonly string[] Instants = ["2026-11-21T12:00:00Z", "2026-11-21T12:55:00Z", "2026-11-21T15:20:00Z", "2026-11-22T03:00:00Z", "2026-11-23T09:30:00Z"];

    /// <summary>Every answer the serving endpoints give for the fleet, by request path: the bytes as served.</summary>
    static async Task<Dictionary<string, string>> AnswersAsync(HttpClient client)
    {
        var answers = new Dictionary<string, string>();
        foreach (var name in Fixture.Names)
        {
            var paths = Instants.Select(at => $"/api/v1/resources/{name}/plan/current?at={at}")
                .Append($"/api/v1/resources/{name}/plan/current")
                .Append($"/api/v1/resources/{name}/plan?from=2026-11-21T11:00:00Z&to=2026-11-23T12:00:00Z")
                .Append($"/api/v1/resources/{name}/keda");
            foreach (var path in paths)
            {
                var response = await client.GetAsync(path);
                answers[path] = $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}";
            }
        }
        var batch = await client.GetAsync("/api/v1/plans/current?group=compact");
        answers["batch"] = await batch.Content.ReadAsStringAsync();
        return answers;
    }

    static string? Raw(JsonElement e, string property) => e.TryGetProperty(property, out var v) ? v.GetRawText() : null;

    [Fact]
    public async Task TheStepInForceIsServedExactlyAsTheStoredPlanVersionSaysIt()
    {
        using var client = api.Reader();
        var sources = new HashSet<string>();
        foreach (var name in Fixture.Names)
        {
            var versions = await client.GetFromJsonAsync<JsonElement>($"/api/v1/resources/{name}/plans");
            var id = versions.GetProperty("items").EnumerateArray().Single(v => v.GetProperty("status").GetString() == "active").GetProperty("id").GetInt64();
            var steps = (await client.GetFromJsonAsync<JsonElement>($"/api/v1/resources/{name}/plans/{id}")).GetProperty("steps").EnumerateArray().ToList();
            Assert.Equal(48, steps.Count);
            var count = name == "c-job" ? "parallelism" : "replicas";
            // Every step, at its start and in its middle, and instants the plan does not cover.
            var instants = steps.SelectMany(s => new[] { s.GetProperty("start").GetDateTimeOffset(), s.GetProperty("start").GetDateTimeOffset().AddMinutes(30) })
                .Concat(Instants.Select(DateTimeOffset.Parse));
            foreach (var at in instants)
            {
                var k = steps.FindIndex(s => s.GetProperty("start").GetDateTimeOffset() <= at && at < s.GetProperty("end").GetDateTimeOffset());
                var response = await client.GetAsync($"/api/v1/resources/{name}/plan/current?at={at:yyyy-MM-ddTHH:mm:ssZ}");
                if (k < 0 || steps[k].GetProperty("end").GetDateTimeOffset() <= ApiFixture.Now.AddHours(-1))
                {
                    // Beyond the plan, or in a step over for more than an hour (not held), the fallback answers: not the plan's business.
                    continue;
                }
                var served = await response.Content.ReadFromJsonAsync<JsonElement>();
                var step = steps[k];
                Assert.Equal(id, served.GetProperty("planVersion").GetInt64());
                Assert.Equal(step.GetProperty(count).GetInt32(), served.GetProperty(count).GetInt32());
                foreach (var (stored, view) in new[] { ("cpu", "cpu"), ("memory", "memory"), ("start", "validFrom"), ("end", "validUntil"), ("hour", "hour"), ("source", "source"), ("capacityShortfall", "capacityShortfall") })
                {
                    Assert.Equal(Raw(step, stored), Raw(served, view));
                }
                // The explanation, sentence included, is the stored one (the two endpoints escape `>` differently, so compared as JSON).
                Assert.True(JsonElement.DeepEquals(step.GetProperty("explanation"), served.GetProperty("explanation")),
                    $"{name} at {at:O}: {served.GetProperty("explanation")} is not {step.GetProperty("explanation")}");
                Assert.Equal(step.GetProperty("explanation").GetProperty("sentence").GetString(), served.GetProperty("explanation").GetProperty("sentence").GetString());
                Assert.Equal(name == "c-stale", served.GetProperty("stale").GetBoolean());
                Assert.Equal(name == "c-dryrun", served.GetProperty("forecastOnly").GetBoolean());
                var next = steps.Skip(k + 1).FirstOrDefault(s => s.GetProperty(count).GetInt32() != step.GetProperty(count).GetInt32()
                    || Raw(s, "cpu") != Raw(step, "cpu") || Raw(s, "memory") != Raw(step, "memory"));
                if (next.ValueKind == JsonValueKind.Undefined)
                {
                    Assert.Equal(JsonValueKind.Null, served.GetProperty("next").ValueKind);
                }
                else
                {
                    Assert.Equal(next.GetProperty(count).GetInt32(), served.GetProperty("next").GetProperty(count).GetInt32());
                    Assert.Equal(next.GetProperty("start").GetDateTimeOffset(), served.GetProperty("next").GetProperty("validFrom").GetDateTimeOffset());
                    Assert.Equal(next.GetProperty("end").GetDateTimeOffset(), served.GetProperty("next").GetProperty("validUntil").GetDateTimeOffset());
                }
                sources.Add(served.GetProperty("source").GetString()!);
                var sentence = served.GetProperty("explanation").GetProperty("sentence").GetString()!;
                if (name == "c-window" && sentence.Contains("window", StringComparison.Ordinal))
                {
                    sources.Add("window");
                }
                if (sentence.Contains("scaleDownDelay", StringComparison.Ordinal) || sentence.Contains("maxStep", StringComparison.Ordinal))
                {
                    sources.Add("clamp");
                }
            }
        }
        Assert.True(new[] { "forecast", "fallback:static", "window", "clamp" }.All(sources.Contains), string.Join(", ", sources));
    }

    [Fact]
    public async Task AVersionStoredAsJsonBeforeMigration0010IsServedByteForByteAsItsPackedForm()
    {
        using var client = api.Reader();
        var cache = api.Factory.Services.GetRequiredService<PlanCache>();
        var packedAnswers = await AnswersAsync(client);
        await using (var conn = new NpgsqlConnection(api.ConnectionString))
        {
            // Rewrite every active version as the JSON a version written before 0010 holds, then back.
            var rows = (await conn.QueryAsync<(long Id, byte[] Packed)>("SELECT p.id, p.steps_packed FROM plan_versions p JOIN plan_current c ON c.version_id = p.id")).ToList();
            foreach (var (id, packed) in rows)
            {
                await conn.ExecuteAsync("UPDATE plan_versions SET steps = @json::jsonb, steps_packed = NULL WHERE id = @id",
                    new { id, json = PlanJson.WriteSteps(PackedSteps.Read(packed)) });
            }
            // A changed plan id is what makes the cache reload a resource: reload the fleet by name instead.
            await cache.ReloadAsync(Fixture.Names, default);
            var jsonAnswers = await AnswersAsync(client);
            foreach (var (id, packed) in rows)
            {
                await conn.ExecuteAsync("UPDATE plan_versions SET steps = NULL, steps_packed = @packed WHERE id = @id", new { id, packed });
            }
            await cache.ReloadAsync(Fixture.Names, default);
            Assert.Equal(packedAnswers, jsonAnswers);
        }
        Assert.Equal(packedAnswers, await AnswersAsync(client));
    }

    [Fact]
    public async Task ASecondInstanceOnTheSameDatabaseServesTheSameAnswersAndPlansPublishedThroughTheFirst()
    {
        using var first = api.Reader();
        var expected = await AnswersAsync(first);
        await using var second = new WebApplicationFactory<Program>().WithWebHostBuilder(web =>
        {
            web.UseSetting("FORECASTER_DB", api.ConnectionString);
            web.UseSetting("Forecaster:ApiKeys:0", ApiFixture.ApiKey);
            web.ConfigureTestServices(services => services.AddSingleton<TimeProvider>(api.Clock));
        });
        using var other = second.CreateClient();
        // Cold start: ready once every plan is loaded, then the same bytes as the instance that planned them.
        var started = Stopwatch.StartNew();
        while (!(await other.GetAsync("/health/ready")).IsSuccessStatusCode)
        {
            Assert.True(started.Elapsed < TimeSpan.FromSeconds(60), "the second instance never became ready");
            await Task.Delay(50);
        }
        Assert.Equal(expected, await AnswersAsync(other));

        // A policy change through the first instance replans the resource and publishes it; the second hears it (NOTIFY plans).
        var put = await api.Writer().PutAsync("/api/v1/resources/c-forecast", ApiFixture.Json("""
            {"kind":"service","group":"compact","loadMetric":"qps","policy":{"minReplicas":9,"maxReplicas":50,"capacityPerReplica":100,"targetUtilization":0.5,"forecastBound":"point","scaleDownDelayHours":0,"tolerance":0}}
            """));
        put.EnsureSuccessStatusCode();
        var published = Stopwatch.StartNew();
        var version = await api.ScalarAsync<long>("SELECT p.id FROM plan_versions p JOIN resources r ON r.id = p.resource_id JOIN plan_current c ON c.version_id = p.id WHERE r.name = 'c-forecast'");
        JsonElement served;
        do
        {
            await Task.Delay(20);
            served = await other.GetFromJsonAsync<JsonElement>("/api/v1/resources/c-forecast/plan/current");
            Assert.True(published.Elapsed < TimeSpan.FromSeconds(30), "the second instance never served the published plan");
        }
        while (served.GetProperty("planVersion").GetInt64() != version);
        output.WriteLine($"plan {version} published through the first instance was served by the second after {published.ElapsedMilliseconds} ms");
        Assert.True(served.GetProperty("replicas").GetInt32() >= 9);
        // Both instances now answer the same for it.
        using var again = api.Reader();
        await api.Factory.Services.GetRequiredService<PlanCache>().SyncAsync(default);
        Assert.Equal(await (await again.GetAsync("/api/v1/resources/c-forecast/plan/current")).Content.ReadAsStringAsync(),
            await (await other.GetAsync("/api/v1/resources/c-forecast/plan/current")).Content.ReadAsStringAsync());
    }
}
