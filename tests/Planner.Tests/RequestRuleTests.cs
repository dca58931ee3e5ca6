using System.Text.Json;

namespace Forecaster.Planner.Tests;

/// <summary>The policy's <c>requests.rule</c>: the VPA-recommender-style percentile rule, its bounds and its validation.</summary>
public class RequestRuleTests
{
    private const long MiB = 1L << 20;
    private static readonly DateTimeOffset Now = new(2026, 11, 21, 12, 0, 0, TimeSpan.Zero);

    private static Policy Percentile(double p = 0.9, double halfLife = 24, double buffer = 0.15) =>
        new() { OvercommitBuffer = buffer, CpuGranularity = 0.001, MemoryGranularity = 1, Requests = new RequestsPolicy { Rule = RequestsRule.Percentile, Percentile = p, HalfLifeHours = halfLife } };

    /// <summary>Hourly values ending at the hour before <see cref="Now"/>.</summary>
    private static HourlySeries Hours(params double[] values) => new(Now.AddHours(-values.Length), values);

    [Fact]
    public void WithoutDecayThePercentileIsTheOrdinaryOneOfTheHours()
    {
        // 100 hours valued 1..100 with an infinite half-life: all weigh the same, so p90 is the 90th smallest.
        var values = Enumerable.Range(1, 100).Select(v => (double)v).ToArray();
        var ages = values.Select((_, i) => (double)(100 - i)).ToArray();
        Assert.Equal(90, DecayingHistogram.Percentile(values, ages, 0.9, double.PositiveInfinity));
        Assert.Equal(50, DecayingHistogram.Percentile(values, ages, 0.5, double.PositiveInfinity));
        Assert.Equal(100, DecayingHistogram.Percentile(values, ages, 1, double.PositiveInfinity));
    }

    [Fact]
    public void AHalfLifeMakesOldHoursCountHalf()
    {
        // Two hours: 10 (now) and 1 (one half-life ago). Weights 1 and 0.5: the 1 holds a third of the weight.
        double[] values = [1, 10];
        double[] ages = [24, 0];
        Assert.Equal(1, DecayingHistogram.Percentile(values, ages, 0.33, 24));
        Assert.Equal(10, DecayingHistogram.Percentile(values, ages, 0.34, 24));
        // Without decay the split is at one half.
        Assert.Equal(1, DecayingHistogram.Percentile(values, ages, 0.5, double.PositiveInfinity));
    }

    [Fact]
    public void PercentileRuleSizesFromTheDecayedPercentilePlusTheMarginWithVpaBounds()
    {
        // A week of cpu: 0.2 cores except a 1.0-core hour every 6th hour (about 17% of the hours): p90 is the busy value.
        var cpu = Enumerable.Range(0, 168).Select(h => h % 6 == 0 ? 1.0 : 0.2).ToArray();
        var memory = Enumerable.Range(0, 168).Select(_ => 100.0 * MiB).ToArray();
        var r = ResourceRequests.For(Percentile(), null, new UsageHistory(Hours(cpu), Hours(memory)), Now);
        Assert.Equal(RequestsRule.Percentile, r.Rule);
        Assert.Equal(1.0, r.PercentileCpu);
        Assert.Equal(1.15, r.Cpu);
        Assert.Equal(1.15, r.UncappedCpu);
        // Lower: p50 (0.2) × 1.15 × (1 + 0.001/7)^-2; upper: p95 (1.0) × 1.15 × (1 + 1/7) (confidence: 7 days of hours).
        Assert.Equal(Math.Ceiling(0.2 * 1.15 * Math.Pow(1 + (0.001 / 7), -2) * 1000) / 1000, r.LowerCpu!.Value, 9);
        Assert.Equal(Math.Ceiling(1.0 * 1.15 * (1 + (1 / 7.0)) * 1000) / 1000, r.UpperCpu!.Value, 9);
        Assert.Equal((long)Math.Ceiling(100 * MiB * 1.15), r.Memory);
        Assert.Equal(168, r.HistoryHours);
        Assert.Contains("p90 of 168 hours", r.Explain(), StringComparison.Ordinal);
    }

    [Fact]
    public void PercentileRuleKeepsTheFloorsAndGranularityAndReportsTheUncappedTarget()
    {
        var policy = Percentile() with { MinCpu = 0.5, CpuGranularity = 0.25, MinMemory = 512 * MiB, MemoryGranularity = 64 * MiB };
        var usage = new UsageHistory(Hours([.. Enumerable.Repeat(0.1, 48)]), Hours([.. Enumerable.Repeat(10.0 * MiB, 48)]));
        var r = ResourceRequests.For(policy, null, usage, Now);
        Assert.Equal((0.5, 512 * MiB), (r.Cpu!.Value, r.Memory!.Value));
        Assert.Equal((0.25, 64 * MiB), (r.UncappedCpu!.Value, r.UncappedMemory!.Value));
        Assert.True(r.LowerCpu <= r.Cpu && r.Cpu <= r.UpperCpu);
    }

    [Fact]
    public void BoundsEncloseTheTargetForRandomHistoriesAndPercentiles()
    {
        foreach (var seed in Enumerable.Range(1, 500))
        {
            var rnd = new Random(seed);
            var hours = rnd.Next(1, 200);
            var cpu = Enumerable.Range(0, hours).Select(_ => rnd.Next(5) == 0 ? double.NaN : rnd.NextDouble() * 4).ToArray();
            var memory = Enumerable.Range(0, hours).Select(_ => rnd.NextDouble() * 4096 * MiB).ToArray();
            var policy = Percentile(0.01 + (rnd.NextDouble() * 0.99), 1 + (rnd.NextDouble() * 100), rnd.NextDouble()) with
            {
                CpuGranularity = new[] { 0.001, 0.1, 0.25 }[rnd.Next(3)],
                MemoryGranularity = new[] { 1L, MiB, 64 * MiB }[rnd.Next(3)],
            };
            var r = ResourceRequests.For(policy, null, new UsageHistory(Hours(cpu), Hours(memory)), Now);
            if (cpu.All(double.IsNaN))
            {
                Assert.Null(r.Cpu);
                continue;
            }
            Assert.True(r.LowerCpu <= r.Cpu && r.Cpu <= r.UpperCpu, $"seed {seed}: {r.LowerCpu} {r.Cpu} {r.UpperCpu}");
            Assert.True(r.LowerMemory <= r.Memory && r.Memory <= r.UpperMemory, $"seed {seed}");
            var finite = cpu.Where(double.IsFinite).ToArray();
            Assert.InRange(r.PercentileCpu!.Value, finite.Min(), finite.Max());
            Assert.Equal(0, r.Memory!.Value % policy.MemoryGranularity);
        }
    }

    [Fact]
    public void PercentileRuleWithoutUsageLeavesTheRequestUnchanged()
    {
        var r = ResourceRequests.For(Percentile(), new UsagePeak(1, 1), null, Now);
        Assert.Null(r.Cpu);
        Assert.Null(r.Memory);
        Assert.Contains("unchanged", r.Explain(), StringComparison.Ordinal);
    }

    [Fact]
    public void WeeklyPeakRuleBoundsArePeakAndTarget()
    {
        var r = ResourceRequests.For(new Policy(), new UsagePeak(0.52, 300 * MiB));
        Assert.Equal((0.6, 0.6, 0.6), (r.LowerCpu!.Value, r.Cpu!.Value, r.UpperCpu!.Value));
        Assert.Equal((320 * MiB, 384 * MiB, 384 * MiB), (r.LowerMemory!.Value, r.Memory!.Value, r.UpperMemory!.Value));
    }

    [Fact]
    public void ThePlannerUsesThePercentileRuleFromItsInput()
    {
        var usage = new UsageHistory(Hours([.. Enumerable.Repeat(0.4, 24)]), Hours([.. Enumerable.Repeat(200.0 * MiB, 24)]));
        var input = Scenarios.Simple([1000, 2000]) with { Policy = Scenarios.Simple([1000, 2000]).Policy with { Requests = new RequestsPolicy { Rule = RequestsRule.Percentile } }, Usage = usage, WeeklyPeak = new UsagePeak(9, 9) };
        var plan = Scenarios.Planned(input);
        Assert.All(plan.Steps, s => Assert.Equal((0.5, 256 * MiB), (s.Cpu!.Value, s.Memory!.Value)));   // 0.46 -> 0.5; 230 MiB -> 256 MiB
    }

    [Theory]
    [InlineData("""{"requests":{"rule":"median"}}""", "policy.requests.rule")]
    [InlineData("""{"requests":{"rule":"percentile","percentile":1.5}}""", "policy.requests.percentile")]
    [InlineData("""{"requests":{"rule":"percentile","percentile":0}}""", "policy.requests.percentile")]
    [InlineData("""{"requests":{"rule":"percentile","halfLifeHours":-1}}""", "policy.requests.halfLifeHours")]
    [InlineData("""{"requests":{"percentile":0.9}}""", "policy.requests.percentile")]
    [InlineData("""{"requests":{"rule":"weeklyPeak","halfLifeHours":24}}""", "policy.requests.halfLifeHours")]
    [InlineData("""{"requests":{"rule":"percentile","percentil":0.9}}""", "policy.requests.percentil")]
    [InlineData("""{"requests":"percentile"}""", "policy.requests")]
    public void BadRequestsRulesNameTheField(string json, string field)
    {
        var problems = PolicyValidator.Validate(JsonDocument.Parse(json).RootElement, ResourceKind.Service);
        Assert.Contains(problems, p => p.Field == field);
    }

    [Fact]
    public void AValidPercentileRuleReadsBack()
    {
        const string json = """{"requests":{"rule":"percentile","percentile":0.95,"halfLifeHours":12,"containerName":"app"}}""";
        Assert.Empty(PolicyValidator.Validate(JsonDocument.Parse(json).RootElement, ResourceKind.Service));
        var policy = PolicyJson.Read(json);
        Assert.Equal((RequestsRule.Percentile, 0.95, 12.0, "app"), (policy.Requests.Rule, policy.Requests.Percentile!.Value, policy.Requests.HalfLifeHours!.Value, policy.Requests.ContainerName));
    }

    [Theory]
    [InlineData("""{"vertices":["0a448493b4782967b150582570326227"]}""", null)]
    [InlineData("""{"vertices":["xyz"]}""", "policy.vertices[0]")]
    [InlineData("""{"vertices":[]}""", "policy.vertices")]
    [InlineData("""{"vertices":["0a448493b4782967b150582570326227","0A448493B4782967B150582570326227"]}""", "policy.vertices[1]")]
    public void VerticesAreFlinkVertexIds(string json, string? field)
    {
        var problems = PolicyValidator.Validate(JsonDocument.Parse(json).RootElement, ResourceKind.Job);
        if (field is null)
        {
            Assert.Empty(problems);
        }
        else
        {
            Assert.Contains(problems, p => p.Field == field);
        }
        Assert.Contains(PolicyValidator.Validate(JsonDocument.Parse("""{"vertices":["0a448493b4782967b150582570326227"]}""").RootElement, ResourceKind.Service),
            p => p.Field == "policy.vertices");
    }
}
