using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using Forecaster.Training.Numerics;
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
        int first = 0;
        for (; first + 4 <= L; first += 4)
        {
            ExactDot.Dot4(x.Slice(0, K), x.Slice(first, K), x.Slice(first + 1, K), x.Slice(first + 2, K), x.Slice(first + 3, K),
                out c[first], out c[first + 1], out c[first + 2], out c[first + 3]);
        }
        for (; first < L; first++)
        {
            c[first] = ExactDot.Dot(x.Slice(0, K), x.Slice(first, K));
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
            Multiply(c, L, q, p, y);
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
                m[(a * r) + b] = ExactDot.Dot(ut.AsSpan(a * L, L - 1), ut.AsSpan((b * L) + 1, L - 1));
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
        double nu2 = ExactDot.Dot(pi, pi);
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

    /// <summary>
    /// Rank selection's trials: for every rank r = 1 … <paramref name="maxRank"/>, the recurrence of rank r
    /// (<see cref="RecurrenceMatrix"/>) run from the first r components of <paramref name="s"/> (<see cref="Forecast"/>) for
    /// <paramref name="actual"/>'s length, and the sum of its absolute errors against <paramref name="actual"/> in step order;
    /// +∞ at index 0, for a rank without a recurrence and for an error that is not finite. <paramref name="pi"/> holds the last
    /// components of the leading maxRank eigenvectors. The same figures as those two functions rank by rank, without their
    /// arrays per rank: (πᵀM)_b is carried from rank to rank (its sum over k &lt; r is the running sum's value after r terms)
    /// and P is written straight into the layout its products use.
    /// </summary>
    public static double[] RankErrors(ReadOnlySpan<double> m, int mRank, int maxRank, ReadOnlySpan<double> pi, ReadOnlySpan<double> s, ReadOnlySpan<double> actual)
    {
        var errors = new double[maxRank + 1];
        errors.AsSpan().Fill(double.PositiveInfinity);
        var piM = new double[maxRank];
        var state = new double[maxRank];
        var next = new double[maxRank];
        var pooled = ArrayPool<double>.Shared.Rent(Math.Max(ExactDot.ColumnsLength(maxRank), maxRank * maxRank));
        var p = pooled.AsSpan();
        for (int r = 1; r <= maxRank; r++)
        {
            double last = pi[r - 1];
            for (int b = 0; b < maxRank; b++)
            {
                piM[b] += last * m[((r - 1) * mRank) + b];
            }
            var piR = pi[..r];
            double nu2 = ExactDot.Dot(piR, piR);
            if (nu2 >= 1 - 1e-9)
            {
                continue;
            }
            double f = 1 / (1 - nu2);
            bool byRows = ExactDot.MultipliesRows(r);
            int stride = (r + 7) / 8 * 8;
            for (int a = 0; a < r; a++)
            {
                double fa = f * pi[a];
                for (int b = 0; b < r; b++)
                {
                    double entry = m[(a * mRank) + b] + (fa * piM[b]);
                    p[byRows ? (b * stride) + a : (a * r) + b] = entry;
                }
            }
            if (byRows)
            {
                // MultiplyRows' padding rows: computed and dropped, zeros keep them finite (as ColumnsForRows lays them).
                for (int b = 0; b < r; b++)
                {
                    p.Slice((b * stride) + r, stride - r).Clear();
                }
            }
            var current = state.AsSpan(0, r);
            var following = next.AsSpan(0, r);
            s[..r].CopyTo(current);
            double error = 0;
            for (int h = 0; h < actual.Length; h++)
            {
                if (byRows)
                {
                    ExactDot.MultiplyRows(p, r, current, following);
                }
                else
                {
                    for (int a = 0; a < r; a++)
                    {
                        following[a] = ExactDot.Dot(p.Slice(a * r, r), current);
                    }
                }
                var swap = current;
                current = following;
                following = swap;
                error += Math.Abs(ExactDot.Dot(piR, current) - actual[h]);
            }
            errors[r] = double.IsFinite(error) ? error : double.PositiveInfinity;
        }
        ArrayPool<double>.Shared.Return(pooled);
        return errors;
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
            s[k] = ExactDot.Dot(ut.AsSpan(k * L, L), lastWindow);
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
        // Each step's P·s as r dot products (ExactDot), eight rows at a time where that pays (the layout is scratch, pooled:
        // rank selection runs thirty recurrences per fit).
        var pooled = ArrayPool<double>.Shared.Rent(ExactDot.ColumnsLength(r));
        bool byRows = ExactDot.ColumnsForRows(p, r, pooled);
        for (int h = 0; h < horizon; h++)
        {
            if (byRows)
            {
                ExactDot.MultiplyRows(pooled, r, state, next);
            }
            else
            {
                for (int a = 0; a < r; a++)
                {
                    next[a] = ExactDot.Dot(p.Slice(a * r, r), state);
                }
            }
            (state, next) = (next, state);
            y[h] = ExactDot.Dot(pi, state);
        }
        ArrayPool<double>.Shared.Return(pooled);
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

    // Y = Q C (rows of Q and Y are the p vectors; C is symmetric, so row i of C is its column i): each entry is the dot product
    // of C's row with Q's row, four rows of Q at a time so that each block of C's row is loaded once for all four.
    private static void Multiply(ReadOnlySpan<double> c, int L, double[] q, int p, double[] y)
    {
        int a = 0;
        for (; a + 4 <= p; a += 4)
        {
            var q0 = q.AsSpan(a * L, L);
            var q1 = q.AsSpan((a + 1) * L, L);
            var q2 = q.AsSpan((a + 2) * L, L);
            var q3 = q.AsSpan((a + 3) * L, L);
            for (int i = 0; i < L; i++)
            {
                ExactDot.Dot4(c.Slice(i * L, L), q0, q1, q2, q3, out y[(a * L) + i], out y[((a + 1) * L) + i], out y[((a + 2) * L) + i], out y[((a + 3) * L) + i]);
            }
        }
        for (; a < p; a++)
        {
            var qa = q.AsSpan(a * L, L);
            for (int i = 0; i < L; i++)
            {
                y[(a * L) + i] = ExactDot.Dot(c.Slice(i * L, L), qa);
            }
        }
    }

    private static void RayleighRitz(double[] q, double[] y, int p, int L, double[] theta, double[] rotatedQ, double[] rotatedY)
    {
        // H = Q Yᵀ = Q C Qᵀ (p×p, symmetric), row-major.
        var h = new double[p * p];
        for (int a = 0; a < p; a++)
        {
            var qa = q.AsSpan(a * L, L);
            int b = a;
            for (; b + 4 <= p; b += 4)
            {
                ExactDot.Dot4(qa, y.AsSpan(b * L, L), y.AsSpan((b + 1) * L, L), y.AsSpan((b + 2) * L, L), y.AsSpan((b + 3) * L, L),
                    out double v0, out double v1, out double v2, out double v3);
                (h[(a * p) + b], h[(a * p) + b + 1], h[(a * p) + b + 2], h[(a * p) + b + 3]) = (v0, v1, v2, v3);
                (h[(b * p) + a], h[((b + 1) * p) + a], h[((b + 2) * p) + a], h[((b + 3) * p) + a]) = (v0, v1, v2, v3);
            }
            for (; b < p; b++)
            {
                double v = ExactDot.Dot(qa, y.AsSpan(b * L, L));
                h[(a * p) + b] = v;
                h[(b * p) + a] = v;
            }
        }
        Span<double> eigenvalues = stackalloc double[p];
        Span<double> scratch = stackalloc double[p];
        SymmetricEigen.DecomposeToRows(h, p, eigenvalues, scratch);
        // Eigenvalues come ascending, eigenvectors as rows; Ritz pair k takes the k-th largest: rotation[k, a] = W[a, p − 1 − k].
        var rotation = new double[p * p];
        for (int k = 0; k < p; k++)
        {
            int col = p - 1 - k;
            theta[k] = eigenvalues[col];
            h.AsSpan(col * p, p).CopyTo(rotation.AsSpan(k * p, p));
        }
        Rotate(q, rotation, p, L, rotatedQ);
        Rotate(y, rotation, p, L, rotatedY);
        Array.Copy(rotatedQ, q, q.Length);
        Array.Copy(rotatedY, y, y.Length);
    }

    // dest[k] = Σ_a rotation[k, a] · src[a] over rows of length L, each element summed from zero in the order a = 0, 1, …
    // with the product and the sum rounded separately, as one TensorPrimitives.MultiplyAdd per (k, a) into a cleared row
    // would; but four rows of dest and eight elements stay in registers across all a, so src is read once per four rows.
    private static void Rotate(double[] src, double[] rotation, int p, int L, double[] dest)
    {
        int vectorised = L - (L % 8);
        int k = 0;
        for (; k + 4 <= p; k += 4)
        {
            var r0 = rotation.AsSpan(k * p, p);
            var r1 = rotation.AsSpan((k + 1) * p, p);
            var r2 = rotation.AsSpan((k + 2) * p, p);
            var r3 = rotation.AsSpan((k + 3) * p, p);
            for (int e = 0; e < vectorised; e += 8)
            {
                Vector256<double> a0 = default, b0 = default, a1 = default, b1 = default, a2 = default, b2 = default, a3 = default, b3 = default;
                for (int a = 0; a < p; a++)
                {
                    var lo = Vector256.Create<double>(src.AsSpan((a * L) + e, 4));
                    var hi = Vector256.Create<double>(src.AsSpan((a * L) + e + 4, 4));
                    a0 += lo * r0[a];
                    b0 += hi * r0[a];
                    a1 += lo * r1[a];
                    b1 += hi * r1[a];
                    a2 += lo * r2[a];
                    b2 += hi * r2[a];
                    a3 += lo * r3[a];
                    b3 += hi * r3[a];
                }
                a0.CopyTo(dest.AsSpan((k * L) + e, 4));
                b0.CopyTo(dest.AsSpan((k * L) + e + 4, 4));
                a1.CopyTo(dest.AsSpan(((k + 1) * L) + e, 4));
                b1.CopyTo(dest.AsSpan(((k + 1) * L) + e + 4, 4));
                a2.CopyTo(dest.AsSpan(((k + 2) * L) + e, 4));
                b2.CopyTo(dest.AsSpan(((k + 2) * L) + e + 4, 4));
                a3.CopyTo(dest.AsSpan(((k + 3) * L) + e, 4));
                b3.CopyTo(dest.AsSpan(((k + 3) * L) + e + 4, 4));
            }
            for (int e = vectorised; e < L; e++)
            {
                double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
                for (int a = 0; a < p; a++)
                {
                    double v = src[(a * L) + e];
                    s0 += v * r0[a];
                    s1 += v * r1[a];
                    s2 += v * r2[a];
                    s3 += v * r3[a];
                }
                (dest[(k * L) + e], dest[((k + 1) * L) + e], dest[((k + 2) * L) + e], dest[((k + 3) * L) + e]) = (s0, s1, s2, s3);
            }
        }
        for (; k < p; k++)
        {
            var row = rotation.AsSpan(k * p, p);
            for (int e = 0; e < L; e++)
            {
                double sum = 0;
                for (int a = 0; a < p; a++)
                {
                    sum += src[(a * L) + e] * row[a];
                }
                dest[(k * L) + e] = sum;
            }
        }
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
                    TensorPrimitives.MultiplyAdd(qb, -ExactDot.Dot(qa, qb), qa, qa);
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
