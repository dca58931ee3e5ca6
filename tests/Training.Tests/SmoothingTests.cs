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
