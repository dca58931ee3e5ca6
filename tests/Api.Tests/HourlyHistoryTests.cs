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

        var read = await HourlyHistory.ReadAsync(conn, [1, 2, 3, 4], from, to, default);

        AssertSameHours(Expected(samples, from, to), read);
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
