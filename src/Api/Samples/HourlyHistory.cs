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
/// Samples aggregated to UTC hours, for many series in one query: what training fits on and what the planner's fallbacks
/// read. The samples stream in primary-key order (series, time) and are summed into each series' hourly arrays as they
/// arrive: PostgreSQL only walks the index, instead of hashing every (series, hour) group, which cost it about nine times
/// the scan (issue 16), and memory stays one pair of arrays per series however many samples an hour holds.
/// </summary>
public static class HourlyHistory
{
    /// <summary>The series in <paramref name="ids"/> over [<paramref name="from"/>, <paramref name="to"/>) (whole hours); series without samples are absent.</summary>
    public static async Task<Dictionary<int, HourlyAggregates>> ReadAsync(NpgsqlConnection conn, int[] ids, DateTimeOffset from, DateTimeOffset to, CancellationToken ct)
    {
        const string history = """
            SELECT series_id, ts, value FROM samples
            WHERE series_id = ANY(@ids) AND ts >= @from AND ts < @to
            ORDER BY series_id, ts
            """;
        var hours = (int)((to - from) / Hour);
        var fromTicks = from.UtcTicks;
        var result = new Dictionary<int, HourlyAggregates>();
        await using var cmd = new NpgsqlCommand(history, conn);
        cmd.Parameters.AddWithValue("ids", ids);
        cmd.Parameters.AddWithValue("from", from.UtcDateTime);
        cmd.Parameters.AddWithValue("to", to.UtcDateTime);
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
                series = new HourlyAggregates(new double[hours], new double[hours]);
                Array.Fill(series.Mean, double.NaN);
                Array.Fill(series.Max, double.NaN);
                result.Add(id, series);
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
        return result;
    }
}
