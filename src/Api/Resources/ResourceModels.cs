using System.Text.Json;

namespace Forecaster.Api.Resources;

/// <summary>Body of PUT /api/v1/resources/{name}.</summary>
/// <param name="Kind">`service` (replicas) or `job` (a streaming job: parallelism).</param>
/// <param name="Group">Team, cluster or any grouping used by fleet views and quotas.</param>
/// <param name="LoadMetric">The metric that drives scaling, e.g. `qps` or `records_in_rate`.</param>
/// <param name="Policy">The scaling policy (see the planner); stored as given.</param>
/// <param name="Sources">Optional Prometheus sources, metric name → PromQL (or {"query", "server"}); each must return exactly
/// one series. Absent: the resource's sources stay as they are; `{}` removes them.</param>
public sealed record ResourceInput(string? Kind, string? Group, string? LoadMetric, JsonElement? Policy, JsonElement? Sources = null);

/// <summary>A registered resource.</summary>
public sealed record ResourceView(
    string Name,
    string Kind,
    string Group,
    string LoadMetric,
    JsonElement Policy,
    IReadOnlyList<string> Metrics,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt)
{
    /// <summary>Prometheus sources feeding this resource, by metric, with their pull state (shown for a single resource).</summary>
    public IReadOnlyDictionary<string, Sources.SourceView>? Sources { get; init; }
}

/// <summary>One page of resources; pass `next` as `after` for the following page.</summary>
public sealed record ResourcePage(IReadOnlyList<ResourceView> Items, string? Next);

/// <summary>How a resource is shown: as stored, with the metrics it has samples for.</summary>
static class ResourceViews
{
    public static ResourceView From(Resource r, IReadOnlyList<string> metrics)
    {
        using var policy = JsonDocument.Parse(r.StoredPolicy);
        return new(r.Name, ResourceKinds.Name(r.Kind), r.Group, r.LoadMetric, policy.RootElement.Clone(), metrics,
            new DateTimeOffset(r.CreatedAt, TimeSpan.Zero), new DateTimeOffset(r.UpdatedAt, TimeSpan.Zero));
    }
}
