using System.Globalization;
using System.Text;

namespace Forecaster.Api.Samples;

/// <summary>
/// Streams `resource,metric,timestamp,value` CSV into a <see cref="SampleImport"/>, validating every row. Used by
/// POST /api/v1/samples and `forecaster import`. Never holds more than one line in memory.
/// </summary>
public static class CsvSamples
{
    public const string Header = "resource,metric,timestamp,value";
    const int MaxErrors = 20;

    /// <summary>Reads the whole stream; returns the first errors found (empty when every row was staged).</summary>
    public static async Task<IReadOnlyList<SampleError>> ReadAsync(
        Stream body, SampleImport import, DateTimeOffset now, int maxAgeDays, Action<long>? onRows, CancellationToken ct)
    {
        using var reader = new StreamReader(body, Encoding.UTF8, detectEncodingFromByteOrderMarks: true, bufferSize: 1 << 16);
        var errors = new List<SampleError>();
        var header = await reader.ReadLineAsync(ct);
        if (header is null || !IsHeader(header))
        {
            errors.Add(new SampleError(1, "header", $"the first line must be the header '{Header}'" + (header is null ? " (the body is empty)" : $", not '{Cut(header)}'")));
            return errors;
        }

        long line = 1;
        var fields = new Range[4];
        while (await reader.ReadLineAsync(ct) is { } text)
        {
            line++;
            if (text.Length == 0)
            {
                continue;
            }
            var span = text.AsSpan();
            if (span.Contains('"'))
            {
                // Quoted fields are legal CSV; unquote them into a plain line (names never need quotes, so this is rare).
                var unquoted = Unquote(span);
                if (unquoted is null)
                {
                    errors.Add(new SampleError(line, "line", "unbalanced quotes (quoted fields may not span lines)"));
                    if (errors.Count >= MaxErrors) { break; }
                    continue;
                }
                span = unquoted;
            }
            if (span.Split(fields, ',') != 4 || span[fields[3]].Contains(','))
            {
                errors.Add(new SampleError(line, "line", $"expected 4 fields ({Header}), found {span.Count(',') + 1}"));
                if (errors.Count >= MaxErrors) { break; }
                continue;
            }

            var error = await StageAsync(span, fields, line, import, now, maxAgeDays, ct);
            if (error is not null)
            {
                errors.Add(error);
                if (errors.Count >= MaxErrors) { break; }
            }
            if ((line & 0xFFFF) == 0)
            {
                onRows?.Invoke(import.Rows);
            }
        }
        onRows?.Invoke(import.Rows);
        return errors;
    }

    static ValueTask<SampleError?> StageAsync(ReadOnlySpan<char> span, Range[] fields, long line, SampleImport import, DateTimeOffset now, int maxAgeDays, CancellationToken ct)
    {
        // "resource,metric" is one contiguous span of the line: look the pair up without allocating.
        var key = import.FindKey(span[..fields[1].End]);
        string? resource = null, metric = null;
        if (key < 0)
        {
            resource = span[fields[0]].Trim().ToString();
            metric = span[fields[1]].Trim().ToString();
            if (SampleRules.CheckResourceName(resource) is { } re)
            {
                return ValueTask.FromResult<SampleError?>(new SampleError(line, "resource", re));
            }
            if (SampleRules.CheckMetric(metric) is { } me)
            {
                return ValueTask.FromResult<SampleError?>(new SampleError(line, "metric", me));
            }
        }
        if (!UtcTimestamp.TryParse(span[fields[2]], out var ts, out var te))
        {
            return ValueTask.FromResult<SampleError?>(new SampleError(line, "timestamp", te!));
        }
        if (SampleRules.CheckTime(ts, now, maxAgeDays) is { } tr)
        {
            return ValueTask.FromResult<SampleError?>(new SampleError(line, "timestamp", tr));
        }
        var valueText = span[fields[3]].Trim();
        if (!double.TryParse(valueText, NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
        {
            return ValueTask.FromResult<SampleError?>(new SampleError(line, "value", valueText.IsEmpty ? "is empty" : $"'{Cut(valueText.ToString())}' is not a number"));
        }
        if (SampleRules.CheckValue(value) is { } ve)
        {
            return ValueTask.FromResult<SampleError?>(new SampleError(line, "value", ve));
        }
        return key >= 0 ? Write(import, key, ts, value, ct) : AddKeyAndWrite(import, resource!, metric!, line, ts, value, ct);

        static async ValueTask<SampleError?> Write(SampleImport import, int key, DateTime ts, double value, CancellationToken ct)
        {
            await import.AddAsync(key, ts, value, ct);
            return null;
        }

        static async ValueTask<SampleError?> AddKeyAndWrite(SampleImport import, string resource, string metric, long line, DateTime ts, double value, CancellationToken ct)
        {
            await import.AddAsync(await import.AddKeyAsync(resource, metric, line, ct), ts, value, ct);
            return null;
        }
    }

    static bool IsHeader(string line) =>
        line.Replace(" ", "", StringComparison.Ordinal).Trim('\uFEFF').Equals(Header, StringComparison.OrdinalIgnoreCase);

    /// <summary>RFC 4180 fields on one line: "a ""b""",c -> a "b",c. Null when a quote is left open.</summary>
    static string? Unquote(ReadOnlySpan<char> line)
    {
        var sb = new StringBuilder(line.Length);
        var quoted = false;
        for (var i = 0; i < line.Length; i++)
        {
            var c = line[i];
            if (c == '"')
            {
                if (quoted && i + 1 < line.Length && line[i + 1] == '"')
                {
                    sb.Append('"');
                    i++;
                }
                else
                {
                    quoted = !quoted;
                }
            }
            else if (c == ',' && quoted)
            {
                // A comma inside a quoted field can only be wrong here (no name or number contains one); keep it
                // so the field count check reports the row.
                sb.Append(',');
            }
            else
            {
                sb.Append(c);
            }
        }
        return quoted ? null : sb.ToString();
    }

    static string Cut(string s) => s.Length <= 60 ? s : s[..60] + "...";
}
