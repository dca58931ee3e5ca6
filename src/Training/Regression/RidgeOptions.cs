namespace Forecaster.Training.Regression;

/// <summary>Settings of the calendar-and-lags ridge regression.</summary>
public sealed record RidgeOptions
{
    /// <summary>Fourier pairs for the daily cycle.</summary>
    public int DailyHarmonics { get; init; } = 10;

    /// <summary>Fourier pairs for the weekly cycle (hour-of-week effects), used once <see cref="WeeksForWeeklyTerms"/> weeks are known.</summary>
    public int WeeklyHarmonics { get; init; } = 12;

    /// <summary>Whole weeks of history needed before weekly terms are fitted.</summary>
    public int WeeksForWeeklyTerms { get; init; } = 3;

    /// <summary>Include a local linear trend.</summary>
    public bool Trend { get; init; } = true;

    /// <summary>Most recent points the regression is fitted on (the trend is local to them); null uses all.</summary>
    public int? TrainingWindow { get; init; }

    /// <summary>Points at the end of the training data that choose the penalty; null uses two days.</summary>
    public int? ValidationLength { get; init; }

    /// <summary>Candidate penalties, as multiples of the mean eigenvalue of the standardised Gram matrix.</summary>
    public IReadOnlyList<double> Penalties { get; init; } = [1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0];
}
