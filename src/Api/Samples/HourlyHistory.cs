using Npgsql;
using static Forecaster.Planner.Hours;

namespace Forecaster.Api.Samples;

/// <summary>Hourly mean and max of one series over a range; NaN where nothing was observed.</summary>
public sealed record HourlyValues(double[] Mean, double[] Max)
{
    /// <summary>Stored samples left out because they are beyond <see cref="SampleRules.AggregateLimit"/> (or not numbers).</summary>
    public long Ignored { get; set; }
}

/// <summary>
/// Samples aggregated to UTC hours, for many series in one query: what training fits on and what the planner's fallbacks
/// read. PostgreSQL aggregates, so a per-minute series costs no more memory here than an hourly one.
/// </summary>
public static class HourlyHistory
{
    /// <summary>The series in <paramref name="ids"/> over [<paramref name="from"/>, <paramref name="to"/>) (whole hours); series without samples are absent.</summary>
    public static async Task<Dictionary<int, HourlyValues>> ReadAsync(NpgsqlConnection conn, int[] ids, DateTimeOffset from, DateTimeOffset to, CancellationToken ct)
    {
        const string history = """
            SELECT series_id, date_bin('1 hour', ts, timestamptz '2000-01-01 00:00:00+00') AS hour,
                   avg(value) FILTER (WHERE abs(value) <= 1e100) AS mean, max(value) FILTER (WHERE abs(value) <= 1e100) AS peak,
                   count(*) FILTER (WHERE NOT abs(value) <= 1e100) AS ignored
            FROM samples
            WHERE series_id = ANY(@ids) AND ts >= @from AND ts < @to
            GROUP BY 1, 2
            """;
        var hours = (int)((to - from) / Hour);
        var result = new Dictionary<int, HourlyValues>();
        await using var cmd = new NpgsqlCommand(history, conn);
        cmd.Parameters.AddWithValue("ids", ids);
        cmd.Parameters.AddWithValue("from", from.UtcDateTime);
        cmd.Parameters.AddWithValue("to", to.UtcDateTime);
        cmd.CommandTimeout = 600;
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            var id = reader.GetInt32(0);
            if (!result.TryGetValue(id, out var series))
            {
                series = new HourlyValues(new double[hours], new double[hours]);
                Array.Fill(series.Mean, double.NaN);
                Array.Fill(series.Max, double.NaN);
                result.Add(id, series);
            }
            var h = (int)((reader.GetFieldValue<DateTime>(1) - from.UtcDateTime) / Hour);
            // Values beyond SampleRules.AggregateLimit are counted, not aggregated: they cannot overflow a mean here.
            series.Mean[h] = reader.IsDBNull(2) ? double.NaN : reader.GetDouble(2);
            series.Max[h] = reader.IsDBNull(3) ? double.NaN : reader.GetDouble(3);
            series.Ignored += reader.GetInt64(4);
        }
        return result;
    }
}
