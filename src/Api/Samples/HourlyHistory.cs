using Npgsql;
using static Forecaster.Planner.Hours;

namespace Forecaster.Api.Samples;

/// <summary>Hourly mean and max of one series over a range; NaN where nothing was observed.</summary>
public sealed record HourlyAggregates(double[] Mean, double[] Max)
{
    /// <summary>Stored samples left out because they are beyond <see cref="SampleRules.AggregateLimit"/> (or not numbers).</summary>
    public long Ignored { get; set; }
}

/// <summary>
/// Samples aggregated to UTC hours, for many series at once: what training fits on and what the planner's fallbacks
/// read. Samples are stored one block per (series, hour) (migration 0140), and PostgreSQL sends each block's values as one
/// array (or, in the one-point form, its one value); the mean and max of an hour are its block's, summed here in time order
/// (the order of the array), so they equal what avg/max over the rows gave. Memory stays one pair of arrays per series.
/// </summary>
/// <remarks>
/// The range is read one UTC month at a time, one query each: `samples` is partitioned by month (0001, 0140), so each query
/// walks one partition's index, where a query across months merges the partitions' streams (a Merge Append comparing every
/// row), which cost PostgreSQL about a tenth more CPU for the same rows (issue 16, bench/README). A block never spans two
/// months, so each hour is still its one block.
/// <para>
/// The rows come in no particular order (no ORDER BY): an hour is one row, so the order of the rows changes no sum, and
/// without it PostgreSQL takes a bitmap heap scan, which visits each heap page once, where the index scan in key order
/// visits a page again for each series on it (the blocks of an import lie hour by hour, every series of a resource on the
/// same pages): on 7.56 M rows, about 40% less executor CPU and about 6% less for the read with its rows sent (issue 16,
/// bench/README.md's session 8).
/// </para>
/// </remarks>
public static class HourlyHistory
{
    /// <summary>The series in <paramref name="ids"/> over [<paramref name="from"/>, <paramref name="to"/>) (whole hours); series without samples are absent.</summary>
    public static async Task<Dictionary<int, HourlyAggregates>> ReadAsync(NpgsqlConnection conn, int[] ids, DateTimeOffset from, DateTimeOffset to, CancellationToken ct)
    {
        if (from.UtcTicks % Hour.Ticks != 0 || to.UtcTicks % Hour.Ticks != 0)
        {
            throw new ArgumentException($"the range [{from:O}, {to:O}) must start and end on whole UTC hours");
        }
        var result = new Dictionary<int, HourlyAggregates>();
        var start = from;
        foreach (var end in MonthStarts(from, to).Append(to))
        {
            await ReadRangeAsync(conn, ids, from, to, start, end, result, ct);
            start = end;
        }
        return result;
    }

    /// <summary>The starts of the UTC months within (<paramref name="from"/>, <paramref name="to"/>), at which the read is split.</summary>
    static IEnumerable<DateTimeOffset> MonthStarts(DateTimeOffset from, DateTimeOffset to)
    {
        var utc = from.UtcDateTime;
        for (var month = new DateTimeOffset(utc.Year, utc.Month, 1, 0, 0, 0, TimeSpan.Zero).AddMonths(1); month < to; month = month.AddMonths(1))
        {
            yield return month;
        }
    }

    /// <summary>The blocks of [<paramref name="start"/>, <paramref name="end"/>) summed into <paramref name="result"/>'s arrays over [<paramref name="from"/>, <paramref name="to"/>).</summary>
    static async Task ReadRangeAsync(
        NpgsqlConnection conn, int[] ids, DateTimeOffset from, DateTimeOffset to, DateTimeOffset start, DateTimeOffset end,
        Dictionary<int, HourlyAggregates> result, CancellationToken ct)
    {
        const string history = """
            SELECT series_id, hour, value, vals FROM samples
            WHERE series_id = ANY(@ids) AND hour >= @from AND hour < @to
            """;
        var hours = (int)((to - from) / Hour);
        var fromTicks = from.UtcTicks;
        await using var cmd = new NpgsqlCommand(history, conn);
        cmd.Parameters.AddWithValue("ids", ids);
        cmd.Parameters.AddWithValue("from", start.UtcDateTime);
        cmd.Parameters.AddWithValue("to", end.UtcDateTime);
        cmd.CommandTimeout = 600;
        await using var reader = await cmd.ExecuteReaderAsync(System.Data.CommandBehavior.SequentialAccess, ct);
        HourlyAggregates? series = null;
        var current = 0;
        while (await reader.ReadAsync(ct))
        {
            var id = reader.GetInt32(0);
            var h = (int)((reader.GetFieldValue<DateTime>(1).Ticks - fromTicks) / Hour.Ticks);
            var one = reader.IsDBNull(2) ? double.NaN : reader.GetDouble(2);
            var values = reader.IsDBNull(3) ? null : reader.GetFieldValue<double[]>(3);
            if (series is null || id != current)
            {
                current = id;
                // A series already met (in an earlier month, or earlier in this one: the rows come in no order) goes on in its arrays.
                if (!result.TryGetValue(id, out series))
                {
                    series = new HourlyAggregates(new double[hours], new double[hours]);
                    Array.Fill(series.Mean, double.NaN);
                    Array.Fill(series.Max, double.NaN);
                    result.Add(id, series);
                }
            }
            if (values is null)
            {
                AddHour(series, h, new ReadOnlySpan<double>(in one));
            }
            else
            {
                AddHour(series, h, values);
            }
        }
    }

    /// <summary>
    /// The mean and max of hour <paramref name="h"/>'s values within SampleRules.AggregateLimit, as avg/max would; values
    /// beyond it (and NaN) are counted, not aggregated: they cannot overflow a mean here.
    /// </summary>
    static void AddHour(HourlyAggregates series, int h, ReadOnlySpan<double> values)
    {
        double sum = 0, max = double.NegativeInfinity;
        var count = 0;
        foreach (var value in values)
        {
            if (Math.Abs(value) <= SampleRules.AggregateLimit)
            {
                sum += value;
                max = count == 0 ? value : Math.Max(max, value);
                count++;
            }
            else
            {
                series.Ignored++;
            }
        }
        if (count > 0)
        {
            series.Mean[h] = sum / count;
            series.Max[h] = max;
        }
    }
}
