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

/// <summary>A resource as stored (Dapper maps columns to this by name).</summary>
sealed class ResourceRow
{
    public int Id { get; init; }
    public string Name { get; init; } = "";
    public string Kind { get; init; } = "";
    public string Group { get; init; } = "";
    public string LoadMetric { get; init; } = "";
    public string Policy { get; init; } = "{}";
    public string[] Metrics { get; init; } = [];
    public DateTime CreatedAt { get; init; }
    public DateTime UpdatedAt { get; init; }

    public ResourceView ToView()
    {
        using var policy = JsonDocument.Parse(Policy);
        return new(Name, Kind, Group, LoadMetric, policy.RootElement.Clone(), Metrics,
            new DateTimeOffset(CreatedAt, TimeSpan.Zero), new DateTimeOffset(UpdatedAt, TimeSpan.Zero));
    }

    /// <summary>The columns every resource query selects, in <see cref="ResourceRow"/>'s order.</summary>
    public const string Columns = """
        r.id AS Id, r.name AS Name, r.kind AS Kind, r."group" AS Group, r.load_metric AS LoadMetric, r.policy::text AS Policy,
        ARRAY(SELECT s.metric FROM series s WHERE s.resource_id = r.id ORDER BY s.metric) AS Metrics,
        r.created_at AS CreatedAt, r.updated_at AS UpdatedAt
        """;
}
