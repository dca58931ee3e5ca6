using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Forecaster.Training.Numerics;

/// <summary>
/// Dot products that equal <see cref="TensorPrimitives.Dot{T}(ReadOnlySpan{T}, ReadOnlySpan{T})"/> (System.Numerics.Tensors 10)
/// bit for bit on AVX-512 hardware, where the fitting code was tuned and its forecasts recorded, but cheaper to call: inlined
/// for the short vectors of SSA's recurrences (rank ≤ 30), and four at a time against one shared vector for the subspace
/// iteration's products, so each block of the shared vector is loaded once for four sums.
/// </summary>
/// <remarks>
/// The order of the additions is TensorPrimitives' (its binary aggregation, which does not depend on the data's alignment
/// since .NET 9, dotnet/runtime#106166): with n ≥ 8 one 8-lane accumulator takes, from zero, first the blocks of 64 elements
/// after the first 8 (when n &gt; 64), then the first 8 products, then the remaining whole blocks of 8 in order, then the
/// last (n mod 8) products, and its lanes are summed by <see cref="Vector512.Sum{T}(Vector512{T})"/>; shorter vectors use a
/// 4- or 2-lane accumulator the same way. Products and sums round separately (no fused multiply-add). Without AVX-512 every
/// call goes to TensorPrimitives itself. ExactDotTests compares both on every length up to 300.
/// </remarks>
public static class ExactDot
{
    /// <summary>Σ x[i]·y[i], as TensorPrimitives.Dot computes it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Dot(ReadOnlySpan<double> x, ReadOnlySpan<double> y)
    {
        if (!Vector512.IsHardwareAccelerated || x.Length != y.Length)
        {
            return TensorPrimitives.Dot(x, y);
        }
        ref double xr = ref MemoryMarshal.GetReference(x);
        ref double yr = ref MemoryMarshal.GetReference(y);
        return x.Length >= 8 ? Dot8(ref xr, ref yr, x.Length) : DotShort(ref xr, ref yr, x.Length);
    }

    /// <summary>
    /// The four dot products of <paramref name="c"/> with <paramref name="q0"/>…<paramref name="q3"/> (all of c's length),
    /// each as <see cref="Dot"/> computes it.
    /// </summary>
    public static void Dot4(ReadOnlySpan<double> c, ReadOnlySpan<double> q0, ReadOnlySpan<double> q1, ReadOnlySpan<double> q2, ReadOnlySpan<double> q3, out double d0, out double d1, out double d2, out double d3)
    {
        int n = c.Length;
        if (!Vector512.IsHardwareAccelerated || n < 8 || q0.Length != n || q1.Length != n || q2.Length != n || q3.Length != n)
        {
            (d0, d1, d2, d3) = (Dot(c, q0), Dot(c, q1), Dot(c, q2), Dot(c, q3));
            return;
        }
        ref double cr = ref MemoryMarshal.GetReference(c);
        ref double r0 = ref MemoryMarshal.GetReference(q0);
        ref double r1 = ref MemoryMarshal.GetReference(q1);
        ref double r2 = ref MemoryMarshal.GetReference(q2);
        ref double r3 = ref MemoryMarshal.GetReference(q3);
        var s0 = Vector512<double>.Zero;
        var s1 = Vector512<double>.Zero;
        var s2 = Vector512<double>.Zero;
        var s3 = Vector512<double>.Zero;
        int i = 0, remainder = n;
        bool firstBlockDone = false;
        if (n > 64)
        {
            (i, remainder, firstBlockDone) = (8, n - 8, true);
            for (; remainder >= 64; i += 64, remainder -= 64)
            {
                for (int k = 0; k < 64; k += 8)
                {
                    var cv = Vector512.LoadUnsafe(ref cr, (nuint)(i + k));
                    s0 += cv * Vector512.LoadUnsafe(ref r0, (nuint)(i + k));
                    s1 += cv * Vector512.LoadUnsafe(ref r1, (nuint)(i + k));
                    s2 += cv * Vector512.LoadUnsafe(ref r2, (nuint)(i + k));
                    s3 += cv * Vector512.LoadUnsafe(ref r3, (nuint)(i + k));
                }
            }
        }
        var c0 = Vector512.LoadUnsafe(ref cr);
        s0 += c0 * Vector512.LoadUnsafe(ref r0);
        s1 += c0 * Vector512.LoadUnsafe(ref r1);
        s2 += c0 * Vector512.LoadUnsafe(ref r2);
        s3 += c0 * Vector512.LoadUnsafe(ref r3);
        int trailing = remainder % 8;
        int blocks = (remainder / 8) - (firstBlockDone ? 0 : 1);
        int whole = i + remainder - trailing;
        for (int k = blocks; k >= 1; k--)
        {
            int at = whole - (8 * k);
            var cv = Vector512.LoadUnsafe(ref cr, (nuint)at);
            s0 += cv * Vector512.LoadUnsafe(ref r0, (nuint)at);
            s1 += cv * Vector512.LoadUnsafe(ref r1, (nuint)at);
            s2 += cv * Vector512.LoadUnsafe(ref r2, (nuint)at);
            s3 += cv * Vector512.LoadUnsafe(ref r3, (nuint)at);
        }
        var keep = LastLanes(trailing);
        var ce = Vector512.LoadUnsafe(ref cr, (nuint)(n - 8));
        s0 += Vector512.ConditionalSelect(keep, ce * Vector512.LoadUnsafe(ref r0, (nuint)(n - 8)), Vector512<double>.Zero);
        s1 += Vector512.ConditionalSelect(keep, ce * Vector512.LoadUnsafe(ref r1, (nuint)(n - 8)), Vector512<double>.Zero);
        s2 += Vector512.ConditionalSelect(keep, ce * Vector512.LoadUnsafe(ref r2, (nuint)(n - 8)), Vector512<double>.Zero);
        s3 += Vector512.ConditionalSelect(keep, ce * Vector512.LoadUnsafe(ref r3, (nuint)(n - 8)), Vector512<double>.Zero);
        (d0, d1, d2, d3) = (Vector512.Sum(s0), Vector512.Sum(s1), Vector512.Sum(s2), Vector512.Sum(s3));
    }

    /// <summary>The length <see cref="ColumnsForRows"/> needs for an r×r matrix.</summary>
    public static int ColumnsLength(int r) => r * ((r + 7) / 8 * 8);

    /// <summary>Whether <see cref="MultiplyRows"/> serves an r×r matrix (AVX-512, 8 ≤ r ≤ 64), as <see cref="ColumnsForRows"/> decides.</summary>
    public static bool MultipliesRows(int r) => Vector512.IsHardwareAccelerated && r >= 8 && r <= 64;

    /// <summary>
    /// Lays the r×r row-major matrix <paramref name="p"/> out for <see cref="MultiplyRows"/> in <paramref name="columns"/>
    /// (column by column, each column padded to a multiple of 8 rows; at least <see cref="ColumnsLength"/> long); false
    /// when MultiplyRows would gain nothing (no AVX-512, r &lt; 8 or r &gt; 64).
    /// </summary>
    public static bool ColumnsForRows(ReadOnlySpan<double> p, int r, Span<double> columns)
    {
        if (!MultipliesRows(r) || p.Length < r * r || columns.Length < ColumnsLength(r))
        {
            return false;
        }
        int stride = (r + 7) / 8 * 8;
        for (int row = 0; row < r; row++)
        {
            for (int c = 0; c < r; c++)
            {
                columns[(c * stride) + row] = p[(row * r) + c];
            }
        }
        // The padding rows' products are computed and dropped; zeros keep them finite.
        for (int c = 0; c < r; c++)
        {
            columns.Slice((c * stride) + r, stride - r).Clear();
        }
        return true;
    }

    /// <summary>
    /// result[a] = <see cref="Dot"/>(row a of the matrix, x) for every row of the r×r matrix laid out by
    /// <see cref="ColumnsForRows"/>: eight rows at a time, one 8-lane vector per lane of Dot's accumulator (lane j of the
    /// eight rows' sums side by side), each taking the same products in the same order, then Dot's final lane sum
    /// ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)) across the eight vectors. A matrix-vector product of SSA's recurrence
    /// (r ≤ 30) is then 8 independent chains of a few additions per eight rows instead of one short dot product and a
    /// horizontal sum per row.
    /// </summary>
    public static void MultiplyRows(ReadOnlySpan<double> columns, int r, ReadOnlySpan<double> x, Span<double> result)
    {
        int stride = (r + 7) / 8 * 8;
        if (columns.Length < r * stride || x.Length < r || result.Length < r)
        {
            throw new ArgumentException("The columns, x or result are shorter than the matrix.");
        }
        int trailing = r % 8, whole = r - trailing;
        ref double cr = ref MemoryMarshal.GetReference(columns);
        ref double xr = ref MemoryMarshal.GetReference(x);
        Span<double> last = stackalloc double[8];
        for (int g = 0; g < stride; g += 8)
        {
            var l0 = Vector512<double>.Zero + Column(ref cr, stride, g, 0, ref xr);
            var l1 = Vector512<double>.Zero + Column(ref cr, stride, g, 1, ref xr);
            var l2 = Vector512<double>.Zero + Column(ref cr, stride, g, 2, ref xr);
            var l3 = Vector512<double>.Zero + Column(ref cr, stride, g, 3, ref xr);
            var l4 = Vector512<double>.Zero + Column(ref cr, stride, g, 4, ref xr);
            var l5 = Vector512<double>.Zero + Column(ref cr, stride, g, 5, ref xr);
            var l6 = Vector512<double>.Zero + Column(ref cr, stride, g, 6, ref xr);
            var l7 = Vector512<double>.Zero + Column(ref cr, stride, g, 7, ref xr);
            for (int o = 8; o < whole; o += 8)
            {
                l0 += Column(ref cr, stride, g, o, ref xr);
                l1 += Column(ref cr, stride, g, o + 1, ref xr);
                l2 += Column(ref cr, stride, g, o + 2, ref xr);
                l3 += Column(ref cr, stride, g, o + 3, ref xr);
                l4 += Column(ref cr, stride, g, o + 4, ref xr);
                l5 += Column(ref cr, stride, g, o + 5, ref xr);
                l6 += Column(ref cr, stride, g, o + 6, ref xr);
                l7 += Column(ref cr, stride, g, o + 7, ref xr);
            }
            // Dot's last (r mod 8) products go to its last lanes; its other lanes add zero, which leaves a sum that started
            // from +0 unchanged.
            if (trailing > 0)
            {
                int e = r - 8;
                if (trailing >= 8) { l0 += Column(ref cr, stride, g, e, ref xr); }
                if (trailing >= 7) { l1 += Column(ref cr, stride, g, e + 1, ref xr); }
                if (trailing >= 6) { l2 += Column(ref cr, stride, g, e + 2, ref xr); }
                if (trailing >= 5) { l3 += Column(ref cr, stride, g, e + 3, ref xr); }
                if (trailing >= 4) { l4 += Column(ref cr, stride, g, e + 4, ref xr); }
                if (trailing >= 3) { l5 += Column(ref cr, stride, g, e + 5, ref xr); }
                if (trailing >= 2) { l6 += Column(ref cr, stride, g, e + 6, ref xr); }
                l7 += Column(ref cr, stride, g, e + 7, ref xr);
            }
            var sum = ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7));
            if (g + 8 <= r)
            {
                sum.CopyTo(result.Slice(g, 8));
            }
            else
            {
                sum.CopyTo(last);
                last[..(r - g)].CopyTo(result.Slice(g, r - g));
            }
        }
    }

    // Column c's entries for rows g…g + 7, times x[c].
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<double> Column(ref double columns, int stride, int g, int c, ref double x) =>
        Vector512.LoadUnsafe(ref columns, (nuint)((c * stride) + g)) * Vector512.Create(Unsafe.Add(ref x, c));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static double Dot8(ref double xr, ref double yr, int n)
    {
        var sum = Vector512<double>.Zero;
        int i = 0, remainder = n;
        bool firstBlockDone = false;
        if (n > 64)
        {
            (i, remainder, firstBlockDone) = (8, n - 8, true);
            for (; remainder >= 64; i += 64, remainder -= 64)
            {
                for (int k = 0; k < 64; k += 8)
                {
                    sum += Vector512.LoadUnsafe(ref xr, (nuint)(i + k)) * Vector512.LoadUnsafe(ref yr, (nuint)(i + k));
                }
            }
        }
        sum += Vector512.LoadUnsafe(ref xr) * Vector512.LoadUnsafe(ref yr);
        int trailing = remainder % 8;
        int blocks = (remainder / 8) - (firstBlockDone ? 0 : 1);
        int whole = i + remainder - trailing;
        for (int k = blocks; k >= 1; k--)
        {
            int at = whole - (8 * k);
            sum += Vector512.LoadUnsafe(ref xr, (nuint)at) * Vector512.LoadUnsafe(ref yr, (nuint)at);
        }
        var end = Vector512.LoadUnsafe(ref xr, (nuint)(n - 8)) * Vector512.LoadUnsafe(ref yr, (nuint)(n - 8));
        sum += Vector512.ConditionalSelect(LastLanes(trailing), end, Vector512<double>.Zero);
        return Vector512.Sum(sum);
    }

    // Fewer than 8 elements: TensorPrimitives' short-vector path (a 4-lane accumulator for 4-7, a 2-lane one for 2-3).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static double DotShort(ref double xr, ref double yr, int n)
    {
        if (n >= 4)
        {
            var sum = Vector256<double>.Zero + (Vector256.LoadUnsafe(ref xr) * Vector256.LoadUnsafe(ref yr));
            if (n > 4)
            {
                var end = Vector256.LoadUnsafe(ref xr, (nuint)(n - 4)) * Vector256.LoadUnsafe(ref yr, (nuint)(n - 4));
                var keep = Vector256.GreaterThanOrEqual(Vector256.Create(0L, 1, 2, 3), Vector256.Create((long)(8 - n))).AsDouble();
                sum += Vector256.ConditionalSelect(keep, end, Vector256<double>.Zero);
            }
            return Vector256.Sum(sum);
        }
        if (n >= 2)
        {
            var sum = Vector128<double>.Zero + (Vector128.LoadUnsafe(ref xr) * Vector128.LoadUnsafe(ref yr));
            if (n == 3)
            {
                var end = Vector128.LoadUnsafe(ref xr, 1) * Vector128.LoadUnsafe(ref yr, 1);
                sum += Vector128.ConditionalSelect(Vector128.Create(0L, -1L).AsDouble(), end, Vector128<double>.Zero);
            }
            return Vector128.Sum(sum);
        }
        return n == 1 ? 0.0 + (xr * yr) : 0.0;
    }

    // The last `count` of eight lanes.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<double> LastLanes(int count) =>
        Vector512.GreaterThanOrEqual(Vector512.Create(0L, 1, 2, 3, 4, 5, 6, 7), Vector512.Create((long)(8 - count))).AsDouble();
}
