using System.Text.Json.Serialization;

namespace Forecaster.Api.Samples;

/// <summary>Body of POST /api/v1/resources/{name}/samples.</summary>
public sealed record SamplesInput(IReadOnlyList<SampleInput>? Samples);

/// <summary>One sample. Timestamps are ISO 8601 UTC (ending in Z).</summary>
public sealed record SampleInput(
    string? Metric,
    string? Timestamp,
    // Named literals are accepted so that "NaN" gets a precise error instead of a generic parse failure.
    [property: JsonNumberHandling(JsonNumberHandling.AllowNamedFloatingPointLiterals | JsonNumberHandling.AllowReadingFromString)] double? Value);

/// <summary>What a write stored.</summary>
public sealed record IngestResult(long Rows, int Series, IReadOnlyList<string> ResourcesCreated, double Seconds);

/// <summary>Samples of one series: raw points, or per-step buckets when `step` was given.</summary>
public sealed record SeriesView(string Resource, string Metric, DateTimeOffset From, DateTimeOffset To, string? Step,
    IReadOnlyList<SamplePoint>? Points, IReadOnlyList<SampleBucket>? Buckets);

public sealed record SamplePoint(DateTimeOffset Timestamp, double Value);

/// <summary>Aggregate of one step starting at <see cref="Timestamp"/>.</summary>
public sealed record SampleBucket(DateTimeOffset Timestamp, double Mean, double Max, double Min, long Count);
