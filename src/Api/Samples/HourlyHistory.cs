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
/// read. The samples stream in primary-key order (series, time) and are summed into each series' hourly arrays as they
/// arrive: PostgreSQL only walks the index, instead of hashing every (series, hour) group, which cost it about nine times
/// the scan (issue 16), and memory stays one pair of arrays per series however many samples an hour holds.
/// </summary>
/// <remarks>
/// The range is read one UTC month at a time, one query each: `samples` is partitioned by month (0001), so each query walks
/// one partition's index, where a query across months merges the partitions' streams (a Merge Append comparing every row),
/// which cost PostgreSQL about a tenth more CPU for the same rows (issue 16, bench/README). An hour never spans two
/// queries, so each hour is still summed in time order, as before.
/// </remarks>
public static class HourlyHistory
{
    /// <summary>The series in <paramref name="ids"/> over [<paramref name="from"/>, <paramref name="to"/>) (whole hours); series without samples are absent.</summary>
    public static async Task<Dictionary<int, HourlyAggregates>> ReadAsync(NpgsqlConnection conn, int[] ids, DateTimeOffset from, DateTimeOffset to, CancellationToken ct)
    {
        var result = new Dictionary<int, HourlyAggregates>();
        var start = from;
        foreach (var end in MonthStarts(from, to).Append(to))
        {
            await ReadRangeAsync(conn, ids, from, to, start, end, result, ct);
            start = end;
        }
        return result;
    }

    /// <summary>
    /// The starts of the UTC months within (<paramref name="from"/>, <paramref name="to"/>) at which the read is split. Hour k
    /// holds the samples whose hour starts k hours after <paramref name="from"/> (rounded toward zero), so when
    /// <paramref name="from"/> is not on the hour, hour 0 takes in two clock hours: a month starting between them is not a split.
    /// </summary>
    static IEnumerable<DateTimeOffset> MonthStarts(DateTimeOffset from, DateTimeOffset to)
    {
        var firstHourEnd = FloorHour(from) + (2 * Hour);
        var utc = from.UtcDateTime;
        for (var month = new DateTimeOffset(utc.Year, utc.Month, 1, 0, 0, 0, TimeSpan.Zero).AddMonths(1); month < to; month = month.AddMonths(1))
        {
            if (month >= firstHourEnd)
            {
                yield return month;
            }
        }
    }

    /// <summary>The samples of [<paramref name="start"/>, <paramref name="end"/>) summed into <paramref name="result"/>'s arrays over [<paramref name="from"/>, <paramref name="to"/>).</summary>
    static async Task ReadRangeAsync(
        NpgsqlConnection conn, int[] ids, DateTimeOffset from, DateTimeOffset to, DateTimeOffset start, DateTimeOffset end,
        Dictionary<int, HourlyAggregates> result, CancellationToken ct)
    {
        const string history = """
            SELECT series_id, ts, value FROM samples
            WHERE series_id = ANY(@ids) AND ts >= @from AND ts < @to
            ORDER BY series_id, ts
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
        int current = 0, count = 0, hour = -1;
        double sum = 0, max = 0;
        // Closes the hour in progress: the mean and max of its values within SampleRules.AggregateLimit, as avg/max would.
        void Flush()
        {
            if (series is not null && hour >= 0 && count > 0)
            {
                series.Mean[hour] = sum / count;
                series.Max[hour] = max;
            }
            (count, sum, max) = (0, 0, double.NegativeInfinity);
        }
        while (await reader.ReadAsync(ct))
        {
            var id = reader.GetInt32(0);
            var ticks = reader.GetFieldValue<DateTime>(1).Ticks;
            var value = reader.GetDouble(2);
            var h = (int)(((ticks - (ticks % Hour.Ticks)) - fromTicks) / Hour.Ticks);
            if (series is null || id != current)
            {
                Flush();
                current = id;
                // A series already met in an earlier month goes on in its arrays.
                if (!result.TryGetValue(id, out series))
                {
                    series = new HourlyAggregates(new double[hours], new double[hours]);
                    Array.Fill(series.Mean, double.NaN);
                    Array.Fill(series.Max, double.NaN);
                    result.Add(id, series);
                }
                hour = h;
            }
            else if (h != hour)
            {
                Flush();
                hour = h;
            }
            // Values beyond SampleRules.AggregateLimit (and NaN) are counted, not aggregated: they cannot overflow a mean here.
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
        Flush();
    }
}
