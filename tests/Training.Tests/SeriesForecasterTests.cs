using Forecaster.Training.Forecasting;
using Forecaster.Training.Series;

namespace Forecaster.Training.Tests;

public class SeriesForecasterTests
{
    private static readonly TimeSpan s_hour = TimeSpan.FromHours(1);

    [Theory]
    [InlineData(840, 24, 1)]
    [InlineData(200, 25, 2)]
    [InlineData(30, 24, 3)]
    [InlineData(10, 24, 4)]
    public void TheSlidingMovingMedianIsTheMedianOfEachSortedWindow(int n, int window, int seed)
    {
        // Rounded values, so that windows hold ties (the sliding window removes one copy of a repeated value).
        var random = new Random(seed);
        var x = Enumerable.Range(0, n).Select(_ => Math.Round(Synthetic.Gaussian(random) * 3)).ToArray();
        int w = Math.Min(window, n);
        var expected = Enumerable.Range(0, n).Select(t =>
        {
            int a = Math.Clamp(t - (w / 2), 0, n - w);
            var sorted = x.Skip(a).Take(w).Order().ToArray();
            return w % 2 == 1 ? sorted[w / 2] : 0.5 * (sorted[(w / 2) - 1] + sorted[w / 2]);
        }).ToArray();
        Assert.Equal(expected, SeriesPreparation.CenteredMovingMedian(x, window));
    }

    [Fact]
    public void IntervalsCoverAboutAsOftenAsTheLevelSays()
    {
        // Without the inflation for selection optimism, which is tuned for real data rather than textbook noise.
        var options = new ForecastOptions { IntervalInflation = 1 };
        int inside = 0, total = 0;
        for (int seed = 0; seed < 24; seed++)
        {
            var y = Synthetic.Load((24 * 21) + 48, noise: 3, seed: 100 + seed);
            var model = SeriesForecaster.Fit(y.AsSpan(0, 24 * 21), Synthetic.Start, s_hour, options);
            var forecast = model.Forecast(48, 0.9);
            for (int h = 0; h < 48; h++)
            {
                total++;
                inside += y[(24 * 21) + h] >= forecast.Lower[h] && y[(24 * 21) + h] <= forecast.Upper[h] ? 1 : 0;
            }
        }
        Assert.InRange((double)inside / total, 0.84, 0.97);
    }

    [Fact]
    public void SelectionBeatsSeasonalNaiveOnNoisySeasonalLoad()
    {
        var y = Synthetic.Load((24 * 35) + 48, noise: 4, seed: 7, weekly: 15);
        var model = SeriesForecaster.Fit(y.AsSpan(0, 24 * 35), Synthetic.Start, s_hour);
        var forecast = model.Forecast(48);
        var truth = y.AsSpan(24 * 35);
        double scale = Accuracy.MaseScale(y.AsSpan(0, 24 * 35), 24);

        double mase = Accuracy.Mase(truth, forecast.Point, scale);
        double naive = Accuracy.Mase(truth, y.AsSpan((24 * 34), 24).ToArray().Concat(y.AsSpan(24 * 34, 24).ToArray()).ToArray(), scale);

        Assert.NotNull(model.Backtest);
        Assert.True(model.Backtest.Chosen.Mase < model.Backtest.SeasonalNaiveDaily!.Mase);
        Assert.True(mase < 0.8 * naive, $"MASE {mase:F3} vs seasonal naive {naive:F3}");
    }

    [Fact]
    public void ArtifactReproducesTheForecast()
    {
        var y = Synthetic.Load(24 * 30, noise: 2, seed: 8, weekly: 8);
        var model = SeriesForecaster.Fit(y, Synthetic.Start, s_hour);

        var restored = FittedModel.FromJson(model.ToJson());

        var a = model.Forecast(48, 0.9);
        var b = restored.Forecast(48, 0.9);
        Assert.Equal(a.Model, b.Model);
        Assert.Equal(a.Start, b.Start);
        Assert.Equal(a.Point, b.Point);
        Assert.Equal(a.Lower, b.Lower);
        Assert.Equal(a.Upper, b.Upper);
        Assert.Equal(model.Backtest!.SeasonalNaiveDaily, restored.Backtest!.SeasonalNaiveDaily);
        Assert.Contains("\"algorithm\"", model.ToJson(), StringComparison.Ordinal);
    }

    [Fact]
    public void ConstantSeriesForecastsTheConstantWithZeroWidth()
    {
        var y = Enumerable.Repeat(7.0, 24 * 10).ToArray();

        var forecast = SeriesForecaster.Fit(y, Synthetic.Start, s_hour).Forecast(48);

        Assert.All(forecast.Point, v => Assert.Equal(7.0, v));
        Assert.Equal(forecast.Point, forecast.Lower);
        Assert.Equal(forecast.Point, forecast.Upper);
    }

    [Fact]
    public void OneDayOfHistoryFallsBackToSeasonalNaiveAndSaysSo()
    {
        var y = Synthetic.Load(24, noise: 1, seed: 9);

        var model = SeriesForecaster.Fit(y, Synthetic.Start, s_hour);
        var forecast = model.Forecast(48);

        Assert.Equal("snaive24", forecast.Model);
        Assert.Null(model.Backtest);
        Assert.Contains(model.Notes, n => n.Contains("short history", StringComparison.Ordinal));
        Assert.Equal(y[5], forecast.Point[29]);
        Assert.All(forecast.Lower.Zip(forecast.Upper), p => Assert.True(p.First < p.Second));
    }

    [Fact]
    public void FewHoursOfHistoryUseTheLastValue()
    {
        var forecast = SeriesForecaster.Fit([3, 4, 5], Synthetic.Start, s_hour).Forecast(5);

        Assert.Equal("naive", forecast.Model);
        Assert.All(forecast.Point, v => Assert.Equal(5, v));
    }

    [Fact]
    public void GapsAreImputedWithoutCompressingTime()
    {
        var y = Synthetic.Load(24 * 20, noise: 0.5, seed: 10);
        for (int t = 24 * 10; t < (24 * 11) + 6; t++)
        {
            y[t] = double.NaN;
        }
        y[^1] = double.NaN;

        var model = SeriesForecaster.Fit(y, Synthetic.Start, s_hour);
        var forecast = model.Forecast(24);

        Assert.Equal(Synthetic.Start.AddHours(24 * 20), forecast.Start);
        Assert.Contains(model.Notes, n => n.StartsWith("imputed 31 missing points", StringComparison.Ordinal));
        var truth = Synthetic.Load((24 * 20) + 24, noise: 0, seed: 10)[(24 * 20)..];
        Assert.True(truth.Zip(forecast.Point).Average(p => Math.Abs(p.First - p.Second)) < 2);
    }

    [Fact]
    public void SpikesAndZerosNeverProduceNaNOrNegativeLoad()
    {
        var y = Synthetic.Load(24 * 15, noise: 1, seed: 11);
        for (int t = 0; t < y.Length; t++)
        {
            y[t] = t % 24 < 8 ? 0 : y[t];
        }
        y[100] = 1e6;
        y[200] = 1e6;

        var model = SeriesForecaster.Fit(y, Synthetic.Start, s_hour);
        var forecast = model.Forecast(48);

        Assert.True(model.Training.Clipped >= 2);
        Assert.All(forecast.Point.Concat(forecast.Lower).Concat(forecast.Upper), v => Assert.True(double.IsFinite(v) && v >= 0));
        Assert.True(forecast.Upper.Max() < 1000);
    }

    [Fact]
    public void DetectsDailyAndWeeklySeasonalityButNotNoise()
    {
        var random = new Random(12);
        var noise = Enumerable.Range(0, 24 * 28).Select(_ => Synthetic.Gaussian(random)).ToArray();

        Assert.Equal(new Seasonality(24, 0), SeriesPreparation.DetectSeasonality(Synthetic.Load(24 * 28, 1, 12), 24, 168));
        Assert.Equal(new Seasonality(24, 168), SeriesPreparation.DetectSeasonality(Synthetic.Load(24 * 28, 1, 12, weekly: 30), 24, 168));
        Assert.True(SeriesPreparation.DetectSeasonality(noise, 24, 168).None);
    }
}
