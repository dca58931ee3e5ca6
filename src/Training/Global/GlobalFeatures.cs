using Forecaster.Training.Series;

namespace Forecaster.Training.Global;

/// <summary>
/// The fleet-wide model's features for one (series, origin, horizon) triple, in the direct multi-horizon strategy with the
/// horizon as a feature (Taieb &amp; Hyndman, "Recursive and direct multi-step forecasting", 2012; the M5 winners' LightGBM
/// set-up): every lag is relative to the origin, so one model serves all 48 steps without feeding its own errors back as a
/// recursive model would, and without the 48 models of a per-horizon direct strategy. Values are divided by the series'
/// mean over the week before the origin, so series of any scale share one model (and the label is scaled the same way).
/// </summary>
public static class GlobalFeatures
{
    /// <summary>Features per row.</summary>
    public const int Count = 18;

    /// <summary>Longest lag read (one week).</summary>
    public const int Week = 168;

    /// <summary>
    /// The scale of <paramref name="x"/> at origin <paramref name="o"/> (the index of the first forecast step): the mean of
    /// |x| over the week before it (as much as there is); 1 when that is zero or nothing is known.
    /// </summary>
    public static double Scale(ReadOnlySpan<double> x, int o)
    {
        double sum = 0;
        int count = 0;
        for (int t = Math.Max(0, o - Week); t < o; t++)
        {
            if (double.IsFinite(x[t]))
            {
                sum += Math.Abs(x[t]);
                count++;
            }
        }
        return count == 0 || sum <= 0 ? 1 : sum / count;
    }

    /// <summary>
    /// Writes the features of the step <paramref name="h"/> (1-based) after origin <paramref name="o"/> of <paramref name="x"/>
    /// (points before <paramref name="o"/> only) into <paramref name="row"/>; a lag before the series' start is NaN, which
    /// LightGBM treats as missing. <paramref name="scale"/> comes from <see cref="Scale"/>.
    /// </summary>
    public static void Write(ReadOnlySpan<double> x, int o, int h, double scale, TimeGrid grid, DateOnly[]? events, Span<float> row)
    {
        int target = o + h - 1;
        row[0] = h;
        row[1] = Lag(x, o, 1, scale);
        row[2] = Lag(x, o, 2, scale);
        row[3] = Lag(x, o, 3, scale);
        row[4] = Lag(x, o, 24, scale);
        row[5] = Lag(x, o, 48, scale);
        row[6] = Lag(x, o, Week, scale);
        (row[7], row[8]) = MeanMax(x, o, 24, scale);
        (row[9], row[10]) = MeanMax(x, o, Week, scale);
        var at = grid.At(target).UtcDateTime;
        row[11] = at.Hour;
        row[12] = (int)at.DayOfWeek;
        row[13] = grid.StepOfWeek(target);
        row[14] = events is { Length: > 0 } && Array.BinarySearch(events, DateOnly.FromDateTime(at)) >= 0 ? 1 : 0;
        // The same hour on the last day, and in the last week, that the origin has seen: the seasonal-naive forecasts of this step.
        row[15] = Lag(x, o, o - (target - (24 * ((h + 23) / 24))), scale);
        row[16] = Lag(x, o, o - (target - Week), scale);
        // Where the last day stands against the last week: a recent level shift in one number.
        row[17] = row[9] > 0 ? row[7] / row[9] : float.NaN;
    }

    // x[o − k] / scale, NaN before the start.
    private static float Lag(ReadOnlySpan<double> x, int o, int k, double scale) =>
        o - k >= 0 && k >= 1 ? (float)(x[o - k] / scale) : float.NaN;

    private static (float Mean, float Max) MeanMax(ReadOnlySpan<double> x, int o, int window, double scale)
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
        return count == 0 ? (float.NaN, float.NaN) : ((float)(sum / count / scale), (float)(max / scale));
    }
}
