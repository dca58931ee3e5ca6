using static Forecaster.Planner.Tests.Scenarios;

namespace Forecaster.Planner.Tests;

public class FallbackTests
{
    private static readonly Policy Policy = new() { ForecastBound = ForecastBound.Point, CapacityPerReplica = 100, TargetUtilization = 1, Tolerance = 0, ScaleDownDelayHours = 0, MinReplicas = 3 };

    /// <summary>Observed load 2,000 (20 replicas) yesterday and 3,000 (30) last week for every hour.</summary>
    private static HourlySeries History(bool yesterday = true, bool lastWeek = true)
    {
        var values = new double[8 * 24];
        for (var i = 0; i < values.Length; i++)
        {
            var at = Start.AddDays(-8).AddHours(i);
            values[i] = at >= Start.AddDays(-1) ? (yesterday ? 2000 : double.NaN)
                : at >= Start.AddDays(-7) && at < Start.AddDays(-5) ? (lastWeek ? 3000 : double.NaN)
                : double.NaN;
        }
        return new HourlySeries(Start.AddDays(-8), values);
    }

    private static PlanInput Input(ForecastRun? forecast = null, HourlySeries? observed = null, int? current = 5, Policy? policy = null) =>
        Simple(new double[48], policy ?? Policy, current) with { Forecast = forecast, ObservedLoad = observed };

    [Fact]
    public void WithoutForecastTheObservedLoadAtTheSameHourYesterdayIsPlanned()
    {
        var step = Planned(Input(observed: History())).Steps[0];
        Assert.Equal(StepSource.YesterdaySameHour, step.Source);
        Assert.Equal(FallbackReason.NoForecast, step.Explanation.Fallback);
        Assert.Equal(Start.AddDays(-1), step.Explanation.LoadHour);
        Assert.Equal(20, step.Count);
    }

    [Fact]
    public void HoursWhoseYesterdayIsNotYetObservedUseLastWeek()
    {
        // Now is 09:17: yesterday's hour is complete for hours up to 08:00 tomorrow, the 23rd hour of the horizon.
        var steps = Planned(Input(observed: History())).Steps;
        Assert.All(steps.Take(23), s => Assert.Equal(StepSource.YesterdaySameHour, s.Source));
        Assert.All(steps.Skip(23).Take(24), s => Assert.Equal(StepSource.LastWeekSameHour, s.Source));
    }

    [Fact]
    public void WithoutYesterdayTheSameHourLastWeekIsPlanned()
    {
        var step = Planned(Input(observed: History(yesterday: false))).Steps[0];
        Assert.Equal(StepSource.LastWeekSameHour, step.Source);
        Assert.Equal(Start.AddDays(-7), step.Explanation.LoadHour);
        Assert.Equal(30, step.Count);
    }

    [Fact]
    public void WithoutAnyHistoryTheStaticFallbackKeepsMaxOfMinAndCurrent()
    {
        Assert.All(Planned(Input(current: 5)).Steps, s => Assert.Equal((StepSource.Static, 5), (s.Source, s.Count)));
        Assert.All(Planned(Input(current: 1)).Steps, s => Assert.Equal(3, s.Count));
        Assert.All(Planned(Input(current: null)).Steps, s => Assert.Equal(3, s.Count));
    }

    [Fact]
    public void StaleForecastFallsBackAndSaysSo()
    {
        var stale = ForecastOf([.. Enumerable.Repeat(9000.0, 48)]) with { GeneratedAt = Now.AddHours(-40) };
        var plan = Planned(Input(stale, History()));
        Assert.All(plan.Steps, s => Assert.Equal(FallbackReason.Stale, s.Explanation.Fallback));
        Assert.Equal(20, plan.Steps[0].Count);
        Assert.Contains(plan.Notes, n => n.Contains("staleAfterHours 36", StringComparison.Ordinal));
    }

    [Fact]
    public void ForecastOfAModelWorseThanSeasonalNaiveIsNotUsed()
    {
        var poor = ForecastOf([.. Enumerable.Repeat(9000.0, 48)]) with { BeatsSeasonalNaive = false };
        var step = Planned(Input(poor, History())).Steps[0];
        Assert.Equal((StepSource.YesterdaySameHour, FallbackReason.WorseThanSeasonalNaive), (step.Source, step.Explanation.Fallback));
    }

    [Fact]
    public void HourMissingFromTheForecastFallsBackAlone()
    {
        var steps = Planned(Input(ForecastOf([.. Enumerable.Repeat(900.0, 48)], dropEvery: 7), History())).Steps;
        Assert.Equal((StepSource.Forecast, 9), (steps[0].Source, steps[0].Count));
        Assert.Equal((StepSource.YesterdaySameHour, FallbackReason.HourNotForecast, 20), (steps[3].Source, steps[3].Explanation.Fallback, steps[3].Count));
    }

    [Fact]
    public void WithoutHistoryBoundsOrCurrentCountThePlannerSaysWhatIsMissing()
    {
        var outcome = ScalePlanner.Plan(Input(current: null, policy: Policy with { MinReplicas = null }));
        var cannot = Assert.IsType<CannotPlan<Plan>>(outcome);
        Assert.Equal(48, cannot.Missing.Count);
        Assert.Contains("policy.minReplicas", cannot.Missing[0], StringComparison.Ordinal);
        Assert.Contains("no usable forecast", cannot.Missing[0], StringComparison.Ordinal);
    }

    [Fact]
    public void WithoutCapacityEveryHourIsStaticAndThePlanSaysWhy()
    {
        var plan = Planned(Input(ForecastOf([.. Enumerable.Repeat(9000.0, 48)]), History(), policy: Policy with { CapacityPerReplica = null }));
        Assert.All(plan.Steps, s => Assert.Equal((StepSource.Static, FallbackReason.NoCapacity, 5), (s.Source, s.Explanation.Fallback, s.Count)));
        Assert.Contains(plan.Notes, n => n.Contains("no policy.capacityPerReplica and no trained capacity model", StringComparison.Ordinal));
    }

    [Fact]
    public void CapacityModelGivesTheLoadAtWhichOneReplicaUsesItsCpuSize()
    {
        // cpu = 0.2 + 0.001·load: a 2-core replica carries 1,800 req/s; 9,000 req/s at target 0.5 needs 10.
        var input = Input(ForecastOf([.. Enumerable.Repeat(9000.0, 48)]), policy: Policy with { CapacityPerReplica = null, TargetUtilization = 0.5 }) with
        {
            CapacityModel = new CapacityModel(0.2, 0.001, 0.9, 500, "cap-7"),
            ReplicaCpu = 2,
            Forecast = ForecastOf([.. Enumerable.Repeat(9000.0, 48)]) with { },
        };
        var plan = Planned(input with { Policy = input.Policy with { ForecastBound = ForecastBound.Point } });
        Assert.Equal(10, plan.Steps[0].Count);
        Assert.Equal(CapacitySource.CapacityModel, plan.Steps[0].Explanation.CapacitySource);
        Assert.Equal(1800, plan.Steps[0].Explanation.Capacity!.Value, 6);
        Assert.Equal("cap-7", plan.CapacityModelVersion);
    }

    [Fact]
    public void PoorlyFittedCapacityModelIsNotTrusted()
    {
        var input = Input(ForecastOf([.. Enumerable.Repeat(9000.0, 48)]), policy: Policy with { CapacityPerReplica = null }) with
        {
            CapacityModel = new CapacityModel(0.2, 0.001, 0.2, 500),
            ReplicaCpu = 2,
        };
        var plan = Planned(input);
        Assert.Equal(StepSource.Static, plan.Steps[0].Source);
        Assert.Contains(plan.Notes, n => n.Contains("fit too weak", StringComparison.Ordinal));
    }

    [Fact]
    public void CurrentStepServesTheHourStartingWithinTheLeadFromYesterday()
    {
        var input = Input(observed: History()) with { Now = Start.AddMinutes(55) };
        var outcome = ScalePlanner.CurrentStep(input, Start.AddMinutes(55));
        var step = Assert.IsType<Planned<PlanStep>>(outcome).Value;
        Assert.Equal(Start.AddHours(1), step.Hour);
        Assert.Equal((StepSource.YesterdaySameHour, FallbackReason.ServeTime, 20), (step.Source, step.Explanation.Fallback, step.Count));
    }

    [Fact]
    public void CurrentStepScalesDownOnlyWhenTheLowerCountWasWantedForTheDelay()
    {
        // Yesterday: 2,000 until the served hour, 500 from then on; current 20; delay 2 h keeps 20 for now.
        var values = Enumerable.Range(0, 8 * 24).Select(i => Start.AddDays(-8).AddHours(i) >= Start.AddDays(-1).AddHours(3) ? 500.0 : 2000.0).ToArray();
        var input = Input(observed: new HourlySeries(Start.AddDays(-8), values), current: 20, policy: Policy with { ScaleDownDelayHours = 2 }) with { Now = Start.AddHours(6) };
        Assert.Equal(20, Assert.IsType<Planned<PlanStep>>(ScalePlanner.CurrentStep(input, Start.AddHours(3))).Value.Count);
        Assert.Equal(5, Assert.IsType<Planned<PlanStep>>(ScalePlanner.CurrentStep(input, Start.AddHours(5))).Value.Count);
    }

    [Fact]
    public void CurrentStepWithNothingToGoOnCannotPlan()
    {
        var outcome = ScalePlanner.CurrentStep(Input(current: null, policy: Policy with { MinReplicas = null }), Start);
        Assert.Contains("current replica count", Assert.IsType<CannotPlan<PlanStep>>(outcome).Missing[0], StringComparison.Ordinal);
    }
}
