using System.CommandLine;
using Forecaster.Api.Database;

namespace Forecaster.Api.Cli;

/// <summary>`forecaster migrate`: apply pending migrations and say what was applied.</summary>
public static class MigrateCommand
{
    public static Command Create()
    {
        var command = new Command("migrate", "Apply pending database migrations (the service also does this at start).");
        command.SetAction(async (_, ct) =>
        {
            try
            {
                // The service's container and start-up preparation (policy checks and partitions come with the migrations).
                await using var host = ForecasterServices.BuildForVerb(LogLevel.Warning);
                var applied = await host.PrepareDatabaseAsync(ct);
                Console.WriteLine(applied == 0
                    ? $"Database is up to date ({Migration.Embedded.Count} migrations)."
                    : $"Applied {applied} migration(s); {Migration.Embedded.Count} in all.");
                return 0;
            }
            catch (Exception e) when (e is MigrationException or EmbeddedPostgresException)
            {
                Console.Error.WriteLine(e.Message);
                return 1;
            }
        });
        return command;
    }
}

/// <summary>`forecaster db status|stop`: the embedded PostgreSQL cluster.</summary>
public static class DbCommand
{
    public static Command Create()
    {
        var status = new Command("status", "Show whether the embedded cluster runs, where and on which port.");
        status.SetAction(_ =>
        {
            if (Verbs.Configuration()["FORECASTER_DB"] is { Length: > 0 })
            {
                Console.WriteLine("FORECASTER_DB is set: the service uses that server, not the embedded cluster.");
            }
            var cluster = EmbeddedPostgres.For(EmbeddedPostgres.DefaultHome());
            var s = cluster.Status();
            Console.WriteLine(s.Running
                ? $"running  port={s.Port} pid={s.Pid} version={s.Version} data={s.DataDir}"
                : $"stopped  data={s.DataDir}" + (s.Version is null ? " (not initialised yet)" : $" version={s.Version}"));
            return 0;
        });
        var stop = new Command("stop", "Stop the embedded cluster (the next command that needs it starts it again).");
        stop.SetAction(async (_, ct) =>
        {
            var cluster = EmbeddedPostgres.For(EmbeddedPostgres.DefaultHome());
            await cluster.StopAsync(ct);
            Console.WriteLine($"stopped  data={cluster.DataDir}");
            return 0;
        });
        return new Command("db", "Manage the embedded PostgreSQL cluster.") { status, stop };
    }
}
