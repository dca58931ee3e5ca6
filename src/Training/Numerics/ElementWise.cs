using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Forecaster.Training.Numerics;

/// <summary>
/// Element-by-element kernels shared by the exact solvers (<see cref="SymmetricEigen"/>, ridge's Cholesky factor): four
/// elements to a vector, each element getting exactly the scalar procedure's operations (the product rounded, then the
/// difference), so the figures stay those of the procedures they replace, to the last bit.
/// </summary>
public static class ElementWise
{
    /// <summary>dest[k] −= src[k] · w for k &lt; dest.Length.</summary>
    public static void SubtractScaled(Span<double> dest, ReadOnlySpan<double> src, double w)
    {
        ref double d = ref MemoryMarshal.GetReference(dest);
        ref double s = ref MemoryMarshal.GetReference(src);
        var wv = Vector256.Create(w);
        int k = 0;
        for (; k + 4 <= dest.Length; k += 4)
        {
            (Vector256.LoadUnsafe(ref d, (nuint)k) - (Vector256.LoadUnsafe(ref s, (nuint)k) * wv)).StoreUnsafe(ref d, (nuint)k);
        }
        for (; k < dest.Length; k++)
        {
            Unsafe.Add(ref d, k) -= Unsafe.Add(ref s, k) * w;
        }
    }
}
