using System.CommandLine;
using Forecaster.Api.Database;
using Forecaster.Api.Samples;

namespace Forecaster.Api.Cli;

/// <summary>
/// The `forecaster` command line. `serve` (or no verb) runs the service through Program.cs; every other verb is a
/// System.CommandLine command here. Exit codes: 0 success, 1 failure, 2 bad input (with the line number).
/// </summary>
public static class Cli
{
    static RootCommand Root() => new("Forecaster: forecasts load and serves scale plans ahead of it.")
    {
        ServeHelp(),
        MigrateCommand.Create(),
        ImportCommand.Create(),
        DbCommand.Create(),
        Forecasting.ForecastCommand.Create(),
        Training.TrainCommand.Create(),
        Plans.PlanCommand.Create(),
        Simulations.SimulateCommand.Create(),
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
        return await result.InvokeAsync();
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

    /// <summary>The database for a CLI verb: resolved like the service's, migrated, with partitions ready.</summary>
    internal static async Task<(Npgsql.NpgsqlDataSource DataSource, SamplePartitions Partitions)> OpenDatabaseAsync(CancellationToken ct)
    {
        var database = await DatabaseSetup.ResolveAsync(Configuration(), ct);
        var dataSource = DatabaseSetup.CreateDataSource(database.ConnectionString);
        var partitions = new SamplePartitions(dataSource);
        await DatabaseSetup.PrepareAsync(dataSource, partitions, TimeProvider.System, Logger, ct);
        return (dataSource, partitions);
    }

    internal static IConfiguration Configuration() => new ConfigurationBuilder()
        .AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: true)
        .AddEnvironmentVariables()
        .Build();

    internal static ILogger Logger { get; } = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning)).CreateLogger("forecaster");
}
