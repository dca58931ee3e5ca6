using System.Globalization;
using System.Text;
using Forecaster.Training.Forecasting;
using Forecaster.Training.Series;

namespace Forecaster.Training.Csv;

/// <summary>A malformed row of a history file: <see cref="Line"/> is 1-based (the header is line 1).</summary>
public sealed class ForecastCsvException(int line, string reason) : FormatException($"line {line}: {reason}")
{
    /// <summary>The offending line, counting the header as line 1.</summary>
    public int Line { get; } = line;

    /// <summary>What is wrong with it.</summary>
    public string Reason { get; } = reason;
}

/// <summary>One series' raw rows, in file order.</summary>
public sealed record SeriesHistory(string Series, List<Observation> Observations);

/// <summary>
/// The forecast command's file formats. Input: header <c>series,timestamp,value</c>, ISO 8601 timestamps (UTC, or with an
/// offset that is converted), rows in any order, an empty value for a known gap. Output: header
/// <c>series,timestamp,forecast,lower,upper,model</c>.
/// </summary>
public static class ForecastCsv
{
    /// <summary>The output header.</summary>
    public const string OutputHeader = "series,timestamp,forecast,lower,upper,model";

    /// <summary>Reads a history file; series come back in order of first appearance.</summary>
    /// <exception cref="ForecastCsvException">A row is malformed; the message is <c>line N: reason</c>.</exception>
    public static IReadOnlyList<SeriesHistory> ReadHistory(TextReader reader)
    {
        var header = reader.ReadLine();
        if (header is null)
        {
            throw new ForecastCsvException(1, "empty file, expected header 'series,timestamp,value'");
        }
        if (!header.Trim().TrimStart('\uFEFF').Equals("series,timestamp,value", StringComparison.OrdinalIgnoreCase))
        {
            throw new ForecastCsvException(1, $"expected header 'series,timestamp,value', found '{header}'");
        }
        var bySeries = new Dictionary<string, SeriesHistory>(StringComparer.Ordinal);
        var ordered = new List<SeriesHistory>();
        var fields = new List<string>(3);
        int lineNumber = 1;
        for (var line = reader.ReadLine(); line is not null; line = reader.ReadLine())
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }
            Split(line, fields, lineNumber);
            if (fields.Count != 3)
            {
                throw new ForecastCsvException(lineNumber, $"expected 3 fields (series,timestamp,value), found {fields.Count}");
            }
            string name = fields[0];
            if (name.Length == 0)
            {
                throw new ForecastCsvException(lineNumber, "empty series name");
            }
            if (!DateTimeOffset.TryParse(fields[1], CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var timestamp))
            {
                throw new ForecastCsvException(lineNumber, $"timestamp '{fields[1]}' is not ISO 8601 (e.g. 2024-03-01T13:00:00Z)");
            }
            double value = double.NaN;
            if (fields[2].Length > 0
                && (!double.TryParse(fields[2], NumberStyles.Float, CultureInfo.InvariantCulture, out value) || !double.IsFinite(value)))
            {
                throw new ForecastCsvException(lineNumber, $"value '{fields[2]}' is not a finite number");
            }
            if (!bySeries.TryGetValue(name, out var series))
            {
                series = new SeriesHistory(name, []);
                bySeries.Add(name, series);
                ordered.Add(series);
            }
            series.Observations.Add(new Observation(timestamp.ToUniversalTime(), value));
        }
        return ordered;
    }

    /// <summary>Writes the forecast rows of one series.</summary>
    public static void Write(TextWriter writer, string series, Forecast forecast)
    {
        string name = Quote(series);
        for (int h = 0; h < forecast.Point.Length; h++)
        {
            writer.Write(name);
            writer.Write(',');
            writer.Write(FormatTimestamp(forecast.TimestampAt(h)));
            writer.Write(',');
            writer.Write(FormatNumber(forecast.Point[h]));
            writer.Write(',');
            writer.Write(FormatNumber(forecast.Lower[h]));
            writer.Write(',');
            writer.Write(FormatNumber(forecast.Upper[h]));
            writer.Write(',');
            writer.WriteLine(Quote(forecast.Model));
        }
    }

    /// <summary>ISO 8601 UTC with a Z, seconds precision: <c>2024-03-01T13:00:00Z</c>.</summary>
    public static string FormatTimestamp(DateTimeOffset t) =>
        t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static string FormatNumber(double v) => v.ToString("G10", CultureInfo.InvariantCulture);

    private static string Quote(string field) =>
        field.AsSpan().IndexOfAny(",\"\n\r") >= 0 ? $"\"{field.Replace("\"", "\"\"", StringComparison.Ordinal)}\"" : field;

    // RFC 4180 fields: commas separate, double quotes enclose, "" inside quotes is one quote.
    private static void Split(string line, List<string> fields, int lineNumber)
    {
        fields.Clear();
        int i = 0;
        while (true)
        {
            if (i < line.Length && line[i] == '"')
            {
                var sb = new StringBuilder();
                i++;
                while (true)
                {
                    if (i >= line.Length)
                    {
                        throw new ForecastCsvException(lineNumber, "unterminated quoted field");
                    }
                    if (line[i] == '"')
                    {
                        if (i + 1 < line.Length && line[i + 1] == '"')
                        {
                            sb.Append('"');
                            i += 2;
                            continue;
                        }
                        i++;
                        break;
                    }
                    sb.Append(line[i++]);
                }
                fields.Add(sb.ToString());
                if (i < line.Length && line[i] != ',')
                {
                    throw new ForecastCsvException(lineNumber, "text after a closing quote");
                }
            }
            else
            {
                int comma = line.IndexOf(',', i);
                int end = comma < 0 ? line.Length : comma;
                fields.Add(line[i..end].Trim());
                i = end;
            }
            if (i >= line.Length)
            {
                return;
            }
            i++;
        }
    }
}
