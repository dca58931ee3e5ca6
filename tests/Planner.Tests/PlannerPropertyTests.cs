using static Forecaster.Planner.Tests.Scenarios;

namespace Forecaster.Planner.Tests;

/// <summary>Invariants of the planner over many seeded random forecasts and policies.</summary>
public class PlannerPropertyTests
{
    private const int Runs = 400;

    private static readonly ResourceKind[] Kinds = [ResourceKind.Service, ResourceKind.Job];

    private static readonly HashSet<ClampRule> BoundRules =
        [ClampRule.MinReplicas, ClampRule.MaxReplicas, ClampRule.WindowMin, ClampRule.WindowMax, ClampRule.MaxParallelism];

    [Fact]
    public void PlanNeverLeavesMinAndMaxWhenBreachIsHonored()
    {
        foreach (var seed in Seeds(Runs))
        {
            var r = new Random(seed);
            var kind = Kinds[seed % 2];
            var input = RandomInput(r, kind, RandomPolicy(r, kind) with { MaxBreach = MaxBreach.Honor, MaxBreachBuffer = null });
            foreach (var step in Planned(input).Steps)
            {
                var limits = input.Policy.LimitsAt(step.Hour, kind);
                Assert.True(step.Count >= limits.Lower && step.Count <= limits.Upper,
                    $"seed {seed} {step.Hour:u}: {step.Count} outside [{limits.Lower}, {limits.Upper}]: {step.Explanation.Sentence}");
            }
        }
    }

    [Fact]
    public void PlanExceedsMaxOnlyWithExceedAndNeverBeyondForecastTimesOnePlusBuffer()
    {
        foreach (var seed in Seeds(Runs))
        {
            var r = new Random(seed);
            var kind = Kinds[seed % 2];
            var input = RandomInput(r, kind, RandomPolicy(r, kind) with { MaxBreach = MaxBreach.Exceed });
            var buffer = input.Policy.MaxBreachBuffer ?? 0;
            foreach (var step in Planned(input).Steps)
            {
                var limits = input.Policy.LimitsAt(step.Hour, kind);
                var allowed = step.Explanation.RawCount is double raw && limits.Max is not null
                    ? Math.Max(limits.Upper, Math.Min(PlanningContext.CeilCount(raw * (1 + buffer)), limits.KeyGroupCeiling))
                    : limits.Upper;
                Assert.True(step.Count >= limits.Lower && step.Count <= allowed,
                    $"seed {seed}: {step.Count} outside [{limits.Lower}, {allowed}]: {step.Explanation.Sentence}");
            }
        }
    }

    [Fact]
    public void HigherLoadNeverPlansFewerReplicasOrLowerParallelism()
    {
        // Tolerance is hysteresis: a path that moved earlier can legitimately sit one notch lower later, so it is off here.
        foreach (var seed in Seeds(Runs))
        {
            var r = new Random(seed);
            var kind = Kinds[seed % 2];
            var policy = RandomPolicy(r, kind) with { Tolerance = 0 };
            if (kind == ResourceKind.Job)
            {
                policy = policy with { MaxStepUp = null, MaxStepDown = null };
            }
            var low = RandomInput(r, kind, policy);
            var factor = 1 + r.NextDouble();
            var high = low with
            {
                Forecast = low.Forecast! with
                {
                    Hours = [.. low.Forecast.Hours.Select(h => h with { Point = (h.Point * factor) + r.Next(0, 50), Upper = (h.Upper * factor) + r.Next(0, 50) })],
                },
            };
            var lowCounts = Counts(low);
            var highCounts = Counts(high);
            for (var k = 0; k < lowCounts.Length; k++)
            {
                Assert.True(highCounts[k] >= lowCounts[k], $"seed {seed} hour {k}: higher load planned {highCounts[k]} < {lowCounts[k]}");
            }
        }
    }

    [Fact]
    public void ConsecutiveStepsStayWithinMaxStepUpAndDown()
    {
        // Bounds win over step limits, so this holds when the bounds do not move: no windows, no exceed, current inside them.
        foreach (var seed in Seeds(Runs))
        {
            var r = new Random(seed);
            var kind = Kinds[seed % 2];
            var policy = RandomPolicy(r, kind, windows: false) with
            {
                MaxBreach = MaxBreach.Honor, MaxBreachBuffer = null, MaxStepUp = r.Next(1, 8), MaxStepDown = r.Next(1, 8),
            };
            var input = RandomInput(r, kind, policy);
            var previous = input.Current;
            foreach (var step in Planned(input).Steps)
            {
                if (previous is int p)
                {
                    Assert.True(step.Count - p <= policy.MaxStepUp && p - step.Count <= policy.MaxStepDown,
                        $"seed {seed}: {p} -> {step.Count}: {step.Explanation.Sentence}");
                }
                previous = step.Count;
            }
        }
    }

    [Fact]
    public void LowerCountIsPlannedOnlyAfterItWasWantedForTheWholeDelay()
    {
        foreach (var seed in Seeds(Runs))
        {
            var r = new Random(seed);
            var kind = Kinds[seed % 2];
            var policy = RandomPolicy(r, kind, windows: false) with
            {
                MaxBreach = MaxBreach.Honor, MaxBreachBuffer = null, MaxStepUp = null, MaxStepDown = null,
                Tolerance = 0, ScaleDownDelayHours = r.Next(1, 6),
            };
            var input = RandomInput(r, kind, policy);
            var steps = Planned(input).Steps;
            var wanted = steps.Select(s => Wanted(s, input)).ToArray();
            var d = policy.ScaleDownDelayHours;
            for (var k = 0; k < steps.Count; k++)
            {
                var previous = k == 0 ? input.Current : steps[k - 1].Count;
                if (previous is not int p || steps[k].Count >= p)
                {
                    continue;
                }
                for (var j = k - d; j <= k; j++)
                {
                    var wantedThen = j < 0 ? input.Current!.Value : wanted[j];
                    Assert.True(steps[k].Count >= Math.Min(wantedThen, p),
                        $"seed {seed} hour {k}: went down to {steps[k].Count} although {wantedThen} was wanted at hour {j}");
                }
            }
        }
    }

    [Fact]
    public void CountChangesOnlyByMoreThanTheTolerance()
    {
        foreach (var seed in Seeds(Runs))
        {
            var r = new Random(seed);
            var kind = Kinds[seed % 2];
            var policy = RandomPolicy(r, kind, windows: false) with
            {
                MaxBreach = MaxBreach.Honor, MaxBreachBuffer = null, MaxStepUp = null, MaxStepDown = null,
                Tolerance = 0.05 + (r.NextDouble() * 0.3),
            };
            var input = RandomInput(r, kind, policy);
            var previous = input.Current;
            foreach (var step in Planned(input).Steps)
            {
                if (previous is int p && step.Count != p)
                {
                    Assert.True(Math.Abs(step.Count - p) > policy.Tolerance * p,
                        $"seed {seed}: {p} -> {step.Count} is within ±{policy.Tolerance:P0}: {step.Explanation.Sentence}");
                }
                previous = step.Count;
            }
        }
    }

    [Fact]
    public void JobParallelismIsADivisorOfMaxParallelismUnlessABoundStopsIt()
    {
        foreach (var seed in Seeds(Runs))
        {
            var r = new Random(seed);
            var policy = RandomPolicy(r, ResourceKind.Job) with { MinReplicas = 1, MaxReplicas = null, Windows = [] };
            var input = RandomInput(r, ResourceKind.Job, policy);
            foreach (var step in Planned(input).Steps.Where(s => s.Source != StepSource.Static))
            {
                var keyGroups = policy.MaxParallelism!.Value;
                var steppedOrBounded = step.Explanation.Clamps.Any(c => c.Rule is ClampRule.MaxStepUp or ClampRule.MaxStepDown or ClampRule.Tolerance or ClampRule.ScaleDownDelay);
                Assert.True(keyGroups % step.Count == 0 || steppedOrBounded,
                    $"seed {seed}: parallelism {step.Count} does not divide {keyGroups}: {step.Explanation.Sentence}");
                Assert.True(step.Count <= keyGroups);
            }
        }
    }

    [Fact]
    public void JobParallelismWithoutSmoothingIsTheSmallestDivisorCarryingTheNeededRate()
    {
        foreach (var seed in Seeds(Runs))
        {
            var r = new Random(seed);
            var policy = RandomPolicy(r, ResourceKind.Job) with
            {
                MinReplicas = 1, MaxReplicas = null, Windows = [], MaxStepUp = null, MaxStepDown = null, Tolerance = 0, ScaleDownDelayHours = 0,
            };
            var input = RandomInput(r, ResourceKind.Job, policy);
            var keyGroups = policy.MaxParallelism!.Value;
            foreach (var step in Planned(input).Steps.Where(s => s.Source != StepSource.Static))
            {
                var needed = Math.Min(Math.Max(1, (int)Math.Ceiling(step.Explanation.RawCount!.Value - 1e-9)), keyGroups);
                var expected = Enumerable.Range(needed, keyGroups - needed + 1).First(p => keyGroups % p == 0);
                Assert.Equal(expected, step.Count);
            }
        }
    }

    [Fact]
    public void EveryStepStartsLeadMinutesBeforeItsHourAndEndsWhereTheNextStarts()
    {
        foreach (var seed in Seeds(50))
        {
            var r = new Random(seed);
            var input = RandomInput(r, Kinds[seed % 2]);
            var steps = Planned(input).Steps;
            Assert.Equal(48, steps.Count);
            for (var k = 0; k < steps.Count; k++)
            {
                Assert.Equal(Start.AddHours(k), steps[k].Hour);
                Assert.Equal(steps[k].Hour.AddMinutes(-input.Policy.LeadMinutes), steps[k].Start);
                Assert.Equal(steps[k].Start.AddHours(1), steps[k].End);
                Assert.Equal(input.Policy.Mode == PlanMode.ForecastOnly, steps[k].ForecastOnly);
                Assert.False(string.IsNullOrWhiteSpace(steps[k].Explanation.Sentence));
            }
        }
    }

    [Fact]
    public void ClampsInTheExplanationChainFromTheRawCountToThePlannedCount()
    {
        foreach (var seed in Seeds(Runs))
        {
            var r = new Random(seed);
            var kind = Kinds[seed % 2];
            var input = RandomInput(r, kind);
            foreach (var step in Planned(input).Steps)
            {
                var clamps = step.Explanation.Clamps.Where(c => c.Rule != ClampRule.ExceedMax).ToList();
                if (clamps.Count > 0)
                {
                    Assert.Equal(step.Count, clamps[^1].To);
                }
                else if (step.Explanation.Demand is int demand)
                {
                    Assert.Equal(demand, step.Count);
                }
            }
        }
    }

    /// <summary>What the policy wanted for a step before smoothing (no windows, no ramp in the callers).</summary>
    private static int Wanted(PlanStep step, PlanInput input)
    {
        var limits = input.Policy.LimitsAt(step.Hour, input.Kind);
        var demand = step.Explanation.Demand ?? Math.Max(limits.Lower, input.Current ?? limits.Lower);
        var wanted = Math.Clamp(demand, limits.Lower, limits.Upper);
        var divisor = step.Explanation.Clamps.FirstOrDefault(c => c.Rule == ClampRule.Divisor);
        return divisor.Rule == ClampRule.Divisor ? divisor.To : wanted;
    }
}
