using System.Globalization;
using System.Numerics;

namespace Forecaster.Api.Errors;

/// <summary>
/// The one timestamp rule of every endpoint and the CLI: ISO 8601 with `Z` or an explicit offset, converted to UTC. A time
/// without an offset is refused, so the server's local time never slips in.
/// </summary>
public static class UtcTimestamp
{
    /// <summary>Parses <paramref name="text"/>; on failure <paramref name="error"/> says why in words a user can act on.</summary>
    public static bool TryParse(ReadOnlySpan<char> text, out DateTime utc, out string? error)
    {
        text = text.Trim();
        if (TryParseFast(text, out utc))
        {
            return InRange(utc, text, out error);
        }
        utc = default;
        if (text.IsEmpty)
        {
            error = "is empty";
            return false;
        }
        if (!DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.None, out var parsed) || text.IndexOf('T') < 0 && text.IndexOf(' ') < 0)
        {
            error = $"'{Shorten(text)}' is not an ISO 8601 timestamp (expected e.g. 2026-11-20T13:00:00Z)";
            return false;
        }
        if (!HasExplicitOffset(text))
        {
            error = $"'{Shorten(text)}' has no UTC offset; append 'Z' or an offset such as +02:00 (a time without one would be read as the server's local time)";
            return false;
        }
        utc = parsed.UtcDateTime;
        return InRange(utc, text, out error);
    }

    /// <summary>Years a load sample can have; also keeps date arithmetic on parsed values (from − 8 days, + 48 hours) in range.</summary>
    static bool InRange(DateTime utc, ReadOnlySpan<char> text, out string? error)
    {
        error = utc.Year is >= 1970 and <= 9000 ? null : $"'{Shorten(text)}' is outside the years 1970 to 9000";
        return error is null;
    }

    /// <summary>
    /// yyyy-MM-ddTHH:mm:ss[.f{1,7}]Z, the form every exporter writes, parsed without allocation from UTF-16 text or
    /// straight from UTF-8 bytes (the bulk CSV path).
    /// </summary>
    public static bool TryParseFast<T>(ReadOnlySpan<T> s, out DateTime utc) where T : unmanaged, IBinaryInteger<T>
    {
        utc = default;
        if (s.Length < 20 || !Is(s[^1], 'Z') || !Is(s[4], '-') || !Is(s[7], '-') || !Is(s[10], 'T') || !Is(s[13], ':') || !Is(s[16], ':'))
        {
            return false;
        }
        if (!Digits(s, 0, 4, out var year) || !Digits(s, 5, 2, out var month) || !Digits(s, 8, 2, out var day)
            || !Digits(s, 11, 2, out var hour) || !Digits(s, 14, 2, out var minute) || !Digits(s, 17, 2, out var second))
        {
            return false;
        }
        long ticks = 0;
        if (s.Length > 20)
        {
            var fraction = s[19..^1];
            if (fraction.Length < 2 || fraction.Length > 8 || !Is(fraction[0], '.') || !Digits(fraction, 1, fraction.Length - 1, out var f))
            {
                return false;
            }
            ticks = f;
            for (var i = fraction.Length - 1; i < 7; i++)
            {
                ticks *= 10;
            }
        }
        if (month is < 1 or > 12 || day < 1 || day > DateTime.DaysInMonth(Math.Max(1, year), month) || hour > 23 || minute > 59 || second > 59 || year < 1)
        {
            return false;
        }
        utc = new DateTime(year, month, day, hour, minute, second, DateTimeKind.Utc).AddTicks(ticks);
        return true;
    }

    static bool Is<T>(T c, char expected) where T : IBinaryInteger<T> => int.CreateTruncating(c) == expected;

    static bool Digits<T>(ReadOnlySpan<T> s, int start, int count, out int value) where T : IBinaryInteger<T>
    {
        value = 0;
        for (var i = start; i < start + count; i++)
        {
            var d = int.CreateTruncating(s[i]) - '0';
            if ((uint)d > 9)
            {
                return false;
            }
            value = value * 10 + d;
        }
        return true;
    }

    static bool HasExplicitOffset(ReadOnlySpan<char> s)
    {
        if (s[^1] is 'Z' or 'z')
        {
            return true;
        }
        // ...+HH:MM, ...+HHMM or ...+HH after the time part.
        var t = s.IndexOfAny('T', ' ');
        return t >= 0 && s[t..].IndexOfAny('+', '-') >= 0;
    }

    static string Shorten(ReadOnlySpan<char> s) => s.Length <= 40 ? s.ToString() : string.Concat(s[..40], "...");
}
