using System.CommandLine;
using Forecaster.Training.Csv;
using Spectre.Console;

namespace Forecaster.Api.Forecasting;

/// <summary>
/// <c>forecaster forecast --input HISTORY.csv --horizon 48 [--level 0.95] [--step 1h] [--output OUT.csv]</c>: a thin shell
/// over <see cref="ForecastCsvRunner"/>, which holds the logic (and its tests).
/// </summary>
public static class ForecastCommand
{
    public static Command Create()
    {
        var input = new Option<FileInfo>("--input") { Description = "History CSV: series,timestamp,value (ISO 8601 UTC, any order)", Required = true };
        var horizon = new Option<int>("--horizon") { Description = "Steps to forecast per series", DefaultValueFactory = _ => 48 };
        var level = new Option<double>("--level") { Description = "Prediction interval level", DefaultValueFactory = _ => 0.95 };
        var step = new Option<string>("--step") { Description = "Grid step (finer data is averaged): 1h, 15m, 1d", DefaultValueFactory = _ => "1h" };
        var output = new Option<FileInfo?>("--output") { Description = "Output CSV (default: stdout)" };
        var noGlobal = new Option<bool>("--no-global-model") { Description = "Leave out the fleet-wide LightGBM model (per-series models only)" };
        var command = new Command("forecast", "Forecast every series of a history file with intervals") { input, horizon, level, step, output, noGlobal };

        command.SetAction(async (ParseResult parse, CancellationToken ct) =>
        {
            if (!ForecastCsvRunner.TryParseStep(parse.GetValue(step)!, out var stepSpan))
            {
                await Console.Error.WriteLineAsync($"--step: cannot read '{parse.GetValue(step)}' (e.g. 1h, 15m, 1d)");
                return ForecastRunResult.BadInput;
            }
            var request = new ForecastRequest { Horizon = parse.GetValue(horizon), Level = parse.GetValue(level), Step = stepSpan };
            if (parse.GetValue(noGlobal))
            {
                request = request with { Options = request.Options with { Models = request.Options.Models & ~Forecaster.Training.Forecasting.ModelKinds.Global } };
            }
            var inputFile = parse.GetValue(input)!;
            if (!inputFile.Exists)
            {
                await Console.Error.WriteLineAsync($"--input: {inputFile.FullName} does not exist");
                return ForecastRunResult.BadInput;
            }

            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            using var reader = inputFile.OpenText();
            var outputFile = parse.GetValue(output);
            await using var file = outputFile?.CreateText();
            var writer = file ?? Console.Out;
            var result = Console.IsErrorRedirected
                ? await Task.Run(() => ForecastCsvRunner.Run(reader, writer, request, null, ct), ct)
                : await WithProgress(progress => ForecastCsvRunner.Run(reader, writer, request, progress, ct));
            await writer.FlushAsync(ct);
            if (result.Error is not null)
            {
                await Console.Error.WriteLineAsync(result.Error);
                return result.ExitCode;
            }
            // The closing summary every verb prints; on stderr when the forecasts themselves go to stdout.
            var summary = FormattableString.Invariant(
                $"series={result.Series} rows={result.Rows} seconds={System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds:F2} output={outputFile?.FullName ?? "stdout"}");
            await (file is null ? Console.Error : Console.Out).WriteLineAsync(summary);
            return result.ExitCode;
        });
        return command;
    }

    // The bar goes to stderr so that forecasts written to stdout stay clean.
    private static async Task<ForecastRunResult> WithProgress(Func<Action<int, int>, ForecastRunResult> run)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        return await console.Progress().StartAsync(async context =>
        {
            var task = context.AddTask("forecasting series");
            return await Task.Run(() => run((done, total) =>
            {
                task.MaxValue = total;
                task.Value = done;
            }));
        });
    }
}
