using Microsoft.Extensions.Options;
using Npgsql;
using Quartz;

namespace Forecaster.Api.Training;

/// <summary>
/// Starts a training run: the nightly trigger's (which creates the run) or one created by POST /api/v1/training-runs (its id in
/// the job data). Splits it into shards and fires one <see cref="TrainingShardJob"/> per shard, which any instance of the
/// cluster may take. Non-concurrent across the cluster; the database's one-active-run index stops a second run whatever
/// starts it.
/// </summary>
[DisallowConcurrentExecution]
public sealed class TrainingRunJob(NpgsqlDataSource db, IOptions<TrainingOptions> options, TimeProvider clock, ILogger<TrainingRunJob> logger) : IJob
{
    public static readonly JobKey Key = new("training-run", "training");
    public const string RunIdKey = "runId";

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken ct)
    {
        long runId;
        if (context.MergedJobDataMap.ContainsKey(RunIdKey))
        {
            runId = context.MergedJobDataMap.GetLong(RunIdKey);
        }
        else
        {
            var (created, active) = await TrainingRuns.CreateAsync(db, "nightly", null, clock.GetUtcNow(), ct);
            if (created is not long id)
            {
                logger.LogWarning("Nightly training skipped: run {RunId} is still queued or running", active);
                return;
            }
            runId = id;
        }
        try
        {
            var shards = await TrainingRuns.StartAsync(db, runId, options.Value.Shards, clock.GetUtcNow(), ct);
            if (shards.Count == 0)
            {
                // A recovered firing of a run whose shards were already fired: they recover on their own.
                logger.LogInformation("Training run {RunId} was already started", runId);
                return;
            }
            foreach (var shard in shards)
            {
                await context.Scheduler.TriggerJob(TrainingShardJob.Key,
                    new JobDataMap { [RunIdKey] = runId.ToString(System.Globalization.CultureInfo.InvariantCulture), [TrainingShardJob.ShardKey] = shard.ToString(System.Globalization.CultureInfo.InvariantCulture) }, ct);
            }
            logger.LogInformation("Training run {RunId} started with {Shards} shards", runId, shards.Count);
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or SchedulerException)
        {
            logger.LogError(e, "Training run {RunId} could not start", runId);
            await TryAsync(() => TrainingRuns.FailAsync(db, runId, $"could not start: {e.Message}", clock.GetUtcNow(), CancellationToken.None), logger, ct);
        }
    }

    /// <summary>
    /// Records the end of a run or shard. The database may be the very thing that failed, so the write is retried for a
    /// few minutes (a blip is then recorded within seconds of its end); past that the watchdog marks the run failed.
    /// </summary>
    internal static async Task TryAsync(Func<Task> record, ILogger logger, CancellationToken ct = default)
    {
        const int attempts = 60;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await record();
                return;
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException)
            {
                if (attempt == attempts || ct.IsCancellationRequested)
                {
                    logger.LogError(e, "Could not record the failure; the watchdog marks the run failed once the database answers");
                    return;
                }
                if (attempt == 1)
                {
                    logger.LogWarning("The database does not answer; retrying to record the end of the training run every 5 s");
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

/// <summary>
/// Trains one shard of a run (<see cref="TrainingPipeline"/>), on whichever instance acquires it; the last shard to finish
/// ends the run and hands over to planning. Requests recovery: a shard whose instance dies is run again by another, and
/// resumes after the resources it had already written.
/// </summary>
[ExecutionGroup(Group)]
public sealed class TrainingShardJob(
    NpgsqlDataSource db, TrainingPipeline pipeline, PlanningStep planning, TimeProvider clock, ILogger<TrainingShardJob> logger) : IJob
{
    public static readonly JobKey Key = new("training-shard", "training");
    public const string Group = "training-shard";
    public const string ShardKey = "shard";

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken ct)
    {
        var runId = context.MergedJobDataMap.GetLong(TrainingRunJob.RunIdKey);
        var shard = context.MergedJobDataMap.GetInt(ShardKey);
        var instance = context.Scheduler.SchedulerInstanceId;
        string? error = null;
        try
        {
            if (!await TrainingRuns.ClaimShardAsync(db, runId, shard, instance, clock.GetUtcNow(), ct))
            {
                logger.LogInformation("Training run {RunId} shard {Shard}: the run is no longer running; nothing to do", runId, shard);
                return;
            }
            logger.LogInformation("Training run {RunId} shard {Shard} on {Instance}{Recovering}", runId, shard, instance, context.Recovering ? " (recovered)" : "");
            await pipeline.RunShardAsync(runId, shard, null, ct);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The database went away, or something else no series-level catch could absorb: the shard (and so the run) fails cleanly.
            logger.LogError(e, "Training run {RunId} shard {Shard} failed", runId, shard);
            error = $"{e.GetType().Name}: {e.Message}";
        }
        // Two steps retried apart: a retry of the first after it committed would find the run closed and skip planning.
        string? status = null;
        await TrainingRunJob.TryAsync(async () => status = await TrainingRuns.CompleteShardAsync(db, runId, shard, error, clock.GetUtcNow(), CancellationToken.None), logger, ct);
        if (status is not null)
        {
            await TrainingRunJob.TryAsync(() => planning.AfterRunAsync(runId, status, CancellationToken.None), logger, ct);
        }
    }
}
