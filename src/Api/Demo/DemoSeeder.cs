using Dapper;
using Forecaster.Api.Samples;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Forecaster.Api.Demo;

/// <summary>With --demo: seeds the demo fleet into an empty database (readiness waits for it) and trains it at once.</summary>
sealed class DemoSeeder(
    NpgsqlDataSource db, SamplePartitions partitions, TimeProvider clock, DemoState state, IServer server,
    IHostApplicationLifetime lifetime, IServiceProvider services, ILogger<DemoSeeder> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // After start-up, so the migrations have run.
        var started = new TaskCompletionSource();
        using var _ = lifetime.ApplicationStarted.Register(started.SetResult);
        await started.Task.WaitAsync(stoppingToken);
        var seeded = await SeedAsync(db, partitions, clock.GetUtcNow(), logger, stoppingToken);
        long? run = null;
        if (seeded)
        {
            // The plan cache hears of the new resources at once, and the fleet is trained now rather than at 02:00, so the
            // dashboard shows forecasts and plans within a minute of start.
            await using (var conn = await db.OpenConnectionAsync(stoppingToken))
            {
                await conn.ExecuteAsync(new CommandDefinition("SELECT pg_notify('resources', name) FROM resources", cancellationToken: stoppingToken));
            }
            run = await StartTrainingAsync(stoppingToken);
        }
        state.MarkSeeded();
        // The banner (addresses and key) was printed before the first log line; this says what happened since.
        var url = (server.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault() ?? "http://127.0.0.1:8080").TrimEnd('/');
        Console.WriteLine(seeded
            ? $"Forecaster demo: seeded the demo fleet ({DemoFleet.Resources().Count} resources, {DemoFleet.HistoryDays} days of history)"
              + (run is { } id ? $"; training it now (run {id}): forecasts and plans follow within a minute, see {url}/#/training" : "")
            : "Forecaster demo: the database already holds resources; nothing was seeded");
    }

    /// <summary>Starts a training run of the whole fleet as POST /api/v1/training-runs would; null while another run is active.</summary>
    async Task<long?> StartTrainingAsync(CancellationToken ct)
    {
        var (created, _) = await Training.TrainingRuns.CreateAsync(db, "api", null, clock.GetUtcNow(), ct);
        if (created is not long runId)
        {
            return null;
        }
        Training.TrainingJobs.EnqueueStart(services.GetRequiredService<Hangfire.IBackgroundJobClient>(), runId);
        return runId;
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
        import.RegisterResources(fleet.Select(r => r.ToResource()));
        var (summary, _) = await import.CompleteAsync(ct);
        logger.LogInformation("Seeded the demo fleet: {Resources} resources, {Rows} samples", fleet.Count, summary!.Rows);
        return true;
    }
}
