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
/// <param name="Tail">The model's one-sided upper backtest errors, which a risk-targeted policy plans on; null when training
/// stored none (a fallback model, too few backtest errors): the band's margin is then extrapolated with normal quantiles.</param>
public sealed record ForecastRun(
    string Version, string ModelVersion, DateTimeOffset GeneratedAt, bool BeatsSeasonalNaive, IReadOnlyList<ForecastHour> Hours, double BandLevel = 0.95,
    UpperTail? Tail = null);

/// <summary>
/// How far above the point forecast a series' load went in its model's rolling-origin backtest, one-sided, for planning on a
/// stated risk: at the forecast hour <c>Origin + k</c> the error (load − point) has its quantile p at
/// <c>(Upper − Point) × StepScale[k] × Quantile(p)</c>, that is in units of the hour's own band margin. The band is symmetric
/// and calibrated on |error| (a fall counts as much as a rise), and a normal extrapolation from 95% to 0.995 is not every
/// series' tail; these come from the rises alone. <see cref="StepScale"/> is the upper errors' size per step relative to the band,
/// pooled over neighbouring steps and the same hour of the other day (the backtest's origins are whole days apart, so a step
/// is an hour of day): it moves the margin to the hours of day whose errors are large. <see cref="Levels"/> and
/// <see cref="Quantiles"/> are the conformal quantiles of the errors in those units (split-conformal, as the band's).
/// </summary>
/// <param name="Origin">The forecast's first hour (the training window's end): step k is the hour Origin + k.</param>
/// <param name="Samples">Backtest errors behind the quantiles.</param>
public sealed record UpperTail(DateTimeOffset Origin, double[] StepScale, double[] Levels, double[] Quantiles, int Samples)
{
    /// <summary>The step's scale for the hour starting at <paramref name="hour"/>; past the backtest's steps, the same hour of its last day.</summary>
    public double ScaleAt(DateTimeOffset hour)
    {
        if (StepScale.Length == 0)
        {
            return 1;
        }
        var k = (long)Math.Floor((hour - Origin) / TimeSpan.FromHours(1));
        if (k < 0)
        {
            return StepScale[0];
        }
        if (k < StepScale.Length)
        {
            return StepScale[k];
        }
        var day = Math.Min(24, StepScale.Length);
        return StepScale[StepScale.Length - day + (int)((k - StepScale.Length) % day)];
    }

    /// <summary>
    /// The quantile at level <paramref name="p"/> in band units: interpolated in the table linearly in −ln(1 − p), and beyond its
    /// last level extended along its last rise (an exponential tail, heavier than the normal's).
    /// </summary>
    public double Quantile(double p)
    {
        var x = -Math.Log(1 - p);
        var n = Levels.Length;
        var i = 1;
        while (i < n - 1 && -Math.Log(1 - Levels[i]) < x)
        {
            i++;
        }
        // The segment [i − 1, i]; below the first level or above the last it is extended.
        var x0 = -Math.Log(1 - Levels[i - 1]);
        var x1 = -Math.Log(1 - Levels[i]);
        return x > x1 && i == n - 1
            ? Quantiles[i] + (TopSlope() * (x - x1))
            : Quantiles[i - 1] + ((Quantiles[i] - Quantiles[i - 1]) * (x - x0) / (x1 - x0));
    }

    /// <summary>P(error &gt; v band units), the inverse of <see cref="Quantile"/>.</summary>
    public double Tail(double v)
    {
        var n = Levels.Length;
        if (v >= Quantiles[^1])
        {
            var top = TopSlope();
            return (1 - Levels[^1]) * Math.Exp(-(v - Quantiles[^1]) / top);
        }
        if (v < Quantiles[0])
        {
            var slope = (Quantiles[1] - Quantiles[0]) / (Math.Log(1 - Levels[0]) - Math.Log(1 - Levels[1]));
            var x = -Math.Log(1 - Levels[0]) - (slope > 0 ? (Quantiles[0] - v) / slope : double.PositiveInfinity);
            return x <= 0 ? 1 : Math.Exp(-x);
        }
        var i = 1;
        while (Quantiles[i] <= v)
        {
            i++;
        }
        // Quantiles[i − 1] ≤ v < Quantiles[i]
        var x0 = -Math.Log(1 - Levels[i - 1]);
        var x1 = -Math.Log(1 - Levels[i]);
        var xv = x0 + ((x1 - x0) * (v - Quantiles[i - 1]) / (Quantiles[i] - Quantiles[i - 1]));
        return Math.Exp(-xv);
    }

    // Band units per unit of −ln(1 − p) past the last level: the last two levels' rise, at least a tenth of the table's
    // typical rise so that tied top errors do not make the tail end abruptly.
    private double TopSlope()
    {
        var n = Levels.Length;
        var last = (Quantiles[n - 1] - Quantiles[n - 2]) / (Math.Log(1 - Levels[n - 2]) - Math.Log(1 - Levels[n - 1]));
        var all = (Quantiles[n - 1] - Quantiles[0]) / (Math.Log(1 - Levels[0]) - Math.Log(1 - Levels[n - 1]));
        return Math.Max(last, Math.Max(0.1 * all, 1e-9));
    }
}

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
