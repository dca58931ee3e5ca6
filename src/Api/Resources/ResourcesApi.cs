using System.Text.Json;
using Dapper;
using Forecaster.Api.Errors;
using Forecaster.Api.OpenApi;
using Forecaster.Api.Plans;
using Forecaster.Api.Samples;
using Forecaster.Api.Security;
using Forecaster.Api.Sources;
using Forecaster.Planner;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Forecaster.Api.Resources;

/// <summary>/api/v1/resources: register, list, read and delete services and streaming jobs.</summary>
public static class ResourcesApi
{
    public static IEndpointRouteBuilder MapResources(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/v1/resources").WithTags("Resources");

        group.MapGet("/", ListResources)
            .WithName(nameof(ListResources))
            .WithSummary("List resources, paged by name, optionally filtered by group and kind")
            .RequireAuthorization(ApiKeyExtensions.ReadPolicy)
            .ProducesProblem(StatusCodes.Status400BadRequest);
        group.MapGet("/{name}", GetResource)
            .WithName(nameof(GetResource))
            .WithSummary("Get one resource with its policy and the metrics it has samples for")
            .RequireAuthorization(ApiKeyExtensions.ReadPolicy);
        group.MapPut("/{name}", PutResource)
            .WithName(nameof(PutResource))
            .WithSummary("Create or replace a resource (201 when created, 200 when updated); a new or changed policy is validated and the resource replanned")
            .RequireAuthorization(ApiKeyExtensions.WritePolicy)
            .WithRequestExample("""{"kind":"service","group":"checkout","loadMetric":"qps","policy":{"minReplicas":2,"maxReplicas":40,"targetUtilization":0.7,"capacityPerReplica":150}}""")
            .ProducesProblem(StatusCodes.Status401Unauthorized);
        group.MapDelete("/{name}", DeleteResource)
            .WithName(nameof(DeleteResource))
            .WithSummary("Delete a resource and all of its samples")
            .RequireAuthorization(ApiKeyExtensions.WritePolicy)
            .ProducesProblem(StatusCodes.Status401Unauthorized);
        return app;
    }

    static async Task<Results<Ok<ResourcePage>, ValidationProblem>> ListResources(
        NpgsqlDataSource db, string? group, string? kind, string? after, int? limit, CancellationToken ct)
    {
        if (kind is not null and not ("service" or "job"))
        {
            return ProblemHandling.Invalid("kind", $"'{kind}' is not a kind; use 'service' or 'job'");
        }
        var take = limit ?? 100;
        if (take is < 1 or > 1000)
        {
            return ProblemHandling.Invalid("limit", "must be between 1 and 1000");
        }
        await using var conn = await db.OpenConnectionAsync(ct);
        var page = await ResourceStore.PageAsync(conn, group, kind is null ? null : ResourceKinds.Parse(kind), after, take + 1, ct);
        var next = page.Count > take ? page[take - 1].Name : null;
        var shown = page.Take(take).ToList();
        var metrics = await MetricsAsync(conn, [.. shown.Select(r => r.Id)], ct);
        return TypedResults.Ok(new ResourcePage([.. shown.Select(r => ResourceViews.From(r, metrics.GetValueOrDefault(r.Id, [])))], next));
    }

    /// <summary>The metrics each resource has samples for, in name order.</summary>
    static async Task<Dictionary<int, string[]>> MetricsAsync(NpgsqlConnection conn, int[] ids, CancellationToken ct, NpgsqlTransaction? tx = null) =>
        (await conn.QueryAsync<(int Id, string[] Metrics)>(new CommandDefinition(
            "SELECT resource_id, array_agg(metric ORDER BY metric) FROM series WHERE resource_id = ANY(@ids) GROUP BY resource_id",
            new { ids }, tx, cancellationToken: ct))).ToDictionary(m => m.Id, m => m.Metrics);

    static async Task<ResourceView?> ViewAsync(NpgsqlConnection conn, string name, CancellationToken ct)
    {
        if (await ResourceStore.FindAsync(conn, name, ct) is not { } r)
        {
            return null;
        }
        var metrics = await MetricsAsync(conn, [r.Id], ct);
        return ResourceViews.From(r, metrics.GetValueOrDefault(r.Id, [])) with { Sources = await SourceDefinitions.ViewsAsync(conn, r.Id, ct) };
    }

    static async Task<Results<Ok<ResourceView>, ProblemHttpResult>> GetResource(NpgsqlDataSource db, string name, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        return await ViewAsync(conn, name, ct) is { } view ? TypedResults.Ok(view) : ProblemHandling.NotFound($"No resource is named '{name}'.");
    }

    static async Task<Results<Created<ResourceView>, Ok<ResourceView>, ValidationProblem>> PutResource(
        NpgsqlDataSource db, PlanningPipeline planner, Hangfire.IBackgroundJobClient jobs, ILogger<PlanningPipeline> logger, TimeProvider clock,
        PrometheusClient prometheus, IOptions<PrometheusOptions> prometheusOptions, SourcePuller puller, string name, ResourceInput input, CancellationToken ct)
    {
        var errors = Validate(name, input);
        var sources = input.Sources is { ValueKind: not (JsonValueKind.Null or JsonValueKind.Undefined) } given
            ? SourceDefinitions.Parse(given, prometheusOptions.Value, templates: false, errors) : null;
        if (errors.Count == 0 && sources is { Count: > 0 })
        {
            // Only new or changed queries go to Prometheus: each must return exactly one series.
            IReadOnlyDictionary<string, SourceSpec> stored;
            await using (var read = await db.OpenConnectionAsync(ct))
            {
                stored = (await ResourceStore.FindAsync(read, name, ct))?.Sources ?? Resource.NoSources;
            }
            var newOrChanged = sources.Where(x => !stored.TryGetValue(x.Key, out var old) || old != x.Value).ToDictionary(x => x.Key, x => x.Value, StringComparer.Ordinal);
            foreach (var (field, message) in await SourcesApi.CheckAsync(prometheus, prometheusOptions.Value, newOrChanged, clock.GetUtcNow(), ct))
            {
                errors[field] = message;
            }
        }
        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors, detail: string.Join(" ", errors.Select(e => $"{e.Key} {e.Value[0]}.")));
        }
        // `old` reads the row as it was before this statement: whatever the plan depends on (kind, load metric, policy) changed?
        const string upsert = """
            WITH old AS (SELECT kind, load_metric, policy FROM resources WHERE name = @name)
            INSERT INTO resources (name, kind, "group", load_metric, policy, policy_problems, created_at, updated_at)
            VALUES (@name, @kind, @group, @loadMetric, @policy::jsonb, '{}', @now, @now)
            ON CONFLICT (name) DO UPDATE
               SET kind = EXCLUDED.kind, "group" = EXCLUDED."group", load_metric = EXCLUDED.load_metric,
                   policy = EXCLUDED.policy, policy_problems = EXCLUDED.policy_problems, updated_at = EXCLUDED.updated_at
            RETURNING (xmax = 0) AS Inserted,
                NOT EXISTS (SELECT 1 FROM old WHERE old.kind = @kind AND old.load_metric = @loadMetric AND old.policy = @policy::jsonb) AS Changed
            """;
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        var (inserted, changed) = await conn.QuerySingleAsync<(bool Inserted, bool Changed)>(new CommandDefinition(upsert, new
        {
            name,
            kind = input.Kind,
            group = input.Group ?? "",
            loadMetric = input.LoadMetric,
            policy = input.Policy is { ValueKind: JsonValueKind.Object } p ? p.GetRawText() : "{}",
            now = clock.GetUtcNow(),
        }, tx, cancellationToken: ct));
        var id = (await ResourceStore.IdAsync(conn, name, ct, tx))!.Value;
        if (sources is not null)
        {
            await SourceDefinitions.SaveForResourceAsync(conn, tx, id, sources, clock.GetUtcNow(), ct);
        }
        else
        {
            // Its group (and so its group's templates) may have changed.
            await SourceDefinitions.ReconcileAsync(conn, tx, id, null, clock.GetUtcNow(), ct);
        }
        // The serving cache reloads this resource at once (its group or kind may have changed even when no plan did).
        await conn.ExecuteAsync(new CommandDefinition("SELECT pg_notify('resources', @name)", new { name }, tx, cancellationToken: ct));
        await tx.CommitAsync(ct);
        puller.Wake();
        if (changed)
        {
            // Only this resource: its plan follows its policy at once instead of waiting for the next training run.
            try
            {
                await planner.PlanAsync(new PlanScope(PlanTrigger.Policy, [name]), null, ct);
            }
            catch (NpgsqlException e)
            {
                // The resource is stored already: planning it becomes a background job with retries rather than a failed PUT.
                // If even that cannot be enqueued (the database is away), the original error answers (503).
                try
                {
                    Plans.PlanningJob.Enqueue(jobs, [name]);
                }
                catch (Hangfire.BackgroundJobClientException)
                {
                    System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e);
                }
                logger.LogWarning(e, "Planning {Resource} after its policy change failed; it is planned by a background job", name);
            }
        }
        var view = (await ViewAsync(conn, name, ct))!;
        return inserted ? TypedResults.Created($"/api/v1/resources/{name}", view) : TypedResults.Ok(view);
    }

    static async Task<Results<NoContent, ProblemHttpResult>> DeleteResource(NpgsqlDataSource db, string name, CancellationToken ct)
    {
        // Samples carry no foreign key (it would slow bulk ingestion), so they go explicitly, in the same transaction.
        // Their hourly rollups (0170) and the stale marks the samples' deletion leaves go with them.
        const string deleteSamples = """
            DELETE FROM samples
            WHERE series_id IN (SELECT s.id FROM series s JOIN resources r ON r.id = s.resource_id WHERE r.name = @name);
            DELETE FROM sample_hours
            WHERE series_id IN (SELECT s.id FROM series s JOIN resources r ON r.id = s.resource_id WHERE r.name = @name);
            DELETE FROM sample_hours_stale
            WHERE series_id IN (SELECT s.id FROM series s JOIN resources r ON r.id = s.resource_id WHERE r.name = @name);
            """;
        const string deleteResource = "DELETE FROM resources WHERE name = @name RETURNING id";
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        await conn.ExecuteAsync(new CommandDefinition(deleteSamples, new { name }, tx, cancellationToken: ct));
        if (await conn.ExecuteScalarAsync<int?>(new CommandDefinition(deleteResource, new { name }, tx, cancellationToken: ct)) is null)
        {
            return ProblemHandling.NotFound($"No resource is named '{name}'.");
        }
        // Delivered on commit: the serving cache drops it.
        await conn.ExecuteAsync(new CommandDefinition("SELECT pg_notify('resources', @name)", new { name }, tx, cancellationToken: ct));
        await tx.CommitAsync(ct);
        return TypedResults.NoContent();
    }

    static Dictionary<string, string[]> Validate(string name, ResourceInput input)
    {
        var errors = new Dictionary<string, string[]>();
        if (SampleRules.CheckResourceName(name) is { } n)
        {
            errors["name"] = [n];
        }
        var knownKind = ResourceKinds.TryParse(input.Kind, out var kind);
        if (!knownKind)
        {
            errors["kind"] = [input.Kind is null ? "is required ('service' or 'job')" : $"'{input.Kind}' is not a kind; use 'service' or 'job'"];
        }
        if (input.LoadMetric is null)
        {
            errors["loadMetric"] = ["is required (e.g. 'qps' or 'records_in_rate')"];
        }
        else if (SampleRules.CheckMetric(input.LoadMetric) is { } m)
        {
            errors["loadMetric"] = [m];
        }
        if (input.Group is { } group && TextRules.CheckGroup(group, allowEmpty: true) is { } badGroup)
        {
            errors["group"] = [badGroup];
        }
        if (input.Policy is { ValueKind: not (JsonValueKind.Object or JsonValueKind.Null or JsonValueKind.Undefined) })
        {
            errors["policy"] = ["must be a JSON object"];
        }
        else if (input.Policy is { ValueKind: JsonValueKind.Object } policy && knownKind)
        {
            // Every bad field at once, each under its own path (policy.maxReplicas, policy.windows[0].timeZone).
            foreach (var field in PolicyValidator.Validate(policy, kind).GroupBy(p => p.Field))
            {
                errors[field.Key] = [.. field.Select(p => p.Message)];
            }
            // `loadMetric` is the one load metric (training fits it, the planner plans from it): a policy may repeat it, not contradict it.
            if (!errors.ContainsKey("policy.loadMetric") && input.LoadMetric is not null
                && policy.TryGetProperty("loadMetric", out var policyMetric) && policyMetric.ValueKind == JsonValueKind.String
                && policyMetric.GetString() != input.LoadMetric)
            {
                errors["policy.loadMetric"] = [$"'{Shown(policyMetric.GetString()!)}' differs from loadMetric '{input.LoadMetric}'; the load metric is loadMetric (leave policy.loadMetric out or make it equal)"];
            }
        }
        return errors;
    }

    static string Shown(string s) => s.Length <= 40 ? s : s[..40] + "...";
}
