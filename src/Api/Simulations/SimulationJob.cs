using System.ComponentModel;
using System.Diagnostics;
using System.Text.Json;
using Forecaster.Api.Jobs;
using Forecaster.Api.Plans;
using Forecaster.Api.Training;
using Hangfire;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Forecaster.Api.Simulations;

/// <summary>
/// Runs one simulation as a Hangfire job on the `simulations` queue (its workers: one per instance by default, since a replay
/// already uses every core). The request and the report are rows of `simulations`, so a report survives a restart; the run
/// is claimed under a lease held in the database, so a simulation never runs on two instances at once, whatever delivers it.
/// </summary>
public sealed class SimulationJob(
    NpgsqlDataSource db, IOptions<TrainingOptions> training, IOptions<PlanningOptions> planning, JobsInstance instance,
    TimeProvider clock, ILogger<SimulationJob> logger)
{
    /// <summary>Enqueues stored simulation <paramref name="id"/>; returns Hangfire's job id.</summary>
    public static string Enqueue(IBackgroundJobClient jobs, long id) =>
        jobs.Enqueue<SimulationJob>(JobQueues.Simulations, j => j.RunAsync(id, CancellationToken.None));

    // No automatic retry: a replay that failed is recorded failed on its row (post it again to rerun), and its inputs have
    // not changed. A replay interrupted by a stopping or dead instance is not a failure: Hangfire delivers it again.
    [AutomaticRetry(Attempts = 0)]
    [DisplayName("Simulation {0}")]
    public async Task RunAsync(long id, CancellationToken ct)
    {
        var (lease, waited) = await WorkLease.AcquireAsync(db, $"simulation:{id}", ct);
        await using var _ = lease;
        if (waited)
        {
            logger.LogInformation("Simulation {Id} was delivered twice; this delivery waited for the other to end", id);
        }
        try
        {
            await RunLeasedAsync(id, ct);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Stopping: queued again, and Hangfire hands the job to the next free worker of any instance.
            logger.LogInformation("Simulation {Id} handed back: this instance is stopping", id);
            await TrainingJobs.TryAsync(() => Simulations.RequeueAsync(db, id, CancellationToken.None), logger, attempts: 2);
            throw;
        }
        catch (Exception e)
        {
            // One simulation's failure is its own: recorded on it. Recording may fail too when the database is the cause.
            logger.LogError(e, "Simulation {Id} failed", id);
            await TrainingJobs.TryAsync(
                () => Simulations.FailAsync(db, id, $"{e.GetType().Name}: {e.Message}", clock.GetUtcNow(), CancellationToken.None), logger, ct);
        }
    }

    async Task RunLeasedAsync(long id, CancellationToken ct)
    {
        if (!await Simulations.StartAsync(db, id, instance.Id, clock.GetUtcNow(), ct) || await Simulations.GetAsync(db, id, ct) is not { } row)
        {
            logger.LogInformation("Simulation {Id} is already finished; nothing to do", id);
            return;
        }
        var request = JsonSerializer.Deserialize<SimulationRequest>(row.Request, JsonSerializerOptions.Web)!;
        var (series, problem) = await SimulationRequests.LoadAsync(db, request, ct);
        if (problem is not null)
        {
            await Simulations.FailAsync(db, id, problem, clock.GetUtcNow(), ct);
            return;
        }
        var settings = new ReplaySettings(request.TrainDays ?? ReplaySettings.DefaultTrainDays, training.Value, planning.Value);
        var notes = new[] { request.Resources is { } names ? $"input: stored load of {names.Length} resources" : $"input: {series.Count} inline series" };

        // The replay reports every fit from worker threads; the database hears about it at most once a second.
        var total = 0;
        var done = 0;
        var clockStarted = Stopwatch.GetTimestamp();
        using var ticker = new PeriodicTimer(TimeSpan.FromSeconds(1));
        var replay = Task.Run(() => Replay.Simulate(series, settings, notes, (d, t) =>
        {
            Volatile.Write(ref total, t);
            Interlocked.Exchange(ref done, Math.Max(d, Volatile.Read(ref done)));
        }, ct), ct);
        while (!replay.IsCompleted)
        {
            await Task.WhenAny(replay, ticker.WaitForNextTickAsync(ct).AsTask());
            if (!replay.IsCompleted)
            {
                await Simulations.ProgressAsync(db, id, Volatile.Read(ref done), Volatile.Read(ref total), ct);
            }
        }
        var report = await replay;
        await Simulations.SucceedAsync(db, id, JsonSerializer.Serialize(report, JsonSerializerOptions.Web), Volatile.Read(ref total), clock.GetUtcNow(), ct);
        logger.LogInformation("Simulation {Id}: {Series} series, {Days} series-days in {Seconds:F1}s; goal met: {Met}",
            id, report.ReplayedSeries, report.SeriesDays, Stopwatch.GetElapsedTime(clockStarted).TotalSeconds, report.Goal.Met);
    }
}

/// <summary>
/// At start, gives a Hangfire job to every unfinished simulation that has none: rows left by a crash between the POST's
/// insert and its enqueue, or queued before simulations were Hangfire jobs. Claimed row by row, so two instances starting
/// together never both enqueue one; and a double delivery would still run once (the lease).
/// </summary>
sealed class SimulationRecovery(NpgsqlDataSource db, IBackgroundJobClient jobs, IHostApplicationLifetime lifetime, ILogger<SimulationRecovery> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // After start-up, so the migrations have run.
        var started = new TaskCompletionSource();
        using (lifetime.ApplicationStarted.Register(started.SetResult))
        {
            await started.Task.WaitAsync(stoppingToken);
        }
        // A database that is away at start only delays this recovery; it must not stop the service.
        await TrainingJobs.TryAsync(async () =>
        {
            foreach (var id in await Simulations.ClaimOrphansAsync(db, stoppingToken))
            {
                await Simulations.SetJobAsync(db, id, SimulationJob.Enqueue(jobs, id), stoppingToken);
                logger.LogInformation("Simulation {Id} had no job; enqueued", id);
            }
        }, logger, stoppingToken);
    }
}
