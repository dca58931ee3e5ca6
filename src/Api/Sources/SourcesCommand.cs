using System.CommandLine;
using System.Globalization;
using Dapper;
using Forecaster.Api.Samples;
using Microsoft.Extensions.Options;
using Forecaster.Api.Resources;
using Forecaster.Api.Errors;

namespace Forecaster.Api.Sources;

/// <summary>
/// <c>forecaster sources test NAME [--hours H] [--at T]</c>: runs a resource's source queries (its own, else its group's)
/// over the last hours and prints what each returned. Exit codes: 0 every source returned one series, 1 some did not
/// (or its server failed), 2 bad input.
/// </summary>
public static class SourcesCommand
{
    public static Command Create()
    {
        var name = new Argument<string>("NAME") { Description = "The resource whose sources to run." };
        var hours = new Option<int>("--hours") { Description = "How many hours back (1-168).", DefaultValueFactory = _ => 6 };
        var at = new Option<string?>("--at") { Description = "End of the window (UTC, ISO 8601); default now." };
        var test = new Command("test", "Run a resource's PromQL sources over the last hours and show what comes back (stores nothing).") { name, hours, at };
        test.SetAction(async (parse, ct) =>
        {
            var h = parse.GetValue(hours);
            if (h is < 1 or > 168)
            {
                Console.Error.WriteLine($"--hours: {h} is not between 1 and 168");
                return 2;
            }
            var end = TimeProvider.System.GetUtcNow();
            if (parse.GetValue(at) is { } given)
            {
                if (!UtcTimestamp.TryParse(given, out var parsed, out var error))
                {
                    Console.Error.WriteLine($"--at: {error}");
                    return 2;
                }
                end = new DateTimeOffset(parsed);
            }
            var resource = parse.GetValue(name)!;

            // The service's container: its validated Prometheus options and the same resilient clients the pulls use.
            await using var host = await ForecasterServices.BuildForVerbAsync(LogLevel.Warning, ct);
            var options = host.Services.GetRequiredService<IOptions<PrometheusOptions>>().Value;
            var db = host.Services.GetRequiredService<Npgsql.NpgsqlDataSource>();
            await using var conn = await db.OpenConnectionAsync(ct);
            if (await ResourceStore.IdAsync(conn, resource, ct) is not { } id)
            {
                Console.Error.WriteLine($"NAME: no resource is named '{resource}'");
                return 2;
            }
            await SourceDefinitions.ReconcileAsync(conn, null, id, null, TimeProvider.System.GetUtcNow(), ct);
            var sources = (await SourceDefinitions.ViewsAsync(conn, id, ct)).ToDictionary(
                x => x.Key, x => new SourceSpec(x.Value.Query, x.Value.Server == "default" ? "" : x.Value.Server), StringComparer.Ordinal);
            if (sources.Count == 0)
            {
                Console.Error.WriteLine($"'{resource}' has no sources: give it some with PUT /api/v1/resources/{resource} (\"sources\") or PUT /api/v1/groups/GROUP/sources");
                return 1;
            }
            var result = await SourcesApi.TestAsync(host.Services.GetRequiredService<PrometheusClient>(), options, resource, sources, end, TimeSpan.FromHours(h), ct);
            Console.WriteLine($"{resource}: {result.From:yyyy-MM-ddTHH:mm:ssZ} to {result.To:yyyy-MM-ddTHH:mm:ssZ}, step {result.StepSeconds}s");
            foreach (var (metric, s) in result.Sources)
            {
                Console.WriteLine();
                Console.WriteLine($"{metric} ({s.Server}): {s.Query}");
                Console.WriteLine(s.Ok ? "  ok: one series" : $"  error: {s.Error}");
                foreach (var series in s.Series)
                {
                    Console.WriteLine($"  {Labels(series)}  points={series.Points} gaps={series.Gaps} min={Num(series.Min)} max={Num(series.Max)}");
                    foreach (var hour in series.Hourly)
                    {
                        Console.WriteLine($"    {hour.Hour:yyyy-MM-ddTHH:mm}Z  mean={Num(hour.Mean)}  ({hour.Points} points)");
                    }
                }
            }
            return result.Sources.Values.All(s => s.Ok) ? 0 : 1;
        });
        return new Command("sources", "Prometheus sources of load history.") { test };
    }

    static string Labels(TestedSeries s) => "{" + string.Join(",", s.Labels.OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => $"{l.Key}=\"{l.Value}\"")) + "}";

    static string Num(double? v) => v is { } x ? x.ToString("G6", CultureInfo.InvariantCulture) : "-";
}
