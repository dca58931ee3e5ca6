namespace Forecaster.Training.Numerics;

/// <summary>
/// Eigenvalues and eigenvectors of a small dense symmetric matrix: Householder reduction to tridiagonal form and the implicit
/// QL algorithm (Wilkinson &amp; Reinsch, "Handbook for Automatic Computation II", 1971, procedures tred2 and tql2, as in
/// EISPACK and the public-domain JAMA). The same operations in the same order as MathNet.Numerics 5's managed
/// <c>Evd(Symmetricity.Symmetric)</c>, so the same figures to the last bit (SymmetricEigenTests), without its matrix objects,
/// complex eigenvalue vector and block-diagonal copy: SSA's Rayleigh–Ritz step solves one 34×34 problem per sweep.
/// </summary>
public static class SymmetricEigen
{
    /// <summary>
    /// Decomposes the symmetric n×n matrix in <paramref name="v"/> (row-major; only its values matter, both triangles) in
    /// place: afterwards column j of <paramref name="v"/> is the unit eigenvector of <paramref name="d"/>[j], the eigenvalues
    /// in ascending order. <paramref name="e"/> is scratch of length n.
    /// </summary>
    public static void Decompose(Span<double> v, int n, Span<double> d, Span<double> e)
    {
        if (v.Length < n * n || d.Length < n || e.Length < n)
        {
            throw new ArgumentException("v needs n² entries, d and e n each.");
        }
        Tridiagonalise(v, n, d, e);
        Diagonalise(v, n, d, e);
    }

    // tred2: V is reduced to the accumulated orthogonal transformation, d and e to the tridiagonal matrix's diagonal and
    // sub-diagonal (e[0] = 0).
    private static void Tridiagonalise(Span<double> v, int n, Span<double> d, Span<double> e)
    {
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
                for (int j = 0; j < i; j++)
                {
                    e[j] = 0.0;
                }
                for (int j = 0; j < i; j++)
                {
                    f = d[j];
                    v[(j * n) + i] = f;
                    g = e[j] + (v[(j * n) + j] * f);
                    for (int k = j + 1; k <= i - 1; k++)
                    {
                        g += v[(k * n) + j] * d[k];
                        e[k] += v[(k * n) + j] * f;
                    }
                    e[j] = g;
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
                for (int j = 0; j < i; j++)
                {
                    f = d[j];
                    g = e[j];
                    for (int k = j; k <= i - 1; k++)
                    {
                        v[(k * n) + j] -= (f * e[k]) + (g * d[k]);
                    }
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
                for (int j = 0; j <= i; j++)
                {
                    double g = 0.0;
                    for (int k = 0; k <= i; k++)
                    {
                        g += v[(k * n) + i + 1] * v[(k * n) + j];
                    }
                    for (int k = 0; k <= i; k++)
                    {
                        v[(k * n) + j] -= g * d[k];
                    }
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

    // tql2: the implicit QL iterations with Wilkinson shifts on the tridiagonal matrix, accumulating the rotations into V,
    // then the eigenpairs sorted by eigenvalue (a selection sort, so equal eigenvalues keep their order).
    private static void Diagonalise(Span<double> v, int n, Span<double> d, Span<double> e)
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
                        for (int k = 0; k < n; k++)
                        {
                            h = v[(k * n) + i + 1];
                            v[(k * n) + i + 1] = (s * v[(k * n) + i]) + (c * h);
                            v[(k * n) + i] = (c * v[(k * n) + i]) - (s * h);
                        }
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
                    (v[(j * n) + i], v[(j * n) + k]) = (v[(j * n) + k], v[(j * n) + i]);
                }
            }
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
