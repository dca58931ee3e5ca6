using System.ComponentModel.DataAnnotations;

namespace Forecaster.Api.Serving;

/// <summary>The `Forecaster:Serving` configuration section: how the in-memory plan cache follows the database.</summary>
public sealed class ServingOptions
{
    public const string Section = "Forecaster:Serving";

    /// <summary>Every this often the cache compares every resource's version and active plan with the database (catches missed notifications).</summary>
    [Range(1, 3600)]
    public int SyncSeconds { get; set; } = 60;

    /// <summary>Every this often the observed history behind the serve-time fallback is reloaded.</summary>
    [Range(1, 1440)]
    public int HistoryRefreshMinutes { get; set; } = 10;

    /// <summary>
    /// A resource whose active plan ends within this many hours (or that has none) keeps 8 days of observed hourly load in
    /// memory, so the fallback still answers when the plan runs out during a database outage.
    /// </summary>
    [Range(1, 24 * 14)]
    public int FallbackAheadHours { get; set; } = 24;

    /// <summary>Notifications arriving within this quiet period are reloaded together (a fleet run sends one per resource).</summary>
    [Range(1, 10_000)]
    public int CoalesceMilliseconds { get; set; } = 100;

    /// <summary>A plan generated longer ago than this is served with <c>stale: true</c> (nightly planning failed at least once).</summary>
    [Range(1, 24 * 14)]
    public double PlanStaleAfterHours { get; set; } = 30;

    /// <summary>Most resources one page of GET /api/v1/plans/current returns.</summary>
    [Range(1, 100_000)]
    public int MaxBatch { get; set; } = 10_000;

    /// <summary>Resources loaded per query when (re)loading the cache.</summary>
    [Range(1, 100_000)]
    public int LoadBatch { get; set; } = 2000;

    /// <summary>Longest wait between reconnection attempts while the database is unreachable.</summary>
    [Range(1, 3600)]
    public int MaxRetrySeconds { get; set; } = 15;
}
