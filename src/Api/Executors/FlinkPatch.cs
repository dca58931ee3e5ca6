using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Forecaster.Api.Serving;
using Forecaster.Planner;

namespace Forecaster.Api.Executors;

/// <summary>One planned parallelism as a FlinkDeployment merge patch, with when to apply it.</summary>
/// <param name="ApplyFrom">The step's start (its hour minus the policy's lead) minus restartMinutes: a rescale restarts the job, so it starts this early.</param>
/// <param name="ValidUntil">When the next differing patch is to be applied (the end of the known steps when none differs).</param>
public sealed record FlinkStep(int Parallelism, DateTimeOffset Hour, DateTimeOffset ApplyFrom, DateTimeOffset ValidUntil, StepSource Source, JsonObject Patch);

/// <summary>What GET /api/v1/resources/{name}/flink returns: the patch to apply now and the next differing one.</summary>
/// <param name="Target">`job` (<c>spec.job.parallelism</c>) or `vertices` (<c>pipeline.jobvertex-parallelism-overrides</c> for <see cref="Vertices"/>).</param>
/// <param name="ForecastOnly">A dry run: shown, not to be applied.</param>
public sealed record FlinkPatchView(
    string Resource, string Target, IReadOnlyList<string>? Vertices, int LeadMinutes, int RestartMinutes,
    FlinkStep Current, FlinkStep? Next, bool ForecastOnly, bool Stale);

/// <summary>
/// The Flink Kubernetes Operator's way to apply a planned parallelism: a merge patch of the FlinkDeployment, the whole job's
/// <c>spec.job.parallelism</c> or, when the policy names vertices, <c>pipeline.jobvertex-parallelism-overrides</c> in
/// <c>spec.flinkConfiguration</c> (which the operator applies as a scale, not a full upgrade, in native mode).
/// </summary>
public static class FlinkPatch
{
    public const string OverridesKey = "pipeline.jobvertex-parallelism-overrides";

    /// <summary>Hours of steps looked through for the next differing one.</summary>
    const int LookAheadHours = 25;

    /// <summary>The patch in force now (the step that must be running <c>restartMinutes</c> from now) and the next differing one; or what is missing.</summary>
    public static (FlinkPatchView? View, IReadOnlyList<string>? Missing) For(ServedResource resource, Policy policy, DateTimeOffset now, bool stale)
    {
        var restart = policy.RestartMinutes ?? Policy.DefaultRestartMinutes;
        var at = now.AddMinutes(restart);
        var steps = resource.Schedule(at, at.AddHours(LookAheadHours), now);
        if (steps.Count == 0 || steps[0].Start > at)
        {
            return (null, [$"no plan covers {at:yyyy-MM-dd HH:mm}Z and the fallback cannot compute one"]);
        }
        var first = steps[0];
        var next = steps.Skip(1).FirstOrDefault(s => s.Count != first.Count);
        var lastKnown = steps.TakeWhile(s => s.Count == first.Count).Last().End;
        var current = Step(policy, first, restart, (next?.Start ?? lastKnown).AddMinutes(-restart));
        var following = next is null ? null
            : Step(policy, next, restart, (steps.SkipWhile(s => s != next).Skip(1).FirstOrDefault(s => s.Count != next.Count)?.Start
                ?? steps.SkipWhile(s => s != next).TakeWhile(s => s.Count == next.Count).Last().End).AddMinutes(-restart));
        var plan = resource.Plan;
        var forecastOnly = plan is not null && plan.IndexAt(first.Start) >= 0 ? plan.ForecastOnly : first.ForecastOnly;
        return (new FlinkPatchView(resource.Name, policy.Vertices is { Count: > 0 } ? "vertices" : "job", policy.Vertices,
            policy.LeadMinutes, restart, current, following, forecastOnly, stale), null);
    }

    static FlinkStep Step(Policy policy, PlanStep step, int restart, DateTimeOffset validUntil) =>
        new(step.Count, step.Hour, step.Start.AddMinutes(-restart), validUntil, step.Source, Patch(policy, step.Count));

    /// <summary>The merge patch setting <paramref name="parallelism"/>.</summary>
    public static JsonObject Patch(Policy policy, int parallelism) => policy.Vertices is { Count: > 0 } vertices
        ? new JsonObject
        {
            ["spec"] = new JsonObject
            {
                ["flinkConfiguration"] = new JsonObject { [OverridesKey] = Overrides(vertices, parallelism) },
            },
        }
        : new JsonObject { ["spec"] = new JsonObject { ["job"] = new JsonObject { ["parallelism"] = parallelism } } };

    static string Overrides(IReadOnlyList<string> vertices, int parallelism) =>
        string.Join(',', vertices.Select(v => string.Create(CultureInfo.InvariantCulture, $"{v.ToLowerInvariant()}:{parallelism}")));

    /// <summary>The current patch as YAML for <c>kubectl patch flinkdeployment NAME --type merge --patch-file FILE</c>.</summary>
    public static string Yaml(FlinkPatchView view, Policy policy)
    {
        var c = view.Current;
        var y = new StringBuilder();
        y.Append(CultureInfo.InvariantCulture, $"# {view.Resource}: parallelism {c.Parallelism} for the hour from {c.Hour:yyyy-MM-ddTHH:mm}Z, applied from {c.ApplyFrom:yyyy-MM-ddTHH:mm}Z (lead {view.LeadMinutes} min + restart {view.RestartMinutes} min)\n");
        if (view.Next is { } n)
        {
            y.Append(CultureInfo.InvariantCulture, $"# next: parallelism {n.Parallelism} from {n.ApplyFrom:yyyy-MM-ddTHH:mm}Z\n");
        }
        y.Append(CultureInfo.InvariantCulture, $"# kubectl patch flinkdeployment {view.Resource} --type merge --patch-file THIS_FILE\n");
        y.Append("spec:\n");
        if (policy.Vertices is { Count: > 0 } vertices)
        {
            y.Append("  flinkConfiguration:\n");
            y.Append(CultureInfo.InvariantCulture, $"    {OverridesKey}: {Executors.Yaml.Quote(Overrides(vertices, c.Parallelism))}\n");
        }
        else
        {
            y.Append("  job:\n");
            y.Append(CultureInfo.InvariantCulture, $"    parallelism: {c.Parallelism}\n");
        }
        return y.ToString();
    }
}
