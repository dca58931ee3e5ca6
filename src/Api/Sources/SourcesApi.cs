using System.Text.Json;
using Dapper;
using Forecaster.Api.Errors;
using Forecaster.Api.Security;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Npgsql;
using Forecaster.Api.Resources;

namespace Forecaster.Api.Sources;

/// <summary>Body of PUT /api/v1/groups/{group}/sources and of the sources test: metric name → PromQL (or {"query", "server"}).</summary>
public sealed record SourcesInput(JsonElement? Sources);

/// <summary>A group's source templates.</summary>
public sealed record GroupSourcesView(string Group, IReadOnlyDictionary<string, SourceSpec> Sources, int Resources);

/// <summary>Prometheus sources: group templates, and a dry run of a resource's queries.</summary>
public static class SourcesApi
{
    /// <summary>How far back a PUT checks that a new query returns exactly one series.</summary>
    static readonly TimeSpan CheckWindow = TimeSpan.FromHours(24);

    public static IEndpointRouteBuilder MapSources(this IEndpointRouteBuilder app)
    {
        var groups = app.MapGroup("/api/v1/groups/{group}/sources").WithTags("Sources");
        groups.MapPut("/", PutGroupSources)
            .WithName(nameof(PutGroupSources))
            .WithSummary("Replace a group's PromQL templates ({{name}} and {{group}} are the resource's); a resource's own sources override them")
            .RequireAuthorization(ApiKeyExtensions.WritePolicy)
            .ProducesProblem(StatusCodes.Status401Unauthorized);
        groups.MapGet("/", GetGroupSources)
            .WithName(nameof(GetGroupSources))
            .WithSummary("A group's PromQL templates")
            .RequireAuthorization(ApiKeyExtensions.ReadPolicy);

        app.MapPost("/api/v1/resources/{name}/sources/test", TestSources)
            .WithTags("Sources")
            .WithName(nameof(TestSources))
            .WithSummary("Run the resource's source queries (or those in the body) over the last hours and show what comes back; stores nothing")
            .RequireAuthorization(ApiKeyExtensions.WritePolicy)
            .ProducesProblem(StatusCodes.Status404NotFound);
        return app;
    }

    static async Task<Results<Ok<GroupSourcesView>, ValidationProblem>> PutGroupSources(
        NpgsqlDataSource db, IOptions<PrometheusOptions> options, SourcePuller puller, TimeProvider clock, string group, SourcesInput input, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        if (group.Length > 128)
        {
            errors["group"] = ["is longer than 128 characters"];
        }
        var sources = input.Sources is { } s ? SourceDefinitions.Parse(s, options.Value, templates: true, errors) : [];
        if (input.Sources is null)
        {
            errors["sources"] = ["is required: {\"sources\":{\"qps\":\"sum(rate(http_requests_total{service=\\\"{{name}}\\\"}[5m]))\"}}"];
        }
        if (errors.Count > 0)
        {
            return Problem(errors);
        }
        var now = clock.GetUtcNow();
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        await SourceDefinitions.SaveForGroupAsync(conn, tx, group, sources, now, ct);
        var count = await conn.ExecuteScalarAsync<int>(new CommandDefinition("""SELECT count(*)::int FROM resources WHERE "group" = @group""", new { group }, tx, cancellationToken: ct));
        await tx.CommitAsync(ct);
        puller.Wake();
        return TypedResults.Ok(new GroupSourcesView(group, sources, count));
    }

    static async Task<Ok<GroupSourcesView>> GetGroupSources(NpgsqlDataSource db, string group, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        var sources = await SourceDefinitions.GroupSourcesAsync(conn, group, ct);
        var count = await conn.ExecuteScalarAsync<int>(new CommandDefinition("""SELECT count(*)::int FROM resources WHERE "group" = @group""", new { group }, cancellationToken: ct));
        return TypedResults.Ok(new GroupSourcesView(group, sources, count));
    }

    static async Task<Results<Ok<SourcesTestResult>, ValidationProblem, ProblemHttpResult>> TestSources(
        NpgsqlDataSource db, PrometheusClient prometheus, IOptions<PrometheusOptions> options, TimeProvider clock,
        string name, int? hours, HttpRequest request, CancellationToken ct)
    {
        var window = hours ?? 6;
        if (window is < 1 or > 168)
        {
            return ProblemHandling.Invalid("hours", "must be between 1 and 168");
        }
        // The body is optional: without it, the resource's effective sources (its own, else its group's) are tested.
        SourcesInput? input = null;
        if (request.ContentLength > 0 || request.Headers.TransferEncoding.Count > 0)
        {
            if (!request.HasJsonContentType())
            {
                return TypedResults.Problem(statusCode: StatusCodes.Status415UnsupportedMediaType, title: "Unsupported media type",
                    detail: "Send the body as application/json: {\"sources\":{\"qps\":\"PromQL\"}}, or no body to test the stored sources.");
            }
            input = await request.ReadFromJsonAsync<SourcesInput>(ct);
        }
        await using var conn = await db.OpenConnectionAsync(ct);
        var resource = await ResourceStore.FindAsync(conn, name, ct);
        if (resource is not { } r)
        {
            return ProblemHandling.NotFound($"No resource is named '{name}'.");
        }
        Dictionary<string, SourceSpec> sources;
        if (input?.Sources is { } given)
        {
            var errors = new Dictionary<string, string[]>();
            sources = SourceDefinitions.Parse(given, options.Value, templates: true, errors);
            if (errors.Count > 0)
            {
                return Problem(errors);
            }
            sources = sources.ToDictionary(x => x.Key, x => x.Value with { Query = SourceDefinitions.Resolve(x.Value.Query, name, r.Group) }, StringComparer.Ordinal);
        }
        else
        {
            await SourceDefinitions.ReconcileAsync(conn, null, r.Id, null, clock.GetUtcNow(), ct);
            sources = (await SourceDefinitions.ViewsAsync(conn, r.Id, ct)).ToDictionary(
                x => x.Key, x => new SourceSpec(x.Value.Query, x.Value.Server == "default" ? "" : x.Value.Server), StringComparer.Ordinal);
        }
        return TypedResults.Ok(await TestAsync(prometheus, options.Value, name, sources, clock.GetUtcNow(), TimeSpan.FromHours(window), ct));
    }

    /// <summary>The dry run itself, shared with `forecaster sources test`.</summary>
    public static async Task<SourcesTestResult> TestAsync(PrometheusClient prometheus, PrometheusOptions options, string name,
        IReadOnlyDictionary<string, SourceSpec> sources, DateTimeOffset now, TimeSpan window, CancellationToken ct)
    {
        var step = TimeSpan.FromSeconds(options.StepSeconds);
        var to = SourcePuller.Floor(now.UtcDateTime, step);
        var from = to - window;
        var tested = await SourceTester.RunAsync(prometheus, sources, from, to, step, ct);
        return new SourcesTestResult(name, new DateTimeOffset(from), new DateTimeOffset(to), options.StepSeconds, tested);
    }

    /// <summary>
    /// Checks new or changed sources of a PUT against their server: a query that returns no series, or several, is an
    /// error under `sources.METRIC` saying what came back. An unreachable server is not: the source is stored and its
    /// error shows in its state until the server answers.
    /// </summary>
    public static async Task<Dictionary<string, string[]>> CheckAsync(PrometheusClient prometheus, PrometheusOptions options,
        IReadOnlyDictionary<string, SourceSpec> sources, DateTimeOffset now, CancellationToken ct)
    {
        var step = TimeSpan.FromSeconds(Math.Max(options.StepSeconds, 600));
        var to = SourcePuller.Floor(now.UtcDateTime, step);
        var tested = await SourceTester.RunAsync(prometheus, sources, to - CheckWindow, to, step, ct);
        // Bad PromQL (Prometheus answers 400) is refused too; a 5xx, a timeout or a refused connection is not.
        return tested.Where(t => SourceTester.IsAnswerError(t.Value) || t.Value.Error?.Contains(": Prometheus answered 4", StringComparison.Ordinal) == true)
            .ToDictionary(t => $"sources.{t.Key}", t => new[] { $"{t.Value.Error} (query: {t.Value.Query}). Nothing was stored" });
    }

    static ValidationProblem Problem(Dictionary<string, string[]> errors) =>
        TypedResults.ValidationProblem(errors, detail: string.Join(" ", errors.Select(e => $"{e.Key} {e.Value[0]}.")),
            extensions: new Dictionary<string, object?> { ["field"] = errors.Keys.First() });
}
