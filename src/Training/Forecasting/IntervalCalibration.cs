using MathNet.Numerics.Distributions;

namespace Forecaster.Training.Forecasting;

/// <summary>
/// How prediction intervals are formed: half-width = multiplier(level) × scale_h. With <see cref="Source"/> "backtest" the
/// scales are the backtest's error spread per horizon step (smoothed, non-decreasing) and the multipliers are split-conformal
/// quantiles of the errors divided by those scales (Lei et al., JASA 2018); with "theory" the scales are the model's own
/// standard errors and the multipliers normal quantiles.
/// </summary>
public sealed record IntervalCalibration(string Source, double[]? StepScale, double[] Levels, double[] Multipliers, int Samples)
{
    private static readonly double[] s_levels = [0.5, 0.8, 0.9, 0.95, 0.98, 0.99];

    /// <summary>Intervals from the model's standard errors and the normal distribution.</summary>
    public static IntervalCalibration Theory { get; } = FromTheory(1.0);

    /// <summary>Intervals from the model's standard errors, widened by <paramref name="inflation"/>, and the normal distribution.</summary>
    public static IntervalCalibration FromTheory(double inflation) =>
        new("theory", null, s_levels, s_levels.Select(level => inflation * NormalMultiplier(level)).ToArray(), 0);

    /// <summary>Half-widths for each step, from the model's standard errors <paramref name="se"/> when no backtest scale applies.</summary>
    public double[] HalfWidths(ReadOnlySpan<double> se, double level)
    {
        double multiplier = Multiplier(level);
        var half = new double[se.Length];
        for (int h = 0; h < se.Length; h++)
        {
            half[h] = multiplier * Scale(h, se);
        }
        return half;
    }

    /// <summary>The multiplier at <paramref name="level"/>, interpolated in the table and extrapolated with normal quantiles.</summary>
    public double Multiplier(double level)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(level, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(level, 1);
        if (level <= Levels[0])
        {
            return Multipliers[0] * NormalMultiplier(level) / NormalMultiplier(Levels[0]);
        }
        if (level >= Levels[^1])
        {
            return Multipliers[^1] * NormalMultiplier(level) / NormalMultiplier(Levels[^1]);
        }
        int i = 1;
        while (Levels[i] < level)
        {
            i++;
        }
        double f = (level - Levels[i - 1]) / (Levels[i] - Levels[i - 1]);
        return Multipliers[i - 1] + (f * (Multipliers[i] - Multipliers[i - 1]));
    }

    /// <summary>
    /// Calibrates from backtest errors e[origin][step] (NaN where the actual was missing): per-step root mean square pooled over
    /// ±<paramref name="smoothing"/> steps and made non-decreasing, then conformal quantiles of |e| / scale at the table's levels.
    /// </summary>
    /// <remarks>
    /// <paramref name="inflation"/> widens the scales: the errors of the model the backtest chose understate its future errors,
    /// since it was chosen for being small on exactly those origins (selection optimism; Tashman, IJF 2000).
    /// </remarks>
    public static IntervalCalibration FromBacktest(IReadOnlyList<double[]> errors, double inflation = 1.0, int smoothing = 3)
    {
        int horizon = errors[0].Length;
        var scale = new double[horizon];
        for (int h = 0; h < horizon; h++)
        {
            double ss = 0;
            int count = 0;
            for (int k = Math.Max(0, h - smoothing); k <= Math.Min(horizon - 1, h + smoothing); k++)
            {
                foreach (var e in errors)
                {
                    if (!double.IsNaN(e[k]))
                    {
                        ss += e[k] * e[k];
                        count++;
                    }
                }
            }
            scale[h] = Math.Max(count == 0 ? 0 : Math.Sqrt(ss / count), h > 0 ? scale[h - 1] : 0);
        }
        var z = new List<double>();
        foreach (var e in errors)
        {
            for (int h = 0; h < horizon; h++)
            {
                if (!double.IsNaN(e[h]) && scale[h] > 0)
                {
                    z.Add(Math.Abs(e[h]) / scale[h]);
                }
            }
        }
        z.Sort();
        var multipliers = s_levels.Select(level => ConformalQuantile(z, level)).ToArray();
        return new IntervalCalibration("backtest", scale.Select(v => v * inflation).ToArray(), s_levels, multipliers, z.Count);
    }

    /// <summary>The normal quantile giving a central interval of probability <paramref name="level"/>.</summary>
    public static double NormalMultiplier(double level) => Normal.InvCDF(0, 1, 0.5 + (level / 2));

    private double Scale(int h, ReadOnlySpan<double> se)
    {
        if (StepScale is null)
        {
            return se[h];
        }
        if (h < StepScale.Length)
        {
            return StepScale[h];
        }
        // Beyond the backtest horizon let the spread keep growing like a random walk's.
        return StepScale[^1] * Math.Sqrt((h + 1.0) / StepScale.Length);
    }

    // The ⌈(n + 1)·level⌉-th smallest score: covers at least `level` of exchangeable new errors.
    private static double ConformalQuantile(List<double> sorted, double level)
    {
        if (sorted.Count == 0)
        {
            return NormalMultiplier(level);
        }
        int rank = (int)Math.Ceiling((sorted.Count + 1) * level);
        return rank <= sorted.Count
            ? sorted[rank - 1]
            : sorted[^1] * NormalMultiplier(level) / NormalMultiplier((double)sorted.Count / (sorted.Count + 1));
    }
}
