using System.ComponentModel.DataAnnotations;

namespace Forecaster.Api.Jobs;

/// <summary>
/// The `Forecaster:Jobs` configuration section: Hangfire's storage and the workers of each queue. Training's own knobs
/// (shards, shards per instance, whether this instance works at all) stay in `Forecaster:Training`.
/// </summary>
public sealed class JobsOptions
{
    public const string Section = "Forecaster:Jobs";

    /// <summary>The PostgreSQL schema of Hangfire's tables, beside the service's own in the same database.</summary>
    [Required, RegularExpression("^[a-z_][a-z0-9_]{0,62}$", ErrorMessage = "must be a lower-case PostgreSQL identifier")]
    public string Schema { get; set; } = "hangfire";

    /// <summary>
    /// Workers of the `planning` and `default` queues (planning after a run or a policy change, starting runs). Short,
    /// database-bound jobs: one is enough, and it never waits behind a training shard.
    /// </summary>
    [Range(1, 64)]
    public int PlanningWorkers { get; set; } = 1;

    /// <summary>Workers of the `simulations` queue: a replay already uses every core, so one runs at a time per instance.</summary>
    [Range(1, 64)]
    public int SimulationWorkers { get; set; } = 1;

    /// <summary>Workers of the `pulls` queue (history pulled from Prometheus): I/O-bound, so a few, never behind training.</summary>
    [Range(1, 64)]
    public int PullWorkers { get; set; } = 2;

    /// <summary>
    /// How long a job fetched by an instance that stopped answering stays invisible before another instance takes it.
    /// The instance that runs a job keeps it fetched (Hangfire.PostgreSql's sliding invisibility timeout), so this bounds
    /// the pickup after a crash without ever handing a live job to a second worker. Hangfire's default is 30 minutes.
    /// </summary>
    [Range(5, 3600)]
    public int InvisibilityTimeoutSeconds { get; set; } = 30;

    /// <summary>
    /// Whether a request from the loopback address may read the /jobs dashboard without a key. Turn it off behind a
    /// reverse proxy on the same host, where every request comes from loopback.
    /// </summary>
    public bool DashboardAnonymousLoopback { get; set; } = true;
}
