using System.Text.Json.Serialization;
using Forecaster.Planner;

namespace Forecaster.Api.Serving;

/// <summary>The desired state of one resource at an instant, as GET /api/v1/resources/{name}/plan/current returns it.</summary>
/// <param name="Replicas">Services: the replica count (absent for jobs).</param>
/// <param name="Parallelism">Streaming jobs: the parallelism (absent for services).</param>
/// <param name="ValidFrom">When this state takes effect (its hour minus the lead).</param>
/// <param name="ValidUntil">When the next step takes over.</param>
/// <param name="Hour">The hour whose load this state is sized for.</param>
/// <param name="Next">The next step that differs, so an executor can pre-scale; null when none is known.</param>
/// <param name="Source">Where the load came from: `forecast`, `fallback:yesterday-same-hour`, `fallback:last-week-same-hour`, `fallback:static`.</param>
/// <param name="PlanVersion">The plan version served; null when computed on the spot (no plan covers the instant).</param>
/// <param name="Stale">Served from a plan older than `Forecaster:Serving:PlanStaleAfterHours`, or from memory while the database is unreachable.</param>
/// <param name="ForecastOnly">A dry run: computed and served, not to be executed.</param>
public sealed record CurrentPlan(
    string Resource,
    ResourceKind Kind,
    int? Replicas,
    int? Parallelism,
    double? Cpu,
    long? Memory,
    DateTimeOffset ValidFrom,
    DateTimeOffset ValidUntil,
    DateTimeOffset Hour,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] NextStep? Next,
    StepSource Source,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] long? PlanVersion,
    DateTimeOffset? PlanGeneratedAt,
    bool Stale,
    bool ForecastOnly,
    bool CapacityShortfall,
    StepExplanation Explanation);

/// <summary>The next step that differs from the current one.</summary>
public sealed record NextStep(int? Replicas, int? Parallelism, double? Cpu, long? Memory, DateTimeOffset ValidFrom, DateTimeOffset ValidUntil, StepSource Source);

/// <summary>An item of the batch answer for a resource that cannot be answered, with what is missing.</summary>
public sealed record MissingPlan(string Resource, IReadOnlyList<string> Missing);

/// <summary>The scheduled steps of a resource over a range, as GET /api/v1/resources/{name}/plan returns them.</summary>
/// <param name="PlanVersion">The active plan version; null when every step is computed on the spot by the fallback.</param>
public sealed record PlanSchedule(
    string Resource,
    ResourceKind Kind,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] long? PlanVersion,
    DateTimeOffset? PlanGeneratedAt,
    bool Stale,
    bool ForecastOnly,
    IReadOnlyList<ScheduledStep> Steps);

/// <summary>One step of a schedule; its explanation is in the plan version (GET /api/v1/resources/{name}/plans/{id}).</summary>
public sealed record ScheduledStep(
    int? Replicas, int? Parallelism, double? Cpu, long? Memory, DateTimeOffset ValidFrom, DateTimeOffset ValidUntil, DateTimeOffset Hour,
    StepSource Source, bool CapacityShortfall);

/// <summary>
/// What KEDA's metrics-api scaler reads (<c>valueLocation: desiredReplicas</c>): the plan's replicas (a job's parallelism) now;
/// 0 with <see cref="Neutral"/> and the <see cref="Reason"/> when the plan is not to be followed, so the other triggers decide.
/// </summary>
public sealed record KedaMetric(int DesiredReplicas, bool? Neutral = null, string? Reason = null);

/// <summary>A page of current states; pass <see cref="Next"/> as <c>after</c> for the following page.</summary>
public sealed record CurrentPlanPage(int Count, IReadOnlyList<CurrentPlan> Items, string? Next);
