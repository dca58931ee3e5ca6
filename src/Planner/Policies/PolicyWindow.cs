using System.Text.Json.Serialization;

namespace Forecaster.Planner;

/// <summary>
/// A local-time override of the policy (ByteDance's time windows), e.g. Mon-Fri 19:00-23:00 Asia/Shanghai with min 40.
/// <see cref="To"/> not after <see cref="From"/> wraps midnight; the part after midnight belongs to the day the window opened.
/// </summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record PolicyWindow
{
    public required DaySet Days { get; init; }

    public required ClockTime From { get; init; }

    public required ClockTime To { get; init; }

    /// <summary>IANA id, e.g. <c>Europe/Berlin</c>.</summary>
    [JsonConverter(typeof(TimeZoneIdConverter))]
    public required TimeZoneInfo TimeZone { get; init; }

    public int? MinReplicas { get; init; }

    public int? MaxReplicas { get; init; }

    public double? TargetUtilization { get; init; }

    /// <summary>Days, hours, zone and what the window sets: <c>Mon,Tue,Wed,Thu,Fri 19:00-23:00 Asia/Shanghai: min 40</c>.</summary>
    public string Describe()
    {
        var sets = new List<string>(3);
        if (MinReplicas is int min)
        {
            sets.Add($"min {min}");
        }
        if (MaxReplicas is int max)
        {
            sets.Add($"max {max}");
        }
        if (TargetUtilization is double target)
        {
            sets.Add(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"target {target:G3}"));
        }
        return $"{Days} {From}-{To} {TimeZone.Id}{(sets.Count > 0 ? ": " + string.Join(", ", sets) : "")}";
    }

    /// <summary>
    /// Whether the window overlaps the UTC hour starting at <paramref name="hourUtc"/>. Any overlap counts, so a window
    /// starting 19:30 local (or a zone with a half-hour offset) still raises the floor for the whole hour it touches.
    /// The hour is read in the offset in force at its start, which is what makes it right across a DST change.
    /// </summary>
    public bool Covers(DateTimeOffset hourUtc)
    {
        var start = TimeZoneInfo.ConvertTime(hourUtc, TimeZone).DateTime;
        var end = start.AddHours(1);
        var length = To.Minutes > From.Minutes ? To.Minutes - From.Minutes : To.Minutes + ClockTime.MinutesPerDay - From.Minutes;
        // A window opening on the previous day can still be open (wrap), one opening tomorrow can overlap the hour's tail.
        for (var offset = -1; offset <= 1; offset++)
        {
            var day = start.Date.AddDays(offset);
            if (!Days.Contains(day.DayOfWeek))
            {
                continue;
            }
            var open = day.AddMinutes(From.Minutes);
            if (start < open.AddMinutes(length) && end > open)
            {
                return true;
            }
        }
        return false;
    }
}

/// <summary>A set of weekdays, written as <c>Mon-Fri</c>, <c>Sat,Sun</c>, <c>Mon</c> or <c>Fri-Mon</c> (ranges wrap).</summary>
[JsonConverter(typeof(DaySetConverter))]
public readonly record struct DaySet(int Mask)
{
    private static readonly string[] Names = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

    public static DaySet Weekdays => Parse("Mon-Fri");

    public static DaySet All => new(0x7F);

    public bool Contains(DayOfWeek day) => (Mask & (1 << (int)day)) != 0;

    public static DaySet Parse(string text) =>
        TryParse(text, out var days) ? days : throw new FormatException($"'{text}' is not a day set such as Mon-Fri or Sat,Sun");

    public static bool TryParse(string? text, out DaySet days)
    {
        days = default;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }
        var mask = 0;
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries))
        {
            var ends = part.Split('-', StringSplitOptions.TrimEntries);
            if (ends.Length > 2 || !TryDay(ends[0], out var first))
            {
                return false;
            }
            var last = first;
            if (ends.Length == 2 && !TryDay(ends[1], out last))
            {
                return false;
            }
            for (var d = first; ; d = (d + 1) % 7)
            {
                mask |= 1 << d;
                if (d == last)
                {
                    break;
                }
            }
        }
        days = new DaySet(mask);
        return true;
    }

    private static bool TryDay(string name, out int day)
    {
        day = Array.FindIndex(Names, n => string.Equals(n, name, StringComparison.OrdinalIgnoreCase));
        return day >= 0;
    }

    /// <summary>Canonical form, Monday first: <c>Mon,Tue,Wed,Thu,Fri</c>.</summary>
    public override string ToString()
    {
        var mask = Mask;
        return string.Join(',', Enumerable.Range(1, 7).Select(i => i % 7).Where(d => (mask & (1 << d)) != 0).Select(d => Names[d]));
    }
}

/// <summary>A wall-clock time <c>HH:mm</c>; <c>24:00</c> is allowed as the end of a window.</summary>
[JsonConverter(typeof(ClockTimeConverter))]
public readonly record struct ClockTime(int Minutes)
{
    public const int MinutesPerDay = 24 * 60;

    public static ClockTime Parse(string text) =>
        TryParse(text, out var time) ? time : throw new FormatException($"'{text}' is not a time HH:mm");

    public static bool TryParse(string? text, out ClockTime time)
    {
        time = default;
        if (text is not { Length: 5 } || text[2] != ':' || !char.IsAsciiDigit(text[0]) || !char.IsAsciiDigit(text[1])
            || !char.IsAsciiDigit(text[3]) || !char.IsAsciiDigit(text[4]))
        {
            return false;
        }
        var hours = ((text[0] - '0') * 10) + (text[1] - '0');
        var minutes = ((text[3] - '0') * 10) + (text[4] - '0');
        if (minutes > 59 || hours > 24 || (hours == 24 && minutes != 0))
        {
            return false;
        }
        time = new ClockTime((hours * 60) + minutes);
        return true;
    }

    public override string ToString() => $"{Minutes / 60:00}:{Minutes % 60:00}";
}
