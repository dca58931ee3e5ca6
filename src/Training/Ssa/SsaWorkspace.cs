using System.Buffers;

namespace Forecaster.Training.Ssa;

/// <summary>The leading eigenvectors of one series prefix: U (Count×L, rows), eigenvalues, tr C and M = U↑ᵀU↓.</summary>
public sealed record SsaDecomposition(int L, int Count, double[] Ut, double[] Eigenvalues, double Trace, double[] Shift);

/// <summary>
/// Decompositions of one series' prefixes, cached by (prefix length, L), with each new subspace iteration warm-started from the
/// last one: the fits of a rolling-origin backtest differ by a few lagged vectors, so their subspaces barely move. When
/// <see cref="ReuseWithin"/> is set, a decomposition of an earlier prefix at most that many steps shorter is reused as is:
/// it saw only older data, so the backtest still never looks ahead, and only the forecast state comes from the newer points.
/// Use one workspace per series (and per thread).
/// </summary>
public sealed class SsaWorkspace(int reuseWithin = 0)
{
    /// <summary>How many steps older a cached decomposition may be and still serve a fit that does not ask for a fresh one.</summary>
    public int ReuseWithin { get; } = reuseWithin;

    private const int Oversampling = 4;
    private readonly Dictionary<(int Length, int L), SsaDecomposition> _cache = [];
    private readonly Dictionary<int, double[]> _lastBlock = [];

    /// <summary>Eigen-solves performed so far (for diagnostics and tests).</summary>
    public int Solves { get; private set; }

    /// <summary>
    /// The decomposition of <paramref name="x"/>, the series' points up to <paramref name="end"/> (exclusive), with window
    /// <paramref name="L"/> and at least <paramref name="rank"/> vectors.
    /// </summary>
    public SsaDecomposition Decompose(ReadOnlySpan<double> x, int end, int L, int rank, int daily, int weekly, bool fresh = true)
    {
        for (int age = 0; age <= (fresh ? 0 : ReuseWithin); age++)
        {
            if (_cache.TryGetValue((end - age, L), out var cached) && cached.Count >= rank)
            {
                return cached;
            }
        }
        int p = Math.Min(rank + Oversampling, L);
        bool warm = _lastBlock.TryGetValue(L, out var previous) && previous.Length == p * L;
        var q = warm ? (double[])previous!.Clone() : Ssa.InitialBlock(L, p, [daily, weekly]);
        // The L×L covariance (228 KB at a weekly window) is scratch: pooled, not left to the large object heap once per solve.
        var pooled = ArrayPool<double>.Shared.Rent(L * L);
        double[] theta;
        double trace = 0;
        try
        {
            var c = pooled.AsSpan(0, L * L);
            Ssa.LagCovariance(x, L, c);
            theta = Ssa.LeadingEigenpairs(c, L, q, p, rank, maxIterations: warm ? 4 : 12, tolerance: 1e-5);
            for (int i = 0; i < L; i++)
            {
                trace += c[(i * L) + i];
            }
        }
        finally
        {
            ArrayPool<double>.Shared.Return(pooled);
        }
        Solves++;
        _lastBlock[L] = q;
        var dec = new SsaDecomposition(L, rank, q, theta, trace, Ssa.ShiftProducts(q, L, rank));
        _cache[(end, L)] = dec;
        return dec;
    }
}
