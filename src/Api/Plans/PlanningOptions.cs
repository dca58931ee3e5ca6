using System.ComponentModel.DataAnnotations;

namespace Forecaster.Api.Plans;

/// <summary>The `Forecaster:Planning` configuration section. Validated at start: a bad value stops the service with every error listed.</summary>
public sealed class PlanningOptions
{
    public const string Section = "Forecaster:Planning";

    /// <summary>Superseded plan versions generated longer ago than this are deleted after each fleet planning run.</summary>
    [Range(0, 3650)]
    public int RetentionDays { get; set; } = 14;

    /// <summary>Hours each plan covers, starting with the hour in progress.</summary>
    [Range(1, 24 * 14)]
    public int HorizonHours { get; set; } = 48;

    /// <summary>Resources read, planned and published together (one transaction): bounds memory whatever the fleet's size.</summary>
    [Range(1, 100_000)]
    public int BatchResources { get; set; } = 2000;

    /// <summary>Plans computed at once; 0 uses every core.</summary>
    [Range(0, 1024)]
    public int Parallelism { get; set; }

    /// <summary>
    /// Batches published at once, each in its own transaction on its own connection. Two keep PostgreSQL busy while the
    /// planner works and while the other publication waits for its commit.
    /// </summary>
    [Range(1, 16)]
    public int PublishingConnections { get; set; } = 2;

    /// <summary>A `replicas` (or backlog) sample older than this is not taken as the current count.</summary>
    [Range(1, 24 * 30)]
    public int CurrentMaxAgeHours { get; set; } = 6;

    public int EffectiveParallelism => Parallelism > 0 ? Parallelism : Environment.ProcessorCount;
}
