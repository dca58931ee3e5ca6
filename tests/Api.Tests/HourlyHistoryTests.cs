using Dapper;
using Forecaster.Api.Database;
using Forecaster.Api.Samples;
using Forecaster.Api.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using static Forecaster.Planner.Hours;

namespace Forecaster.Api.Tests;

/// <summary>
/// The hourly history training and the planner's fallbacks read, month by month (one query per monthly partition): each
/// hour's mean (summed in time order) and max equal those of one pass over the samples in time order, whichever months
/// the range spans. Ranges start and end on whole hours (blocks are hours, 0140); another range is refused.
/// </summary>
public sealed class HourlyHistoryTests
{
    /// <summary>
    /// Series 1-3, four samples an hour at irregular minutes from February 26 to March 3, 2026, some hours empty; one value
    /// beyond the limit. Written series by series, or with <paramref name="timeMajor"/> in time order across the series (as an
    /// import of a fleet lays them: the blocks of different series interleaved on the heap).
    /// </summary>
    static async Task<(NpgsqlDataSource Db, List<(int Series, DateTime Ts, double Value)> Samples)> SeededAsync(bool timeMajor = false)
    {
        var db = NpgsqlDataSource.Create(await TestCluster.CreateDatabaseAsync("hourly-history"));
        await MigrationRunner.ApplyAsync(db, Migration.Embedded, NullLogger.Instance);
        await new SamplePartitions(db).EnsureAsync(new DateTime(2026, 2, 1, 0, 0, 0, DateTimeKind.Utc), new DateTime(2026, 3, 31, 0, 0, 0, DateTimeKind.Utc), default);
        var random = new Random(7);
        var samples = new List<(int Series, DateTime Ts, double Value)>();
        for (var series = 1; series <= 3; series++)
        {
            for (var hour = new DateTime(2026, 2, 26, 0, 0, 0, DateTimeKind.Utc); hour < new DateTime(2026, 3, 3, 0, 0, 0, DateTimeKind.Utc); hour = hour.AddHours(1))
            {
                if (random.Next(10) == 0)
                {
                    continue;
                }
                foreach (var minute in new[] { 1, 14, 29, 47 })
                {
                    // Values whose sums depend on their order, so that a different order would show.
                    samples.Add((series, hour.AddMinutes(minute + series), Math.Exp(random.NextDouble() * 40 - 20) * (random.Next(2) == 0 ? 1 : -1)));
                }
            }
        }
        samples.Add((2, new DateTime(2026, 3, 1, 0, 30, 0, DateTimeKind.Utc), SampleRules.AggregateLimit * 2));
        var written = timeMajor ? [.. samples.OrderBy(s => s.Ts)] : samples;
        await using var conn = await db.OpenConnectionAsync();
        // Through the points view (0140): its trigger merges each point into its hour's block.
        await conn.ExecuteAsync("INSERT INTO sample_points (series_id, ts, value) SELECT * FROM unnest(@ids, @ts, @values)",
            new { ids = written.Select(s => s.Series).ToArray(), ts = written.Select(s => s.Ts).ToArray(), values = written.Select(s => s.Value).ToArray() });
        return (db, samples);
    }

    /// <summary>The read gives exactly the expected series, and for each the same hourly means, maxima and ignored count.</summary>
    static void AssertSameHours(Dictionary<int, (double[] Mean, double[] Max, long Ignored)> expected, Dictionary<int, HourlyAggregates> read)
    {
        Assert.Equal(expected.Keys.Order(), read.Keys.Order());
        foreach (var (series, (mean, max, ignored)) in expected)
        {
            Assert.Equal(mean, read[series].Mean);
            Assert.Equal(max, read[series].Max);
            Assert.Equal(ignored, read[series].Ignored);
        }
    }

    /// <summary>The hourly means and maxima of one pass over the samples in time order, as the single query gave them.</summary>
    static Dictionary<int, (double[] Mean, double[] Max, long Ignored)> Expected(List<(int Series, DateTime Ts, double Value)> samples, DateTimeOffset from, DateTimeOffset to)
    {
        var hours = (int)((to - from) / Hour);
        var result = new Dictionary<int, (double[] Mean, double[] Max, long Ignored)>();
        foreach (var group in samples.Where(s => s.Ts >= from.UtcDateTime && s.Ts < to.UtcDateTime).GroupBy(s => s.Series))
        {
            var mean = Enumerable.Repeat(double.NaN, hours).ToArray();
            var max = Enumerable.Repeat(double.NaN, hours).ToArray();
            long ignored = 0;
            foreach (var hour in group.OrderBy(s => s.Ts).GroupBy(s => (int)((FloorHour(s.Ts).Ticks - from.UtcTicks) / Hour.Ticks)))
            {
                double sum = 0, top = double.NegativeInfinity;
                var count = 0;
                foreach (var (_, _, value) in hour)
                {
                    if (Math.Abs(value) <= SampleRules.AggregateLimit)
                    {
                        sum += value;
                        top = count == 0 ? value : Math.Max(top, value);
                        count++;
                    }
                    else
                    {
                        ignored++;
                    }
                }
                if (count > 0)
                {
                    mean[hour.Key] = sum / count;
                    max[hour.Key] = top;
                }
            }
            result[group.Key] = (mean, max, ignored);
        }
        return result;
    }

    [Theory]
    // Across the month's start.
    [InlineData("2026-02-27T00:00:00Z", "2026-03-02T00:00:00Z")]
    // March starting at hour 1 of the range.
    [InlineData("2026-02-28T23:00:00Z", "2026-03-02T05:00:00Z")]
    // Within one month.
    [InlineData("2026-03-01T03:00:00Z", "2026-03-02T03:00:00Z")]
    public async Task EachHourIsTheMeanAndMaxOfItsSamplesInTimeOrderAcrossMonths(string fromText, string toText)
    {
        var (db, samples) = await SeededAsync();
        await using var _ = db;
        var (from, to) = (DateTimeOffset.Parse(fromText, System.Globalization.CultureInfo.InvariantCulture), DateTimeOffset.Parse(toText, System.Globalization.CultureInfo.InvariantCulture));
        await using var conn = await db.OpenConnectionAsync();

        // Every day is stale (just written): the read sums the samples.
        var read = await HourlyHistory.ReadAsync(conn, [1, 2, 3, 4], from, to, default);
        AssertSameHours(Expected(samples, from, to), read);

        // Refreshed: the same hours from the rollups, none stale, a row per series and day.
        Assert.True(await HourlyRollups.RefreshAsync(db, null, default) > 0);
        Assert.Equal(0, await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM sample_hours_stale"));
        Assert.Equal(3 * 5, await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM sample_hours"));
        AssertSameHours(Expected(samples, from, to), await HourlyHistory.ReadAsync(conn, [1, 2, 3, 4], from, to, default));
    }

    /// <summary>
    /// Writes after a refresh (new points in refreshed hours, an hour deleted, a whole day deleted) are read at once from
    /// the samples of their days and, after the next refresh, from the rollups, with the same hours either way.
    /// </summary>
    [Fact]
    public async Task WritesAfterARefreshAreReadTheSameBeforeAndAfterTheNextRefresh()
    {
        var (db, samples) = await SeededAsync();
        await using var _ = db;
        var (from, to) = (new DateTimeOffset(2026, 2, 26, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(2026, 3, 3, 0, 0, 0, TimeSpan.Zero));
        await using var conn = await db.OpenConnectionAsync();
        await HourlyRollups.RefreshAsync(db, null, default);

        // A point added to an hour of series 1, one replacing a stored point of series 3; series 2's 27 February 05:00 deleted
        // through the view, and all of series 3's 1 March deleted by plain SQL on the blocks.
        var added = (Series: 1, Ts: new DateTime(2026, 2, 28, 10, 33, 0, DateTimeKind.Utc), Value: 1234.5);
        var replaced = samples.First(s => s.Series == 3 && s.Ts.Day == 27);
        await conn.ExecuteAsync("INSERT INTO sample_points (series_id, ts, value) VALUES (@Series, @Ts, @Value), (@s3, @t3, 99)",
            new { added.Series, added.Ts, added.Value, s3 = replaced.Series, t3 = replaced.Ts });
        await conn.ExecuteAsync("DELETE FROM sample_points WHERE series_id = 2 AND ts >= '2026-02-27 05:00+00' AND ts < '2026-02-27 06:00+00'");
        await conn.ExecuteAsync("DELETE FROM samples WHERE series_id = 3 AND hour >= '2026-03-01' AND hour < '2026-03-02'");
        samples.Add(added);
        samples[samples.IndexOf(replaced)] = (replaced.Series, replaced.Ts, 99);
        samples.RemoveAll(s => (s.Series == 2 && s.Ts >= new DateTime(2026, 2, 27, 5, 0, 0, DateTimeKind.Utc) && s.Ts < new DateTime(2026, 2, 27, 6, 0, 0, DateTimeKind.Utc))
            || (s.Series == 3 && s.Ts.Month == 3 && s.Ts.Day == 1));
        Assert.True(await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM sample_hours_stale") > 0);

        AssertSameHours(Expected(samples, from, to), await HourlyHistory.ReadAsync(conn, [1, 2, 3], from, to, default));
        await HourlyRollups.RefreshAsync(db, null, default);
        AssertSameHours(Expected(samples, from, to), await HourlyHistory.ReadAsync(conn, [1, 2, 3], from, to, default));
        // The day without samples has no rollup left.
        Assert.Equal(0, await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM sample_hours WHERE series_id = 3 AND day = '2026-03-01'"));
    }

    /// <summary>
    /// A day older than raw retention keeps (once refreshed) the hours whose samples retention removed: a late sample
    /// written into its emptied month adds its hour to the rollup instead of replacing the day.
    /// </summary>
    [Fact]
    public async Task ADayOlderThanRawRetentionKeepsTheHoursItsSamplesNoLongerShow()
    {
        var (db, samples) = await SeededAsync();
        await using var _ = db;
        var (from, to) = (new DateTimeOffset(2026, 2, 26, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(2026, 3, 1, 0, 0, 0, TimeSpan.Zero));
        await using var conn = await db.OpenConnectionAsync();
        await HourlyRollups.RefreshAsync(db, null, default);
        var before = Expected(samples, from, to);

        await conn.ExecuteAsync("TRUNCATE samples_202602");
        var late = new DateTime(2026, 2, 27, 23, 59, 0, DateTimeKind.Utc);
        await conn.ExecuteAsync("INSERT INTO sample_points (series_id, ts, value) VALUES (1, @late, 5)", new { late });
        var keptFrom = new DateTimeOffset(2026, 3, 1, 0, 0, 0, TimeSpan.Zero);
        await HourlyRollups.RefreshAsync(db, keptFrom, default);

        var read = await HourlyHistory.ReadAsync(conn, [1, 2, 3], from, to, default);
        var h = (int)((late - from.UtcDateTime) / Hour);
        Assert.Equal(5, read[1].Mean[h]);
        before[1].Mean[h] = 5;
        before[1].Max[h] = 5;
        AssertSameHours(before, read);
    }

    /// <summary>
    /// Writers through the service's bulk path (SampleImport.WriteSeriesAsync, as Prometheus pulls write) and a refresh
    /// running over and over beside them: once both stop and a last refresh runs, every rollup equals its samples.
    /// </summary>
    [Fact]
    public async Task RollupsRefreshedBesideConcurrentWritersEqualTheSamples()
    {
        var (db, _) = await SeededAsync();
        await using var _db = db;
        var partitions = new SamplePartitions(db);
        await using (var setup = await db.OpenConnectionAsync())
        {
            await setup.ExecuteAsync("INSERT INTO resources (name, kind, load_metric, created_at, updated_at) VALUES ('rollup-writers', 'service', 'rps', now(), now())");
        }
        var resourceId = await (await db.OpenConnectionAsync()).ExecuteScalarAsync<int>("SELECT id FROM resources WHERE name = 'rollup-writers'");
        using var stop = new CancellationTokenSource();
        var refresher = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                await HourlyRollups.RefreshAsync(db, null, default, batch: 7);
            }
        });
        var writers = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            var random = new Random(w);
            for (var round = 0; round < 15; round++)
            {
                await using var conn = await db.OpenConnectionAsync();
                await using var tx = await conn.BeginTransactionAsync();
                var start = new DateTime(2026, 2, 26, 0, 0, 0, DateTimeKind.Utc).AddMinutes(random.Next(0, 6 * 24 * 60));
                List<(DateTime, double)> points = [.. Enumerable.Range(0, random.Next(1, 40)).Select(i => (start.AddMinutes(i * 7), random.NextDouble() * 100))];
                await SampleImport.WriteSeriesAsync(conn, tx, partitions,
                    [new SampleImport.SeriesPoints(resourceId, $"m{w % 2}", points, MayExist: true)], default);
                await tx.CommitAsync();
            }
        })).ToList();
        await Task.WhenAll(writers);
        stop.Cancel();
        await refresher;
        await HourlyRollups.RefreshAsync(db, null, default);

        await using var conn = await db.OpenConnectionAsync();
        var all = (await conn.QueryAsync<(int Series, DateTime Ts, double Value)>("SELECT series_id, ts, value FROM sample_points")).ToList();
        var ids = all.Select(s => s.Series).Distinct().ToArray();
        var (from, to) = (new DateTimeOffset(2026, 2, 26, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(2026, 3, 4, 0, 0, 0, TimeSpan.Zero));
        // The writers' two series (m0, m1) besides the seeded ones.
        Assert.Equal(2, await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM series"));
        AssertSameHours(Expected(all, from, to), await HourlyHistory.ReadAsync(conn, ids, from, to, default));
        // Read from the rollups alone: nothing is stale.
        Assert.Equal(0, await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM sample_hours_stale"));
    }

    /// <summary>Upgrading a database that already holds samples (0170 applied after them): every stored day is marked stale, and the first refresh makes its rollup.</summary>
    [Fact]
    public async Task TheUpgradeMarksEveryStoredDayStale()
    {
        var db = NpgsqlDataSource.Create(await TestCluster.CreateDatabaseAsync("hourly-upgrade"));
        await using var _ = db;
        await MigrationRunner.ApplyAsync(db, [.. Migration.Embedded.Where(m => m.Version < 170)], NullLogger.Instance);
        await new SamplePartitions(db).EnsureAsync(new DateTime(2026, 2, 1, 0, 0, 0, DateTimeKind.Utc), new DateTime(2026, 3, 31, 0, 0, 0, DateTimeKind.Utc), default);
        await using var conn = await db.OpenConnectionAsync();
        await conn.ExecuteAsync("INSERT INTO sample_points (series_id, ts, value) SELECT 1, t, extract(hour from t) FROM generate_series(timestamptz '2026-02-27 00:00+00', '2026-03-01 23:00+00', interval '1 hour') t");

        await MigrationRunner.ApplyAsync(db, Migration.Embedded, NullLogger.Instance);

        Assert.Equal(3, await conn.ExecuteScalarAsync<long>("SELECT count(DISTINCT day) FROM sample_hours_stale WHERE series_id = 1"));
        Assert.Equal(3, await HourlyRollups.RefreshAsync(db, null, default));
        var read = await HourlyHistory.ReadAsync(conn, [1], new DateTimeOffset(2026, 2, 27, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(2026, 3, 2, 0, 0, 0, TimeSpan.Zero), default);
        Assert.Equal(Enumerable.Range(0, 72).Select(h => (double)(h % 24)), read[1].Mean);
    }

    /// <summary>
    /// The read asks for no order (a bitmap heap scan sends the rows page by page): rows of different series interleaved, as
    /// a sequential scan of blocks written in time order sends them, give the same arrays as rows in key order.
    /// </summary>
    [Fact]
    public async Task RowsInHeapOrderGiveTheSameHoursAsRowsInKeyOrder()
    {
        var (db, samples) = await SeededAsync(timeMajor: true);
        await using var _ = db;
        var (from, to) = (new DateTimeOffset(2026, 2, 27, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(2026, 3, 2, 0, 0, 0, TimeSpan.Zero));
        await using var conn = await db.OpenConnectionAsync();
        await conn.ExecuteAsync("SET enable_indexscan = off; SET enable_indexonlyscan = off; SET enable_bitmapscan = off");
        // The scan does interleave the series here, so the test sees what it means to.
        var order = (await conn.QueryAsync<int>("SELECT series_id FROM samples WHERE series_id = ANY(@ids) AND hour >= @from AND hour < @to",
            new { ids = new[] { 1, 2, 3 }, from = from.UtcDateTime, to = new DateTime(2026, 3, 1, 0, 0, 0, DateTimeKind.Utc) })).ToList();
        Assert.NotEqual(order.Order(), order);

        var read = await HourlyHistory.ReadAsync(conn, [1, 2, 3, 4], from, to, default);

        AssertSameHours(Expected(samples, from, to), read);
    }

    [Fact]
    public async Task ARangeOffTheHourIsRefused()
    {
        var (db, _) = await SeededAsync();
        await using var _db = db;
        await using var conn = await db.OpenConnectionAsync();
        await Assert.ThrowsAsync<ArgumentException>(() => HourlyHistory.ReadAsync(conn, [1],
            new DateTimeOffset(2026, 2, 27, 10, 42, 0, TimeSpan.Zero), new DateTimeOffset(2026, 3, 2, 10, 42, 0, TimeSpan.Zero), default));
    }
}
