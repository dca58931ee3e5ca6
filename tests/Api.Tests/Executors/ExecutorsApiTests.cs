using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Forecaster.Api.Plans;
using Forecaster.Api.Serving;
using Forecaster.Api.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using YamlDotNet.RepresentationModel;

namespace Forecaster.Api.Tests.Executors;

/// <summary>
/// The executor endpoints over HTTP on a real PostgreSQL (clock 2026-11-21T12:00Z): /keda's neutral answers, the ScaledObject
/// (and the README's copy of it), the Flink patch, the VPA-shaped requests, and the `manifest` verb.
/// </summary>
public sealed class ExecutorsApiTests(ApiFixture api) : IClassFixture<ApiFixture>
{
    const string Sized = "\"capacityPerReplica\":100,\"targetUtilization\":0.5,\"forecastBound\":\"point\",\"scaleDownDelayHours\":0,\"tolerance\":0";
    const string JobSized = "\"capacityPerSubtask\":100,\"targetUtilization\":0.5,\"forecastBound\":\"point\",\"scaleDownDelayHours\":0,\"tolerance\":0";
    const long MiB = 1L << 20;

    async Task PutAsync(string name, string policy, string kind = "service")
    {
        var metric = kind == "job" ? "records_in_rate" : "qps";
        var response = await api.Writer().PutAsync($"/api/v1/resources/{name}",
            ApiFixture.Json($$"""{"kind":"{{kind}}","group":"exec","loadMetric":"{{metric}}","policy":""" + policy + "}"));
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
    }

    /// <summary>A forecast of 200 for the first two hours and 500 after, a plan from it, and the cache synced.</summary>
    async Task PlanAsync(string name, string? metric = "qps")
    {
        if (metric is not null)
        {
            await using var conn = new NpgsqlConnection(api.ConnectionString);
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
        await api.Factory.Services.GetRequiredService<PlanningPipeline>().PlanAsync(new PlanScope(PlanTrigger.Cli, [name]), null, default);
        var cache = api.Factory.Services.GetRequiredService<PlanCache>();
        await cache.SyncAsync(default);
        await cache.RefreshHistoryAsync(default);
    }

    static string ReadmeScaledObject([System.Runtime.CompilerServices.CallerFilePath] string here = "")
    {
        var readme = File.ReadAllText(Path.GetFullPath(Path.Combine(Path.GetDirectoryName(here)!, "..", "..", "..", "README.md")));
        var blocks = readme.Split("```yaml\n").Skip(1).Select(b => b[..b.IndexOf("```", StringComparison.Ordinal)]);
        return blocks.Single(b => b.Contains("kind: ScaledObject", StringComparison.Ordinal));
    }

    [Fact]
    public async Task KedaAnswersANeutralZeroWithTheReasonForDryRunsAndUnplannableResources()
    {
        await PutAsync("keda-dry", $"{{\"minReplicas\":3,\"maxReplicas\":50,\"mode\":\"forecastOnly\",{Sized}}}");
        await PutAsync("keda-nothing", $"{{\"maxReplicas\":50,{Sized}}}");
        await PlanAsync("keda-dry");

        var dry = await api.Reader().GetAsync("/api/v1/resources/keda-dry/keda");
        Assert.Equal(HttpStatusCode.OK, dry.StatusCode);
        var body = await dry.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(0, body.GetProperty("desiredReplicas").GetInt32());
        Assert.True(body.GetProperty("neutral").GetBoolean());
        Assert.Contains("forecastOnly", body.GetProperty("reason").GetString(), StringComparison.Ordinal);
        // The same caching as the other plan endpoints: an ETag (304 on If-None-Match) and max-age up to the step boundary.
        var etag = dry.Headers.ETag!.Tag;
        Assert.Equal(TimeSpan.FromMinutes(50), dry.Headers.CacheControl!.MaxAge);   // lead 10: the 12:00 step ends at 12:50
        var again = new HttpRequestMessage(HttpMethod.Get, "/api/v1/resources/keda-dry/keda");
        again.Headers.TryAddWithoutValidation("If-None-Match", etag);
        Assert.Equal(HttpStatusCode.NotModified, (await api.Reader().SendAsync(again)).StatusCode);

        var nothing = await api.Reader().GetAsync("/api/v1/resources/keda-nothing/keda");
        Assert.Equal(HttpStatusCode.OK, nothing.StatusCode);
        body = await nothing.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(0, body.GetProperty("desiredReplicas").GetInt32());
        Assert.Contains("minReplicas", body.GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.NotNull(nothing.Headers.ETag);
        Assert.True(nothing.Headers.CacheControl!.NoCache);

        await SamplesApiTests.AssertProblem(await api.Reader().GetAsync("/api/v1/resources/keda-never/keda"), HttpStatusCode.NotFound, null, "No resource");
    }

    [Fact]
    public async Task TheReadmesScaledObjectIsWhatTheEndpointGeneratesForIt()
    {
        // The README registers checkout with {"minReplicas":2,"maxReplicas":40}.
        await PutAsync("checkout", """{"minReplicas":2,"maxReplicas":40}""");
        var response = await api.Reader().GetAsync("/api/v1/resources/checkout/scaledobject");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/yaml", response.Content.Headers.ContentType!.MediaType);
        var yaml = await response.Content.ReadAsStringAsync();
        Assert.Equal(ReadmeScaledObject(), yaml);
        var spec = HpaSpec.FromScaledObject(yaml);
        Assert.Equal((2, 40), (spec.Min, spec.Max));
        Assert.Equal(("external", "AverageValue", 1.0), (spec.Metrics[0].Kind, spec.Metrics[0].TargetType, spec.Metrics[0].Target));
        Assert.DoesNotContain("TriggerAuthentication", yaml, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AScaledObjectNeedsMaxReplicasAndAKnownService()
    {
        await PutAsync("so-unbounded", """{"minReplicas":2}""");
        await SamplesApiTests.AssertProblem(await api.Reader().GetAsync("/api/v1/resources/so-unbounded/scaledobject"), HttpStatusCode.BadRequest, "policy.maxReplicas", "maximum");
        await PutAsync("so-job", """{"minReplicas":2,"maxReplicas":8}""", kind: "job");
        await SamplesApiTests.AssertProblem(await api.Reader().GetAsync("/api/v1/resources/so-job/scaledobject"), HttpStatusCode.BadRequest, "kind", "flink");
        await SamplesApiTests.AssertProblem(await api.Reader().GetAsync("/api/v1/resources/so-never/scaledobject"), HttpStatusCode.NotFound, null, "No resource");
    }

    [Fact]
    public async Task TheFlinkPatchSetsTheJobsParallelismRestartMinutesBeforeTheStep()
    {
        await PutAsync("flink-job", $"{{\"minReplicas\":1,\"maxReplicas\":20,\"restartMinutes\":5,{JobSized}}}", kind: "job");
        await PlanAsync("flink-job", "records_in_rate");
        var current = await api.Reader().GetFromJsonAsync<JsonElement>("/api/v1/resources/flink-job/plan/current?at=2026-11-21T12:05:00Z");
        var patch = await api.Reader().GetFromJsonAsync<JsonElement>("/api/v1/resources/flink-job/flink");

        Assert.Equal("job", patch.GetProperty("target").GetString());
        Assert.Equal((10, 5), (patch.GetProperty("leadMinutes").GetInt32(), patch.GetProperty("restartMinutes").GetInt32()));
        var now = patch.GetProperty("current");
        var parallelism = current.GetProperty("parallelism").GetInt32();
        Assert.Equal(parallelism, now.GetProperty("parallelism").GetInt32());
        Assert.Equal(parallelism, now.GetProperty("patch").GetProperty("spec").GetProperty("job").GetProperty("parallelism").GetInt32());
        Assert.Equal(current.GetProperty("validFrom").GetDateTimeOffset().AddMinutes(-5), now.GetProperty("applyFrom").GetDateTimeOffset());
        var next = patch.GetProperty("next");
        var planned = current.GetProperty("next");
        Assert.Equal(planned.GetProperty("parallelism").GetInt32(), next.GetProperty("parallelism").GetInt32());
        Assert.NotEqual(parallelism, next.GetProperty("parallelism").GetInt32());
        Assert.Equal(planned.GetProperty("validFrom").GetDateTimeOffset().AddMinutes(-5), next.GetProperty("applyFrom").GetDateTimeOffset());
        Assert.Equal(next.GetProperty("applyFrom").GetDateTimeOffset(), now.GetProperty("validUntil").GetDateTimeOffset());

        var yaml = await api.Reader().GetStringAsync("/api/v1/resources/flink-job/flink?format=yaml");
        var doc = new YamlStream();
        doc.Load(new StringReader(yaml));
        var spec = (YamlMappingNode)((YamlMappingNode)doc.Documents[0].RootNode)["spec"];
        Assert.Equal(parallelism.ToString(System.Globalization.CultureInfo.InvariantCulture), ((YamlScalarNode)((YamlMappingNode)spec["job"])["parallelism"]).Value);
    }

    [Fact]
    public async Task NamedVerticesArePatchedThroughTheParallelismOverrides()
    {
        const string a = "0a448493b4782967b150582570326227";
        const string b = "bc764cd8ddf7a0cff126f51c16239658";
        await PutAsync("flink-vertices", $"{{\"minReplicas\":1,\"maxReplicas\":20,\"vertices\":[\"{a}\",\"{b}\"],{JobSized}}}", kind: "job");
        await PlanAsync("flink-vertices", "records_in_rate");
        var patch = await api.Reader().GetFromJsonAsync<JsonElement>("/api/v1/resources/flink-vertices/flink");
        Assert.Equal("vertices", patch.GetProperty("target").GetString());
        var p = patch.GetProperty("current").GetProperty("parallelism").GetInt32();
        var overrides = patch.GetProperty("current").GetProperty("patch").GetProperty("spec").GetProperty("flinkConfiguration")
            .GetProperty("pipeline.jobvertex-parallelism-overrides").GetString();
        Assert.Equal($"{a}:{p},{b}:{p}", overrides);
        Assert.Contains($"pipeline.jobvertex-parallelism-overrides: \"{a}:{p},{b}:{p}\"", await api.Reader().GetStringAsync("/api/v1/resources/flink-vertices/flink?format=yaml"), StringComparison.Ordinal);

        await PutAsync("flink-service", """{"minReplicas":2,"maxReplicas":8}""");
        await PlanAsync("flink-service", null);
        await SamplesApiTests.AssertProblem(await api.Reader().GetAsync("/api/v1/resources/flink-service/flink"), HttpStatusCode.BadRequest, "kind", "service");
        await SamplesApiTests.AssertProblem(await api.Reader().GetAsync("/api/v1/resources/flink-vertices/flink?format=xml"), HttpStatusCode.BadRequest, "format", "xml");
        await SamplesApiTests.AssertProblem(await api.Reader().GetAsync("/api/v1/resources/flink-never/flink"), HttpStatusCode.NotFound, null, "No resource");
    }

    [Fact]
    public async Task RequestsAreAVpaStatusOfTheWeeklyPeakRule()
    {
        await PutAsync("req-peak", """{"minReplicas":2,"maxReplicas":8}""");
        await using (var conn = new NpgsqlConnection(api.ConnectionString))
        {
            await conn.ExecuteAsync("""
                INSERT INTO weekly_peaks (resource_id, cpu_cores, memory_bytes, window_from, window_to, computed_at)
                SELECT id, 0.52, 300 * 1048576, @now - interval '7 days', @now, @now FROM resources WHERE name = 'req-peak'
                """, new { now = ApiFixture.Now });
        }
        await PlanAsync("req-peak", null);
        var view = await api.Reader().GetFromJsonAsync<JsonElement>("/api/v1/resources/req-peak/requests");
        Assert.Equal("weeklyPeak", view.GetProperty("rule").GetString());
        var c = view.GetProperty("recommendation").GetProperty("containerRecommendations")[0];
        Assert.Equal("req-peak", c.GetProperty("containerName").GetString());
        // 0.52 × 1.15 = 0.598 -> 0.6 cores; 300 MiB × 1.15 = 345 MiB -> 384 MiB; lower bound the peak itself (rounded up).
        Assert.Equal(("600m", "384Mi"), Q(c, "target"));
        Assert.Equal(("600m", "320Mi"), Q(c, "lowerBound"));
        Assert.Equal(("600m", "384Mi"), Q(c, "upperBound"));
        Assert.Equal(("600m", "384Mi"), Q(c, "uncappedTarget"));
        Assert.Equal("True", view.GetProperty("conditions")[0].GetProperty("status").GetString());

        await PutAsync("req-none", """{"minReplicas":2,"maxReplicas":8}""");
        var none = await api.Reader().GetFromJsonAsync<JsonElement>("/api/v1/resources/req-none/requests");
        Assert.Equal(0, none.GetProperty("recommendation").GetProperty("containerRecommendations").GetArrayLength());
        Assert.Equal("False", none.GetProperty("conditions")[0].GetProperty("status").GetString());
        await SamplesApiTests.AssertProblem(await api.Reader().GetAsync("/api/v1/resources/req-never/requests"), HttpStatusCode.NotFound, null, "No resource");
    }

    [Fact]
    public async Task RequestsFollowThePercentileRuleFromStoredUsage()
    {
        await PutAsync("req-pct", """{"minReplicas":2,"maxReplicas":8,"requests":{"rule":"percentile","percentile":0.9,"halfLifeHours":24,"containerName":"app"}}""");
        // 48 hours of 2 replicas using 0.8 cores and 400 MiB in total: 0.4 cores and 200 MiB per replica.
        var samples = Enumerable.Range(1, 48).SelectMany(h =>
        {
            var ts = ApiFixture.Now.AddHours(-h).ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);
            return new object[]
            {
                new { metric = "cpu_cores", timestamp = ts, value = 0.8 },
                new { metric = "memory_bytes", timestamp = ts, value = 400.0 * MiB },
                new { metric = "replicas", timestamp = ts, value = 2.0 },
            };
        });
        var post = await api.Writer().PostAsync("/api/v1/resources/req-pct/samples", ApiFixture.Json(JsonSerializer.Serialize(new { samples })));
        Assert.True(post.IsSuccessStatusCode, await post.Content.ReadAsStringAsync());
        await PlanAsync("req-pct", null);

        var view = await api.Reader().GetFromJsonAsync<JsonElement>("/api/v1/resources/req-pct/requests");
        Assert.Equal("percentile", view.GetProperty("rule").GetString());
        var c = view.GetProperty("recommendation").GetProperty("containerRecommendations")[0];
        Assert.Equal("app", c.GetProperty("containerName").GetString());
        // Target 0.4 × 1.15 = 0.46 -> 0.5 cores, 230 MiB -> 256 MiB; upper p95 × 1.15 × (1 + 1/2 days) = 0.69 -> 0.7, 345 MiB -> 384 MiB.
        Assert.Equal(("500m", "256Mi"), Q(c, "target"));
        Assert.Equal(("500m", "256Mi"), Q(c, "lowerBound"));
        Assert.Equal(("700m", "384Mi"), Q(c, "upperBound"));
        Assert.Contains("p90 of 48 hours", view.GetProperty("explanation").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheDeploymentsProbesAskForPathsTheServiceServes()
    {
        foreach (var (probe, path) in KubernetesManifestTests.ProbePaths())
        {
            var response = await api.Reader().GetAsync(path);
            // Served (200, or 503 while not ready): a 404 would restart every pod forever.
            Assert.True(response.StatusCode is HttpStatusCode.OK or HttpStatusCode.ServiceUnavailable, $"{probe} {path}: {response.StatusCode}");
            Assert.Contains("\"status\"", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
    }

    static (string?, string?) Q(JsonElement recommendation, string bound)
    {
        var q = recommendation.GetProperty(bound);
        return (q.GetProperty("cpu").GetString(), q.GetProperty("memory").GetString());
    }

    [Fact]
    public async Task TheManifestVerbPrintsWhatTheEndpointsServe()
    {
        await PutAsync("cli-so", """{"minReplicas":3,"maxReplicas":12,"leadMinutes":4}""");
        await PutAsync("cli-flink", $"{{\"minReplicas\":1,\"maxReplicas\":20,{JobSized}}}", kind: "job");
        await PlanAsync("cli-flink", "records_in_rate");
        await PutAsync("cli-unbounded", """{"minReplicas":3}""");

        var (exit, stdout, stderr) = await ForecasterProcess.RunAsync(api.ConnectionString, "manifest", "scaledobject", "cli-so");
        Assert.True(exit == 0, stderr);
        Assert.Equal(await api.Reader().GetStringAsync("/api/v1/resources/cli-so/scaledobject"), stdout);

        // The verb runs on the system clock, past the fixture's plan: it says what it can, the fallback (minReplicas) at least.
        (exit, stdout, stderr) = await ForecasterProcess.RunAsync(api.ConnectionString, "manifest", "flink", "cli-flink");
        Assert.True(exit == 0, stderr);
        var doc = new YamlStream();
        doc.Load(new StringReader(stdout));
        Assert.NotNull(((YamlMappingNode)((YamlMappingNode)((YamlMappingNode)doc.Documents[0].RootNode)["spec"])["job"])["parallelism"]);

        (exit, _, stderr) = await ForecasterProcess.RunAsync(api.ConnectionString, "manifest", "scaledobject", "cli-unbounded");
        Assert.Equal(2, exit);
        Assert.StartsWith("policy.maxReplicas:", stderr, StringComparison.Ordinal);
        (exit, _, stderr) = await ForecasterProcess.RunAsync(api.ConnectionString, "manifest", "flink", "cli-never");
        Assert.Equal(2, exit);
        Assert.Contains("no resource is named 'cli-never'", stderr, StringComparison.Ordinal);
    }
}
