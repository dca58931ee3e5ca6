using System.Text;
using System.Text.Json;
using Dapper;
using Forecaster.Api.Errors;
using Forecaster.Api.Plans;
using Forecaster.Api.Resources;
using Forecaster.Api.Security;
using Forecaster.Api.Serving;
using Forecaster.Planner;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Forecaster.Api.Executors;

/// <summary>
/// What the executors apply, ready to use: a KEDA ScaledObject for a service, the FlinkDeployment patch of a streaming
/// job, and the requests per replica in the shape of a VerticalPodAutoscaler status.
/// </summary>
public static class ExecutorsApi
{
    public static WebApplicationBuilder AddForecasterExecutors(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<ExecutorOptions>().BindConfiguration(ExecutorOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        return builder;
    }

    public static IEndpointRouteBuilder MapExecutors(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/v1/resources/{name}").WithTags("Executors").RequireAuthorization(ApiKeyExtensions.ReadPolicy);

        group.MapGet("/scaledobject", GetScaledObject)
            .WithName(nameof(GetScaledObject))
            .WithSummary("A ready-to-apply KEDA ScaledObject (YAML) for a service: plan trigger (AverageValue on /keda), cpu trigger, bounds, polling, HPA behavior and fallback from the policy, and a TriggerAuthentication when reads need a key")
            .Produces<string>(StatusCodes.Status200OK, "application/yaml")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound);
        group.MapGet("/flink", GetFlinkPatch)
            .WithName(nameof(GetFlinkPatch))
            .WithSummary("The FlinkDeployment merge patch of a streaming job for now and the next differing step (spec.job.parallelism, or pipeline.jobvertex-parallelism-overrides for the policy's vertices), applied restartMinutes before the step; `format=yaml` gives the current patch for kubectl patch --type merge")
            .Produces<FlinkPatchView>(StatusCodes.Status200OK)
            .Produces(StatusCodes.Status304NotModified)
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);
        group.MapGet("/requests", GetRequests)
            .WithName(nameof(GetRequests))
            .WithSummary("The cpu and memory request per replica of the active plan as a VerticalPodAutoscaler status: recommendation.containerRecommendations[] with target, lowerBound, upperBound, uncappedTarget")
            .Produces<RequestsView>(StatusCodes.Status200OK)
            .ProducesProblem(StatusCodes.Status404NotFound);
        return app;
    }

    static async Task<Results<YamlResult, ValidationProblem, ProblemHttpResult>> GetScaledObject(
        NpgsqlDataSource db, IOptions<ExecutorOptions> options, IOptions<ForecasterOptions> forecaster, string name, CancellationToken ct)
    {
        Resource? stored;
        await using (var conn = await db.OpenConnectionAsync(ct))
        {
            stored = await ResourceStore.FindAsync(conn, name, ct);
        }
        if (stored is null)
        {
            return ProblemHandling.NotFound($"No resource is named '{name}'.");
        }
        return ScaledObject(stored, options.Value, forecaster.Value.RequireApiKeyForReads) switch
        {
            ManifestText text => new YamlResult(text.Yaml),
            ManifestImpossible bad => ProblemHandling.Invalid(bad.Field, bad.Message),
            _ => throw new InvalidOperationException("unknown manifest outcome"),
        };
    }

    /// <summary>The ScaledObject of a stored resource; the endpoint and `forecaster manifest scaledobject` share it.</summary>
    internal static ManifestOutcome ScaledObject(Resource resource, ExecutorOptions options, bool readsNeedKey)
    {
        if (resource.Policy is not { } policy)
        {
            var problems = resource.PolicyProblems;
            return new ManifestImpossible(problems[0].Split(':')[0], $"the stored policy is invalid: {string.Join("; ", problems)}");
        }
        return ScaledObjectManifest.Build(resource.Name, resource.Kind, policy, options.PublicUrl, readsNeedKey ? options.ReadKeySecret : null);
    }

    static Results<CachedBody, ValidationProblem, ProblemHttpResult> GetFlinkPatch(PlanCache cache, TimeProvider clock, string name, string? format)
    {
        if (format is not null and not ("json" or "yaml"))
        {
            return ProblemHandling.Invalid("format", $"'{format}' is not a format; use 'json' or 'yaml'");
        }
        if (!cache.Loaded)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "Plans are loading",
                detail: $"The plan cache has not finished its first load; retry in {DatabaseUnavailable.RetryAfterSeconds} s.");
        }
        if (cache.Find(name) is not { } resource)
        {
            return ProblemHandling.NotFound($"No resource is named '{name}'.");
        }
        var now = clock.GetUtcNow();
        return Flink(resource, now, cache.Stale, format == "yaml") switch
        {
            (CachedBody body, _) => body,
            (_, { } problem) => problem,
            _ => throw new InvalidOperationException("no Flink answer"),
        };
    }

    /// <summary>The Flink patch of a cached resource as JSON or YAML, or the problem; the endpoint and `forecaster manifest flink` share it.</summary>
    internal static (CachedBody?, ProblemHttpResult?) Flink(ServedResource resource, DateTimeOffset now, bool stale, bool yaml)
    {
        if (resource.Kind != ResourceKind.Job)
        {
            return (null, TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Not a streaming job",
                detail: $"'{resource.Name}' is a service: its replicas are applied by KEDA (GET /api/v1/resources/{resource.Name}/scaledobject).",
                extensions: new Dictionary<string, object?> { ["errors"] = new Dictionary<string, string[]> { ["kind"] = ["the Flink patch applies to kind job"] } }));
        }
        if (resource.Policy is not { } policy)
        {
            return (null, TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "Stored policy unusable",
                detail: $"The stored policy of '{resource.Name}' is invalid: {string.Join("; ", resource.Problems)}. PUT a valid policy."));
        }
        var (view, missing) = FlinkPatch.For(resource, policy, now, stale);
        if (view is null)
        {
            return (null, TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "No plan and nothing to fall back on",
                detail: $"Nothing can be said about '{resource.Name}' now: {string.Join("; ", missing!)}.",
                extensions: new Dictionary<string, object?> { ["missing"] = missing }));
        }
        if (yaml && view.ForecastOnly)
        {
            return (null, TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "Plan is forecastOnly",
                detail: $"The policy of '{resource.Name}' is mode forecastOnly (a dry run): its parallelism {view.Current.Parallelism} is not to be applied. Set mode to scale, or read the JSON answer."));
        }
        var body = yaml ? Encoding.UTF8.GetBytes(FlinkPatch.Yaml(view, policy)) : JsonSerializer.SerializeToUtf8Bytes(view, ServingJson.Options);
        var seconds = (int)Math.Clamp(Math.Floor((view.Current.ValidUntil - now).TotalSeconds), 0, int.MaxValue);
        return (new CachedBody(body, yaml ? YamlResult.ContentType : CachedBody.JsonType, ServingJson.ETag(body),
            stale ? Math.Min(seconds, DatabaseUnavailable.RetryAfterSeconds) : seconds), null);
    }

    sealed class StoredRequests : ResourceRow
    {
        public long? PlanId { get; init; }
        public DateTime? GeneratedAt { get; init; }
        public string? Requests { get; init; }
    }

    static async Task<Results<Ok<RequestsView>, ProblemHttpResult>> GetRequests(NpgsqlDataSource db, string name, CancellationToken ct)
    {
        const string sql = $"""
            SELECT {ResourceStore.Columns}, p.id AS PlanId, p.generated_at AS GeneratedAt, p.requests::text AS Requests
            FROM resources r LEFT JOIN plan_current c ON c.resource_id = r.id LEFT JOIN plan_versions p ON p.id = c.version_id
            WHERE r.name = @name
            """;
        await using var conn = await db.OpenConnectionAsync(ct);
        if (await conn.QuerySingleOrDefaultAsync<StoredRequests>(new CommandDefinition(sql, new { name }, cancellationToken: ct)) is not { } row)
        {
            return ProblemHandling.NotFound($"No resource is named '{name}'.");
        }
        var policy = row.ToResource().Policy;
        var requests = row.Requests is null ? null : JsonSerializer.Deserialize<ResourceRequests>(row.Requests, PlanJson.Options);
        return TypedResults.Ok(RequestsView.From(name, policy?.Requests.ContainerName ?? name, row.PlanId,
            row.GeneratedAt is DateTime g ? new DateTimeOffset(g, TimeSpan.Zero) : null, policy?.Requests.Rule ?? RequestsRule.WeeklyPeak, requests));
    }
}

/// <summary>A YAML manifest as text, to pipe into kubectl.</summary>
public sealed class YamlResult(string yaml) : IResult
{
    public const string ContentType = "application/yaml; charset=utf-8";

    public Task ExecuteAsync(HttpContext httpContext)
    {
        httpContext.Response.ContentType = ContentType;
        return httpContext.Response.WriteAsync(yaml);
    }
}
