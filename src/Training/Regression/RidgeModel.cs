using System.Buffers;
using System.Runtime.Intrinsics;
using Forecaster.Training.Forecasting;
using Forecaster.Training.Series;

namespace Forecaster.Training.Regression;

/// <summary>
/// A fitted ridge regression on calendar features and lagged load, forecasting recursively (a forecast feeds the lags of later
/// steps). Features are standardised with <paramref name="Mean"/> and <paramref name="Scale"/> before
/// <paramref name="Coefficients"/> apply; <paramref name="Tail"/> holds the last observations the lags need and
/// <paramref name="Origin"/> is the grid index of the first forecast step; <paramref name="Penalty"/> is λ as a multiple of the
/// mean eigenvalue of the standardised Gram matrix.
/// </summary>
public sealed record RidgeModel(
    FeatureSpec Features,
    TimeGrid Grid,
    int WeekPhaseAtZero,
    long Origin,
    double[] Mean,
    double[] Scale,
    double[] Coefficients,
    double Intercept,
    double Penalty,
    double[] Tail,
    double ResidualStd) : IForecastModel
{
    /// <inheritdoc/>
    public string Name => "ridge";

    /// <inheritdoc/>
    public ModelForecast Forecast(int horizon)
    {
        var buffer = new double[Tail.Length + horizon];
        Tail.CopyTo(buffer, 0);
        var row = new double[Features.Count];
        var point = new double[horizon];
        var se = new double[horizon];
        int day = Math.Max(Features.DailyPeriod, 1);
        for (int h = 0; h < horizon; h++)
        {
            Features.Fill(Grid, WeekPhaseAtZero, Origin + h, buffer.AsSpan(0, Tail.Length + h), row);
            point[h] = buffer[Tail.Length + h] = Predict(row);
            // Past one day the lags are themselves forecasts, so errors compound roughly once per day.
            se[h] = ResidualStd * Math.Sqrt(1 + (h / day));
        }
        return new ModelForecast(point, se);
    }

    private double Predict(ReadOnlySpan<double> row)
    {
        double y = Intercept;
        for (int j = 0; j < row.Length; j++)
        {
            y += Coefficients[j] * (row[j] - Mean[j]) / Scale[j];
        }
        return y;
    }

    /// <summary>
    /// Fits the regression on <paramref name="x"/> (gap-free, starting at grid index 0), choosing the penalty by the recursive
    /// forecast error on the last <see cref="RidgeOptions.ValidationLength"/> points. Returns null when the history is too
    /// short for the design.
    /// </summary>
    /// <remarks>
    /// A given <paramref name="penalty"/> (a multiple of the mean eigenvalue, as in <see cref="RidgeOptions.Penalties"/>)
    /// skips the choice: the backtest chooses once, at its earliest origin, and reuses it.
    /// </remarks>
    public static RidgeModel? Fit(ReadOnlySpan<double> x, TimeGrid grid, RidgeOptions options, IReadOnlyCollection<DateOnly>? events = null, double? penalty = null)
    {
        int n = x.Length, daily = grid.DailyPeriod, weekly = grid.WeeklyPeriod;
        if (daily < 2 || n < 3 * daily)
        {
            return null;
        }
        int[] lags = n >= weekly + (7 * daily) ? [daily, weekly] : [daily];
        int weeklyHarmonics = n >= options.WeeksForWeeklyTerms * weekly ? options.WeeklyHarmonics : 0;
        int start = Math.Max(lags.Max(), options.TrainingWindow is int w ? n - w : 0);
        // Event days are kept from the training start on (the future ones drive the forecast), but only when some fall
        // inside the training data: a flag never seen cannot be fitted.
        var firstDay = DateOnly.FromDateTime(grid.At(0).UtcDateTime);
        var eventDays = events is null || !events.Any(d => InRange(grid, d, start, n))
            ? []
            : events.Where(d => d >= firstDay).Distinct().Order().ToArray();
        var spec = new FeatureSpec(daily, Math.Min(options.DailyHarmonics, (daily - 1) / 2), weekly, weeklyHarmonics,
            options.Trend, n, lags, eventDays);
        int p = spec.Count, m = n - start;
        if (m < 2 * p)
        {
            return null;
        }

        int phase0 = grid.StepOfWeek(0);
        // The design (m×p, 200-250 KB for five weeks hourly) is scratch: pooled, not left to the large object heap once per fit.
        var design = ArrayPool<double>.Shared.Rent(m * p);
        try
        {
            return FitDesign(x, grid, options, spec, phase0, start, n, m, p, design, penalty);
        }
        finally
        {
            ArrayPool<double>.Shared.Return(design);
        }
    }

    private static RidgeModel FitDesign(ReadOnlySpan<double> x, TimeGrid grid, RidgeOptions options, FeatureSpec spec, int phase0, int start, int n, int m, int p, double[] design, double? penalty)
    {
        int daily = grid.DailyPeriod;
        var target = new double[m];
        for (int i = 0; i < m; i++)
        {
            spec.Fill(grid, phase0, start + i, x[..(start + i)], design.AsSpan(i * p, p));
            target[i] = x[start + i];
        }
        var (mean, scale) = Standardise(design, m, p);
        double yMean = target.Average();
        for (int i = 0; i < m; i++)
        {
            target[i] -= yMean;
        }

        var g = new double[p * p];
        var b = new double[p];
        int validation = options.ValidationLength ?? (2 * daily);
        int split = m - validation;
        double tau = penalty ?? options.Penalties[options.Penalties.Count / 2];
        if (penalty is null && split >= 2 * p && options.Penalties.Count > 1)
        {
            Ridge.Accumulate(design, target, p, 0, split, g, b);
            var (v, d) = Ridge.DecomposeRows(g, p);
            var vb = Ridge.TransposeTimes(v, p, b);
            double bestError = double.PositiveInfinity;
            foreach (double candidate in options.Penalties)
            {
                var beta = Ridge.Solve(v, d, vb, candidate * d.Average());
                int origin = start + split;
                var trial = new RidgeModel(spec, grid, phase0, origin, mean, scale, beta, yMean, 0, x[(origin - spec.MaxLag)..origin].ToArray(), 0);
                var f = trial.Forecast(validation).Point;
                double error = 0;
                for (int h = 0; h < validation; h++)
                {
                    error += Math.Abs(f[h] - x[origin + h]);
                }
                if (error < bestError)
                {
                    (bestError, tau) = (error, candidate);
                }
            }
            Ridge.Accumulate(design, target, p, split, m, g, b);
        }
        else
        {
            Ridge.Accumulate(design, target, p, 0, m, g, b);
        }

        double lambda = tau * Ridge.MeanEigenvalue(g, p);
        var coefficients = Ridge.Solve(g, b, p, lambda);
        // The in-sample fit of four rows at a time (four independent sums), each summed over the columns in order as before.
        double sse = 0;
        int r = 0;
        for (; r + 4 <= m; r += 4)
        {
            double f0 = 0, f1 = 0, f2 = 0, f3 = 0;
            for (int j = 0; j < p; j++)
            {
                double c = coefficients[j];
                f0 += c * design[(r * p) + j];
                f1 += c * design[((r + 1) * p) + j];
                f2 += c * design[((r + 2) * p) + j];
                f3 += c * design[((r + 3) * p) + j];
            }
            sse += (target[r] - f0) * (target[r] - f0);
            sse += (target[r + 1] - f1) * (target[r + 1] - f1);
            sse += (target[r + 2] - f2) * (target[r + 2] - f2);
            sse += (target[r + 3] - f3) * (target[r + 3] - f3);
        }
        for (; r < m; r++)
        {
            double fit = 0;
            for (int j = 0; j < p; j++)
            {
                fit += coefficients[j] * design[(r * p) + j];
            }
            sse += (target[r] - fit) * (target[r] - fit);
        }
        return new RidgeModel(spec, grid, phase0, n, mean, scale, coefficients, yMean, tau,
            x[(n - spec.MaxLag)..].ToArray(), Math.Sqrt(sse / Math.Max(m - p, 1)));
    }

    // Centres and scales the columns in place; a constant column keeps scale 1 (it becomes all zeros). Row by row through the
    // row-major design, four columns to a vector and sixteen columns' sums held in registers over all the rows: each
    // column's sums still run over the rows in order and every element gets the same operations as in column-by-column
    // passes, so the figures are the same.
    private static (double[] Mean, double[] Scale) Standardise(double[] design, int m, int p)
    {
        var mean = new double[p];
        var scale = new double[p];
        var squares = new double[p];
        int vectorised = p - (p % 4);
        ColumnSums(design, m, p, vectorised, default, mean);
        for (int i = 0; i < m; i++)
        {
            for (int j = vectorised; j < p; j++)
            {
                mean[j] += design[(i * p) + j];
            }
        }
        for (int j = 0; j < p; j++)
        {
            mean[j] /= m;
        }
        ColumnSums(design, m, p, vectorised, mean, squares);
        for (int i = 0; i < m; i++)
        {
            for (int j = vectorised; j < p; j++)
            {
                double d = design[(i * p) + j] - mean[j];
                squares[j] += d * d;
            }
        }
        for (int j = 0; j < p; j++)
        {
            double sd = Math.Sqrt(squares[j] / m);
            scale[j] = sd > 1e-12 ? sd : 1;
        }
        for (int i = 0; i < m; i++)
        {
            var row = design.AsSpan(i * p, p);
            int j = 0;
            for (; j < vectorised; j += 4)
            {
                ((Vector256.Create<double>(row.Slice(j, 4)) - Vector256.Create<double>(mean.AsSpan(j, 4))) / Vector256.Create<double>(scale.AsSpan(j, 4)))
                    .CopyTo(row.Slice(j, 4));
            }
            for (; j < p; j++)
            {
                row[j] = (row[j] - mean[j]) / scale[j];
            }
        }
        return (mean, scale);
    }

    // sums[j] = Σ_i x[i, j] (no centre given) or Σ_i (x[i, j] − centre[j])² over the rows in order, for the columns below
    // `width` (a multiple of four), from zero: sixteen columns per pass over the rows, then four.
    private static void ColumnSums(double[] design, int m, int p, int width, ReadOnlySpan<double> centre, Span<double> sums)
    {
        bool squared = !centre.IsEmpty;
        int j = 0;
        for (; j + 16 <= width; j += 16)
        {
            Vector256<double> c0 = default, c1 = default, c2 = default, c3 = default;
            if (squared)
            {
                (c0, c1, c2, c3) = (Vector256.Create<double>(centre.Slice(j, 4)), Vector256.Create<double>(centre.Slice(j + 4, 4)),
                    Vector256.Create<double>(centre.Slice(j + 8, 4)), Vector256.Create<double>(centre.Slice(j + 12, 4)));
            }
            Vector256<double> s0 = default, s1 = default, s2 = default, s3 = default;
            for (int i = 0; i < m; i++)
            {
                var row = design.AsSpan((i * p) + j, 16);
                var x0 = Vector256.Create<double>(row[..4]);
                var x1 = Vector256.Create<double>(row.Slice(4, 4));
                var x2 = Vector256.Create<double>(row.Slice(8, 4));
                var x3 = Vector256.Create<double>(row.Slice(12, 4));
                if (squared)
                {
                    (x0, x1, x2, x3) = (x0 - c0, x1 - c1, x2 - c2, x3 - c3);
                    (x0, x1, x2, x3) = (x0 * x0, x1 * x1, x2 * x2, x3 * x3);
                }
                (s0, s1, s2, s3) = (s0 + x0, s1 + x1, s2 + x2, s3 + x3);
            }
            s0.CopyTo(sums.Slice(j, 4));
            s1.CopyTo(sums.Slice(j + 4, 4));
            s2.CopyTo(sums.Slice(j + 8, 4));
            s3.CopyTo(sums.Slice(j + 12, 4));
        }
        for (; j < width; j += 4)
        {
            var c = squared ? Vector256.Create<double>(centre.Slice(j, 4)) : default;
            Vector256<double> sum = default;
            for (int i = 0; i < m; i++)
            {
                var x = Vector256.Create<double>(design.AsSpan((i * p) + j, 4));
                if (squared)
                {
                    x -= c;
                    x *= x;
                }
                sum += x;
            }
            sum.CopyTo(sums.Slice(j, 4));
        }
    }

    private static bool InRange(TimeGrid grid, DateOnly day, long from, long to)
    {
        var first = DateOnly.FromDateTime(grid.At(from).UtcDateTime);
        var last = DateOnly.FromDateTime(grid.At(to - 1).UtcDateTime);
        return day >= first && day <= last;
    }
}
