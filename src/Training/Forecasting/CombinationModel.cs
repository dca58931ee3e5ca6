namespace Forecaster.Training.Forecasting;

/// <summary>
/// A weighted average of models, weights inversely proportional to (the square of) each model's backtest error
/// (error-weighted combination; Bates &amp; Granger, Operational Research Quarterly 1969).
/// </summary>
public sealed record CombinationModel(IForecastModel[] Components, double[] Weights) : IForecastModel
{
    /// <inheritdoc/>
    public string Name => "combo";

    /// <inheritdoc/>
    public ModelForecast Forecast(int horizon)
    {
        var point = new double[horizon];
        var se = new double[horizon];
        for (int i = 0; i < Components.Length; i++)
        {
            var f = Components[i].Forecast(horizon);
            for (int h = 0; h < horizon; h++)
            {
                point[h] += Weights[i] * f.Point[h];
                // Summing weighted errors assumes perfectly correlated errors: an upper bound, hence conservative.
                se[h] += Weights[i] * f.StandardError[h];
            }
        }
        return new ModelForecast(point, se);
    }

    /// <summary>Weights ∝ 1 / score^<paramref name="power"/>, normalised to sum to one: above 1, a sharper preference for the best than 1 / score.</summary>
    public static double[] InversePowerWeights(IReadOnlyList<double> score, double power)
    {
        var w = score.Select(s => 1 / Math.Max(Math.Pow(s, power), 1e-18)).ToArray();
        double total = w.Sum();
        return w.Select(v => v / total).ToArray();
    }

    /// <summary>Weights ∝ 1 / MASE, normalised to sum to one.</summary>
    public static double[] InverseErrorWeights(IReadOnlyList<double> mase)
    {
        var w = mase.Select(m => 1 / Math.Max(m, 1e-9)).ToArray();
        double total = w.Sum();
        return w.Select(v => v / total).ToArray();
    }
}
