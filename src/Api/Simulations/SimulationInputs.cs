using System.Globalization;
using System.Text.Json;
using Forecaster.Api.Demo;
using Forecaster.Planner;
using Forecaster.Training.Csv;
using Forecaster.Training.Series;
using static Forecaster.Planner.Hours;

namespace Forecaster.Api.Simulations;

/// <summary>
/// Turns what a user gives the simulator (a CSV or JSON load series, a policy) into <see cref="ReplaySeries"/>: hourly means on
/// UTC hour boundaries (as training aggregates with <c>date_bin</c>), the policy validated as a service's, and the capacity
/// per replica. Every problem is a sentence naming the series or field, for exit code 2 or a 400.
/// </summary>
public static class SimulationInputs
{
    /// <summary>A policy validated as the planner validates a service's (every replayed series is scaled in replicas).</summary>
    public static (Policy? Policy, IReadOnlyList<PolicyProblem> Problems) ReadPolicy(JsonElement json)
    {
        var problems = PolicyValidator.Validate(json, ResourceKind.Service);
        if (problems.Count > 0)
        {
            return (null, problems);
        }
        var policy = PolicyJson.Read(json);
        if (policy.CapacityPerReplica is null && policy.MaxReplicas is null)
        {
            return (null, [new PolicyProblem("policy.capacityPerReplica",
                "is needed, or maxReplicas so that a capacity can be chosen (the series' peak then needs maxReplicas/2 replicas)")]);
        }
        return (policy, []);
    }

    /// <summary>The series of a history file (or an API body) ready to replay, or the first problem found.</summary>
    public static (IReadOnlyList<ReplaySeries> Series, string? Problem) Prepare(IReadOnlyList<SeriesHistory> histories, Policy policy)
    {
        if (histories.Count == 0)
        {
            return ([], "no series: the input has a header but no rows");
        }
        var result = new List<ReplaySeries>(histories.Count);
        foreach (var h in histories)
        {
            if (Hourly(h, out var problem) is not { } hourly)
            {
                return ([], problem);
            }
            if (Series(h.Series, hourly.Start, hourly.Load, policy, out problem) is not { } series)
            {
                return ([], problem);
            }
            result.Add(series);
        }
        return (result, null);
    }

    /// <summary>Hourly mean load on UTC hour boundaries from the first to the last observed hour; NaN where nothing was observed.</summary>
    public static (DateTimeOffset Start, double[] Load)? Hourly(SeriesHistory history, out string? problem)
    {
        var observed = history.Observations.Where(o => !double.IsNaN(o.Value)).ToList();
        if (observed.Count == 0)
        {
            problem = $"series '{history.Series}' has no values";
            return null;
        }
        if (observed.FirstOrDefault(o => o.Value < 0) is { Timestamp: var at, Value: var v } && v < 0)
        {
            problem = string.Create(CultureInfo.InvariantCulture, $"series '{history.Series}' has a negative load {v} at {ForecastCsv.FormatTimestamp(at)}");
            return null;
        }
        // Beyond this, hourly sums (and everything planned from them) could overflow to infinity (issue 13).
        if (observed.FirstOrDefault(o => !(o.Value <= Samples.SampleRules.AggregateLimit)) is { Timestamp: var hugeAt, Value: var huge } && !(huge <= Samples.SampleRules.AggregateLimit))
        {
            problem = string.Create(CultureInfo.InvariantCulture,
                $"series '{history.Series}' has a load {huge:R} at {ForecastCsv.FormatTimestamp(hugeAt)}, beyond the largest accepted {Samples.SampleRules.AggregateLimit:R}");
            return null;
        }
        var ticks = observed.Select(o => o.Timestamp.UtcTicks).Distinct().Order().ToArray();
        var finest = Enumerable.Range(1, ticks.Length - 1).Select(i => ticks[i] - ticks[i - 1]).DefaultIfEmpty(0).Min();
        if (finest > Hour.Ticks)
        {
            problem = $"series '{history.Series}' is coarser than hourly (samples at least {TimeSpan.FromTicks(finest)} apart): simulate needs hourly or finer load";
            return null;
        }
        var start = ticks[0] - (ticks[0] % Hour.Ticks);
        var n = checked((int)(((ticks[^1] - start) / Hour.Ticks) + 1));
        var sums = new double[n];
        var counts = new int[n];
        foreach (var o in observed)
        {
            var i = (int)((o.Timestamp.UtcTicks - start) / Hour.Ticks);
            sums[i] += o.Value;
            counts[i]++;
        }
        problem = null;
        return (new DateTimeOffset(start, TimeSpan.Zero), [.. sums.Select((s, i) => counts[i] == 0 ? double.NaN : s / counts[i])]);
    }

    /// <summary>
    /// The series with its capacity: the policy's <c>capacityPerReplica</c>, else one chosen so that the series' overall peak
    /// fills maxReplicas/2 replicas at 100% utilisation (the report says so). A physical figure, independent of the target
    /// utilisation: at a target of 0.7 the peak then plans about 0.71 × maxReplicas, leaving room above it for the upper bound.
    /// </summary>
    public static ReplaySeries? Series(string name, DateTimeOffset start, double[] load, Policy policy, out string? problem)
    {
        problem = null;
        if (policy.CapacityPerReplica is not null)
        {
            return new ReplaySeries(name, start, load, policy, CapacityChosen: false);
        }
        var peak = load.Where(double.IsFinite).DefaultIfEmpty(0).Max();
        if (peak <= 0)
        {
            problem = $"series '{name}' never has load above 0, so no capacityPerReplica can be chosen from its peak: give one in the policy";
            return null;
        }
        var capacity = peak / (policy.MaxReplicas!.Value / 2.0);
        return new ReplaySeries(name, start, load, policy with { CapacityPerReplica = capacity }, CapacityChosen: true);
    }

    /// <summary>
    /// The demo fleet's load metric (services' qps, jobs' input rate) for <see cref="DemoFleet.HistoryDays"/> days ending at
    /// <paramref name="end"/>: what `serve --demo` seeds, for a replay without a database.
    /// </summary>
    public static IReadOnlyList<SeriesHistory> Demo(DateTimeOffset end) =>
        [.. DemoFleet.Resources().Select(r => new SeriesHistory(r.Name,
            [.. DemoFleet.Samples(r, end.UtcDateTime).Where(s => s.Metric == r.LoadMetric)
                .Select(s => new Observation(new DateTimeOffset(s.Timestamp, TimeSpan.Zero), s.Value))]))];
}
