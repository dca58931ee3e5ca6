namespace Forecaster.Training.Series;

/// <summary>A regular time grid: point <c>i</c> is at <c>Start + i·Step</c> (UTC).</summary>
public sealed record TimeGrid(DateTimeOffset Start, TimeSpan Step)
{
    // 1970-01-05 was a Monday: hour-of-week phases count from Monday 00:00 UTC.
    private static readonly DateTimeOffset s_monday = new(1970, 1, 5, 0, 0, 0, TimeSpan.Zero);

    /// <summary>The timestamp of point <paramref name="index"/>.</summary>
    public DateTimeOffset At(long index) => Start + TimeSpan.FromTicks(Step.Ticks * index);

    /// <summary>Steps in one day, or 0 when a day is not a whole number of steps.</summary>
    public int DailyPeriod => StepsIn(TimeSpan.FromDays(1));

    /// <summary>Steps in one week, or 0 when a week is not a whole number of steps.</summary>
    public int WeeklyPeriod => StepsIn(TimeSpan.FromDays(7));

    /// <summary>Point <paramref name="index"/>'s position within the week, in steps since Monday 00:00 UTC (0 when the week is not whole steps).</summary>
    public int StepOfWeek(long index)
    {
        int week = WeeklyPeriod;
        if (week == 0)
        {
            return 0;
        }
        long steps = (At(index) - s_monday).Ticks / Step.Ticks;
        return (int)(((steps % week) + week) % week);
    }

    private int StepsIn(TimeSpan period) =>
        Step > TimeSpan.Zero && period.Ticks % Step.Ticks == 0 ? (int)(period.Ticks / Step.Ticks) : 0;
}
