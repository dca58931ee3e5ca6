namespace Forecaster.Training.Series;

/// <summary>A level shift found in a series: from point <see cref="At"/> on the level is <see cref="Ratio"/> times (or <see cref="Delta"/> above) what it was.</summary>
public sealed record LevelShiftFound(int At, double Before, double After, bool Multiplicative)
{
    /// <summary>New level over old.</summary>
    public double Ratio => After / Before;

    /// <summary>New level minus old.</summary>
    public double Delta => After - Before;
}

/// <summary>
/// Detects a recent level shift with a median test on daily medians (a day's median is free of the daily cycle), then places
/// the break within its day by the seasonal-difference criterion, and re-levels the points before it so that every model fits
/// the new level (cf. the robust level-shift tests of Fried, "Robust level shift detection", 2004; and the "re-level the
/// history" treatment of intervention analysis, Box &amp; Tiao, JASA 1975).
/// </summary>
public static class LevelShift
{
    /// <summary>
    /// Looks for a shift starting within the last <paramref name="days"/> whole days of <paramref name="x"/> (hourly, period
    /// <paramref name="m"/>), with at least two whole days after it (one odd day is not a new level) and with three days before it. A shift is the most recent split
    /// where the median of the days after differs from the median of the days before by more than <paramref name="k"/> robust
    /// standard deviations of the day-to-day spread before, and by at least <paramref name="minRelative"/> of the old level, and every day after it is at least half-way there.
    /// With weekly seasonality each day is compared with the same weekday a week earlier.
    /// </summary>
    public static LevelShiftFound? Detect(ReadOnlySpan<double> x, int m, bool weekly, int days = 7, double k = 5, double minRelative = 0.5)
    {
        if (m < 2)
        {
            return null;
        }
        int whole = x.Length / m, offset = x.Length - (whole * m);
        // d[0] is the most recent whole day's median.
        var medians = new double[whole];
        var buffer = new double[m];
        for (int d = 0; d < whole; d++)
        {
            x.Slice(offset + ((whole - 1 - d) * m), m).CopyTo(buffer);
            medians[d] = Median(buffer);
        }
        int lag = weekly ? 7 : 0;
        for (int j = 2; j <= days && j + 1 + 3 + lag <= whole; j++)
        {
            // After: days 0..j-1; the straddling day j is left out; before: days j+1 .. j+days (as many as exist).
            int beforeCount = Math.Min(days, whole - j - 1 - lag);
            if (beforeCount < 3)
            {
                break;
            }
            double after = Median(Level(medians, 0, j, lag));
            double before = Median(Level(medians, j + 1, beforeCount, lag));
            var spread = Level(medians, j + 1, beforeCount, lag);
            double centre = Median([.. spread]);
            double mad = 1.4826 * Median(spread.Select(v => Math.Abs(v - centre)).ToArray());
            double oldLevel = Median(medians.AsSpan(j + 1, beforeCount).ToArray());
            double change = after - before;
            // Persistent: every day after the split is at least half-way to the new level, on the same side.
            var afterDays = Level(medians, 0, j, lag);
            bool persistent = afterDays.All(v => Math.Sign(v - before) == Math.Sign(change) && Math.Abs(v - before) >= 0.5 * Math.Abs(change));
            if (persistent && Math.Abs(change) > k * Math.Max(mad, 1e-9 * Math.Abs(oldLevel)) && Math.Abs(change) >= minRelative * Math.Abs(oldLevel))
            {
                double newLevel = oldLevel + change;
                int at = Place(x, Math.Max(m, x.Length - ((days + 1) * m)), x.Length - m, m);
                bool multiplicative = oldLevel > 0 && newLevel > 0 && Min(x) >= 0;
                return new LevelShiftFound(at, oldLevel, newLevel, multiplicative);
            }
        }
        return null;
    }

    /// <summary>Moves the points before the shift to the new level (scaled when multiplicative, else shifted). Returns a copy.</summary>
    public static double[] Relevel(ReadOnlySpan<double> x, LevelShiftFound shift)
    {
        var y = x.ToArray();
        for (int t = 0; t < shift.At; t++)
        {
            y[t] = shift.Multiplicative ? y[t] * shift.Ratio : y[t] + shift.Delta;
        }
        return y;
    }

    // Day medians (or their differences with the same weekday a week earlier) of days from..from+count-1.
    private static double[] Level(double[] medians, int from, int count, int lag)
    {
        var v = new double[count];
        for (int i = 0; i < count; i++)
        {
            v[i] = lag == 0 ? medians[from + i] : medians[from + i] - medians[from + i + lag];
        }
        return v;
    }

    // The break within [from, to]: each point before it like the day before, each point from it on like the day after
    // (both comparisons stay on one side of the break), with prefix sums so every candidate costs O(1).
    private static int Place(ReadOnlySpan<double> x, int from, int to, int m)
    {
        int count = to - from;
        var back = new double[count + 1];
        var ahead = new double[count + 1];
        for (int i = 0; i < count; i++)
        {
            int t = from + i;
            back[i + 1] = back[i] + Math.Abs(x[t] - x[t - m]);
            ahead[i + 1] = ahead[i] + Math.Abs(x[t] - x[t + m]);
        }
        int best = to;
        double bestCost = double.PositiveInfinity;
        for (int i = 0; i <= count; i++)
        {
            double cost = back[i] + (ahead[count] - ahead[i]);
            if (cost < bestCost)
            {
                (best, bestCost) = (from + i, cost);
            }
        }
        return best;
    }

    private static double Min(ReadOnlySpan<double> x)
    {
        double min = double.PositiveInfinity;
        foreach (var v in x)
        {
            min = Math.Min(min, v);
        }
        return min;
    }

    private static double Median(double[] v)
    {
        if (v.Length == 0)
        {
            return double.NaN;
        }
        var (lower, upper) = OrderStatistics.Middle(v);
        return v.Length % 2 == 1 ? upper : (lower + upper) / 2;
    }
}
