using Npgsql;

namespace Forecaster.Api.Training;

/// <summary>How one delivery of a shard ended: whether it was claimed, what it trained, and the run's status after it (null while open).</summary>
public sealed record ShardRun(bool Claimed, ShardOutcome? Outcome, string? Error, string? Status);

/// <summary>
/// Claim, train, complete: the one sequence by which a shard runs, whether a Hangfire shard job (<see cref="TrainingJobs"/>)
/// or the `train` verb runs it. Recording the end is retried (the database may be what failed); the shard's lease is the caller's.
/// </summary>
public sealed class ShardRunner(
    NpgsqlDataSource db, TrainingPipeline pipeline, ShardProcesses processes, Microsoft.Extensions.Options.IOptions<TrainingOptions> options,
    TimeProvider clock, ILogger<ShardRunner> logger)
{
    /// <param name="owner">Who holds the shard (an instance id, or <c>cli@host</c>).</param>
    /// <param name="handBack">On cancellation: true hands the shard back for another worker (a stopping instance); false closes it
    /// failed (an interrupted verb: an open run would refuse every later one until a service's watchdog noticed).</param>
    /// <param name="recordAttempts">How often recording the end is tried, 5 s apart.</param>
    /// <param name="inChildProcess">Fit in a child process without tiered compilation (<see cref="ShardProcesses"/>), as the
    /// service does, when a child is idle or at least <see cref="TrainingOptions.ShardProcessMinSeries"/> series are left; false fits here (the
    /// `train` verb, which already runs without tiering).</param>
    public async Task<ShardRun> RunAsync(
        long runId, int shard, string owner, Action<int, int>? progress, bool handBack, int recordAttempts, CancellationToken ct,
        bool inChildProcess = false)
    {
        // The metrics are the service's, wherever the shard was fitted.
        void Written(BatchWritten b)
        {
            Observability.ForecasterMetrics.RecordTrained(b.Trained, b.BatchFailed, b.ChosenMase.Zip(b.SeasonalNaiveMase));
            progress?.Invoke(b.Done, b.Failed);
        }
        string? error = null;
        ShardOutcome? outcome = null;
        try
        {
            if (!await TrainingRuns.ClaimShardAsync(db, runId, shard, owner, clock.GetUtcNow(), ct))
            {
                logger.LogInformation("Training run {RunId} shard {Shard}: already done, or the run is no longer running; nothing to do", runId, shard);
                return new ShardRun(false, null, null, null);
            }
            logger.LogInformation("Training run {RunId} shard {Shard} on {Instance}", runId, shard, owner);
            outcome = inChildProcess && (processes.HasIdleChild || await TrainingRuns.ShardSeriesLeftAsync(db, runId, shard, ct) >= options.Value.ShardProcessMinSeries)
                ? await processes.RunShardAsync(runId, shard, Written, ct)
                : await pipeline.RunShardAsync(runId, shard, Written, ct);
        }
        catch (Exception e) when (ct.IsCancellationRequested && handBack)
        {
            // Stopping, or Hangfire gave the shard to another instance: what the shard wrote stays (it resumes after it); the
            // rest goes back to whoever is free first. Whatever the exception: a cancelled read, COPY or wait does not always
            // surface as OperationCanceledException, and recording it as the shard's failure would fail the run while the
            // other delivery finds the shard closed and does nothing (issue 16).
            if (e is not OperationCanceledException)
            {
                logger.LogInformation("Training run {RunId} shard {Shard}: cancelled as {Exception}: {Message}", runId, shard, e.GetType().Name, e.Message);
            }
            logger.LogInformation("Training run {RunId} shard {Shard} handed back: this instance is stopping or the shard went to another", runId, shard);
            await TrainingJobs.TryAsync(() => TrainingRuns.ReleaseShardAsync(db, runId, shard, CancellationToken.None), logger, attempts: 2);
            if (e is OperationCanceledException)
            {
                throw;
            }
            // As a cancellation, so that Hangfire leaves the job in its queue (a stop) instead of failing it for good.
            throw new OperationCanceledException($"Training run {runId} shard {shard} was cancelled", e, ct);
        }
        catch (OperationCanceledException e) when (ct.IsCancellationRequested)
        {
            await TrainingJobs.TryAsync(() => TrainingRuns.CompleteShardAsync(db, runId, shard, $"{e.GetType().Name}: {e.Message}", clock.GetUtcNow(), CancellationToken.None),
                logger, attempts: recordAttempts);
            throw;
        }
        catch (Exception e)
        {
            // The database went away, or something else no series-level catch could absorb: the shard (and so the run) fails cleanly.
            logger.LogError(e, "Training run {RunId} shard {Shard} failed", runId, shard);
            // A child's error already reads "Type: message", as an error here does.
            error = e is ShardProcessException ? e.Message : $"{e.GetType().Name}: {e.Message}";
        }
        string? status = null;
        await TrainingJobs.TryAsync(async () => status = await TrainingRuns.CompleteShardAsync(db, runId, shard, error, clock.GetUtcNow(), CancellationToken.None),
            logger, ct, recordAttempts);
        return new ShardRun(true, outcome, error, status);
    }
}
