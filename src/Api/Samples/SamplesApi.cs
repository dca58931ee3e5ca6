using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Xml;
using Dapper;
using Forecaster.Api.Errors;
using Forecaster.Api.OpenApi;
using Forecaster.Api.Security;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Options;
using Npgsql;
using Forecaster.Api.Resources;

namespace Forecaster.Api.Samples;

/// <summary>Load history: write samples (JSON per resource, CSV in bulk) and read them back raw or aggregated.</summary>
public static class SamplesApi
{
    public static IEndpointRouteBuilder MapSamples(this IEndpointRouteBuilder app)
    {
        var perResource = app.MapGroup("/api/v1/resources/{name}/samples").WithTags("Samples");
        perResource.MapPost("/", PostSamples)
            .WithName(nameof(PostSamples))
            .WithSummary("Upsert samples of one resource (all-or-nothing; the same metric and timestamp again overwrites)")
            .Accepts<SamplesInput>("application/json")
            .WithRequestExample("""{"samples":[{"metric":"qps","timestamp":"2026-11-20T13:00:00Z","value":812.5},{"metric":"cpu_cores","timestamp":"2026-11-20T13:00:00Z","value":6.2}]}""")
            .RequireAuthorization(ApiKeyExtensions.WritePolicy)
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        perResource.MapGet("/", GetSamples)
            .WithName(nameof(GetSamples))
            .WithSummary("Read one series in a time range: raw points, or mean/max/min per step (e.g. step=1h)")
            .RequireAuthorization(ApiKeyExtensions.ReadPolicy);

        app.MapPost("/api/v1/samples", PostCsv)
            .WithTags("Samples")
            .WithName(nameof(PostCsv))
            .WithMetadata(new OwnBodyLimit())
            .WithSummary("Bulk upsert from CSV (header resource,metric,timestamp,value), streamed; all-or-nothing")
            .WithRequestExample("resource,metric,timestamp,value\ncheckout,qps,2026-11-20T13:00:00Z,812.5\ncheckout,qps,2026-11-20T14:00:00Z,901\n", "text/csv")
            .RequireAuthorization(ApiKeyExtensions.WritePolicy)
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        return app;
    }

    static async Task<Results<Ok<IngestResult>, ValidationProblem, ProblemHttpResult>> PostSamples(
        HttpContext http, string name, NpgsqlDataSource db, SamplePartitions partitions, TimeProvider clock,
        IOptions<ForecasterOptions> options, IOptions<JsonOptions> json, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        if (!http.Request.HasJsonContentType())
        {
            return UnsupportedMediaType("application/json");
        }
        var limit = options.Value.MaxJsonBodyBytes;
        if (LimitBody(http, limit) is { } tooLarge)
        {
            return tooLarge;
        }
        var input = await JsonSerializer.DeserializeAsync<SamplesInput>(new LimitedStream(http.Request.Body, limit), json.Value.SerializerOptions, ct);
        if (input?.Samples is not { } samples)
        {
            return ProblemHandling.Invalid("samples", "is required: {\"samples\":[{\"metric\":...,\"timestamp\":...,\"value\":...}]}");
        }

        await using (var conn = await db.OpenConnectionAsync(ct))
        {
            if (await ResourceStore.IdAsync(conn, name, ct) is null)
            {
                return ProblemHandling.NotFound($"No resource is named '{name}'; register it first with PUT /api/v1/resources/{name}. Nothing was stored.");
            }
        }

        var now = clock.GetUtcNow();
        var maxAge = options.Value.MaxSampleAgeDays;
        var errors = new List<SampleError>();
        var rows = new List<(string Metric, DateTime Ts, double Value)>(samples.Count);
        for (var i = 0; i < samples.Count && errors.Count < 20; i++)
        {
            var s = samples[i];
            if (s is null)
            {
                errors.Add(new SampleError(i, "", "is null"));
                continue;
            }
            if (SampleRules.CheckMetric(s.Metric ?? "") is { } me)
            {
                errors.Add(new SampleError(i, "metric", s.Metric is null ? "is required" : me));
                continue;
            }
            if (s.Timestamp is null)
            {
                errors.Add(new SampleError(i, "timestamp", "is required"));
                continue;
            }
            if (!UtcTimestamp.TryParse(s.Timestamp, out var ts, out var te))
            {
                errors.Add(new SampleError(i, "timestamp", te!));
                continue;
            }
            if (SampleRules.CheckTime(ts, now, maxAge) is { } tr)
            {
                errors.Add(new SampleError(i, "timestamp", tr));
                continue;
            }
            if (s.Value is not { } value)
            {
                errors.Add(new SampleError(i, "value", "is required"));
                continue;
            }
            if (SampleRules.CheckValue(value, options.Value.MaxSampleValue) is { } ve)
            {
                errors.Add(new SampleError(i, "value", ve));
                continue;
            }
            rows.Add((s.Metric!, ts, value));
        }
        if (errors.Count > 0)
        {
            return InvalidRows("Invalid samples", errors, e => e.Field.Length == 0 ? $"samples[{e.Row}]" : $"samples[{e.Row}].{e.Field}");
        }

        await using var import = await SampleImport.BeginAsync(db, partitions, createResources: false, now, ct);
        foreach (var (metric, ts, value) in rows)
        {
            await import.AddAsync(await import.AddKeyAsync(name, metric, 0, ct), ts, value, ct);
        }
        ImportSummary? summary;
        IReadOnlyList<SampleError> lost;
        try
        {
            (summary, lost) = await import.CompleteAsync(ct);
        }
        catch (SampleWriteConflictException e)
        {
            return Conflicted(http, e);
        }
        if (summary is null)
        {
            // The resource was deleted while the request was written.
            return ProblemHandling.NotFound($"{lost[0].Message}. Nothing was stored.");
        }
        Observability.ForecasterMetrics.SamplesIngested.WithLabels("json").Inc(summary.Rows);
        return TypedResults.Ok(new IngestResult(summary.Rows, summary.Series, summary.ResourcesCreated, Stopwatch.GetElapsedTime(started).TotalSeconds));
    }

    static async Task<Results<Ok<IngestResult>, ValidationProblem, ProblemHttpResult>> PostCsv(
        HttpContext http, NpgsqlDataSource db, SamplePartitions partitions, TimeProvider clock,
        IOptions<ForecasterOptions> options, ILoggerFactory logs, bool? createResources, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        if (http.Request.ContentType is not { } type || !type.StartsWith("text/csv", StringComparison.OrdinalIgnoreCase))
        {
            return UnsupportedMediaType("text/csv");
        }
        var limit = options.Value.MaxCsvBodyBytes;
        if (LimitBody(http, limit) is { } tooLarge)
        {
            return tooLarge;
        }
        var now = clock.GetUtcNow();
        await using var import = await SampleImport.BeginAsync(db, partitions, createResources ?? false, now, ct);
        var errors = await CsvSamples.ReadAsync(new LimitedStream(http.Request.Body, limit), import, now, options.Value.MaxSampleAgeDays, options.Value.MaxSampleValue, null, ct);
        if (errors.Count > 0)
        {
            return InvalidRows("Invalid CSV", errors, e => $"line {e.Row}: {e.Field}");
        }
        ImportSummary? summary;
        IReadOnlyList<SampleError> unknown;
        try
        {
            (summary, unknown) = await import.CompleteAsync(ct);
        }
        catch (SampleWriteConflictException e)
        {
            return Conflicted(http, e);
        }
        if (summary is null)
        {
            return InvalidRows("Unknown resources", unknown, e => $"line {e.Row}: {e.Field}");
        }
        Observability.ForecasterMetrics.SamplesIngested.WithLabels("csv").Inc(summary.Rows);
        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        logs.CreateLogger(typeof(SamplesApi)).LogInformation("Imported {Rows} samples of {Series} series in {Seconds:F2}s ({FinishSeconds:F2}s to finish, upsert: {Upserted}, retries: {Retries})", summary.Rows, summary.Series, seconds, summary.FinishSeconds, summary.Upserted, summary.Retries);
        return TypedResults.Ok(new IngestResult(summary.Rows, summary.Series, summary.ResourcesCreated, seconds));
    }

    static async Task<Results<Ok<SeriesView>, ValidationProblem, ProblemHttpResult>> GetSamples(
        NpgsqlDataSource db, TimeProvider clock, IOptions<ForecasterOptions> options,
        string name, string? metric, string? from, string? to, string? step, CancellationToken ct)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        DateTime toUtc = now.AddDays(1), fromUtc;
        if (to is not null && !UtcTimestamp.TryParse(to, out toUtc, out var te))
        {
            return ProblemHandling.Invalid("to", te!);
        }
        fromUtc = toUtc.AddDays(-8);
        if (from is not null && !UtcTimestamp.TryParse(from, out fromUtc, out var fe))
        {
            return ProblemHandling.Invalid("from", fe!);
        }
        if (fromUtc >= toUtc)
        {
            return ProblemHandling.Invalid("from", "must be before 'to'");
        }
        TimeSpan? stepSpan = null;
        if (step is not null)
        {
            if (ParseStep(step) is not { } parsed)
            {
                return ProblemHandling.Invalid("step", $"'{step}' is not a step; use e.g. 1m, 5m, 1h, 1d or an ISO 8601 duration (PT1H)");
            }
            stepSpan = parsed;
        }

        await using var conn = await db.OpenConnectionAsync(ct);
        if (await ResourceStore.FindAsync(conn, name, ct) is not { } resource)
        {
            return ProblemHandling.NotFound($"No resource is named '{name}'.");
        }
        metric ??= resource.LoadMetric;
        var seriesId = await conn.ExecuteScalarAsync<int?>(new CommandDefinition(
            "SELECT id FROM series WHERE resource_id = @ResourceId AND metric = @metric", new { ResourceId = resource.Id, metric }, cancellationToken: ct));
        var cap = options.Value.MaxPointsPerQuery;
        var view = new SeriesView(name, metric, new DateTimeOffset(fromUtc), new DateTimeOffset(toUtc), step, null, null);
        if (seriesId is null)
        {
            return TypedResults.Ok(stepSpan is null ? view with { Points = [] } : view with { Buckets = [] });
        }

        if (stepSpan is { } bin)
        {
            if ((toUtc - fromUtc) / bin > cap)
            {
                return ProblemHandling.Invalid("step", $"gives more than {cap} buckets for this range; use a larger step or a shorter range");
            }
            // Stored values beyond SampleRules.AggregateLimit are left out: the mean cannot overflow (issue 13).
            const string aggregate = """
                SELECT date_bin(@bin, p.ts, '2000-01-01T00:00:00Z') AS Timestamp, avg(p.value) AS Mean, max(p.value) AS Max, min(p.value) AS Min, count(*) AS Count
                FROM samples b CROSS JOIN LATERAL unnest(coalesce(b.ts, ARRAY[b.hour]), coalesce(b.vals, ARRAY[b.value])) AS p(ts, value)
                WHERE b.series_id = @seriesId AND b.hour >= date_bin('1 hour', @fromUtc, timestamptz '2000-01-01 00:00:00+00') AND b.hour < @toUtc
                  AND p.ts >= @fromUtc AND p.ts < @toUtc AND abs(p.value) <= 1e100
                GROUP BY 1 ORDER BY 1
                """;
            var buckets = await conn.QueryAsync<(DateTime Timestamp, double Mean, double Max, double Min, long Count)>(
                new CommandDefinition(aggregate, new { bin, seriesId, fromUtc, toUtc }, cancellationToken: ct));
            return TypedResults.Ok(view with { Buckets = [.. buckets.Select(b => new SampleBucket(new DateTimeOffset(b.Timestamp), b.Mean, b.Max, b.Min, b.Count))] });
        }

        // Only what JSON can carry: a NaN or infinity written into the table by hand is left out, as aggregates leave it out.
        const string raw = """
            SELECT p.ts, p.value
            FROM samples b CROSS JOIN LATERAL unnest(coalesce(b.ts, ARRAY[b.hour]), coalesce(b.vals, ARRAY[b.value])) AS p(ts, value)
            WHERE b.series_id = @seriesId AND b.hour >= date_bin('1 hour', @fromUtc, timestamptz '2000-01-01 00:00:00+00') AND b.hour < @toUtc
              AND p.ts >= @fromUtc AND p.ts < @toUtc AND abs(p.value) < 'Infinity'
            ORDER BY b.hour, p.ts LIMIT @limit
            """;
        var points = (await conn.QueryAsync<(DateTime Ts, double Value)>(
            new CommandDefinition(raw, new { seriesId, fromUtc, toUtc, limit = cap + 1 }, cancellationToken: ct))).ToList();
        if (points.Count > cap)
        {
            return ProblemHandling.Invalid("step", $"is required: the range holds more than {cap} points; aggregate with e.g. step=1h or shorten the range");
        }
        return TypedResults.Ok(view with { Points = [.. points.Select(p => new SamplePoint(new DateTimeOffset(p.Ts), p.Value))] });
    }

    /// <summary>1m, 15m, 1h, 1d, 30s, or an ISO 8601 duration.</summary>
    internal static TimeSpan? ParseStep(string step)
    {
        // Steps longer than a year are refused: a bucket that long says nothing, and huge numbers would overflow.
        if (step.Length >= 2 && int.TryParse(step.AsSpan(0, step.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0
            && n <= (step[^1] switch { 's' => 366 * 86400, 'm' => 366 * 1440, 'h' => 366 * 24, _ => 366 }))
        {
            TimeSpan? unit = step[^1] switch
            {
                's' => TimeSpan.FromSeconds(n),
                'm' => TimeSpan.FromMinutes(n),
                'h' => TimeSpan.FromHours(n),
                'd' => TimeSpan.FromDays(n),
                _ => null,
            };
            if (unit is not null)
            {
                return unit;
            }
        }
        try
        {
            var iso = XmlConvert.ToTimeSpan(step);
            return iso > TimeSpan.Zero && iso <= TimeSpan.FromDays(366) ? iso : null;
        }
        catch (Exception e) when (e is FormatException or OverflowException)
        {
            return null;
        }
    }

    /// <summary>Refuses a declared length over the limit up front and lifts the server's default cap to the limit.</summary>
    static ProblemHttpResult? LimitBody(HttpContext http, long limit)
    {
        if (http.Request.ContentLength > limit)
        {
            return ProblemHandling.TooLarge(limit);
        }
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } feature)
        {
            feature.MaxRequestBodySize = limit;
        }
        return null;
    }

    /// <summary>503 when concurrent writers of the same keys kept winning every retry: nothing was stored, try again shortly.</summary>
    static ProblemHttpResult Conflicted(HttpContext http, SampleWriteConflictException e)
    {
        http.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(SamplesApi))
            .LogWarning(e, "Samples write gave up after {Attempts} attempts", SampleImport.MaxAttempts);
        http.Response.Headers.RetryAfter = SampleWriteConflictException.RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
        return TypedResults.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "Write conflict",
            detail: $"The samples conflicted with concurrent writes of the same keys {SampleImport.MaxAttempts} times in a row. " +
                $"Nothing was stored; retry in {SampleWriteConflictException.RetryAfterSeconds} s.");
    }

    static ProblemHttpResult UnsupportedMediaType(string expected) =>
        TypedResults.Problem(statusCode: StatusCodes.Status415UnsupportedMediaType, title: "Unsupported media type",
            detail: $"Send the body as {expected}.");

    /// <summary>A 400 validation problem listing each bad row's field (`samples[3].value`, `line 17: value`).</summary>
    static ValidationProblem InvalidRows(string title, IReadOnlyList<SampleError> errors, Func<SampleError, string> field)
    {
        var dict = errors.GroupBy(field).ToDictionary(g => g.Key, g => g.Select(e => e.Message).ToArray());
        var first = errors[0];
        return TypedResults.ValidationProblem(dict, title: title,
            detail: $"{field(first)} {first.Message}. Nothing was stored.",
            extensions: new Dictionary<string, object?>
            {
                ["row"] = first.Row,
                ["field"] = first.Field,
            });
    }
}
