namespace Forecaster.Training.Ssa;

/// <summary>How the rank r (number of eigenvectors kept) is chosen, as in ML.NET's <c>RankSelectionMethod</c>.</summary>
public enum RankSelection
{
    /// <summary>The rank whose recurrent forecast best reproduces the last stretch of the training data.</summary>
    Exact,

    /// <summary>The smallest rank whose eigenvalues hold a fixed share of the leading spectrum's energy.</summary>
    Fast,

    /// <summary><see cref="SsaOptions.Rank"/>, as given.</summary>
    Fixed,
}

/// <summary>Maximum growth of the forecast: a factor of <paramref name="Growth"/> over <paramref name="Steps"/> steps.</summary>
public sealed record GrowthRatio(int Steps, double Growth);

/// <summary>
/// SSA settings named after ML.NET's <c>SsaForecastingEstimator</c> (windowSize, trainSize, rankSelectionMethod, rank, maxRank,
/// shouldStabilize, maxGrowth). Unlike ML.NET the window defaults to the detected seasonality rather than a fixed number.
/// </summary>
public sealed record SsaOptions
{
    /// <summary>Window length L; null chooses it from the seasonality: one week + 1 for a weekly cycle, else <see cref="DailyWindows"/> days + 1.</summary>
    public int? WindowSize { get; init; }

    /// <summary>Days in the window for a daily cycle (no weekly one).</summary>
    public int DailyWindows { get; init; } = 3;

    /// <summary>Most recent points used for training; null uses all of them.</summary>
    public int? TrainSize { get; init; }

    /// <summary>How the rank is chosen.</summary>
    public RankSelection RankSelectionMethod { get; init; } = RankSelection.Exact;

    /// <summary>The rank when <see cref="RankSelectionMethod"/> is <see cref="RankSelection.Fixed"/>.</summary>
    public int Rank { get; init; } = 12;

    /// <summary>The largest rank considered.</summary>
    public int MaxRank { get; init; } = 30;

    /// <summary>Steps of the last stretch that exact rank selection reproduces; null uses one day.</summary>
    public int? SelectionLength { get; init; }

    /// <summary>Pull characteristic roots outside the unit circle back onto it.</summary>
    public bool ShouldStabilize { get; init; } = true;

    /// <summary>When set, roots may lie outside the unit circle up to this growth instead of on it.</summary>
    public GrowthRatio? MaxGrowth { get; init; }

    /// <summary>The window length for a series of <paramref name="n"/> points with the given cycles (always N ≥ 2L).</summary>
    public int ChooseWindow(int n, int daily, int weekly)
    {
        int L = WindowSize ?? (weekly > 0 ? weekly + 1 : daily > 0 ? (DailyWindows * daily) + 1 : 25);
        return Math.Max(2, Math.Min(L, n / 2));
    }
}
