using Forecaster.Training.Forecasting;
using Forecaster.Training.Smoothing;

namespace Forecaster.Training.Tests;

/// <summary>Exponential smoothing on seasonally adjusted data (issue 15): the indices, the smoothers, and the model's forecast.</summary>
public class SmoothingTests
{
    // A positive daily cycle times a level that grows by `slope` per hour.
    private static double[] Seasonal(int hours, double slope, double noise = 0, int seed = 1)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, hours)
            .Select(t => (100 + (slope * t)) * (1 + (0.5 * Math.Sin(2 * Math.PI * t / 24))) + (noise * Synthetic.Gaussian(random)))
            .ToArray();
    }

    // The scalar recursion the grid searches ran before they ran several parameter sets per vector: the reference, bit for bit.
    private static (double Sse, double Level, double Trend) ScalarHolt(double[] a, double alpha, double beta, double phi)
    {
        double level = a[0], trend = a.Length > 1 && beta > 0 ? a[1] - a[0] : 0, sse = 0;
        int warm = Math.Min(24, a.Length / 4);
        for (int t = 1; t < a.Length; t++)
        {
            double forecast = level + (phi * trend);
            double e = a[t] - forecast;
            if (t > warm)
            {
                sse += e * e;
            }
            double newLevel = forecast + (alpha * e);
            trend = (phi * trend) + (beta * e);
            level = newLevel;
        }
        return (sse, level, trend);
    }

    [Theory]
    [InlineData(840, 0.0, 3)]
    [InlineData(500, 0.3, 7)]
    [InlineData(40, -0.2, 11)]
    public void TheGridSearchesChooseAndEndExactlyAsTheScalarRecursion(int hours, double slope, int seed)
    {
        var a = Seasonal(hours, slope, noise: 4, seed: seed);
        double[] alphas = [0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9], betas = [0.01, 0.05, 0.15], phis = [0.8, 0.9, 0.95];
        var best = (Sse: double.PositiveInfinity, Level: 0.0, Trend: 0.0, Phi: 0.0, Alpha: 0.0);
        foreach (double alpha in alphas)
        {
            foreach (double beta in betas)
            {
                foreach (double phi in phis)
                {
                    var (sse, level, trend) = ScalarHolt(a, alpha, alpha * beta, phi);
                    if (sse < best.Sse)
                    {
                        best = (sse, level, trend, phi, alpha);
                    }
                }
            }
        }
        var damped = ExponentialSmoothing.DampedTrend(a);
        Assert.Equal((best.Level, best.Trend, best.Phi, best.Alpha, Math.Sqrt(best.Sse / (a.Length - 1))),
            (damped.Level, damped.Trend, damped.Damping, damped.Alpha, damped.ResidualStd));

        var ses = (Sse: double.PositiveInfinity, Level: 0.0, Alpha: 0.0);
        foreach (double alpha in alphas)
        {
            var (sse, level, _) = ScalarHolt(a, alpha, 0, 0);
            if (sse < ses.Sse)
            {
                ses = (sse, level, alpha);
            }
        }
        var theta = ExponentialSmoothing.Theta(a);
        Assert.Equal(ses.Alpha, theta.Alpha);
        Assert.Equal(Math.Sqrt(ses.Sse / (a.Length - 1)), theta.ResidualStd);
    }

    [Fact]
    public void MultiplicativeIndicesAverageToOneAndFollowTheCycle()
    {
        var s = SeasonalIndices.Estimate(Seasonal(24 * 10, 0), 24, multiplicative: true, cycles: 8)!;
        Assert.Equal(1.0, s.Average(), 9);
        for (int p = 0; p < 24; p++)
        {
            Assert.Equal(1 + (0.5 * Math.Sin(2 * Math.PI * p / 24)), s[p], 2);
        }
    }

    [Fact]
    public void TooShortForTwoCyclesGivesNoIndices() => Assert.Null(SeasonalIndices.Estimate(Seasonal(60, 0), 24, true, 8));

    [Theory]
    [InlineData("ets")]
    [InlineData("theta")]
    public void ASeasonalSeriesIsForecastWithinAFewPercent(string method)
    {
        var y = Seasonal((24 * 14) + 48, 0, noise: 1);
        var model = SmoothingModel.Fit(y.AsSpan(0, 24 * 14), 24, method)!;
        var f = model.Forecast(48);
        Assert.Equal($"{method}24", model.Name);
        double mape = Enumerable.Range(0, 48).Average(h => Math.Abs(f.Point[h] - y[(24 * 14) + h]) / y[(24 * 14) + h]);
        Assert.True(mape < 0.03, $"MAPE {mape:P1}");
        // Standard errors grow with the horizon (relative to the season they are scaled by).
        Assert.True(f.StandardError[47] / model.Season[47 % 24] > f.StandardError[0] / model.Season[0]);
    }

    [Fact]
    public void DampedTrendFollowsATrendButFlattensIt()
    {
        var y = Seasonal(24 * 14, slope: 0.5);
        var model = SmoothingModel.Fit(y, 24, "ets")!;
        Assert.True(model.Trend > 0, $"trend {model.Trend}");
        Assert.True(model.Damping < 1);
        var f = model.Forecast(48);
        // The level keeps rising from the last day's (the same phase a day later is higher), but by less than the trend would add.
        Assert.True(f.Point[24] > f.Point[0]);
    }

    [Fact]
    public void ASeriesWithZerosUsesAdditiveIndices()
    {
        var y = Seasonal(24 * 10, 0).Select((v, t) => t % 24 == 18 ? 0 : v).ToArray();
        var model = SmoothingModel.Fit(y, 24, "theta")!;
        Assert.False(model.Multiplicative);
        Assert.All(model.Forecast(48).Point, v => Assert.True(double.IsFinite(v)));
    }

    [Fact]
    public void TheArtifactRoundTripsAndForecastsIdentically()
    {
        var y = Seasonal(24 * 21, 0.1, noise: 3);
        var fitted = SeriesForecaster.Fit(y, Synthetic.Start, TimeSpan.FromHours(1), new ForecastOptions { Models = ModelKinds.SeasonalNaiveDaily | ModelKinds.Smoothing });
        Assert.Contains(fitted.Backtest!.Candidates, c => c.Model.StartsWith("ets", StringComparison.Ordinal));
        var back = FittedModel.FromJson(fitted.ToJson());
        Assert.Equal(fitted.Forecast(48).Point, back.Forecast(48).Point);
    }
}
