namespace Forecaster.Planner;

/// <summary>
/// Everything the planner needs for one resource; the host loads it, the planner never reads a clock or a database.
/// All instants are UTC; <see cref="HorizonStart"/> is an hour boundary.
/// </summary>
public sealed record PlanInput
{
    public required string Resource { get; init; }

    public required ResourceKind Kind { get; init; }

    public required Policy Policy { get; init; }

    /// <summary>The planning instant: judges staleness and which observed hours are complete.</summary>
    public required DateTimeOffset Now { get; init; }

    /// <summary>First hour served by the plan (usually the hour after <see cref="Now"/>).</summary>
    public required DateTimeOffset HorizonStart { get; init; }

    public int HorizonHours { get; init; } = 48;

    /// <summary>The latest forecast run of the load metric (for jobs the input rate, records/s); null when none exists.</summary>
    public ForecastRun? Forecast { get; init; }

    /// <summary>Observed hourly mean load, at least the last 8 days: the fallbacks read yesterday's and last week's same hour.</summary>
    public HourlySeries? ObservedLoad { get; init; }

    /// <summary>Replicas (service) or parallelism (job) running now; null when unknown.</summary>
    public int? Current { get; init; }

    /// <summary>Trained <c>cpu_cores ~ a + b·load</c> per replica; used when the policy gives no capacity.</summary>
    public CapacityModel? CapacityModel { get; init; }

    /// <summary>
    /// Cores one replica (subtask) is sized for: its cpu limit, else the request in its manifest. Never the planner's
    /// overcommitted request (see <see cref="Planner.CapacityModel"/> for why). Needed to use the capacity model.
    /// </summary>
    public double? ReplicaCpu { get; init; }

    /// <summary>Maximum hourly per-replica usage over the last 7 days; null when not known.</summary>
    public UsagePeak? WeeklyPeak { get; init; }

    /// <summary>Hourly per-replica usage of the last days, for <c>requests.rule</c> percentile; null otherwise or when unknown.</summary>
    public UsageHistory? Usage { get; init; }

    /// <summary>Jobs: source backlog (records) observed at <see cref="Now"/>.</summary>
    public double? CurrentBacklog { get; init; }

    /// <summary>Jobs: forecast backlog by hour, when the host has one; wins over <see cref="CurrentBacklog"/>.</summary>
    public HourlySeries? BacklogForecast { get; init; }
}

/// <summary>
/// A stored forecast run as the planner reads it: its hours and what is needed to judge whether to trust it. (The model's
/// own output, before it is stored, is <c>Forecaster.Training.Forecasting.Forecast</c>.)
/// </summary>
/// <param name="Version">Id of this forecast run.</param>
/// <param name="ModelVersion">Id of the trained model that produced it.</param>
/// <param name="BeatsSeasonalNaive">Whether the model's backtest error is below seasonal naive's; when not, the planner falls back.</param>
/// <param name="BandLevel">The central level of each hour's [Lower, Upper] band (the training level, 0.95 by default).</param>
public sealed record ForecastRun(
    string Version, string ModelVersion, DateTimeOffset GeneratedAt, bool BeatsSeasonalNaive, IReadOnlyList<ForecastHour> Hours, double BandLevel = 0.95);

/// <summary>One forecast hour (UTC hour start) with its interval.</summary>
public readonly record struct ForecastHour(DateTimeOffset Hour, double Point, double Lower, double Upper)
{
    public double At(ForecastBound bound) => bound == ForecastBound.Upper ? Upper : Point;
}

/// <summary>Peak hourly per-replica usage: cpu in cores, memory in bytes; either may be unknown.</summary>
public sealed record UsagePeak(double? Cpu, long? Memory);

/// <summary>
/// Hourly values from <see cref="Start"/> (a UTC hour), one per hour; NaN marks a missing hour.
/// An array rather than a dictionary: 100,000 resources × 8 days is what the host loads per planning run.
/// </summary>
public sealed record HourlySeries(DateTimeOffset Start, double[] Values)
{
    public static HourlySeries Empty { get; } = new(DateTimeOffset.UnixEpoch, []);

    public DateTimeOffset End => Start.AddHours(Values.Length);

    /// <summary>The value for the hour starting at <paramref name="hour"/>, when present and finite.</summary>
    public bool TryGet(DateTimeOffset hour, out double value)
    {
        var ticks = (hour - Start).Ticks;
        var index = ticks / TimeSpan.TicksPerHour;
        if (ticks < 0 || ticks % TimeSpan.TicksPerHour != 0 || index >= Values.Length || !double.IsFinite(Values[index]))
        {
            value = double.NaN;
            return false;
        }
        value = Values[index];
        return true;
    }

    /// <summary>Builds a series from (hour, value) pairs in any order; hours in between are missing.</summary>
    public static HourlySeries From(IEnumerable<KeyValuePair<DateTimeOffset, double>> hours)
    {
        var list = hours.ToList();
        if (list.Count == 0)
        {
            return Empty;
        }
        var start = list.Min(p => p.Key);
        var end = list.Max(p => p.Key);
        var values = new double[((end - start).Ticks / TimeSpan.TicksPerHour) + 1];
        Array.Fill(values, double.NaN);
        foreach (var (hour, value) in list)
        {
            values[(hour - start).Ticks / TimeSpan.TicksPerHour] = value;
        }
        return new HourlySeries(start, values);
    }
}
