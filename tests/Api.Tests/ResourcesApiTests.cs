using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Forecaster.Api.Tests.Infrastructure;

namespace Forecaster.Api.Tests;

public sealed class ResourcesApiTests(ApiFixture api) : IClassFixture<ApiFixture>
{
    [Fact]
    public async Task PutCreatesThenReplacesAResource()
    {
        var client = api.Writer();
        var created = await client.PutAsync("/api/v1/resources/orders-svc",
            ApiFixture.Json("""{"kind":"service","group":"shop","loadMetric":"qps","policy":{"maxReplicas":12}}"""));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal("/api/v1/resources/orders-svc", created.Headers.Location?.OriginalString);

        api.Clock.Advance(TimeSpan.FromMinutes(5));
        var updated = await client.PutAsync("/api/v1/resources/orders-svc",
            ApiFixture.Json("""{"kind":"job","group":"streaming","loadMetric":"records_in_rate","policy":{"maxParallelism":64}}"""));
        Assert.Equal(HttpStatusCode.OK, updated.StatusCode);
        var view = await client.GetFromJsonAsync<JsonElement>("/api/v1/resources/orders-svc");
        Assert.Equal("job", view.GetProperty("kind").GetString());
        Assert.Equal("streaming", view.GetProperty("group").GetString());
        Assert.Equal(64, view.GetProperty("policy").GetProperty("maxParallelism").GetInt32());
        Assert.Equal(ApiFixture.Now, view.GetProperty("createdAt").GetDateTimeOffset());
        Assert.Equal(ApiFixture.Now.AddMinutes(5), view.GetProperty("updatedAt").GetDateTimeOffset());
    }

    [Fact]
    public async Task PutNamesEveryBadField()
    {
        var response = await api.Writer().PutAsync("/api/v1/resources/bad name",
            ApiFixture.Json("""{"kind":"vm","loadMetric":"","policy":[1]}"""));
        var problem = await SamplesApiTests.AssertProblem(response, HttpStatusCode.BadRequest, "kind", "'vm' is not a kind");
        var errors = problem.GetProperty("errors");
        Assert.True(errors.TryGetProperty("name", out _));
        Assert.True(errors.TryGetProperty("loadMetric", out _));
        Assert.True(errors.TryGetProperty("policy", out _));
    }

    [Fact]
    public async Task APolicyLoadMetricThatDiffersFromLoadMetricIsRefusedAndAnEqualOneAccepted()
    {
        var client = api.Writer();
        var differs = await client.PutAsync("/api/v1/resources/two-metrics",
            ApiFixture.Json("""{"kind":"service","loadMetric":"qps","policy":{"loadMetric":"rps","maxReplicas":12}}"""));
        await SamplesApiTests.AssertProblem(differs, HttpStatusCode.BadRequest, "policy.loadMetric", "'rps' differs from loadMetric 'qps'");
        Assert.Equal(0, await api.ScalarAsync<int>("SELECT count(*)::int FROM resources WHERE name = 'two-metrics'"));

        var equal = await client.PutAsync("/api/v1/resources/two-metrics",
            ApiFixture.Json("""{"kind":"service","loadMetric":"qps","policy":{"loadMetric":"qps","maxReplicas":12}}"""));
        Assert.Equal(HttpStatusCode.Created, equal.StatusCode);
    }

    [Fact]
    public async Task APolicyStoredWithoutValidationIsCheckedOnceAndReadWithItsProblems()
    {
        await using var db = Npgsql.NpgsqlDataSource.Create(api.ConnectionString);
        await using (var conn = await db.OpenConnectionAsync())
        {
            await Dapper.SqlMapper.ExecuteAsync(conn, """
                INSERT INTO resources (name, kind, load_metric, policy, created_at, updated_at)
                VALUES ('hand-written', 'service', 'qps', '{"minReplicas": 9, "maxReplicas": 3}', now(), now())
                """);
        }
        Assert.True(await Resources.ResourcePolicy.CheckUncheckedAsync(db, CancellationToken.None) >= 1);
        var problems = await api.ScalarAsync<string[]>("SELECT policy_problems FROM resources WHERE name = 'hand-written'");
        Assert.Contains(problems, p => p.StartsWith("policy.", StringComparison.Ordinal));
        await using (var conn = await db.OpenConnectionAsync())
        {
            var stored = (await Resources.ResourceStore.FindAsync(conn, "hand-written", CancellationToken.None))!;
            Assert.Null(stored.Policy);
            Assert.Equal(problems, stored.PolicyProblems);
        }
        Assert.Equal(0, await Resources.ResourcePolicy.CheckUncheckedAsync(db, CancellationToken.None));
    }

    [Fact]
    public async Task ANameWithATrailingNewlineIsRefused()
    {
        var response = await api.Writer().PutAsync("/api/v1/resources/web%0A", ApiFixture.Json("""{"kind":"service","loadMetric":"qps"}"""));
        await SamplesApiTests.AssertProblem(response, HttpStatusCode.BadRequest, "name", "control character U+000A");
    }

    [Fact]
    public async Task ListPagesByNameAndFiltersByGroupAndKind()
    {
        var client = api.Writer();
        foreach (var name in new[] { "list-a", "list-b", "list-c", "list-d" })
        {
            await api.PutServiceAsync(client, name, group: "paging");
        }
        await client.PutAsync("/api/v1/resources/list-job", ApiFixture.Json("""{"kind":"job","group":"paging","loadMetric":"records_in_rate"}"""));

        var first = await client.GetFromJsonAsync<JsonElement>("/api/v1/resources?group=paging&kind=service&limit=3");
        Assert.Equal(["list-a", "list-b", "list-c"], first.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("name").GetString()));
        var next = first.GetProperty("next").GetString();
        var second = await client.GetFromJsonAsync<JsonElement>($"/api/v1/resources?group=paging&kind=service&limit=3&after={next}");
        Assert.Equal(["list-d"], second.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("name").GetString()));
        Assert.False(second.TryGetProperty("next", out _));

        var jobs = await client.GetFromJsonAsync<JsonElement>("/api/v1/resources?group=paging&kind=job");
        Assert.Equal(["list-job"], jobs.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("name").GetString()));
        await SamplesApiTests.AssertProblem(await client.GetAsync("/api/v1/resources?kind=vm"), HttpStatusCode.BadRequest, "kind", "not a kind");
    }

    [Fact]
    public async Task DeleteRemovesTheResourceAndItsSamples()
    {
        var client = api.Writer();
        await api.PutServiceAsync(client, "doomed");
        await api.PutServiceAsync(client, "survivor");
        var csv = "resource,metric,timestamp,value\ndoomed,qps,2026-11-20T10:00:00Z,1\ndoomed,cpu_cores,2026-11-20T10:00:00Z,1\nsurvivor,qps,2026-11-20T10:00:00Z,1\n";
        (await client.PostAsync("/api/v1/samples", ApiFixture.Csv(csv))).EnsureSuccessStatusCode();
        Assert.Equal(2, await api.CountSamplesAsync("doomed"));

        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync("/api/v1/resources/doomed")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/api/v1/resources/doomed")).StatusCode);
        Assert.Equal(0, await api.ScalarAsync<long>("SELECT count(*) FROM sample_points sa WHERE NOT EXISTS (SELECT 1 FROM series s WHERE s.id = sa.series_id)"));
        Assert.Equal(1, await api.CountSamplesAsync("survivor"));
        Assert.Equal(HttpStatusCode.NotFound, (await client.DeleteAsync("/api/v1/resources/doomed")).StatusCode);
    }
}

public sealed class ServiceDocumentTests(ApiFixture api) : IClassFixture<ApiFixture>
{
    [Fact]
    public async Task EveryOperationHasASummaryAndItsErrorResponses()
    {
        var doc = await api.Reader().GetFromJsonAsync<JsonElement>("/swagger/v1/swagger.json");
        var operations = doc.GetProperty("paths").EnumerateObject()
            .SelectMany(p => p.Value.EnumerateObject().Select(o => (Path: p.Name, Method: o.Name, Op: o.Value)))
            .ToList();
        Assert.Contains(operations, o => o.Path == "/api/v1/samples" && o.Method == "post");
        Assert.All(operations, o => Assert.False(string.IsNullOrWhiteSpace(o.Op.TryGetProperty("summary", out var s) ? s.GetString() : null), $"{o.Method} {o.Path} has no summary"));
        var put = operations.Single(o => o.Path == "/api/v1/resources/{name}" && o.Method == "put").Op;
        Assert.True(put.GetProperty("responses").TryGetProperty("401", out _));
        Assert.True(put.GetProperty("responses").TryGetProperty("400", out _));
        Assert.True(put.GetProperty("requestBody").GetProperty("content").GetProperty("application/json").TryGetProperty("example", out _));
        var csv = operations.Single(o => o.Path == "/api/v1/samples" && o.Method == "post").Op;
        Assert.Contains("resource,metric,timestamp,value", csv.GetProperty("requestBody").GetProperty("content").GetProperty("text/csv").GetProperty("example").GetString(), StringComparison.Ordinal);
        Assert.True(doc.GetProperty("components").GetProperty("securitySchemes").TryGetProperty("ApiKey", out _));
    }

    [Fact]
    public async Task SwaggerUiAndHealthAnswer()
    {
        var client = api.Reader();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/swagger/index.html")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/live")).StatusCode);
        // Readiness is 503 until the plan cache's first load, which a busy machine can take a moment over.
        var ready = await client.GetAsync("/health/ready");
        for (var i = 0; i < 300 && ready.StatusCode != HttpStatusCode.OK; i++)
        {
            await Task.Delay(100);
            ready = await client.GetAsync("/health/ready");
        }
        Assert.True(ready.StatusCode == HttpStatusCode.OK, await ready.Content.ReadAsStringAsync());
        Assert.Contains("migrations applied", await ready.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
