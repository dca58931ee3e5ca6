using System.Runtime.CompilerServices;
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
    // series, eight sets to a vector and four vectors at a time (32 sets: the 63 of the damped-trend grid in two passes), so
    // that the sets' independent chains of dependent operations overlap instead of waiting on each other: a step of one
    // chain is five dependent operations, so one pass costs about as much with four vectors as with one. Each lane does
    // exactly the scalar recursion's operations in its order. Returns the sse of the one-step errors after a short warm-up,
    // and the final level and trend, of each set.
    private static (double[] Sse, double[] Level, double[] Trend) Holt(ReadOnlySpan<double> a, double[] alpha, double[] beta, double[] phi)
    {
        const int Lanes = 8, Vectors = 4;
        int count = alpha.Length;
        var sse = new double[count];
        var level = new double[count];
        var trend = new double[count];
        int warm = Math.Min(24, a.Length / 4);
        double slope = a.Length > 1 ? a[1] - a[0] : 0;
        Span<double> lanes = stackalloc double[Lanes];
        // Lanes past the last set repeat it; their results are dropped.
        Vector512<double> Load(double[] v, int from, Span<double> scratch)
        {
            for (int j = 0; j < Lanes; j++)
            {
                scratch[j] = v[Math.Min(from + j, count - 1)];
            }
            return Vector512.Create<double>(scratch);
        }
        // The trend starts at the first step's change where the set has a trend at all.
        Vector512<double> Start(int from, Span<double> scratch)
        {
            for (int j = 0; j < Lanes; j++)
            {
                scratch[j] = beta[Math.Min(from + j, count - 1)] > 0 ? slope : 0;
            }
            return Vector512.Create<double>(scratch);
        }
        for (int k0 = 0; k0 < count; k0 += Lanes * Vectors)
        {
            var (al0, be0, ph0, tr0) = (Load(alpha, k0, lanes), Load(beta, k0, lanes), Load(phi, k0, lanes), Start(k0, lanes));
            var (al1, be1, ph1, tr1) = (Load(alpha, k0 + 8, lanes), Load(beta, k0 + 8, lanes), Load(phi, k0 + 8, lanes), Start(k0 + 8, lanes));
            var (al2, be2, ph2, tr2) = (Load(alpha, k0 + 16, lanes), Load(beta, k0 + 16, lanes), Load(phi, k0 + 16, lanes), Start(k0 + 16, lanes));
            var (al3, be3, ph3, tr3) = (Load(alpha, k0 + 24, lanes), Load(beta, k0 + 24, lanes), Load(phi, k0 + 24, lanes), Start(k0 + 24, lanes));
            var lv0 = Vector512.Create(a[0]);
            var (lv1, lv2, lv3) = (lv0, lv0, lv0);
            var (sse0, sse1, sse2, sse3) = (Vector512<double>.Zero, Vector512<double>.Zero, Vector512<double>.Zero, Vector512<double>.Zero);
            // Vectors whose sets all lie past the last one are not run.
            int vectors = Math.Min(Vectors, (count - k0 + Lanes - 1) / Lanes);
            for (int t = 1; t < a.Length; t++)
            {
                var at = Vector512.Create(a[t]);
                bool scored = t > warm;
                Step(at, scored, al0, be0, ph0, ref lv0, ref tr0, ref sse0);
                if (vectors > 1)
                {
                    Step(at, scored, al1, be1, ph1, ref lv1, ref tr1, ref sse1);
                }
                if (vectors > 2)
                {
                    Step(at, scored, al2, be2, ph2, ref lv2, ref tr2, ref sse2);
                    Step(at, scored, al3, be3, ph3, ref lv3, ref tr3, ref sse3);
                }
            }
            for (int j = 0; j < Lanes * Vectors && k0 + j < count; j++)
            {
                var (s, l, tr) = (j / Lanes) switch
                {
                    0 => (sse0, lv0, tr0),
                    1 => (sse1, lv1, tr1),
                    2 => (sse2, lv2, tr2),
                    _ => (sse3, lv3, tr3),
                };
                (sse[k0 + j], level[k0 + j], trend[k0 + j]) = (s.GetElement(j % Lanes), l.GetElement(j % Lanes), tr.GetElement(j % Lanes));
            }
        }
        return (sse, level, trend);
    }

    // One step of the recursion for eight sets: the one-step forecast's error (added to the sse once scored), then the new
    // level and trend.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Step(Vector512<double> at, bool scored, Vector512<double> al, Vector512<double> be, Vector512<double> ph,
        ref Vector512<double> lv, ref Vector512<double> tr, ref Vector512<double> sse)
    {
        var damped = ph * tr;
        var forecast = lv + damped;
        var e = at - forecast;
        if (scored)
        {
            sse += e * e;
        }
        lv = forecast + (al * e);
        tr = damped + (be * e);
    }
}
