using System.Text.Json.Serialization;

namespace Forecaster.Planner;

/// <summary>What is being scaled: a service's replicas or a streaming job's parallelism.</summary>
[JsonConverter(typeof(CamelCaseEnumConverter<ResourceKind>))]
public enum ResourceKind { Service, Job }

/// <summary>Which part of the forecast interval the planner sizes for.</summary>
[JsonConverter(typeof(CamelCaseEnumConverter<ForecastBound>))]
public enum ForecastBound { Point, Upper }

/// <summary>What happens when the forecast needs more than <c>maxReplicas</c> (after AWS predictive scaling's MaxCapacityBreachBehavior).</summary>
[JsonConverter(typeof(CamelCaseEnumConverter<MaxBreach>))]
public enum MaxBreach { Honor, Exceed }

/// <summary><c>forecastOnly</c> is a dry run: the plan is computed and served but flagged as not to be executed.</summary>
[JsonConverter(typeof(CamelCaseEnumConverter<PlanMode>))]
public enum PlanMode { Scale, ForecastOnly }

/// <summary>How requests per replica are sized: the weekly peak (ByteDance's overcommit) or a VPA-recommender percentile.</summary>
[JsonConverter(typeof(CamelCaseEnumConverter<RequestsRule>))]
public enum RequestsRule { WeeklyPeak, Percentile }

/// <summary>
/// The <c>requests</c> object of a policy: which sizing rule computes the cpu and memory request per replica. Both rules
/// add <see cref="Policy.OvercommitBuffer"/> as the margin and keep the policy's floors and granularity.
/// </summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record RequestsPolicy
{
    public const double DefaultPercentile = 0.9;
    public const double DefaultHalfLifeHours = 24;

    public RequestsRule Rule { get; init; } = RequestsRule.WeeklyPeak;

    /// <summary>With <see cref="RequestsRule.Percentile"/>: the quantile of the decaying usage histogram (the VPA recommender's target is 0.9).</summary>
    public double? Percentile { get; init; }

    /// <summary>With <see cref="RequestsRule.Percentile"/>: an hour this old weighs half as much as the latest (the VPA recommender's is 24).</summary>
    public double? HalfLifeHours { get; init; }

    /// <summary>The container the recommendation is for (a VPA's <c>containerName</c>); absent means the resource's name.</summary>
    public string? ContainerName { get; init; }
}

/// <summary>
/// A resource's scaling policy: the <c>policy</c> object of the resource (issue 5), read with web JSON defaults (camelCase).
/// Validate the JSON with <see cref="PolicyValidator"/> first; then <see cref="PolicyJson.Read"/> cannot fail.
/// For jobs, <see cref="MinReplicas"/> and <see cref="MaxReplicas"/> bound the parallelism.
/// </summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record Policy
{
    public const double DefaultTargetUtilization = 0.7;
    public const double DefaultTolerance = 0.1;
    public const int DefaultScaleDownDelayHours = 2;
    public const int DefaultLeadMinutes = 10;
    public const double DefaultOvercommitBuffer = 0.15;
    public const double DefaultCpuGranularity = 0.1;
    public const long DefaultMemoryGranularity = 64L * 1024 * 1024;
    public const double DefaultStaleAfterHours = 36;
    public const int DefaultCatchUpMinutes = 30;
    public const int DefaultRestartMinutes = 5;

    /// <summary>Name of the metric the forecast is made for (for jobs the input rate, e.g. <c>records_in_rate</c>, per second).</summary>
    public string? LoadMetric { get; init; }

    /// <summary>Load one replica carries at 100% utilisation; when absent it is derived from the trained capacity model.</summary>
    public double? CapacityPerReplica { get; init; }

    /// <summary>
    /// Cores one replica (subtask) is sized for: its cpu limit, else the request in its manifest. With the trained
    /// capacity model it gives the capacity when the policy states none; the host passes it as <see cref="PlanInput.ReplicaCpu"/>.
    /// A fixed reference on purpose: never the planner's own overcommitted request (see <see cref="CapacityModel"/>).
    /// </summary>
    public double? ReplicaCpu { get; init; }

    public double TargetUtilization { get; init; } = DefaultTargetUtilization;

    /// <summary>Absent means 1 when clamping; but the static fallback only trusts an explicit value or the current count.</summary>
    public int? MinReplicas { get; init; }

    /// <summary>Absent means unbounded (for jobs: bounded by <see cref="MaxParallelism"/>).</summary>
    public int? MaxReplicas { get; init; }

    public ForecastBound ForecastBound { get; init; } = ForecastBound.Upper;

    /// <summary>Most replicas added from one hour to the next; absent means unlimited.</summary>
    public int? MaxStepUp { get; init; }

    /// <summary>Most replicas removed from one hour to the next; absent means unlimited.</summary>
    public int? MaxStepDown { get; init; }

    /// <summary>No change when the new count is within ±tolerance × current.</summary>
    public double Tolerance { get; init; } = DefaultTolerance;

    /// <summary>A lower count is planned only once it has been wanted for this many hours (no flapping on a one-hour dip).</summary>
    public int ScaleDownDelayHours { get; init; } = DefaultScaleDownDelayHours;

    /// <summary>Each step starts this much before the hour it serves, so capacity is ready when the load arrives.</summary>
    public int LeadMinutes { get; init; } = DefaultLeadMinutes;

    /// <summary>Local-time overrides; the first window covering an hour wins.</summary>
    public IReadOnlyList<PolicyWindow> Windows { get; init; } = [];

    public MaxBreach MaxBreach { get; init; } = MaxBreach.Honor;

    /// <summary>With <see cref="MaxBreach.Exceed"/>: the count may reach forecast count × (1 + buffer) above max. Absent means 0.</summary>
    public double? MaxBreachBuffer { get; init; }

    public PlanMode Mode { get; init; } = PlanMode.Scale;

    /// <summary>Request = weekly peak per-replica usage × (1 + buffer) (ByteDance's dynamic overcommit).</summary>
    public double OvercommitBuffer { get; init; } = DefaultOvercommitBuffer;

    /// <summary>Floor of the cpu request per replica, in cores.</summary>
    public double? MinCpu { get; init; }

    /// <summary>Floor of the memory request per replica, in bytes.</summary>
    public long? MinMemory { get; init; }

    /// <summary>Cpu requests are rounded up to a multiple of this, in cores.</summary>
    public double CpuGranularity { get; init; } = DefaultCpuGranularity;

    /// <summary>Memory requests are rounded up to a multiple of this, in bytes.</summary>
    public long MemoryGranularity { get; init; } = DefaultMemoryGranularity;

    /// <summary>
    /// The risk the plan may take instead of a fixed bound: when set, each forecast hour plans for the forecast quantile
    /// 1 − fraction at full capacity, or the point forecast at the target utilisation, whichever needs more (see <see cref="RiskPolicy"/>).
    /// </summary>
    public RiskPolicy? Risk { get; init; }

    /// <summary>A forecast generated longer ago than this is not used; the hours fall back.</summary>
    public double StaleAfterHours { get; init; } = DefaultStaleAfterHours;

    /// <summary>How the request per replica is sized (<c>requests.rule</c>); absent means the weekly peak.</summary>
    public RequestsPolicy Requests { get; init; } = new();

    // Streaming jobs (in the manner of Flink's autoscaler).

    /// <summary>Metric of the source backlog (records waiting); optional.</summary>
    public string? BacklogMetric { get; init; }

    /// <summary>Time to drain the backlog; absent means <see cref="DefaultCatchUpMinutes"/>. Nullable so a service's policy never carries it.</summary>
    public int? CatchUpMinutes { get; init; }

    /// <summary>Expected restart time of a rescale; absent means <see cref="DefaultRestartMinutes"/>.</summary>
    public int? RestartMinutes { get; init; }

    /// <summary>Records per second one subtask processes at 100% utilisation; when absent, from the capacity model.</summary>
    public double? CapacityPerSubtask { get; init; }

    /// <summary>The job's key groups: parallelism is rounded up to a divisor of it, and never exceeds it.</summary>
    public int? MaxParallelism { get; init; }

    /// <summary>
    /// Flink job vertex ids (32 hex digits) the planned parallelism is applied to through
    /// <c>pipeline.jobvertex-parallelism-overrides</c>; absent means the whole job (<c>spec.job.parallelism</c>).
    /// </summary>
    public IReadOnlyList<string>? Vertices { get; init; }

    /// <summary>The bounds and target in force for the hour starting at <paramref name="hourUtc"/>.</summary>
    public HourLimits LimitsAt(DateTimeOffset hourUtc, ResourceKind kind)
    {
        var ceiling = kind == ResourceKind.Job && MaxParallelism is int p ? p : int.MaxValue;
        for (var i = 0; i < Windows.Count; i++)
        {
            var w = Windows[i];
            if (w.Covers(hourUtc))
            {
                return new HourLimits(w.MinReplicas ?? MinReplicas, w.MaxReplicas ?? MaxReplicas,
                    w.TargetUtilization ?? TargetUtilization, ceiling, i,
                    w.MinReplicas is not null, w.MaxReplicas is not null);
            }
        }
        return new HourLimits(MinReplicas, MaxReplicas, TargetUtilization, ceiling, null, false, false);
    }
}

/// <summary>
/// A stated risk: at most <see cref="MaxUnderProvisionedHoursFraction"/> of the hours may have more load than the planned
/// replicas carry at 100%. The quantile covers the forecast's error; the target utilisation keeps covering what an hourly
/// mean hides (bursts within the hour, the reactive part's headroom) and applies to the point forecast only, so the two
/// margins are combined by taking the larger count, never multiplied.
/// </summary>
public sealed record RiskPolicy(double MaxUnderProvisionedHoursFraction)
{
    /// <summary>The one-sided forecast quantile that meets the fraction, e.g. 0.995 for 0.005.</summary>
    public double Quantile => 1 - MaxUnderProvisionedHoursFraction;
}

/// <summary>
/// Bounds in force for one hour. <see cref="Lower"/> and <see cref="Upper"/> are what the planner clamps to:
/// an absent minimum means 1 (a running resource needs one replica; scale-to-zero must be asked for with 0).
/// </summary>
public readonly record struct HourLimits(
    int? Min, int? Max, double TargetUtilization, int KeyGroupCeiling, int? Window, bool WindowSetsMin, bool WindowSetsMax)
{
    public int Lower => Math.Min(Min ?? 1, Upper);

    public int Upper => Math.Min(Max ?? int.MaxValue, KeyGroupCeiling);

    public ClampRule LowerRule => WindowSetsMin ? ClampRule.WindowMin : ClampRule.MinReplicas;

    public ClampRule UpperRule =>
        Max is int m && m <= KeyGroupCeiling ? (WindowSetsMax ? ClampRule.WindowMax : ClampRule.MaxReplicas) : ClampRule.MaxParallelism;
}
