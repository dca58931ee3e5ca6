using Dapper;
using Forecaster.Api.Samples;
using Forecaster.Api.Security;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Forecaster.Api.Demo;

/// <summary>With --demo: seeds the demo fleet into an empty database and prints where to look and the API key.</summary>
sealed class DemoSeeder(
    NpgsqlDataSource db, SamplePartitions partitions, TimeProvider clock, ApiKeyRing keys, IServer server,
    IHostApplicationLifetime lifetime, ILogger<DemoSeeder> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // After start-up, so the migrations have run.
        var started = new TaskCompletionSource();
        using var _ = lifetime.ApplicationStarted.Register(started.SetResult);
        await started.Task.WaitAsync(stoppingToken);
        var seeded = await SeedAsync(db, partitions, clock.GetUtcNow(), logger, stoppingToken);
        var url = server.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault() ?? "http://127.0.0.1:8080";
        Console.WriteLine();
        Console.WriteLine($"Forecaster demo is running. Swagger UI: {url.TrimEnd('/')}/swagger");
        Console.WriteLine(seeded ? "Seeded the demo fleet (20 services, 5 streaming jobs, 35 days of history)." : "The database already holds resources; nothing was seeded.");
        if (keys.GeneratedKey is { } key)
        {
            Console.WriteLine($"Demo API key (send as X-Api-Key): {key}");
        }
        Console.WriteLine();
    }

    /// <summary>Seeds when the database has no resources; returns whether it did.</summary>
    public static async Task<bool> SeedAsync(NpgsqlDataSource db, SamplePartitions partitions, DateTimeOffset now, ILogger logger, CancellationToken ct)
    {
        await using (var conn = await db.OpenConnectionAsync(ct))
        {
            if (await conn.ExecuteScalarAsync<bool>(new CommandDefinition("SELECT EXISTS (SELECT 1 FROM resources)", cancellationToken: ct)))
            {
                return false;
            }
        }
        var fleet = DemoFleet.Resources();
        await using var import = await SampleImport.BeginAsync(db, partitions, createResources: false, now, ct);
        foreach (var r in fleet)
        {
            foreach (var (metric, ts, value) in DemoFleet.Samples(r, now.UtcDateTime))
            {
                await import.AddAsync(await import.AddKeyAsync(r.Name, metric, 0, ct), ts, value, ct);
            }
        }
        // Resources are registered inside the same transaction as their samples: a half-seeded fleet never shows.
        import.RegisterResources(fleet.Select(r => (r.Name, r.Kind, r.Group, r.LoadMetric, r.Policy.ToJsonString())));
        var (summary, _) = await import.CompleteAsync(ct);
        logger.LogInformation("Seeded the demo fleet: {Resources} resources, {Rows} samples", fleet.Count, summary!.Rows);
        return true;
    }
}
