using Forecaster.Training.Forecasting;

namespace Forecaster.Training.Global;

/// <summary>
/// A series' forecast from the fleet-wide model <paramref name="GlobalVersion"/> (its ML.NET zip in the models directory),
/// made at fit time from the series' own recent past and kept in the record, so the series' artifact forecasts without
/// loading the fleet model. Beyond the stored steps the last day repeats and the error grows like a random walk's.
/// </summary>
public sealed record GlobalForecastModel(string GlobalVersion, double[] Point, double[] StandardError) : IForecastModel
{
    /// <inheritdoc/>
    public string Name => "lgbm";

    /// <inheritdoc/>
    public ModelForecast Forecast(int horizon)
    {
        var point = new double[horizon];
        var se = new double[horizon];
        int stored = Point.Length;
        for (int h = 0; h < horizon; h++)
        {
            int k = h < stored ? h : stored - 24 + ((h - stored) % 24);
            k = Math.Clamp(k, 0, stored - 1);
            point[h] = Point[k];
            se[h] = StandardError[Math.Min(h, stored - 1)] * Math.Sqrt(Math.Max(1.0, (h + 1.0) / stored));
        }
        return new ModelForecast(point, se);
    }
}
