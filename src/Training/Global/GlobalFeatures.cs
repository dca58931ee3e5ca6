using Forecaster.Training.Series;

namespace Forecaster.Training.Global;

/// <summary>
/// The fleet-wide model's features for one (series, origin, horizon) triple, in the direct multi-horizon strategy with the
/// horizon as a feature (Taieb &amp; Hyndman, "Recursive and direct multi-step forecasting", 2012; the M5 winners' LightGBM
/// set-up): every lag is relative to the origin, so one model serves all 48 steps without feeding its own errors back as a
/// recursive model would, and without the 48 models of a per-horizon direct strategy. Values are centred on the series' mean
/// over the week before the origin and divided by its mean absolute day-to-day change there (the MASE scale), so that series
/// of any size share one model and the squared loss weighs each series' errors as MASE does; the label is scaled the same way.
/// </summary>
public static class GlobalFeatures
{
    /// <summary>Features per row.</summary>
    public const int Count = 21;

    /// <summary>Longest lag read (one week).</summary>
    public const int Week = 168;

    /// <summary>How a series is normalised at one origin: value ↦ (value − Level) / Scale.</summary>
    public readonly record struct Normal(double Level, double Scale)
    {
        /// <summary>The normalised value.</summary>
        public float Apply(double v) => (float)((v - Level) / Scale);

        /// <summary>Back to the series' units.</summary>
        public double Invert(double z) => Level + (z * Scale);
    }

    /// <summary>
    /// The normalisation of <paramref name="x"/> at origin <paramref name="o"/> (the index of the first forecast step): the mean
    /// over the week before it and the mean |x_t − x_{t−24}| there (the step-to-step change when under two days are known),
    /// as much as there is; scale 1 when that is zero or nothing is known.
    /// </summary>
    public static Normal Normalisation(ReadOnlySpan<double> x, int o)
    {
        int from = Math.Max(0, o - Week);
        double sum = 0, absSum = 0, diff = 0;
        int count = 0, diffs = 0;
        int lag = o - from > 24 ? 24 : 1;
        for (int t = from; t < o; t++)
        {
            if (double.IsFinite(x[t]))
            {
                sum += x[t];
                absSum += Math.Abs(x[t]);
                count++;
                if (t - lag >= from && double.IsFinite(x[t - lag]))
                {
                    diff += Math.Abs(x[t] - x[t - lag]);
                    diffs++;
                }
            }
        }
        if (count == 0)
        {
            return new Normal(0, 1);
        }
        double level = sum / count;
        // A scale floor of 0.1% of the level keeps a flat stretch from blowing the features up.
        double scale = Math.Max(diffs == 0 ? 0 : diff / diffs, 1e-3 * absSum / count);
        return new Normal(level, scale > 0 ? scale : 1);
    }

    /// <summary>
    /// Writes the features of the step <paramref name="h"/> (1-based) after origin <paramref name="o"/> of <paramref name="x"/>
    /// (points before <paramref name="o"/> only) into <paramref name="row"/>; a lag before the series' start is NaN, which
    /// LightGBM treats as missing. <paramref name="n"/> comes from <see cref="Normalisation"/>.
    /// </summary>
    public static void Write(ReadOnlySpan<double> x, int o, int h, Normal n, TimeGrid grid, DateOnly[]? events, Span<float> row)
    {
        WriteOrigin(x, o, n, row);
        WriteStep(x, o, h, n, grid, events, row);
    }

    /// <summary>
    /// The features that depend on the origin alone (the last values, the last day's and week's mean and max, the noise
    /// level): the same for every step of one origin, so a forecast writes them once and then <see cref="WriteStep"/> per step.
    /// </summary>
    public static void WriteOrigin(ReadOnlySpan<double> x, int o, Normal n, Span<float> row)
    {
        row[1] = Lag(x, o, 1, n);
        row[2] = Lag(x, o, 2, n);
        row[3] = Lag(x, o, 3, n);
        row[4] = Lag(x, o, 24, n);
        row[5] = Lag(x, o, 48, n);
        row[6] = Lag(x, o, Week, n);
        (row[7], row[8]) = MeanMax(x, o, 24, n);
        (row[9], row[10]) = MeanMax(x, o, Week, n);
        // The scale relative to the level: how noisy the series is, which decides how far to trust its last values.
        row[20] = n.Level != 0 ? (float)(n.Scale / Math.Abs(n.Level)) : float.NaN;
    }

    /// <summary>The features of step <paramref name="h"/> (1-based) after origin <paramref name="o"/>; the rest of the row is <see cref="WriteOrigin"/>'s.</summary>
    public static void WriteStep(ReadOnlySpan<double> x, int o, int h, Normal n, TimeGrid grid, DateOnly[]? events, Span<float> row)
    {
        int target = o + h - 1;
        row[0] = h;
        var at = grid.At(target).UtcDateTime;
        row[11] = at.Hour;
        row[12] = (int)at.DayOfWeek;
        row[13] = grid.StepOfWeek(target);
        row[14] = events is { Length: > 0 } && Array.BinarySearch(events, DateOnly.FromDateTime(at)) >= 0 ? 1 : 0;
        // The same hour on the last days, and in the last week, that the origin has seen: seasonal-naive forecasts of this step.
        int sameHour = target - (24 * ((h + 23) / 24));
        row[15] = Lag(x, o, o - sameHour, n);
        row[16] = Lag(x, o, o - (target - Week), n);
        row[17] = Lag(x, o, o - (sameHour - 24), n);
        row[18] = Lag(x, o, o - (sameHour - 48), n);
        // The mean of that hour over the last week: the daily profile's value for the step, less noisy than any one day.
        double sum = 0;
        int count = 0;
        for (int t = sameHour; t >= 0 && t > o - Week - 1; t -= 24)
        {
            sum += x[t];
            count++;
        }
        row[19] = count == 0 ? float.NaN : n.Apply(sum / count);
    }

    // The normalised x[o − k], NaN before the start.
    private static float Lag(ReadOnlySpan<double> x, int o, int k, Normal n) =>
        o - k >= 0 && k >= 1 ? n.Apply(x[o - k]) : float.NaN;

    private static (float Mean, float Max) MeanMax(ReadOnlySpan<double> x, int o, int window, Normal n)
    {
        double sum = 0, max = double.NegativeInfinity;
        int count = 0;
        for (int t = Math.Max(0, o - window); t < o; t++)
        {
            if (double.IsFinite(x[t]))
            {
                sum += x[t];
                max = Math.Max(max, x[t]);
                count++;
            }
        }
        return count == 0 ? (float.NaN, float.NaN) : (n.Apply(sum / count), n.Apply(max));
    }
}
