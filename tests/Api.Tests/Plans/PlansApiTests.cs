using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Forecaster.Api.Plans;
using Forecaster.Api.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Forecaster.Api.Tests.Plans;

/// <summary>Policies, planning on policy change, the capacity view and retention, on small hand-made fleets without training.</summary>
public sealed class PlansApiTests(ApiFixture api) : IClassFixture<ApiFixture>
{
    static readonly long MiB = 1L << 20;

    PlanningPipeline Planner => api.Factory.Services.GetRequiredService<PlanningPipeline>();

    async Task<JsonElement> VersionsAsync(string name) =>
        await api.Reader().GetFromJsonAsync<JsonElement>($"/api/v1/resources/{name}/plans");

    [Fact]
    public async Task PutWithAnInvalidPolicyIs400NamingEachFieldAndChangesNothing()
    {
        var client = api.Writer();
        var created = await client.PutAsync("/api/v1/resources/valid-svc",
            ApiFixture.Json("""{"kind":"service","group":"v","loadMetric":"qps","policy":{"minReplicas":2,"maxReplicas":8}}"""));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var versions = (await VersionsAsync("valid-svc")).GetProperty("items").GetArrayLength();

        var response = await client.PutAsync("/api/v1/resources/valid-svc", ApiFixture.Json("""
            {"kind":"service","group":"v","loadMetric":"qps","policy":{"minReplicas":9,"maxReplicas":8,"targetUtilization":1.5,
             "maxReplica":3,"maxParallelism":16,"windows":[{"days":"Mon-Fri","from":"19:00","to":"23:00","timeZone":"Mars/Olympus","minReplicas":4}]}}
            """));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var errors = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("errors");
        Assert.Equal(
            ["policy.maxParallelism", "policy.maxReplica", "policy.minReplicas", "policy.targetUtilization", "policy.windows[0].timeZone"],
            errors.EnumerateObject().Select(e => e.Name).Order(StringComparer.Ordinal));
        Assert.StartsWith("unknown property", errors.GetProperty("policy.maxReplica")[0].GetString(), StringComparison.Ordinal);

        var stored = await client.GetFromJsonAsync<JsonElement>("/api/v1/resources/valid-svc");
        Assert.Equal(2, stored.GetProperty("policy").GetProperty("minReplicas").GetInt32());
        Assert.Equal(versions, (await VersionsAsync("valid-svc")).GetProperty("items").GetArrayLength());
    }

    [Fact]
    public async Task APolicyChangeReplansThatResourceOnly()
    {
        var client = api.Writer();
        await client.PutAsync("/api/v1/resources/replan-a", ApiFixture.Json("""{"kind":"service","group":"rp","loadMetric":"qps","policy":{"minReplicas":2}}"""));
        await client.PutAsync("/api/v1/resources/replan-b", ApiFixture.Json("""{"kind":"service","group":"rp","loadMetric":"qps","policy":{"minReplicas":2}}"""));
        var first = (await VersionsAsync("replan-a")).GetProperty("items");
        Assert.Equal(1, first.GetArrayLength());
        Assert.Equal("policy", first[0].GetProperty("trigger").GetString());

        // The same body again changes nothing, so nothing is planned.
        await client.PutAsync("/api/v1/resources/replan-a", ApiFixture.Json("""{"kind":"service","group":"rp","loadMetric":"qps","policy":{"minReplicas":2}}"""));
        Assert.Equal(1, (await VersionsAsync("replan-a")).GetProperty("items").GetArrayLength());

        await client.PutAsync("/api/v1/resources/replan-a", ApiFixture.Json("""{"kind":"service","group":"rp","loadMetric":"qps","policy":{"minReplicas":5}}"""));
        var items = (await VersionsAsync("replan-a")).GetProperty("items");
        Assert.Equal(["active", "superseded"], items.EnumerateArray().Select(i => i.GetProperty("status").GetString()));
        Assert.Equal(1, (await VersionsAsync("replan-b")).GetProperty("items").GetArrayLength());

        var plan = await client.GetFromJsonAsync<JsonElement>($"/api/v1/resources/replan-a/plans/{items[0].GetProperty("id").GetInt64()}");
        var steps = plan.GetProperty("steps");
        Assert.Equal(48, steps.GetArrayLength());
        Assert.All(steps.EnumerateArray(), s =>
        {
            Assert.Equal(5, s.GetProperty("replicas").GetInt32());
            Assert.Equal("fallback:static", s.GetProperty("source").GetString());
            Assert.Contains("static max(minReplicas, current)", s.GetProperty("explanation").GetProperty("sentence").GetString(), StringComparison.Ordinal);
        });
        Assert.Equal(ApiFixture.Now.AddMinutes(-10), steps[0].GetProperty("start").GetDateTimeOffset());
    }

    [Fact]
    public async Task CapacitySumsTheGroupsActivePlansAgainstItsQuota()
    {
        var client = api.Writer();
        await client.PutAsync("/api/v1/resources/cap-a", ApiFixture.Json("""{"kind":"service","group":"cap","loadMetric":"qps","policy":{"minReplicas":3}}"""));
        await client.PutAsync("/api/v1/resources/cap-b", ApiFixture.Json("""{"kind":"service","group":"cap","loadMetric":"qps","policy":{"minReplicas":2}}"""));
        await client.PutAsync("/api/v1/resources/cap-other", ApiFixture.Json("""{"kind":"service","group":"cap-x","loadMetric":"qps","policy":{"minReplicas":1}}"""));
        // Weekly peaks per replica: requests are peak × 1.15 rounded up to 0.1 core and 64 MiB.
        await using (var conn = new NpgsqlConnection(api.ConnectionString))
        {
            await conn.ExecuteAsync("""
                INSERT INTO weekly_peaks (resource_id, cpu_cores, memory_bytes, window_from, window_to, computed_at)
                SELECT id, v.cpu, v.memory, @now, @now, @now
                FROM resources JOIN (VALUES ('cap-a', 0.5, 100 * 1048576::bigint), ('cap-b', 1.0, 200 * 1048576::bigint)) AS v(name, cpu, memory) USING (name)
                """, new { now = ApiFixture.Now });
        }
        await Planner.PlanAsync(new PlanScope(PlanTrigger.Cli, ["cap-a", "cap-b", "cap-other"]), null, default);
        var quota = await client.PutAsync("/api/v1/groups/cap/quota", ApiFixture.Json($$"""{"cpuCores":4,"memoryBytes":{{1024 * MiB}}}"""));
        Assert.Equal(HttpStatusCode.OK, quota.StatusCode);
        Assert.Equal(4, (await client.GetFromJsonAsync<JsonElement>("/api/v1/groups/cap/quota")).GetProperty("cpuCores").GetDouble());

        var view = await client.GetFromJsonAsync<JsonElement>("/api/v1/capacity?group=cap&from=2026-11-21T13:00:00Z&to=2026-11-21T15:00:00Z");
        var hours = view.GetProperty("hours");
        Assert.Equal(2, hours.GetArrayLength());
        var hour = hours[0];
        Assert.Equal(new DateTimeOffset(2026, 11, 21, 13, 0, 0, TimeSpan.Zero), hour.GetProperty("hour").GetDateTimeOffset());
        // cap-a: 3 × 0.6 cores, 3 × 128 MiB; cap-b: 2 × 1.2 cores, 2 × 256 MiB.
        Assert.Equal(4.2, hour.GetProperty("cpu").GetDouble(), 9);
        Assert.Equal(896 * MiB, hour.GetProperty("memory").GetInt64());
        Assert.Equal(2, hour.GetProperty("resources").GetInt32());
        Assert.Equal(0, hour.GetProperty("withoutRequests").GetInt32());
        Assert.Equal(0, hour.GetProperty("freeCpu").GetDouble());
        Assert.Equal(0.2, hour.GetProperty("cpuShortfall").GetDouble(), 9);
        Assert.Equal(128 * MiB, hour.GetProperty("freeMemory").GetInt64());
        Assert.Equal(0, hour.GetProperty("memoryShortfall").GetInt64());

        // The fleet adds every other active plan (cap-other has no usage known, so no requests) and has no quota.
        var fleet = view.GetProperty("fleet")[0];
        Assert.True(fleet.GetProperty("resources").GetInt32() >= 3);
        Assert.True(fleet.GetProperty("withoutRequests").GetInt32() >= 1);
        Assert.False(fleet.TryGetProperty("freeCpu", out _));

        var bad = await client.GetAsync("/api/v1/capacity?from=2026-11-21T13:00:00Z&to=2026-11-21T12:00:00Z");
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
    }

    [Fact]
    public async Task DeletingAResourceRemovesEveryVersionOfItsPlanAndLeavesOthersAlone()
    {
        var client = api.Writer();
        await client.PutAsync("/api/v1/resources/doomed", ApiFixture.Json("""{"kind":"service","group":"del","loadMetric":"qps","policy":{"minReplicas":1}}"""));
        await client.PutAsync("/api/v1/resources/doomed", ApiFixture.Json("""{"kind":"service","group":"del","loadMetric":"qps","policy":{"minReplicas":2}}"""));
        await client.PutAsync("/api/v1/resources/spared", ApiFixture.Json("""{"kind":"service","group":"del","loadMetric":"qps","policy":{"minReplicas":1}}"""));
        await using var conn = new NpgsqlConnection(api.ConnectionString);
        var doomed = await conn.ExecuteScalarAsync<int>("SELECT id FROM resources WHERE name = 'doomed'");
        var spared = await conn.ExecuteScalarAsync<int>("SELECT id FROM resources WHERE name = 'spared'");
        Assert.Equal(2L, await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM plan_versions WHERE resource_id = @doomed", new { doomed }));

        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync("/api/v1/resources/doomed")).StatusCode);

        // plan_versions has no foreign key to resources (it cost a check per published row): a trigger removes them.
        Assert.Equal(0L, await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM plan_versions WHERE resource_id = @doomed", new { doomed }));
        Assert.Equal(0L, await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM plan_current WHERE resource_id = @doomed", new { doomed }));
        Assert.Equal(1L, await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM plan_versions WHERE resource_id = @spared", new { spared }));
        Assert.Equal(["active"], (await VersionsAsync("spared")).GetProperty("items").EnumerateArray().Select(i => i.GetProperty("status").GetString()));
    }

    [Fact]
    public async Task AFleetRunPurgesSupersededVersionsOlderThanTheRetention()
    {
        var client = api.Writer();
        try
        {
            api.Clock.Now = ApiFixture.Now.AddDays(-20);
            await client.PutAsync("/api/v1/resources/retained", ApiFixture.Json("""{"kind":"service","group":"ret","loadMetric":"qps","policy":{"minReplicas":1}}"""));
            api.Clock.Now = ApiFixture.Now.AddDays(-1);
            await client.PutAsync("/api/v1/resources/retained", ApiFixture.Json("""{"kind":"service","group":"ret","loadMetric":"qps","policy":{"minReplicas":2}}"""));
            api.Clock.Now = ApiFixture.Now;
            Assert.Equal(2, (await VersionsAsync("retained")).GetProperty("items").GetArrayLength());

            var outcome = await Planner.PlanAsync(new PlanScope(PlanTrigger.Cli), null, default);
            Assert.True(outcome.Purged >= 1);
            var items = (await VersionsAsync("retained")).GetProperty("items");
            // The 20-day-old version is gone; yesterday's stays (within 14 days) behind the new active one.
            Assert.Equal(["active", "superseded"], items.EnumerateArray().Select(i => i.GetProperty("status").GetString()));
            Assert.Equal(ApiFixture.Now.AddDays(-1), items[1].GetProperty("generatedAt").GetDateTimeOffset());
            // Superseded when the fleet run published its successor; the active one is not superseded.
            Assert.Equal(ApiFixture.Now, items[1].GetProperty("supersededAt").GetDateTimeOffset());
            Assert.False(items[0].TryGetProperty("supersededAt", out _));
        }
        finally
        {
            api.Clock.Now = ApiFixture.Now;
        }
    }

    [Fact]
    public async Task AResourceThatCannotBePlannedIsRecordedWithWhatIsMissing()
    {
        var client = api.Writer();
        await client.PutAsync("/api/v1/resources/no-bounds", ApiFixture.Json("""{"kind":"service","group":"nb","loadMetric":"qps","policy":{}}"""));
        var versions = await VersionsAsync("no-bounds");
        Assert.Equal(0, versions.GetProperty("items").GetArrayLength());
        var missing = versions.GetProperty("problem").GetProperty("missing");
        Assert.Equal(48, missing.GetArrayLength());
        Assert.Contains("policy.minReplicas", missing[0].GetString(), StringComparison.Ordinal);
    }
}
