using System.Runtime.Intrinsics;

namespace Forecaster.Training.Smoothing;

/// <summary>
/// Exponential smoothing of a (seasonally adjusted) series: damped-trend Holt (Gardner &amp; McKenzie, Management Science 1985)
/// with its parameters chosen on a small grid by in-sample one-step squared error, and the Theta method as simple exponential
/// smoothing with drift (Assimakopoulos &amp; Nikolopoulos, IJF 2000; Hyndman &amp; Billah, IJF 2003). O(n) per parameter set.
/// </summary>
public static class ExponentialSmoothing
{
    private static readonly double[] s_alpha = [0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9];
    private static readonly double[] s_beta = [0.01, 0.05, 0.15];
    private static readonly double[] s_phi = [0.8, 0.9, 0.95];

    /// <summary>A fitted smoother's end state: forecast h steps ahead is Level + Trend·(φ + … + φ^h).</summary>
    public sealed record State(double Level, double Trend, double Damping, double Alpha, double ResidualStd);

    /// <summary>Damped-trend Holt on <paramref name="a"/>, the grid's best by one-step squared error.</summary>
    public static State DampedTrend(ReadOnlySpan<double> a)
    {
        int count = s_alpha.Length * s_beta.Length * s_phi.Length;
        var alpha = new double[count];
        var beta = new double[count];
        var phi = new double[count];
        int k = 0;
        foreach (double al in s_alpha)
        {
            foreach (double be in s_beta)
            {
                foreach (double ph in s_phi)
                {
                    (alpha[k], beta[k], phi[k]) = (al, al * be, ph);
                    k++;
                }
            }
        }
        var (sse, level, trend) = Holt(a, alpha, beta, phi);
        int best = -1;
        double bestSse = double.PositiveInfinity;
        for (k = 0; k < count; k++)
        {
            if (sse[k] < bestSse)
            {
                (best, bestSse) = (k, sse[k]);
            }
        }
        if (best < 0)
        {
            throw new ArithmeticException("no smoothing parameters give a finite one-step error");
        }
        return new State(level[best], trend[best], phi[best], alpha[best], Math.Sqrt(sse[best] / Math.Max(1, a.Length - 1)));
    }

    /// <summary>
    /// The Theta method on <paramref name="a"/>: SES (α by grid) of the series, plus half the slope of its least-squares line
    /// as drift, expressed in the damped-trend state with φ = 1 so both forecast alike.
    /// </summary>
    public static State Theta(ReadOnlySpan<double> a)
    {
        int n = a.Length;
        double tMean = (n - 1) / 2.0, yMean = 0;
        foreach (double v in a)
        {
            yMean += v / n;
        }
        double sxy = 0, sxx = 0;
        for (int t = 0; t < n; t++)
        {
            sxy += (t - tMean) * (a[t] - yMean);
            sxx += (t - tMean) * (t - tMean);
        }
        double slope = sxx > 0 ? sxy / sxx : 0;
        double bestSse = double.PositiveInfinity, bestLevel = a[^1], bestAlpha = 0.5;
        var (sses, levels, _) = Holt(a, s_alpha, new double[s_alpha.Length], new double[s_alpha.Length]);
        for (int k = 0; k < s_alpha.Length; k++)
        {
            if (sses[k] < bestSse)
            {
                (bestSse, bestLevel, bestAlpha) = (sses[k], levels[k], s_alpha[k]);
            }
        }
        // ŷ(h) = ℓ + (b/2)·(h − 1 + 1/α − (1 − α)^n / α) (Hyndman & Billah, IJF 2003), as Level' + Trend·h.
        double drift = slope / 2;
        double offset = (1 / bestAlpha) - (Math.Pow(1 - bestAlpha, n) / bestAlpha) - 1;
        return new State(bestLevel + (drift * offset), drift, 1.0, bestAlpha, Math.Sqrt(bestSse / Math.Max(1, n - 1)));
    }

    // Holt's damped recursions (β* = alpha·beta form) for every parameter set k (alpha[k], beta[k], phi[k]) in one pass over the
    // series, four sets to a vector and two vectors at a time, so that the sets' independent chains of dependent operations
    // overlap instead of waiting on each other; each lane does exactly the scalar recursion's operations in its order. Returns
    // the sse of the one-step errors after a short warm-up, and the final level and trend, of each set.
    private static (double[] Sse, double[] Level, double[] Trend) Holt(ReadOnlySpan<double> a, double[] alpha, double[] beta, double[] phi)
    {
        int count = alpha.Length;
        var sse = new double[count];
        var level = new double[count];
        var trend = new double[count];
        int warm = Math.Min(24, a.Length / 4);
        double slope = a.Length > 1 ? a[1] - a[0] : 0;
        for (int k0 = 0; k0 < count; k0 += 8)
        {
            // Lanes past the last set repeat it; their results are dropped.
            Vector256<double> Lanes(double[] v, int from) => Vector256.Create(
                v[Math.Min(from, count - 1)], v[Math.Min(from + 1, count - 1)], v[Math.Min(from + 2, count - 1)], v[Math.Min(from + 3, count - 1)]);
            // The trend starts at the first step's change where the set has a trend at all.
            Vector256<double> Start(int from) => Vector256.Create(
                beta[Math.Min(from, count - 1)] > 0 ? slope : 0, beta[Math.Min(from + 1, count - 1)] > 0 ? slope : 0,
                beta[Math.Min(from + 2, count - 1)] > 0 ? slope : 0, beta[Math.Min(from + 3, count - 1)] > 0 ? slope : 0);
            var (al0, be0, ph0, tr0) = (Lanes(alpha, k0), Lanes(beta, k0), Lanes(phi, k0), Start(k0));
            var (al1, be1, ph1, tr1) = (Lanes(alpha, k0 + 4), Lanes(beta, k0 + 4), Lanes(phi, k0 + 4), Start(k0 + 4));
            var lv0 = Vector256.Create(a[0]);
            var lv1 = lv0;
            var sse0 = Vector256<double>.Zero;
            var sse1 = Vector256<double>.Zero;
            for (int t = 1; t < a.Length; t++)
            {
                var at = Vector256.Create(a[t]);
                var damped0 = ph0 * tr0;
                var damped1 = ph1 * tr1;
                var forecast0 = lv0 + damped0;
                var forecast1 = lv1 + damped1;
                var e0 = at - forecast0;
                var e1 = at - forecast1;
                if (t > warm)
                {
                    sse0 += e0 * e0;
                    sse1 += e1 * e1;
                }
                lv0 = forecast0 + (al0 * e0);
                lv1 = forecast1 + (al1 * e1);
                tr0 = damped0 + (be0 * e0);
                tr1 = damped1 + (be1 * e1);
            }
            for (int j = 0; j < 8 && k0 + j < count; j++)
            {
                var (s, l, tr) = j < 4 ? (sse0, lv0, tr0) : (sse1, lv1, tr1);
                (sse[k0 + j], level[k0 + j], trend[k0 + j]) = (s.GetElement(j % 4), l.GetElement(j % 4), tr.GetElement(j % 4));
            }
        }
        return (sse, level, trend);
    }
}
