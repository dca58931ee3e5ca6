using static Forecaster.Planner.Tests.Scenarios;

namespace Forecaster.Planner.Tests;

public class FleetCapacityTests
{
    [Fact]
    public void SumsReplicasTimesRequestPerHourAgainstTheQuota()
    {
        var a = Planned(Simple([1000, 2000]) with { WeeklyPeak = new UsagePeak(0.86, 1L << 30) });   // cpu 1.0, 10 and 20 replicas
        var b = Planned(Simple([500, 500]) with { WeeklyPeak = new UsagePeak(1.7, 2L << 30) });     // cpu 2.0, 5 replicas
        var hours = FleetCapacity.Sum([a, b], Start, Start.AddHours(3), new CapacityQuota(25, null));
        Assert.Equal(3, hours.Count);
        Assert.Equal((20.0, 5.0, 0.0), (hours[0].Cpu, hours[0].FreeCpu!.Value, hours[0].CpuShortfall));
        Assert.Equal((30.0, 0.0, 5.0), (hours[1].Cpu, hours[1].FreeCpu!.Value, hours[1].CpuShortfall));
        Assert.Equal((10 * a.Requests.Memory!.Value) + (5 * b.Requests.Memory!.Value), hours[0].Memory);
        Assert.Equal((0, 0), (hours[2].Resources, (int)hours[2].Cpu));
        Assert.Null(hours[0].FreeMemory);
    }

    [Fact]
    public void ResourcesWithoutRequestsAreCountedSoAPartialSumIsVisible()
    {
        var hours = FleetCapacity.Sum([Planned(Simple([1000]))], Start, Start.AddHours(1));
        Assert.Equal((1, 1), (hours[0].Resources, hours[0].WithoutRequests));
    }
}
