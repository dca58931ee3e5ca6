using Forecaster.Training.Forecasting;

namespace Forecaster.Training.Baselines;

/// <summary>
/// Seasonal naive: ŷ_{N+h} = y_{N+h−m·k}, the same phase of the last cycle (m = 24 on an hourly grid is "same hour yesterday",
/// the service's fallback; m = 1 is the last value). <paramref name="LastCycle"/> holds the last m points.
/// </summary>
public sealed record SeasonalNaiveModel(int Period, double[] LastCycle, double ResidualStd) : IForecastModel
{
    /// <inheritdoc/>
    public string Name => Period == 1 ? "naive" : $"snaive{Period}";

    /// <inheritdoc/>
    public ModelForecast Forecast(int horizon)
    {
        var point = new double[horizon];
        var se = new double[horizon];
        for (int h = 0; h < horizon; h++)
        {
            point[h] = LastCycle[h % Period];
            // Errors of a seasonal random walk add up once per elapsed cycle (Hyndman & Athanasopoulos, FPP3 §5.5).
            se[h] = ResidualStd * Math.Sqrt((h / Period) + 1);
        }
        return new ModelForecast(point, se);
    }

    /// <summary>Fits seasonal naive with period <paramref name="m"/> (shortened to the series' length when longer).</summary>
    public static SeasonalNaiveModel Fit(ReadOnlySpan<double> x, int m)
    {
        m = Math.Clamp(m, 1, x.Length);
        double sum = 0;
        int count = 0;
        for (int t = m; t < x.Length; t++)
        {
            double d = x[t] - x[t - m];
            sum += d * d;
            count++;
        }
        if (count == 0)
        {
            // One cycle only: the step-to-step spread is the best guess of the error.
            for (int t = 1; t < x.Length; t++)
            {
                double d = x[t] - x[t - 1];
                sum += d * d;
                count++;
            }
        }
        return new SeasonalNaiveModel(m, x[^m..].ToArray(), count == 0 ? 0 : Math.Sqrt(sum / count));
    }
}
