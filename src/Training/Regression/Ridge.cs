using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Forecaster.Training.Numerics;
using MathNet.Numerics.LinearAlgebra;

namespace Forecaster.Training.Regression;

/// <summary>
/// Ridge regression β(λ) = (XᵀX + λI)⁻¹ Xᵀy on centred, standardised features (Hoerl &amp; Kennard, Technometrics 1970),
/// with the whole penalty path from one eigendecomposition XᵀX = V D Vᵀ: β(λ) = V (D + λI)⁻¹ Vᵀ Xᵀy.
/// </summary>
public static class Ridge
{
    /// <summary>
    /// Adds rows [from, to) of the row-major design <paramref name="x"/> (p columns) into G = XᵀX (its upper triangle) and
    /// b = Xᵀy. Each entry adds its rows' products in row order, one rounding for the product and one for the sum, exactly as
    /// one rank-one update per row would; but blocks of four entries stay in vector registers across all the rows, four blocks
    /// at a time, instead of going through memory once per row (the register blocking of Goto &amp; van de Geijn, "Anatomy of
    /// high-performance matrix multiplication", ACM TOMS 2008).
    /// </summary>
    public static void Accumulate(ReadOnlySpan<double> x, ReadOnlySpan<double> y, int p, int from, int to, double[] g, double[] b)
    {
        if (from < 0 || to < from || x.Length < to * p || y.Length < to || g.Length < p * p || b.Length < p)
        {
            throw new ArgumentException("The design, the targets, G or b are shorter than the rows and columns given.");
        }
        int a = 0;
        // Two rows of G per pass over the design while both have at least four entries from row a's diagonal on (issue 16).
        for (; a + 1 < p && p - a >= 4; a += 2)
        {
            AddWeightedRowPair(x, p, from, to, a, g.AsSpan(a * p, p), g.AsSpan((a + 1) * p, p));
        }
        for (; a < p; a++)
        {
            AddWeightedRows(x, p, from, to, a, a, default, g.AsSpan(a * p, p));
        }
        AddWeightedRows(x, p, from, to, 0, -1, y, b);
    }

    // Rows a and a + 1 of G at once: destA[c] += Σ x[i, a] · x[i, c] and destB[c] += Σ x[i, a + 1] · x[i, c], adding in row
    // order as AddWeightedRows does, in row a's column blocks (from a on, the last at p − 4): each block of the design row is
    // loaded once for both, and eight independent sums instead of four keep the adders busy. Row a + 1's block starting at
    // column a holds the lower-triangle entry G[a + 1, a] in its first lane, which is computed and never stored.
    private static void AddWeightedRowPair(ReadOnlySpan<double> x, int p, int from, int to, int a, Span<double> destA, Span<double> destB)
    {
        int blocks = (p - a + 3) / 4;
        ref double xr = ref MemoryMarshal.GetReference(x);
        ref double ar = ref MemoryMarshal.GetReference(destA);
        ref double br = ref MemoryMarshal.GetReference(destB);
        var lastA = Vector256.LoadUnsafe(ref ar, (nuint)(p - 4));
        var lastB = Vector256.LoadUnsafe(ref br, (nuint)(p - 4));
        for (int k0 = 0; k0 < blocks; k0 += 4)
        {
            int s0 = k0 >= blocks - 1 ? p - 4 : a + (4 * k0);
            int s1 = k0 + 1 >= blocks - 1 ? p - 4 : a + (4 * (k0 + 1));
            int s2 = k0 + 2 >= blocks - 1 ? p - 4 : a + (4 * (k0 + 2));
            int s3 = k0 + 3 >= blocks - 1 ? p - 4 : a + (4 * (k0 + 3));
            var a0 = k0 >= blocks - 1 ? lastA : Vector256.LoadUnsafe(ref ar, (nuint)s0);
            var a1 = k0 + 1 >= blocks - 1 ? lastA : Vector256.LoadUnsafe(ref ar, (nuint)s1);
            var a2 = k0 + 2 >= blocks - 1 ? lastA : Vector256.LoadUnsafe(ref ar, (nuint)s2);
            var a3 = k0 + 3 >= blocks - 1 ? lastA : Vector256.LoadUnsafe(ref ar, (nuint)s3);
            var b0 = k0 >= blocks - 1 ? lastB : Vector256.LoadUnsafe(ref br, (nuint)s0);
            var b1 = k0 + 1 >= blocks - 1 ? lastB : Vector256.LoadUnsafe(ref br, (nuint)s1);
            var b2 = k0 + 2 >= blocks - 1 ? lastB : Vector256.LoadUnsafe(ref br, (nuint)s2);
            var b3 = k0 + 3 >= blocks - 1 ? lastB : Vector256.LoadUnsafe(ref br, (nuint)s3);
            for (int i = from; i < to; i++)
            {
                ref double row = ref Unsafe.Add(ref xr, i * p);
                var wa = Vector256.Create(Unsafe.Add(ref row, a));
                var wb = Vector256.Create(Unsafe.Add(ref row, a + 1));
                var x0 = Vector256.LoadUnsafe(ref row, (nuint)s0);
                var x1 = Vector256.LoadUnsafe(ref row, (nuint)s1);
                var x2 = Vector256.LoadUnsafe(ref row, (nuint)s2);
                var x3 = Vector256.LoadUnsafe(ref row, (nuint)s3);
                a0 += wa * x0;
                b0 += wb * x0;
                a1 += wa * x1;
                b1 += wb * x1;
                a2 += wa * x2;
                b2 += wb * x2;
                a3 += wa * x3;
                b3 += wb * x3;
            }
            a0.StoreUnsafe(ref ar, (nuint)s0);
            StoreAbove(b0, ref br, s0, a);
            if (k0 + 1 < blocks)
            {
                a1.StoreUnsafe(ref ar, (nuint)s1);
                StoreAbove(b1, ref br, s1, a);
            }
            if (k0 + 2 < blocks)
            {
                a2.StoreUnsafe(ref ar, (nuint)s2);
                StoreAbove(b2, ref br, s2, a);
            }
            if (k0 + 3 < blocks)
            {
                a3.StoreUnsafe(ref ar, (nuint)s3);
                StoreAbove(b3, ref br, s3, a);
            }
        }
    }

    // Stores a block of row a + 1 of G starting at column `start`, leaving column a (below the diagonal) as it was.
    private static void StoreAbove(Vector256<double> v, ref double dest, int start, int a)
    {
        if (start != a)
        {
            v.StoreUnsafe(ref dest, (nuint)start);
            return;
        }
        Unsafe.Add(ref dest, start + 1) = v.GetElement(1);
        Unsafe.Add(ref dest, start + 2) = v.GetElement(2);
        Unsafe.Add(ref dest, start + 3) = v.GetElement(3);
    }

    // dest[c] += Σ_{i ∈ [from, to)} w_i · x[i, c] for every c in [first, p), adding in row order, with w_i = x[i, weightColumn]
    // (row weightColumn of G) or, when weightColumn < 0, y[i] (b). Columns go in blocks of four: first + 4k, the last block at
    // p − 4, overlapping its neighbour when the width is not a multiple of four. Every block starts from dest's values as
    // they were before any block was stored, so an overlapping lane is computed twice from the same start and stored twice
    // with the same value.
    private static void AddWeightedRows(ReadOnlySpan<double> x, int p, int from, int to, int first, int weightColumn, ReadOnlySpan<double> y, Span<double> dest)
    {
        int width = p - first;
        if (width < 4)
        {
            for (int c = first; c < p; c++)
            {
                double sum = dest[c];
                for (int i = from; i < to; i++)
                {
                    sum += (weightColumn >= 0 ? x[(i * p) + weightColumn] : y[i]) * x[(i * p) + c];
                }
                dest[c] = sum;
            }
            return;
        }
        int blocks = (width + 3) / 4;
        ref double xr = ref MemoryMarshal.GetReference(x);
        ref double dr = ref MemoryMarshal.GetReference(dest);
        var lastStart = Vector256.LoadUnsafe(ref dr, (nuint)(p - 4));
        for (int k0 = 0; k0 < blocks; k0 += 4)
        {
            // Four blocks at once (four independent sums hide the adder's latency); past the last block, copies of it.
            int s0 = k0 >= blocks - 1 ? p - 4 : first + (4 * k0);
            int s1 = k0 + 1 >= blocks - 1 ? p - 4 : first + (4 * (k0 + 1));
            int s2 = k0 + 2 >= blocks - 1 ? p - 4 : first + (4 * (k0 + 2));
            int s3 = k0 + 3 >= blocks - 1 ? p - 4 : first + (4 * (k0 + 3));
            var v0 = k0 >= blocks - 1 ? lastStart : Vector256.LoadUnsafe(ref dr, (nuint)s0);
            var v1 = k0 + 1 >= blocks - 1 ? lastStart : Vector256.LoadUnsafe(ref dr, (nuint)s1);
            var v2 = k0 + 2 >= blocks - 1 ? lastStart : Vector256.LoadUnsafe(ref dr, (nuint)s2);
            var v3 = k0 + 3 >= blocks - 1 ? lastStart : Vector256.LoadUnsafe(ref dr, (nuint)s3);
            for (int i = from; i < to; i++)
            {
                ref double row = ref Unsafe.Add(ref xr, i * p);
                var w = Vector256.Create(weightColumn >= 0 ? Unsafe.Add(ref row, weightColumn) : y[i]);
                v0 += w * Vector256.LoadUnsafe(ref row, (nuint)s0);
                v1 += w * Vector256.LoadUnsafe(ref row, (nuint)s1);
                v2 += w * Vector256.LoadUnsafe(ref row, (nuint)s2);
                v3 += w * Vector256.LoadUnsafe(ref row, (nuint)s3);
            }
            v0.StoreUnsafe(ref dr, (nuint)s0);
            if (k0 + 1 < blocks)
            {
                v1.StoreUnsafe(ref dr, (nuint)s1);
            }
            if (k0 + 2 < blocks)
            {
                v2.StoreUnsafe(ref dr, (nuint)s2);
            }
            if (k0 + 3 < blocks)
            {
                v3.StoreUnsafe(ref dr, (nuint)s3);
            }
        }
    }

    /// <summary>Symmetric eigendecomposition of G (upper triangle filled by <see cref="Accumulate"/>) for the penalty path.</summary>
    public static (Matrix<double> V, double[] D) Decompose(double[] g, int p)
    {
        var (v, d) = DecomposeRows(g, p);
        return (Matrix<double>.Build.Dense(p, p, (i, j) => v[(i * p) + j]), d);
    }

    /// <summary>
    /// <see cref="Decompose"/> with V as a row-major array (column k the eigenvector of D[k], eigenvalues ascending and
    /// clipped at zero): MathNet's symmetric Evd operation for operation (SymmetricEigen), without its intermediate objects.
    /// </summary>
    public static (double[] V, double[] D) DecomposeRows(double[] g, int p)
    {
        var v = new double[p * p];
        for (int i = 0; i < p; i++)
        {
            for (int j = 0; j < p; j++)
            {
                v[(i * p) + j] = i <= j ? g[(i * p) + j] : g[(j * p) + i];
            }
        }
        var d = new double[p];
        SymmetricEigen.Decompose(v, p, d, new double[p]);
        for (int k = 0; k < p; k++)
        {
            d[k] = Math.Max(d[k], 0);
        }
        return (v, d);
    }

    /// <summary>
    /// β(λ) = (G + λI)⁻¹ b by Cholesky, for a single penalty: G + λI = L Lᵀ factored column by column (each entry below the
    /// diagonal updated by its column's predecessors in order, then divided by the pivot), then L y = b (each y_i's sum
    /// taken from the nearest column back) and Lᵀ β = y. The order of MathNet 5's DenseCholesky and its solve, which the
    /// ridge fits used before (ExactNumericsTests), without its matrix objects.
    /// </summary>
    /// <exception cref="ArgumentException">G + λI is not positive definite (as MathNet's).</exception>
    public static double[] Solve(double[] g, double[] b, int p, double lambda)
    {
        // L stored by column (lt[c, i] = L[i, c]): each column update below runs along a contiguous row, four entries to a
        // vector, each entry with the same operations in the same order as the column-by-column loops.
        var lt = new double[p * p];
        for (int c = 0; c < p; c++)
        {
            for (int i = c; i < p; i++)
            {
                lt[(c * p) + i] = g[(c * p) + i] + (i == c ? lambda : 0);
            }
        }
        for (int j = 0; j < p; j++)
        {
            double pivot = lt[(j * p) + j];
            if (!(pivot > 0.0))
            {
                throw new ArgumentException("Matrix must be positive definite.");
            }
            pivot = Math.Sqrt(pivot);
            lt[(j * p) + j] = pivot;
            for (int i = j + 1; i < p; i++)
            {
                lt[(j * p) + i] /= pivot;
            }
            var column = lt.AsSpan(j * p, p);
            for (int c = j + 1; c < p; c++)
            {
                // L[i, c] −= L[i, j] · L[c, j] for i ≥ c.
                ElementWise.SubtractScaled(lt.AsSpan((c * p) + c, p - c), column[c..], column[c]);
            }
        }
        var y = b[..p];
        for (int i = 0; i < p; i++)
        {
            double sum = y[i];
            for (int k = i - 1; k >= 0; k--)
            {
                sum -= lt[(k * p) + i] * y[k];
            }
            y[i] = sum / lt[(i * p) + i];
        }
        for (int i = p - 1; i >= 0; i--)
        {
            double sum = y[i];
            for (int k = i + 1; k < p; k++)
            {
                sum -= lt[(i * p) + k] * y[k];
            }
            y[i] = sum / lt[(i * p) + i];
        }
        return y;
    }

    /// <summary>tr(G) / p: the mean eigenvalue, the unit penalties are given in.</summary>
    public static double MeanEigenvalue(double[] g, int p)
    {
        double trace = 0;
        for (int i = 0; i < p; i++)
        {
            trace += g[(i * p) + i];
        }
        return trace / p;
    }

    /// <summary>β(λ) from a decomposition of G and b = Xᵀy.</summary>
    public static double[] Solve(Matrix<double> v, double[] d, double[] b, double lambda)
    {
        var rows = v.ToRowMajorArray();
        return Solve(rows, d, TransposeTimes(rows, d.Length, b), lambda);
    }

    /// <summary>Vᵀb for a row-major p×p V, each entry summed over the rows in order (as MathNet's product).</summary>
    public static double[] TransposeTimes(double[] v, int p, double[] b)
    {
        var vb = new double[p];
        for (int j = 0; j < p; j++)
        {
            double sum = 0;
            for (int i = 0; i < p; i++)
            {
                sum += v[(i * p) + j] * b[i];
            }
            vb[j] = sum;
        }
        return vb;
    }

    /// <summary>
    /// β(λ) = V (D + λI)⁻¹ Vᵀb from a decomposition of G (row-major V, <see cref="DecomposeRows"/>) and Vᵀb
    /// (<paramref name="vb"/>, which does not depend on λ: a penalty path computes it once for all its penalties); each entry
    /// summed over the columns in order, as MathNet's product.
    /// </summary>
    public static double[] Solve(double[] v, double[] d, double[] vb, double lambda)
    {
        int p = d.Length;
        var scaled = new double[p];
        for (int k = 0; k < p; k++)
        {
            scaled[k] = vb[k] / (d[k] + lambda);
        }
        var beta = new double[p];
        for (int i = 0; i < p; i++)
        {
            double sum = 0;
            for (int k = 0; k < p; k++)
            {
                sum += v[(i * p) + k] * scaled[k];
            }
            beta[i] = sum;
        }
        return beta;
    }
}
