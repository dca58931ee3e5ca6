namespace Forecaster.Api.Training;

/// <summary>
/// What runs after a training run ends. Planning follows a successful run; until the planner's host side is wired in
/// (issue 5) this step is a logged no-op, recorded on the run as such so nobody mistakes it for a plan.
/// </summary>
public sealed class PlanningStep(Npgsql.NpgsqlDataSource db, ILogger<PlanningStep> logger)
{
    public const string NotWiredYet = "skipped: planning is not wired in yet (issue 5); nothing was planned";

    /// <summary>Logs the end of run <paramref name="runId"/> and plans after a success.</summary>
    public async Task AfterRunAsync(long runId, string status, CancellationToken ct)
    {
        logger.LogInformation("Training run {RunId} finished: {Status}", runId, status);
        if (status != "succeeded")
        {
            return;
        }
        logger.LogInformation("Planning step after training run {RunId}: no-op until the planner is wired in (issue 5); nothing was planned", runId);
        await TrainingRuns.SetPlanningAsync(db, runId, NotWiredYet, ct);
    }
}
