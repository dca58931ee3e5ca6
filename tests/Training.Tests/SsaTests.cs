using Forecaster.Training.Ssa;
using MathNet.Numerics.LinearAlgebra;

namespace Forecaster.Training.Tests;

public class SsaTests
{
    [Fact]
    public void LagCovarianceMatchesTrajectoryProduct()
    {
        var random = new Random(1);
        var x = Enumerable.Range(0, 60).Select(_ => random.NextDouble()).ToArray();
        int L = 12, K = x.Length - L + 1;
        var trajectory = Matrix<double>.Build.Dense(L, K, (i, j) => x[i + j]);
        var expected = trajectory * trajectory.Transpose() / K;

        var c = Ssa.Ssa.LagCovariance(x, L);

        for (int i = 0; i < L; i++)
        {
            for (int j = 0; j < L; j++)
            {
                Assert.Equal(expected[i, j], c[(i * L) + j], 10);
            }
        }
    }

    [Fact]
    public void SubspaceIterationFindsTheLeadingEigenpairs()
    {
        var x = Synthetic.Load(400, noise: 1, seed: 2);
        int L = 49;
        var c = Ssa.Ssa.LagCovariance(x, L);
        var evd = Matrix<double>.Build.Dense(L, L, (i, j) => c[(i * L) + j]).Evd(Symmetricity.Symmetric);
        var q = Ssa.Ssa.InitialBlock(L, 10, [24]);

        var theta = Ssa.Ssa.LeadingEigenpairs(c, L, q, 10, converge: 6, maxIterations: 200, tolerance: 1e-10);

        for (int k = 0; k < 6; k++)
        {
            double expected = evd.EigenValues[L - 1 - k].Real;
            Assert.Equal(1, theta[k] / expected, 8);
            // Same eigenvector up to sign.
            double dot = Enumerable.Range(0, L).Sum(i => q[(k * L) + i] * evd.EigenVectors[i, L - 1 - k]);
            Assert.Equal(1, Math.Abs(dot), 6);
        }
    }

    [Fact]
    public void SsaForecastsSinusoidsPlusTrendAlmostExactly()
    {
        static double Signal(int t) => 50 + (0.2 * t) + (10 * Math.Sin(2 * Math.PI * t / 24)) + (4 * Math.Cos(2 * Math.PI * t / 12));
        var y = Enumerable.Range(0, 480).Select(Signal).ToArray();

        var model = SsaModel.Fit(y, new SsaOptions(), daily: 24, weekly: 0);
        var forecast = model.Forecast(48).Point;

        Assert.Equal(6, model.Rank); // trend (2) + two sinusoids (2 each)
        for (int h = 0; h < 48; h++)
        {
            Assert.Equal(Signal(480 + h), forecast[h], 4);
        }
    }

    [Fact]
    public void RecurrenceIsStableOnPureTrend()
    {
        var y = Enumerable.Range(0, 300).Select(t => 5 + (0.1 * t)).ToArray();

        var model = SsaModel.Fit(y, new SsaOptions { RankSelectionMethod = RankSelection.Fixed, Rank = 2 }, daily: 24, weekly: 0);
        var forecast = model.Forecast(1000).Point;

        Assert.All(model.RootModuli, m => Assert.InRange(m, 0, 1 + 1e-6));
        Assert.Equal(5 + (0.1 * 1299), forecast[^1], 6);
    }

    [Fact]
    public void StabilisationPullsExplosiveRootsOntoTheUnitCircle()
    {
        var y = Enumerable.Range(0, 300).Select(t => Math.Pow(1.01, t) * (10 + Math.Sin(2 * Math.PI * t / 24))).ToArray();
        var fixedRank = new SsaOptions { RankSelectionMethod = RankSelection.Fixed, Rank = 3 };

        var raw = SsaModel.Fit(y, fixedRank with { ShouldStabilize = false }, 24, 0).Forecast(200).Point;
        var stable = SsaModel.Fit(y, fixedRank, 24, 0);
        var capped = SsaModel.Fit(y, fixedRank with { MaxGrowth = new GrowthRatio(24, 1.1) }, 24, 0);

        Assert.True(stable.Stabilised);
        Assert.Contains(stable.RootModuli, m => m > 1.005);
        Assert.True(raw[^1] > 5 * y[^1], "without stabilisation the exponential growth continues");
        Assert.InRange(stable.Forecast(200).Point.Max(), 0, 1.2 * y[^1]);
        double cappedGrowth = capped.Forecast(200).Point[^1] / capped.Forecast(200).Point[^25];
        Assert.InRange(cappedGrowth, 1.05, 1.1 + 1e-4); // the cap allows 1e-6 per step of estimation slack
    }
}
