using System.Globalization;
using System.Text;
using System.Text.Json.Serialization;

namespace Forecaster.Api.Simulations;

/// <summary>
/// How one strategy did (issue 7): replica-hours (cost), hours with load above replicas × capacity and the load not served
/// in them, mean utilisation (load / (replicas × capacity), over the scored hours) and how often the count changed.
/// </summary>
public sealed record StrategyScore(
    double ReplicaHours, int UnderProvisionedHours, int Hours, double UnservedLoad, double MeanUtilization, int ScalingActions);

/// <summary>
/// The sums behind a <see cref="StrategyScore"/>; they merge by adding, so totals are exact whatever the grouping.
/// Only hours with observed load are scored; scaling actions count every change between consecutive replayed hours.
/// </summary>
public sealed record Tally(double ReplicaHours, int UnderProvisionedHours, int Hours, double UnservedLoad, double UtilizationSum, int ScalingActions)
{
    public static Tally Zero { get; } = new(0, 0, 0, 0, 0, 0);

    /// <summary>Scores <paramref name="counts"/> against <paramref name="load"/> (same hours; NaN load is not scored).</summary>
    public static Tally Of(ReadOnlySpan<int> counts, ReadOnlySpan<double> load, double capacity)
    {
        double replicaHours = 0, unserved = 0, utilization = 0;
        int under = 0, hours = 0, actions = 0;
        for (var t = 0; t < counts.Length; t++)
        {
            actions += t > 0 && counts[t] != counts[t - 1] ? 1 : 0;
            if (!double.IsFinite(load[t]))
            {
                continue;
            }
            hours++;
            replicaHours += counts[t];
            var served = counts[t] * capacity;
            // Under-provisioned: more load than the replicas carry at 100% utilisation; the excess is not served.
            if (load[t] > served)
            {
                under++;
                unserved += load[t] - served;
            }
            // No replica at all (minReplicas 0): fully used when there is load, idle otherwise.
            utilization += served > 0 ? load[t] / served : load[t] > 0 ? 1 : 0;
        }
        return new Tally(replicaHours, under, hours, unserved, utilization, actions);
    }

    public Tally Add(Tally other) => new(
        ReplicaHours + other.ReplicaHours, UnderProvisionedHours + other.UnderProvisionedHours, Hours + other.Hours,
        UnservedLoad + other.UnservedLoad, UtilizationSum + other.UtilizationSum, ScalingActions + other.ScalingActions);

    public StrategyScore Score() => new(
        ReplicaHours, UnderProvisionedHours, Hours, UnservedLoad, Hours == 0 ? 0 : UtilizationSum / Hours, ScalingActions);
}

/// <summary>
/// The forecast's accuracy over a series' replayed days: MASE of the day's 24 hours (scaled by seasonal naive's in-sample error
/// on the history the model saw) averaged over the days, coverage of the interval pooled over hours. Untrusted days are those
/// whose model did not beat seasonal naive in its backtest (the planner fell back); failed fits kept the previous forecast.
/// </summary>
public sealed record SeriesForecastScore(
    double? Mase, double? Coverage, int Days, int UntrustedDays, int FailedFits, string? FirstError,
    [property: JsonIgnore] int Inside, [property: JsonIgnore] int Scored);

/// <summary>The forecast's accuracy over every replayed series: MASE averaged over series, coverage pooled over hours.</summary>
public sealed record ForecastSummary(double Level, double? Mase, double? Coverage, int Days, int UntrustedDays, int FailedFits);

/// <summary>The load one replica carries in the replay of a series, and whether the policy gave it or the simulator chose it.</summary>
public sealed record SeriesCapacity(double CapacityPerReplica, string Source);

/// <summary>
/// Issue 7's goal on these data: predictive+reactive uses at least 30% fewer replica-hours than static-peak, with
/// under-provisioned hours at most a third of reactive's and below 1% of hours.
/// </summary>
public sealed record GoalCheck(double ReplicaHoursSavedVsStaticPeak, double? UnderProvisionedVsReactive, double UnderProvisionedShare, bool Met)
{
    /// <summary>At least 30% fewer replica-hours than static-peak.</summary>
    [JsonIgnore]
    public bool SavesEnough => ReplicaHoursSavedVsStaticPeak >= 0.3;

    /// <summary>Under-provisioned hours at most a third of reactive's (none, when reactive had none).</summary>
    [JsonIgnore]
    public bool ShortAtMostAThirdOfReactive => UnderProvisionedVsReactive is double r ? r <= 1.0 / 3 : UnderProvisionedShare == 0;

    /// <summary>Under-provisioned in fewer than 1% of hours.</summary>
    [JsonIgnore]
    public bool RarelyShort => UnderProvisionedShare < 0.01;

    public static GoalCheck Of(IReadOnlyDictionary<string, StrategyScore> totals)
    {
        var combined = totals[Replay.PredictiveReactive];
        var staticPeak = totals[Replay.StaticPeak];
        var reactive = totals[Replay.Reactive];
        var saved = staticPeak.ReplicaHours > 0 ? 1 - (combined.ReplicaHours / staticPeak.ReplicaHours) : 0;
        double? ratio = reactive.UnderProvisionedHours > 0 ? (double)combined.UnderProvisionedHours / reactive.UnderProvisionedHours : null;
        var share = combined.Hours > 0 ? (double)combined.UnderProvisionedHours / combined.Hours : 0;
        var parts = new GoalCheck(saved, ratio, share, Met: false);
        return parts with { Met = parts.SavesEnough && parts.ShortAtMostAThirdOfReactive && parts.RarelyShort };
    }
}

/// <summary>
/// One replayed UTC day summed over every series: the replica-hours the load needed at 100% utilisation (load / capacity)
/// and, per strategy, the replica-hours and under-provisioned hours it had (the dashboard charts these day by day).
/// </summary>
public sealed record DayScore(DateOnly Day, double NeededReplicaHours, IReadOnlyDictionary<string, StrategyScore> Strategies)
{
    public static IReadOnlyList<DayScore> Of(IReadOnlyList<SeriesReplay> replayed)
    {
        var days = new SortedDictionary<DateOnly, (double Needed, Dictionary<string, Tally> Tallies)>();
        foreach (var r in replayed)
        {
            for (var d = 0; d < r.Days; d++)
            {
                var day = DateOnly.FromDateTime((r.From + TimeSpan.FromDays(d)).UtcDateTime);
                if (!days.TryGetValue(day, out var sum))
                {
                    sum = (0, Replay.Strategies.ToDictionary(s => s, _ => Tally.Zero));
                }
                var load = r.Load.AsSpan(d * 24, 24);
                var needed = sum.Needed;
                foreach (var l in load)
                {
                    needed += double.IsFinite(l) ? l / r.Capacity : 0;
                }
                foreach (var (strategy, counts) in r.Counts)
                {
                    sum.Tallies[strategy] = sum.Tallies[strategy].Add(Tally.Of(counts.AsSpan(d * 24, 24), load, r.Capacity));
                }
                days[day] = (needed, sum.Tallies);
            }
        }
        return [.. days.Select(d => new DayScore(d.Key, d.Value.Needed, d.Value.Tallies.ToDictionary(t => t.Key, t => t.Value.Score())))];
    }
}

/// <summary>
/// The simulation report: <see cref="Totals"/> keyed by strategy name, the same per series under <see cref="Series"/>, the
/// forecast's accuracy, the capacity each series was replayed with, the goal, and notes on what the simulator decided.
/// </summary>
public sealed record SimulationReport(
    int TrainDays,
    int HistoryDays,
    int HorizonHours,
    int SeriesCount,
    int ReplayedSeries,
    int SeriesDays,
    IReadOnlyDictionary<string, StrategyScore> Totals,
    IReadOnlyDictionary<string, IReadOnlyDictionary<string, StrategyScore>> Series,
    ForecastSummary Forecast,
    IReadOnlyDictionary<string, SeriesForecastScore> SeriesForecast,
    IReadOnlyDictionary<string, SeriesCapacity> Capacity,
    GoalCheck Goal,
    IReadOnlyList<string> Notes,
    IReadOnlyDictionary<string, string> Skipped,
    IReadOnlyList<DayScore> Days)
{
    /// <summary>
    /// Per strategy, the share of the possible saving it achieved: (static-peak − strategy) / (static-peak − oracle) in
    /// replica-hours (1 is the oracle, 0 static-peak, negative worse than static-peak); null when the oracle saves nothing.
    /// </summary>
    public IReadOnlyDictionary<string, double?> Efficiency => Totals.ToDictionary(t => t.Key, t => EfficiencyOf(t.Value.ReplicaHours));

    /// <summary>The policies' target utilisation averaged over the replayed series, to read the mean utilisation against.</summary>
    public double TargetUtilization { get; init; }

    /// <summary>
    /// Per series and strategy, the UTC hours it was under-provisioned (load above replicas × capacity): where the totals'
    /// short hours fell, to read against what the load did then (a burst, a ramp, a missed level).
    /// </summary>
    public IReadOnlyDictionary<string, IReadOnlyDictionary<string, DateTimeOffset[]>> UnderProvisioned { get; init; } =
        new Dictionary<string, IReadOnlyDictionary<string, DateTimeOffset[]>>();

    double? EfficiencyOf(double replicaHours)
    {
        var possible = Totals[Replay.StaticPeak].ReplicaHours - Totals[Replay.Oracle].ReplicaHours;
        return possible > 0 ? (Totals[Replay.StaticPeak].ReplicaHours - replicaHours) / possible : null;
    }

    /// <summary>Sums the replayed series into totals and writes the notes.</summary>
    public static SimulationReport Build(
        IReadOnlyList<SeriesReplay> replayed, IReadOnlyList<SkippedSeries> skipped, ReplaySettings settings, IEnumerable<string> inputNotes)
    {
        var totals = Replay.Strategies.ToDictionary(s => s,
            s => replayed.Aggregate(Tally.Zero, (sum, r) => sum.Add(r.Tallies[s])).Score());
        var series = replayed.ToDictionary(r => r.Name,
            r => (IReadOnlyDictionary<string, StrategyScore>)r.Tallies.ToDictionary(t => t.Key, t => t.Value.Score()), StringComparer.Ordinal);
        var mases = replayed.Select(r => r.Forecast.Mase).OfType<double>().ToList();
        var inside = replayed.Sum(r => r.Forecast.Inside);
        var scored = replayed.Sum(r => r.Forecast.Scored);
        var forecast = new ForecastSummary(settings.Training.Level, mases.Count == 0 ? null : mases.Average(), scored == 0 ? null : (double)inside / scored,
            replayed.Sum(r => r.Forecast.Days), replayed.Sum(r => r.Forecast.UntrustedDays), replayed.Sum(r => r.Forecast.FailedFits));

        var targets = replayed.Select(r => r.TargetUtilization).ToList();
        var notes = new List<string>
        {
            Invariant($"each replayed day: models fitted at 00:00 UTC on the {settings.Training.HistoryDays} days before it (the nightly run's window and selection), a {settings.Planning.HorizonHours}-hour plan made from them, its first 24 hours scored"),
            Invariant($"scored on hourly mean load; under-provisioned means load > replicas × capacityPerReplica; reactive is HPA-like on the previous hour's load (tolerance {Replay.ReactiveTolerance}, {Replay.ReactiveStabilizationHours} h scale-down stabilisation)"),
            "oracle plans each day from the load that actually came, through the same policy: what a perfect forecast would cost under it, never short of load; efficiency = (static-peak − strategy) / (static-peak − oracle) in replica-hours (above 1 means fewer replica-hours than the oracle, paid for in hours short)",
        };
        if (settings.Training.GlobalModel)
        {
            notes.Add(Invariant($"the fleet-wide model was trained once, on the series' windows before the first replayed midnight (at most {Forecaster.Api.Training.SeriesFitting.Options(settings.Training, loadMetric: true).GlobalModel.MaxSeries} series), and joined every night's candidates, as in the nightly run"));
        }
        if (replayed.Any(r => r.CeilingGuard))
        {
            notes.Add(Invariant($"risk-targeted policies: predictive+reactive's reactive part aims at utilisation {Replay.CeilingGuardUtilization:G3} (it scales up once an hour ran at full capacity), not the target, since the plan already holds the risk's forecast quantile at full capacity and the point at the target"));
        }
        notes.AddRange(inputNotes);
        var chosen = replayed.Where(r => r.CapacityChosen).ToList();
        if (chosen.Count > 0)
        {
            notes.Add(Invariant($"capacityPerReplica absent from the policy: chosen per series so that its overall peak needs maxReplicas/2 replicas at 100% utilisation ({chosen.Count} series; see `capacity`)"));
        }
        if (forecast.FailedFits > 0)
        {
            var first = replayed.First(r => r.Forecast.FirstError is not null);
            notes.Add(Invariant($"{forecast.FailedFits} nightly fits failed (e.g. {first.Name}: {first.Forecast.FirstError}); as in production the previous forecast was kept"));
        }
        if (forecast.UntrustedDays > 0)
        {
            notes.Add(Invariant($"{forecast.UntrustedDays} of {forecast.Days} series-days had a model not beating seasonal naive in backtest: the planner fell back to yesterday's load"));
        }
        if (skipped.Count > 0)
        {
            notes.Add(Invariant($"{skipped.Count} series skipped (too short); see `skipped`"));
        }
        return new SimulationReport(
            settings.TrainDays, settings.Training.HistoryDays, settings.Planning.HorizonHours, replayed.Count + skipped.Count, replayed.Count,
            replayed.Sum(r => r.Days), totals, series, forecast,
            replayed.ToDictionary(r => r.Name, r => r.Forecast, StringComparer.Ordinal),
            replayed.ToDictionary(r => r.Name, r => new SeriesCapacity(r.Capacity, r.CapacityChosen ? "auto" : "policy"), StringComparer.Ordinal),
            GoalCheck.Of(totals), notes, skipped.ToDictionary(s => s.Name, s => s.Reason, StringComparer.Ordinal),
            DayScore.Of(replayed))
        {
            TargetUtilization = targets.Count == 0 ? 0 : targets.Average(),
            UnderProvisioned = replayed.ToDictionary(r => r.Name,
                r => (IReadOnlyDictionary<string, DateTimeOffset[]>)r.Counts.ToDictionary(c => c.Key, c => r.UnderProvisionedHours(c.Value)),
                StringComparer.Ordinal),
        };
    }

    /// <summary>The totals as a fixed-width table for a terminal, with the forecast's accuracy and the goal underneath.</summary>
    public string ToTable()
    {
        var s = new StringBuilder();
        var staticHours = Totals[Replay.StaticPeak].ReplicaHours;
        s.AppendLine(Invariant($"{ReplayedSeries} series, {SeriesDays} series-days replayed after {TrainDays} training days"));
        s.AppendLine(Invariant($"{"strategy",-20} {"replica-h",12} {"vs static",9} {"efficiency",10} {"under-h",8} {"% hours",8} {"unserved load",14} {"mean util",9} {"actions",8}"));
        var efficiency = Efficiency;
        foreach (var (name, t) in Totals)
        {
            var saving = staticHours > 0 ? Invariant($"{(t.ReplicaHours / staticHours) - 1:+0.0%;-0.0%;0.0%}") : "-";
            var share = t.Hours > 0 ? (double)t.UnderProvisionedHours / t.Hours : 0;
            s.AppendLine(Invariant($"{name,-20} {t.ReplicaHours,12:N0} {saving,9} {Format(efficiency[name], "0.00"),10} {t.UnderProvisionedHours,8} {share,8:0.00%} {t.UnservedLoad,14:N0} {t.MeanUtilization,9:0.0%} {t.ScalingActions,8}"));
        }
        s.AppendLine(Invariant($"mean utilisation is load / (replicas × capacity) over scored hours; the policies' target utilisation is {TargetUtilization:0.0%}"));
        s.AppendLine(Invariant($"forecast: MASE {Format(Forecast.Mase, "0.000")}, {Forecast.Level:0%} interval coverage {Format(Forecast.Coverage, "0.0%")} over {Forecast.Days} series-days ({Forecast.UntrustedDays} fell back, {Forecast.FailedFits} failed fits)"));
        var ratio = Goal.UnderProvisionedVsReactive is double r ? Invariant($"{r:0.00}× reactive's") : "reactive had none";
        // Each part says whether it holds, so a missed goal never reads as if every number beside it missed.
        static string Part(bool holds) => holds ? "met" : "not met";
        s.AppendLine(Invariant($"goal {(Goal.Met ? "met" : "NOT met")}: predictive+reactive saves {Goal.ReplicaHoursSavedVsStaticPeak:0.0%} replica-hours vs static-peak (≥ 30%: {Part(Goal.SavesEnough)}), under-provisioned hours {ratio} (≤ 1/3: {Part(Goal.ShortAtMostAThirdOfReactive)}) and {Goal.UnderProvisionedShare:0.00%} of hours (< 1%: {Part(Goal.RarelyShort)})"));
        foreach (var note in Notes)
        {
            s.Append("note: ").AppendLine(note);
        }
        return s.ToString();
    }

    static string Format(double? value, string format) => value is double v ? v.ToString(format, CultureInfo.InvariantCulture) : "n/a";

    static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
