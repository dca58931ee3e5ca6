namespace Forecaster.Training.Smoothing;

/// <summary>
/// Classical seasonal decomposition (Persons 1919; the M4 benchmarks' seasonal adjustment, Makridakis et al., IJF 2020):
/// the ratio (or difference) of each point to its centred 2×P moving average, averaged per phase over the most recent cycles
/// and normalised, so the indices multiply (or add) to nothing over a cycle.
/// </summary>
public static class SeasonalIndices
{
    /// <summary>
    /// Indices of period <paramref name="period"/> for <paramref name="x"/> (gap-free), index p belonging to the points t with
    /// t mod P = p, from the last <paramref name="cycles"/> cycles the moving average covers; null when fewer than two
    /// cycles are covered. Multiplicative when <paramref name="multiplicative"/> (the series must then be positive).
    /// </summary>
    public static double[]? Estimate(ReadOnlySpan<double> x, int period, bool multiplicative, int cycles)
    {
        int n = x.Length, half = period / 2;
        if (period < 2 || n < (3 * period) + 1)
        {
            return null;
        }
        var prefix = new double[n + 1];
        for (int t = 0; t < n; t++)
        {
            prefix[t + 1] = prefix[t] + x[t];
        }
        var sums = new double[period];
        var counts = new int[period];
        int last = n - half - 1, first = Math.Max(half, last - (cycles * period) + 1);
        for (int t = first; t <= last; t++)
        {
            // 2×P moving average for even P: P+1 points, the two ends at half weight.
            double ma = period % 2 == 0
                ? (prefix[t + half] - prefix[t - half + 1] + (0.5 * (x[t - half] + x[t + half]))) / period
                : (prefix[t + half + 1] - prefix[t - half]) / period;
            double r = multiplicative ? x[t] / ma : x[t] - ma;
            if (double.IsFinite(r))
            {
                sums[t % period] += r;
                counts[t % period]++;
            }
        }
        if (counts.Min() < 2)
        {
            return null;
        }
        var s = new double[period];
        double mean = 0;
        for (int p = 0; p < period; p++)
        {
            s[p] = sums[p] / counts[p];
            mean += s[p] / period;
        }
        for (int p = 0; p < period; p++)
        {
            s[p] = multiplicative ? s[p] / mean : s[p] - mean;
        }
        return multiplicative && s.Any(v => !(v > 0)) ? null : s;
    }
}
