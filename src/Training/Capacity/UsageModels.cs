namespace Forecaster.Training.Capacity;

/// <summary>
/// What training learns about a resource's usage from hourly series on one grid (NaN where nothing was observed): the cost
/// of load in cpu, and the peak usage of one replica. Per replica means divided by the hour's mean `replicas` (the observed
/// replica or parallelism count); a resource that does not report replicas gets its fleet-wide fit and no peak.
/// </summary>
public static class UsageModels
{
    /// <summary>
    /// The robust fit <c>cpu_cores = a + b·load</c> per replica (load and cpu each divided by replicas) when
    /// <paramref name="replicas"/> is given, else over the totals; null when there is too little to fit.
    /// </summary>
    public static LinearFit? Capacity(ReadOnlySpan<double> load, ReadOnlySpan<double> cpu, ReadOnlySpan<double> replicas)
    {
        if (load.Length != cpu.Length || (!replicas.IsEmpty && replicas.Length != load.Length))
        {
            throw new ArgumentException("the series must share one grid");
        }
        var x = new double[load.Length];
        var y = new double[load.Length];
        for (int h = 0; h < load.Length; h++)
        {
            double n = replicas.IsEmpty ? 1 : replicas[h];
            (x[h], y[h]) = n > 0 ? (load[h] / n, cpu[h] / n) : (double.NaN, double.NaN);
        }
        return CapacityRegression.Fit(x, y);
    }

    /// <summary>The largest hourly <c>usage / replicas</c> from hour <paramref name="from"/> on, or null when no hour has both.</summary>
    public static double? PeakPerReplica(ReadOnlySpan<double> usage, ReadOnlySpan<double> replicas, int from)
    {
        double? peak = null;
        for (int h = Math.Max(0, from); h < usage.Length && h < replicas.Length; h++)
        {
            if (double.IsFinite(usage[h]) && double.IsFinite(replicas[h]) && replicas[h] > 0)
            {
                double v = usage[h] / replicas[h];
                peak = peak is double p ? Math.Max(p, v) : v;
            }
        }
        return peak;
    }
}
