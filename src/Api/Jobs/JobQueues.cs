namespace Forecaster.Api.Jobs;

/// <summary>
/// Hangfire's queues, each served by its own workers (counts from configuration), so CPU-bound training never starves
/// planning, simulations or pulls.
/// </summary>
public static class JobQueues
{
    /// <summary>Training shards: `Forecaster:Training:ShardsPerInstance` workers, each shard using every core.</summary>
    public const string Training = "training";

    /// <summary>Planning after a run or a policy change.</summary>
    public const string Planning = "planning";

    /// <summary>Short coordinating jobs (starting a training run), served by the planning workers.</summary>
    public const string Default = "default";

    /// <summary>Simulations (POST /api/v1/simulations).</summary>
    public const string Simulations = "simulations";

    /// <summary>Pulls of history from Prometheus.</summary>
    public const string Pulls = "pulls";
}
