using Dapper;
using Forecaster.Api.Errors;
using Forecaster.Api.OpenApi;
using Forecaster.Api.Samples;
using Forecaster.Api.Security;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Hangfire;
using Npgsql;
using Forecaster.Api.Resources;

namespace Forecaster.Api.Training;

/// <summary>/api/v1/training-runs: start a training run now, follow its progress, list past runs.</summary>
public static class TrainingRunsApi
{
    public static IEndpointRouteBuilder MapTrainingRuns(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/v1/training-runs").WithTags("Training");

        group.MapPost("/", StartTrainingRun)
            .WithName(nameof(StartTrainingRun))
            .WithSummary("Start a training run now (all resources, or those listed); 202 with its id, 409 while another run is active")
            .RequireAuthorization(ApiKeyExtensions.WritePolicy)
            .WithRequestExample("""{"resources":["checkout","search"]}""")
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        group.MapGet("/{id:long}", GetTrainingRun)
            .WithName(nameof(GetTrainingRun))
            .WithSummary("A run's status, progress (series done/total), timing, shards and failed series")
            .RequireAuthorization(ApiKeyExtensions.ReadPolicy);
        group.MapGet("/", ListTrainingRuns)
            .WithName(nameof(ListTrainingRuns))
            .WithSummary("Recent training runs, newest first")
            .RequireAuthorization(ApiKeyExtensions.ReadPolicy)
            .ProducesProblem(StatusCodes.Status400BadRequest);
        return app;
    }

    static async Task<Results<Accepted<TrainingRunView>, ValidationProblem, ProblemHttpResult>> StartTrainingRun(
        NpgsqlDataSource db, IBackgroundJobClient jobs, TimeProvider clock, TrainingRunRequest? request, CancellationToken ct)
    {
        var resources = request?.Resources;
        if (resources is not null)
        {
            if (resources.Length == 0)
            {
                return ProblemHandling.Invalid("resources", "is empty; leave it out to train every resource");
            }
            for (int i = 0; i < resources.Length; i++)
            {
                if (resources[i] is not { } name || !SampleRules.ResourceName().IsMatch(name))
                {
                    return ProblemHandling.Invalid($"resources[{i}]", $"'{resources[i]}' is not a resource name");
                }
            }
            await using var conn = await db.OpenConnectionAsync(ct);
            var known = await ResourceStore.KnownAsync(conn, resources, ct);
            var unknown = resources.Select((r, i) => (r, i)).Where(p => !known.Contains(p.r)).ToList();
            if (unknown.Count > 0)
            {
                return ProblemHandling.Invalid($"resources[{unknown[0].i}]", $"no resource is named '{unknown[0].r}'" + (unknown.Count > 1 ? $" (nor {unknown.Count - 1} more)" : ""));
            }
            resources = [.. resources.Distinct(StringComparer.Ordinal)];
        }

        var (created, active) = await TrainingRuns.CreateAsync(db, "api", resources, clock.GetUtcNow(), ct);
        if (created is not long runId)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "A training run is already active",
                detail: $"Run {active} is queued or running; follow it at /api/v1/training-runs/{active}.",
                extensions: new Dictionary<string, object?> { ["activeRun"] = active });
        }
        try
        {
            // Any instance's workers start it (this one may run none: Forecaster:Training:Scheduler=false).
            TrainingJobs.EnqueueStart(jobs, runId);
        }
        catch (BackgroundJobClientException e)
        {
            // A run nobody will start must not block the next one.
            await TrainingRuns.FailAsync(db, runId, $"could not be scheduled: {e.InnerException?.Message ?? e.Message}", clock.GetUtcNow(), CancellationToken.None);
            // The storage's own error (the database away) is what the problem handler knows how to answer (503).
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e.InnerException ?? e);
            throw;
        }
        await using (var conn = await db.OpenConnectionAsync(ct))
        {
            var run = await TrainingRuns.GetAsync(conn, runId, ct);
            return TypedResults.Accepted($"/api/v1/training-runs/{runId}", TrainingRunView.From(run!));
        }
    }

    static async Task<Results<Ok<TrainingRunView>, ProblemHttpResult>> GetTrainingRun(NpgsqlDataSource db, long id, CancellationToken ct)
    {
        const string shards = """
            SELECT shard, status, instance_id AS InstanceId, series_total AS SeriesTotal, series_done AS SeriesDone, series_failed AS SeriesFailed,
                   started_at AS StartedAt, finished_at AS FinishedAt, error
            FROM training_shards WHERE run_id = @id ORDER BY shard
            """;
        const string failures = """
            SELECT r.name AS Resource, mv.metric, mv.error
            FROM model_versions mv JOIN resources r ON r.id = mv.resource_id
            WHERE mv.run_id = @id AND mv.status = 'failed'
            ORDER BY r.name, mv.metric
            LIMIT 100
            """;
        await using var conn = await db.OpenConnectionAsync(ct);
        if (await TrainingRuns.GetAsync(conn, id, ct) is not { } run)
        {
            return ProblemHandling.NotFound($"No training run has id {id}.");
        }
        var shardRows = (await conn.QueryAsync<TrainingShardRow>(new CommandDefinition(shards, new { id }, cancellationToken: ct))).ToList();
        var failed = (await conn.QueryAsync<SeriesFailure>(new CommandDefinition(failures, new { id }, cancellationToken: ct))).ToList();
        return TypedResults.Ok(TrainingRunView.From(run, shardRows, failed));
    }

    static async Task<Results<Ok<TrainingRunPage>, ValidationProblem>> ListTrainingRuns(NpgsqlDataSource db, int? limit, CancellationToken ct)
    {
        var take = limit ?? 20;
        if (take is < 1 or > 500)
        {
            return ProblemHandling.Invalid("limit", "must be between 1 and 500");
        }
        await using var conn = await db.OpenConnectionAsync(ct);
        var rows = await conn.QueryAsync<TrainingRunRow>(new CommandDefinition(
            $"SELECT {TrainingRunRow.Columns} FROM training_runs ORDER BY id DESC LIMIT @take", new { take }, cancellationToken: ct));
        return TypedResults.Ok(new TrainingRunPage([.. rows.Select(r => TrainingRunView.From(r))]));
    }
}
