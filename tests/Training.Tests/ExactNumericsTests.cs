using System.Numerics.Tensors;
using Forecaster.Training.Numerics;
using MathNet.Numerics.LinearAlgebra;

namespace Forecaster.Training.Tests;

/// <summary>
/// The fitting kernels that replace library calls must give the library's figures to the last bit: the recorded forecasts
/// (and the M4 scores) must not move.
/// </summary>
public class ExactNumericsTests
{
    [Fact]
    public void ExactDotEqualsTensorPrimitivesDotOnEveryLengthAndOffset()
    {
        var random = new Random(1);
        for (int n = 0; n <= 300; n++)
        {
            for (int trial = 0; trial < 20; trial++)
            {
                // Offsets into longer arrays: TensorPrimitives' result must not (and does not) depend on the alignment.
                int offset = random.Next(8);
                double scale = Math.Pow(10, random.Next(-5, 6));
                var x = Enumerable.Range(0, n + offset).Select(_ => (random.NextDouble() - 0.3) * scale * (random.Next(10) == 0 ? 1e6 : 1)).ToArray();
                var q = Enumerable.Range(0, 4).Select(_ => Enumerable.Range(0, n).Select(_ => random.NextDouble() - 0.5).ToArray()).ToArray();
                var xs = x.AsSpan(offset, n);
                Assert.Equal(Bits(TensorPrimitives.Dot<double>(xs, q[0])), Bits(ExactDot.Dot(xs, q[0])));
                ExactDot.Dot4(xs, q[0], q[1], q[2], q[3], out var d0, out var d1, out var d2, out var d3);
                double[] four = [d0, d1, d2, d3];
                for (int k = 0; k < 4; k++)
                {
                    Assert.Equal(Bits(TensorPrimitives.Dot<double>(xs, q[k])), Bits(four[k]));
                }
            }
        }
    }

    [Fact]
    public void MultiplyRowsGivesEachRowsExactDot()
    {
        var random = new Random(2);
        for (int r = 1; r <= 70; r++)
        {
            var p = Enumerable.Range(0, r * r).Select(_ => (random.NextDouble() - 0.5) * Math.Pow(10, random.Next(-4, 5))).ToArray();
            var x = Enumerable.Range(0, r).Select(_ => random.NextDouble() - 0.5).ToArray();
            x[random.Next(r)] = 0.0;
            var columns = Enumerable.Repeat(double.NaN, ExactDot.ColumnsLength(r)).ToArray();
            if (!ExactDot.ColumnsForRows(p, r, columns))
            {
                continue;
            }
            var result = new double[r];
            ExactDot.MultiplyRows(columns, r, x, result);
            for (int a = 0; a < r; a++)
            {
                Assert.Equal(Bits(TensorPrimitives.Dot<double>(p.AsSpan(a * r, r), x)), Bits(result[a]));
            }
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(5)]
    [InlineData(13)]
    [InlineData(34)]
    [InlineData(36)]
    [InlineData(48)]
    public void SymmetricEigenEqualsMathNetsSymmetricEvdBitForBit(int n)
    {
        var random = new Random(n);
        for (int trial = 0; trial < 30; trial++)
        {
            var a = new double[n * n];
            for (int i = 0; i < n; i++)
            {
                for (int j = i; j < n; j++)
                {
                    a[(i * n) + j] = a[(j * n) + i] = (random.NextDouble() - 0.5) * Math.Pow(10, random.Next(-3, 4));
                }
            }
            if (trial % 2 == 0)
            {
                // Graded eigenvalues, as in SSA's Rayleigh–Ritz projections and ridge's Gram matrices.
                var graded = new double[n * n];
                for (int i = 0; i < n; i++)
                {
                    for (int j = 0; j < n; j++)
                    {
                        graded[(i * n) + j] = Enumerable.Range(0, n).Sum(k => a[(i * n) + k] * a[(j * n) + k] * Math.Pow(0.3, k));
                    }
                }
                a = graded;
            }
            var evd = Matrix<double>.Build.Dense(n, n, (i, j) => a[(i * n) + j]).Evd(Symmetricity.Symmetric);
            var (v, d) = ((double[])a.Clone(), new double[n]);
            SymmetricEigen.Decompose(v, n, d, new double[n]);
            // The eigenvectors as rows: the same figures, transposed. Only the lower triangle is read (the upper one scrambled).
            var (rows, dRows) = ((double[])a.Clone(), new double[n]);
            for (int i = 0; i < n; i++)
            {
                for (int j = i + 1; j < n; j++)
                {
                    rows[(i * n) + j] = random.NextDouble();
                }
            }
            SymmetricEigen.DecomposeToRows(rows, n, dRows, new double[n]);
            for (int i = 0; i < n; i++)
            {
                Assert.Equal(Bits(evd.EigenValues[i].Real), Bits(d[i]));
                Assert.Equal(Bits(evd.EigenValues[i].Real), Bits(dRows[i]));
                for (int j = 0; j < n; j++)
                {
                    Assert.Equal(Bits(evd.EigenVectors[i, j]), Bits(v[(i * n) + j]));
                    Assert.Equal(Bits(evd.EigenVectors[i, j]), Bits(rows[(j * n) + i]));
                }
            }
        }
    }

    [Theory]
    [InlineData(3)]
    [InlineData(13)]
    [InlineData(36)]
    [InlineData(48)]
    public void RidgeSolvesGiveMathNetsCholeskyAndProductsBitForBit(int p)
    {
        var random = new Random(p);
        for (int trial = 0; trial < 30; trial++)
        {
            int m = (2 * p) + 5;
            var x = Enumerable.Range(0, m * p).Select(_ => random.NextDouble() - 0.5).ToArray();
            var g = new double[p * p];
            for (int i = 0; i < p; i++)
            {
                for (int j = 0; j < p; j++)
                {
                    g[(i * p) + j] = Enumerable.Range(0, m).Sum(r => x[(r * p) + i] * x[(r * p) + j]);
                }
            }
            var b = Enumerable.Range(0, p).Select(_ => random.NextDouble()).ToArray();
            double lambda = Math.Pow(10, random.Next(-4, 1));
            var matrix = Matrix<double>.Build.Dense(p, p, (i, j) => g[(i * p) + j] + (i == j ? lambda : 0));
            var reference = matrix.Cholesky().Solve(Vector<double>.Build.Dense(b)).ToArray();
            Assert.Equal(reference.Select(Bits), Regression.Ridge.Solve(g, b, p, lambda).Select(Bits));

            var (v, d) = Regression.Ridge.DecomposeRows(g, p);
            var vm = Matrix<double>.Build.Dense(p, p, (i, j) => v[(i * p) + j]);
            var vb = vm.TransposeThisAndMultiply(Vector<double>.Build.Dense(b));
            Assert.Equal(vb.ToArray().Select(Bits), Regression.Ridge.TransposeTimes(v, p, b).Select(Bits));
            var scaled = vb.Clone();
            for (int k = 0; k < p; k++)
            {
                scaled[k] /= d[k] + lambda;
            }
            Assert.Equal((vm * scaled).ToArray().Select(Bits), Regression.Ridge.Solve(v, d, vb.ToArray(), lambda).Select(Bits));
        }
    }

    [Fact]
    public void MiddleValuesAreTheSortedOnes()
    {
        var random = new Random(4);
        for (int trial = 0; trial < 3000; trial++)
        {
            int n = 1 + random.Next(trial < 2000 ? 40 : 900);
            // Many ties, sorted runs, zeros of both signs and NaN now and then.
            var values = Enumerable.Range(0, n).Select(i => random.Next(6) switch
            {
                0 => Math.Round(random.NextDouble() * 5),
                1 => i * 0.5,
                2 => random.Next(50) == 0 ? -0.0 : random.Next(50) == 0 ? double.NaN : 1.0,
                _ => (random.NextDouble() - 0.5) * 1e3,
            }).ToArray();
            var before = (double[])values.Clone();
            var sorted = (double[])values.Clone();
            Array.Sort(sorted);
            var (lower, upper) = Series.OrderStatistics.Middle(values);
            Assert.Equal(Bits(sorted[(n - 1) / 2]), Bits(lower));
            Assert.Equal(Bits(sorted[n / 2]), Bits(upper));
            Assert.Equal(before.Select(Bits), values.Select(Bits));
        }
    }

    [Theory]
    [InlineData(48, 30)]
    [InlineData(168, 30)]
    [InlineData(12, 6)]
    public void RankErrorsAreEachRanksRecurrenceRunOnItsOwn(int window, int maxRank)
    {
        var random = new Random(window);
        for (int trial = 0; trial < 5; trial++)
        {
            int n = (4 * window) + 200 + random.Next(100);
            var x = Enumerable.Range(0, n).Select(t => 100 + (20 * Math.Sin(2 * Math.PI * t / 24)) + (5 * Math.Cos(2 * Math.PI * t / 168)) + (0.01 * t) + (trial * random.NextDouble() * 3)).ToArray();
            int stretch = 24, cut = n - stretch;
            var dec = new Ssa.SsaWorkspace().Decompose(x.AsSpan(0, cut), cut, window, maxRank, 24, 168);
            var pi = Ssa.Ssa.LastComponents(dec.Ut, window, maxRank);
            var s = Ssa.Ssa.Project(dec.Ut, window, maxRank, x.AsSpan(cut - window, window));
            var errors = Ssa.Ssa.RankErrors(dec.Shift, dec.Count, maxRank, pi, s, x.AsSpan(cut, stretch));
            Assert.Equal(Bits(double.PositiveInfinity), Bits(errors[0]));
            for (int r = 1; r <= maxRank; r++)
            {
                double expected = double.PositiveInfinity;
                if (Ssa.Ssa.RecurrenceMatrix(dec.Ut, window, dec.Shift, dec.Count, r) is { } p)
                {
                    var f = Ssa.Ssa.Forecast(p, pi.AsSpan(0, r), s.AsSpan(0, r), stretch);
                    double error = 0;
                    for (int h = 0; h < stretch; h++)
                    {
                        error += Math.Abs(f[h] - x[cut + h]);
                    }
                    expected = double.IsFinite(error) ? error : double.PositiveInfinity;
                }
                Assert.Equal(Bits(expected), Bits(errors[r]));
            }
        }
    }

    private static long Bits(double v) => BitConverter.DoubleToInt64Bits(v);
}
