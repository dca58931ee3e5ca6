using System.Buffers.Binary;
using System.Text.Json;
using Dapper;
using Forecaster.Api.Database;
using Forecaster.Api.Resources;
using Forecaster.Api.Samples;
using Forecaster.Planner;
using Npgsql;
using static Forecaster.Planner.Hours;

namespace Forecaster.Api.Plans;

/// <summary>What one resource of a batch is planned from, or why its stored policy cannot be used.</summary>
public sealed record PlanRequest(Resource Resource, PlanInput? Input, IReadOnlyList<string> Problems);

/// <summary>
/// Loads the planner's inputs for one batch of resources with a handful of queries (never per resource): policy, the latest
/// forecast of the load metric (and a job's backlog metric) within the horizon, 8 days of observed hourly mean load for the
/// fallbacks, the latest <c>replicas</c> (current count) and backlog samples, the capacity model and the weekly peaks.
/// <para>
/// <c>ReplicaCpu</c>, which turns the capacity model into a capacity, is the policy's <c>replicaCpu</c> (the cores a
/// replica is sized for: its limit or manifest request). It is deliberately not a metric of requests: the planner's own
/// overcommitted request would feed back into the replica count (see <see cref="CapacityModel"/>).
/// </para>
/// </summary>
public static class PlanInputs
{
    /// <summary>Days of observed load read for yesterday's and last week's same hour.</summary>
    public const int ObservedDays = 8;

    public static async Task<PlanRequest[]> LoadAsync(
        NpgsqlDataSource db, List<Resource> batch, DateTimeOffset now, DateTimeOffset horizonStart, PlanningOptions o, CancellationToken ct)
    {
        // The policies were validated when they were written: a stored one that cannot be used says why (PolicyProblems).
        var requests = batch.Select(r => new PlanRequest(r, null, r.PolicyProblems)).ToArray();
        var policies = batch.Select(r => r.Policy).ToArray();
        var ids = batch.Select(r => r.Id).ToArray();
        var horizonEnd = horizonStart + (Hour * o.HorizonHours);
        var observedFrom = horizonStart - TimeSpan.FromDays(ObservedDays);

        await using var conn = await db.OpenConnectionAsync(ct);
        var series = (await conn.QueryAsync<(int ResourceId, string Metric, int Id)>(new CommandDefinition(
            "SELECT resource_id, metric, id FROM series WHERE resource_id = ANY(@ids)", new { ids }, cancellationToken: ct)))
            .ToDictionary(s => (s.ResourceId, s.Metric), s => s.Id);

        string LoadMetric(int i) => batch[i].LoadMetric;
        string? BacklogMetric(int i) => batch[i].Kind == ResourceKind.Job ? policies[i]?.BacklogMetric : null;
        int? Series(int i, string? metric) => metric is not null && series.TryGetValue((batch[i].Id, metric), out var id) ? id : null;

        var loadSeries = Enumerable.Range(0, batch.Count).Select(i => Series(i, LoadMetric(i))).ToArray();
        var replicaSeries = Enumerable.Range(0, batch.Count).Select(i => Series(i, "replicas")).ToArray();
        var backlogSeries = Enumerable.Range(0, batch.Count).Select(i => Series(i, BacklogMetric(i))).ToArray();

        var forecasts = await ForecastsAsync(conn, [.. Enumerable.Range(0, batch.Count)
            .SelectMany(i => new[] { (batch[i].Id, LoadMetric(i)), (batch[i].Id, BacklogMetric(i)) })
            .Where(p => p.Item2 is not null).Select(p => (p.Id, p.Item2!))], horizonStart, horizonEnd, ct);
        var observed = await ObservedAsync(conn, [.. loadSeries.OfType<int>()], observedFrom, horizonStart, ct);
        var since = now - TimeSpan.FromHours(o.CurrentMaxAgeHours);
        var latest = await LatestAsync(conn, [.. replicaSeries.Concat(backlogSeries).OfType<int>().Distinct()], since, now, ct);
        var capacity = (await conn.QueryAsync<CapacityRow>(new CommandDefinition("""
            SELECT resource_id AS ResourceId, load_metric AS LoadMetric, intercept, slope, r_squared AS RSquared, samples,
                   per_replica AS PerReplica, fitted_at AS FittedAt
            FROM capacity_models WHERE resource_id = ANY(@ids)
            """, new { ids }, cancellationToken: ct))).ToDictionary(c => c.ResourceId);
        var peaks = (await conn.QueryAsync<(int ResourceId, double? Cpu, long? Memory)>(new CommandDefinition(
            "SELECT resource_id, cpu_cores, memory_bytes FROM weekly_peaks WHERE resource_id = ANY(@ids)", new { ids }, cancellationToken: ct)))
            .ToDictionary(p => p.ResourceId);
        var usage = await UsageAsync(conn, [.. Enumerable.Range(0, batch.Count)
            .Where(i => policies[i]?.Requests.Rule == RequestsRule.Percentile)
            .Select(i => (i, Series(i, "cpu_cores"), Series(i, "memory_bytes"), Series(i, "replicas")))], horizonStart, ct);

        for (var i = 0; i < batch.Count; i++)
        {
            if (policies[i] is not { } policy)
            {
                continue;
            }
            var r = batch[i];
            var kind = r.Kind;
            var load = LoadMetric(i);
            // A model over totals (no `replicas` metric) or of another metric says nothing about one replica of this load.
            var model = capacity.TryGetValue(r.Id, out var c) && c.PerReplica && c.LoadMetric == load
                ? new CapacityModel(c.Intercept, c.Slope, c.RSquared, c.Samples, $"{r.Id}@{c.FittedAt:yyyy-MM-ddTHH:mm:ssZ}")
                : null;
            requests[i] = requests[i] with
            {
                Input = Compose(r.Name, kind, policy, now, horizonStart, o.HorizonHours,
                    forecasts.GetValueOrDefault((r.Id, load)),
                    loadSeries[i] is int ls && observed.TryGetValue(ls, out var h) ? new HourlySeries(observedFrom, h) : null,
                    replicaSeries[i] is int rs && latest.TryGetValue(rs, out var n) && double.IsFinite(n) ? (int)Math.Round(n) : null,
                    model,
                    peaks.TryGetValue(r.Id, out var p) ? new UsagePeak(p.Cpu, p.Memory) : null,
                    backlogSeries[i] is int bs && latest.TryGetValue(bs, out var b) ? b : null,
                    BacklogMetric(i) is { } bm && forecasts.TryGetValue((r.Id, bm), out var bf) ? Hourly(bf, horizonStart, o.HorizonHours) : null,
                    usage.GetValueOrDefault(i)),
            };
        }
        return requests;
    }

    /// <summary>The first hour a plan made at <paramref name="now"/> serves: the hour in progress, so a fresh plan covers the current instant.</summary>
    public static DateTimeOffset HorizonStart(DateTimeOffset now) => FloorHour(now);

    /// <summary>
    /// The planner's input for one resource from what was loaded for it. Planning and the simulator (issue 7) both build
    /// their inputs here, so a replayed night plans from exactly what a real one would. <c>ReplicaCpu</c> is the policy's.
    /// </summary>
    public static PlanInput Compose(
        string resource, ResourceKind kind, Policy policy, DateTimeOffset now, DateTimeOffset horizonStart, int horizonHours,
        ForecastRun? forecast, HourlySeries? observedLoad, int? current, CapacityModel? capacityModel = null, UsagePeak? weeklyPeak = null,
        double? currentBacklog = null, HourlySeries? backlogForecast = null, UsageHistory? usage = null) => new()
        {
            Resource = resource,
            Kind = kind,
            Policy = policy,
            Now = now,
            HorizonStart = horizonStart,
            HorizonHours = horizonHours,
            Forecast = forecast,
            ObservedLoad = observedLoad,
            Current = current,
            CapacityModel = capacityModel,
            ReplicaCpu = policy.ReplicaCpu,
            WeeklyPeak = weeklyPeak,
            CurrentBacklog = currentBacklog,
            BacklogForecast = backlogForecast,
            Usage = usage,
        };

    /// <summary>
    /// A stored forecast as the planner sees it. A model whose backtest is not known to be worse than seasonal naive
    /// (<paramref name="beatsSeasonalNaive"/> null) counts as beating it: only evidence of being worse makes the planner fall back.
    /// </summary>
    /// <paramref name="level"/> is the central level of the stored bounds (the model version's), which a risk-targeted policy rescales.
    public static ForecastRun StoredForecast(long modelVersion, DateTimeOffset generatedAt, bool? beatsSeasonalNaive, IReadOnlyList<ForecastHour> hours, double level = 0.95) =>
        new($"{modelVersion}@{generatedAt:yyyy-MM-ddTHH:mm:ssZ}", modelVersion.ToString(System.Globalization.CultureInfo.InvariantCulture),
            generatedAt, beatsSeasonalNaive != false, hours, level);

    sealed record CapacityRow
    {
        public int ResourceId { get; init; }
        public string LoadMetric { get; init; } = "";
        public double Intercept { get; init; }
        public double Slope { get; init; }
        public double RSquared { get; init; }
        public int Samples { get; init; }
        public bool PerReplica { get; init; }
        public DateTime FittedAt { get; init; }
    }

    /// <summary>
    /// The stored forecast of each (resource, metric) within the horizon (see <see cref="StoredForecast"/>): one row per
    /// series with its hours as arrays, so 100,000 resources cost 100,000 rows rather than 4.8 million.
    /// </summary>
    static async Task<Dictionary<(int, string), ForecastRun>> ForecastsAsync(
        NpgsqlConnection conn, (int Id, string Metric)[] wanted, DateTimeOffset from, DateTimeOffset to, CancellationToken ct)
    {
        // The model version and generation time are the first hour's, as a forecast run writes one of each per series.
        // The hours are aggregated from a subquery ordered by ts (an index scan of the primary key, which is in that order)
        // rather than with `array_agg(... ORDER BY ts)`: PostgreSQL 15 sorts each ordered aggregate of each series on its
        // own (six sorts per resource, a fifth of the database's CPU in a planning run). The order is checked below anyway.
        // The arrays come as bytea in PostgreSQL's binary array form (array_send), read by Float8Elements and TimestampElements:
        // Npgsql's array reader costs more per element than the rest of reading a forecast.
        const string forecasts = """
            SELECT w.resource_id, w.metric, x.ts, x.forecast, x.lower, x.upper, x.model_version_id, x.generated_at,
                   mv.beats_seasonal_naive AS beats, mv.level
            FROM unnest(@ids, @metrics) AS w(resource_id, metric)
            CROSS JOIN LATERAL (
                SELECT array_send(array_agg(f.ts)) AS ts, array_send(array_agg(f.forecast)) AS forecast,
                       array_send(array_agg(f.lower)) AS lower, array_send(array_agg(f.upper)) AS upper,
                       (array_agg(f.model_version_id))[1] AS model_version_id, (array_agg(f.generated_at))[1] AS generated_at
                FROM (
                    SELECT f.ts, f.forecast, f.lower, f.upper, f.model_version_id, f.generated_at
                    FROM forecasts f
                    WHERE f.resource_id = w.resource_id AND f.metric = w.metric AND f.ts >= @from AND f.ts < @to
                    ORDER BY f.ts
                ) f
            ) x
            JOIN model_versions mv ON mv.id = x.model_version_id
            """;
        var result = new Dictionary<(int, string), ForecastRun>();
        await using var cmd = new NpgsqlCommand(forecasts, conn);
        cmd.Parameters.AddWithValue("ids", wanted.Select(w => w.Id).ToArray());
        cmd.Parameters.AddWithValue("metrics", wanted.Select(w => w.Metric).ToArray());
        cmd.Parameters.AddWithValue("from", from.UtcDateTime);
        cmd.Parameters.AddWithValue("to", to.UtcDateTime);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            var ts = TimestampElements(reader.GetFieldValue<byte[]>(2));
            var point = Float8Elements(reader.GetFieldValue<byte[]>(3));
            var lower = Float8Elements(reader.GetFieldValue<byte[]>(4));
            var upper = Float8Elements(reader.GetFieldValue<byte[]>(5));
            if (point.Length != ts.Length || lower.Length != ts.Length || upper.Length != ts.Length)
            {
                throw new InvalidDataException("a stored forecast's arrays differ in length");
            }
            var hours = new ForecastHour[ts.Length];
            var ordered = true;
            for (var k = 0; k < hours.Length; k++)
            {
                hours[k] = new ForecastHour(ts[k], point[k], lower[k], upper[k]);
                ordered &= k == 0 || ts[k] > ts[k - 1];
            }
            if (!ordered)
            {
                // SQL does not promise an aggregate its subquery's order: should a query plan ever change it, the hours are put back
                // in order here (the model version and generation time are one per series, whichever hour they are taken from).
                Array.Sort(hours, static (a, b) => a.Hour.CompareTo(b.Hour));
            }
            result[(reader.GetInt32(0), reader.GetString(1))] = StoredForecast(reader.GetInt64(6), new DateTimeOffset(reader.GetDateTime(7), TimeSpan.Zero),
                reader.IsDBNull(8) ? null : reader.GetBoolean(8), hours, reader.IsDBNull(9) ? 0.95 : reader.GetDouble(9));
        }
        return result;
    }

    /// <summary>
    /// The elements of a one-dimensional array without nulls in PostgreSQL's binary form (array_send, src/backend/utils/adt/arrayfuncs.c):
    /// int32 dimensions, int32 has-nulls flag, element type oid, then per dimension int32 length and lower bound, then per element an
    /// int32 byte length and the element's binary form; every integer big-endian.
    /// </summary>
    static ReadOnlySpan<byte> ArrayElements(ReadOnlySpan<byte> data, int elementSize, out int count)
    {
        var dimensions = BinaryPrimitives.ReadInt32BigEndian(data);
        if (dimensions == 0)
        {
            count = 0;
            return [];
        }
        if (dimensions != 1 || BinaryPrimitives.ReadInt32BigEndian(data[4..]) != 0)
        {
            throw new InvalidDataException("expected a one-dimensional array without nulls");
        }
        count = BinaryPrimitives.ReadInt32BigEndian(data[12..]);
        var elements = data[20..];
        if (elements.Length != count * (4 + elementSize))
        {
            throw new InvalidDataException($"expected {count} elements of {elementSize} bytes");
        }
        return elements;
    }

    /// <summary>A float8[] from array_send: each element is the IEEE 754 double, big-endian (float8send).</summary>
    static double[] Float8Elements(ReadOnlySpan<byte> data)
    {
        var elements = ArrayElements(data, 8, out var count);
        var values = new double[count];
        for (var i = 0; i < count; i++)
        {
            values[i] = BinaryPrimitives.ReadDoubleBigEndian(elements[((i * 12) + 4)..]);
        }
        return values;
    }

    /// <summary>A timestamptz[] from array_send: each element is int64 microseconds since 2000-01-01 00:00 UTC, big-endian (timestamptz_send).</summary>
    static DateTimeOffset[] TimestampElements(ReadOnlySpan<byte> data)
    {
        var elements = ArrayElements(data, 8, out var count);
        var values = new DateTimeOffset[count];
        for (var i = 0; i < count; i++)
        {
            var micros = BinaryPrimitives.ReadInt64BigEndian(elements[((i * 12) + 4)..]);
            values[i] = new DateTimeOffset(PostgresBinary.EpochTicks + (micros * 10), TimeSpan.Zero);
        }
        return values;
    }

    /// <summary>
    /// Per-replica hourly usage of the last <see cref="ObservedDays"/> complete hours' days for the percentile rule of requests
    /// (cpu: hourly mean ÷ replicas; memory: hourly peak ÷ replicas), keyed by batch index. Without a <c>replicas</c>
    /// series nothing is known per replica, as for the weekly peak.
    /// </summary>
    static async Task<Dictionary<int, UsageHistory>> UsageAsync(
        NpgsqlConnection conn, (int Index, int? Cpu, int? Memory, int? Replicas)[] wanted, DateTimeOffset to, CancellationToken ct)
    {
        var result = new Dictionary<int, UsageHistory>();
        wanted = [.. wanted.Where(w => w.Replicas is not null && (w.Cpu is not null || w.Memory is not null))];
        if (wanted.Length == 0)
        {
            return result;
        }
        var from = to - TimeSpan.FromDays(ObservedDays);
        var ids = wanted.SelectMany(w => new[] { w.Cpu, w.Memory, w.Replicas }).OfType<int>().Distinct().ToArray();
        var hours = await HourlyHistory.ReadAsync(conn, ids, from, to, ct);
        HourlySeries PerReplica(int? usage, bool peak, double[] replicas)
        {
            var values = new double[replicas.Length];
            Array.Fill(values, double.NaN);
            if (usage is int id && hours.TryGetValue(id, out var u))
            {
                var source = peak ? u.Max : u.Mean;
                for (var h = 0; h < values.Length; h++)
                {
                    values[h] = replicas[h] > 0 ? source[h] / replicas[h] : double.NaN;
                }
            }
            return new HourlySeries(from, values);
        }
        foreach (var w in wanted)
        {
            if (hours.TryGetValue(w.Replicas!.Value, out var replicas))
            {
                result[w.Index] = new UsageHistory(PerReplica(w.Cpu, peak: false, replicas.Mean), PerReplica(w.Memory, peak: true, replicas.Mean));
            }
        }
        return result;
    }

    /// <summary>Hourly mean of each series over [from, to); NaN where nothing was observed.</summary>
    static async Task<Dictionary<int, double[]>> ObservedAsync(NpgsqlConnection conn, int[] ids, DateTimeOffset from, DateTimeOffset to, CancellationToken ct) =>
        (await HourlyHistory.ReadAsync(conn, ids, from, to, ct)).ToDictionary(h => h.Key, h => h.Value.Mean);

    /// <summary>The latest value of each series within (since, now]: the current replica count, a job's backlog.</summary>
    static async Task<Dictionary<int, double>> LatestAsync(NpgsqlConnection conn, int[] ids, DateTimeOffset since, DateTimeOffset now, CancellationToken ct)
    {
        // One backwards index probe per series over its blocks (newest hour first, then the newest point in it), rather
        // than scanning the window; a value beyond SampleRules.AggregateLimit is skipped.
        const string latest = """
            SELECT l.id, x.value
            FROM unnest(@ids) AS l(id)
            CROSS JOIN LATERAL (
                SELECT p.value
                FROM samples b CROSS JOIN LATERAL unnest(b.ts, b.vals) AS p(ts, value)
                WHERE b.series_id = l.id AND b.hour >= date_bin('1 hour', @since, timestamptz '2000-01-01 00:00:00+00') AND b.hour <= @now
                  AND p.ts > @since AND p.ts <= @now AND abs(p.value) <= 1e100
                ORDER BY b.hour DESC, p.ts DESC LIMIT 1
            ) x
            """;
        return (await conn.QueryAsync<(int Id, double Value)>(new CommandDefinition(latest, new { ids, since, now }, cancellationToken: ct)))
            .ToDictionary(x => x.Id, x => x.Value);
    }

    static HourlySeries Hourly(ForecastRun forecast, DateTimeOffset start, int hours)
    {
        var values = new double[hours];
        Array.Fill(values, double.NaN);
        foreach (var h in forecast.Hours)
        {
            var k = (int)((h.Hour - start) / Hour);
            if (k >= 0 && k < hours)
            {
                values[k] = h.Point;
            }
        }
        return new HourlySeries(start, values);
    }
}
