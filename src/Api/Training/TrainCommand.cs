using System.CommandLine;
using System.Diagnostics;
using Forecaster.Api.Resources;
using Spectre.Console;

namespace Forecaster.Api.Training;

/// <summary>
/// <c>forecaster train [--resource NAME]...</c>: one training run in the foreground (one shard, every core) with a progress bar,
/// ending with <c>series=N failed=F seconds=S rate=R/s</c>. Exit codes: 0 succeeded, 1 failed or another run active, 2 bad input.
/// </summary>
public static class TrainCommand
{
    public static Command Create()
    {
        var resource = new Option<string[]>("--resource") { Description = "Train only this resource (repeatable).", AllowMultipleArgumentsPerToken = false };
        var command = new Command("train", "Retrain every series now (or the named resources) and store models and forecasts.") { resource };
        command.SetAction(async (parse, ct) =>
        {
            var names = parse.GetValue(resource) is { Length: > 0 } given ? given.Distinct(StringComparer.Ordinal).ToArray() : null;
            var started = Stopwatch.GetTimestamp();
            // The service's own container: the verb runs a shard exactly as a shard job does, then plans as after a nightly run.
            await using var host = await ForecasterServices.BuildForVerbAsync(LogLevel.Information, ct);
            var services = host.Services;
            var options = services.GetRequiredService<Microsoft.Extensions.Options.IOptions<TrainingOptions>>().Value;
            var db = services.GetRequiredService<Npgsql.NpgsqlDataSource>();
            if (names is not null)
            {
                await using var conn = await db.OpenConnectionAsync(ct);
                if (await ResourceStore.FirstUnknownAsync(conn, names, ct) is { } unknown)
                {
                    Console.Error.WriteLine($"--resource: no resource is named '{unknown}'");
                    return 2;
                }
            }

            var clock = services.GetRequiredService<TimeProvider>();
            var (created, active) = await TrainingRuns.CreateAsync(db, "cli", names, clock.GetUtcNow(), ct);
            if (created is not long runId)
            {
                Console.Error.WriteLine($"Training run {active} is already queued or running; wait for it (GET /api/v1/training-runs/{active}).");
                return 1;
            }
            await TrainingRuns.StartAsync(db, runId, 1, clock.GetUtcNow(), ct);
            int total;
            await using (var conn = await db.OpenConnectionAsync(ct))
            {
                total = (await TrainingRuns.GetAsync(conn, runId, ct))!.SeriesTotal;
            }

            var shards = services.GetRequiredService<ShardRunner>();
            var owner = $"cli@{Environment.MachineName}";
            // One attempt at recording the end: a verb reports a database that is away instead of waiting minutes for it.
            var run = Cli.Verbs.ShowProgress
                ? await Cli.Verbs.Stderr.Progress()
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                    .StartAsync(async progress =>
                    {
                        var task = progress.AddTask($"Training run {runId}", maxValue: Math.Max(1, total));
                        return await Task.Run(() => shards.RunAsync(runId, 0, owner, (done, _) => task.Value = done, handBack: false, recordAttempts: 1, ct), ct);
                    })
                : await Task.Run(() => shards.RunAsync(runId, 0, owner, null, handBack: false, recordAttempts: 1, ct), ct);
            if (run.Error is { } error)
            {
                Console.Error.WriteLine($"Training run {runId} failed: {error}");
            }
            var status = run.Status ?? "failed";
            await services.GetRequiredService<PlanAfterTraining>().AfterRunAsync(runId, status, CancellationToken.None);
            var outcome = run.Outcome;

            var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            var series = outcome?.Series ?? 0;
            if (outcome is not null)
            {
                Console.Error.WriteLine($"run={runId} status={status} reading={outcome.Reading.TotalSeconds:F1}s fitting={outcome.Fitting.TotalSeconds:F1}s writing={outcome.Writing.TotalSeconds:F1}s models={options.ResolvedModelsPath}");
            }
            Console.WriteLine(FormattableString.Invariant($"series={series} failed={outcome?.Failed ?? 0} seconds={seconds:F2} rate={series / Math.Max(seconds, 1e-9):F1}/s"));
            return status == "succeeded" ? 0 : 1;
        });
        return command;
    }
}
