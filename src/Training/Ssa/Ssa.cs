using System.Numerics.Tensors;
using MathNet.Numerics.LinearAlgebra;

namespace Forecaster.Training.Ssa;

/// <summary>
/// Basic singular spectrum analysis in the notation of Golyandina, Nekrutkin &amp; Zhigljavsky, "Analysis of Time Series
/// Structure: SSA and Related Techniques" (2001): window length L, K = N − L + 1 lagged vectors, trajectory matrix X (L×K),
/// lag covariance C = X Xᵀ / K, eigenvectors U₁…U_r. Vectors are stored as rows of row-major arrays.
/// </summary>
public static class Ssa
{
    /// <summary>
    /// C = X Xᵀ / K in O(L² + L·K): the first row by dot products, the rest by
    /// C[i+1, j+1] = C[i, j] − x[i]x[j] + x[i+K]x[j+K].
    /// </summary>
    public static double[] LagCovariance(ReadOnlySpan<double> x, int L)
    {
        var c = new double[L * L];
        LagCovariance(x, L, c);
        return c;
    }

    /// <summary>C = X Xᵀ / K written into <paramref name="c"/> (at least L² long; every entry of its first L² is written).</summary>
    public static void LagCovariance(ReadOnlySpan<double> x, int L, Span<double> c)
    {
        int K = x.Length - L + 1;
        if (L < 2 || K < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(L), "Need 2 ≤ L ≤ N.");
        }
        for (int j = 0; j < L; j++)
        {
            c[j] = TensorPrimitives.Dot(x.Slice(0, K), x.Slice(j, K));
        }
        for (int i = 0; i + 1 < L; i++)
        {
            for (int j = i; j + 1 < L; j++)
            {
                c[((i + 1) * L) + j + 1] = c[(i * L) + j] - (x[i] * x[j]) + (x[i + K] * x[j + K]);
            }
        }
        for (int i = 0; i < L; i++)
        {
            for (int j = i; j < L; j++)
            {
                double v = c[(i * L) + j] / K;
                c[(i * L) + j] = v;
                c[(j * L) + i] = v;
            }
        }
    }

    /// <summary>
    /// The p leading eigenpairs of the symmetric L×L matrix <paramref name="c"/> by block subspace iteration with
    /// Rayleigh–Ritz projection (Saad, "Numerical Methods for Large Eigenvalue Problems", 2nd ed., 2011, §5.2).
    /// <paramref name="q"/> (p×L, rows) holds the starting block, e.g. the previous fit's vectors, and receives the Ritz vectors,
    /// ordered by decreasing eigenvalue. Stops when the first <paramref name="converge"/> residuals fall below
    /// <paramref name="tolerance"/>·λ₁ or after <paramref name="maxIterations"/> sweeps.
    /// </summary>
    public static double[] LeadingEigenpairs(ReadOnlySpan<double> c, int L, double[] q, int p, int converge, int maxIterations, double tolerance)
    {
        var y = new double[p * L];
        var theta = new double[p];
        // The Ritz rotation's scratch (two p×L blocks), allocated once per solve rather than once per sweep.
        var rotatedQ = new double[p * L];
        var rotatedY = new double[p * L];
        Orthonormalise(q, p, L);
        for (int it = 1; ; it++)
        {
            for (int a = 0; a < p; a++)
            {
                var qa = q.AsSpan(a * L, L);
                var ya = y.AsSpan(a * L, L);
                for (int i = 0; i < L; i++)
                {
                    ya[i] = TensorPrimitives.Dot(c.Slice(i * L, L), qa);
                }
            }
            RayleighRitz(q, y, p, L, theta, rotatedQ, rotatedY);
            if (it >= maxIterations || Converged(q, y, theta, Math.Min(converge, p), L, tolerance))
            {
                return theta;
            }
            Array.Copy(y, q, y.Length);
            Orthonormalise(q, p, L);
        }
    }

    /// <summary>
    /// A starting block that already spans most of a seasonal series' signal: a constant, a linear trend and the harmonics of
    /// the given periods, completed with fixed pseudo-random vectors so the result is deterministic.
    /// </summary>
    public static double[] InitialBlock(int L, int p, ReadOnlySpan<int> periods)
    {
        var q = new double[p * L];
        int row = 0;
        void Add(Func<int, double> f)
        {
            if (row < p)
            {
                for (int i = 0; i < L; i++)
                {
                    q[(row * L) + i] = f(i);
                }
                row++;
            }
        }
        Add(_ => 1.0);
        Add(i => i - ((L - 1) / 2.0));
        for (int k = 1; row < p && k <= L / 2; k++)
        {
            int added = 0;
            foreach (int period in periods)
            {
                if (period >= 2 && k < period / 2.0 + 0.5)
                {
                    double w = 2 * Math.PI * k / period;
                    Add(i => Math.Cos(w * i));
                    Add(i => Math.Sin(w * i));
                    added++;
                }
            }
            if (added == 0)
            {
                break;
            }
        }
        var random = new Random(17);
        while (row < p)
        {
            Add(_ => random.NextDouble() - 0.5);
        }
        return q;
    }

    /// <summary>
    /// M = U↑ᵀ U↓ for the leading <paramref name="r"/> eigenvectors, where U↑ drops the last row of U and U↓ the first:
    /// the shift between consecutive lagged vectors seen in eigenvector coordinates (ESPRIT; Roy &amp; Kailath, IEEE TASSP 1989).
    /// </summary>
    public static double[] ShiftProducts(double[] ut, int L, int r)
    {
        var m = new double[r * r];
        for (int a = 0; a < r; a++)
        {
            for (int b = 0; b < r; b++)
            {
                m[(a * r) + b] = TensorPrimitives.Dot(ut.AsSpan(a * L, L - 1), ut.AsSpan((b * L) + 1, L - 1));
            }
        }
        return m;
    }

    /// <summary>
    /// The recurrence of rank r in state form, s_{t+1} = P s_t with P = (U↑ᵀU↑)⁻¹ U↑ᵀU↓ = (I + π πᵀ / (1 − ν²)) M, where π holds
    /// the last components of U₁…U_r and ν² = |π|² (Golyandina &amp; Zhigljavsky, "Singular Spectrum Analysis for Time Series",
    /// 2013, §3.2 and §3.8). Its eigenvalues are the characteristic roots of the series' linear recurrent formula.
    /// Returns null when ν² ≥ 1 (the verticality case, where no recurrence exists).
    /// </summary>
    public static double[]? RecurrenceMatrix(double[] ut, int L, double[] m, int mRank, int r)
    {
        var pi = LastComponents(ut, L, r);
        double nu2 = TensorPrimitives.Dot(pi, pi);
        if (nu2 >= 1 - 1e-9)
        {
            return null;
        }
        // (πᵀM)_b does not depend on the row: computed once, P costs O(r²) instead of O(r³) (rank selection builds it for every r).
        var piM = new double[r];
        for (int b = 0; b < r; b++)
        {
            double sum = 0;
            for (int k = 0; k < r; k++)
            {
                sum += pi[k] * m[(k * mRank) + b];
            }
            piM[b] = sum;
        }
        var p = new double[r * r];
        double f = 1 / (1 - nu2);
        for (int a = 0; a < r; a++)
        {
            for (int b = 0; b < r; b++)
            {
                p[(a * r) + b] = m[(a * mRank) + b] + (f * pi[a] * piM[b]);
            }
        }
        return p;
    }

    /// <summary>π: the last components of the leading r eigenvectors.</summary>
    public static double[] LastComponents(double[] ut, int L, int r)
    {
        var pi = new double[r];
        for (int k = 0; k < r; k++)
        {
            pi[k] = ut[(k * L) + L - 1];
        }
        return pi;
    }

    /// <summary>s = U_rᵀ x_K: the last lagged vector in eigenvector coordinates (its projection on the signal subspace).</summary>
    public static double[] Project(double[] ut, int L, int r, ReadOnlySpan<double> lastWindow)
    {
        var s = new double[r];
        for (int k = 0; k < r; k++)
        {
            s[k] = TensorPrimitives.Dot(ut.AsSpan(k * L, L), lastWindow);
        }
        return s;
    }

    /// <summary>Runs the recurrence: ŷ_{N+h} = πᵀ Pʰ s for h = 1…horizon.</summary>
    public static double[] Forecast(ReadOnlySpan<double> p, ReadOnlySpan<double> pi, ReadOnlySpan<double> s, int horizon)
    {
        int r = pi.Length;
        var state = s.ToArray();
        var next = new double[r];
        var y = new double[horizon];
        for (int h = 0; h < horizon; h++)
        {
            for (int a = 0; a < r; a++)
            {
                next[a] = TensorPrimitives.Dot(p.Slice(a * r, r), state);
            }
            (state, next) = (next, state);
            y[h] = TensorPrimitives.Dot(pi, state);
        }
        return y;
    }

    /// <summary>
    /// Impulse response ψ_j = πᵀ Pʲ π of the recurrence (ψ₀ = 1): how a shock to the last observation carries into step j,
    /// used to propagate the noise variance, Var(ŷ_{N+h}) = σ² Σ_{j&lt;h} ψ_j².
    /// </summary>
    public static double[] ImpulseResponse(ReadOnlySpan<double> p, ReadOnlySpan<double> pi, int horizon)
    {
        var psi = new double[horizon];
        if (horizon == 0)
        {
            return psi;
        }
        psi[0] = 1;
        var rest = Forecast(p, pi, pi, horizon - 1);
        rest.CopyTo(psi, 1);
        return psi;
    }

    /// <summary>
    /// Pulls the characteristic roots (eigenvalues of P) with modulus above <paramref name="maxModulus"/> back onto that circle,
    /// as ML.NET's SSA stabilisation does for the unit circle, keeping their phase: P' = V D' V⁻¹ with D in real block form.
    /// Returns the root moduli before stabilisation and P' (or P itself when every root was inside).
    /// </summary>
    public static (double[] Stable, double[] RootModuli, bool Changed) Stabilise(double[] p, int r, double maxModulus)
    {
        var matrix = Matrix<double>.Build.Dense(r, r, (i, j) => p[(i * r) + j]);
        var evd = matrix.Evd();
        var roots = evd.EigenValues.Select(z => z.Magnitude).ToArray();
        if (roots.All(m => m <= maxModulus) || roots.Any(m => !double.IsFinite(m)))
        {
            return (p, roots, false);
        }
        var d = evd.D.Clone();
        for (int i = 0; i < r; i++)
        {
            double modulus = roots[i];
            if (modulus <= maxModulus)
            {
                continue;
            }
            double scale = maxModulus / modulus;
            // A complex pair occupies a 2×2 block [[a, b], [−b, a]]; scaling the block scales both roots' moduli.
            bool pair = i + 1 < r && evd.EigenValues[i].Imaginary != 0;
            int size = pair ? 2 : 1;
            for (int a = i; a < i + size; a++)
            {
                for (int b = i; b < i + size; b++)
                {
                    d[a, b] *= scale;
                }
            }
            i += size - 1;
        }
        var v = evd.EigenVectors;
        var stable = (v * d * v.Inverse()).ToRowMajorArray();
        if (stable.Any(e => !double.IsFinite(e)))
        {
            // Defective P (near-repeated roots): damp the whole recurrence instead of one ill-conditioned root.
            double spectral = roots.Max();
            stable = p.Select(e => e * maxModulus / spectral).ToArray();
        }
        return (stable, roots, true);
    }

    private static void RayleighRitz(double[] q, double[] y, int p, int L, double[] theta, double[] rotatedQ, double[] rotatedY)
    {
        var h = Matrix<double>.Build.Dense(p, p);
        for (int a = 0; a < p; a++)
        {
            for (int b = a; b < p; b++)
            {
                double v = TensorPrimitives.Dot(q.AsSpan(a * L, L), y.AsSpan(b * L, L));
                h[a, b] = v;
                h[b, a] = v;
            }
        }
        var evd = h.Evd(Symmetricity.Symmetric);
        var w = evd.EigenVectors;
        Array.Clear(rotatedQ);
        Array.Clear(rotatedY);
        for (int k = 0; k < p; k++)
        {
            // MathNet sorts eigenvalues ascending; Ritz pair k takes the k-th largest.
            int col = p - 1 - k;
            theta[k] = evd.EigenValues[col].Real;
            var qk = rotatedQ.AsSpan(k * L, L);
            var yk = rotatedY.AsSpan(k * L, L);
            for (int a = 0; a < p; a++)
            {
                double coef = w[a, col];
                TensorPrimitives.MultiplyAdd(q.AsSpan(a * L, L), coef, qk, qk);
                TensorPrimitives.MultiplyAdd(y.AsSpan(a * L, L), coef, yk, yk);
            }
        }
        Array.Copy(rotatedQ, q, q.Length);
        Array.Copy(rotatedY, y, y.Length);
    }

    private static bool Converged(double[] q, double[] y, double[] theta, int count, int L, double tolerance)
    {
        double bound = tolerance * Math.Abs(theta[0]);
        var residual = new double[L];
        for (int k = 0; k < count; k++)
        {
            TensorPrimitives.MultiplyAdd(q.AsSpan(k * L, L), -theta[k], y.AsSpan(k * L, L), residual);
            if (TensorPrimitives.Norm(residual) > bound)
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>Modified Gram–Schmidt on the rows, twice ("twice is enough", Giraud et al. 2005); a dependent row is replaced.</summary>
    private static void Orthonormalise(double[] q, int p, int L)
    {
        int replacements = 0;
        for (int pass = 0; pass < 2; pass++)
        {
            for (int a = 0; a < p; a++)
            {
                var qa = q.AsSpan(a * L, L);
                for (int b = 0; b < a; b++)
                {
                    var qb = q.AsSpan(b * L, L);
                    TensorPrimitives.MultiplyAdd(qb, -TensorPrimitives.Dot(qa, qb), qa, qa);
                }
                double norm = TensorPrimitives.Norm(qa);
                if (norm < 1e-12)
                {
                    qa.Clear();
                    qa[(a + (7919 * ++replacements)) % L] = 1;
                    a--;
                    continue;
                }
                TensorPrimitives.Divide(qa, norm, qa);
            }
        }
    }
}
