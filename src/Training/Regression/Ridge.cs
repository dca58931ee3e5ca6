using System.Numerics.Tensors;
using MathNet.Numerics.LinearAlgebra;

namespace Forecaster.Training.Regression;

/// <summary>
/// Ridge regression β(λ) = (XᵀX + λI)⁻¹ Xᵀy on centred, standardised features (Hoerl &amp; Kennard, Technometrics 1970),
/// with the whole penalty path from one eigendecomposition XᵀX = V D Vᵀ: β(λ) = V (D + λI)⁻¹ Vᵀ Xᵀy.
/// </summary>
public static class Ridge
{
    /// <summary>Adds rows [from, to) of the row-major design <paramref name="x"/> (p columns) into G = XᵀX and b = Xᵀy.</summary>
    public static void Accumulate(ReadOnlySpan<double> x, ReadOnlySpan<double> y, int p, int from, int to, double[] g, double[] b)
    {
        for (int i = from; i < to; i++)
        {
            var row = x.Slice(i * p, p);
            for (int a = 0; a < p; a++)
            {
                var ga = g.AsSpan((a * p) + a, p - a);
                TensorPrimitives.MultiplyAdd(row[a..], row[a], ga, ga);
            }
            TensorPrimitives.MultiplyAdd(row, y[i], b, b);
        }
    }

    /// <summary>Symmetric eigendecomposition of G (upper triangle filled by <see cref="Accumulate"/>) for the penalty path.</summary>
    public static (Matrix<double> V, double[] D) Decompose(double[] g, int p)
    {
        var m = Matrix<double>.Build.Dense(p, p, (i, j) => i <= j ? g[(i * p) + j] : g[(j * p) + i]);
        var evd = m.Evd(Symmetricity.Symmetric);
        return (evd.EigenVectors, evd.EigenValues.Select(z => Math.Max(z.Real, 0)).ToArray());
    }

    /// <summary>β(λ) = (G + λI)⁻¹ b by Cholesky, for a single penalty.</summary>
    public static double[] Solve(double[] g, double[] b, int p, double lambda)
    {
        var m = Matrix<double>.Build.Dense(p, p, (i, j) => (i <= j ? g[(i * p) + j] : g[(j * p) + i]) + (i == j ? lambda : 0));
        return m.Cholesky().Solve(Vector<double>.Build.Dense(b)).ToArray();
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
        int p = d.Length;
        var vb = v.TransposeThisAndMultiply(Vector<double>.Build.Dense(b));
        for (int k = 0; k < p; k++)
        {
            vb[k] /= d[k] + lambda;
        }
        return (v * vb).ToArray();
    }
}
