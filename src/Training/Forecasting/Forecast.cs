namespace Forecaster.Training.Forecasting;

/// <summary>
/// Forecasts for the steps after the training window: step i is at <c>Start + i·Step</c>; the truth should fall within
/// [<see cref="Lower"/>, <see cref="Upper"/>] with probability <see cref="Level"/>. <see cref="Model"/> names what produced it.
/// </summary>
public sealed record Forecast(DateTimeOffset Start, TimeSpan Step, double[] Point, double[] Lower, double[] Upper, double Level, string Model)
{
    /// <summary>The timestamp of step <paramref name="i"/>.</summary>
    public DateTimeOffset TimestampAt(int i) => Start + TimeSpan.FromTicks(Step.Ticks * i);

    /// <summary>The model's one-sided upper backtest errors in units of this band's margins, step 0 at <see cref="Start"/>; null when none.</summary>
    public UpperErrors? UpperErrors { get; init; }
}
