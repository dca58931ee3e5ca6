using Forecaster.Training.Forecasting;
using Forecaster.Training.Global;

namespace Forecaster.Training.Tests;

/// <summary>The fleet-wide LightGBM model (issue 15): it pools what short series share, and it never sees a fold's future.</summary>
public class GlobalModelTests
{
    private static readonly TimeSpan s_hour = TimeSpan.FromHours(1);

    // A shared two-peak day, each series at its own scale, with noise as large as a tenth of the level.
    private static double[] Member(int series, int hours, int seed)
    {
        var random = new Random(seed);
        double scale = 50 + (series * 13 % 400);
        var y = new double[hours];
        for (int t = 0; t < hours; t++)
        {
            int hour = t % 24;
            double shape = 1 + (0.6 * Math.Exp(-Math.Pow(hour - 9, 2) / 4)) + (0.9 * Math.Exp(-Math.Pow(hour - 20, 2) / 6)) - (0.4 * (hour < 6 ? 1 : 0));
            y[t] = scale * (shape + (0.1 * Synthetic.Gaussian(random)));
        }
        return y;
    }

    [Fact]
    public void FleetModelImprovesAFleetOfTwoDaySeriesSharingAPattern()
    {
        const int fleet = 80, history = 48, horizon = 48;
        var series = Enumerable.Range(0, fleet).Select(i => Member(i, history + horizon, 1000 + i)).ToArray();
        var options = new ForecastOptions { Horizon = horizon };
        var training = series.Select(y => SeriesForecaster.ForGlobalModel(y.AsSpan(0, history), Synthetic.Start, s_hour, options)!).ToArray();
        var global = GlobalModel.Train(training, horizon, "global-test", new GlobalModelOptions { MinRowsPerLeaf = 20 });
        Assert.NotNull(global);

        double alone = 0, pooled = 0;
        foreach (var y in series)
        {
            var own = SeriesForecaster.Fit(y.AsSpan(0, history), Synthetic.Start, s_hour, options);
            var withFleet = SeriesForecaster.Fit(y.AsSpan(0, history), Synthetic.Start, s_hour, options with { Global = global });
            Assert.Equal("lgbm", withFleet.Model.Name);
            var scale = Accuracy.MaseScale(y.AsSpan(0, history), 24);
            alone += Accuracy.Mase(y.AsSpan(history), own.Forecast(horizon).Point, scale);
            pooled += Accuracy.Mase(y.AsSpan(history), withFleet.Forecast(horizon).Point, scale);
        }
        // Alone, two days allow only yesterday's noisy same hour; pooled, 80 series average the noise out of the shared shape.
        // (0.85: the MASE-scaled normalisation estimates its scale from one day's changes here, a noisier figure than a mean.)
        Assert.True(pooled < 0.85 * alone, $"mean MASE with the fleet model {pooled / fleet:F3} vs alone {alone / fleet:F3}");
    }

    [Fact]
    public void ChangingWhatFollowsTheFirstBacktestOriginChangesNoBacktestForecastOfTheFleetModel()
    {
        const int fleet = 30, hours = 35 * 24;
        var options = new ForecastOptions();
        var past = Enumerable.Range(0, fleet).Select(i => Synthetic.Load(hours, noise: 4, seed: 200 + i, weekly: 10)).ToArray();
        int cut = SeriesForecaster.BacktestStart(hours, options);
        // Another future: every point from the first backtest origin on is different.
        var other = past.Select(y => y.Select((v, t) => t >= cut ? (v * 3) + 50 : v).ToArray()).ToArray();

        var a = GlobalModel.Train([.. past.Select(y => SeriesForecaster.ForGlobalModel(y, Synthetic.Start, s_hour, options)!)], 48, "a");
        var b = GlobalModel.Train([.. other.Select(y => SeriesForecaster.ForGlobalModel(y, Synthetic.Start, s_hour, options)!)], 48, "b");
        Assert.NotNull(a);
        Assert.NotNull(b);
        var grid = new Series.TimeGrid(Synthetic.Start, s_hour);
        for (int i = 0; i < fleet; i++)
        {
            // The fold at the first origin: both models forecast it identically, so neither learnt from its future.
            Assert.Equal(a.Forecast(past[i], cut, grid, 48).Point, b.Forecast(other[i], cut, grid, 48).Point);
        }
        // The cut is real: the final forecasts, which read the changed last week, differ.
        Assert.NotEqual(a.Forecast(past[0], hours, grid, 48).Point, b.Forecast(other[0], hours, grid, 48).Point);
    }

    [Fact]
    public void AModelLoadedFromItsZipForecastsExactlyAsTheTrainedOne()
    {
        var options = new ForecastOptions();
        var series = Enumerable.Range(0, 12).Select(i => Synthetic.Load(21 * 24, noise: 3, seed: 400 + i, weekly: 8)).ToArray();
        var model = GlobalModel.Train([.. series.Select(y => SeriesForecaster.ForGlobalModel(y, Synthetic.Start, s_hour, options)!)], 48, "global-load");
        Assert.NotNull(model);
        var loaded = GlobalModel.Load(model.ToZip(), model.Version, model.ResidualRms, model.Rows, model.Series);
        Assert.Equal((model.Version, model.Rows, model.Series), (loaded.Version, loaded.Rows, loaded.Series));
        var grid = new Series.TimeGrid(Synthetic.Start, s_hour);
        foreach (var y in series)
        {
            // Origins with a whole week behind them and ones so early that some lags fall before the start (missing features).
            foreach (int origin in new[] { 30, 100, y.Length - 48, y.Length })
            {
                var a = model.Forecast(y, origin, grid, 60);
                var b = loaded.Forecast(y, origin, grid, 60);
                Assert.Equal(a.Point, b.Point);
                Assert.Equal(a.StandardError, b.StandardError);
            }
        }
    }

    [Fact]
    public void TheFlattenedTreesScoreEveryRowExactlyAsMlNetDoes()
    {
        var options = new ForecastOptions();
        var series = Enumerable.Range(0, 10).Select(i => Synthetic.Load(28 * 24, noise: 5, seed: 500 + i, weekly: 12)).ToArray();
        var model = GlobalModel.Train([.. series.Select(y => SeriesForecaster.ForGlobalModel(y, Synthetic.Start, s_hour, options)!)], 48, "global-flat");
        Assert.NotNull(model);
        var grid = new Series.TimeGrid(Synthetic.Start, s_hour);
        int rows = 0;
        foreach (var y in series)
        {
            for (int origin = GlobalFeatures.Week + 48; origin <= y.Length; origin += 37)
            {
                var normal = GlobalFeatures.Normalisation(y, origin);
                for (int h = 1; h <= 48; h += 5)
                {
                    var features = new float[GlobalFeatures.Count];
                    GlobalFeatures.Write(y, origin, h, normal, grid, null, features);
                    Assert.DoesNotContain(features, float.IsNaN);
                    var (engine, flat) = model.ScoreBothWays(features);
                    Assert.Equal(engine, flat);
                    rows++;
                }
            }
        }
        Assert.True(rows > 1000, $"{rows} rows compared");
    }

    [Fact]
    public void RowsScoredTogetherScoreAsEachAloneThroughMlNet()
    {
        // Many rows at once: the flattened trees walk four rows side by side, the rest one by one, and rows with a missing
        // feature (origins too early for a week of lags) go through ML.NET's engine; every score must be the engine's own.
        var options = new ForecastOptions();
        var series = Enumerable.Range(0, 6).Select(i => Synthetic.Load(28 * 24, noise: 5, seed: 700 + i, weekly: 12)).ToArray();
        var model = GlobalModel.Train([.. series.Select(y => SeriesForecaster.ForGlobalModel(y, Synthetic.Start, s_hour, options)!)], 48, "global-rows");
        Assert.NotNull(model);
        var grid = new Series.TimeGrid(Synthetic.Start, s_hour);
        int width = GlobalFeatures.Count, missing = 0;
        foreach (var y in series)
        {
            foreach (int origin in new[] { 30, 100, GlobalFeatures.Week + 50, y.Length - 48, y.Length })
            {
                var normal = GlobalFeatures.Normalisation(y, origin);
                // 47 rows: eleven groups of four and three left over.
                var rows = new float[47 * width];
                for (int h = 1; h <= 47; h++)
                {
                    GlobalFeatures.Write(y, origin, h, normal, grid, null, rows.AsSpan((h - 1) * width, width));
                }
                var together = model.Score(rows, 47);
                for (int r = 0; r < 47; r++)
                {
                    var features = rows.AsSpan(r * width, width).ToArray();
                    missing += features.Any(float.IsNaN) ? 1 : 0;
                    Assert.Equal(model.ScoreBothWays(features).Engine, together[r]);
                }
            }
        }
        Assert.True(missing > 0, "some rows have a missing feature");
    }

    [Fact]
    public void SavedModelIsAnMlNetZip()
    {
        var options = new ForecastOptions();
        var fleet = Enumerable.Range(0, 5).Select(i => SeriesForecaster.ForGlobalModel(Synthetic.Load(21 * 24, 3, 300 + i), Synthetic.Start, s_hour, options)!).ToArray();
        var model = GlobalModel.Train(fleet, 48, "global-zip");
        Assert.NotNull(model);
        var path = Path.Combine(Path.GetTempPath(), $"global-{Guid.NewGuid():N}.zip");
        try
        {
            model.Save(path);
            using var zip = System.IO.Compression.ZipFile.OpenRead(path);
            Assert.Contains(zip.Entries, e => e.FullName.StartsWith("TransformerChain", StringComparison.Ordinal) || e.FullName.Contains("Model", StringComparison.Ordinal));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
