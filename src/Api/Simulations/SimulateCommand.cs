using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Forecaster.Api.Plans;
using Forecaster.Api.Training;
using Forecaster.Training.Csv;
using Spectre.Console;
using Microsoft.Extensions.Options;

namespace Forecaster.Api.Simulations;

/// <summary>
/// <c>forecaster simulate --input LOAD.csv --policy POLICY.json [--train-days 28] [--output REPORT.json]</c>: replays the load
/// against the predictive, reactive and static strategies (<see cref="Replay"/>) and prints the table; no database needed.
/// Exit codes: 0 done, 2 bad input (with the line, series or field).
/// </summary>
public static class SimulateCommand
{
    /// <summary>Where `--demo` load ends: fixed, so the demo table is reproducible.</summary>
    public static readonly DateTimeOffset DemoEnd = new(2026, 1, 5, 0, 0, 0, TimeSpan.Zero);

    public static Command Create()
    {
        var input = new Option<FileInfo?>("--input") { Description = "Load CSV: series,timestamp,value (hourly or finer, ISO 8601 UTC, any order)." };
        var demo = new Option<bool>("--demo")
        {
            // From the constants, so the date cannot drift from the data; not the seeded database's, which ends when it was seeded.
            Description = $"Replay the demo fleet's synthetic load instead of --input: {Demo.DemoFleet.HistoryDays} days ending {ForecastCsv.FormatTimestamp(DemoEnd)}, fixed so the table is reproducible (not the data `serve --demo` seeded).",
        };
        var policy = new Option<FileInfo>("--policy") { Description = "Planner policy JSON applied to every series.", Required = true };
        var trainDays = new Option<int>("--train-days") { Description = "Days of history before the first replayed midnight.", DefaultValueFactory = _ => ReplaySettings.DefaultTrainDays };
        var output = new Option<FileInfo?>("--output") { Description = "Write the JSON report here (the table goes to stdout)." };
        var command = new Command("simulate", "Replay history day by day: predictive plans vs reactive and static strategies (cost and risk).")
        {
            input, demo, policy, trainDays, output,
        };
        command.SetAction(async (parse, ct) =>
        {
            var prepared = Prepare(parse.GetValue(input), parse.GetValue(demo), parse.GetValue(policy)!, parse.GetValue(trainDays));
            if (prepared.Problem is { } problem)
            {
                await Console.Error.WriteLineAsync(problem);
                return 2;
            }
            var (series, notes) = (prepared.Series, prepared.Notes);
            var settings = Settings(parse.GetValue(trainDays));
            var started = Stopwatch.GetTimestamp();
            var fits = 0;
            var report = AnsiConsole.Profile.Capabilities.Interactive && !Console.IsErrorRedirected
                ? await AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) }).Progress()
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                    .StartAsync(async progress =>
                    {
                        var task = progress.AddTask("Replaying nights");
                        return await Task.Run(() => Replay.Simulate(series, settings, notes, (done, total) =>
                        {
                            (task.MaxValue, task.Value, fits) = (Math.Max(1, total), done, total);
                        }, ct), ct);
                    })
                : await Task.Run(() => Replay.Simulate(series, settings, notes, (_, total) => fits = total, ct), ct);
            var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;

            if (parse.GetValue(output) is { } file)
            {
                await File.WriteAllTextAsync(file.FullName, JsonSerializer.Serialize(report, Json), ct);
            }
            Console.Write(report.ToTable());
            await Console.Error.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"series={report.ReplayedSeries} days={report.SeriesDays} fits={fits} seconds={seconds:F2}"));
            return 0;
        });
        return command;
    }

    /// <summary>The report's JSON: web names (camelCase), strategy and series keys as they are, indented.</summary>
    public static JsonSerializerOptions Json { get; } = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    /// <summary>Everything the verb checks before replaying; <c>Problem</c> is the message for exit code 2.</summary>
    internal sealed record Prepared(IReadOnlyList<ReplaySeries> Series, IReadOnlyList<string> Notes, string? Problem);

    internal static Prepared Prepare(FileInfo? input, bool demo, FileInfo policyFile, int trainDays)
    {
        static Prepared Bad(string problem) => new([], [], problem);
        if ((input is null) == !demo)
        {
            return Bad("give either --input LOAD.csv or --demo");
        }
        if (trainDays is < 1 or > 400)
        {
            return Bad("--train-days must be between 1 and 400");
        }
        if (!policyFile.Exists)
        {
            return Bad($"--policy: {policyFile.FullName} does not exist");
        }
        Planner.Policy policy;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(policyFile.FullName));
            var (read, problems) = SimulationInputs.ReadPolicy(doc.RootElement);
            if (read is null)
            {
                return Bad($"--policy {policyFile.Name}: {string.Join("; ", problems.Select(p => $"{p.Field}: {p.Message}"))}");
            }
            policy = read;
        }
        catch (JsonException e)
        {
            return Bad($"--policy {policyFile.Name}: not JSON (line {e.LineNumber + 1}): {e.Message.Split(" Path:", 2)[0]}");
        }

        IReadOnlyList<SeriesHistory> histories;
        var notes = new List<string>();
        if (input is null)
        {
            histories = SimulationInputs.Demo(DemoEnd);
            notes.Add($"input: the demo fleet's load metric, {Demo.DemoFleet.HistoryDays} days ending {ForecastCsv.FormatTimestamp(DemoEnd)}");
        }
        else
        {
            if (!input.Exists)
            {
                return Bad($"--input: {input.FullName} does not exist");
            }
            try
            {
                using var reader = input.OpenText();
                histories = ForecastCsv.ReadHistory(reader);
            }
            catch (ForecastCsvException e)
            {
                return Bad($"--input {input.Name}: {e.Message}");
            }
            notes.Add($"input: {input.Name}");
        }
        var (series, problem) = SimulationInputs.Prepare(histories, policy);
        return problem is null ? new Prepared(series, notes, null) : Bad($"--input: {problem}");
    }

    /// <summary>
    /// The nightly run's options from the service's own container (validated as its start validates them; an invalid one
    /// ends the verb with exit code 2), with the replay's train-days: the settings a simulation job replays with.
    /// No database is touched: the replay needs none.
    /// </summary>
    static ReplaySettings Settings(int trainDays)
    {
        using var host = ForecasterServices.BuildForVerb(LogLevel.Warning);
        return new ReplaySettings(trainDays, host.Services.GetRequiredService<IOptions<TrainingOptions>>().Value,
            host.Services.GetRequiredService<IOptions<PlanningOptions>>().Value);
    }
}
