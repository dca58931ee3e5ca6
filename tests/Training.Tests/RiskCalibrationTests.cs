using Forecaster.Training.Forecasting;
using Forecaster.Training.Series;

namespace Forecaster.Training.Tests;

/// <summary>
/// What training gives a risk-targeted plan (issue 15): the one-sided upper backtest errors by hour of day, and history cleaned
/// of an isolated anomalous day (a holiday without a calendar) that a weekly model would otherwise repeat a week later.
/// </summary>
public class RiskCalibrationTests
{
    private static readonly TimeSpan s_hour = TimeSpan.FromHours(1);

    [Fact]
    public void UpperErrorsAreOneSidedAndLargerAtTheHoursOfDayWhereLoadRoseAboveTheForecast()
    {
        // Six origins a day apart, 48 steps, margins 1: falls of −2 everywhere (which a symmetric band counts), rises in the
        // afternoon (steps 12-17 and 36-41) of up to 3, elsewhere of up to 0.5.
        var random = new Random(5);
        var errors = new double[6][];
        var half = new double[6][];
        for (var j = 0; j < 6; j++)
        {
            errors[j] = new double[48];
            half[j] = Enumerable.Repeat(1.0, 48).ToArray();
            for (var h = 0; h < 48; h++)
            {
                var afternoon = h % 24 is >= 12 and < 18;
                errors[j][h] = random.NextDouble() < 0.5 ? -2 : random.NextDouble() * (afternoon ? 3 : 0.5);
            }
        }
        var upper = UpperErrors.FromBacktest(errors, half, 0.95, 24);
        Assert.NotNull(upper);
        Assert.Equal(288, upper.Samples);
        Assert.Equal(UpperErrors.TableLevels, upper.Levels);
        // The afternoon's scale is over twice the night's (shrunk towards the all-steps scale: 36 errors per pool against 24
        // pseudo-errors), the same hour on both days (pooled across them). The falls of −2 count for nothing.
        Assert.True(upper.StepScale[14] > 2 * upper.StepScale[3], $"{upper.StepScale[14]} vs {upper.StepScale[3]}");
        Assert.Equal(upper.StepScale[14], upper.StepScale[38], 12);
        Assert.True(upper.Quantiles.Zip(upper.Quantiles.Skip(1)).All(p => p.First <= p.Second));
        Assert.True(upper.Quantiles[0] < upper.Quantiles[^1] / 5, $"median {upper.Quantiles[0]}, top {upper.Quantiles[^1]}");
        // The top (0.995 of 288 errors: the largest) is an afternoon rise of nearly 3 margins, in the units of a step at the
        // afternoon's edge (12 or 17, pooled with a night step, so scaled less than 14): at 14 it reaches beyond 2.5 margins.
        Assert.True(upper.Quantiles[^1] * upper.StepScale[14] >= 2.5, $"top {upper.Quantiles[^1]} × {upper.StepScale[14]}");
    }

    [Fact]
    public void TooFewBacktestErrorsGiveNoTable()
    {
        var errors = new[] { Enumerable.Range(0, 48).Select(h => h % 2 == 0 ? 1.0 : -1.0).ToArray() };
        Assert.Null(UpperErrors.FromBacktest(errors, [Enumerable.Repeat(1.0, 48).ToArray()], 0.95, 24));
    }

    [Fact]
    public void AHolidayDipAWeekBeforeTheOriginIsNotRepeatedOnTheSameWeekday()
    {
        // A whole day at 45% of its level (the demo fleet's holiday), exactly a week before the first forecast day.
        const int n = 28 * 24;
        var y = Synthetic.Load(n + 48, noise: 3, seed: 29, trend: 0, weekly: 10);
        for (var t = n - (7 * 24); t < n - (6 * 24); t++)
        {
            y[t] *= 0.45;
        }
        var model = SeriesForecaster.Fit(y.AsSpan(0, n), Synthetic.Start, s_hour);
        Assert.Contains(model.Notes, note => note.StartsWith("rescaled 1 anomalous days", StringComparison.Ordinal));
        var forecast = model.Forecast(48);
        double predicted = forecast.Point.Take(24).Average(), actual = y.AsSpan(n, 24).ToArray().Average();
        Assert.InRange(predicted / actual, 0.9, 1.1);

        var cleaned = y.AsSpan(0, n).ToArray();
        Assert.Equal(1, SeriesPreparation.RescaleAnomalousDays(cleaned, 24));
        var dayMean = cleaned.AsSpan(n - (7 * 24), 24).ToArray().Average();
        var weekBefore = cleaned.AsSpan(n - (14 * 24), 24).ToArray().Average();
        Assert.InRange(dayMean / weekBefore, 0.9, 1.1);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(20)]
    public void SteadyLoadWeekendsAndLevelShiftsAreNotAnomalousDays(double weekly)
    {
        for (var seed = 0; seed < 10; seed++)
        {
            var y = Synthetic.Load(35 * 24, noise: 4, seed: 700 + seed, trend: 0.02, weekly: weekly);
            Assert.Equal(0, SeriesPreparation.RescaleAnomalousDays(y.ToArray(), 24));
            // A level shift three days before the end: its first day is like the days after it, so it is not isolated.
            var shifted = y.ToArray();
            for (var t = shifted.Length - (3 * 24) + 5; t < shifted.Length; t++)
            {
                shifted[t] *= 2.5;
            }
            Assert.Equal(0, SeriesPreparation.RescaleAnomalousDays(shifted, 24));
        }
    }
}
