using Forecaster.Training.Capacity;

namespace Forecaster.Api.Tests.Training;

public sealed class CapacityRegressionTests
{
    [Fact]
    public void TheRobustFitRecoversAKnownSlopeDespiteSpikesAndGaps()
    {
        var rng = new Random(7);
        int n = 24 * 35;
        var load = new double[n];
        var cpu = new double[n];
        for (int h = 0; h < n; h++)
        {
            load[h] = 200 + (800 * (0.5 + (0.5 * Math.Sin(2 * Math.PI * h / 24)))) + (rng.NextDouble() * 50);
            cpu[h] = 0.3 + (0.004 * load[h]) + (0.02 * (rng.NextDouble() - 0.5));
            // One hour in twenty is an incident (cpu triples), one in fifty a gap.
            if (h % 20 == 7)
            {
                cpu[h] *= 3;
            }
            if (h % 50 == 13)
            {
                load[h] = double.NaN;
            }
        }
        var fit = CapacityRegression.Fit(load, cpu)!;
        Assert.InRange(fit.Slope, 0.004 * 0.98, 0.004 * 1.02);
        Assert.InRange(fit.Intercept, 0.25, 0.35);
        Assert.InRange(fit.Samples, n - (n / 50) - 1, n - (n / 50));

        // Ordinary least squares is dragged up by the incidents; the robust fit is not.
        var ols = CapacityRegression.Fit(load, cpu, iterations: 0)!;
        Assert.True(Math.Abs(ols.Slope - 0.004) > Math.Abs(fit.Slope - 0.004));
    }

    [Fact]
    public void PerReplicaUsageDividesByReplicasAndAFlatLoadHasNoFit()
    {
        double[] load = [100, 200, 300, 400];
        double[] replicas = [1, 2, 3, 4];
        double[] cpu = [0.2 + 1, 0.4 + 2, 0.6 + 3, 0.8 + 4];
        // Per replica: x = 100 each, so the load never varies and nothing can be fitted; totals fit slope 0.01.
        Assert.Null(UsageModels.Capacity(load, cpu, replicas));
        Assert.Equal(0.012, UsageModels.Capacity(load, cpu, default)!.Slope, 9);
        Assert.Equal(1.2, UsageModels.PeakPerReplica(cpu, replicas, 0)!.Value, 9);
        Assert.Null(UsageModels.PeakPerReplica(cpu, [double.NaN, double.NaN, double.NaN, double.NaN], 0));
    }
}
