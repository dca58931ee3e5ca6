using Dapper;
using Forecaster.Api.Database;
using Forecaster.Api.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Forecaster.Api.Tests;

public sealed class MigrationTests
{
    [Fact]
    public async Task ApplyingTwiceIsANoOp()
    {
        await using var db = NpgsqlDataSource.Create(await TestCluster.CreateDatabaseAsync("migrate"));
        var first = await MigrationRunner.ApplyAsync(db, Migration.Embedded, NullLogger.Instance);
        var second = await MigrationRunner.ApplyAsync(db, Migration.Embedded, NullLogger.Instance);
        Assert.Equal(Migration.Embedded.Count, first);
        Assert.Equal(0, second);
        await using var conn = await db.OpenConnectionAsync();
        Assert.True(await MigrationRunner.IsCurrentAsync(conn, Migration.Embedded, default));
        Assert.Equal(Migration.Embedded.Count, await conn.ExecuteScalarAsync<int>("SELECT count(*) FROM schema_migrations"));
    }

    [Fact]
    public async Task ARunsFailedVersionsAreReadThroughTheirOwnIndexNotThroughEveryVersionOfTheRun()
    {
        // A run's page lists its failed versions while the run trains (and is polled): the lookup must not grow with the
        // versions the run has written (migration 0190).
        await using var db = NpgsqlDataSource.Create(await TestCluster.CreateDatabaseAsync("failedversions"));
        await MigrationRunner.ApplyAsync(db, Migration.Embedded, NullLogger.Instance);
        await using var conn = await db.OpenConnectionAsync();
        var run = await conn.ExecuteScalarAsync<long>("""
            INSERT INTO training_runs (trigger, status, created_at) VALUES ('api', 'running', now()) RETURNING id
            """);
        await conn.ExecuteAsync("""
            INSERT INTO resources (name, kind, load_metric, created_at, updated_at)
            SELECT 'r-' || g, 'service', 'qps', now(), now() FROM generate_series(1, 5000) g;
            INSERT INTO model_versions (resource_id, metric, run_id, status, trained_at, error)
            SELECT r.id, 'qps', @run, CASE WHEN r.id % 1000 = 0 THEN 'failed' ELSE 'active' END, now(),
                   CASE WHEN r.id % 1000 = 0 THEN 'no history' END
            FROM resources r;
            ANALYZE resources, model_versions;
            """, new { run });
        var plan = await conn.ExecuteScalarAsync<string>($"""
            EXPLAIN (FORMAT JSON)
            SELECT r.name, mv.metric, mv.error FROM model_versions mv JOIN resources r ON r.id = mv.resource_id
            WHERE mv.run_id = {run} AND mv.status = 'failed' ORDER BY r.name, mv.metric LIMIT 100
            """);
        Assert.Contains("\"model_versions_failed_by_run\"", plan);
        Assert.Equal(5, await conn.ExecuteScalarAsync<int>("SELECT count(*) FROM model_versions WHERE run_id = @run AND status = 'failed'", new { run }));
    }

    [Fact]
    public async Task VersionsTrainedBeforeTheDocumentsBecameJsonReadTheSameAfter()
    {
        // Migration 0240 turns a version's parameters and upper tail from jsonb into json: a database trained before it keeps
        // every document, read through the same operators and parsed by the planner as before.
        await using var db = NpgsqlDataSource.Create(await TestCluster.CreateDatabaseAsync("jsondocs"));
        var before = Migration.Embedded.Where(m => m.Version < 240).ToList();
        await MigrationRunner.ApplyAsync(db, before, NullLogger.Instance);
        await using var conn = await db.OpenConnectionAsync();
        await conn.ExecuteAsync("""
            INSERT INTO resources (name, kind, load_metric, created_at, updated_at) VALUES ('r', 'service', 'qps', now(), now());
            INSERT INTO model_versions (resource_id, metric, status, trained_at, parameters, upper_tail)
            SELECT id, 'qps', 'active', now(),
                   '{"model": "combo", "candidates": [{"model": "lgbm", "mase": 0.3684921395708109}], "globalModel": "global/run-7.zip"}'::jsonb,
                   '{"origin": "2026-12-01T22:00:00+00:00", "levels": [0.5, 0.995], "quantiles": [0.010566594807314393, 0.8551379749386004], "samples": 288, "stepScale": [1.0140899216340202, 0.9545287317927583]}'::jsonb
            FROM resources;
            """);

        Assert.Equal(Migration.Embedded.Count - before.Count, await MigrationRunner.ApplyAsync(db, Migration.Embedded, NullLogger.Instance));

        Assert.Equal(["json", "json"], await conn.QueryAsync<string>("""
            SELECT format_type(atttypid, atttypmod) FROM pg_attribute
            WHERE attrelid = 'model_versions'::regclass AND attname IN ('parameters', 'upper_tail') ORDER BY attname
            """));
        var (globalModel, mase) = await conn.QuerySingleAsync<(string, double)>(
            "SELECT parameters ->> 'globalModel', (parameters -> 'candidates' -> 0 ->> 'mase')::float8 FROM model_versions");
        Assert.Equal("global/run-7.zip", globalModel);
        Assert.Equal(0.3684921395708109, mase);
        var tail = System.Text.Json.JsonSerializer.Deserialize<Forecaster.Planner.UpperTail>(
            (await conn.ExecuteScalarAsync<string>("SELECT upper_tail::text FROM model_versions"))!,
            new System.Text.Json.JsonSerializerOptions(System.Text.Json.JsonSerializerDefaults.Web))!;
        Assert.Equal(new DateTimeOffset(2026, 12, 1, 22, 0, 0, TimeSpan.Zero), tail.Origin);
        Assert.Equal([1.0140899216340202, 0.9545287317927583], tail.StepScale);
        Assert.Equal([0.010566594807314393, 0.8551379749386004], tail.Quantiles);
        Assert.Equal(288, tail.Samples);
    }

    [Fact]
    public async Task AChangedAppliedMigrationIsRefused()
    {
        await using var db = NpgsqlDataSource.Create(await TestCluster.CreateDatabaseAsync("checksum"));
        await MigrationRunner.ApplyAsync(db, Migration.Embedded, NullLogger.Instance);
        var edited = Migration.Embedded.Select((m, i) => i == 0 ? m with { Sql = m.Sql + "\n-- edited" } : m).ToList();
        var error = await Assert.ThrowsAsync<MigrationException>(() => MigrationRunner.ApplyAsync(db, edited, NullLogger.Instance));
        Assert.Contains(Migration.Embedded[0].Name, error.Message, StringComparison.Ordinal);
        Assert.Contains("changed after it was applied", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ConcurrentRunnersApplyEachMigrationOnce()
    {
        await using var db = NpgsqlDataSource.Create(await TestCluster.CreateDatabaseAsync("concurrent"));
        var counts = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => MigrationRunner.ApplyAsync(db, Migration.Embedded, NullLogger.Instance)));
        Assert.Equal(Migration.Embedded.Count, counts.Sum());
    }

    [Fact]
    public async Task PartitionsAreCreatedForOldData()
    {
        await using var db = NpgsqlDataSource.Create(await TestCluster.CreateDatabaseAsync("partitions"));
        await MigrationRunner.ApplyAsync(db, Migration.Embedded, NullLogger.Instance);
        var partitions = new Forecaster.Api.Samples.SamplePartitions(db);
        await partitions.EnsureAsync(new DateTime(2023, 1, 15, 0, 0, 0, DateTimeKind.Utc), new DateTime(2023, 3, 2, 0, 0, 0, DateTimeKind.Utc), default);
        await using var conn = await db.OpenConnectionAsync();
        var names = (await conn.QueryAsync<string>("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'samples'::regclass ORDER BY 1")).ToList();
        Assert.Equal(["samples_202301", "samples_202302", "samples_202303"], names);
    }
}

public sealed class EmbeddedClusterTests
{
    [Fact]
    public async Task TheClusterKeepsItsDataAcrossARestartAndIsSharedWhileRunning()
    {
        var home = TestEnvironment.NewHome("restart");
        var cluster = EmbeddedPostgres.For(home, fast: true);
        try
        {
            var (cs, started) = await cluster.EnsureRunningAsync();
            Assert.True(started);
            await using (var conn = new NpgsqlConnection(cs))
            {
                await conn.ExecuteAsync("CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)");
            }
            // A second user of the same home connects to the running cluster instead of starting another.
            var (cs2, startedAgain) = await EmbeddedPostgres.For(home, fast: true).EnsureRunningAsync();
            Assert.False(startedAgain);
            Assert.Equal(new NpgsqlConnectionStringBuilder(cs).Port, new NpgsqlConnectionStringBuilder(cs2).Port);
            NpgsqlConnection.ClearAllPools();

            await cluster.StopAsync();
            Assert.False(cluster.Status().Running);

            var (cs3, restarted) = await cluster.EnsureRunningAsync();
            Assert.True(restarted);
            await using var again = new NpgsqlConnection(cs3);
            Assert.Equal(42, await again.ExecuteScalarAsync<int>("SELECT v FROM kept"));
        }
        finally
        {
            NpgsqlConnection.ClearAllPools();
            await cluster.StopAsync();
            TestEnvironment.TryDelete(home);
        }
    }
}
