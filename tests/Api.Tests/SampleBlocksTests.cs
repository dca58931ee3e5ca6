using Dapper;
using Forecaster.Api.Database;
using Forecaster.Api.Samples;
using Forecaster.Api.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Forecaster.Api.Tests;

/// <summary>
/// Samples stored as blocks, one row per (series, hour) (migration 0140): the upgrade of a database holding one row per
/// point, and the writers' row semantics on blocks (a (series, ts) once, the last write of it wins, other points of its
/// hour kept).
/// </summary>
public sealed class SampleBlocksTests
{
    static readonly DateTime Hour0 = new(2026, 3, 1, 10, 0, 0, DateTimeKind.Utc);

    [Fact]
    public async Task TheUpgradeTurnsStoredRowsIntoBlocksWithEveryPointKept()
    {
        await using var db = NpgsqlDataSource.Create(await TestCluster.CreateDatabaseAsync("blocks-upgrade"));
        await MigrationRunner.ApplyAsync(db, [.. Migration.Embedded.Where(m => m.Version < 140)], NullLogger.Instance);
        await using var conn = await db.OpenConnectionAsync();
        Assert.Equal(0, await conn.ExecuteScalarAsync<int>("SELECT count(*) FROM pg_attribute WHERE attrelid = 'samples'::regclass AND attname = 'hour'"));
        await conn.ExecuteAsync("SELECT ensure_sample_partitions('2026-01-31', '2026-03-02')");
        // Old-form rows across two months, several per hour, written out of time order; one series with a single point.
        await conn.ExecuteAsync("""
            INSERT INTO samples (series_id, ts, value)
            SELECT s, t, s * 1000 + extract(epoch FROM t - timestamptz '2026-01-31') / 60
            FROM generate_series(1, 3) s, generate_series(timestamptz '2026-01-31 22:00+00', timestamptz '2026-02-01 02:59+00', interval '7 minutes') t
            ORDER BY random();
            INSERT INTO samples (series_id, ts, value) VALUES (4, '2026-03-01 10:15:30.123456+00', 42.5);
            INSERT INTO samples (series_id, ts, value) VALUES (5, '2026-03-01 10:00+00', 7.25), (5, '2026-03-01 11:00+00', -1);
            """);
        var before = (await conn.QueryAsync<(int, DateTime, double)>("SELECT series_id, ts, value FROM samples ORDER BY 1, 2")).ToList();

        await MigrationRunner.ApplyAsync(db, Migration.Embedded, NullLogger.Instance);

        var after = (await conn.QueryAsync<(int, DateTime, double)>("SELECT series_id, ts, value FROM sample_points ORDER BY 1, 2")).ToList();
        Assert.Equal(before, after);
        // One block per series and hour, its points in increasing time inside the hour, in the month's partition.
        Assert.Equal(before.Select(r => (r.Item1, Hour: r.Item2.Ticks - r.Item2.Ticks % TimeSpan.TicksPerHour)).Distinct().Count(),
            await conn.ExecuteScalarAsync<int>("SELECT count(*) FROM samples"));
        Assert.Equal(0, await conn.ExecuteScalarAsync<int>("""
            SELECT count(*) FROM samples b
            WHERE cardinality(b.ts) <> cardinality(b.vals)
               OR EXISTS (SELECT 1 FROM unnest(b.ts) WITH ORDINALITY AS p(t, i) WHERE p.t < b.hour OR p.t >= b.hour + interval '1 hour' OR p.t <= b.ts[p.i - 1])
            """));
        Assert.Equal(["samples_202601", "samples_202602", "samples_202603"],
            (await conn.QueryAsync<string>("SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'samples'::regclass ORDER BY 1")).ToList());
        // Series 5's hourly points take the one-point form (value alone); series 4's one point off the hour keeps the arrays.
        Assert.Equal([(5, 7.25), (5, -1.0)], (await conn.QueryAsync<(int, double)>(
            "SELECT series_id, value FROM samples WHERE ts IS NULL AND vals IS NULL AND value IS NOT NULL ORDER BY hour")).ToList());
        Assert.Equal(0, await conn.ExecuteScalarAsync<int>("SELECT count(*) FROM samples WHERE (ts IS NULL) <> (vals IS NULL) OR (ts IS NULL) = (value IS NULL)"));
        // January 31, 22:00 and 23:00 of three series.
        Assert.Equal(6, await conn.ExecuteScalarAsync<int>("SELECT count(*) FROM samples_202601"));
    }

    [Fact]
    public async Task AnImportStoresEachPointOnceWhateverTheOrderAndAnUpsertKeepsTheOtherPointsOfItsHour()
    {
        await using var db = NpgsqlDataSource.Create(await TestCluster.CreateDatabaseAsync("blocks-import"));
        await MigrationRunner.ApplyAsync(db, Migration.Embedded, NullLogger.Instance);
        var partitions = new SamplePartitions(db);
        await partitions.EnsureAsync(Hour0.AddDays(-1), Hour0.AddDays(1), default);
        var now = new DateTimeOffset(Hour0.AddHours(5));

        async Task<ImportSummary> WriteAsync(params (string Metric, DateTime Ts, double Value)[] rows)
        {
            await using var import = await SampleImport.BeginAsync(db, partitions, createResources: true, now, default);
            foreach (var (metric, ts, value) in rows)
            {
                var key = import.FindKey($"web,{metric}");
                if (key < 0)
                {
                    key = await import.AddKeyAsync("web", metric, 1, default);
                }
                await import.AddAsync(key, ts, value, default);
            }
            var (summary, errors) = await import.CompleteAsync(default);
            Assert.Empty(errors);
            return summary!;
        }

        // Interleaved series, an hour's points out of order, a repeated timestamp (the last wins), then a series back to an
        // hour it has left: one block per (series, hour), so the last forces the merge, which keeps the same rows.
        var first = await WriteAsync(
            ("qps", Hour0.AddMinutes(30), 1), ("cpu", Hour0.AddMinutes(30), 10), ("qps", Hour0.AddMinutes(10), 2),
            ("qps", Hour0.AddMinutes(30), 3), ("qps", Hour0.AddMinutes(70), 4), ("cpu", Hour0.AddMinutes(75), 11));
        Assert.False(first.Upserted);
        Assert.Equal(
            [("cpu", Hour0.AddMinutes(30), 10.0), ("cpu", Hour0.AddMinutes(75), 11.0), ("qps", Hour0.AddMinutes(10), 2.0), ("qps", Hour0.AddMinutes(30), 3.0), ("qps", Hour0.AddMinutes(70), 4.0)],
            await PointsAsync(db));
        var back = await WriteAsync(("qps", Hour0.AddMinutes(125), 7), ("qps", Hour0.AddMinutes(200), 5), ("qps", Hour0.AddMinutes(190), 6), ("qps", Hour0.AddMinutes(195), 8));
        Assert.False(back.Upserted);
        var revisit = await WriteAsync(("qps", Hour0.AddMinutes(300), 9), ("qps", Hour0.AddMinutes(250), 10), ("qps", Hour0.AddMinutes(301), 11));
        Assert.True(revisit.Upserted);

        // An upsert into stored hours: one point overwritten, one added; the hour's other points stay.
        var upsert = await WriteAsync(("qps", Hour0.AddMinutes(30), 30), ("qps", Hour0.AddMinutes(40), 40));
        Assert.True(upsert.Upserted);
        var points = await PointsAsync(db);
        Assert.Equal(
            [(Hour0.AddMinutes(10), 2.0), (Hour0.AddMinutes(30), 30.0), (Hour0.AddMinutes(40), 40.0), (Hour0.AddMinutes(70), 4.0), (Hour0.AddMinutes(125), 7.0),
             (Hour0.AddMinutes(190), 6.0), (Hour0.AddMinutes(195), 8.0), (Hour0.AddMinutes(200), 5.0), (Hour0.AddMinutes(250), 10.0), (Hour0.AddMinutes(300), 9.0), (Hour0.AddMinutes(301), 11.0)],
            points.Where(p => p.Metric == "qps").Select(p => (p.Ts, p.Value)).ToList());

        // Training's hourly reader over the blocks: the mean and max of each hour.
        await using var conn = await db.OpenConnectionAsync();
        var qps = await conn.ExecuteScalarAsync<int>("SELECT id FROM series WHERE metric = 'qps'");
        var hourly = (await HourlyHistory.ReadAsync(conn, [qps], new DateTimeOffset(Hour0), new DateTimeOffset(Hour0.AddHours(6)), default))[qps];
        Assert.Equal([24.0, 4.0, 7.0, 19.0 / 3, 10.0, 10.0], hourly.Mean);
        Assert.Equal([40.0, 4.0, 7.0, 8.0, 10.0, 11.0], hourly.Max);

        // A retry of the same points changes nothing (no new row versions).
        var xmin = await conn.ExecuteScalarAsync<string>("SELECT string_agg(xmin::text, ',' ORDER BY series_id, hour) FROM samples");
        Assert.True((await WriteAsync(("qps", Hour0.AddMinutes(30), 30), ("qps", Hour0.AddMinutes(40), 40))).Upserted);
        Assert.Equal(xmin, await conn.ExecuteScalarAsync<string>("SELECT string_agg(xmin::text, ',' ORDER BY series_id, hour) FROM samples"));
    }

    [Fact]
    public async Task AnHourlyPointIsStoredInTheOnePointFormAndEveryWriterKeepsTheFormsExact()
    {
        await using var db = NpgsqlDataSource.Create(await TestCluster.CreateDatabaseAsync("blocks-onepoint"));
        await MigrationRunner.ApplyAsync(db, Migration.Embedded, NullLogger.Instance);
        var partitions = new SamplePartitions(db);
        await partitions.EnsureAsync(Hour0.AddDays(-1), Hour0.AddDays(1), default);
        var now = new DateTimeOffset(Hour0.AddHours(5));

        async Task<ImportSummary> WriteAsync(params (DateTime Ts, double Value)[] rows)
        {
            await using var import = await SampleImport.BeginAsync(db, partitions, createResources: true, now, default);
            var key = await import.AddKeyAsync("web", "qps", 1, default);
            foreach (var (ts, value) in rows)
            {
                await import.AddAsync(key, ts, value, default);
            }
            var (summary, errors) = await import.CompleteAsync(default);
            Assert.Empty(errors);
            return summary!;
        }
        await using var conn = await db.OpenConnectionAsync();
        async Task<List<(DateTime Hour, double? Value, int? Points)>> BlocksAsync() =>
            [.. (await conn.QueryAsync<(DateTime, double?, int?)>("SELECT hour, value, cardinality(ts) FROM samples ORDER BY hour"))
                .Select(r => (DateTime.SpecifyKind(r.Item1, DateTimeKind.Utc), r.Item2, r.Item3))];

        // Hourly points (the direct COPY): one-point rows; a point off the hour keeps the arrays.
        Assert.False((await WriteAsync((Hour0, 1), (Hour0.AddHours(1), 2), (Hour0.AddHours(2).AddMinutes(5), 3))).Upserted);
        Assert.Equal([(Hour0, 1.0, null), (Hour0.AddHours(1), 2.0, null), (Hour0.AddHours(2), null, 1)], await BlocksAsync());

        // An upsert of an hourly point overwrites its value in place; a retry of it writes nothing.
        Assert.True((await WriteAsync((Hour0, 10), (Hour0.AddHours(3), 4))).Upserted);
        Assert.Equal([(Hour0, 10.0, null), (Hour0.AddHours(1), 2.0, null), (Hour0.AddHours(2), null, 1), (Hour0.AddHours(3), 4.0, null)], await BlocksAsync());
        var xmin = await conn.ExecuteScalarAsync<string>("SELECT string_agg(xmin::text, ',' ORDER BY hour) FROM samples");
        Assert.True((await WriteAsync((Hour0, 10))).Upserted);
        Assert.Equal(xmin, await conn.ExecuteScalarAsync<string>("SELECT string_agg(xmin::text, ',' ORDER BY hour) FROM samples"));

        // A second point in a one-point hour turns it into arrays with both points; a point at the hour of an arrays block joins them.
        Assert.True((await WriteAsync((Hour0.AddMinutes(30), 11), (Hour0.AddHours(2), 12))).Upserted);
        Assert.Equal([(Hour0, null, 2), (Hour0.AddHours(1), 2.0, null), (Hour0.AddHours(2), null, 2), (Hour0.AddHours(3), 4.0, null)], await BlocksAsync());
        Assert.Equal([(Hour0, 10.0), (Hour0.AddMinutes(30), 11.0), (Hour0.AddHours(1), 2.0), (Hour0.AddHours(2), 12.0), (Hour0.AddHours(2).AddMinutes(5), 3.0), (Hour0.AddHours(3), 4.0)],
            (await PointsAsync(db)).Select(p => (p.Ts, p.Value)).ToList());
        // An hourly upsert (every row at the start of its hour: the merge without grouping) into hours of both forms.
        Assert.True((await WriteAsync((Hour0, 13), (Hour0.AddHours(1), 2), (Hour0.AddHours(2), 14))).Upserted);
        Assert.Equal([(Hour0, 13.0), (Hour0.AddMinutes(30), 11.0), (Hour0.AddHours(1), 2.0), (Hour0.AddHours(2), 14.0), (Hour0.AddHours(2).AddMinutes(5), 3.0), (Hour0.AddHours(3), 4.0)],
            (await PointsAsync(db)).Select(p => (p.Ts, p.Value)).ToList());
        Assert.Equal([(Hour0, null, 2), (Hour0.AddHours(1), 2.0, null), (Hour0.AddHours(2), null, 2), (Hour0.AddHours(3), 4.0, null)], await BlocksAsync());
        await conn.ExecuteAsync("UPDATE sample_points SET value = 10 WHERE ts = @ts", new { ts = Hour0 });
        await conn.ExecuteAsync("UPDATE sample_points SET value = 12 WHERE ts = @ts", new { ts = Hour0.AddHours(2) });

        // The points view's writers: deleting the other point leaves the hour's own in the one-point form; an update of
        // an hourly point and an insert at an empty hour keep it; deleting the last point removes the block.
        await conn.ExecuteAsync("DELETE FROM sample_points WHERE ts = @ts", new { ts = Hour0.AddMinutes(30) });
        await conn.ExecuteAsync("UPDATE sample_points SET value = 20 WHERE ts = @ts", new { ts = Hour0.AddHours(1) });
        await conn.ExecuteAsync("INSERT INTO sample_points (series_id, ts, value) SELECT series_id, @ts, 5 FROM samples LIMIT 1", new { ts = Hour0.AddHours(4) });
        await conn.ExecuteAsync("DELETE FROM sample_points WHERE ts = @ts", new { ts = Hour0.AddHours(3) });
        Assert.Equal([(Hour0, 10.0, null), (Hour0.AddHours(1), 20.0, null), (Hour0.AddHours(2), null, 2), (Hour0.AddHours(4), 5.0, null)], await BlocksAsync());

        // Every reader sees both forms: the hourly history and the API's raw points and aggregates.
        var qps = await conn.ExecuteScalarAsync<int>("SELECT id FROM series WHERE metric = 'qps'");
        var hourly = (await HourlyHistory.ReadAsync(conn, [qps], new DateTimeOffset(Hour0), new DateTimeOffset(Hour0.AddHours(5)), default))[qps];
        Assert.Equal([10.0, 20.0, 7.5, double.NaN, 5.0], hourly.Mean);
        Assert.Equal([10.0, 20.0, 12.0, double.NaN, 5.0], hourly.Max);

        // An hourly upsert out of order with a repeated timestamp: the last occurrence wins, the forms stay exact.
        Assert.True((await WriteAsync((Hour0.AddHours(4), 6), (Hour0.AddHours(1), 21), (Hour0.AddHours(4), 8))).Upserted);
        Assert.Equal([(Hour0, 10.0, null), (Hour0.AddHours(1), 21.0, null), (Hour0.AddHours(2), null, 2), (Hour0.AddHours(4), 8.0, null)], await BlocksAsync());
    }

    static async Task<List<(string Metric, DateTime Ts, double Value)>> PointsAsync(NpgsqlDataSource db)
    {
        await using var conn = await db.OpenConnectionAsync();
        return [.. (await conn.QueryAsync<(string, DateTime, double)>("""
            SELECT s.metric, p.ts, p.value FROM sample_points p JOIN series s ON s.id = p.series_id ORDER BY 1, 2
            """)).Select(r => (r.Item1, DateTime.SpecifyKind(r.Item2, DateTimeKind.Utc), r.Item3))];
    }
}
