using Forecaster.Training.Forecasting;

namespace Forecaster.Training.Ssa;

/// <summary>
/// A fitted SSA forecaster: the rank-r linear recurrence in state form, s_{t+1} = P s_t, ŷ_t = πᵀ s_t, started from the last
/// lagged vector's projection s on the signal subspace. <paramref name="Recurrence"/> is P (r×r, row-major, after
/// stabilisation), <paramref name="Observation"/> is π, <paramref name="RootModuli"/> the characteristic roots' moduli
/// before stabilisation, <paramref name="NoiseVariance"/> the variance the rank-r reconstruction leaves unexplained.
/// </summary>
public sealed record SsaModel(
    int WindowLength,
    int Rank,
    double[] Recurrence,
    double[] Observation,
    double[] State,
    double NoiseVariance,
    double[] RootModuli,
    bool Stabilised) : IForecastModel
{
    /// <inheritdoc/>
    public string Name => $"ssa(L={WindowLength},r={Rank})";

    /// <inheritdoc/>
    public ModelForecast Forecast(int horizon)
    {
        var point = Ssa.Forecast(Recurrence, Observation, State, horizon);
        var psi = Ssa.ImpulseResponse(Recurrence, Observation, horizon);
        var se = new double[horizon];
        double sum = 0;
        for (int h = 0; h < horizon; h++)
        {
            sum += psi[h] * psi[h];
            se[h] = Math.Sqrt(NoiseVariance * sum);
        }
        return new ModelForecast(point, se);
    }

    /// <summary>
    /// Fits SSA to <paramref name="x"/> (gap-free). <paramref name="workspace"/> carries eigenvectors between fits of the same
    /// series, so the backtest's fits on growing prefixes cost a few subspace sweeps each, or none when
    /// <paramref name="fresh"/> is false and the workspace holds a recent enough decomposition of older data.
    /// </summary>
    public static SsaModel Fit(ReadOnlySpan<double> x, SsaOptions options, int daily, int weekly, SsaWorkspace? workspace = null, bool fresh = true)
    {
        workspace ??= new SsaWorkspace();
        int end = x.Length;
        if (options.TrainSize is int train && train < x.Length)
        {
            x = x[^train..];
        }
        int N = x.Length;
        int L = options.ChooseWindow(N, daily, weekly);
        int maxRank = Math.Clamp(Math.Min(options.MaxRank, L - 1), 1, Math.Max(1, N - L));
        var full = workspace.Decompose(x, end, L, maxRank, daily, weekly, fresh);

        int r = options.RankSelectionMethod switch
        {
            RankSelection.Fixed => Math.Clamp(options.Rank, 1, maxRank),
            RankSelection.Exact => ExactRank(x, end, L, maxRank, options.SelectionLength ?? Math.Max(daily, 1), daily, weekly, workspace)
                ?? FastRank(full, maxRank),
            _ => FastRank(full, maxRank),
        };

        double[]? p = null;
        for (; r >= 1 && (p = Ssa.RecurrenceMatrix(full.Ut, L, full.Shift, full.Count, r)) is null; r--)
        {
        }
        if (p is null)
        {
            throw new InvalidOperationException("SSA found no linear recurrence for this series.");
        }
        var pi = Ssa.LastComponents(full.Ut, L, r);
        var s = Ssa.Project(full.Ut, L, r, x[^L..]);

        double[] roots = [];
        bool changed = false;
        if (options.ShouldStabilize)
        {
            double maxModulus = options.MaxGrowth is { } g ? Math.Pow(Math.Max(g.Growth, 1), 1.0 / Math.Max(g.Steps, 1)) : 1.0;
            // A tolerance keeps the double root 1 of a linear trend, estimated a hair outside, from being disturbed.
            (p, roots, changed) = Ssa.Stabilise(p, r, maxModulus + 1e-6);
        }

        double explained = 0;
        for (int k = 0; k < r; k++)
        {
            explained += full.Eigenvalues[k];
        }
        double noise = Math.Max(full.Trace - explained, 0) / L;
        return new SsaModel(L, r, p, pi, s, noise, roots, changed);
    }

    private static int? ExactRank(ReadOnlySpan<double> x, int end, int L, int maxRank, int stretch, int daily, int weekly, SsaWorkspace workspace)
    {
        int cut = x.Length - stretch;
        if (stretch < 1 || cut < 2 * L)
        {
            return null;
        }
        var prefix = x[..cut];
        var dec = workspace.Decompose(prefix, end - stretch, L, maxRank, daily, weekly, fresh: false);
        var last = prefix[^L..];
        double scale = 0;
        for (int h = 0; h < stretch; h++)
        {
            scale += Math.Abs(x[cut + h]);
        }
        // π and s of rank r are the first r components of those of the largest rank: projected once, sliced per rank.
        var piAll = Ssa.LastComponents(dec.Ut, L, maxRank);
        var sAll = Ssa.Project(dec.Ut, L, maxRank, last);
        var errors = Ssa.RankErrors(dec.Shift, dec.Count, maxRank, piAll, sAll, x.Slice(cut, stretch));
        double min = errors.Min();
        if (!double.IsFinite(min))
        {
            return null;
        }
        // The smallest rank within 2% of the best: extra ranks that only fit noise (or fit an exact signal equally well) are left out.
        double tolerance = (0.02 * min) + (1e-9 * scale);
        return Array.FindIndex(errors, e => e <= min + tolerance);
    }

    // The smallest rank holding 99% of the energy of the computed leading eigenvalues.
    private static int FastRank(SsaDecomposition dec, int maxRank)
    {
        double total = 0;
        for (int k = 0; k < maxRank; k++)
        {
            total += Math.Max(dec.Eigenvalues[k], 0);
        }
        double sum = 0;
        for (int k = 0; k < maxRank; k++)
        {
            sum += Math.Max(dec.Eigenvalues[k], 0);
            if (sum >= 0.99 * total)
            {
                return k + 1;
            }
        }
        return maxRank;
    }
}
