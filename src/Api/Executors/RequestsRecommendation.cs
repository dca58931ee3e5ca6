using System.Globalization;
using Forecaster.Planner;

namespace Forecaster.Api.Executors;

/// <summary>Cpu and memory as Kubernetes quantities (`600m`, `384Mi`); a resource not known is absent.</summary>
public sealed record ResourceQuantities(string? Cpu, string? Memory)
{
    public static ResourceQuantities Of(double? cores, long? bytes) => new(Cores(cores), Bytes(bytes));

    public static string? Cores(double? cores) => cores is double c
        ? ((long)Math.Ceiling((c * 1000) - 1e-6)).ToString(CultureInfo.InvariantCulture) + "m"
        : null;

    public static string? Bytes(long? bytes) => bytes switch
    {
        null => null,
        long b when b > 0 && b % (1L << 30) == 0 => (b >> 30).ToString(CultureInfo.InvariantCulture) + "Gi",
        long b when b > 0 && b % (1L << 20) == 0 => (b >> 20).ToString(CultureInfo.InvariantCulture) + "Mi",
        long b => b.ToString(CultureInfo.InvariantCulture),
    };
}

/// <summary>One container's recommendation, as in a VerticalPodAutoscaler's <c>status.recommendation.containerRecommendations[]</c>.</summary>
public sealed record ContainerRecommendation(
    string ContainerName, ResourceQuantities Target, ResourceQuantities LowerBound, ResourceQuantities UpperBound, ResourceQuantities UncappedTarget);

public sealed record Recommendation(IReadOnlyList<ContainerRecommendation> ContainerRecommendations);

/// <summary>A VPA status condition (<c>RecommendationProvided</c>).</summary>
public sealed record RecommendationCondition(string Type, string Status, string Reason, string Message);

/// <summary>
/// What GET /api/v1/resources/{name}/requests returns: a VerticalPodAutoscaler status (<c>recommendation</c>,
/// <c>conditions</c>) for the resource's requests per replica, plus where they came from.
/// </summary>
public sealed record RequestsView(
    string Resource, long? PlanVersion, DateTimeOffset? GeneratedAt, RequestsRule Rule, string Explanation,
    Recommendation Recommendation, IReadOnlyList<RecommendationCondition> Conditions)
{
    public static RequestsView From(string resource, string container, long? planVersion, DateTimeOffset? generatedAt, RequestsRule rule, ResourceRequests? r)
    {
        if (r is null)
        {
            return new(resource, null, null, rule, "no plan yet", new([]),
                [new("RecommendationProvided", "False", "NoPlan", $"'{resource}' has no active plan yet; its requests are computed when it is planned")]);
        }
        if (r.Cpu is null && r.Memory is null)
        {
            return new(resource, planVersion, generatedAt, r.Rule, r.Explain(), new([]),
                [new("RecommendationProvided", "False", "NoUsage", $"No per-replica usage is known for '{resource}': {r.Explain()}")]);
        }
        // A plan made before the bounds existed has only the target: it is then its own bound.
        var target = ResourceQuantities.Of(r.Cpu, r.Memory);
        var recommendation = new ContainerRecommendation(container, target,
            ResourceQuantities.Of(r.LowerCpu ?? r.Cpu, r.LowerMemory ?? r.Memory),
            ResourceQuantities.Of(r.UpperCpu ?? r.Cpu, r.UpperMemory ?? r.Memory),
            ResourceQuantities.Of(r.UncappedCpu ?? r.Cpu, r.UncappedMemory ?? r.Memory));
        return new(resource, planVersion, generatedAt, r.Rule, r.Explain(), new([recommendation]),
            [new("RecommendationProvided", "True", r.Rule == RequestsRule.Percentile ? "Percentile" : "WeeklyPeak", r.Explain())]);
    }
}
