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
        State? best = null;
        double bestSse = double.PositiveInfinity;
        foreach (double alpha in s_alpha)
        {
            foreach (double beta in s_beta)
            {
                foreach (double phi in s_phi)
                {
                    var (sse, level, trend) = Holt(a, alpha, alpha * beta, phi);
                    if (sse < bestSse)
                    {
                        bestSse = sse;
                        best = new State(level, trend, phi, alpha, Math.Sqrt(sse / Math.Max(1, a.Length - 1)));
                    }
                }
            }
        }
        return best!;
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
        foreach (double alpha in s_alpha)
        {
            var (sse, level, _) = Holt(a, alpha, 0, 0);
            if (sse < bestSse)
            {
                (bestSse, bestLevel, bestAlpha) = (sse, level, alpha);
            }
        }
        // ŷ(h) = ℓ + (b/2)·(h − 1 + 1/α − (1 − α)^n / α) (Hyndman & Billah, IJF 2003), as Level' + Trend·h.
        double drift = slope / 2;
        double offset = (1 / bestAlpha) - (Math.Pow(1 - bestAlpha, n) / bestAlpha) - 1;
        return new State(bestLevel + (drift * offset), drift, 1.0, bestAlpha, Math.Sqrt(bestSse / Math.Max(1, n - 1)));
    }

    // One pass of Holt's damped recursions (β* = alpha·beta form); sse of the one-step errors after a short warm-up.
    private static (double Sse, double Level, double Trend) Holt(ReadOnlySpan<double> a, double alpha, double beta, double phi)
    {
        double level = a[0], trend = a.Length > 1 && beta > 0 ? a[1] - a[0] : 0, sse = 0;
        int warm = Math.Min(24, a.Length / 4);
        for (int t = 1; t < a.Length; t++)
        {
            double forecast = level + (phi * trend);
            double e = a[t] - forecast;
            if (t > warm)
            {
                sse += e * e;
            }
            double newLevel = forecast + (alpha * e);
            trend = (phi * trend) + (beta * e);
            level = newLevel;
        }
        return (sse, level, trend);
    }
}
