using System.Text.Json;
using Forecaster.Api.Plans;
using Forecaster.Api.Serving;
using Forecaster.Planner;
using Forecaster.Planner.Tests;

namespace Forecaster.Api.Tests.Plans;

/// <summary>
/// Issue 16: the packed form of plan steps gives back every step exactly as the planner made it: the same JSON, sentence
/// included, as the served and stored views write it (services and jobs, windows, clamps, fallbacks, risk, dry runs).
/// </summary>
public sealed class PackedStepsTests
{
    static IEnumerable<Plan> VariedPlans()
    {
        foreach (var seed in Scenarios.Seeds(300))
        {
            var r = new Random(seed);
            var kind = seed % 3 == 0 ? ResourceKind.Job : ResourceKind.Service;
            var input = Scenarios.RandomInput(r, kind);
            input = (seed % 7) switch
            {
                // No forecast: yesterday's and last week's same hour, then static.
                0 => input with { Forecast = null },
                1 => input with { Forecast = null, ObservedLoad = null },
                // A model worse than seasonal naive falls back too.
                2 => input with { Forecast = input.Forecast! with { BeatsSeasonalNaive = false } },
                // Risk-targeted sizing explains itself with the quantile.
                3 => input with { Policy = input.Policy with { Risk = new RiskPolicy(0.01) } },
                // ... and says when its quantile is the model's upper backtest errors rather than the band's normal extrapolation.
                4 when input.Forecast is { } f => input with
                {
                    Policy = input.Policy with { Risk = new RiskPolicy(0.005) },
                    Forecast = f with { Tail = new UpperTail(f.Hours[0].Hour, [0.8, 1.2], [0.5, 0.9, 0.99, 0.995], [0.1, 0.7, 1.3, 1.5], 288) },
                },
                _ => input,
            };
            if (ScalePlanner.Plan(input) is Planned<Plan> { Value: var plan })
            {
                yield return plan;
            }
        }
    }

    [Fact]
    public void PackedStepsReadBackAsTheSameJsonAndSentences()
    {
        var plans = VariedPlans().ToList();
        Assert.True(plans.Count > 250, $"only {plans.Count} of 300 inputs were planned");
        var seen = new HashSet<string>();
        foreach (var plan in plans)
        {
            var packed = PackedSteps.Write(plan.Steps);
            var read = PackedSteps.Read(packed);
            Assert.Equal(JsonSerializer.Serialize(plan.Steps, ServingJson.Options), JsonSerializer.Serialize(read, ServingJson.Options));
            Assert.Equal(plan.Steps.Select(s => s.Explanation.Sentence), read.Select(s => s.Explanation.Sentence));
            foreach (var s in plan.Steps)
            {
                seen.Add(s.Source.ToString());
                seen.Add(s.Kind.ToString());
                seen.UnionWith(s.Explanation.Clamps.Select(c => c.Rule.ToString()));
                if (s.Explanation.WindowRule is not null)
                {
                    seen.Add("window");
                }
                if (s.Explanation.Risk is not null)
                {
                    seen.Add(s.Explanation.Risk.FromBacktest ? "riskTail" : "risk");
                }
                if (s.Explanation.Job is not null)
                {
                    seen.Add("jobDemand");
                }
                if (s.ForecastOnly)
                {
                    seen.Add("forecastOnly");
                }
            }
        }
        // The seeds reach every shape the form encodes, so a field dropped by the form shows up above.
        Assert.Superset(new HashSet<string>
        {
            "Forecast", "YesterdaySameHour", "Static", "Service", "Job", "MaxReplicas", "MaxStepUp", "ScaleDownDelay", "Tolerance",
            "window", "risk", "riskTail", "jobDemand", "forecastOnly",
        }, seen);
    }

    [Fact]
    public void APlanIsPackedInAFewKilobytes()
    {
        var plans = VariedPlans().ToList();
        var mean = plans.Average(p => PackedSteps.Write(p.Steps).Length);
        var json = plans.Average(p => PlanJson.WriteSteps(p.Steps).Length);
        Assert.True(mean < 3000, $"a 48-step plan packs into {mean:F0} bytes on average (JSON: {json:F0})");
    }

    [Fact]
    public void StepsThatAreNotWholeSecondsAndAnEmptyPlanRoundTrip()
    {
        var plan = VariedPlans().First();
        var odd = plan.Steps.Select((s, k) => s with { Start = s.Start.AddTicks(k + 1), End = s.End.AddTicks(k + 2) }).ToList();
        Assert.Equal(JsonSerializer.Serialize(odd, ServingJson.Options), JsonSerializer.Serialize(PackedSteps.Read(PackedSteps.Write(odd)), ServingJson.Options));
        Assert.Empty(PackedSteps.Read(PackedSteps.Write([])));
    }
}
