using Dapper;
using Forecaster.Api.Tests.Infrastructure;
using Npgsql;

namespace Forecaster.Api.Tests.Plans;

/// <summary>The `plan` verb, run as a process against the test cluster.</summary>
public sealed class PlanCommandTests
{
    static Task<(int Exit, string Out, string Err)> RunAsync(string connectionString, params string[] args) =>
        ForecasterProcess.RunAsync(connectionString, args);

    [Fact]
    public async Task PlanPrintsASummaryLineAndPublishesThePlans()
    {
        var db = await TestCluster.CreateDatabaseAsync("cliplan");
        var (exit, _, stderr) = await RunAsync(db, "migrate");
        Assert.True(exit == 0, stderr);
        await using (var conn = new NpgsqlConnection(db))
        {
            await conn.ExecuteAsync("""
                INSERT INTO resources (name, kind, "group", load_metric, policy, created_at, updated_at) VALUES
                ('cli-a', 'service', 'g', 'qps', '{"minReplicas": 2}', now(), now()),
                ('cli-b', 'job', 'g', 'records_in_rate', '{"minReplicas": 4, "maxParallelism": 64}', now(), now()),
                ('cli-c', 'service', 'g', 'qps', '{}', now(), now())
                """);
        }
        string stdout;
        (exit, stdout, stderr) = await RunAsync(db, "plan");
        Assert.True(exit == 0, stderr);
        Assert.Matches(@"^resources=3 planned=2 cannot=1 seconds=[\d.]+ rate=[\d.]+/s\s*$", stdout);

        (exit, stdout, _) = await RunAsync(db, "plan", "--resource", "cli-a");
        Assert.Equal(0, exit);
        Assert.StartsWith("resources=1 planned=1 cannot=0", stdout, StringComparison.Ordinal);
        await using (var conn = new NpgsqlConnection(db))
        {
            Assert.Equal(3L, await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM plan_versions"));
            Assert.Equal(2L, await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM plan_current"));
            Assert.Equal(48, await conn.ExecuteScalarAsync<int>("SELECT cardinality(p.counts) FROM plan_versions p JOIN plan_current c ON c.version_id = p.id LIMIT 1"));
        }

        (exit, _, stderr) = await RunAsync(db, "plan", "--resource", "nope");
        Assert.Equal(2, exit);
        Assert.Contains("no resource is named 'nope'", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BatchesPublishedAtOnceEachMakeEveryResourceCurrentExactlyOnce()
    {
        // Batches of 2 over 13 resources: seven batches, two publications at a time (PublishingConnections' default), so
        // publications overlap and finish out of order. Every plannable resource must end with its newest version current,
        // the others recorded as problems, and the summary must count each resource once.
        var db = await TestCluster.CreateDatabaseAsync("cliplanpar");
        var (exit, _, stderr) = await RunAsync(db, "migrate");
        Assert.True(exit == 0, stderr);
        await using (var conn = new NpgsqlConnection(db))
        {
            // Every third resource states no capacity and has no capacity model, so it cannot be planned.
            await conn.ExecuteAsync("""
                INSERT INTO resources (name, kind, "group", load_metric, policy, created_at, updated_at)
                SELECT 'par-' || i, 'service', 'g', 'qps',
                       CASE WHEN i % 3 = 0 THEN '{}'::jsonb ELSE jsonb_build_object('minReplicas', 1 + i % 4) END, now(), now()
                FROM generate_series(1, 13) AS i
                """);
        }
        var environment = new Dictionary<string, string> { ["FORECASTER_DB"] = db, ["Forecaster__Planning__BatchResources"] = "2" };
        for (var run = 1; run <= 2; run++)
        {
            string stdout;
            (exit, stdout, stderr) = await ForecasterProcess.RunAsync(environment, "plan");
            Assert.True(exit == 0, stderr);
            Assert.Matches(@"^resources=13 planned=9 cannot=4 seconds=", stdout);
            await using var conn = new NpgsqlConnection(db);
            // One version per plannable resource per run, and the current one is each resource's newest.
            Assert.Equal(9L * run, await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM plan_versions"));
            Assert.Equal(9L, await conn.ExecuteScalarAsync<long>("""
                SELECT count(*) FROM plan_current c
                WHERE c.version_id = (SELECT max(p.id) FROM plan_versions p WHERE p.resource_id = c.resource_id)
                """));
            Assert.Equal(9L, await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM plan_current"));
            var problems = (await conn.QueryAsync<string>("SELECT r.name FROM plan_problems p JOIN resources r ON r.id = p.resource_id ORDER BY r.id")).ToArray();
            Assert.Equal(["par-3", "par-6", "par-9", "par-12"], problems);
        }
    }
}
