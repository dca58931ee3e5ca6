using System.Text.Json;
using Dapper;
using Forecaster.Api.Resources;
using Forecaster.Api.Samples;
using Forecaster.Api.Training;
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
    /// <paramref name="tail"/> is the model version's upper backtest errors (<see cref="UpperTail"/>), when training stored them.
    public static ForecastRun StoredForecast(long modelVersion, DateTimeOffset generatedAt, bool? beatsSeasonalNaive, IReadOnlyList<ForecastHour> hours, double level = 0.95,
        UpperTail? tail = null) =>
        new($"{modelVersion}@{generatedAt:yyyy-MM-ddTHH:mm:ssZ}", modelVersion.ToString(System.Globalization.CultureInfo.InvariantCulture),
            generatedAt, beatsSeasonalNaive != false, hours, level, tail);

    /// <summary>A model's upper backtest errors as the planner reads them, step 0 at <paramref name="origin"/> (the forecast's first hour).</summary>
    public static UpperTail? Tail(Forecaster.Training.Forecasting.UpperErrors? upper, DateTimeOffset origin) =>
        upper is null ? null : new UpperTail(origin, upper.StepScale, upper.Levels, upper.Quantiles, upper.Samples);

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
    /// The stored forecast of each (resource, metric) within the horizon (see <see cref="StoredForecast"/>): its hours in
    /// [from, to), one row of arrays per series (<see cref="ForecastStore"/>); none for a series without an hour in it.
    /// </summary>
    static async Task<Dictionary<(int, string), ForecastRun>> ForecastsAsync(
        NpgsqlConnection conn, (int Id, string Metric)[] wanted, DateTimeOffset from, DateTimeOffset to, CancellationToken ct)
    {
        var stored = await ForecastStore.ReadAsync(conn, wanted, ct);
        var result = new Dictionary<(int, string), ForecastRun>(stored.Count);
        foreach (var (key, f) in stored)
        {
            var (first, end) = f.Within(from, to);
            if (first == end)
            {
                continue;
            }
            var hours = new ForecastHour[end - first];
            for (var k = first; k < end; k++)
            {
                hours[k - first] = new ForecastHour(f.HourAt(k), f.Point[k], f.Lower[k], f.Upper[k]);
            }
            result[key] = StoredForecast(f.ModelVersion, f.GeneratedAt, f.BeatsSeasonalNaive, hours, f.Level ?? 0.95, f.Tail);
        }
        return result;
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
                FROM samples b CROSS JOIN LATERAL unnest(coalesce(b.ts, ARRAY[b.hour]), coalesce(b.vals, ARRAY[b.value])) AS p(ts, value)
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
