using Forecaster.Training.Series;

namespace Forecaster.Training.Regression;

/// <summary>
/// The regression's design: Fourier terms sin/cos(2πk·phase/period) for the daily and weekly cycles (phases counted on the
/// UTC calendar), a linear trend in days from the training end, lagged load y_{t−lag}, and a known-event flag.
/// </summary>
public sealed record FeatureSpec(
    int DailyPeriod,
    int DailyHarmonics,
    int WeeklyPeriod,
    int WeeklyHarmonics,
    bool Trend,
    long TrendOrigin,
    int[] Lags,
    DateOnly[] Events)
{
    /// <summary>Number of features (the intercept excluded).</summary>
    public int Count => (2 * DailyHarmonics) + (2 * WeeklyHarmonics) + (Trend ? 1 : 0) + Lags.Length + (Events.Length > 0 ? 1 : 0);

    /// <summary>The longest lag: how much history a forecast needs.</summary>
    public int MaxLag => Lags.Length == 0 ? 0 : Lags.Max();

    /// <summary>
    /// Writes the features of grid point <paramref name="t"/> into <paramref name="row"/>; <paramref name="history"/> ends just
    /// before t (observed or already forecast values).
    /// </summary>
    public void Fill(TimeGrid grid, int weekPhaseAtZero, long t, ReadOnlySpan<double> history, Span<double> row)
    {
        int fourier = 2 * (DailyHarmonics + WeeklyHarmonics);
        int week = WeeklyPeriod > 0 ? WeeklyPeriod : 1;
        int phase = (int)((weekPhaseAtZero + t) % week);
        _fourier ??= s_fourierTables.GetOrAdd((week, DailyPeriod, DailyHarmonics, WeeklyPeriod, WeeklyHarmonics), _ => FourierTable(week, fourier));
        _fourier.AsSpan(phase * fourier, fourier).CopyTo(row);
        int c = fourier;
        if (Trend)
        {
            row[c++] = (t - TrendOrigin) / (double)Math.Max(DailyPeriod, 1);
        }
        foreach (int lag in Lags)
        {
            row[c++] = history[^lag];
        }
        if (Events.Length > 0)
        {
            row[c] = Array.BinarySearch(Events, DateOnly.FromDateTime(grid.At(t).UtcDateTime)) >= 0 ? 1 : 0;
        }
    }

    // The Fourier terms depend only on the phase within the week and the harmonics: computed once per phase and design for
    // the process (every fit of every series on an hourly grid shares one table), not once per row or per fit.
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(int Week, int Daily, int DailyHarmonics, int Weekly, int WeeklyHarmonics), double[]> s_fourierTables = new();

    private double[]? _fourier;

    private double[] FourierTable(int week, int fourier)
    {
        var table = new double[week * fourier];
        for (int phase = 0; phase < week; phase++)
        {
            int c = phase * fourier;
            for (int k = 1; k <= DailyHarmonics; k++)
            {
                double w = 2 * Math.PI * k * (phase % DailyPeriod) / DailyPeriod;
                table[c++] = Math.Sin(w);
                table[c++] = Math.Cos(w);
            }
            for (int k = 1; k <= WeeklyHarmonics; k++)
            {
                double w = 2 * Math.PI * k * phase / WeeklyPeriod;
                table[c++] = Math.Sin(w);
                table[c++] = Math.Cos(w);
            }
        }
        return table;
    }
}
