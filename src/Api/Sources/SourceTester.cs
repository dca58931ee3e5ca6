using Forecaster.Api.Resources;

namespace Forecaster.Api.Sources;

/// <summary>One series a tested query returned: its labels, how many points and gaps, and its values averaged per hour.</summary>
public sealed record TestedSeries(IReadOnlyDictionary<string, string> Labels, int Points, int Gaps, double? Min, double? Max,
    IReadOnlyList<HourlyPoint> Hourly);

/// <summary>The mean of one UTC hour (what training would see).</summary>
public sealed record HourlyPoint(DateTimeOffset Hour, double Mean, int Points);

/// <summary>What one source's query returned; <see cref="Ok"/> when exactly one series came back.</summary>
public sealed record TestedSource(string Query, string Server, bool Ok, string? Error, IReadOnlyList<TestedSeries> Series);

/// <summary>The answer of POST /api/v1/resources/{name}/sources/test (and `forecaster sources test NAME`).</summary>
public sealed record SourcesTestResult(string Resource, DateTimeOffset From, DateTimeOffset To, int StepSeconds, IReadOnlyDictionary<string, TestedSource> Sources);

/// <summary>Runs source queries over a recent window and says what came back, so PromQL can be checked before relying on it.</summary>
public static class SourceTester
{
    /// <summary>Queries every source over [from, to]; a failure is reported per source, never thrown.</summary>
    public static async Task<Dictionary<string, TestedSource>> RunAsync(PrometheusClient prometheus, IReadOnlyDictionary<string, SourceSpec> sources,
        DateTime from, DateTime to, TimeSpan step, CancellationToken ct)
    {
        var results = new Dictionary<string, TestedSource>(StringComparer.Ordinal);
        foreach (var (metric, spec) in sources)
        {
            var server = PrometheusOptions.Display(spec.Server);
            try
            {
                var series = await prometheus.QueryRangeAsync(spec.Server, spec.Query, from, to, step, ct);
                var error = series.Count switch
                {
                    0 => $"the query returned no series between {from:O} and {to:O}; a source must return exactly one",
                    > 1 => $"the query returned {series.Count} series ({SourcePuller.Describe(series)}); a source must return exactly one: aggregate it, e.g. sum(...)",
                    _ => null,
                };
                results[metric] = new TestedSource(spec.Query, server, error is null, error, [.. series.Select(Summarize)]);
            }
            catch (Exception e) when (e is HttpRequestException or PrometheusQueryException or TimeoutException or Polly.Timeout.TimeoutRejectedException
                or Polly.CircuitBreaker.BrokenCircuitException or System.Text.Json.JsonException || e is TaskCanceledException && !ct.IsCancellationRequested)
            {
                results[metric] = new TestedSource(spec.Query, server, false, $"{server}: {SourcePuller.Message(e)}", []);
            }
        }
        return results;
    }

    /// <summary>True when the error is about the answer (none or several series), not about reaching the server.</summary>
    public static bool IsAnswerError(TestedSource s) => !s.Ok && (s.Series.Count > 1 || s.Error?.Contains("no series", StringComparison.Ordinal) == true);

    static TestedSeries Summarize(PromSeries s)
    {
        var hourly = s.Points
            .GroupBy(p => new DateTime(p.Ts.Ticks - p.Ts.Ticks % TimeSpan.TicksPerHour, DateTimeKind.Utc))
            .OrderBy(g => g.Key)
            .Select(g => new HourlyPoint(new DateTimeOffset(g.Key), g.Average(p => p.Value), g.Count()))
            .ToList();
        return new TestedSeries(s.Labels, s.Points.Count, s.Gaps,
            s.Points.Count == 0 ? null : s.Points.Min(p => p.Value), s.Points.Count == 0 ? null : s.Points.Max(p => p.Value), hourly);
    }
}
