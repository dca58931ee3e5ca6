using System.Text.Json;
using System.Text.Json.Serialization;
using Forecaster.Training.Series;

namespace Forecaster.Training.Forecasting;

/// <summary>
/// A series' fitted model and everything that explains it: the chosen model (its record holds the state it forecasts from),
/// the interval calibration, the backtest, the training window and notes on what was done to the data. It serialises to a
/// JSON artifact with <see cref="ToJson"/>, and an artifact read back with <see cref="FromJson"/> forecasts identically.
/// <paramref name="Fallback"/> (seasonal naive) replaces the model should it ever produce a non-finite value.
/// <paramref name="Upper"/> is the model's one-sided upper backtest errors, for risk-targeted planning (null when too few).
/// </summary>
public sealed record FittedModel(
    TimeGrid Grid,
    TrainingWindow Training,
    IForecastModel Model,
    IForecastModel Fallback,
    IntervalCalibration Calibration,
    BacktestReport? Backtest,
    bool NonNegative,
    IReadOnlyList<string> Notes,
    UpperErrors? Upper = null)
{
    private static readonly JsonSerializerOptions s_json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Forecasts <paramref name="horizon"/> steps after the training window with intervals at <paramref name="level"/>.</summary>
    public Forecast Forecast(int horizon, double level = 0.95)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(horizon, 1);
        var model = Model;
        var f = model.Forecast(horizon);
        if (!f.Point.All(double.IsFinite) || !f.StandardError.All(double.IsFinite))
        {
            model = Fallback;
            f = model.Forecast(horizon);
        }
        var half = (model == Model ? Calibration : IntervalCalibration.Theory).HalfWidths(f.StandardError, level);
        var lower = new double[horizon];
        var upper = new double[horizon];
        var point = (double[])f.Point.Clone();
        for (int h = 0; h < horizon; h++)
        {
            if (NonNegative)
            {
                point[h] = Math.Max(point[h], 0);
            }
            lower[h] = NonNegative ? Math.Max(point[h] - half[h], 0) : point[h] - half[h];
            upper[h] = point[h] + half[h];
        }
        // The upper errors are in units of this band at the training level: only the chosen model's band, at that level.
        var tail = model == Model && Upper is { } u && Math.Abs(level - u.BandLevel) < 1e-12 ? Upper : null;
        return new Forecast(Grid.At(Training.Points), Grid.Step, point, lower, upper, level, model.Name) { UpperErrors = tail };
    }

    /// <summary>The JSON artifact (System.Text.Json, web defaults).</summary>
    public string ToJson() => JsonSerializer.Serialize(this, s_json);

    /// <summary>
    /// Writes the artifact's JSON to <paramref name="json"/>, laid out as the writer's options say (not indented by default):
    /// the same values as <see cref="ToJson"/>, which <see cref="FromJson"/> reads.
    /// </summary>
    public void WriteJson(Utf8JsonWriter json) => JsonSerializer.Serialize(json, this, s_json);

    /// <summary>Reads an artifact written by <see cref="ToJson"/>.</summary>
    public static FittedModel FromJson(string json) =>
        JsonSerializer.Deserialize<FittedModel>(json, s_json) ?? throw new JsonException("Empty model artifact.");
}
