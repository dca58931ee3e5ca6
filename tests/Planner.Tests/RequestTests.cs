namespace Forecaster.Planner.Tests;

public class RequestTests
{
    private const long MiB = 1L << 20;

    [Fact]
    public void RequestIsWeeklyPeakPlusBufferRoundedUpToTheGranularity()
    {
        var requests = ResourceRequests.For(new Policy(), new UsagePeak(0.52, 300 * MiB));
        Assert.Equal(0.6, requests.Cpu);           // 0.52 × 1.15 = 0.598
        Assert.Equal(384 * MiB, requests.Memory);  // 345 MiB -> 6 × 64 MiB
    }

    [Fact]
    public void RequestNeverFallsBelowTheFloors()
    {
        var requests = ResourceRequests.For(new Policy { MinCpu = 1, MinMemory = 1024 * MiB }, new UsagePeak(0.1, 10 * MiB));
        Assert.Equal((1.0, 1024 * MiB), (requests.Cpu, requests.Memory));
    }

    [Fact]
    public void UnknownPeakLeavesTheRequestUnchanged()
    {
        var requests = ResourceRequests.For(new Policy { MinCpu = 1 }, null);
        Assert.Null(requests.Cpu);
        Assert.Null(requests.Memory);
    }

    [Fact]
    public void BufferArithmeticHoldsForRandomPeaksBuffersFloorsAndGranularities()
    {
        foreach (var seed in Enumerable.Range(1, 2000))
        {
            var r = new Random(seed);
            var policy = new Policy
            {
                OvercommitBuffer = r.NextDouble(),
                MinCpu = r.Next(3) == 0 ? r.NextDouble() * 2 : null,
                MinMemory = r.Next(3) == 0 ? r.NextInt64(1, 4096) * MiB : null,
                CpuGranularity = new[] { 0.001, 0.05, 0.1, 0.25, 1 }[r.Next(5)],
                MemoryGranularity = new[] { 1L, MiB, 64 * MiB, 256 * MiB }[r.Next(4)],
            };
            var peak = new UsagePeak(r.NextDouble() * 16, r.NextInt64(0, 64L << 30));
            var requests = ResourceRequests.For(policy, peak);
            var cpuTarget = Math.Max(peak.Cpu!.Value * (1 + policy.OvercommitBuffer), policy.MinCpu ?? 0);
            var cpu = requests.Cpu!.Value;
            Assert.True(cpu >= cpuTarget - 1e-9 && cpu < cpuTarget + policy.CpuGranularity + 1e-9, $"seed {seed}: cpu {cpu} for {cpuTarget}");
            Assert.Equal(Math.Round(cpu / policy.CpuGranularity), cpu / policy.CpuGranularity, 6);
            var memoryTarget = Math.Max((long)Math.Ceiling(peak.Memory!.Value * (1 + policy.OvercommitBuffer)), policy.MinMemory ?? 0);
            var memory = requests.Memory!.Value;
            Assert.True(memory >= memoryTarget && memory < memoryTarget + policy.MemoryGranularity, $"seed {seed}: memory {memory} for {memoryTarget}");
            Assert.Equal(0, memory % policy.MemoryGranularity);
        }
    }

    [Fact]
    public void EveryStepCarriesThePlansRequests()
    {
        var plan = Scenarios.Planned(Scenarios.Simple([1000, 2000]) with { WeeklyPeak = new UsagePeak(0.52, 300 * MiB) });
        Assert.All(plan.Steps, s => Assert.Equal((0.6, 384 * MiB), (s.Cpu!.Value, s.Memory!.Value)));
    }
}
