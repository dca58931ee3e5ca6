namespace Forecaster.Planner;

/// <summary>A group's (or the fleet's) quota; either side may be absent.</summary>
public sealed record CapacityQuota(double? Cpu, long? Memory);

/// <summary>
/// Planned requests summed for one hour: replicas × request per resource. <see cref="FreeCpu"/> is what co-located
/// offline work may use; <see cref="CpuShortfall"/> is how far the plans exceed the quota.
/// <see cref="WithoutRequests"/> counts resources whose request is unknown (null), so the sum is partial when it is not 0.
/// </summary>
public sealed record CapacityHour(
    DateTimeOffset Hour, double Cpu, long Memory, int Resources, int WithoutRequests, double? CpuQuota, long? MemoryQuota)
{
    public double? FreeCpu => CpuQuota is double q ? Math.Max(0, Math.Round(q - Cpu, 6)) : null;

    public long? FreeMemory => MemoryQuota is long q ? Math.Max(0, q - Memory) : null;

    public double CpuShortfall => CpuQuota is double q ? Math.Max(0, Math.Round(Cpu - q, 6)) : 0;

    public long MemoryShortfall => MemoryQuota is long q ? Math.Max(0, Memory - q) : 0;
}

/// <summary>The fleet view behind <c>GET /api/v1/capacity</c>: pass the latest plan of each resource in the group.</summary>
public static class FleetCapacity
{
    /// <summary>One row per UTC hour in [<paramref name="from"/>, <paramref name="to"/>), by the hour each step serves.</summary>
    public static IReadOnlyList<CapacityHour> Sum(IEnumerable<Plan> plans, DateTimeOffset from, DateTimeOffset to, CapacityQuota? quota = null)
    {
        ArgumentNullException.ThrowIfNull(plans);
        var first = from.UtcTicks - (from.UtcTicks % TimeSpan.TicksPerHour);
        var count = (int)Math.Max(0, (to.UtcTicks - first + TimeSpan.TicksPerHour - 1) / TimeSpan.TicksPerHour);
        var cpu = new double[count];
        var memory = new long[count];
        var resources = new int[count];
        var unknown = new int[count];
        foreach (var plan in plans)
        {
            foreach (var step in plan.Steps)
            {
                var ticks = step.Hour.UtcTicks - first;
                if (ticks < 0 || ticks / TimeSpan.TicksPerHour >= count)
                {
                    continue;
                }
                var i = (int)(ticks / TimeSpan.TicksPerHour);
                resources[i]++;
                if (step.Cpu is null || step.Memory is null)
                {
                    unknown[i]++;
                }
                cpu[i] += step.Count * (step.Cpu ?? 0);
                memory[i] += step.Count * (step.Memory ?? 0);
            }
        }
        var hours = new CapacityHour[count];
        for (var i = 0; i < count; i++)
        {
            hours[i] = new CapacityHour(new DateTimeOffset(first + (i * TimeSpan.TicksPerHour), TimeSpan.Zero),
                Math.Round(cpu[i], 6), memory[i], resources[i], unknown[i], quota?.Cpu, quota?.Memory);
        }
        return hours;
    }
}
