using System.ComponentModel;
using Forecaster.Api.Jobs;
using Forecaster.Api.Plans;
using Hangfire;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Forecaster.Api.Training;

/// <summary>
/// Training as Hangfire jobs. The nightly recurring job (or POST /api/v1/training-runs) starts a run and fans it out into one
/// shard job per shard on the `training` queue, which any instance's workers take; the last shard to finish hands over to
/// planning on the `planning` queue. At most one run is active at a time, across instances, by the database's one-active-run
/// index, whatever starts it.
/// </summary>
public sealed class TrainingJobs(
    NpgsqlDataSource db, ShardRunner shards, PlanAfterTraining planning, IBackgroundJobClient jobs, JobsInstance instance,
    IOptions<TrainingOptions> options, TimeProvider clock, ILogger<TrainingJobs> logger)
{
    public const string NightlyId = "nightly-training";

    /// <summary>
    /// Registers the nightly run, in UTC. A night missed while every instance was down runs once on start, not once per
    /// missed night (Relaxed misfire handling); Hangfire's recurring scheduler fires it on one instance only.
    /// </summary>
    public static void ScheduleNightly(IRecurringJobManager manager, string cron) =>
        manager.AddOrUpdate<TrainingJobs>(NightlyId, JobQueues.Default, j => j.NightlyAsync(CancellationToken.None), cron,
            new RecurringJobOptions { TimeZone = TimeZoneInfo.Utc, MisfireHandling = MisfireHandlingMode.Relaxed });

    /// <summary>Enqueues the start of run <paramref name="runId"/> (created queued by the API or the demo).</summary>
    public static string EnqueueStart(IBackgroundJobClient jobs, long runId) =>
        jobs.Enqueue<TrainingJobs>(JobQueues.Default, j => j.StartRunAsync(runId, CancellationToken.None));

    /// <summary>The nightly run: creates it, unless a run is still active (then this night is skipped, and said so).</summary>
    // No automatic retry: a run that could not start is recorded failed, and a retry hours later would train at the wrong time.
    [AutomaticRetry(Attempts = 0)]
    [DisplayName("Nightly training")]
    public async Task NightlyAsync(CancellationToken ct)
    {
        var (created, active) = await TrainingRuns.CreateAsync(db, "nightly", null, clock.GetUtcNow(), ct);
        if (created is not long runId)
        {
            logger.LogWarning("Nightly training skipped: run {RunId} is still queued or running", active);
            return;
        }
        await StartRunAsync(runId, ct);
    }

    /// <summary>
    /// Starts a queued run: writes its shards and enqueues one job per shard. Delivered again after a crash, it enqueues the
    /// shards still pending; a shard enqueued twice runs once (its lease and its status decide).
    /// </summary>
    // No automatic retry: a start that failed marks the run failed, so the next one can start; retrying would race it.
    [AutomaticRetry(Attempts = 0)]
    [DisplayName("Start training run {0}")]
    public async Task StartRunAsync(long runId, CancellationToken ct)
    {
        try
        {
            var shards = await TrainingRuns.StartAsync(db, runId, options.Value.Shards, clock.GetUtcNow(), ct);
            foreach (var shard in shards)
            {
                jobs.Enqueue<TrainingJobs>(JobQueues.Training, j => j.RunShardAsync(runId, shard, CancellationToken.None));
            }
            logger.LogInformation("Training run {RunId}: {Shards} shards enqueued", runId, shards.Count);
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or BackgroundJobClientException)
        {
            logger.LogError(e, "Training run {RunId} could not start", runId);
            await TryAsync(() => TrainingRuns.FailAsync(db, runId, $"could not start: {e.Message}", clock.GetUtcNow(), CancellationToken.None), logger, ct);
        }
    }

    /// <summary>
    /// Trains one shard of a run under its lease, resuming after the resources this run already wrote (a shard whose
    /// instance died is delivered again once its invisibility timeout passes). On shutdown (SIGTERM) the shard is handed
    /// back at once: marked pending and left in Hangfire's queue, where the next free worker of any instance takes it.
    /// </summary>
    // No automatic retry: a shard that failed has failed its run (recorded, previous models kept), and a retry would find
    // the run closed. Re-delivery after a crash or a shutdown is not a retry: it is how the shard gets finished.
    [AutomaticRetry(Attempts = 0)]
    [DisplayName("Training run {0}, shard {1}")]
    public async Task RunShardAsync(long runId, int shard, CancellationToken ct)
    {
        var (lease, waited) = await WorkLease.AcquireAsync(db, $"training-shard:{runId}:{shard}", ct);
        await using var _ = lease;
        if (waited)
        {
            logger.LogInformation("Training run {RunId} shard {Shard} was delivered twice; this delivery waited for the other to end", runId, shard);
        }
        var run = await shards.RunAsync(runId, shard, instance.Id, null, handBack: true, recordAttempts: 60, ct,
            inChildProcess: options.Value.ShardProcess && clock == TimeProvider.System);
        // Two steps retried apart: a retry of the first after it committed would find the run closed and skip planning.
        if (run.Status is { } final)
        {
            await TryAsync(() => Task.FromResult(jobs.Enqueue<TrainingJobs>(JobQueues.Planning, j => j.PlanAfterRunAsync(runId, final, CancellationToken.None))), logger, ct);
        }
    }

    /// <summary>Plans the fleet after a successful run (and records what planning did on the run).</summary>
    // A few retries: planning is idempotent (a new plan version replaces the active one), so retrying a failure that escaped
    // its own handling (the database away while recording the outcome) is safe.
    [AutomaticRetry(Attempts = 3)]
    [DisplayName("Plan after training run {0} ({1})")]
    public Task PlanAfterRunAsync(long runId, string status, CancellationToken ct) => planning.AfterRunAsync(runId, status, ct);

    /// <summary>
    /// Records the end of a run or shard. The database may be the very thing that failed, so the write is retried for a
    /// few minutes (a blip is then recorded within seconds of its end); past that the watchdog marks the run failed.
    /// </summary>
    internal static async Task TryAsync(Func<Task> record, ILogger logger, CancellationToken ct = default, int attempts = 60)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await record();
                return;
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException or BackgroundJobClientException)
            {
                if (attempt == attempts || ct.IsCancellationRequested)
                {
                    logger.LogError(e, "Could not record the outcome; the watchdog marks the run failed once the database answers");
                    return;
                }
                if (attempt == 1)
                {
                    logger.LogWarning("The database does not answer; retrying to record the outcome every 5 s");
                }
            }
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(5), ct);
            }
            catch (OperationCanceledException)
            {
                // Shutting down: the watchdog of the next start takes over.
            }
        }
    }
}
