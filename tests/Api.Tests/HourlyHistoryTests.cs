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
        // Beside them, one session writes and deletes points of a series of its own (1000) through the view and deletes its
        // blocks by plain SQL: marks of single hours and of deleted hour ranges (its own series, so it cannot deadlock
        // with the bulk writers, whose series' ids it does not know in advance).
        var viewWriter = Task.Run(async () =>
        {
            var random = new Random(99);
            await using var conn = await db.OpenConnectionAsync();
            for (var round = 0; round < 40; round++)
            {
                var at = new DateTime(2026, 2, 26, 0, 0, 0, DateTimeKind.Utc).AddMinutes(random.Next(0, 6 * 24 * 60));
                switch (random.Next(3))
                {
                    case 0:
                        await conn.ExecuteAsync("INSERT INTO sample_points (series_id, ts, value) SELECT 1000, @at + i * interval '13 minutes', random() * 50 FROM generate_series(0, @n) i",
                            new { at, n = random.Next(0, 10) });
                        break;
                    case 1:
                        await conn.ExecuteAsync("DELETE FROM sample_points WHERE series_id = 1000 AND ts >= @at AND ts < @at + interval '40 minutes'", new { at });
                        break;
                    default:
                        await conn.ExecuteAsync("DELETE FROM samples WHERE series_id = 1000 AND hour >= @at AND hour < @at + @span * interval '1 hour'", new { at, span = random.Next(1, 30) });
                        break;
                }
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
        await Task.WhenAll([.. writers, viewWriter]);
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
        await AssertSameAsWholeDaysAsync(db);
    }

    /// <summary>Every rollup row, in key order, as stored.</summary>
    static async Task<List<(int SeriesId, DateTime Day, byte[] Mean, byte[] Max, byte[]? Ignored)>> RollupRowsAsync(NpgsqlConnection conn) =>
        [.. await conn.QueryAsync<(int, DateTime, byte[], byte[], byte[]?)>("SELECT series_id, day, mean, max, ignored FROM sample_hours ORDER BY series_id, day")];

    /// <summary>
    /// The rollups as they stand (nothing stale) are byte for byte what recomputing every stored day whole gives: all rows
    /// dropped, every day with samples marked without hours (as before 0210), refreshed.
    /// </summary>
    static async Task AssertSameAsWholeDaysAsync(NpgsqlDataSource db)
    {
        await using var conn = await db.OpenConnectionAsync();
        Assert.Equal(0, await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM sample_hours_stale"));
        var rows = await RollupRowsAsync(conn);
        await conn.ExecuteAsync("""
            DELETE FROM sample_hours;
            INSERT INTO sample_hours_stale (series_id, day) SELECT DISTINCT series_id, date_bin('1 day', hour, timestamptz '2000-01-01 00:00:00+00') FROM samples;
            """);
        await HourlyRollups.RefreshAsync(db, null, default);
        var whole = await RollupRowsAsync(conn);
        Assert.Equal(whole.Count, rows.Count);
        for (var i = 0; i < rows.Count; i++)
        {
            Assert.Equal((whole[i].SeriesId, whole[i].Day), (rows[i].SeriesId, rows[i].Day));
            Assert.Equal(whole[i].Mean, rows[i].Mean);
            Assert.Equal(whole[i].Max, rows[i].Max);
            Assert.Equal(whole[i].Ignored, rows[i].Ignored);
        }
    }

    /// <summary>The stale marks as (series, day, first hour, last hour), in order; null hours for a mark of the whole day.</summary>
    static async Task<List<(int, DateTime, int?, int?)>> MarksAsync(NpgsqlConnection conn) =>
        [.. (await conn.QueryAsync<(int, DateTime, int?, int?)>("SELECT series_id, day, first_hour::int, last_hour::int FROM sample_hours_stale"))
            .Select(m => (m.Item1, DateTime.SpecifyKind(m.Item2, DateTimeKind.Utc), m.Item3, m.Item4)).Order()];

    static async Task<int> ResourceAsync(NpgsqlDataSource db, string name)
    {
        await using var conn = await db.OpenConnectionAsync();
        return await conn.ExecuteScalarAsync<int>("INSERT INTO resources (name, kind, load_metric, created_at, updated_at) VALUES (@name, 'service', 'rps', now(), now()) RETURNING id", new { name });
    }

    /// <summary>Writes <paramref name="points"/> of (resource, metric) through the service's bulk path, in a transaction of its own; returns the series id.</summary>
    static async Task<int> WriteBulkAsync(NpgsqlDataSource db, int resourceId, string metric, List<(DateTime, double)> points)
    {
        await using var conn = await db.OpenConnectionAsync();
        await using (var tx = await conn.BeginTransactionAsync())
        {
            await SampleImport.WriteSeriesAsync(conn, tx, new SamplePartitions(db), [new SampleImport.SeriesPoints(resourceId, metric, points, MayExist: true)], default);
            await tx.CommitAsync();
        }
        return await conn.ExecuteScalarAsync<int>("SELECT id FROM series WHERE resource_id = @resourceId AND metric = @metric", new { resourceId, metric });
    }

    /// <summary>
    /// Each write marks the hours it touched, one mark per day: a bulk write across three days its first day from its first
    /// sample's hour, the inner day whole, the last day to its last sample's hour; a point through the view its hour; a
    /// deletion of blocks the hours from its first deleted block to its last.
    /// </summary>
    [Fact]
    public async Task MarksNameTheHoursEachWriteTouched()
    {
        var (db, samples) = await SeededAsync();
        await using var _ = db;
        await using var conn = await db.OpenConnectionAsync();
        await HourlyRollups.RefreshAsync(db, null, default);
        var resourceId = await ResourceAsync(db, "marks");

        var start = new DateTime(2026, 2, 27, 14, 10, 0, DateTimeKind.Utc);
        var bulk = await WriteBulkAsync(db, resourceId, "rps", [.. Enumerable.Range(0, 120).Select(i => (start.AddMinutes(i * 20), (double)i))]);
        await conn.ExecuteAsync("INSERT INTO sample_points (series_id, ts, value) VALUES (1, '2026-02-26 07:15+00', 3)");
        // Series 2's blocks from 03:00 to 08:59 on 27 February: the first and last of them present give the mark's hours.
        var deleted = samples.Where(s => s.Series == 2 && s.Ts >= new DateTime(2026, 2, 27, 3, 0, 0, DateTimeKind.Utc) && s.Ts < new DateTime(2026, 2, 27, 9, 0, 0, DateTimeKind.Utc)).ToList();
        await conn.ExecuteAsync("DELETE FROM samples WHERE series_id = 2 AND hour >= '2026-02-27 03:00+00' AND hour < '2026-02-27 09:00+00'");

        // The bulk series' last point: 14:10 + 119 × 20 min = 1 March 05:50.
        var day = (int d, int m) => new DateTime(2026, m, d, 0, 0, 0, DateTimeKind.Utc);
        List<(int, DateTime, int?, int?)> expected =
        [
            (bulk, day(27, 2), 14, 23), (bulk, day(28, 2), 0, 23), (bulk, day(1, 3), 0, 5),
            (1, day(26, 2), 7, 7),
            (2, day(27, 2), deleted.Min(s => s.Ts.Hour), deleted.Max(s => s.Ts.Hour)),
        ];
        Assert.Equal(expected.Order(), await MarksAsync(conn));
    }

    /// <summary>
    /// Random writes and deletions across hours and days (points through the view, bulk writes spanning midnight, deletions
    /// of points and of block ranges, days that had no row), each round refreshed (in batches of a few marks or all at once):
    /// the history read equals the samples before and after each refresh, and in the end every rollup is byte for byte what
    /// recomputing its day whole gives.
    /// </summary>
    [Fact]
    public async Task RandomWritesAcrossHoursAndDaysRefreshTheSameRollupsAsWholeDays()
    {
        var (db, _) = await SeededAsync();
        await using var _db = db;
        await using var conn = await db.OpenConnectionAsync();
        await HourlyRollups.RefreshAsync(db, null, default);
        var resourceId = await ResourceAsync(db, "random-writes");
        var random = new Random(11);
        // A day before and a day after the seeded ones: days without a row yet.
        var (from, to) = (new DateTimeOffset(2026, 2, 25, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(2026, 3, 4, 0, 0, 0, TimeSpan.Zero));
        DateTime At() => from.UtcDateTime.AddMinutes(random.Next(0, (int)(to - from).TotalMinutes));
        for (var round = 0; round < 12; round++)
        {
            for (var op = random.Next(1, 5); op > 0; op--)
            {
                var at = At();
                switch (random.Next(4))
                {
                    case 0:
                        await conn.ExecuteAsync("INSERT INTO sample_points (series_id, ts, value) SELECT @series, @at + i * interval '7 minutes', random() * 100 FROM generate_series(0, @n) i WHERE @at + i * interval '7 minutes' < @to",
                            new { series = random.Next(1, 5), at, n = random.Next(0, 6), to = to.UtcDateTime });
                        break;
                    case 1:
                        await conn.ExecuteAsync("DELETE FROM sample_points WHERE series_id = @series AND ts >= @at AND ts < @at + @minutes * interval '1 minute'",
                            new { series = random.Next(1, 5), at, minutes = random.Next(10, 300) });
                        break;
                    case 2:
                        await conn.ExecuteAsync("DELETE FROM samples WHERE series_id = @series AND hour >= @at AND hour < @at + @hours * interval '1 hour'",
                            new { series = random.Next(1, 5), at, hours = random.Next(1, 40) });
                        break;
                    default:
                        // Every 17 minutes for up to 50 hours, from the bulk path (across midnight more often than not).
                        var points = Enumerable.Range(0, random.Next(1, 180)).Select(i => (at.AddMinutes(i * 17), random.NextDouble() * 1e3)).Where(p => p.Item1 < to.UtcDateTime).ToList();
                        await WriteBulkAsync(db, resourceId, $"m{random.Next(2)}", points);
                        break;
                }
            }
            var all = (await conn.QueryAsync<(int Series, DateTime Ts, double Value)>("SELECT series_id, ts, value FROM sample_points")).ToList();
            int[] ids = [.. all.Select(s => s.Series).Distinct(), 4];
            AssertSameHours(Expected(all, from, to), await HourlyHistory.ReadAsync(conn, ids, from, to, default));
            await HourlyRollups.RefreshAsync(db, null, default, batch: random.Next(2) == 0 ? 3 : 10_000);
            Assert.Equal(0, await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM sample_hours_stale"));
            AssertSameHours(Expected(all, from, to), await HourlyHistory.ReadAsync(conn, ids, from, to, default));
        }
        await AssertSameAsWholeDaysAsync(db);
    }

    /// <summary>
    /// A refresh recomputes the marked hours only: an hour of the stored row outside them keeps what the row said (here a
    /// value planted in it, which no sample gives), while the marked hour takes its new samples. A mark without hours (as
    /// before 0210) recomputes the whole day. A write that changes no hour leaves the row as it was (no new row version).
    /// </summary>
    [Fact]
    public async Task AnExistingRollupsOtherHoursAreNotRecomputed()
    {
        var (db, samples) = await SeededAsync();
        await using var _ = db;
        await using var conn = await db.OpenConnectionAsync();
        await HourlyRollups.RefreshAsync(db, null, default);
        var day = new DateTime(2026, 2, 28, 0, 0, 0, DateTimeKind.Utc);
        var (from, to) = (new DateTimeOffset(day), new DateTimeOffset(day.AddDays(1)));
        // Hour 3's mean planted as 42 in series 1's row of 28 February.
        await conn.ExecuteAsync("UPDATE sample_hours SET mean = overlay(mean PLACING @planted FROM 3 * 8 + 1) WHERE series_id = 1 AND day = @day",
            new { planted = BitConverter.GetBytes(42.0), day });
        var before = (await HourlyHistory.ReadAsync(conn, [1], from, to, default))[1];
        Assert.Equal(42, before.Mean[3]);

        await conn.ExecuteAsync("INSERT INTO sample_points (series_id, ts, value) VALUES (1, '2026-02-28 10:33+00', 1234.5)");
        samples.Add((1, new DateTime(2026, 2, 28, 10, 33, 0, DateTimeKind.Utc), 1234.5));
        await HourlyRollups.RefreshAsync(db, null, default);

        var after = (await HourlyHistory.ReadAsync(conn, [1], from, to, default))[1];
        var expected = Expected(samples, from, to)[1];
        Assert.Equal(42, after.Mean[3]);
        Assert.Equal(expected.Mean[10], after.Mean[10]);
        Assert.Equal(expected.Max[10], after.Max[10]);
        Assert.NotEqual(before.Mean[10], after.Mean[10]);
        for (var h = 0; h < 24; h++)
        {
            if (h != 10)
            {
                Assert.Equal(before.Mean[h], after.Mean[h]);
                Assert.Equal(before.Max[h], after.Max[h]);
            }
        }

        // The same point again: its hour is marked and recomputed, to the same bytes, so the row is not written.
        const string version = "SELECT xmin::text FROM sample_hours WHERE series_id = 1 AND day = @day";
        var written = await conn.ExecuteScalarAsync<string>(version, new { day });
        await conn.ExecuteAsync("INSERT INTO sample_points (series_id, ts, value) VALUES (1, '2026-02-28 10:33+00', 1234.5)");
        Assert.Equal(1, await HourlyRollups.RefreshAsync(db, null, default));
        Assert.Equal(written, await conn.ExecuteScalarAsync<string>(version, new { day }));

        // A mark without hours: the whole day from its samples, the planted value gone.
        await conn.ExecuteAsync("INSERT INTO sample_hours_stale (series_id, day) VALUES (1, @day)", new { day });
        await HourlyRollups.RefreshAsync(db, null, default);
        AssertSameHours(new() { [1] = expected }, await HourlyHistory.ReadAsync(conn, [1], from, to, default));
    }

    /// <summary>
    /// A day without a row yet (no samples before) gets one from its marked hours, every other hour empty; when its last
    /// sample is deleted the row goes.
    /// </summary>
    [Fact]
    public async Task ADayWithoutARowGetsOneFromItsMarkedHoursAndLosesItWithTheirSamples()
    {
        var (db, _) = await SeededAsync();
        await using var _db = db;
        await using var conn = await db.OpenConnectionAsync();
        await HourlyRollups.RefreshAsync(db, null, default);
        var day = new DateTime(2026, 3, 3, 0, 0, 0, DateTimeKind.Utc);
        Assert.Equal(0, await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM sample_hours WHERE day = @day", new { day }));

        await conn.ExecuteAsync("INSERT INTO sample_points (series_id, ts, value) VALUES (1, '2026-03-03 05:20+00', 7), (1, '2026-03-03 05:40+00', 9)");
        List<(int, DateTime, int?, int?)> marks = [(1, day, 5, 5), (1, day, 5, 5)];
        Assert.Equal(marks, await MarksAsync(conn));
        Assert.Equal(1, await HourlyRollups.RefreshAsync(db, null, default));

        var read = (await HourlyHistory.ReadAsync(conn, [1], new DateTimeOffset(day), new DateTimeOffset(day.AddDays(1)), default))[1];
        Assert.Equal(Enumerable.Range(0, 24).Select(h => h == 5 ? 8 : double.NaN), read.Mean);
        Assert.Equal(Enumerable.Range(0, 24).Select(h => h == 5 ? 9 : double.NaN), read.Max);
        Assert.Equal(0, read.Ignored);
        Assert.Null(await conn.ExecuteScalarAsync<byte[]?>("SELECT ignored FROM sample_hours WHERE series_id = 1 AND day = @day", new { day }));

        await conn.ExecuteAsync("DELETE FROM sample_points WHERE series_id = 1 AND ts >= '2026-03-03'");
        await HourlyRollups.RefreshAsync(db, null, default);
        Assert.Equal(0, await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM sample_hours WHERE day = @day", new { day }));
        Assert.Empty(await HourlyHistory.ReadAsync(conn, [1], new DateTimeOffset(day), new DateTimeOffset(day.AddDays(1)), default));
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
