using System.Globalization;
using System.Text;
using Forecaster.Training.Csv;

namespace Forecaster.Training.Tests;

public class ForecastCsvRunnerTests
{
    private static (ForecastRunResult Result, string[] Lines) Run(string csv, ForecastRequest? request = null)
    {
        var output = new StringWriter();
        var result = ForecastCsvRunner.Run(new StringReader(csv), output, request ?? new ForecastRequest { Horizon = 24 });
        return (result, output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    private static string History(params (string Series, int Hours, Func<int, double?> Value)[] series)
    {
        var sb = new StringBuilder("series,timestamp,value\n");
        foreach (var (name, hours, value) in series)
        {
            // Newest first: the runner must not rely on row order.
            for (int t = hours - 1; t >= 0; t--)
            {
                if (value(t) is double v)
                {
                    sb.Append(CultureInfo.InvariantCulture, $"{name},{Synthetic.Start.AddHours(t):yyyy-MM-ddTHH:mm:ssZ},{v}\n");
                }
            }
        }
        return sb.ToString();
    }

    [Fact]
    public void RoundTripsASmallFileWithGapsConstantAndOneDaySeries()
    {
        var load = Synthetic.Load(24 * 14, noise: 1, seed: 5);
        string csv = History(
            ("web", 24 * 14, t => t is > 50 and < 60 ? null : load[t]),
            ("flat", 24 * 3, _ => 4),
            ("new", 24, t => t));

        var (result, lines) = Run(csv);

        Assert.Equal(0, result.ExitCode);
        Assert.Equal(3, result.Series);
        Assert.Equal("series,timestamp,forecast,lower,upper,model", lines[0]);
        Assert.Equal(1 + (3 * 24), lines.Length);
        var rows = lines.Skip(1).Select(l => l.Split(',')).ToArray();
        Assert.Equal(["web", "flat", "new"], rows.Select(r => r[0]).Distinct());
        Assert.Equal("2024-01-15T00:00:00Z", rows[0][1]);
        Assert.Equal("2024-01-04T00:00:00Z", rows[24][1]);
        Assert.Equal("4", rows[24][2]);
        Assert.Equal("2024-01-02T00:00:00Z", rows[48][1]);
        // One day is too short to backtest: the fleet-wide model trained on the file's longer series forecasts it.
        Assert.Equal("lgbm", rows[48][5]);
        Assert.All(rows, r => Assert.True(double.Parse(r[3], CultureInfo.InvariantCulture) <= double.Parse(r[4], CultureInfo.InvariantCulture)));
    }

    [Theory]
    [InlineData("series,timestamp,value\nweb,2024-01-01T00:00:00Z,1\nweb,yesterday,2\n", "line 3: timestamp 'yesterday' is not ISO 8601")]
    [InlineData("series,timestamp,value\nweb,2024-01-01T00:00:00Z,1\n\nweb,2024-01-01T01:00:00Z,abc\n", "line 4: value 'abc' is not a finite number")]
    [InlineData("series,timestamp,value\nweb,2024-01-01T00:00:00Z\n", "line 2: expected 3 fields")]
    [InlineData("name,time,load\n", "line 1: expected header")]
    [InlineData("series,timestamp,value\n,2024-01-01T00:00:00Z,1\n", "line 2: empty series name")]
    public void RejectsAMalformedRowWithItsLineNumber(string csv, string error)
    {
        var (result, lines) = Run(csv);

        Assert.Equal(2, result.ExitCode);
        Assert.StartsWith(error, result.Error, StringComparison.Ordinal);
        Assert.Empty(lines);
    }

    [Fact]
    public void QuotedSeriesNamesAndMinuteDataAreHandled()
    {
        var sb = new StringBuilder("series,timestamp,value\n");
        for (int minute = 0; minute < 60 * 24 * 3; minute += 5)
        {
            sb.Append(CultureInfo.InvariantCulture, $"\"api, eu\",{Synthetic.Start.AddMinutes(minute):yyyy-MM-ddTHH:mm:ssZ},{minute / 60}\n");
        }

        var (result, lines) = Run(sb.ToString(), new ForecastRequest { Horizon = 2, Step = TimeSpan.FromHours(1) });

        Assert.Equal(0, result.ExitCode);
        Assert.Equal(3, lines.Length);
        Assert.StartsWith("\"api, eu\",2024-01-04T00:00:00Z,", lines[1], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("1h", 60)]
    [InlineData("15m", 15)]
    [InlineData("30min", 30)]
    [InlineData("1d", 1440)]
    [InlineData("01:00:00", 60)]
    public void ParsesSteps(string text, double minutes)
    {
        Assert.True(ForecastCsvRunner.TryParseStep(text, out var step));
        Assert.Equal(TimeSpan.FromMinutes(minutes), step);
    }

    [Fact]
    public void RejectsBadArguments()
    {
        Assert.Equal(2, Run("series,timestamp,value\n", new ForecastRequest { Horizon = 0 }).Result.ExitCode);
        Assert.Equal(2, Run("series,timestamp,value\n", new ForecastRequest { Level = 1.5 }).Result.ExitCode);
        Assert.False(ForecastCsvRunner.TryParseStep("soon", out _));
    }
}
