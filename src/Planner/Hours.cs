namespace Forecaster.Planner;

/// <summary>
/// The hour every stage counts in (plans, forecasts, history are hourly, UTC): one declaration of its length and one hour
/// floor, instead of a <c>TimeSpan.FromHours(1)</c> and a tick modulo in each file. <c>using static Forecaster.Planner.Hours;</c>.
/// </summary>
public static class Hours
{
    public static readonly TimeSpan Hour = TimeSpan.FromHours(1);

    /// <summary>The start of the UTC hour <paramref name="t"/> falls in.</summary>
    public static DateTimeOffset FloorHour(DateTimeOffset t) => new(t.UtcTicks - (t.UtcTicks % TimeSpan.TicksPerHour), TimeSpan.Zero);

    /// <summary>The start of the hour <paramref name="t"/> falls in (a UTC <see cref="DateTime"/> stays UTC).</summary>
    public static DateTime FloorHour(DateTime t) => new(t.Ticks - (t.Ticks % TimeSpan.TicksPerHour), DateTimeKind.Utc);
}
