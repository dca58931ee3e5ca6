using Forecaster.Training.Forecasting;

namespace Forecaster.Training.Smoothing;

/// <summary>
/// Exponential smoothing on seasonally adjusted data: the series is divided by (or less) its classical seasonal indices of
/// period P, smoothed with damped-trend Holt or Theta (<see cref="ExponentialSmoothing"/>), and the forecast re-seasonalised
/// (the M4 benchmarks' recipe; with P = 168 it also carries the weekly cycle). <paramref name="Season"/> holds the indices
/// of the P steps after the end, index h mod P for step h.
/// </summary>
public sealed record SmoothingModel(
    string Method,
    int Period,
    double[] Season,
    bool Multiplicative,
    double Level,
    double Trend,
    double Damping,
    double ResidualStd) : IForecastModel
{
    /// <inheritdoc/>
    public string Name => $"{Method}{Period}";

    /// <inheritdoc/>
    public ModelForecast Forecast(int horizon)
    {
        var point = new double[horizon];
        var se = new double[horizon];
        double damp = 0, phiH = 1, variance = 0;
        for (int h = 0; h < horizon; h++)
        {
            phiH *= Damping;
            damp += phiH;
            double adjusted = Level + (Trend * damp);
            double s = Season[h % Period];
            point[h] = Multiplicative ? adjusted * s : adjusted + s;
            // Errors of the adjusted series grow like a random walk's, then scaled back by the season.
            variance += ResidualStd * ResidualStd;
            se[h] = Math.Sqrt(variance) * (Multiplicative ? s : 1);
        }
        return new ModelForecast(point, se);
    }

    /// <summary>
    /// Fits <paramref name="method"/> ("ets" for damped trend, "theta") with seasonal period <paramref name="period"/> on
    /// <paramref name="x"/> (gap-free), from the last <paramref name="cycles"/> cycles' indices; null when too short.
    /// </summary>
    public static SmoothingModel? Fit(ReadOnlySpan<double> x, int period, string method, int cycles = 8)
    {
        int n = x.Length;
        double min = double.PositiveInfinity;
        foreach (double v in x)
        {
            min = Math.Min(min, v);
        }
        bool multiplicative = min > 0;
        var s = SeasonalIndices.Estimate(x, period, multiplicative, cycles);
        if (s is null)
        {
            return null;
        }
        var adjusted = new double[n];
        for (int t = 0; t < n; t++)
        {
            adjusted[t] = multiplicative ? x[t] / s[t % period] : x[t] - s[t % period];
        }
        var state = method == "theta" ? ExponentialSmoothing.Theta(adjusted) : ExponentialSmoothing.DampedTrend(adjusted);
        var season = new double[period];
        for (int h = 0; h < period; h++)
        {
            season[h] = s[(n + h) % period];
        }
        return new SmoothingModel(method, period, season, multiplicative, state.Level, state.Trend, state.Damping, state.ResidualStd);
    }
}
