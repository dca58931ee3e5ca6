using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Forecaster.Training.Numerics;

/// <summary>
/// Eigenvalues and eigenvectors of a small dense symmetric matrix: Householder reduction to tridiagonal form and the implicit
/// QL algorithm (Wilkinson &amp; Reinsch, "Handbook for Automatic Computation II", 1971, procedures tred2 and tql2, as in
/// EISPACK and the public-domain JAMA). The same operations in the same order as MathNet.Numerics 5's managed
/// <c>Evd(Symmetricity.Symmetric)</c>, so the same figures to the last bit (SymmetricEigenTests), without its matrix objects,
/// complex eigenvalue vector and block-diagonal copy: SSA's Rayleigh–Ritz step solves one 34×34 problem per sweep.
/// </summary>
/// <remarks>
/// Every element gets the operations tred2 and tql2 give it, in their order; only the order in which independent elements are
/// computed differs, so that their O(n³) loops run four elements to a vector (issue 16): tred2 keeps its working block
/// symmetric (both triangles, where the procedure updates only the lower one; an entry and its mirror get the same two
/// products, added in either order, so the same value), which turns its symmetric matrix–vector product into rows; and tql2
/// rotates V stored by column (eigenvectors as rows), so each rotation runs along two contiguous rows.
/// </remarks>
public static class SymmetricEigen
{
    /// <summary>
    /// Decomposes the symmetric n×n matrix in <paramref name="v"/> (row-major; its lower triangle and diagonal are read) in
    /// place: afterwards column j of <paramref name="v"/> is the unit eigenvector of <paramref name="d"/>[j], the eigenvalues
    /// in ascending order. <paramref name="e"/> is scratch of length n.
    /// </summary>
    public static void Decompose(Span<double> v, int n, Span<double> d, Span<double> e)
    {
        DecomposeToRows(v, n, d, e);
        Transpose(v, n);
    }

    /// <summary>
    /// <see cref="Decompose"/> with the eigenvectors as rows: afterwards row j of <paramref name="v"/> is the unit eigenvector of
    /// <paramref name="d"/>[j] (the same figures, transposed).
    /// </summary>
    public static void DecomposeToRows(Span<double> v, int n, Span<double> d, Span<double> e)
    {
        if (v.Length < n * n || d.Length < n || e.Length < n)
        {
            throw new ArgumentException("v needs n² entries, d and e n each.");
        }
        // The upper triangle mirrors the lower one, which is what tred2 reads.
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < i; j++)
            {
                v[(j * n) + i] = v[(i * n) + j];
            }
        }
        Tridiagonalise(v, n, d, e);
        Transpose(v, n);
        Diagonalise(v, n, d, e);
    }

    private static void Transpose(Span<double> v, int n)
    {
        for (int i = 0; i < n; i++)
        {
            for (int j = i + 1; j < n; j++)
            {
                (v[(i * n) + j], v[(j * n) + i]) = (v[(j * n) + i], v[(i * n) + j]);
            }
        }
    }

    // tred2: V is reduced to the accumulated orthogonal transformation (row-major), d and e to the tridiagonal matrix's
    // diagonal and sub-diagonal (e[0] = 0). The working block (rows and columns below i) is kept symmetric.
    private static void Tridiagonalise(Span<double> v, int n, Span<double> d, Span<double> e)
    {
        // Vector scratch one block longer than a row, so a block that runs past the active columns needs no special case.
        Span<double> sums = stackalloc double[n + 4];
        for (int j = 0; j < n; j++)
        {
            d[j] = v[((n - 1) * n) + j];
        }
        for (int i = n - 1; i > 0; i--)
        {
            double scale = 0.0;
            double h = 0.0;
            for (int k = 0; k < i; k++)
            {
                scale += Math.Abs(d[k]);
            }
            if (scale == 0.0)
            {
                e[i] = d[i - 1];
                for (int j = 0; j < i; j++)
                {
                    d[j] = v[((i - 1) * n) + j];
                    v[(i * n) + j] = 0.0;
                    v[(j * n) + i] = 0.0;
                }
            }
            else
            {
                for (int k = 0; k < i; k++)
                {
                    d[k] /= scale;
                    h += d[k] * d[k];
                }
                double f = d[i - 1];
                double g = Math.Sqrt(h);
                if (f > 0)
                {
                    g = -g;
                }
                e[i] = scale * g;
                h -= f * g;
                d[i - 1] = f - g;
                // e_k = Σ_j A[k, j] d_j over j = 0 … i − 1 in order from zero, as tred2's loop adds them (its e[k] += for j < k,
                // its g for j ≥ k): A is symmetric, so row j holds A[·, j] and each lane k sums its own terms in that order.
                sums[..i].Clear();
                for (int j = 0; j < i; j++)
                {
                    AddScaledRow(v.Slice(j * n, i), d[j], sums);
                }
                for (int j = 0; j < i; j++)
                {
                    e[j] = sums[j];
                    v[(j * n) + i] = d[j];
                }
                f = 0.0;
                for (int j = 0; j < i; j++)
                {
                    e[j] /= h;
                    f += e[j] * d[j];
                }
                double hh = f / (h + h);
                for (int j = 0; j < i; j++)
                {
                    e[j] -= hh * d[j];
                }
                // A[r, c] −= d_c e_r + e_c d_r on both triangles (tred2: A[k, j] −= d_j e_k + e_j d_k for k ≥ j).
                for (int r = 0; r < i; r++)
                {
                    SubtractRankTwo(v.Slice(r * n, i), d[..i], e[..i], e[r], d[r]);
                }
                for (int j = 0; j < i; j++)
                {
                    d[j] = v[((i - 1) * n) + j];
                    v[(i * n) + j] = 0.0;
                }
            }
            d[i] = h;
        }
        for (int i = 0; i < n - 1; i++)
        {
            v[((n - 1) * n) + i] = v[(i * n) + i];
            v[(i * n) + i] = 1.0;
            double h = d[i + 1];
            if (h != 0.0)
            {
                for (int k = 0; k <= i; k++)
                {
                    d[k] = v[(k * n) + i + 1] / h;
                }
                // g_j = Σ_k V[k, i + 1] V[k, j] over k = 0 … i in order, for every j ≤ i at once (no column j is updated before
                // the last g is taken: each g reads column i + 1 and its own column only), then V[k, j] −= g_j d_k.
                sums[..(i + 1)].Clear();
                for (int k = 0; k <= i; k++)
                {
                    AddScaledRow(v.Slice(k * n, i + 1), v[(k * n) + i + 1], sums);
                }
                for (int k = 0; k <= i; k++)
                {
                    ElementWise.SubtractScaled(v.Slice(k * n, i + 1), sums, d[k]);
                }
            }
            for (int k = 0; k <= i; k++)
            {
                v[(k * n) + i + 1] = 0.0;
            }
        }
        for (int j = 0; j < n; j++)
        {
            d[j] = v[((n - 1) * n) + j];
            v[((n - 1) * n) + j] = 0.0;
        }
        v[((n - 1) * n) + n - 1] = 1.0;
        e[0] = 0.0;
    }

    // sums[c] += row[c] · w for c < row.Length (the product rounded, then the sum).
    private static void AddScaledRow(ReadOnlySpan<double> row, double w, Span<double> sums)
    {
        ref double r = ref MemoryMarshal.GetReference(row);
        ref double s = ref MemoryMarshal.GetReference(sums);
        var wv = Vector256.Create(w);
        int c = 0;
        for (; c + 4 <= row.Length; c += 4)
        {
            (Vector256.LoadUnsafe(ref s, (nuint)c) + (Vector256.LoadUnsafe(ref r, (nuint)c) * wv)).StoreUnsafe(ref s, (nuint)c);
        }
        for (; c < row.Length; c++)
        {
            Unsafe.Add(ref s, c) += Unsafe.Add(ref r, c) * w;
        }
    }

    // row[c] −= (d[c] · er) + (e[c] · dr) for c < row.Length.
    private static void SubtractRankTwo(Span<double> row, ReadOnlySpan<double> d, ReadOnlySpan<double> e, double er, double dr)
    {
        ref double r = ref MemoryMarshal.GetReference(row);
        ref double dd = ref MemoryMarshal.GetReference(d);
        ref double ee = ref MemoryMarshal.GetReference(e);
        var erv = Vector256.Create(er);
        var drv = Vector256.Create(dr);
        int c = 0;
        for (; c + 4 <= row.Length; c += 4)
        {
            var update = (Vector256.LoadUnsafe(ref dd, (nuint)c) * erv) + (Vector256.LoadUnsafe(ref ee, (nuint)c) * drv);
            (Vector256.LoadUnsafe(ref r, (nuint)c) - update).StoreUnsafe(ref r, (nuint)c);
        }
        for (; c < row.Length; c++)
        {
            Unsafe.Add(ref r, c) -= (Unsafe.Add(ref dd, c) * er) + (Unsafe.Add(ref ee, c) * dr);
        }
    }

    // tql2: the implicit QL iterations with Wilkinson shifts on the tridiagonal matrix, accumulating the rotations into V
    // (stored by column here: w[j, k] = V[k, j], so each rotation of two columns runs along two rows), then the eigenpairs
    // sorted by eigenvalue (a selection sort, so equal eigenvalues keep their order).
    private static void Diagonalise(Span<double> w, int n, Span<double> d, Span<double> e)
    {
        for (int i = 1; i < n; i++)
        {
            e[i - 1] = e[i];
        }
        e[n - 1] = 0.0;
        double f = 0.0;
        double tst1 = 0.0;
        // MathNet's tolerance (its Precision.DoublePrecision, 2⁻⁵³; JAMA has 2⁻⁵²): the same iterations, so the same figures.
        double eps = Math.Pow(2.0, -53.0);
        for (int l = 0; l < n; l++)
        {
            tst1 = Math.Max(tst1, Math.Abs(d[l]) + Math.Abs(e[l]));
            int m = l;
            while (m < n)
            {
                if (Math.Abs(e[m]) <= eps * tst1)
                {
                    break;
                }
                m++;
            }
            if (m > l)
            {
                do
                {
                    double g = d[l];
                    double p = (d[l + 1] - g) / (2.0 * e[l]);
                    double r = Hypotenuse(p, 1.0);
                    if (p < 0)
                    {
                        r = -r;
                    }
                    d[l] = e[l] / (p + r);
                    d[l + 1] = e[l] * (p + r);
                    double dl1 = d[l + 1];
                    double h = g - d[l];
                    for (int i = l + 2; i < n; i++)
                    {
                        d[i] -= h;
                    }
                    f += h;
                    p = d[m];
                    double c = 1.0;
                    double c2 = c;
                    double c3 = c;
                    double el1 = e[l + 1];
                    double s = 0.0;
                    double s2 = 0.0;
                    for (int i = m - 1; i >= l; i--)
                    {
                        c3 = c2;
                        c2 = c;
                        s2 = s;
                        g = c * e[i];
                        h = c * p;
                        r = Hypotenuse(p, e[i]);
                        e[i + 1] = s * r;
                        s = e[i] / r;
                        c = p / r;
                        p = (c * d[i]) - (s * g);
                        d[i + 1] = h + (s * ((c * g) + (s * d[i])));
                        Rotate(w.Slice(i * n, n), w.Slice((i + 1) * n, n), c, s);
                    }
                    p = -s * s2 * c3 * el1 * e[l] / dl1;
                    e[l] = s * p;
                    d[l] = c * p;
                }
                while (Math.Abs(e[l]) > eps * tst1);
            }
            d[l] += f;
            e[l] = 0.0;
        }
        for (int i = 0; i < n - 1; i++)
        {
            int k = i;
            double p = d[i];
            for (int j = i + 1; j < n; j++)
            {
                if (d[j] < p)
                {
                    k = j;
                    p = d[j];
                }
            }
            if (k != i)
            {
                d[k] = d[i];
                d[i] = p;
                for (int j = 0; j < n; j++)
                {
                    (w[(i * n) + j], w[(k * n) + j]) = (w[(k * n) + j], w[(i * n) + j]);
                }
            }
        }
    }

    // tql2's rotation of columns i and i + 1 of V, here rows a and b: b' = s·a + c·b, a' = c·a − s·b, element by element.
    private static void Rotate(Span<double> a, Span<double> b, double c, double s)
    {
        ref double ar = ref MemoryMarshal.GetReference(a);
        ref double br = ref MemoryMarshal.GetReference(b);
        var cv = Vector256.Create(c);
        var sv = Vector256.Create(s);
        int k = 0;
        for (; k + 4 <= a.Length; k += 4)
        {
            var x = Vector256.LoadUnsafe(ref ar, (nuint)k);
            var y = Vector256.LoadUnsafe(ref br, (nuint)k);
            ((sv * x) + (cv * y)).StoreUnsafe(ref br, (nuint)k);
            ((cv * x) - (sv * y)).StoreUnsafe(ref ar, (nuint)k);
        }
        for (; k < a.Length; k++)
        {
            double h = Unsafe.Add(ref br, k);
            Unsafe.Add(ref br, k) = (s * Unsafe.Add(ref ar, k)) + (c * h);
            Unsafe.Add(ref ar, k) = (c * Unsafe.Add(ref ar, k)) - (s * h);
        }
    }

    // √(a² + b²) without overflow, as JAMA and MathNet's SpecialFunctions.Hypotenuse compute it.
    private static double Hypotenuse(double a, double b)
    {
        if (Math.Abs(a) > Math.Abs(b))
        {
            double r = b / a;
            return Math.Abs(a) * Math.Sqrt(1 + (r * r));
        }
        if (b != 0.0)
        {
            double r = a / b;
            return Math.Abs(b) * Math.Sqrt(1 + (r * r));
        }
        return 0.0;
    }
}
