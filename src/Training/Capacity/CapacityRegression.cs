namespace Forecaster.Training.Capacity;

/// <summary>
/// A robust straight-line fit y = <see cref="Intercept"/> + <see cref="Slope"/>·x over <see cref="Samples"/> points whose
/// x ranged over [<see cref="XMin"/>, <see cref="XMax"/>]; <see cref="RSquared"/> is the share of y's variance the line explains.
/// </summary>
public sealed record LinearFit(double Intercept, double Slope, double RSquared, int Samples, double XMin, double XMax);

/// <summary>
/// How much cpu a unit of load costs: <c>cpu_cores ~ a + b·load</c>, fitted by Huber M-estimation with iteratively
/// reweighted least squares (Huber, "Robust estimation of a location parameter", Ann. Math. Statist. 1964; tuning k = 1.345
/// gives 95% efficiency under Gaussian noise), so that the spikes and incidents in production metrics do not tilt the line.
/// </summary>
public static class CapacityRegression
{
    /// <summary>Huber's tuning constant, in robust standard deviations.</summary>
    public const double HuberK = 1.345;

    /// <summary>
    /// Fits y on x over the pairs where both are finite. Null when fewer than <paramref name="minSamples"/> pairs remain or x
    /// does not vary (a flat load says nothing about the cost of more load).
    /// </summary>
    public static LinearFit? Fit(ReadOnlySpan<double> x, ReadOnlySpan<double> y, int minSamples = 3, int iterations = 20)
    {
        if (x.Length != y.Length)
        {
            throw new ArgumentException("x and y differ in length.", nameof(y));
        }
        var xs = new List<double>(x.Length);
        var ys = new List<double>(x.Length);
        for (int i = 0; i < x.Length; i++)
        {
            if (double.IsFinite(x[i]) && double.IsFinite(y[i]))
            {
                xs.Add(x[i]);
                ys.Add(y[i]);
            }
        }
        int n = xs.Count;
        if (n < Math.Max(3, minSamples))
        {
            return null;
        }
        double xMin = xs.Min(), xMax = xs.Max();
        if (xMax - xMin <= 1e-12 * Math.Max(1, Math.Abs(xMax)))
        {
            return null;
        }

        var w = new double[n];
        Array.Fill(w, 1.0);
        var (a, b) = WeightedLeastSquares(xs, ys, w);
        var residuals = new double[n];
        for (int it = 0; it < iterations; it++)
        {
            for (int i = 0; i < n; i++)
            {
                residuals[i] = ys[i] - a - (b * xs[i]);
            }
            // Robust scale: the MAD of the residuals, rescaled to a standard deviation under Gaussian noise.
            double scale = 1.4826 * MedianAbs(residuals);
            if (scale <= 1e-12)
            {
                break;
            }
            double cut = HuberK * scale;
            for (int i = 0; i < n; i++)
            {
                double r = Math.Abs(residuals[i]);
                w[i] = r <= cut ? 1 : cut / r;
            }
            var (a2, b2) = WeightedLeastSquares(xs, ys, w);
            bool converged = Math.Abs(a2 - a) <= 1e-10 * (1 + Math.Abs(a)) && Math.Abs(b2 - b) <= 1e-10 * (1 + Math.Abs(b));
            (a, b) = (a2, b2);
            if (converged)
            {
                break;
            }
        }

        double mean = ys.Average(), total = 0, unexplained = 0;
        for (int i = 0; i < n; i++)
        {
            total += (ys[i] - mean) * (ys[i] - mean);
            double r = ys[i] - a - (b * xs[i]);
            unexplained += r * r;
        }
        double r2 = total <= 0 ? 0 : Math.Max(0, 1 - (unexplained / total));
        return new LinearFit(a, b, r2, n, xMin, xMax);
    }

    private static (double A, double B) WeightedLeastSquares(List<double> x, List<double> y, double[] w)
    {
        double sw = 0, sx = 0, sy = 0;
        for (int i = 0; i < x.Count; i++)
        {
            sw += w[i];
            sx += w[i] * x[i];
            sy += w[i] * y[i];
        }
        double mx = sx / sw, my = sy / sw, sxx = 0, sxy = 0;
        for (int i = 0; i < x.Count; i++)
        {
            double dx = x[i] - mx;
            sxx += w[i] * dx * dx;
            sxy += w[i] * dx * (y[i] - my);
        }
        double b = sxx <= 0 ? 0 : sxy / sxx;
        return (my - (b * mx), b);
    }

    private static double MedianAbs(double[] r)
    {
        var a = new double[r.Length];
        for (int i = 0; i < r.Length; i++)
        {
            a[i] = Math.Abs(r[i]);
        }
        Array.Sort(a);
        int m = a.Length / 2;
        return a.Length % 2 == 1 ? a[m] : 0.5 * (a[m - 1] + a[m]);
    }
}
