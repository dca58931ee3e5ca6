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
}
