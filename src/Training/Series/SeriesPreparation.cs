namespace Forecaster.Training.Series;

/// <summary>Cleaning applied before fitting: gap imputation, outlier clipping, seasonality detection.</summary>
public static class SeriesPreparation
{
    /// <summary>
    /// Fills NaN gaps so that time is never compressed: the seasonal profile (mean by phase of <paramref name="period"/>)
    /// is removed, the remainder is interpolated linearly (edges held at the nearest value), and the profile added back.
    /// </summary>
    public static double[] Impute(ReadOnlySpan<double> y, int period)
    {
        var x = y.ToArray();
        if (!x.Any(double.IsNaN))
        {
            return x;
        }
        var profile = PhaseMeans(x, period);
        for (int t = 0; t < x.Length; t++)
        {
            x[t] -= profile[t % profile.Length];
        }
        int prev = -1;
        for (int t = 0; t <= x.Length; t++)
        {
            if (t < x.Length && double.IsNaN(x[t]))
            {
                continue;
            }
            // Fill (prev, t): between two known points linearly, at the edges with the nearest known value.
            for (int g = prev + 1; g < t; g++)
            {
                x[g] = prev < 0 ? x[t] : t == x.Length ? x[prev] : x[prev] + ((x[t] - x[prev]) * (g - prev) / (t - prev));
            }
            prev = t;
        }
        for (int t = 0; t < x.Length; t++)
        {
            x[t] += profile[t % profile.Length];
        }
        return x;
    }

    /// <summary>
    /// Clips points further than <paramref name="k"/> robust standard deviations (1.4826·MAD) from a local level (moving median
    /// over one period, which a spike cannot drag along) plus the seasonal profile (median by phase), so that one-off spikes do not teach the models a pattern. Returns the number of clipped points.
    /// </summary>
    public static int ClipOutliers(Span<double> x, int period, double k = 5.0)
    {
        if (period < 2 || x.Length < 3 * period)
        {
            return 0;
        }
        var level = CenteredMovingMedian(x, period);
        var detrended = new double[x.Length];
        for (int t = 0; t < x.Length; t++)
        {
            detrended[t] = x[t] - level[t];
        }
        var profile = PhaseMedians(detrended, period);
        var fit = new double[x.Length];
        var residual = new double[x.Length];
        for (int t = 0; t < x.Length; t++)
        {
            fit[t] = level[t] + profile[t % period];
            residual[t] = Math.Abs(x[t] - fit[t]);
        }
        double scale = 1.4826 * Median(residual);
        if (scale <= 0)
        {
            return 0;
        }
        int clipped = 0;
        for (int t = 0; t < x.Length; t++)
        {
            double lo = fit[t] - (k * scale), hi = fit[t] + (k * scale);
            if (x[t] < lo || x[t] > hi)
            {
                x[t] = Math.Clamp(x[t], lo, hi);
                clipped++;
            }
        }
        return clipped;
    }

    /// <summary>
    /// Rescales isolated anomalous days (a holiday without a calendar, a one-day outage) to their neighbours' level, keeping the
    /// day's shape; returns how many. Days are blocks of <paramref name="period"/> points counted back from the end. A day is
    /// anomalous when its mean differs in the same direction from every available one of the day before, the day after (which
    /// must be known: the last day could be a level shift's start, which <see cref="LevelShift"/> handles) and the same day a
    /// week before and after (at least three of them), each by more than max(ln 1.5, 5 robust standard deviations of the
    /// series' week-on-week log ratios). Point clipping misses such a day (its moving median follows it), and a model with a
    /// weekly lag would otherwise repeat it a week later: the demo fleet's holiday dip came back as forecasts 55% low on
    /// the same weekday after it.
    /// </summary>
    public static int RescaleAnomalousDays(Span<double> x, int period)
    {
        var days = x.Length / period;
        if (period < 2 || days < 9)
        {
            return 0;
        }
        var offset = x.Length - (days * period);
        var mean = new double[days];
        for (int d = 0; d < days; d++)
        {
            double sum = 0;
            foreach (var v in x.Slice(offset + (d * period), period))
            {
                sum += v;
            }
            mean[d] = sum / period;
            if (!(mean[d] > 0))
            {
                return 0;
            }
        }
        var weekly = new double[days - 7];
        for (int d = 7; d < days; d++)
        {
            weekly[d - 7] = Math.Log(mean[d] / mean[d - 7]);
        }
        var centre = Median(weekly);
        var spread = 1.4826 * Median(weekly.Select(w => Math.Abs(w - centre)).ToArray());
        var threshold = Math.Max(Math.Log(1.5), 5 * spread);
        var rescaled = 0;
        Span<int> neighbours = stackalloc int[4];
        for (int d = 1; d < days - 1; d++)
        {
            int k = 0, up = 0, down = 0;
            foreach (var o in (ReadOnlySpan<int>)[d - 1, d + 1, d - 7, d + 7])
            {
                if (o >= 0 && o < days)
                {
                    neighbours[k++] = o;
                    var r = Math.Log(mean[d] / mean[o]);
                    up += r > threshold ? 1 : 0;
                    down += r < -threshold ? 1 : 0;
                }
            }
            if (k >= 3 && (up == k || down == k))
            {
                var level = new double[k];
                for (int i = 0; i < k; i++)
                {
                    level[i] = mean[neighbours[i]];
                }
                var factor = Median(level) / mean[d];
                foreach (ref var v in x.Slice(offset + (d * period), period))
                {
                    v *= factor;
                }
                mean[d] *= factor;
                rescaled++;
            }
        }
        return rescaled;
    }

    /// <summary>
    /// The seasonal periods present among <paramref name="daily"/> and <paramref name="weekly"/>, by the autocorrelation of the
    /// series less its centred moving average (which removes trend but keeps cycles): daily when r(daily) &gt; 0.3, weekly
    /// when at least three weeks are known and r(weekly) exceeds r(daily) by 0.1 (a week that differs from its days).
    /// </summary>
    public static Seasonality DetectSeasonality(ReadOnlySpan<double> x, int daily, int weekly)
    {
        bool hasDaily = false, hasWeekly = false;
        if (daily >= 2 && x.Length >= 3 * daily)
        {
            hasDaily = Autocorrelation(Detrend(x, daily), daily) > 0.3;
        }
        if (weekly >= 2 && x.Length >= 3 * weekly)
        {
            var r = Detrend(x, weekly);
            double rWeek = Autocorrelation(r, weekly);
            hasWeekly = rWeek > 0.3 && rWeek > Autocorrelation(r, daily) + 0.1;
        }
        return new Seasonality(hasDaily ? daily : 0, hasWeekly ? weekly : 0);
    }

    /// <summary>Sample autocorrelation at <paramref name="lag"/>.</summary>
    public static double Autocorrelation(ReadOnlySpan<double> x, int lag)
    {
        if (lag >= x.Length)
        {
            return 0;
        }
        double mean = System.Numerics.Tensors.TensorPrimitives.Sum(x) / x.Length;
        double num = 0, den = 0;
        for (int t = 0; t < x.Length; t++)
        {
            double d = x[t] - mean;
            den += d * d;
            if (t >= lag)
            {
                num += d * (x[t - lag] - mean);
            }
        }
        return den == 0 ? 0 : num / den;
    }

    /// <summary>Centred moving average over <paramref name="window"/> points, shortened at the edges.</summary>
    public static double[] CenteredMovingAverage(ReadOnlySpan<double> x, int window)
    {
        var prefix = new double[x.Length + 1];
        for (int t = 0; t < x.Length; t++)
        {
            prefix[t + 1] = prefix[t] + x[t];
        }
        var m = new double[x.Length];
        int half = window / 2;
        for (int t = 0; t < x.Length; t++)
        {
            int a = Math.Max(0, t - half), b = Math.Min(x.Length, t - half + window);
            if (b - a < window)
            {
                // Near the edges keep a full window inside the series rather than a lopsided short one.
                a = Math.Max(0, Math.Min(a, x.Length - window));
                b = Math.Min(x.Length, a + window);
            }
            m[t] = (prefix[b] - prefix[a]) / (b - a);
        }
        return m;
    }

    /// <summary>Centred moving median over <paramref name="window"/> points, the window kept inside the series at the edges.</summary>
    /// <remarks>
    /// The window's values are kept sorted as it slides one step at a time (the outgoing value removed, the incoming one
    /// inserted, O(window) a step instead of a sort), so the medians are those of sorting each window.
    /// </remarks>
    public static double[] CenteredMovingMedian(ReadOnlySpan<double> x, int window)
    {
        window = Math.Min(window, x.Length);
        var m = new double[x.Length];
        if (window == 0)
        {
            return m;
        }
        var sorted = new double[window];
        int start = -1;
        for (int t = 0; t < x.Length; t++)
        {
            int a = Math.Clamp(t - (window / 2), 0, x.Length - window);
            if (start < 0)
            {
                x.Slice(a, window).CopyTo(sorted);
                Array.Sort(sorted);
            }
            else if (a != start)
            {
                // The start moves by one step at most: x[start] leaves and x[start + window] enters.
                Slide(sorted, x[start], x[start + window]);
            }
            start = a;
            m[t] = window % 2 == 1 ? sorted[window / 2] : 0.5 * (sorted[(window / 2) - 1] + sorted[window / 2]);
        }
        return m;
    }

    // Replaces one occurrence of `leaving` in the sorted array by `entering`, keeping it sorted.
    private static void Slide(double[] sorted, double leaving, double entering)
    {
        int i = Array.BinarySearch(sorted, leaving);
        if (i < 0 || double.IsNaN(leaving) || double.IsNaN(entering))
        {
            // NaN (never in imputed data) is not found by the search (it sorts first): replace and sort the window instead.
            sorted[Math.Max(i, 0)] = entering;
            Array.Sort(sorted);
            return;
        }
        if (entering >= leaving)
        {
            while (i + 1 < sorted.Length && sorted[i + 1] < entering)
            {
                sorted[i] = sorted[i + 1];
                i++;
            }
        }
        else
        {
            while (i > 0 && sorted[i - 1] > entering)
            {
                sorted[i] = sorted[i - 1];
                i--;
            }
        }
        sorted[i] = entering;
    }

    internal static double Median(double[] values)
    {
        var copy = (double[])values.Clone();
        Array.Sort(copy);
        int n = copy.Length;
        return n == 0 ? 0 : n % 2 == 1 ? copy[n / 2] : 0.5 * (copy[(n / 2) - 1] + copy[n / 2]);
    }

    private static double[] Detrend(ReadOnlySpan<double> x, int window)
    {
        var m = CenteredMovingAverage(x, window);
        var r = new double[x.Length];
        for (int t = 0; t < x.Length; t++)
        {
            r[t] = x[t] - m[t];
        }
        return r;
    }

    private static double[] PhaseMeans(double[] x, int period)
    {
        if (period < 2 || x.Length < 2 * period)
        {
            return [0.0];
        }
        var sums = new double[period];
        var counts = new int[period];
        double total = 0;
        int known = 0;
        for (int t = 0; t < x.Length; t++)
        {
            if (!double.IsNaN(x[t]))
            {
                sums[t % period] += x[t];
                counts[t % period]++;
                total += x[t];
                known++;
            }
        }
        double overall = known == 0 ? 0 : total / known;
        var profile = new double[period];
        for (int p = 0; p < period; p++)
        {
            profile[p] = counts[p] == 0 ? 0 : (sums[p] / counts[p]) - overall;
        }
        return profile;
    }

    private static double[] PhaseMedians(double[] x, int period)
    {
        var profile = new double[period];
        var bucket = new double[(x.Length + period - 1) / period];
        for (int p = 0; p < period; p++)
        {
            int c = 0;
            for (int t = p; t < x.Length; t += period)
            {
                bucket[c++] = x[t];
            }
            profile[p] = Median(bucket[..c]);
        }
        return profile;
    }
}

/// <summary>Detected seasonal periods in steps; 0 means absent.</summary>
public sealed record Seasonality(int Daily, int Weekly)
{
    /// <summary>True when neither cycle was found.</summary>
    public bool None => Daily == 0 && Weekly == 0;
}
