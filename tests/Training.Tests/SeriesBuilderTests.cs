using Forecaster.Training.Series;

namespace Forecaster.Training.Tests;

public class SeriesBuilderTests
{
    [Fact]
    public void MinuteDataIsAggregatedToTheHourlyMeanOrMax()
    {
        var rows = Enumerable.Range(0, 180)
            .Select(i => 7 + i)
            .Select(m => new Observation(Synthetic.Start.AddMinutes(m), m < 60 ? 1 : m < 120 ? 2 + (m % 2) : 5))
            .Reverse()
            .ToList();

        var mean = SeriesBuilder.Build(rows, TimeSpan.FromHours(1));
        var max = SeriesBuilder.Build(rows, TimeSpan.FromHours(1), Aggregation.Max);

        Assert.Equal(Synthetic.Start, mean.Grid.Start);
        Assert.Equal([1.0, 2.5, 5.0, 5.0], mean.Values);
        Assert.Equal([1.0, 3.0, 5.0, 5.0], max.Values);
    }

    [Fact]
    public void HourlyDataKeepsItsOwnPhaseAndLeavesGapsAsNaN()
    {
        var start = Synthetic.Start.AddMinutes(30);
        var rows = new List<Observation> { new(start.AddHours(3), 4), new(start, 1), new(start.AddHours(1), 2) };

        var series = SeriesBuilder.Build(rows, TimeSpan.FromHours(1));

        Assert.Equal(start, series.Grid.Start);
        Assert.Equal(4, series.Values.Length);
        Assert.True(double.IsNaN(series.Values[2]));
        Assert.Equal(4, series.Values[3]);
    }

    [Fact]
    public void StepOfWeekCountsFromMondayUtc()
    {
        var grid = new TimeGrid(new DateTimeOffset(2024, 1, 1, 0, 0, 0, TimeSpan.Zero), TimeSpan.FromHours(1)); // a Monday

        Assert.Equal(0, grid.StepOfWeek(0));
        Assert.Equal(30, grid.StepOfWeek(30));
        Assert.Equal(0, grid.StepOfWeek(168));
    }
}
