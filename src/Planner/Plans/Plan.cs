using System.Globalization;
using System.Text;
using System.Text.Json.Serialization;

namespace Forecaster.Planner;

/// <summary>Where a step's load came from; the wire names are the issue's.</summary>
[JsonConverter(typeof(CamelCaseEnumConverter<StepSource>))]
public enum StepSource
{
    [JsonStringEnumMemberName("forecast")] Forecast,
    [JsonStringEnumMemberName("fallback:yesterday-same-hour")] YesterdaySameHour,
    [JsonStringEnumMemberName("fallback:last-week-same-hour")] LastWeekSameHour,
    [JsonStringEnumMemberName("fallback:static")] Static,
}

/// <summary>Why a step did not use the forecast.</summary>
[JsonConverter(typeof(CamelCaseEnumConverter<FallbackReason>))]
public enum FallbackReason { None, NoForecast, Stale, WorseThanSeasonalNaive, HourNotForecast, ServeTime, NoCapacity }

/// <summary>A rule that changed the count, in the order the planner applies them.</summary>
[JsonConverter(typeof(CamelCaseEnumConverter<ClampRule>))]
public enum ClampRule
{
    MinReplicas, MaxReplicas, WindowMin, WindowMax, MaxParallelism, ExceedMax, Divisor,
    RampUp, ScaleDownDelay, Tolerance, MaxStepUp, MaxStepDown,
}

/// <summary>
/// One rule that changed the count from <see cref="From"/> to <see cref="To"/>; <see cref="Limit"/> is the policy
/// number behind it (the max, the step, the tolerance, the delay hours, maxParallelism, the breach buffer).
/// </summary>
public readonly record struct Clamp(ClampRule Rule, int From, int To, double Limit)
{
    public override string ToString()
    {
        var limit = Limit.ToString("G6", CultureInfo.InvariantCulture);
        return Rule switch
        {
            ClampRule.Tolerance => Invariant($"tolerance: kept {To} ({From} is within ±{Limit:P0} of {To})"),
            ClampRule.ScaleDownDelay => Invariant($"scaleDownDelay: {From} -> {To} (lower count not yet wanted for {limit} h)"),
            ClampRule.RampUp => Invariant($"rampUp: {From} -> {To} (pre-scaling so a later rise stays within maxStepUp {limit})"),
            ClampRule.ExceedMax => Invariant($"exceed: {To} above maxReplicas {From} (allowed up to forecast × {1 + Limit:G4})"),
            ClampRule.Divisor => Invariant($"divisor: {From} -> {To} (divides maxParallelism {limit})"),
            _ => Invariant($"{char.ToLowerInvariant(Rule.ToString()[0])}{Rule.ToString()[1..]}: {From} -> {To} (limit {limit})"),
        };
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}

/// <summary>
/// The terms of a streaming job's needed rate, after Flink's autoscaler: rate / targetUtilization + backlog / catch-up
/// + rate × restart / catch-up (records/s; times in seconds).
/// </summary>
public sealed record JobDemand(double Rate, double Backlog, double CatchUpSeconds, double RestartSeconds, double NeededRate)
{
    /// <summary>
    /// Needed rate = rate / targetUtilization + backlog / catch-up + rate × restart / catch-up. The one place it is computed:
    /// the planner sizes with it, and the packed steps leave out a needed rate it gives to the bit.
    /// </summary>
    public static double Needed(double rate, double targetUtilization, double backlog, double catchUpSeconds, double restartSeconds) =>
        (rate / targetUtilization) + (backlog / catchUpSeconds) + (rate * restartSeconds / catchUpSeconds);
}

/// <summary>The numbers behind a step, structured, with <see cref="Sentence"/> for people.</summary>
public sealed record StepExplanation(
    StepSource Source,
    FallbackReason Fallback,
    DateTimeOffset? LoadHour,
    double? Load,
    ForecastBound? Bound,
    double? Capacity,
    CapacitySource CapacitySource,
    double TargetUtilization,
    double? RawCount,
    int? Demand,
    int? Window,
    JobDemand? Job,
    IReadOnlyList<Clamp> Clamps,
    int Count)
{
    /// <summary>How a risk-targeted policy chose this hour's load; null under <c>forecastBound</c>.</summary>
    public RiskChoice? Risk { get; init; }
    /// <summary>The policy window in force, as people read it (<c>Mon-Fri 19:00-23:00 Asia/Shanghai: min 40</c>).</summary>
    public string? WindowRule { get; init; }

    /// <summary>Written when asked for (it is what the plan API shows), so planning 100,000 resources formats nothing.</summary>
    public string Sentence
    {
        get
        {
            var s = new StringBuilder();
            var c = CultureInfo.InvariantCulture;
            if (Source == StepSource.Forecast && Risk is { } risk)
            {
                s.Append(risk.Describe());
            }
            else if (Source == StepSource.Forecast)
            {
                s.Append(c, $"forecast {(Bound == ForecastBound.Upper ? "upper bound" : "point")} {Load:G6}");
            }
            else
            {
                s.Append(c, $"fallback ({Describe(Fallback)})");
                if (Load is double load && LoadHour is DateTimeOffset at)
                {
                    // The load of a step planned statically for want of capacity may be the forecast's, not an observation.
                    if (Bound is ForecastBound bound)
                    {
                        s.Append(c, $": forecast {(bound == ForecastBound.Upper ? "upper bound" : "point")} {load:G6} for {at:yyyy-MM-dd HH:mm}Z");
                    }
                    else
                    {
                        s.Append(c, $": observed {load:G6} at {at:yyyy-MM-dd HH:mm}Z");
                    }
                    if (RawCount is null)
                    {
                        s.Append(" not converted to replicas");
                    }
                }
            }
            if (Job is { } job)
            {
                s.Append(c, $"; needed rate {job.Rate:G6}/{TargetUtilization:G3} + backlog {job.Backlog:G6}/{job.CatchUpSeconds:G6}s + restart {job.Rate:G6}×{job.RestartSeconds:G6}s/{job.CatchUpSeconds:G6}s = {job.NeededRate:G6}");
            }
            if (RawCount is double raw)
            {
                s.Append(c, $"; capacity {Capacity:G6} ({CapacitySource}) at target {TargetUtilization:G3} -> raw {raw:F2} -> {Demand}");
            }
            else if (Source == StepSource.Static)
            {
                s.Append(c, $"; static max(minReplicas, current)");
            }
            if (Window is int w)
            {
                s.Append(c, $"; window {WindowRule ?? $"#{w}"} applied");
            }
            foreach (var clamp in Clamps)
            {
                s.Append("; ").Append(clamp.ToString());
            }
            s.Append(c, $"; planned {Count}");
            return s.ToString();
        }
    }

    private static string Describe(FallbackReason reason) => reason switch
    {
        FallbackReason.NoForecast => "no forecast",
        FallbackReason.Stale => "forecast stale",
        FallbackReason.WorseThanSeasonalNaive => "model's backtest worse than seasonal naive",
        FallbackReason.HourNotForecast => "hour not in forecast",
        FallbackReason.ServeTime => "no plan covers this instant",
        FallbackReason.NoCapacity => "capacity per replica unknown",
        _ => "none",
    };
}

/// <summary>
/// The desired state for one hour. It takes effect at <see cref="Start"/> (the hour minus the lead) and lasts until
/// <see cref="End"/>, the next step's start. <see cref="Count"/> is replicas for a service, parallelism for a job.
/// </summary>
public sealed record PlanStep(
    DateTimeOffset Hour,
    DateTimeOffset Start,
    DateTimeOffset End,
    ResourceKind Kind,
    int Count,
    double? Cpu,
    long? Memory,
    StepSource Source,
    bool CapacityShortfall,
    int Shortfall,
    bool ForecastOnly,
    bool WindowApplied,
    StepExplanation Explanation)
{
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? Replicas => Kind == ResourceKind.Service ? Count : null;

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? Parallelism => Kind == ResourceKind.Job ? Count : null;
}

/// <summary>
/// A resource's plan: one step per horizon hour. The host assigns the version id when it stores it;
/// <see cref="Notes"/> says what the planner could not use (stale forecast, no capacity) once rather than per step.
/// </summary>
public sealed record Plan(
    string Resource,
    ResourceKind Kind,
    DateTimeOffset GeneratedAt,
    PlanMode Mode,
    string? ForecastVersion,
    string? ModelVersion,
    string? CapacityModelVersion,
    ResourceRequests Requests,
    IReadOnlyList<string> Notes,
    IReadOnlyList<PlanStep> Steps);

/// <summary>What the planner produced: a value, or what is missing to produce one.</summary>
public abstract record PlanOutcome<T>;

public sealed record Planned<T>(T Value) : PlanOutcome<T>;

/// <summary>Neither a forecast, nor history, nor policy bounds: <see cref="Missing"/> lists what to supply.</summary>
public sealed record CannotPlan<T>(string Resource, IReadOnlyList<string> Missing) : PlanOutcome<T>;
