using System.CommandLine;
using ValidationContext = System.ComponentModel.DataAnnotations.ValidationContext;
using ValidationResult = System.ComponentModel.DataAnnotations.ValidationResult;
using Validator = System.ComponentModel.DataAnnotations.Validator;
using Dapper;
using Npgsql;
using Spectre.Console;
using Forecaster.Api.Resources;

namespace Forecaster.Api.Plans;

/// <summary>
/// <c>forecaster plan [--resource NAME]...</c>: plans every resource now (or the named ones) from the stored forecasts, with a
/// progress bar on a terminal, ending with <c>resources=N planned=P cannot=C seconds=S rate=R/s</c> on stdout.
/// Exit codes: 0 done (resources that cannot be planned are reported, not failures), 1 failure, 2 bad input.
/// </summary>
public static class PlanCommand
{
    public static Command Create()
    {
        var resource = new Option<string[]>("--resource") { Description = "Plan only this resource (repeatable).", AllowMultipleArgumentsPerToken = false };
        var command = new Command("plan", "Plan every resource now (or the named ones) and publish the plans.") { resource };
        command.SetAction(async (parse, ct) =>
        {
            var names = parse.GetValue(resource) is { Length: > 0 } given ? given.Distinct(StringComparer.Ordinal).ToArray() : null;
            // The service's own container: the verb plans through the very pipeline a policy change or a training run uses.
            await using var host = await ForecasterServices.BuildForVerbAsync(LogLevel.Information, ct);
            var db = host.Services.GetRequiredService<NpgsqlDataSource>();
            int total;
            await using (var conn = await db.OpenConnectionAsync(ct))
            {
                if (names is not null)
                {
                    if (await ResourceStore.FirstUnknownAsync(conn, names, ct) is { } unknown)
                    {
                        Console.Error.WriteLine($"--resource: no resource is named '{unknown}'");
                        return 2;
                    }
                }
                total = await conn.ExecuteScalarAsync<int>(new CommandDefinition(
                    "SELECT count(*)::int FROM resources WHERE @names::text[] IS NULL OR name = ANY(@names)", new { names }, cancellationToken: ct));
            }

            var pipeline = host.Services.GetRequiredService<PlanningPipeline>();
            var scope = new PlanScope(PlanTrigger.Cli, names);
            PlanningOutcome outcome;
            try
            {
                outcome = Cli.Verbs.ShowProgress
                    ? await Cli.Verbs.Stderr.Progress()
                        .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                        .StartAsync(async progress =>
                        {
                            var task = progress.AddTask("Planning", maxValue: Math.Max(1, total));
                            return await Task.Run(() => pipeline.PlanAsync(scope, done => task.Value = done, ct), ct);
                        })
                    : await Task.Run(() => pipeline.PlanAsync(scope, null, ct), ct);
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException)
            {
                Console.Error.WriteLine($"Planning failed: {e.GetType().Name}: {e.Message}");
                return 1;
            }
            Console.WriteLine(outcome.Summary);
            return 0;
        });
        return command;
    }
}
