using System.Text.Json;
using Dapper;
using Forecaster.Api.Database;
using Forecaster.Planner;
using Forecaster.Training.Forecasting;
using Npgsql;
using NpgsqlTypes;

namespace Forecaster.Api.Training;

/// <summary>One series' forecast as training writes it: the model version that produced it and the model's output.</summary>
public readonly record struct SeriesForecast(int ResourceId, string Metric, long ModelVersion, Forecast Forecast);

/// <summary>
/// A stored forecast as read back, with its model version's verdict on seasonal naive, interval level and upper backtest
/// errors (<see cref="UpperTail"/>, when training stored them): hour k (from 0) is
/// <c>Start + k·Step</c>, its point forecast <c>Point[k]</c> within [<c>Lower[k]</c>, <c>Upper[k]</c>].
/// </summary>
public sealed record StoredSeriesForecast(
    long ModelVersion, DateTimeOffset GeneratedAt, DateTimeOffset Start, TimeSpan Step, double[] Point, double[] Lower, double[] Upper,
    bool? BeatsSeasonalNaive, double? Level, UpperTail? Tail)
{
    public DateTimeOffset HourAt(int k) => Start + TimeSpan.FromTicks(Step.Ticks * k);

    /// <summary>The hours k with <paramref name="from"/> ≤ Start + k·Step &lt; <paramref name="to"/>, as [first, end).</summary>
    public (int First, int End) Within(DateTimeOffset from, DateTimeOffset to)
    {
        int Index(DateTimeOffset t)
        {
            var ticks = (t - Start).Ticks;
            return ticks <= 0 ? 0 : (int)Math.Min(Point.Length, (ticks + Step.Ticks - 1) / Step.Ticks);
        }
        var first = Index(from);
        return (first, Math.Max(first, Index(to)));
    }
}

/// <summary>
/// The owner of <c>series_forecasts</c> (migration 0070): each series' latest forecast as one row of arrays, written whole by
/// training and replaced whole, read by planning (a batch at a time) and by the forecast endpoint (one series). Rows go
/// with their resource (foreign key, on delete cascade); nothing else purges them.
/// </summary>
public static class ForecastStore
{
    /// <summary>
    /// Replaces the stored forecast of every (resource, metric) named by <paramref name="resourceIds"/> and
    /// <paramref name="metrics"/> with those in <paramref name="forecasts"/> (a named series without one is left without),
    /// inside the caller's transaction.
    /// </summary>
    public static async Task ReplaceAsync(
        NpgsqlConnection conn, NpgsqlTransaction tx, int[] resourceIds, string[] metrics, IEnumerable<SeriesForecast> forecasts,
        DateTimeOffset generatedAt, CancellationToken ct)
    {
        const string clear = """
            DELETE FROM series_forecasts f
            USING unnest(@resourceIds, @metrics) AS n(resource_id, metric)
            WHERE f.resource_id = n.resource_id AND f.metric = n.metric
            """;
        await conn.ExecuteAsync(new CommandDefinition(clear, new { resourceIds, metrics }, tx, cancellationToken: ct));

        await using var copy = await conn.BeginBinaryImportAsync(
            "COPY series_forecasts (resource_id, metric, model_version_id, generated_at, start, step, forecast, lower, upper) FROM STDIN (FORMAT BINARY)", ct);
        foreach (var s in forecasts)
        {
            await copy.StartRowAsync(ct);
            await copy.WriteAsync(s.ResourceId, NpgsqlDbType.Integer, ct);
            await copy.WriteAsync(s.Metric, NpgsqlDbType.Text, ct);
            await copy.WriteAsync(s.ModelVersion, NpgsqlDbType.Bigint, ct);
            await copy.WriteAsync(generatedAt.UtcDateTime, NpgsqlDbType.TimestampTz, ct);
            await copy.WriteAsync(s.Forecast.Start.UtcDateTime, NpgsqlDbType.TimestampTz, ct);
            await copy.WriteAsync(s.Forecast.Step, NpgsqlDbType.Interval, ct);
            await copy.WriteAsync(s.Forecast.Point, NpgsqlDbType.Array | NpgsqlDbType.Double, ct);
            await copy.WriteAsync(s.Forecast.Lower, NpgsqlDbType.Array | NpgsqlDbType.Double, ct);
            await copy.WriteAsync(s.Forecast.Upper, NpgsqlDbType.Array | NpgsqlDbType.Double, ct);
        }
        await copy.CompleteAsync(ct);
    }

    static readonly JsonSerializerOptions TailJson = new(JsonSerializerDefaults.Web);

    /// <summary>
    /// The stored forecast of each wanted (resource, metric) that has one, with one index probe per series (planning reads
    /// a batch of resources at once).
    /// </summary>
    public static async Task<Dictionary<(int ResourceId, string Metric), StoredSeriesForecast>> ReadAsync(
        NpgsqlConnection conn, (int Id, string Metric)[] wanted, CancellationToken ct)
    {
        // The arrays come as bytea in PostgreSQL's binary array form (array_send), parsed by PostgresBinary.Float8Elements:
        // Npgsql's array reader costs more per element than the rest of reading a forecast.
        const string forecasts = """
            SELECT w.resource_id, w.metric, f.model_version_id, f.generated_at, f.start, f.step,
                   array_send(f.forecast), array_send(f.lower), array_send(f.upper), mv.beats_seasonal_naive, mv.level,
                   mv.upper_tail::text
            FROM unnest(@ids, @metrics) AS w(resource_id, metric)
            JOIN series_forecasts f ON f.resource_id = w.resource_id AND f.metric = w.metric
            JOIN model_versions mv ON mv.id = f.model_version_id
            """;
        var result = new Dictionary<(int, string), StoredSeriesForecast>(wanted.Length);
        await using var cmd = new NpgsqlCommand(forecasts, conn);
        cmd.Parameters.AddWithValue("ids", wanted.Select(w => w.Id).ToArray());
        cmd.Parameters.AddWithValue("metrics", wanted.Select(w => w.Metric).ToArray());
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        // One buffer for every array of the batch: each is parsed into its doubles at once, so its bytes need not outlive it.
        var buffer = new byte[1024];
        double[] Elements(int column)
        {
            var length = (int)reader.GetBytes(column, 0, null, 0, 0);
            if (length > buffer.Length)
            {
                buffer = new byte[Math.Max(length, 2 * buffer.Length)];
            }
            reader.GetBytes(column, 0, buffer, 0, length);
            return PostgresBinary.Float8Elements(buffer.AsSpan(0, length));
        }
        while (await reader.ReadAsync(ct))
        {
            var point = Elements(6);
            var lower = Elements(7);
            var upper = Elements(8);
            if (lower.Length != point.Length || upper.Length != point.Length)
            {
                throw new InvalidDataException("a stored forecast's arrays differ in length");
            }
            result[(reader.GetInt32(0), reader.GetString(1))] = new StoredSeriesForecast(
                reader.GetInt64(2), Utc(reader.GetDateTime(3)), Utc(reader.GetDateTime(4)), reader.GetFieldValue<TimeSpan>(5),
                point, lower, upper, reader.IsDBNull(9) ? null : reader.GetBoolean(9), reader.IsDBNull(10) ? null : reader.GetDouble(10),
                reader.IsDBNull(11) ? null : JsonSerializer.Deserialize<UpperTail>(reader.GetString(11), TailJson));
        }
        return result;
    }

    /// <summary>
    /// The hours of one series' forecast written by model version <paramref name="version"/>, in time order, within
    /// [<paramref name="fromUtc"/>, <paramref name="toUtc"/>] where given; none when the stored forecast is another version's.
    /// </summary>
    public static async Task<IEnumerable<(DateTime Ts, double Forecast, double Lower, double Upper)>> HoursAsync(
        NpgsqlConnection conn, NpgsqlTransaction? tx, int resourceId, string metric, long version, DateTime? fromUtc, DateTime? toUtc, CancellationToken ct)
    {
        const string hours = """
            SELECT x.ts, x.forecast, x.lower, x.upper
            FROM series_forecasts f
            CROSS JOIN LATERAL (
                SELECT f.start + (h.k - 1) * f.step AS ts, h.forecast, h.lower, h.upper, h.k
                FROM unnest(f.forecast, f.lower, f.upper) WITH ORDINALITY AS h(forecast, lower, upper, k)
            ) x
            WHERE f.resource_id = @resourceId AND f.metric = @metric AND f.model_version_id = @version
              AND (@fromUtc::timestamptz IS NULL OR x.ts >= @fromUtc) AND (@toUtc::timestamptz IS NULL OR x.ts <= @toUtc)
            ORDER BY x.k
            """;
        return await conn.QueryAsync<(DateTime, double, double, double)>(new CommandDefinition(
            hours, new { resourceId, metric, version, fromUtc, toUtc }, tx, cancellationToken: ct));
    }

    static DateTimeOffset Utc(DateTime t) => new(DateTime.SpecifyKind(t, DateTimeKind.Utc));
}
