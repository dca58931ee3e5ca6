using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Text;
using Forecaster.Api.Errors;

namespace Forecaster.Api.Samples;

/// <summary>
/// Streams `resource,metric,timestamp,value` CSV into a <see cref="SampleImport"/>, validating every row. Used by
/// POST /api/v1/samples and `forecaster import`. Lines are parsed straight from the UTF-8 bytes of a pipe (no string per
/// line: parsing is half of a bulk import's client-side cost), and only one buffer is ever held.
/// </summary>
public static class CsvSamples
{
    public const string Header = "resource,metric,timestamp,value";
    const int MaxErrors = 20;

    /// <summary>What the synchronous parser needs before it can go on.</summary>
    enum Next { MoreData, Key, Flush, Stop }

    /// <summary>The parser's state across buffers and awaits.</summary>
    sealed class State(SampleImport import, DateTimeOffset now, int maxAgeDays, double maxValue)
    {
        public double MaxValue { get; } = maxValue;
        public SampleImport Import { get; } = import;
        public DateTimeOffset Now { get; } = now;
        public int MaxAgeDays { get; } = maxAgeDays;
        public List<SampleError> Errors { get; } = [];
        public long Line { get; set; }
        public bool HeaderSeen { get; set; }
        public (string Resource, string Metric) NewKey { get; set; }
    }

    /// <summary>Reads the whole stream; returns the first errors found (empty when every row was staged).</summary>
    public static async Task<IReadOnlyList<SampleError>> ReadAsync(
        Stream body, SampleImport import, DateTimeOffset now, int maxAgeDays, double maxValue, Action<long>? onRows, CancellationToken ct)
    {
        var reader = PipeReader.Create(body, new StreamPipeReaderOptions(bufferSize: 1 << 16, minimumReadSize: 1 << 14, leaveOpen: true));
        var state = new State(import, now, maxAgeDays, maxValue);
        long reported = 0;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync(ct);
                var (next, consumed) = Parse(result.Buffer, result.IsCompleted, state);
                // Unparsed bytes come back on the next read; a line that needs an await is parsed again after it.
                reader.AdvanceTo(consumed, next == Next.MoreData ? result.Buffer.End : consumed);
                switch (next)
                {
                    case Next.Key:
                        await import.AddKeyAsync(state.NewKey.Resource, state.NewKey.Metric, state.Line + 1, ct);
                        break;
                    case Next.Flush:
                        await import.FlushWaitingAsync(ct);
                        break;
                    case Next.Stop:
                        return state.Errors;
                    case Next.MoreData when result.IsCompleted:
                        if (!state.HeaderSeen)
                        {
                            state.Errors.Add(new SampleError(1, "header", $"the first line must be the header '{Header}' (the body is empty)"));
                        }
                        onRows?.Invoke(import.Rows);
                        return state.Errors;
                }
                if (onRows is not null && import.Rows - reported >= 1 << 16)
                {
                    reported = import.Rows;
                    onRows(reported);
                }
            }
        }
        finally
        {
            await reader.CompleteAsync();
        }
    }

    /// <summary>Parses the complete lines of <paramref name="buffer"/> (and a last line without newline at the end of the body).</summary>
    static (Next Next, SequencePosition Consumed) Parse(ReadOnlySequence<byte> buffer, bool completed, State state)
    {
        var reader = new SequenceReader<byte>(buffer);
        while (true)
        {
            var start = reader.Position;
            ReadOnlySpan<byte> line;
            if (!reader.TryReadTo(out line, (byte)'\n'))
            {
                if (!completed || reader.End)
                {
                    return (Next.MoreData, start);
                }
                line = reader.UnreadSequence.IsSingleSegment ? reader.UnreadSpan : reader.UnreadSequence.ToArray();
                reader.AdvanceToEnd();
            }
            if (line.Length > 0 && line[^1] == '\r')
            {
                line = line[..^1];
            }
            var next = ParseLine(line, state);
            if (next != Next.MoreData)
            {
                return (next, next == Next.Stop ? reader.Position : start);
            }
        }
    }

    /// <summary>One line: staged, or an error recorded (MoreData: go on), or what must happen before it can be staged.</summary>
    static Next ParseLine(ReadOnlySpan<byte> line, State state)
    {
        var number = state.Line + 1;
        if (!state.HeaderSeen)
        {
            var text = Encoding.UTF8.GetString(line).Trim('\uFEFF');
            if (!text.Replace(" ", "", StringComparison.Ordinal).Equals(Header, StringComparison.OrdinalIgnoreCase))
            {
                state.Errors.Add(new SampleError(1, "header", $"the first line must be the header '{Header}', not '{Cut(text)}'"));
                return Next.Stop;
            }
            state.HeaderSeen = true;
            state.Line = number;
            return Next.MoreData;
        }
        if (line.IsEmpty)
        {
            state.Line = number;
            return Next.MoreData;
        }
        if (line.Contains((byte)'"'))
        {
            // Quoted fields are legal CSV; unquote into a plain line (names never need quotes, so this is rare).
            var unquoted = Unquote(Encoding.UTF8.GetString(line));
            if (unquoted is null)
            {
                return Fail(state, "line", "unbalanced quotes (quoted fields may not span lines)");
            }
            return ParseFields(Encoding.UTF8.GetBytes(unquoted), state);
        }
        return ParseFields(line, state);
    }

    static Next ParseFields(ReadOnlySpan<byte> line, State state)
    {
        var c1 = line.IndexOf((byte)',');
        var c2 = c1 < 0 ? -1 : line[(c1 + 1)..].IndexOf((byte)',') + c1 + 1;
        var c3 = c2 <= c1 ? -1 : line[(c2 + 1)..].IndexOf((byte)',') + c2 + 1;
        if (c1 < 0 || c2 <= c1 || c3 <= c2 || line[(c3 + 1)..].Contains((byte)','))
        {
            return Fail(state, "line", $"expected 4 fields ({Header}), found {line.Count((byte)',') + 1}");
        }

        // "resource,metric" is one contiguous run of the line: look the pair up without allocating.
        Span<char> keyChars = stackalloc char[256];
        var keyBytes = line[..c2];
        var key = keyBytes.Length <= keyChars.Length ? state.Import.FindKey(keyChars[..Encoding.UTF8.GetChars(keyBytes, keyChars)]) : -1;
        if (key < 0)
        {
            var resource = Encoding.UTF8.GetString(line[..c1]).Trim();
            var metric = Encoding.UTF8.GetString(line[(c1 + 1)..c2]).Trim();
            if (SampleRules.CheckResourceName(resource) is { } re)
            {
                return Fail(state, "resource", re);
            }
            if (SampleRules.CheckMetric(metric) is { } me)
            {
                return Fail(state, "metric", me);
            }
            // Padded names miss the raw lookup above but may be known already.
            key = state.Import.FindKey(string.Concat(resource, ",", metric));
            if (key < 0)
            {
                state.NewKey = (resource, metric);
                return Next.Key;
            }
        }

        var tsBytes = line[(c2 + 1)..c3];
        if (!UtcTimestamp.TryParseFast(tsBytes, out var ts) && !UtcTimestamp.TryParse(Encoding.UTF8.GetString(tsBytes), out ts, out var te))
        {
            return Fail(state, "timestamp", te!);
        }
        if (SampleRules.CheckTime(ts, state.Now, state.MaxAgeDays) is { } tr)
        {
            return Fail(state, "timestamp", tr);
        }
        var valueBytes = line[(c3 + 1)..].Trim((byte)' ');
        if (!double.TryParse(valueBytes, NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
        {
            return Fail(state, "value", valueBytes.IsEmpty ? "is empty" : $"'{Cut(Encoding.UTF8.GetString(valueBytes))}' is not a number");
        }
        if (SampleRules.CheckValue(value, state.MaxValue) is { } ve)
        {
            return Fail(state, "value", ve);
        }
        if (!state.Import.TryAdd(key, ts, value))
        {
            return Next.Flush;
        }
        state.Line++;
        return Next.MoreData;
    }

    static Next Fail(State state, string field, string message)
    {
        state.Line++;
        state.Errors.Add(new SampleError(state.Line, field, message));
        return state.Errors.Count >= MaxErrors ? Next.Stop : Next.MoreData;
    }

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
            else
            {
                // A comma inside a quoted field can only be wrong here (no name or number contains one); it stays, so
                // the field count check reports the row.
                sb.Append(c);
            }
        }
        return quoted ? null : sb.ToString();
    }

    static string Cut(string s) => s.Length <= 60 ? s : s[..60] + "...";
}
