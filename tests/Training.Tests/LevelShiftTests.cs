using Forecaster.Training.Forecasting;
using Forecaster.Training.Series;

namespace Forecaster.Training.Tests;

/// <summary>A level shift days before the origin (issue 15): the forecast follows the new level; steady load is left alone.</summary>
public class LevelShiftTests
{
    private static readonly TimeSpan s_hour = TimeSpan.FromHours(1);

    [Theory]
    [InlineData(3.0, 3)]
    [InlineData(0.4, 4)]
    public void ForecastFollowsALevelShiftAFewDaysBeforeTheOrigin(double factor, int daysBefore)
    {
        const int n = 28 * 24;
        var y = Synthetic.Load(n + 48, noise: 3, seed: 17, trend: 0, weekly: 8);
        int step = n - (daysBefore * 24) + 7;   // mid-morning, a few days before the origin
        for (int t = step; t < y.Length; t++)
        {
            y[t] *= factor;
        }
        var model = SeriesForecaster.Fit(y.AsSpan(0, n), Synthetic.Start, s_hour);
        var forecast = model.Forecast(48);
        double predicted = forecast.Point.Average(), actual = y.AsSpan(n).ToArray().Average();
        Assert.InRange(predicted / actual, 0.85, 1.15);
        Assert.Contains(model.Notes, note => note.StartsWith("level shift at ", StringComparison.Ordinal));

        var shift = LevelShift.Detect(y.AsSpan(0, n), 24, weekly: true);
        Assert.NotNull(shift);
        Assert.InRange(shift.At, step - 3, step + 3);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(20)]
    public void SteadySeasonalLoadHasNoLevelShift(double weekly)
    {
        for (int seed = 0; seed < 10; seed++)
        {
            var y = Synthetic.Load(35 * 24, noise: 4, seed: 500 + seed, trend: 0.02, weekly: weekly);
            Assert.Null(LevelShift.Detect(y, 24, weekly: weekly > 0));
        }
    }
}
