using System.Text.Json;
using Dapper;
using Forecaster.Api.Errors;
using Forecaster.Api.Security;
using Forecaster.Planner;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;
using Forecaster.Api.Resources;

namespace Forecaster.Api.Plans;

/// <summary>A stored plan version without its steps.</summary>
public sealed record PlanVersionSummary
{
    public long Id { get; init; }
    public string Status { get; init; } = "";
    public string Kind { get; init; } = "";
    public string Mode { get; init; } = "";
    public string Trigger { get; init; } = "";
    public long? TrainingRunId { get; init; }
    public DateTime GeneratedAt { get; init; }
    public DateTime HorizonStart { get; init; }
    public int HorizonHours { get; init; }
    public int LeadMinutes { get; init; }
    public long? ModelVersionId { get; init; }
    public DateTime? ForecastGeneratedAt { get; init; }
    public string? CapacityModel { get; init; }
    public string[] Notes { get; init; } = [];
    public DateTime? SupersededAt { get; init; }
}

/// <summary>Why the last planning attempt produced no plan (the previous one, if any, stays active).</summary>
public sealed record PlanProblem
{
    public DateTime CheckedAt { get; init; }
    public string[] Missing { get; init; } = [];
}

/// <summary>A resource's plan versions, newest first, and the last planning problem if it has one.</summary>
public sealed record PlanVersionPage(string Resource, PlanProblem? Problem, IReadOnlyList<PlanVersionSummary> Items);

/// <summary>One plan version in full: policy and requests it was made with, and every step with its explanation.</summary>
public sealed record PlanVersionView(string Resource, PlanVersionSummary Version, JsonElement Policy, JsonElement Requests, IReadOnlyList<PlanStep> Steps);

/// <summary>
/// /api/v1/resources/{name}/plans: the stored plan versions of a resource, for history and explanation. Serving the current
/// plan (with ETag, outage tolerance) is the serving issue's, not this.
/// </summary>
public static class PlansApi
{
    public static IEndpointRouteBuilder MapPlans(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/v1/resources/{name}/plans").WithTags("Plans");

        group.MapGet("/", ListPlanVersions)
            .WithName(nameof(ListPlanVersions))
            .WithSummary("Plan versions of a resource, newest first (the active one is served), and why the last attempt failed if it did")
            .RequireAuthorization(ApiKeyExtensions.ReadPolicy)
            .ProducesProblem(StatusCodes.Status400BadRequest);
        group.MapGet("/{id:long}", GetPlanVersion)
            .WithName(nameof(GetPlanVersion))
            .WithSummary("One plan version with every step and the numbers (and a sentence) explaining it")
            .RequireAuthorization(ApiKeyExtensions.ReadPolicy);
        return app;
    }

    // A version is active while plan_current names it; a superseded one was superseded when the resource's next version was
    // published, at that version's generated_at (migration 0060; versions superseded before it keep their own superseded_at).
    const string Columns = """
        p.id, CASE WHEN c.version_id = p.id THEN 'active' ELSE 'superseded' END AS status, p.kind, p.mode, p.trigger, p.training_run_id AS TrainingRunId, p.generated_at AS GeneratedAt,
        p.horizon_start AS HorizonStart, p.horizon_hours AS HorizonHours, p.lead_minutes AS LeadMinutes,
        p.model_version_id AS ModelVersionId, p.forecast_generated_at AS ForecastGeneratedAt, p.capacity_model AS CapacityModel,
        p.notes,
        CASE WHEN c.version_id IS DISTINCT FROM p.id THEN coalesce(p.superseded_at,
            (SELECT n.generated_at FROM plan_versions n WHERE n.resource_id = p.resource_id AND n.id > p.id ORDER BY n.id LIMIT 1)) END AS SupersededAt
        """;

    static async Task<Results<Ok<PlanVersionPage>, ValidationProblem, ProblemHttpResult>> ListPlanVersions(
        NpgsqlDataSource db, string name, int? limit, CancellationToken ct)
    {
        var take = limit ?? 50;
        if (take is < 1 or > 1000)
        {
            return ProblemHandling.Invalid("limit", "must be between 1 and 1000");
        }
        await using var conn = await db.OpenConnectionAsync(ct);
        if (await ResourceStore.IdAsync(conn, name, ct) is not int resourceId)
        {
            return ProblemHandling.NotFound($"No resource is named '{name}'.");
        }
        var versions = await conn.QueryAsync<PlanVersionSummary>(new CommandDefinition(
            $"SELECT {Columns} FROM plan_versions p LEFT JOIN plan_current c ON c.resource_id = p.resource_id WHERE p.resource_id = @resourceId ORDER BY p.id DESC LIMIT @take",
            new { resourceId, take }, cancellationToken: ct));
        var problem = await conn.QuerySingleOrDefaultAsync<PlanProblem>(new CommandDefinition(
            "SELECT checked_at AS CheckedAt, missing FROM plan_problems WHERE resource_id = @resourceId", new { resourceId }, cancellationToken: ct));
        return TypedResults.Ok(new PlanVersionPage(name, problem, [.. versions]));
    }

    static async Task<Results<Ok<PlanVersionView>, ProblemHttpResult>> GetPlanVersion(NpgsqlDataSource db, string name, long id, CancellationToken ct)
    {
        var sql = $"""
            SELECT {Columns} FROM plan_versions p JOIN resources r ON r.id = p.resource_id LEFT JOIN plan_current c ON c.resource_id = p.resource_id WHERE r.name = @name AND p.id = @id
            """;
        // Steps are packed since migration 0010; a version stored before it keeps its JSON.
        const string documents = "SELECT policy::text, requests::text, steps_packed, CASE WHEN steps_packed IS NULL THEN steps::text END FROM plan_versions WHERE id = @id";
        await using var conn = await db.OpenConnectionAsync(ct);
        if (await conn.QuerySingleOrDefaultAsync<PlanVersionSummary>(new CommandDefinition(sql, new { name, id }, cancellationToken: ct)) is not { } version)
        {
            return ProblemHandling.NotFound($"Resource '{name}' has no plan version {id}.");
        }
        var (policy, requests, packed, json) = await conn.QuerySingleAsync<(string, string, byte[]?, string?)>(new CommandDefinition(documents, new { id }, cancellationToken: ct));
        var steps = packed is not null ? PackedSteps.Read(packed) : PlanJson.ReadSteps(json ?? "[]");
        using var policyDoc = JsonDocument.Parse(policy);
        using var requestsDoc = JsonDocument.Parse(requests);
        return TypedResults.Ok(new PlanVersionView(name, version, policyDoc.RootElement.Clone(), requestsDoc.RootElement.Clone(), steps));
    }
}
