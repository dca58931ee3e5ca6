using System.CommandLine;
using Microsoft.Extensions.Options;

namespace Forecaster.Api.Cli;

/// <summary>
/// The `forecaster` command line. `serve` (or no verb) runs the service through Program.cs; every other verb is a
/// System.CommandLine command here. Exit codes: 0 success, 1 failure, 2 bad input (with the line number).
/// </summary>
public static class Verbs
{
    static RootCommand Root() => new("Forecaster: forecasts load and serves scale plans ahead of it.")
    {
        ServeHelp(),
        MigrateCommand.Create(),
        Samples.ImportCommand.Create(),
        DbCommand.Create(),
        Forecasting.ForecastCommand.Create(),
        Training.TrainCommand.Create(),
        Training.ShardProcesses.Command(),
        Plans.PlanCommand.Create(),
        Training.PruneModelsCommand.Create(),
        Simulations.SimulateCommand.Create(),
        Executors.ManifestCommand.Create(),
        Sources.SourcesCommand.Create(),
    };

    /// <summary>True when <paramref name="args"/> name a CLI verb (or ask for help) rather than the service.</summary>
    public static bool IsVerb(string[] args) =>
        args.Length > 0 && (!args[0].StartsWith('-') && args[0] != "serve" || args[0] is "--help" or "-h" or "--version"
            || args[0] == "serve" && args.Skip(1).Any(a => a is "--help" or "-h"));

    public static async Task<int> RunAsync(string[] args)
    {
        var result = Root().Parse(args);
        if (result.Errors.Count > 0)
        {
            foreach (var error in result.Errors)
            {
                Console.Error.WriteLine(error.Message);
            }
            Console.Error.WriteLine("Run `forecaster --help` for usage.");
            return 2;
        }
        try
        {
            // Our own handler below: the default one prints a stack trace.
            return await result.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Npgsql.NpgsqlException e)
        {
            Console.Error.WriteLine($"forecaster: {DescribeDatabaseFailure(e)}");
            return 1;
        }
        catch (Exception e) when (ConfigurationProblems(e) is { Count: > 0 } problems)
        {
            // The same validation that stops the service at start, reported as bad input.
            foreach (var problem in problems)
            {
                Console.Error.WriteLine($"forecaster: configuration: {problem}");
            }
            return 2;
        }
        catch (OperationCanceledException)
        {
            return 130;
        }
        catch (Exception e)
        {
            // Not the user's input and not the database: a fault worth its stack trace (what the default handler printed).
            Console.Error.WriteLine($"forecaster: unexpected failure: {e}");
            return 1;
        }
    }

    /// <summary>Every failure of an options validation (one, or several at once from the start-up validator); empty for any other exception.</summary>
    static List<string> ConfigurationProblems(Exception e) => e switch
    {
        OptionsValidationException o => [.. Describe(o)],
        AggregateException a when a.InnerExceptions.All(i => i is OptionsValidationException) =>
            [.. a.InnerExceptions.SelectMany(i => Describe((OptionsValidationException)i))],
        _ => [],
    };

    /// <summary>
    /// A data-annotation failure as the setting's own path ("Forecaster:Training:Shards: The field Shards must be between 1
    /// and 1024."), so the reader knows which key or variable to fix; other failures as they are.
    /// </summary>
    static IEnumerable<string> Describe(OptionsValidationException e)
    {
        // Every options class keeps its configuration path in a `Section` constant.
        var section = e.OptionsType.GetField("Section")?.GetValue(null) as string;
        foreach (var failure in e.Failures)
        {
            var m = System.Text.RegularExpressions.Regex.Match(failure, "^DataAnnotation validation failed for '[^']*' members: '([^']*)' with the error: '(.*)'\\.$");
            yield return m.Success && section is not null ? $"{section}:{m.Groups[1].Value}: {m.Groups[2].Value}" : failure;
        }
    }

    /// <summary>One line naming the database and why it failed, e.g. "cannot reach the database 127.0.0.1:5432/forecaster: Connection refused".</summary>
    internal static string DescribeDatabaseFailure(Npgsql.NpgsqlException e)
    {
        var configured = Configuration() is var c && c["FORECASTER_DB"] is { Length: > 0 } env ? env : c.GetConnectionString("Forecaster");
        var where = "the embedded database";
        if (!string.IsNullOrWhiteSpace(configured))
        {
            try
            {
                var b = new Npgsql.NpgsqlConnectionStringBuilder(configured);
                where = $"the database {b.Host}:{b.Port}/{b.Database}";
            }
            catch (ArgumentException)
            {
                where = "the database in FORECASTER_DB";
            }
        }
        var reason = e is Npgsql.PostgresException pg ? $"{pg.MessageText} ({pg.SqlState})" : e.GetBaseException().Message;
        return Errors.DatabaseUnavailable.Is(e)
            ? $"cannot reach {where}: {reason}. Start PostgreSQL or point FORECASTER_DB at a running server."
            : $"{where} refused the work: {reason}.";
    }

    /// <summary>Turns `serve [--urls U] [--demo]` into host arguments (`--urls U --Forecaster:Demo=true`).</summary>
    public static string[] ServeArguments(string[] args)
    {
        var rest = args.Length > 0 && args[0] == "serve" ? args[1..] : args;
        return [.. rest.Select(a => a switch
        {
            "--demo" => $"--{ForecasterOptions.Section}:Demo=true",
            "--new-key" => $"--{ForecasterOptions.Section}:NewDemoKey=true",
            _ => a,
        })];
    }

    static Command ServeHelp()
    {
        var serve = new Command("serve", "Run the service (REST API, Swagger UI at /swagger, scheduled jobs).")
        {
            new Option<string>("--urls") { Description = "Where to listen (default http://127.0.0.1:8080)." },
            new Option<bool>("--demo") { Description = "Seed a synthetic fleet into an empty database and print a demo API key (kept in FORECASTER_HOME across restarts)." },
            new Option<bool>("--new-key") { Description = "With --demo: replace the stored demo API key with a new one." },
        };
        // Only reached for `serve --help`: Program.cs runs the service itself.
        serve.SetAction(_ => 0);
        return serve;
    }

    internal static IConfiguration Configuration() => new ConfigurationBuilder()
        .AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: true)
        .AddEnvironmentVariables()
        .Build();

    /// <summary>Where progress bars are drawn: stderr, so stdout holds only the summary line a script reads.</summary>
    internal static Spectre.Console.IAnsiConsole Stderr { get; } = Spectre.Console.AnsiConsole.Create(new Spectre.Console.AnsiConsoleSettings
    {
        Out = new Spectre.Console.AnsiConsoleOutput(Console.Error),
    });

    /// <summary>True when a progress bar can be drawn: stderr is an interactive terminal.</summary>
    internal static bool ShowProgress => Stderr.Profile.Capabilities.Interactive && !Console.IsErrorRedirected;
}
