using System.Text.Json;
using static Forecaster.Planner.Tests.Scenarios;

namespace Forecaster.Planner.Tests;

public class PlanExampleTests
{
    private static readonly Policy Exact = new()
    {
        CapacityPerReplica = 100, TargetUtilization = 1, Tolerance = 0, ScaleDownDelayHours = 0, ForecastBound = ForecastBound.Point, MaxReplicas = 40,
    };

    [Fact]
    public void HonoredMaxClampsAndFlagsTheMissingReplicas()
    {
        var step = Planned(Simple([5000], Exact)).Steps[0];
        Assert.Equal((40, true, 10), (step.Count, step.CapacityShortfall, step.Shortfall));
        Assert.Contains(step.Explanation.Clamps, c => c == new Clamp(ClampRule.MaxReplicas, 50, 40, 40));
    }

    [Fact]
    public void ExceedGoesAboveMaxUpToTheForecastTimesTheBuffer()
    {
        // AWS's example: forecast capacity 50, max 40, buffer 10%: effective max 55, planned 50.
        var step = Planned(Simple([5000], Exact with { MaxBreach = MaxBreach.Exceed, MaxBreachBuffer = 0.1 })).Steps[0];
        Assert.Equal((50, false), (step.Count, step.CapacityShortfall));
        Assert.Contains(step.Explanation.Clamps, c => c.Rule == ClampRule.ExceedMax && c.From == 40 && c.To == 50);
    }

    [Fact]
    public void RisingLoadIsRampedEarlySoTheStepLimitDoesNotCauseAShortfall()
    {
        double[] load = [.. Enumerable.Repeat(1000.0, 10), .. Enumerable.Repeat(3000.0, 4)];
        var steps = Planned(Simple(load, Exact with { MaxStepUp = 5 }, current: 10)).Steps;
        Assert.Equal([10, 10, 10, 10, 10, 10, 10, 15, 20, 25, 30, 30, 30, 30], steps.Select(s => s.Count));
        Assert.DoesNotContain(steps, s => s.CapacityShortfall);
        Assert.Contains(steps[7].Explanation.Clamps, c => c.Rule == ClampRule.RampUp);
    }

    [Fact]
    public void RiseFromTheCurrentCountBeyondTheStepLimitIsAShortfall()
    {
        var steps = Planned(Simple([3000, 3000], Exact with { MaxStepUp = 5 }, current: 10)).Steps;
        Assert.Equal((15, 15), (steps[0].Count, steps[0].Shortfall));
        Assert.Equal("maxStepUp: 30 -> 15 (limit 5)", steps[0].Explanation.Clamps[^1].ToString());
    }

    [Fact]
    public void ToleranceKeepsTheCurrentCountForASmallChange()
    {
        var step = Planned(Simple([1040], Exact with { Tolerance = 0.1 }, current: 10)).Steps[0];
        Assert.Equal(10, step.Count);
        Assert.Equal("tolerance: kept 10 (11 is within ±10 % of 10)", step.Explanation.Clamps[0].ToString());
    }

    [Fact]
    public void ScaleDownWaitsUntilTheLowerCountHasBeenWantedForTheDelay()
    {
        double[] load = [2000, 1000, 1000, 1000, 1000, 2000, 1000];
        var counts = Counts(Simple(load, Exact with { ScaleDownDelayHours = 2 }, current: 20));
        Assert.Equal([20, 20, 20, 10, 10, 20, 20], counts);
    }

    [Fact]
    public void ForecastOnlyModeFlagsEveryStep()
    {
        Assert.All(Planned(Simple([1000, 2000], Exact with { Mode = PlanMode.ForecastOnly })).Steps, s => Assert.True(s.ForecastOnly));
    }

    [Fact]
    public void StreamingJobParallelismFollowsFlinksNeededRateAndDividesMaxParallelism()
    {
        // 1,000 rec/s / 0.5 + 180,000 / 1,800 s + 1,000 × 300 s / 1,800 s = 2,266.7 rec/s; / 300 = 7.56 -> 8 -> 9 (divides 90).
        var input = new PlanInput
        {
            Resource = "clicks-enricher",
            Kind = ResourceKind.Job,
            Policy = new Policy { CapacityPerSubtask = 300, TargetUtilization = 0.5, MaxParallelism = 90, ForecastBound = ForecastBound.Point, Tolerance = 0 },
            Now = Now,
            HorizonStart = Start,
            HorizonHours = 2,
            Forecast = ForecastOf([1000, 1000]),
            CurrentBacklog = 180_000,
        };
        var steps = Planned(input).Steps;
        Assert.Equal(2266.667, steps[0].Explanation.Job!.NeededRate, 3);
        Assert.Equal((9, 9), (steps[0].Count, steps[0].Parallelism));
        Assert.Null(steps[0].Replicas);
        Assert.Contains(steps[0].Explanation.Clamps, c => c == new Clamp(ClampRule.Divisor, 8, 9, 90));
        // The backlog is drained within catch-up: the second hour sizes the rate alone, 2,166.7 / 300 -> 8 -> 9 still.
        Assert.Equal(0, steps[1].Explanation.Job!.Backlog);
    }

    [Fact]
    public void JobParallelismNeverExceedsMaxParallelism()
    {
        var input = new PlanInput
        {
            Resource = "j", Kind = ResourceKind.Job, Now = Now, HorizonStart = Start, HorizonHours = 1,
            Policy = new Policy { CapacityPerSubtask = 1, MaxParallelism = 128, MaxBreach = MaxBreach.Exceed, MaxReplicas = 64 },
            Forecast = ForecastOf([1e6]),
        };
        var step = Planned(input).Steps[0];
        Assert.Equal(128, step.Count);
        Assert.True(step.CapacityShortfall);
    }

    [Fact]
    public void PlanSerialisesWithTheIssuesWireNames()
    {
        var plan = Planned(Simple([1000], Exact) with { WeeklyPeak = new UsagePeak(0.52, 300L << 20) });
        var json = JsonSerializer.Serialize(plan, JsonSerializerOptions.Web);
        Assert.Contains("\"source\":\"forecast\"", json, StringComparison.Ordinal);
        Assert.Contains("\"replicas\":10", json, StringComparison.Ordinal);
        Assert.Contains("\"cpu\":0.6", json, StringComparison.Ordinal);
        Assert.Contains("\"sentence\":\"forecast point 1000;", json, StringComparison.Ordinal);
        Assert.DoesNotContain("\"parallelism\"", json, StringComparison.Ordinal);
        Assert.Contains("fallback:last-week-same-hour", JsonSerializer.Serialize(StepSource.LastWeekSameHour, JsonSerializerOptions.Web), StringComparison.Ordinal);
    }
}
