using Forecaster.Api.Plans;
using Forecaster.Api.Simulations;
using Forecaster.Api.Training;
using Forecaster.Planner;

namespace Forecaster.Api.Tests.Simulations;

/// <summary>The pure replay: strategies on a known tidal pattern, no peeking, and the report arithmetic by hand.</summary>
public sealed class ReplayTests
{
    static readonly DateTimeOffset Start = new(2026, 1, 5, 0, 0, 0, TimeSpan.Zero);
    static readonly ReplaySettings Settings = new(28, new TrainingOptions { Parallelism = 2 }, new PlanningOptions());
    static readonly Policy Policy = new() { CapacityPerReplica = 50, MinReplicas = 1, MaxReplicas = 100, ScaleDownDelayHours = 1 };

    /// <summary>Quiet nights at 100, a steep morning ramp (07:00-09:00) to 1000 through the day, an evening decline; 3% noise.</summary>
    internal static double[] Tidal(int days, int seed = 7)
    {
        double[] shape = [0, 0, 0, 0, 0, 0, 0, 0.3, 0.7, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0.7, 0.4, 0.2, 0, 0];
        var rng = new Random(seed);
        return [.. Enumerable.Range(0, days * 24).Select(h => (100 + (900 * shape[h % 24])) * (1 + (0.03 * ((2 * rng.NextDouble()) - 1))))];
    }

    static SeriesReplay ReplayOne(double[] load, Policy? policy = null)
    {
        var (replayed, skipped) = Replay.Run([new ReplaySeries("tidal", Start, load, policy ?? Policy, CapacityChosen: false)], Settings);
        Assert.Empty(skipped);
        return Assert.Single(replayed);
    }

    [Fact]
    public void PredictiveBeatsReactiveAtTheMorningRampAndStaticPeakAtNight()
    {
        var r = ReplayOne(Tidal(35));
        Assert.Equal(7, r.Days);
        int Under(string strategy, int from, int to) => Enumerable.Range(0, r.Hours)
            .Count(t => t % 24 >= from && t % 24 < to && r.Load[t] > r.Counts[strategy][t] * r.Capacity);
        int ReplicaHours(string strategy, int from, int to) => Enumerable.Range(0, r.Hours)
            .Where(t => t % 24 >= from && t % 24 < to).Sum(t => r.Counts[strategy][t]);

        // The reactive controller sees 07:00's rise only at 08:00: short every morning; the plan was there before the load.
        Assert.True(Under(Replay.Reactive, 7, 10) >= 7, $"reactive short {Under(Replay.Reactive, 7, 10)} ramp hours");
        Assert.True(Under(Replay.Predictive, 7, 10) <= 1, $"predictive short {Under(Replay.Predictive, 7, 10)} ramp hours");
        Assert.Equal(0, Under(Replay.PredictiveReactive, 7, 10));
        // At night the plan follows the load down; static-peak holds the day's peak.
        Assert.True(ReplicaHours(Replay.Predictive, 0, 6) * 3 < ReplicaHours(Replay.StaticPeak, 0, 6),
            $"predictive {ReplicaHours(Replay.Predictive, 0, 6)} vs static-peak {ReplicaHours(Replay.StaticPeak, 0, 6)} night replica-hours");
        // predictive+reactive is never below either of its parts.
        Assert.All(Enumerable.Range(0, r.Hours), t => Assert.Equal(Math.Max(r.Counts[Replay.Predictive][t], r.Counts[Replay.Reactive][t]), r.Counts[Replay.PredictiveReactive][t]));
        Assert.NotNull(r.Forecast.Mase);
        Assert.InRange(r.Forecast.Mase!.Value, 0, 1.5);
    }

    [Fact]
    public void BesideARiskTargetedPlanTheReactivePartGuardsTheCeilingNotTheTarget()
    {
        var load = Tidal(35);
        var policy = Policy with { Risk = new RiskPolicy(0.005) };
        var r = ReplayOne(load, policy);
        Assert.True(r.CeilingGuard);
        var first = load.Length - r.Hours;
        var guard = Replay.ReactiveCounts(load, Start, policy, r.Capacity, Replay.CeilingGuardUtilization).AsSpan(first, r.Hours).ToArray();
        // The plan with a guard that scales up once an hour ran at full capacity: never the target's headroom a second time.
        Assert.All(Enumerable.Range(0, r.Hours), t => Assert.Equal(Math.Max(r.Counts[Replay.Predictive][t], guard[t]), r.Counts[Replay.PredictiveReactive][t]));
        Assert.True(guard.Sum() < r.Counts[Replay.Reactive].Sum(), $"guard {guard.Sum()} vs reactive {r.Counts[Replay.Reactive].Sum()} replica-hours");
        var report = SimulationReport.Build([r], [], Settings, []);
        Assert.Contains(report.Notes, n => n.Contains("aims at utilisation 0.909", StringComparison.Ordinal));
    }

    [Fact]
    public void ChangingTheFutureDoesNotChangeAnEarlierPlan()
    {
        var original = Tidal(33);
        // From the midnight that starts replayed day 3 on, the load triples and turns erratic.
        var changedFrom = (28 + 3) * 24;
        var changed = original.Select((v, t) => t < changedFrom ? v : v * 3 * (1 + (t % 5))).ToArray();
        var a = ReplayOne(original);
        var b = ReplayOne(changed);

        // Days 0-3 were planned at midnights at or before the change: their plans cannot differ, hour for hour.
        var planned = 4 * 24;
        foreach (var strategy in new[] { Replay.Predictive, Replay.Yesterday, Replay.StaticPeak })
        {
            Assert.Equal(a.Counts[strategy][..planned], b.Counts[strategy][..planned]);
        }
        // The reactive controller only ever looks back: equal up to the first hour after the change.
        Assert.Equal(a.Counts[Replay.Reactive][..(3 * 24 + 1)], b.Counts[Replay.Reactive][..(3 * 24 + 1)]);
        // And the change is seen: the last day's plans differ.
        Assert.NotEqual(a.Counts[Replay.Predictive][planned..], b.Counts[Replay.Predictive][planned..]);
    }

    [Fact]
    public void ScoresAddUpByHand()
    {
        // capacity 100: hour 1 needs 2.5 replicas and has 2 (short by 50); hour 3 is missing and not scored.
        var tally = Tally.Of([2, 2, 3, 1], [100, 250, 200, double.NaN], capacity: 100);
        Assert.Equal(new Tally(ReplicaHours: 7, UnderProvisionedHours: 1, Hours: 3, UnservedLoad: 50, UtilizationSum: 0.5 + 1.25 + (200.0 / 300), ScalingActions: 2), tally);
        var score = tally.Score();
        Assert.Equal((0.5 + 1.25 + (2.0 / 3)) / 3, score.MeanUtilization, 12);

        // Totals add the sums, not the means: utilisation is weighted by hours.
        var other = Tally.Of([1, 1], [50, 50], capacity: 100);
        var total = tally.Add(other).Score();
        Assert.Equal(new StrategyScore(9, 1, 5, 50, (0.5 + 1.25 + (2.0 / 3) + 0.5 + 0.5) / 5, 2), total with { MeanUtilization = total.MeanUtilization });
        Assert.Equal((0.5 + 1.25 + (2.0 / 3) + 1.0) / 5, total.MeanUtilization, 12);

        // The report lists the short hours themselves: here hour 1 only (hour 3 is missing, hour 2's 200 fits 3 replicas).
        double[] dayLoad = [100, 250, 200, double.NaN, .. Enumerable.Repeat(150.0, 20)];
        int[] dayCounts = [2, 2, 3, 1, .. Enumerable.Repeat(2, 20)];
        var replay = new SeriesReplay("x", Start, 1, 100, false, dayLoad, new Dictionary<string, int[]> { [Replay.Reactive] = dayCounts },
            new Dictionary<string, Tally> { [Replay.Reactive] = Tally.Of(dayCounts, dayLoad, 100) }, new SeriesForecastScore(null, null, 0, 0, 0, null, 0, 0));
        Assert.Equal([Start + TimeSpan.FromHours(1)], replay.UnderProvisionedHours(dayCounts));
    }

    [Fact]
    public void TheReactiveControllerFollowsTheHpaRules()
    {
        // 10 load per replica at 100%, target 0.5: 5 per replica. Each hour sees the previous hour's load.
        var policy = new Policy { CapacityPerReplica = 10, TargetUtilization = 0.5, MinReplicas = 1, MaxReplicas = 10 };
        double[] load = [10, 10.5, 30, 30, 5, 5, 5, 500];
        var counts = Replay.ReactiveCounts(load, Start, policy, 10);
        // t1: 10 → raw 2 (ratio 2) → 2. t2: 10.5 → raw 2.1, ratio 1.05 within tolerance → 2. t3: 30 → 6. t4: 6.
        // t5: 5 → recommends 1, but the window still holds 6 → 6. t6: the window holds only 1s → 1. t7: 1. Clamped at max 10 afterwards.
        Assert.Equal([1, 2, 2, 6, 6, 6, 1, 1], counts);
        Assert.Equal(10, Replay.ReactiveCounts([500, 500], Start, policy, 10)[1]);
        // Static peak: the training window's peak at the target, held; NaN ignored.
        Assert.Equal(8, Replay.StaticPeakCount([10, 40, double.NaN], policy, 10));
    }

    [Fact]
    public void AReportSumsItsSeriesAndJudgesTheGoal()
    {
        var load = Tidal(30);
        var (replayed, skipped) = Replay.Run(
            [new ReplaySeries("a", Start, load, Policy, false), new ReplaySeries("b", Start, load, Policy, false), new ReplaySeries("short", Start, load[..(20 * 24)], Policy, false)],
            Settings);
        var report = SimulationReport.Build(replayed, skipped, Settings, []);
        Assert.Equal(Replay.Strategies, report.Totals.Keys);
        Assert.Equal(["a", "b"], report.Series.Keys);
        Assert.Contains("short", report.Skipped.Keys);
        foreach (var s in Replay.Strategies)
        {
            Assert.Equal(report.Series["a"][s].ReplicaHours * 2, report.Totals[s].ReplicaHours);
            Assert.Equal(report.Series["a"][s].Hours * 2, report.Totals[s].Hours);
            Assert.Equal(report.Series["a"][s].UnderProvisionedHours, report.UnderProvisioned["a"][s].Length);
        }
        Assert.Equal(2 * 2, report.SeriesDays);
        Assert.Contains("predictive+reactive", report.ToTable(), StringComparison.Ordinal);
        var g = report.Goal;
        Assert.Equal(1 - (report.Totals[Replay.PredictiveReactive].ReplicaHours / report.Totals[Replay.StaticPeak].ReplicaHours), g.ReplicaHoursSavedVsStaticPeak, 12);
        // The goal line says of each part whether it holds, and the parts agree with the verdict.
        var goalLine = report.ToTable().Split('\n').Single(l => l.StartsWith("goal ", StringComparison.Ordinal));
        Assert.Contains(g.ReplicaHoursSavedVsStaticPeak >= 0.3 ? "(≥ 30%: met)" : "(≥ 30%: not met)", goalLine, StringComparison.Ordinal);
        Assert.Contains(g.UnderProvisionedShare < 0.01 ? "(< 1%: met)" : "(< 1%: not met)", goalLine, StringComparison.Ordinal);
        Assert.Equal(g.Met, goalLine.StartsWith("goal met", StringComparison.Ordinal));
        Assert.Equal(g.Met, !goalLine.Contains("not met", StringComparison.Ordinal));

        // The days add up to the totals (both series replay the same two days).
        Assert.Equal(2, report.Days.Count);
        foreach (var s in Replay.Strategies)
        {
            Assert.Equal(report.Totals[s].ReplicaHours, report.Days.Sum(d => d.Strategies[s].ReplicaHours), 9);
            Assert.Equal(report.Totals[s].UnderProvisionedHours, report.Days.Sum(d => d.Strategies[s].UnderProvisionedHours));
        }
        Assert.Equal(2 * load.AsSpan(28 * 24, 48).ToArray().Sum() / report.Capacity["a"].CapacityPerReplica, report.Days.Sum(d => d.NeededReplicaHours), 6);
    }

    [Fact]
    public void TheOracleAndEfficiencyAddUpByHand()
    {
        // Capacity 10 at target 0.5: 5 load per replica. Three days of 10, 20, 30, 40 repeating; the first day trains, the
        // next two are replayed. The oracle knows each hour's load: ceil(load / 5) = 2, 4, 6, 8, ... = 20 per 4 hours,
        // 120 replica-hours a day. Static-peak holds ceil(40 / 5) = 8: 192 a day.
        var policy = new Policy { CapacityPerReplica = 10, TargetUtilization = 0.5, MinReplicas = 1, MaxReplicas = 100, Tolerance = 0, ScaleDownDelayHours = 0, LeadMinutes = 0 };
        var load = Enumerable.Range(0, 3 * 24).Select(h => 10.0 * ((h % 4) + 1)).ToArray();
        var settings = new ReplaySettings(1, new TrainingOptions { Parallelism = 1, HistoryDays = 1 }, new PlanningOptions());
        var (replayed, skipped) = Replay.Run([new ReplaySeries("steps", Start, load, policy, false)], settings);
        Assert.Empty(skipped);
        var r = Assert.Single(replayed);
        Assert.Equal(2, r.Days);
        Assert.Equal(Enumerable.Range(0, 48).Select(h => 2 * ((h % 4) + 1)), r.Counts[Replay.Oracle]);
        Assert.Equal(240, r.Tallies[Replay.Oracle].ReplicaHours);
        Assert.Equal(0, r.Tallies[Replay.Oracle].UnderProvisionedHours);
        // Utilisation load / (replicas × 10) is 0.5 every hour: the oracle sits exactly at the target.
        Assert.Equal(0.5, r.Tallies[Replay.Oracle].Score().MeanUtilization, 12);
        Assert.Equal(384, r.Tallies[Replay.StaticPeak].ReplicaHours);

        var report = SimulationReport.Build(replayed, skipped, settings, []);
        Assert.Equal(1.0, report.Efficiency[Replay.Oracle]!.Value, 12);
        Assert.Equal(0.0, report.Efficiency[Replay.StaticPeak]!.Value, 12);
        // Any strategy: (384 − its replica-hours) / (384 − 240).
        var reactive = report.Totals[Replay.Reactive].ReplicaHours;
        Assert.Equal((384 - reactive) / 144, report.Efficiency[Replay.Reactive]!.Value, 12);
        Assert.Equal(0.5, report.TargetUtilization);
        Assert.Contains("target utilisation is 50.0%", report.ToTable(), StringComparison.Ordinal);
    }
}
