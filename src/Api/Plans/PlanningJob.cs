using System.ComponentModel;
using Forecaster.Api.Jobs;
using Hangfire;

namespace Forecaster.Api.Plans;

/// <summary>
/// Planning named resources as a Hangfire job on the `planning` queue: what a policy change falls back to when planning at
/// once, inside its PUT, failed after the resource was stored, so that the plan still follows the policy.
/// </summary>
public sealed class PlanningJob(PlanningPipeline planner, ILogger<PlanningJob> logger)
{
    public static string Enqueue(IBackgroundJobClient jobs, string[] resources) =>
        jobs.Enqueue<PlanningJob>(JobQueues.Planning, j => j.PlanResourcesAsync(resources, CancellationToken.None));

    // A few retries, spaced by Hangfire: planning is idempotent (a new version replaces the active one), and the cause is
    // usually the database being briefly away.
    [AutomaticRetry(Attempts = 3)]
    [DisplayName("Plan {0} after a policy change")]
    public async Task PlanResourcesAsync(string[] resources, CancellationToken ct)
    {
        var outcome = await planner.PlanAsync(new PlanScope(PlanTrigger.Policy, resources), null, ct);
        logger.LogInformation("Planned {Resources} after a policy change: {Summary}", string.Join(",", resources), outcome.Summary);
    }
}
