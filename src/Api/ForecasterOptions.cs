using System.ComponentModel.DataAnnotations;

namespace Forecaster.Api;

/// <summary>The `Forecaster` configuration section. Validated at start: a bad value stops the service with every error listed.</summary>
public sealed class ForecasterOptions
{
    public const string Section = "Forecaster";

    /// <summary>Keys accepted in X-Api-Key (also FORECASTER_API_KEYS, comma-separated).</summary>
    public List<string> ApiKeys { get; set; } = [];

    /// <summary>When true, reads need an API key too.</summary>
    public bool RequireApiKeyForReads { get; set; }

    /// <summary>Seed the demo fleet into an empty database and generate an API key when none is configured.</summary>
    public bool Demo { get; set; }

    /// <summary>With <see cref="Demo"/>: replace the demo key stored in FORECASTER_HOME (`serve --demo --new-key`).</summary>
    public bool NewDemoKey { get; set; }

    [Range(1024, long.MaxValue)]
    public long MaxJsonBodyBytes { get; set; } = 16L << 20;

    [Range(1024, long.MaxValue)]
    public long MaxCsvBodyBytes { get; set; } = 4L << 30;

    /// <summary>
    /// Samples older than this are refused. The monthly partitions of this whole window are created at start (and kept ahead
    /// every 6 hours), so an import never runs DDL, which would lock `samples` for every reader while the import commits.
    /// Training reads 35 days; 400 leaves room for year-over-year backfills.
    /// </summary>
    [Range(1, 36500)]
    public int MaxSampleAgeDays { get; set; } = 400;

    /// <summary>
    /// The largest sample value accepted (issue 13). Far above any real load, cpu or memory figure, yet small enough that
    /// sums and means over any number of samples stay finite. Aggregates leave out stored values beyond
    /// <see cref="Samples.SampleRules.AggregateLimit"/> (written before this rule, or by hand), the most this may be set to.
    /// </summary>
    [Range(1.0, Samples.SampleRules.AggregateLimit)]
    public double MaxSampleValue { get; set; } = 1e15;

    /// <summary>The most points one samples query returns; a larger range must be aggregated with `step`.</summary>
    [Range(100, 10_000_000)]
    public int MaxPointsPerQuery { get; set; } = 200_000;
}
