using Forecaster.Training.Forecasting;
using static Forecaster.Planner.Hours;

namespace Forecaster.Api.Training;

/// <summary>What fitting one series gave the nightly run: the model and its forecast, or why nothing usable came out.</summary>
public sealed record SeriesFit(FittedModel? Model, Forecast? Forecast, string? Error);

/// <summary>
/// How a training run fits one hourly series: its window, the forecast options for its metric, the fit and forecast, and
/// whether the chosen model beats seasonal naive. The nightly pipeline and the simulator (issue 7) both call these, so a
/// replayed night selects and forecasts exactly as a real one.
/// </summary>
public static class SeriesFitting
{
    /// <summary>The window a run created at <paramref name="created"/> fits: <see cref="TrainingOptions.HistoryDays"/> ending at the last whole hour.</summary>
    public static (DateTimeOffset From, DateTimeOffset To) Window(DateTimeOffset created, TrainingOptions o)
    {
        var to = FloorHour(created);
        return (to - (Hour * (o.HistoryDays * 24)), to);
    }

    /// <summary>The engine's options for a series: the load metric gets more backtest origins than cpu and memory.</summary>
    public static ForecastOptions Options(TrainingOptions o, bool loadMetric) => new()
    {
        Horizon = o.HorizonHours,
        Level = o.Level,
        BacktestOrigins = loadMetric ? o.LoadBacktestOrigins : o.UsageBacktestOrigins,
    };

    /// <summary>
    /// Fits the hourly means <paramref name="hourlyMean"/> (from <paramref name="from"/>, NaN where nothing was observed) and
    /// forecasts <see cref="TrainingOptions.HorizonHours"/> at <see cref="TrainingOptions.Level"/> after them. A non-finite
    /// forecast is an error, never stored. Exceptions of the engine propagate: the caller decides what a failure keeps.
    /// <paramref name="global"/> is the run's fleet-wide model (<see cref="FleetModel"/>), a candidate for the load metric.
    /// </summary>
    public static SeriesFit Fit(ReadOnlySpan<double> hourlyMean, DateTimeOffset from, TrainingOptions o, bool loadMetric, Forecaster.Training.Global.GlobalModel? global = null)
    {
        // The fleet-wide model was trained on load series: it is a candidate for the load metric only.
        var model = SeriesForecaster.Fit(hourlyMean, from, Hour, Options(o, loadMetric) with { Global = loadMetric ? global : null });
        var forecast = model.Forecast(o.HorizonHours, o.Level);
        return !forecast.Point.All(double.IsFinite) || !forecast.Lower.All(double.IsFinite) || !forecast.Upper.All(double.IsFinite)
            ? new SeriesFit(null, null, $"{forecast.Model} forecast a non-finite value")
            : new SeriesFit(model, forecast, null);
    }

    /// <summary>Whether the chosen model backtested better than seasonal naive (same hour yesterday); null when either is unknown.</summary>
    public static bool? BeatsSeasonalNaive(BacktestReport? backtest) =>
        Finite(backtest?.Chosen.Mase) is double c && Finite(backtest?.SeasonalNaiveDaily?.Mase) is double s ? c < s : null;

    static double? Finite(double? v) => v is double d && double.IsFinite(d) ? d : null;
}
