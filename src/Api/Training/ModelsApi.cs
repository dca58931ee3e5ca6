using Dapper;
using Forecaster.Api.Errors;
using Forecaster.Api.Samples;
using Forecaster.Api.Security;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Npgsql;
using Forecaster.Api.Resources;

namespace Forecaster.Api.Training;

/// <summary>/api/v1/resources/{name}/models and /forecast: a resource's model registry, its model artifacts and its stored forecasts.</summary>
public static class ModelsApi
{
    public static IEndpointRouteBuilder MapModels(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/v1/resources/{name}").WithTags("Models");

        group.MapGet("/models", ListModels)
            .WithName(nameof(ListModels))
            .WithSummary("Model versions of a resource (optionally one metric), newest first, with their backtest figures")
            .RequireAuthorization(ApiKeyExtensions.ReadPolicy)
            .ProducesProblem(StatusCodes.Status400BadRequest);
        group.MapGet("/models/{version:long}/artifact", GetModelArtifact)
            .WithName(nameof(GetModelArtifact))
            .WithSummary("A model version's artifact as training wrote it: {header, model}, the fitted model that reproduces its stored forecast")
            .RequireAuthorization(ApiKeyExtensions.ReadPolicy)
            .Produces(StatusCodes.Status200OK, contentType: "application/json")
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status410Gone)
            .ProducesProblem(StatusCodes.Status500InternalServerError);
        app.MapGet("/api/v1/models/active", ListActiveModels)
            .WithTags("Models")
            .WithName(nameof(ListActiveModels))
            .WithSummary("The active model of every resource's load metric with its backtest MASE against seasonal naive's (the fleet view)")
            .RequireAuthorization(ApiKeyExtensions.ReadPolicy)
            .ProducesProblem(StatusCodes.Status400BadRequest);
        group.MapGet("/forecast", GetForecast)
            .WithName(nameof(GetForecast))
            .WithSummary("The stored forecast of a metric (default: the load metric) with bounds and the model version that made it")
            .RequireAuthorization(ApiKeyExtensions.ReadPolicy)
            .ProducesProblem(StatusCodes.Status400BadRequest);
        return app;
    }

    static async Task<Results<Ok<ActiveModelPage>, ValidationProblem>> ListActiveModels(NpgsqlDataSource db, string? group, CancellationToken ct)
    {
        if (group is { Length: > 128 })
        {
            return ProblemHandling.Invalid("group", "is longer than 128 characters");
        }
        const string active = """
            SELECT r.name AS Resource, mv.metric, mv.id AS Version, mv.algorithm, mv.trained_at AS TrainedAt, mv.run_id AS RunId,
                   mv.mase, mv.snaive_mase AS SeasonalNaiveMase, mv.beats_seasonal_naive AS BeatsSeasonalNaive
            FROM resources r
            JOIN model_versions mv ON mv.resource_id = r.id AND mv.metric = r.load_metric AND mv.status = 'active'
            WHERE @group::text IS NULL OR r."group" = @group
            ORDER BY r.name
            """;
        await using var conn = await db.OpenConnectionAsync(ct);
        var rows = await conn.QueryAsync<ActiveModelView>(new CommandDefinition(active, new { group }, cancellationToken: ct));
        return TypedResults.Ok(new ActiveModelPage([.. rows]));
    }

    static async Task<Results<Ok<ModelVersionPage>, ValidationProblem, ProblemHttpResult>> ListModels(
        NpgsqlDataSource db, string name, string? metric, int? limit, CancellationToken ct)
    {
        var take = limit ?? 50;
        if (take is < 1 or > 1000)
        {
            return ProblemHandling.Invalid("limit", "must be between 1 and 1000");
        }
        if (metric is not null && !SampleRules.MetricName().IsMatch(metric))
        {
            return ProblemHandling.Invalid("metric", $"'{metric}' is not a metric name");
        }
        const string versions = """
            SELECT mv.id AS Version, mv.metric, mv.status, mv.algorithm, mv.run_id AS RunId, mv.trained_at AS TrainedAt,
                   mv.train_from AS TrainFrom, mv.train_to AS TrainTo, mv.train_points AS TrainPoints, mv.backtest_origins AS BacktestOrigins,
                   mv.mase, mv.smape, mv.coverage, mv.snaive_mase AS SeasonalNaiveMase, mv.beats_seasonal_naive AS BeatsSeasonalNaive,
                   mv.artifact, mv.artifact_offset AS ArtifactOffset, mv.artifact_length AS ArtifactLength, mv.error
            FROM model_versions mv
            WHERE mv.resource_id = @resourceId AND (@metric::text IS NULL OR mv.metric = @metric)
            ORDER BY mv.id DESC
            LIMIT @take
            """;
        await using var conn = await db.OpenConnectionAsync(ct);
        if (await ResourceIdAsync(conn, name, ct) is not int resourceId)
        {
            return ProblemHandling.NotFound($"No resource is named '{name}'.");
        }
        var rows = await conn.QueryAsync<ModelVersionView>(new CommandDefinition(versions, new { resourceId, metric, take }, cancellationToken: ct));
        return TypedResults.Ok(new ModelVersionPage(name, [.. rows]));
    }

    /// <remarks>
    /// Read from this instance's models directory: with several instances, each holds the artifacts of the shards it trained
    /// unless they share the directory (a volume), and the others answer 404. A version that model retention removed answers
    /// 410 saying so; a file that is there but truncated or not the version's artifact answers 500 naming the file and what is
    /// wrong with it: the request is right and the stored data is not, which neither the client nor a retry can mend.
    /// </remarks>
    static async Task<Results<FileContentHttpResult, ProblemHttpResult>> GetModelArtifact(
        NpgsqlDataSource db, IOptions<TrainingOptions> options, ILoggerFactory logs, string name, long version, CancellationToken ct)
    {
        const string place = """
            SELECT mv.artifact AS Path, mv.artifact_offset AS Offset, mv.artifact_length AS Length
            FROM model_versions mv JOIN resources r ON r.id = mv.resource_id
            WHERE r.name = @name AND mv.id = @version
            """;
        await using var conn = await db.OpenConnectionAsync(ct);
        var found = await conn.QuerySingleOrDefaultAsync<(string? Path, long? Offset, int? Length)?>(new CommandDefinition(place, new { name, version }, cancellationToken: ct));
        if (found is not { } row)
        {
            return await RemovedAsync(conn, name, version, ct) ?? ProblemHandling.NotFound($"Resource '{name}' has no model version {version}.");
        }
        if (row.Path is null)
        {
            return ProblemHandling.NotFound($"Model version {version} of '{name}' has no artifact (its training failed).");
        }
        try
        {
            var bytes = ModelArtifact.ReadChecked(options.Value.ResolvedModelsPath, new ArtifactPlace(row.Path, row.Offset, row.Length), version);
            return TypedResults.Bytes(bytes, "application/json");
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            // Retention may have removed the version and its pack since it was read above.
            return await RemovedAsync(conn, name, version, ct)
                ?? ProblemHandling.NotFound($"The artifact of model version {version} ({row.Path}) is not in this instance's models directory.");
        }
        catch (ArtifactDamagedException e)
        {
            logs.CreateLogger(typeof(ModelsApi)).LogError("Model version {Version} of {Resource}: its artifact {Path} {Problem}", version, name, e.ArtifactPath, e.Problem);
            return TypedResults.Problem(statusCode: StatusCodes.Status500InternalServerError, title: "Model artifact damaged",
                detail: $"The artifact of model version {version} of '{name}' cannot be served: {e.ArtifactPath} (in the models directory) {e.Problem}. " +
                    "Restore the file from a backup, or train the resource again for a new version.",
                extensions: new Dictionary<string, object?> { ["artifact"] = e.ArtifactPath, ["artifactOffset"] = row.Offset, ["artifactLength"] = row.Length });
        }
    }

    /// <summary>
    /// A 410 when model retention removed versions of <paramref name="name"/> from before <paramref name="version"/> to after
    /// it and no version <paramref name="version"/> is stored (of any resource); null otherwise. Version ids are shared by every
    /// resource, so the answer says what retention removed rather than claiming this id was one of them.
    /// </summary>
    static async Task<ProblemHttpResult?> RemovedAsync(NpgsqlConnection conn, string name, long version, CancellationToken ct)
    {
        const string removed = """
            SELECT m.from_version AS FromVersion, m.through_version AS ThroughVersion, m.versions, m.removed_at AS RemovedAt,
                   (SELECT min(mv.id) FROM model_versions mv WHERE mv.resource_id = r.id) AS OldestKept
            FROM resources r JOIN model_versions_removed m ON m.resource_id = r.id
            WHERE r.name = @name AND @version BETWEEN m.from_version AND m.through_version
              AND NOT EXISTS (SELECT 1 FROM model_versions WHERE id = @version)
            """;
        var mark = await conn.QuerySingleOrDefaultAsync<(long From, long Through, long Versions, DateTime RemovedAt, long? OldestKept)?>(
            new CommandDefinition(removed, new { name, version }, cancellationToken: ct));
        if (mark is not { } m)
        {
            return null;
        }
        var oldest = m.OldestKept is long kept ? $"; its oldest version still stored is {kept}" : "";
        return TypedResults.Problem(statusCode: StatusCodes.Status410Gone, title: "Removed by model retention",
            detail: $"Resource '{name}' has no model version {version} stored. Model retention (Forecaster:ModelRetention) removed " +
                $"{m.Versions} of its versions that nothing kept, numbered from {m.From} to {m.Through} (version ids are shared by all resources), " +
                $"the last on {DateTime.SpecifyKind(m.RemovedAt, DateTimeKind.Utc):yyyy-MM-ddTHH:mm:ssZ}, and their artifacts with them{oldest}.",
            extensions: new Dictionary<string, object?> { ["field"] = "version" });
    }

    static async Task<Results<Ok<StoredForecast>, ValidationProblem, ProblemHttpResult>> GetForecast(
        NpgsqlDataSource db, string name, string? metric, string? from, string? to, CancellationToken ct)
    {
        if (metric is not null && !SampleRules.MetricName().IsMatch(metric))
        {
            return ProblemHandling.Invalid("metric", $"'{metric}' is not a metric name");
        }
        DateTime? fromUtc = null, toUtc = null;
        if (from is not null)
        {
            if (!UtcTimestamp.TryParse(from, out var f, out var error))
            {
                return ProblemHandling.Invalid("from", error!);
            }
            fromUtc = f;
        }
        if (to is not null)
        {
            if (!UtcTimestamp.TryParse(to, out var t, out var error))
            {
                return ProblemHandling.Invalid("to", error!);
            }
            toUtc = t;
        }
        if (fromUtc > toUtc)
        {
            return ProblemHandling.Invalid("from", "must not be after 'to'");
        }
        const string version = """
            SELECT id AS Version, algorithm, trained_at AS TrainedAt, level, beats_seasonal_naive AS BeatsSeasonalNaive
            FROM model_versions WHERE resource_id = @id AND metric = @metric AND status = 'active'
            """;
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, ct);
        if (await ResourceStore.FindAsync(conn, name, ct, tx) is not { } res)
        {
            return ProblemHandling.NotFound($"No resource is named '{name}'.");
        }
        metric ??= res.LoadMetric;
        var active = await conn.QuerySingleOrDefaultAsync<(long Version, string? Algorithm, DateTime TrainedAt, double? Level, bool? BeatsSeasonalNaive)?>(
            new CommandDefinition(version, new { id = res.Id, metric }, tx, cancellationToken: ct));
        if (active is not { } v)
        {
            return ProblemHandling.NotFound($"'{name}' has no trained model for '{metric}' yet; start a run with POST /api/v1/training-runs.");
        }
        // A stored forecast carries the version that wrote it; reading it by the active version keeps the answer consistent.
        var rows = await ForecastStore.HoursAsync(conn, tx, res.Id, metric, v.Version, fromUtc, toUtc, ct);
        return TypedResults.Ok(new StoredForecast(name, metric, v.Version, v.Algorithm, Utc(v.TrainedAt), v.Level, v.BeatsSeasonalNaive,
            [.. rows.Select(p => new ForecastPoint(Utc(p.Ts), p.Forecast, p.Lower, p.Upper))]));
    }

    static async Task<int?> ResourceIdAsync(NpgsqlConnection conn, string name, CancellationToken ct) =>
        await ResourceStore.IdAsync(conn, name, ct);

    static DateTimeOffset Utc(DateTime t) => new(DateTime.SpecifyKind(t, DateTimeKind.Utc));
}
