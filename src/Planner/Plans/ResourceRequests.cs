using System.Globalization;

namespace Forecaster.Planner;

/// <summary>
/// Cpu (cores) and memory (bytes) request per replica from ByteDance's dynamic overcommit: the weekly peak hourly
/// per-replica usage × (1 + buffer), never below the floors, rounded up to the granularity. Null leaves the
/// current request as it is (no usage known: releasing capacity blind is how outages start).
/// </summary>
public sealed record ResourceRequests(double? Cpu, long? Memory, double? PeakCpu, long? PeakMemory, double Buffer)
{
    public static ResourceRequests For(Policy policy, UsagePeak? peak)
    {
        double? cpu = null;
        long? memory = null;
        if (peak?.Cpu is double c && double.IsFinite(c) && c >= 0)
        {
            cpu = RoundUp(Math.Max(c * (1 + policy.OvercommitBuffer), policy.MinCpu ?? 0), policy.CpuGranularity);
        }
        if (peak?.Memory is long m && m >= 0)
        {
            var buffered = (long)Math.Ceiling(m * (1 + policy.OvercommitBuffer));
            memory = RoundUp(Math.Max(buffered, policy.MinMemory ?? 0), policy.MemoryGranularity);
        }
        return new ResourceRequests(cpu, memory, peak?.Cpu, peak?.Memory, policy.OvercommitBuffer);
    }

    /// <summary>Smallest multiple of <paramref name="granularity"/> not below <paramref name="x"/>, without binary noise (0.3, not 0.30000000000000004).</summary>
    public static double RoundUp(double x, double granularity)
    {
        // The tolerance keeps 0.7 / 0.1 = 6.999999999999999 from rounding up to 0.8.
        var multiples = Math.Ceiling((x / granularity) - 1e-9);
        return Math.Round(multiples * granularity, 9);
    }

    public static long RoundUp(long x, long granularity) => checked((x + granularity - 1) / granularity * granularity);

    /// <summary>The numbers behind the requests, as a sentence.</summary>
    public string Explain() => string.Create(CultureInfo.InvariantCulture,
        $"cpu {Describe(Cpu, PeakCpu)}; memory {Describe(Memory, PeakMemory)} (buffer {Buffer:P0})");

    private static string Describe(double? request, double? peak) => request is null
        ? "unchanged (no weekly peak usage known)"
        : string.Create(CultureInfo.InvariantCulture, $"{request} from weekly peak {peak:G6}");
}
