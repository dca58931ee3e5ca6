using Forecaster.Training.Regression;
using Forecaster.Training.Ssa;

namespace Forecaster.Training.Forecasting;

/// <summary>The models a series' selection may consider.</summary>
[Flags]
public enum ModelKinds
{
    /// <summary>Seasonal naive with a daily period (same step yesterday).</summary>
    SeasonalNaiveDaily = 1,

    /// <summary>Seasonal naive with a weekly period (same step last week).</summary>
    SeasonalNaiveWeekly = 2,

    /// <summary>Ridge regression on calendar features and lags.</summary>
    Ridge = 4,

    /// <summary>Singular spectrum analysis.</summary>
    Ssa = 8,

    /// <summary>The fleet-wide LightGBM model, when one was trained for the run (<see cref="ForecastOptions.Global"/>).</summary>
    Global = 16,

    /// <summary>Damped-trend and Theta exponential smoothing on seasonally adjusted data (daily and weekly seasons).</summary>
    Smoothing = 32,

    /// <summary>Every model.</summary>
    All = SeasonalNaiveDaily | SeasonalNaiveWeekly | Ridge | Ssa | Global | Smoothing,
}

/// <summary>Settings for fitting one series: the backtest that selects the model, cleaning, and each model's own options.</summary>
public sealed record ForecastOptions
{
    /// <summary>Horizon of the backtest forecasts (and of the calibrated interval scales).</summary>
    public int Horizon { get; init; } = 48;

    /// <summary>Rolling-origin backtest origins, the last one <see cref="Horizon"/> steps before the end of the history.</summary>
    public int BacktestOrigins { get; init; } = 6;

    /// <summary>Steps between backtest origins; null uses one day.</summary>
    public int? OriginSpacing { get; init; }

    /// <summary>The interval level the calibration aims at when deciding whether the model's own theory is adequate.</summary>
    public double Level { get; init; } = 0.95;

    /// <summary>
    /// Factor on the backtest error scales behind the intervals, for the selection optimism of the chosen model's backtest
    /// errors. 1.4 was tuned on a hold-out cut from the M4 Hourly history (its last 48 hours), never on its truth.
    /// </summary>
    public double IntervalInflation { get; init; } = 1.4;

    /// <summary>Clip outliers (in robust standard deviations, <see cref="OutlierThreshold"/>) before fitting.</summary>
    public bool ClipOutliers { get; init; } = true;

    /// <summary>Distance, in robust standard deviations from the local seasonal level, beyond which a point is clipped.</summary>
    public double OutlierThreshold { get; init; } = 5.0;

    /// <summary>Detect a recent level shift and re-level the history before it (<see cref="Series.LevelShift"/>).</summary>
    public bool LevelShifts { get; init; } = true;

    /// <summary>Models to consider.</summary>
    public ModelKinds Models { get; init; } = ModelKinds.All;

    /// <summary>Consider an error-weighted combination of the best models.</summary>
    public bool Combine { get; init; } = true;

    /// <summary>Known event days (e.g. holidays), past and future, flagged in the regression.</summary>
    public IReadOnlyCollection<DateOnly>? Events { get; init; }

    /// <summary>
    /// The fleet-wide model trained for this run, or null. It joins the candidates of hourly series and must have been trained
    /// on each series' points before its earliest backtest origin only (<see cref="SeriesForecaster.BacktestStart"/>).
    /// </summary>
    public Global.GlobalModel? Global { get; init; }

    /// <summary>Settings of the fleet-wide model, where the caller trains one.</summary>
    public Global.GlobalModelOptions GlobalModel { get; init; } = new();

    /// <summary>SSA settings.</summary>
    public SsaOptions Ssa { get; init; } = new();

    /// <summary>Ridge regression settings.</summary>
    public RidgeOptions Ridge { get; init; } = new();
}
