using Forecaster.Api.Plans;
using Npgsql;

namespace Forecaster.Api.Training;

/// <summary>
/// What runs after a training run ends: a successful run replans the whole fleet with the new forecasts (issue 5), and what
/// planning did is recorded on the run. Planning failing never turns a succeeded run into a failed one: the previous plans
/// stay active and the next run or policy change plans again.
/// </summary>
public sealed class PlanAfterTraining(NpgsqlDataSource db, PlanningPipeline planner, ILogger<PlanAfterTraining> logger)
{
    /// <summary>Logs the end of run <paramref name="runId"/> and plans after a success.</summary>
    public async Task AfterRunAsync(long runId, string status, CancellationToken ct)
    {
        logger.LogInformation("Training run {RunId} finished: {Status}", runId, status);
        if (status != "succeeded")
        {
            await TrainingRuns.SetPlanningAsync(db, runId, $"skipped: the run {status}; the previous plans stay active", ct);
            return;
        }
        string planning;
        try
        {
            var outcome = await planner.PlanAsync(new PlanScope(PlanTrigger.Training, TrainingRunId: runId), null, ct);
            planning = $"{outcome.Summary} skipped={outcome.Skipped} purged={outcome.Purged}";
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException)
        {
            logger.LogError(e, "Planning after training run {RunId} failed; the previous plans stay active", runId);
            planning = $"failed: {e.GetType().Name}: {e.Message}";
        }
        await TrainingRuns.SetPlanningAsync(db, runId, planning, ct);
    }
}
