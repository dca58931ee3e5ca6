namespace Forecaster.Training.Forecasting;

/// <summary>
/// How far the actuals rose above the chosen model's backtest forecasts, one-sided, in units of each step's own band margin
/// (the interval's upper half-width at the training level, as the calibration would have drawn it from that origin): what a
/// policy that states its risk plans on (the planner's <c>UpperTail</c>). The band is symmetric and calibrated on |error|, so a
/// fall counts as much as a rise, and its normal extrapolation from 95% to 0.995 is not every series' tail.
/// </summary>
/// <remarks>
/// The error at step k has its quantile p at margin_k × <see cref="StepScale"/>[k] × the table's quantile at p. StepScale is the
/// rises' root mean square at step k (zero for a fall) relative to all steps', pooled over steps k − 1..k + 1 and the same
/// hour of the other day (the backtest's origins are whole days apart, so a step is an hour of day), and shrunk towards 1 with
/// <see cref="ShrinkCount"/> pseudo-errors, since each step has only origins × 6 errors. The table holds split-conformal
/// quantiles of error / (margin × StepScale) at <see cref="TableLevels"/>, up to the highest level the errors can show
/// (⌈(n + 1)·p⌉ ≤ n).
/// </remarks>
/// <param name="BandLevel">The central level of the band whose margins are the units.</param>
public sealed record UpperErrors(double BandLevel, double[] StepScale, double[] Levels, double[] Quantiles, int Samples)
{
    /// <summary>Levels of the table; 0.995 needs 199 errors (the default backtest has 6 × 48 = 288).</summary>
    public static readonly double[] TableLevels = [0.5, 0.75, 0.9, 0.95, 0.975, 0.99, 0.995];

    /// <summary>Fewest backtest errors for a table: below it the planner extrapolates the band as before.</summary>
    public const int MinSamples = 100;

    /// <summary>Pseudo-errors at the all-steps scale added to each step's pool (a step pools up to 36 errors over 6 origins).</summary>
    public const double ShrinkCount = 24;

    /// <summary>
    /// From the backtest errors e[origin][step] (actual − point; NaN where the actual was missing) and the band's upper margins
    /// half[origin][step] of the band at <paramref name="bandLevel"/> at the same origins; <paramref name="period"/> is the steps in a day (24 hourly), or null when the
    /// series has no daily period (steps are then pooled with their neighbours only). Null when there are too few errors.
    /// </summary>
    public static UpperErrors? FromBacktest(IReadOnlyList<double[]> errors, IReadOnlyList<double[]> half, double bandLevel, int? period)
    {
        var horizon = errors[0].Length;
        var u = new double[errors.Count][];
        double all = 0;
        var count = 0;
        for (var j = 0; j < errors.Count; j++)
        {
            u[j] = new double[horizon];
            for (var h = 0; h < horizon; h++)
            {
                u[j][h] = !double.IsNaN(errors[j][h]) && half[j][h] > 0 ? errors[j][h] / half[j][h] : double.NaN;
                if (!double.IsNaN(u[j][h]))
                {
                    all += Rise(u[j][h]);
                    count++;
                }
            }
        }
        if (count < MinSamples || all <= 0)
        {
            return null;
        }
        all /= count;
        var scale = new double[horizon];
        for (var h = 0; h < horizon; h++)
        {
            double sum = 0;
            var n = 0;
            for (var k = 0; k < horizon; k++)
            {
                if (!SamePool(h, k, period))
                {
                    continue;
                }
                foreach (var row in u)
                {
                    if (!double.IsNaN(row[k]))
                    {
                        sum += Rise(row[k]);
                        n++;
                    }
                }
            }
            scale[h] = Math.Sqrt((sum + (ShrinkCount * all)) / ((n + ShrinkCount) * all));
        }
        var v = new List<double>(count);
        foreach (var row in u)
        {
            for (var h = 0; h < horizon; h++)
            {
                if (!double.IsNaN(row[h]))
                {
                    v.Add(row[h] / scale[h]);
                }
            }
        }
        v.Sort();
        var levels = TableLevels.Where(p => (int)Math.Ceiling((v.Count + 1) * p) <= v.Count).ToArray();
        var quantiles = levels.Select(p => v[(int)Math.Ceiling((v.Count + 1) * p) - 1]).ToArray();
        // The planner extends the table along its last rise: a table whose top is no higher than its middle says nothing of the tail.
        return levels.Length >= 3 && quantiles[^1] > quantiles[0] ? new UpperErrors(bandLevel, scale, levels, quantiles, v.Count) : null;
    }

    private static double Rise(double u) => u > 0 ? u * u : 0;

    // Step k is pooled for step h when it is a neighbour of h, or of the same hour on another day.
    private static bool SamePool(int h, int k, int? period)
    {
        var d = Math.Abs(h - k);
        if (period is int p && p > 1)
        {
            d %= p;
            d = Math.Min(d, p - d);
        }
        return d <= 1;
    }
}
