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
/// read. Each day comes from its hourly rollup (migration 0170, <see cref="HourlyRollups"/>: one row of 24 means and maxima
/// per series and day), or, while a writer's mark says the rollup is stale, from its sample blocks (0140), summed here in
/// time order as the refresh would. Memory stays one pair of arrays per series.
/// </summary>
/// <remarks>
/// Reading rollups instead of blocks: 35 rows of a 35-day series instead of 840, which cost PostgreSQL about a seventh of
/// the CPU to send (issue 16, bench/README.md's session 9). The rows come in no particular order (no ORDER BY): a day and
/// an hour are each one row, so the order changes no sum.
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
        // The stale days first (few: the days written since the last refresh), then in one statement the rollups of every
        // day and the blocks of those stale days; a stale day's rollup row is skipped here. A day turning stale between
        // the two statements is read from its rollup as it was a moment before (its new samples are not counted); one
        // refreshed meanwhile is still read from its samples. Either way each day is whole: never counted twice, never
        // missing an hour that was stored when the read began. Excluding them in SQL instead (NOT EXISTS) cost an index
        // probe per rollup row, more than the rollups themselves.
        const string staleDays = """
            SELECT DISTINCT series_id, day FROM sample_hours_stale WHERE series_id = ANY(@ids) AND day >= @fromDay AND day < @to
            """;
        var fromDay = HourlyRollups.Day(from.UtcDateTime);
        var stale = new HashSet<(int, DateTime)>();
        await using (var staleCmd = new NpgsqlCommand(staleDays, conn))
        {
            staleCmd.Parameters.AddWithValue("ids", ids);
            staleCmd.Parameters.AddWithValue("fromDay", fromDay);
            staleCmd.Parameters.AddWithValue("to", to.UtcDateTime);
            await using var staleReader = await staleCmd.ExecuteReaderAsync(ct);
            while (await staleReader.ReadAsync(ct))
            {
                stale.Add((staleReader.GetInt32(0), staleReader.GetFieldValue<DateTime>(1)));
            }
        }
        const string rollups = """
            SELECT series_id, day, mean, max, ignored, NULL::float8 AS value, NULL::float8[] AS vals
            FROM sample_hours
            WHERE series_id = ANY(@ids) AND day >= @fromDay AND day < @to
            """;
        const string withStale = rollups + "\n" + """
            UNION ALL
            SELECT s.series_id, s.hour, NULL, NULL, NULL, s.value, s.vals
            FROM unnest(@staleIds, @staleDays) AS m(series_id, day)
            JOIN samples s ON s.series_id = m.series_id AND s.hour >= m.day AND s.hour < m.day + interval '1 day'
            WHERE s.hour >= @from AND s.hour < @to
            """;
        var hours = (int)((to - from) / Hour);
        var fromTicks = from.UtcTicks;
        var result = new Dictionary<int, HourlyAggregates>();
        await using var cmd = new NpgsqlCommand(stale.Count == 0 ? rollups : withStale, conn);
        cmd.Parameters.AddWithValue("ids", ids);
        cmd.Parameters.AddWithValue("fromDay", fromDay);
        cmd.Parameters.AddWithValue("from", from.UtcDateTime);
        cmd.Parameters.AddWithValue("to", to.UtcDateTime);
        if (stale.Count > 0)
        {
            cmd.Parameters.AddWithValue("staleIds", stale.Select(k => k.Item1).ToArray());
            cmd.Parameters.AddWithValue("staleDays", stale.Select(k => k.Item2).ToArray());
        }
        cmd.CommandTimeout = 600;
        await using var reader = await cmd.ExecuteReaderAsync(System.Data.CommandBehavior.SequentialAccess, ct);
        HourlyAggregates? series = null;
        var current = 0;
        var mean = new byte[HourlyRollups.ValuesBytes];
        var max = new byte[HourlyRollups.ValuesBytes];
        var ignored = new byte[HourlyRollups.HoursPerDay * sizeof(int)];
        while (await reader.ReadAsync(ct))
        {
            var id = reader.GetInt32(0);
            var time = reader.GetFieldValue<DateTime>(1);
            var rollup = !reader.IsDBNull(2);
            if (rollup && stale.Contains((id, time)))
            {
                continue;
            }
            if (series is null || id != current)
            {
                current = id;
                // A series already met (the rows come in no order) goes on in its arrays.
                if (!result.TryGetValue(id, out series))
                {
                    series = new HourlyAggregates(new double[hours], new double[hours]);
                    Array.Fill(series.Mean, double.NaN);
                    Array.Fill(series.Max, double.NaN);
                    result.Add(id, series);
                }
            }
            if (rollup)
            {
                ReadBytes(reader, 2, mean);
                ReadBytes(reader, 3, max);
                var counted = !reader.IsDBNull(4);
                if (counted)
                {
                    ReadBytes(reader, 4, ignored);
                }
                HourlyRollups.CopyHours(series, fromTicks, time, mean, max, counted ? ignored : default);
                continue;
            }
            var h = (int)((time.Ticks - fromTicks) / Hour.Ticks);
            var one = reader.IsDBNull(5) ? double.NaN : reader.GetDouble(5);
            var values = reader.IsDBNull(6) ? null : reader.GetFieldValue<double[]>(6);
            var (hourMean, hourMax, hourIgnored) = Aggregate(values is null ? new ReadOnlySpan<double>(in one) : values);
            series.Mean[h] = hourMean;
            series.Max[h] = hourMax;
            series.Ignored += hourIgnored;
        }
        return result;
    }

    /// <summary>A rollup column of known length into <paramref name="buffer"/>; a stored value of another length is refused.</summary>
    static void ReadBytes(NpgsqlDataReader reader, int ordinal, byte[] buffer)
    {
        var length = reader.GetBytes(ordinal, 0, buffer, 0, buffer.Length);
        if (length != buffer.Length)
        {
            throw new InvalidDataException($"an hourly rollup's {reader.GetName(ordinal)} holds {length} bytes, not {buffer.Length}");
        }
    }

    /// <summary>
    /// The mean and max of one hour's values (in time order) within SampleRules.AggregateLimit, as avg/max would (NaN for
    /// both when none is); values beyond it (and NaN) are counted, not aggregated: they cannot overflow a mean here.
    /// </summary>
    public static (double Mean, double Max, int Ignored) Aggregate(ReadOnlySpan<double> values)
    {
        double sum = 0, max = double.NegativeInfinity;
        var count = 0;
        var ignored = 0;
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
                ignored++;
            }
        }
        return count > 0 ? (sum / count, max, ignored) : (double.NaN, double.NaN, ignored);
    }
}
