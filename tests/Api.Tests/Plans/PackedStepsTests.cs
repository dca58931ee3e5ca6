using System.Text.Json;
using System.Text.Json.Serialization;
using Forecaster.Api.Plans;
using Forecaster.Api.Serving;
using Forecaster.Planner;
using Forecaster.Planner.Tests;

namespace Forecaster.Api.Tests.Plans;

/// <summary>
/// Issue 16: the packed form of plan steps gives back every step exactly as the planner made it: the same JSON, sentence
/// included, as the served and stored views write it (services and jobs, windows, clamps, fallbacks, risk, dry runs), in
/// the format written now (2) and in format 1, which databases written before it hold.
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
            Assert.Equal(2, packed[0]);
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
                if (s.CapacityShortfall)
                {
                    seen.Add("capacityShortfall");
                }
                if (s.Explanation.Count != s.Count)
                {
                    seen.Add("explainedCountDiffers");
                }
                seen.Add(s.Explanation.Fallback.ToString());
            }
        }
        // The seeds reach every shape the form encodes, so a field dropped by the form shows up above.
        Assert.Superset(new HashSet<string>
        {
            "Forecast", "YesterdaySameHour", "Static", "Service", "Job", "MaxReplicas", "MaxStepUp", "ScaleDownDelay", "Tolerance",
            "window", "risk", "riskTail", "jobDemand", "forecastOnly", "capacityShortfall", "LastWeekSameHour",
            "NoForecast", "WorseThanSeasonalNaive", "HourNotForecast",
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

    [Fact]
    public void AStepReadAfterStepsSkippedWithoutTheirExplanationIsTheSame()
    {
        // The serving path (ServedPlan.StepAndNext) walks to a step without explanations, then explains that one: its clamps,
        // load, demand and the rest may be "the same as" a step that was skipped over.
        foreach (var plan in VariedPlans().Take(120))
        {
            var packed = PackedSteps.Write(plan.Steps);
            for (var i = 0; i < plan.Steps.Count; i++)
            {
                var reader = new PackedSteps.StepReader(packed);
                for (var k = 0; k < i; k++)
                {
                    reader.Next(explain: false);
                }
                reader.Next(explain: true);
                Assert.Equal(JsonSerializer.Serialize(plan.Steps[i], ServingJson.Options), JsonSerializer.Serialize(reader.Step(), ServingJson.Options));
                Assert.Equal((plan.Steps[i].Count, plan.Steps[i].Cpu, plan.Steps[i].Memory, plan.Steps[i].Start, plan.Steps[i].End),
                    (reader.StepCount, reader.Cpu, reader.Memory, reader.Start, reader.End));
            }
        }
    }

    [Fact]
    public void StepsOfDifferentPlansMixedRoundTrip()
    {
        // Format 2 writes most fields as "the same as the last one written": steps drawn from different plans (job after
        // service, risk after none, a value after a step without one, -0 and NaN) change every field from step to step.
        var options = new JsonSerializerOptions(ServingJson.Options) { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };
        var steps = VariedPlans().SelectMany(p => p.Steps).ToList();
        var r = new Random(16);
        for (var run = 0; run < 200; run++)
        {
            var mixed = Enumerable.Range(0, 48).Select(_ => steps[r.Next(steps.Count)]).Select(s => r.Next(10) switch
            {
                0 => s with { Explanation = s.Explanation with { Load = -0.0, Clamps = [.. s.Explanation.Clamps, new Clamp(ClampRule.Tolerance, 3, 3, -0.0)] } },
                1 => s with { Cpu = double.NaN, Explanation = s.Explanation with { Demand = null, Load = double.NaN } },
                _ => s,
            }).ToList();
            var packed = PackedSteps.Write(mixed);
            Assert.Equal(JsonSerializer.Serialize(mixed, options), JsonSerializer.Serialize(PackedSteps.Read(packed), options));
            var k = r.Next(48);
            var reader = new PackedSteps.StepReader(packed);
            for (var i = 0; i < k; i++)
            {
                reader.Next(explain: false);
            }
            reader.Next(explain: true);
            Assert.Equal(JsonSerializer.Serialize(mixed[k], options), JsonSerializer.Serialize(reader.Step(), options));
        }
    }

    /// <summary>
    /// Format-1 steps as main's writer wrote them before format 2 (PackedStepsFormat1.golden.txt: a name, the packed bytes in
    /// base64 and the steps' JSON, sentences included, as that code serialized them): slices around each shape of step
    /// (job, risk with and without the backtest tail, window, dry run, capacity shortfall, the fallbacks, ramp, tolerance,
    /// scale-down delay, a model worse than seasonal naive, ticks that are not whole seconds) and one whole plan.
    /// </summary>
    static IEnumerable<(string Name, byte[] Packed, string Json)> Format1Golden()
    {
        var lines = File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "Plans", "PackedStepsFormat1.golden.txt"));
        for (var i = 0; i + 2 < lines.Length; i += 3)
        {
            yield return (lines[i], Convert.FromBase64String(lines[i + 1]), lines[i + 2]);
        }
    }

    [Fact]
    public void Format1StepsAreStillReadAsTheyWereWritten()
    {
        var golden = Format1Golden().ToList();
        Assert.Equal(15, golden.Count);
        foreach (var (name, packed, json) in golden)
        {
            Assert.Equal(1, packed[0]);
            var read = PackedSteps.Read(packed);
            Assert.True(json == JsonSerializer.Serialize(read, ServingJson.Options), $"format-1 steps '{name}' read differently");
            Assert.Equal(read.Length, PackedSteps.Count(packed));
            // Rewritten in format 2 they read back the same too.
            Assert.True(json == JsonSerializer.Serialize(PackedSteps.Read(PackedSteps.Write(read)), ServingJson.Options), $"steps '{name}' rewritten in format 2 read differently");
        }
    }

    [Fact]
    public void Format2IsSmallerThanFormat1()
    {
        // The same steps in both formats. Measured when format 2 was made: the golden whole plan 826 -> 301 bytes (0.36×), all
        // the golden steps 4,652 -> 2,735 (0.59×: four-step slices pay the header and a first step with nothing to repeat),
        // and the varied plans 2,500 bytes on average with main's format-1 writer -> 930 (0.37×); on the bench fleet
        // (bench/plan.sh) 1,500 -> 560 bytes a plan.
        var golden = Format1Golden().ToList();
        var whole = golden.Single(g => g.Name == "wholeWindowPlan");
        Assert.InRange(PackedSteps.Write(PackedSteps.Read(whole.Packed)).Length, 1, 0.45 * whole.Packed.Length);
        Assert.InRange(golden.Sum(g => PackedSteps.Write(PackedSteps.Read(g.Packed)).Length), 1, 0.65 * golden.Sum(g => g.Packed.Length));
        const double format1Mean = 2500.1;
        Assert.InRange(VariedPlans().Average(p => PackedSteps.Write(p.Steps).Length), 1, 0.45 * format1Mean);
    }
}
