using System.CommandLine;
using System.Diagnostics;
using Spectre.Console;

namespace Forecaster.Api.Samples;

/// <summary>`forecaster import FILE.csv`: the bulk path of POST /api/v1/samples from the command line.</summary>
public static class ImportCommand
{
    public static Command Create()
    {
        var file = new Argument<FileInfo>("file") { Description = "CSV with header resource,metric,timestamp,value." };
        var create = new Option<bool>("--create-resources") { Description = "Register unknown resources as services." };
        var command = new Command("import", "Bulk-load samples from a CSV file (all-or-nothing).") { file, create };
        command.SetAction(async (parse, ct) =>
        {
            var input = parse.GetValue(file)!;
            if (!input.Exists)
            {
                Console.Error.WriteLine($"{input.FullName}: no such file");
                return 2;
            }
            var started = Stopwatch.GetTimestamp();
            await using var host = await ForecasterServices.BuildForVerbAsync(LogLevel.Warning, ct);
            var dataSource = host.Services.GetRequiredService<Npgsql.NpgsqlDataSource>();
            var partitions = host.Services.GetRequiredService<SamplePartitions>();
            await using var stream = input.OpenRead();
            var now = TimeProvider.System.GetUtcNow();
            await using var import = await SampleImport.BeginAsync(dataSource, partitions, parse.GetValue(create), now, ct);
            var maxAge = new ForecasterOptions().MaxSampleAgeDays;
            var maxValue = new ForecasterOptions().MaxSampleValue;

            IReadOnlyList<SampleError> errors;
            if (Cli.Verbs.ShowProgress)
            {
                errors = await Cli.Verbs.Stderr.Progress()
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                    .StartAsync(async progress =>
                    {
                        var task = progress.AddTask($"Importing {input.Name}", maxValue: Math.Max(1, input.Length));
                        return await CsvSamples.ReadAsync(stream, import, now, maxAge, maxValue, _ => task.Value = stream.Position, ct);
                    });
            }
            else
            {
                errors = await CsvSamples.ReadAsync(stream, import, now, maxAge, maxValue, null, ct);
            }
            if (errors.Count == 0)
            {
                ImportSummary? summary;
                IReadOnlyList<SampleError> unknown;
                try
                {
                    (summary, unknown) = await import.CompleteAsync(ct);
                }
                catch (SampleWriteConflictException e)
                {
                    Console.Error.WriteLine($"{input.Name}: {e.Message}. Nothing was imported; run the import again.");
                    return 1;
                }
                if (summary is not null)
                {
                    var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
                    await RefreshRollupsAsync(host.Services.GetRequiredService<HourlyRollupRefresh>(), ct);
                    if (summary.ResourcesCreated.Count > 0)
                    {
                        var shown = string.Join(", ", summary.ResourcesCreated.Take(10));
                        var more = summary.ResourcesCreated.Count > 10 ? $" and {summary.ResourcesCreated.Count - 10} more" : "";
                        Console.WriteLine($"created {summary.ResourcesCreated.Count} resources: {shown}{more}");
                    }
                    Console.WriteLine($"rows={summary.Rows} series={summary.Series} seconds={seconds:F2} rate={summary.Rows / Math.Max(seconds, 1e-9):F0} rows/s");
                    return 0;
                }
                errors = unknown;
            }
            foreach (var e in errors)
            {
                Console.Error.WriteLine($"{input.Name}: line {e.Row}: {e.Field}: {e.Message}");
            }
            Console.Error.WriteLine("Nothing was imported.");
            return 2;
        });
        return command;
    }

    /// <summary>
    /// The hourly rollups of the days just imported, computed now rather than by the service's next refresh, so that
    /// training right after an import reads rollups; progress and the time taken on stderr (stdout keeps the import's line).
    /// </summary>
    static async Task RefreshRollupsAsync(HourlyRollupRefresh refresh, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        var last = started;
        var days = await refresh.RefreshAsync(done =>
        {
            if (Cli.Verbs.ShowProgress && Stopwatch.GetElapsedTime(last).TotalSeconds >= 1)
            {
                last = Stopwatch.GetTimestamp();
                Console.Error.WriteLine($"hourly rollups: {done} series-days refreshed ...");
            }
        }, ct);
        Console.Error.WriteLine($"hourly rollups: {days} series-days refreshed in {Stopwatch.GetElapsedTime(started).TotalSeconds:F2} s");
    }
}
