using System.Text.Json;
using Dapper;
using Forecaster.Api.Errors;
using Forecaster.Api.OpenApi;
using Forecaster.Api.Security;
using Hangfire;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Npgsql;
using Forecaster.Api.Resources;

namespace Forecaster.Api.Simulations;

/// <summary>/api/v1/simulations: replay resources' stored load (or inline series) against the strategies, in the background.</summary>
public static class SimulationsApi
{
    public static IEndpointRouteBuilder MapSimulations(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/v1/simulations").WithTags("Simulations");

        group.MapPost("/", StartSimulation)
            .WithName(nameof(StartSimulation))
            .WithSummary("Replay resources' stored load (or inline series) with a policy: predictive vs reactive and static strategies; 202 with its id")
            .RequireAuthorization(ApiKeyExtensions.WritePolicy)
            .WithRequestExample("""{"resources":["checkout","search"],"policy":{"minReplicas":1,"maxReplicas":40},"trainDays":28}""")
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        group.MapGet("/", ListSimulations)
            .WithName(nameof(ListSimulations))
            .WithSummary("The newest simulations with their status and progress (reports only through GET /{id})")
            .RequireAuthorization(ApiKeyExtensions.ReadPolicy)
            .ProducesProblem(StatusCodes.Status400BadRequest);
        group.MapGet("/{id:long}", GetSimulation)
            .WithName(nameof(GetSimulation))
            .WithSummary("A simulation's status and progress (nightly fits replayed), then its report")
            .RequireAuthorization(ApiKeyExtensions.ReadPolicy)
            .ProducesProblem(StatusCodes.Status404NotFound);
        return app;
    }

    static async Task<Results<Accepted<SimulationView>, ValidationProblem, ProblemHttpResult>> StartSimulation(
        NpgsqlDataSource db, IBackgroundJobClient jobs, IOptions<SimulationOptions> options, TimeProvider clock, SimulationRequest? request, CancellationToken ct)
    {
        var errors = SimulationRequests.Validate(request, options.Value.MaxSeries);
        if (errors.Count > 0)
        {
            var first = errors.First();
            return TypedResults.ValidationProblem(errors, detail: $"{first.Key} {first.Value[0]}.", extensions: new Dictionary<string, object?> { ["field"] = first.Key });
        }
        if (request!.Resources is { } names)
        {
            await using var conn = await db.OpenConnectionAsync(ct);
            var known = await ResourceStore.KnownAsync(conn, names, ct);
            if (names.Select((n, i) => (n, i)).FirstOrDefault(p => !known.Contains(p.n)) is (string unknown, int index))
            {
                return ProblemHandling.Invalid($"resources[{index}]", $"no resource is named '{unknown}'");
            }
        }

        var id = await Simulations.CreateAsync(db, JsonSerializer.Serialize(request, JsonSerializerOptions.Web), clock.GetUtcNow(), ct);
        if (await Simulations.QueuedBeforeAsync(db, id, ct) >= options.Value.QueueCapacity)
        {
            await Simulations.FailAsync(db, id, "refused: the simulation queue is full", clock.GetUtcNow(), ct);
            return TypedResults.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "Simulation queue full",
                detail: $"{options.Value.QueueCapacity} simulations are already waiting; post again once some have finished.");
        }
        // A crash between the insert and here leaves a row without a job: the recovery at the next start enqueues it.
        await Simulations.SetJobAsync(db, id, SimulationJob.Enqueue(jobs, id), ct);
        var row = await Simulations.GetAsync(db, id, ct);
        return TypedResults.Accepted($"/api/v1/simulations/{id}", SimulationView.From(row!));
    }

    static async Task<Results<Ok<SimulationPage>, ValidationProblem>> ListSimulations(NpgsqlDataSource db, int? limit, CancellationToken ct)
    {
        var take = limit ?? 50;
        if (take is < 1 or > 1000)
        {
            return ProblemHandling.Invalid("limit", "must be between 1 and 1000");
        }
        return TypedResults.Ok(new SimulationPage([.. (await Simulations.ListAsync(db, take, ct)).Select(SimulationView.From)]));
    }

    static async Task<Results<Ok<SimulationView>, ProblemHttpResult>> GetSimulation(NpgsqlDataSource db, long id, CancellationToken ct) =>
        await Simulations.GetAsync(db, id, ct) is { } row
            ? TypedResults.Ok(SimulationView.From(row))
            : ProblemHandling.NotFound($"No simulation has id {id}.");
}
