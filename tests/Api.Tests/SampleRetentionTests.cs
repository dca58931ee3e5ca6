using Dapper;
using Forecaster.Api.Database;
using Forecaster.Api.Samples;
using Forecaster.Api.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Forecaster.Api.Tests;

public sealed class SampleRetentionTests
{
    static readonly DateTimeOffset Now = new(2026, 3, 15, 12, 0, 0, TimeSpan.Zero);

    /// <summary>A database with monthly partitions from November 2024 and one sample per series every 6 hours up to now.</summary>
    static async Task<NpgsqlDataSource> SeededAsync(string label)
    {
        var db = NpgsqlDataSource.Create(await TestCluster.CreateDatabaseAsync(label));
        await MigrationRunner.ApplyAsync(db, Migration.Embedded, NullLogger.Instance);
        await new SamplePartitions(db).EnsureAsync(new DateTime(2024, 11, 1, 0, 0, 0, DateTimeKind.Utc), Now.UtcDateTime, default);
        await using var conn = await db.OpenConnectionAsync();
        await conn.ExecuteAsync("""
            INSERT INTO sample_points (series_id, ts, value)
            SELECT s, t, 1 FROM generate_series(1, 3) s, generate_series(timestamptz '2024-11-01', @Now, interval '6 hours') t
            """, new { Now });
        return db;
    }

    static async Task<List<string>> PartitionsAsync(NpgsqlConnection conn) =>
        [.. await conn.QueryAsync<string>("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'samples'::regclass ORDER BY 1")];

    [Fact]
    public async Task RetentionKeepsEverySampleOfTheTrainingWindowAndRemovesOnlyWholeOlderPartitions()
    {
        await using var db = await SeededAsync("retention");
        await using var conn = await db.OpenConnectionAsync();
        // Training reads 35 days; raw samples are kept 40 (both as configured by default).
        var window = Now - TimeSpan.FromDays(35);
        var kept = Now - TimeSpan.FromDays(40);
        const string countSince = "SELECT count(*) FROM sample_points WHERE ts >= @since";
        var inWindow = await conn.ExecuteScalarAsync<long>(countSince, new { since = window });
        var inRetention = await conn.ExecuteScalarAsync<long>(countSince, new { since = kept });
        var februaryAndLater = await conn.ExecuteScalarAsync<long>(countSince, new { since = new DateTime(2026, 2, 1, 0, 0, 0, DateTimeKind.Utc) });

        var outcome = await SampleRetention.ApplyAsync(db, rawDays: 40, historyDays: 35, maxSampleAgeDays: 400, Now, default);

        Assert.Equal(Now - TimeSpan.FromDays(40), outcome.Cutoff);
        Assert.Equal(inWindow, await conn.ExecuteScalarAsync<long>(countSince, new { since = window }));
        Assert.Equal(inRetention, await conn.ExecuteScalarAsync<long>(countSince, new { since = kept }));
        // The cutoff (February 3) falls inside February's partition: all of it stays, samples older than 40 days included.
        Assert.Equal(februaryAndLater, await conn.ExecuteScalarAsync<long>(countSince, new { since = new DateTime(2026, 2, 1, 0, 0, 0, DateTimeKind.Utc) }));
        Assert.Equal(0, await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM sample_points WHERE ts < '2026-02-01'"));
        var partitions = await PartitionsAsync(conn);
        // Older than any accepted sample (400 days, before 2025-02-08): dropped. Younger: emptied and kept for late samples.
        Assert.DoesNotContain("samples_202411", partitions);
        Assert.DoesNotContain("samples_202501", partitions);
        Assert.Contains("samples_202502", partitions);
        Assert.Contains("samples_202601", partitions);
        Assert.Contains(outcome.Partitions, p => p is { Partition: "samples_202411", Action: "dropped" });
        Assert.Contains(outcome.Partitions, p => p is { Partition: "samples_202601", Action: "emptied" });
        Assert.DoesNotContain(outcome.Partitions, p => p.UpperBound > outcome.Cutoff!.Value.UtcDateTime);

        // A late sample of an emptied month still has a partition to go to.
        await conn.ExecuteAsync("INSERT INTO sample_points (series_id, ts, value) VALUES (1, '2026-01-10', 2)");
        // A second pass finds nothing more to do but that late sample's month.
        var again = await SampleRetention.ApplyAsync(db, rawDays: 40, historyDays: 35, maxSampleAgeDays: 400, Now, default);
        Assert.Equal([("samples_202601", "emptied")], again.Partitions.Select(p => (p.Partition, p.Action)));
    }

    [Fact]
    public async Task RetentionNeverCutsIntoTheWindowOfARunStillInProgressOrIntoTheTrainingWindow()
    {
        await using var db = await SeededAsync("retention-run");
        await using var conn = await db.OpenConnectionAsync();
        // A run created on January 20 (still running) fits the 35 days before it: from December 16.
        await conn.ExecuteAsync("""
            INSERT INTO training_runs (trigger, status, created_at, started_at) VALUES ('api', 'running', '2026-01-20 00:00:00+00', '2026-01-20 00:00:00+00')
            """);
        var december = await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM sample_points WHERE ts >= '2025-12-01'");

        // Asked to keep 10 days only, retention still keeps the training window's 35 and the running run's window.
        var outcome = await SampleRetention.ApplyAsync(db, rawDays: 10, historyDays: 35, maxSampleAgeDays: 400, Now, default);

        Assert.True(outcome.Cutoff <= new DateTimeOffset(2025, 12, 16, 0, 0, 0, TimeSpan.Zero));
        Assert.Equal(december, await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM sample_points WHERE ts >= '2025-12-01'"));
        Assert.Equal(0, await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM sample_points WHERE ts < '2025-12-01'"));
        Assert.Contains("samples_202512", await PartitionsAsync(conn));
    }

    [Fact]
    public async Task ZeroRawDaysKeepsEverything()
    {
        await using var db = await SeededAsync("retention-off");
        await using var conn = await db.OpenConnectionAsync();
        var all = await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM sample_points");
        var outcome = await SampleRetention.ApplyAsync(db, rawDays: 0, historyDays: 35, maxSampleAgeDays: 400, Now, default);
        Assert.Empty(outcome.Partitions);
        Assert.Equal(all, await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM sample_points"));
    }

    /// <summary>
    /// Hourly rollups outlive the raw samples: after a pass with raw samples kept 40 days and rollups 400, the hours of
    /// January (raw samples emptied) still read as before from their rollups, and only rollup months wholly older than
    /// 400 days are dropped.
    /// </summary>
    [Fact]
    public async Task HourlyRollupsOutliveRawSamplesAndGoOnlyWhenOlderThanTheirOwnRetention()
    {
        await using var db = await SeededAsync("retention-rollups");
        await using var conn = await db.OpenConnectionAsync();
        var (from, to) = (new DateTimeOffset(2025, 3, 1, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(2026, 2, 1, 0, 0, 0, TimeSpan.Zero));
        var before = await HourlyHistory.ReadAsync(conn, [1, 2, 3], from, to, default);
        Assert.Equal(3, before.Count);

        var outcome = await SampleRetention.ApplyAsync(db, rawDays: 40, historyDays: 35, maxSampleAgeDays: 400, Now, default, hourlyDays: 400);

        Assert.Equal(0, await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM sample_points WHERE ts < '2026-02-01'"));
        var after = await HourlyHistory.ReadAsync(conn, [1, 2, 3], from, to, default);
        foreach (var series in new[] { 1, 2, 3 })
        {
            Assert.Equal(before[series].Mean, after[series].Mean);
            Assert.Equal(before[series].Max, after[series].Max);
            Assert.Contains(1.0, after[series].Mean);
        }
        // 400 days before March 15, 2026 is February 8, 2025: November 2024 to January 2025 go, February 2025 stays.
        var rollupMonths = (await conn.QueryAsync<string>("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'sample_hours'::regclass ORDER BY 1")).ToList();
        Assert.Equal("sample_hours_202502", rollupMonths[0]);
        Assert.Contains(outcome.Partitions, p => p is { Partition: "sample_hours_202501", Action: "dropped" });
        Assert.DoesNotContain(outcome.Partitions, p => p.Partition == "sample_hours_202502");
    }
}
