namespace Forecaster.Training.Forecasting;

/// <summary>A model's rolling-origin backtest accuracy: mean MASE (seasonal scale), sMAPE and interval coverage over the origins.</summary>
public sealed record ModelScore(string Model, double Mase, double Smape, double Coverage);

/// <summary>
/// The backtest that chose a series' model: every candidate's scores, the chosen model's, and seasonal naive's (period one day),
/// which the planner compares against to decide whether to trust the model or fall back to "same hour yesterday".
/// </summary>
public sealed record BacktestReport(int Origins, int Horizon, IReadOnlyList<ModelScore> Candidates, ModelScore Chosen, ModelScore? SeasonalNaiveDaily);

/// <summary>The training data a model saw: first and last timestamp, points on the grid, observed (non-gap) and clipped points.</summary>
public sealed record TrainingWindow(DateTimeOffset From, DateTimeOffset To, int Points, int Observed, int Clipped);
