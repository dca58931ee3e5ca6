using System.Globalization;

namespace Forecaster.Planner;

/// <summary>
/// Cpu (cores) and memory (bytes) request per replica, by the policy's <c>requests.rule</c>:
/// <list type="bullet">
/// <item><c>weeklyPeak</c> (ByteDance's dynamic overcommit): the weekly peak hourly per-replica usage × (1 + buffer);
/// lower bound the peak itself, upper bound the target.</item>
/// <item><c>percentile</c> (the VPA recommender's estimator): a percentile of the decaying histogram of hourly per-replica
/// usage × (1 + buffer); lower bound from the 50th and upper from the 95th percentile, widened while history is short.</item>
/// </list>
/// Never below the floors (<see cref="Cpu"/> is the capped target, <see cref="UncappedCpu"/> the one before the floors),
/// rounded up to the granularity. Null leaves the current request as it is (no usage known: releasing capacity blind is
/// how outages start).
/// </summary>
public sealed record ResourceRequests(double? Cpu, long? Memory, double? PeakCpu, long? PeakMemory, double Buffer)
{
    /// <summary>Percentiles of the VPA recommender's lower and upper bounds (kubernetes/autoscaler, recommender/logic/recommender.go).</summary>
    public const double LowerPercentile = 0.5;
    public const double UpperPercentile = 0.95;

    public RequestsRule Rule { get; init; }

    public double? LowerCpu { get; init; }
    public double? UpperCpu { get; init; }
    public double? UncappedCpu { get; init; }
    public long? LowerMemory { get; init; }
    public long? UpperMemory { get; init; }
    public long? UncappedMemory { get; init; }

    /// <summary>Rule percentile: the percentile of hourly per-replica usage the target is sized from (before the margin).</summary>
    public double? PercentileCpu { get; init; }
    public long? PercentileMemory { get; init; }

    /// <summary>Rule percentile: the quantile, the half-life and how many hours of usage the histogram held.</summary>
    public double? Percentile { get; init; }
    public double? HalfLifeHours { get; init; }
    public int? HistoryHours { get; init; }

    public static ResourceRequests For(Policy policy, UsagePeak? peak) => For(policy, peak, null, default);

    /// <summary>The requests by <paramref name="policy"/>'s rule; <paramref name="now"/> ages the usage hours of the percentile rule.</summary>
    public static ResourceRequests For(Policy policy, UsagePeak? peak, UsageHistory? usage, DateTimeOffset now) =>
        policy.Requests.Rule == RequestsRule.Percentile ? Percentiles(policy, usage, now) : WeeklyPeak(policy, peak);

    static ResourceRequests WeeklyPeak(Policy policy, UsagePeak? peak)
    {
        var b = policy.OvercommitBuffer;
        var cpu = peak?.Cpu is double c && double.IsFinite(c) && c >= 0 ? Cores(policy, c * (1 + b), c, c * (1 + b), c * (1 + b)) : default;
        var memory = peak?.Memory is long m && m >= 0 ? Bytes(policy, m * (1 + b), m, m * (1 + b), m * (1 + b)) : default;
        return new ResourceRequests(cpu.Target, memory.Target, peak?.Cpu, peak?.Memory, b)
        {
            Rule = RequestsRule.WeeklyPeak,
            LowerCpu = cpu.Lower, UpperCpu = cpu.Upper, UncappedCpu = cpu.Uncapped,
            LowerMemory = memory.Lower, UpperMemory = memory.Upper, UncappedMemory = memory.Uncapped,
        };
    }

    static ResourceRequests Percentiles(Policy policy, UsageHistory? usage, DateTimeOffset now)
    {
        var p = policy.Requests.Percentile ?? RequestsPolicy.DefaultPercentile;
        var halfLife = policy.Requests.HalfLifeHours ?? RequestsPolicy.DefaultHalfLifeHours;
        var b = policy.OvercommitBuffer;
        var cpuHours = Quantiles(usage?.Cpu, now, p, halfLife);
        var memoryHours = Quantiles(usage?.Memory, now, p, halfLife);
        (double? Target, double? Lower, double? Upper, double? Uncapped) cpu = default;
        (long? Target, long? Lower, long? Upper, long? Uncapped) memory = default;
        if (cpuHours is { } qc)
        {
            cpu = Cores(policy, qc.Target * (1 + b), qc.Lower * (1 + b), qc.Upper * (1 + b), qc.Target * (1 + b));
        }
        if (memoryHours is { } qm)
        {
            memory = Bytes(policy, qm.Target * (1 + b), qm.Lower * (1 + b), qm.Upper * (1 + b), qm.Target * (1 + b));
        }
        return new ResourceRequests(cpu.Target, memory.Target, null, null, b)
        {
            Rule = RequestsRule.Percentile,
            LowerCpu = cpu.Lower, UpperCpu = cpu.Upper, UncappedCpu = cpu.Uncapped,
            LowerMemory = memory.Lower, UpperMemory = memory.Upper, UncappedMemory = memory.Uncapped,
            PercentileCpu = cpuHours?.Target,
            PercentileMemory = memoryHours is { } m ? (long)Math.Ceiling(m.Target) : null,
            Percentile = p,
            HalfLifeHours = halfLife,
            HistoryHours = Math.Max(cpuHours?.Hours ?? 0, memoryHours?.Hours ?? 0),
        };
    }

    /// <summary>
    /// Target, lower and upper usage of one series, with the VPA recommender's confidence multipliers (estimator.go:
    /// (1 + m/confidence)^e with confidence in days of history; lower m 0.001, e −2; upper m 1, e 1). Null without usage.
    /// </summary>
    static (double Target, double Lower, double Upper, int Hours)? Quantiles(HourlySeries? series, DateTimeOffset now, double p, double halfLife)
    {
        if (series is null)
        {
            return null;
        }
        var values = new List<double>(series.Values.Length);
        var ages = new List<double>(series.Values.Length);
        for (var h = 0; h < series.Values.Length; h++)
        {
            var v = series.Values[h];
            if (double.IsFinite(v) && v >= 0)
            {
                values.Add(v);
                ages.Add((now - series.Start.AddHours(h)).TotalHours);
            }
        }
        if (values.Count == 0)
        {
            return null;
        }
        var confidence = values.Count / 24.0;
        var target = DecayingHistogram.Percentile(values.ToArray(), ages.ToArray(), p, halfLife);
        var lower = DecayingHistogram.Percentile(values.ToArray(), ages.ToArray(), LowerPercentile, halfLife) * Math.Pow(1 + (0.001 / confidence), -2);
        var upper = DecayingHistogram.Percentile(values.ToArray(), ages.ToArray(), UpperPercentile, halfLife) * (1 + (1 / confidence));
        // A target percentile outside [50th, 95th] must not leave the bounds on the wrong side of it.
        return (target, Math.Min(lower, target), Math.Max(upper, target), values.Count);
    }

    static (double? Target, double? Lower, double? Upper, double? Uncapped) Cores(Policy policy, double target, double lower, double upper, double uncapped)
    {
        var floor = policy.MinCpu ?? 0;
        var g = policy.CpuGranularity;
        return (RoundUp(Math.Max(target, floor), g), RoundUp(Math.Max(lower, floor), g), RoundUp(Math.Max(upper, floor), g), RoundUp(uncapped, g));
    }

    static (long? Target, long? Lower, long? Upper, long? Uncapped) Bytes(Policy policy, double target, double lower, double upper, double uncapped)
    {
        var floor = policy.MinMemory ?? 0;
        var g = policy.MemoryGranularity;
        long Whole(double x) => (long)Math.Ceiling(x);
        return (RoundUp(Math.Max(Whole(target), floor), g), RoundUp(Math.Max(Whole(lower), floor), g),
            RoundUp(Math.Max(Whole(upper), floor), g), RoundUp(Whole(uncapped), g));
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
    public string Explain() => Rule == RequestsRule.Percentile
        ? string.Create(CultureInfo.InvariantCulture,
            $"cpu {Describe(Cpu, PercentileCpu, "percentile")}; memory {Describe(Memory, PercentileMemory, "percentile")} (p{Percentile * 100:0.#} of {HistoryHours} hours of per-replica usage, half-life {HalfLifeHours:0.#} h, margin {Buffer:P0})")
        : string.Create(CultureInfo.InvariantCulture,
            $"cpu {Describe(Cpu, PeakCpu, "weekly peak")}; memory {Describe(Memory, PeakMemory, "weekly peak")} (buffer {Buffer:P0})");

    private static string Describe(double? request, double? basis, string what) => request is null
        ? $"unchanged (no {what} usage known)"
        : string.Create(CultureInfo.InvariantCulture, $"{request} from {what} {basis:G6}");
}

/// <summary>Hourly usage of one replica over the last days: cpu as the hourly mean (cores), memory as the hourly peak (bytes).</summary>
public sealed record UsageHistory(HourlySeries Cpu, HourlySeries Memory);

/// <summary>
/// The VPA recommender's decaying histogram (kubernetes/autoscaler, recommender/util/decaying_histogram.go): each sample
/// weighs 2^(−age / half-life), and a percentile is the smallest value whose cumulative weight reaches that share of the
/// total. Exact over the samples rather than over 5%-wide buckets: a few hundred hourly values need no buckets.
/// </summary>
public static class DecayingHistogram
{
    /// <summary>The <paramref name="percentile"/> (0–1] of <paramref name="values"/>, each aged <paramref name="ageHours"/>; NaN when empty.</summary>
    public static double Percentile(ReadOnlySpan<double> values, ReadOnlySpan<double> ageHours, double percentile, double halfLifeHours)
    {
        if (values.Length != ageHours.Length)
        {
            throw new ArgumentException("one age per value");
        }
        if (values.IsEmpty)
        {
            return double.NaN;
        }
        var order = new int[values.Length];
        for (var i = 0; i < order.Length; i++)
        {
            order[i] = i;
        }
        var sortKeys = values.ToArray();
        Array.Sort(sortKeys, order);
        // Weights relative to the youngest sample, so 2^x never underflows for the recent ones.
        var youngest = double.MaxValue;
        foreach (var a in ageHours)
        {
            youngest = Math.Min(youngest, a);
        }
        var weights = new double[values.Length];
        var total = 0.0;
        for (var i = 0; i < values.Length; i++)
        {
            weights[i] = Math.Pow(2, -(ageHours[i] - youngest) / halfLifeHours);
            total += weights[i];
        }
        var threshold = percentile * total;
        var cumulative = 0.0;
        foreach (var i in order)
        {
            cumulative += weights[i];
            if (cumulative >= threshold * (1 - 1e-12))
            {
                return values[i];
            }
        }
        return values[order[^1]];
    }
}
