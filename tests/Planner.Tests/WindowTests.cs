using static Forecaster.Planner.Tests.Scenarios;

namespace Forecaster.Planner.Tests;

public class WindowTests
{
    private static int[] WindowHours(string zone, string days, string from, string to, DateTimeOffset start, int hours)
    {
        var policy = new Policy
        {
            CapacityPerReplica = 100,
            MinReplicas = 2,
            ScaleDownDelayHours = 0,
            Windows = [new PolicyWindow { Days = DaySet.Parse(days), From = ClockTime.Parse(from), To = ClockTime.Parse(to), TimeZone = TimeZoneInfo.FindSystemTimeZoneById(zone), MinReplicas = 40 }],
        };
        var input = Simple(new double[hours], policy) with { Now = start.AddMinutes(-30), HorizonStart = start, Forecast = ForecastOf(new double[hours], start: start) };
        var steps = Planned(input).Steps;
        Assert.All(steps.Where(s => s.WindowApplied), s => Assert.True(s.Count >= 40));
        Assert.All(steps.Where(s => !s.WindowApplied), s => Assert.Equal(2, s.Count));
        return [.. steps.Where(s => s.WindowApplied).Select(s => (int)(s.Hour - start).TotalHours)];
    }

    [Fact]
    public void BerlinEveningWindowMovesOneUtcHourEarlierAfterSpringForward()
    {
        // Clocks go forward on Sunday 2025-03-30 at 01:00 UTC: Friday's 19:00 is 18:00 UTC, Monday's is 17:00 UTC.
        var friday = new DateTimeOffset(2025, 3, 28, 0, 0, 0, TimeSpan.Zero);
        var hours = WindowHours("Europe/Berlin", "Mon-Fri", "19:00", "23:00", friday, 96);
        Assert.Equal([18, 19, 20, 21, 72 + 17, 72 + 18, 72 + 19, 72 + 20], hours);
    }

    [Fact]
    public void NewYorkRepeatedHourOnFallBackIsCoveredTwice()
    {
        // 2025-11-02 06:00 UTC: 02:00 EDT becomes 01:00 EST, so local 01:00-02:00 happens at 05:00 and at 06:00 UTC.
        var start = new DateTimeOffset(2025, 11, 2, 0, 0, 0, TimeSpan.Zero);
        Assert.Equal([5, 6], WindowHours("America/New_York", "Sun", "01:00", "02:00", start, 24));
    }

    [Fact]
    public void NewYorkSkippedHourOnSpringForwardShortensTheWindow()
    {
        // 2025-03-09 07:00 UTC: 02:00 EST becomes 03:00 EDT; local 01:00-04:00 lasts two real hours.
        var start = new DateTimeOffset(2025, 3, 9, 0, 0, 0, TimeSpan.Zero);
        Assert.Equal([6, 7], WindowHours("America/New_York", "Sun", "01:00", "04:00", start, 24));
    }

    [Fact]
    public void WindowWrappingMidnightBelongsToTheDayItOpens()
    {
        // Friday 2025-03-21 22:00 to Saturday 02:00; Saturday's own 22:00 is not in "Fri".
        var friday = new DateTimeOffset(2025, 3, 21, 0, 0, 0, TimeSpan.Zero);
        Assert.Equal([22, 23, 24, 25], WindowHours("UTC", "Fri", "22:00", "02:00", friday, 48));
    }

    [Fact]
    public void HalfHourZoneWindowCoversEveryUtcHourItTouches()
    {
        // Asia/Kolkata is UTC+5:30: local 19:00-23:00 touches UTC 13:00 (18:30-19:30) to 17:00 (22:30-23:30).
        var thursday = new DateTimeOffset(2025, 3, 20, 0, 0, 0, TimeSpan.Zero);
        Assert.Equal([13, 14, 15, 16, 17], WindowHours("Asia/Kolkata", "Thu", "19:00", "23:00", thursday, 24));
    }

    [Fact]
    public void WindowTargetUtilizationChangesTheCountInsideTheWindow()
    {
        var policy = new Policy
        {
            CapacityPerReplica = 100, TargetUtilization = 1, Tolerance = 0, ScaleDownDelayHours = 0, ForecastBound = ForecastBound.Point,
            Windows = [new PolicyWindow { Days = DaySet.All, From = ClockTime.Parse("12:00"), To = ClockTime.Parse("13:00"), TimeZone = TimeZoneInfo.Utc, TargetUtilization = 0.5 }],
        };
        var counts = Counts(Simple([.. Enumerable.Repeat(1000.0, 4)], policy));
        Assert.Equal([10, 10, 20, 10], counts);
    }

    [Fact]
    public void DaySetParsesRangesListsAndWrappingRanges()
    {
        Assert.Equal("Mon,Tue,Wed,Thu,Fri", DaySet.Parse("Mon-Fri").ToString());
        Assert.Equal("Sat,Sun", DaySet.Parse("Sat,Sun").ToString());
        Assert.Equal("Mon,Fri,Sat,Sun", DaySet.Parse("Fri-Mon").ToString());
        Assert.Equal("Mon", DaySet.Parse(" mon ").ToString());
        Assert.False(DaySet.TryParse("Mon-Fry", out _));
        Assert.False(DaySet.TryParse("Mon--Fri", out _));
        Assert.False(DaySet.TryParse("", out _));
    }
}
