using System.Globalization;
using System.Text.Json;
using Forecaster.Api.Errors;
using Forecaster.Api.Security;
using Forecaster.Planner;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Forecaster.Api.Serving;

/// <summary>
/// What executors poll: the desired state of a resource now (or at `at`), of many resources at once, its scheduled steps,
/// and a KEDA metrics-api document. Answered from <see cref="PlanCache"/> only, never the database, so these keep working
/// (marked stale) while PostgreSQL is away. Every answer has an ETag (304 on If-None-Match) and a max-age up to the step boundary.
/// </summary>
public static class ServingApi
{
    /// <summary>A stale answer may change as soon as the database returns: clients should not cache it longer than this.</summary>
    const int StaleMaxAgeSeconds = DatabaseUnavailable.RetryAfterSeconds;

    public static IEndpointRouteBuilder MapServing(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/v1").WithTags("Serving").RequireAuthorization(ApiKeyExtensions.ReadPolicy);
        // The most polled endpoint gets its two singletons once, not from the request's services on every poll.
        var cache = app.ServiceProvider.GetRequiredService<PlanCache>();
        var clock = app.ServiceProvider.GetRequiredService<TimeProvider>();

        group.MapGet("/resources/{name}/plan/current", (string name, DateTimeOffset? at) => GetCurrentPlan(cache, clock, name, at))
            .WithName(nameof(GetCurrentPlan))
            .WithSummary("The desired state now (or at `at`): replicas or parallelism, cpu, memory, validity, the next differing step, source, plan version, stale flag and explanation")
            .Produces<CurrentPlan>(StatusCodes.Status200OK)
            .Produces(StatusCodes.Status304NotModified)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        group.MapGet("/plans/current", GetCurrentPlans)
            .WithName(nameof(GetCurrentPlans))
            .WithSummary("The current state of many resources in one answer (optionally one group or kind), paged by name up to Forecaster:Serving:MaxBatch; a resource that cannot be answered is an item with `missing`")
            .Produces<CurrentPlanPage>(StatusCodes.Status200OK)
            .Produces(StatusCodes.Status304NotModified)
            .ProducesValidationProblem();
        group.MapGet("/resources/{name}/plan", GetPlanSchedule)
            .WithName(nameof(GetPlanSchedule))
            .WithSummary("The scheduled steps over [from, to) (default: now to the plan's end); hours without a plan are computed by the fallback")
            .Produces<PlanSchedule>(StatusCodes.Status200OK)
            .Produces(StatusCodes.Status304NotModified)
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound);
        group.MapGet("/resources/{name}/keda", GetKedaMetric)
            .WithName(nameof(GetKedaMetric))
            .WithSummary("KEDA metrics-api document {\"desiredReplicas\": n}: with metricType AverageValue and targetValue 1 the HPA follows the plan; 0 with `neutral` and the reason for a forecastOnly plan or one that cannot be computed, so the other triggers decide")
            .Produces<KedaMetric>(StatusCodes.Status200OK)
            .Produces(StatusCodes.Status304NotModified)
            .ProducesProblem(StatusCodes.Status404NotFound);
        return app;
    }

    static Results<CachedBody, ValidationProblem, ProblemHttpResult> GetCurrentPlan(PlanCache cache, TimeProvider clock, string name, DateTimeOffset? at)
    {
        if (ProblemHandling.OutOfRange("at", at) is { } bad)
        {
            return bad;
        }
        if (Answer(cache, clock, name, at) is not (var answer, var now))
        {
            return cache.Loaded ? ProblemHandling.NotFound($"No resource is named '{name}'.") : Loading();
        }
        return answer.Missing is { } missing ? Missing(name, missing) : CachedBody.Json(answer.Body, answer.ETag, MaxAge(answer.ValidUntil, now, cache.Stale));
    }

    /// <summary>
    /// The plan trigger's value. A resource whose plan is not to be executed (forecastOnly) or that cannot be answered gets
    /// 0 with the reason: with metricType AverageValue the trigger then proposes ceil(0 / 1) = 0 replicas, below
    /// minReplicaCount, so under the HPA's max over triggers the others decide in both directions. An error instead would
    /// stop every scale-down (kubernetes issue 99514).
    /// </summary>
    static Results<CachedBody, ProblemHttpResult> GetKedaMetric(PlanCache cache, TimeProvider clock, string name)
    {
        if (Answer(cache, clock, name, null) is not (var answer, var now))
        {
            return cache.Loaded ? ProblemHandling.NotFound($"No resource is named '{name}'.") : Loading();
        }
        KedaMetric metric;
        if (answer.Missing is { } missing)
        {
            metric = new KedaMetric(0, Neutral: true,
                Reason: $"no plan covers this instant and the fallback cannot compute one ({string.Join("; ", missing)}): the other triggers decide");
        }
        else if (answer.ForecastOnly)
        {
            metric = new KedaMetric(0, Neutral: true,
                Reason: $"the policy is mode forecastOnly (a dry run): its count {answer.Count} is not executed, the other triggers decide");
        }
        else
        {
            metric = new KedaMetric(answer.Count!.Value);
        }
        var body = JsonSerializer.SerializeToUtf8Bytes(metric, ServingJson.Options);
        // A missing answer holds until samples or a plan arrive, which nothing announces: not cached.
        return CachedBody.Json(body, ServingJson.ETag(body), answer.Missing is null ? MaxAge(answer.ValidUntil, now, cache.Stale) : 0);
    }

    static Results<StreamedPlans, ValidationProblem, ProblemHttpResult> GetCurrentPlans(
        PlanCache cache, TimeProvider clock, string? group, string? kind, DateTimeOffset? at, string? after, int? limit)
    {
        var o = cache.Options;
        if (ProblemHandling.OutOfRange("at", at) is { } bad)
        {
            return bad;
        }
        if (kind is not null and not ("service" or "job"))
        {
            return ProblemHandling.Invalid("kind", $"'{kind}' is not a kind; use 'service' or 'job'");
        }
        var take = limit ?? o.MaxBatch;
        if (take < 1 || take > o.MaxBatch)
        {
            return ProblemHandling.Invalid("limit", $"must be between 1 and {o.MaxBatch}");
        }
        if (!cache.Loaded)
        {
            return Loading();
        }
        var now = clock.GetUtcNow();
        var instant = at ?? now;
        var stale = cache.Stale;
        var wanted = kind is null ? (ResourceKind?)null : kind == "job" ? ResourceKind.Job : ResourceKind.Service;
        var all = cache.Ordered;
        var items = new List<Rendered>(Math.Min(take, all.Length));
        string? next = null;
        for (var i = after is null ? 0 : PlanCache.IndexOf(all, after); i < all.Length; i++)
        {
            var r = all[i];
            if ((after is not null && string.CompareOrdinal(r.Name, after) <= 0) || (group is not null && r.Group != group) || (wanted is { } k && r.Kind != k))
            {
                continue;
            }
            if (items.Count == take)
            {
                next = all[i - 1].Name;
                break;
            }
            items.Add(r.Current(instant, now, stale, o));
        }
        var validUntil = items.Where(i => i.Missing is null).Select(i => i.ValidUntil).DefaultIfEmpty(now).Min();
        var etag = ServingJson.Combine(items.Select(i => i.ETag), next ?? "");
        return new StreamedPlans(items, next, etag, MaxAge(validUntil, now, stale));
    }

    static Results<CachedBody, ValidationProblem, ProblemHttpResult> GetPlanSchedule(
        PlanCache cache, TimeProvider clock, string name, DateTimeOffset? from, DateTimeOffset? to)
    {
        if ((ProblemHandling.OutOfRange("from", from) ?? ProblemHandling.OutOfRange("to", to)) is { } bad)
        {
            return bad;
        }
        if (cache.Find(name) is not { } resource)
        {
            return cache.Loaded ? ProblemHandling.NotFound($"No resource is named '{name}'.") : Loading();
        }
        var now = clock.GetUtcNow();
        var start = from ?? now;
        var end = to ?? (resource.Plan is { } p && p.End > start ? p.End : start.AddHours(24));
        if (end <= start || end - start > TimeSpan.FromDays(14))
        {
            return ProblemHandling.Invalid("to", "must be after `from` and at most 14 days later");
        }
        var steps = resource.Schedule(start, end, now);
        if (steps.Count == 0)
        {
            return resource.Current(start, now, cache.Stale, cache.Options).Missing is { } missing
                ? Missing(name, missing)
                : ProblemHandling.NotFound($"Nothing is scheduled for '{name}' between {start:O} and {end:O}.");
        }
        var plan = resource.Plan is { } active && steps.Any(s => active.IndexAt(s.Start) >= 0) ? active : null;
        var stale = cache.Stale || (plan is not null && (now - plan.GeneratedAt).TotalHours > cache.Options.PlanStaleAfterHours);
        var job = resource.Kind == ResourceKind.Job;
        var view = new PlanSchedule(name, resource.Kind, plan?.Version, plan?.GeneratedAt, stale, plan?.ForecastOnly ?? steps[0].ForecastOnly,
            [.. steps.Select(s => new ScheduledStep(job ? null : s.Count, job ? s.Count : null, s.Cpu, s.Memory, s.Start, s.End, s.Hour, s.Source, s.CapacityShortfall))]);
        var body = JsonSerializer.SerializeToUtf8Bytes(view, ServingJson.Options);
        return CachedBody.Json(body, ServingJson.ETag(body), MaxAge(steps[0].End, now, stale));
    }

    static (Rendered, DateTimeOffset)? Answer(PlanCache cache, TimeProvider clock, string name, DateTimeOffset? at)
    {
        if (!cache.Loaded || cache.Find(name) is not { } resource)
        {
            return null;
        }
        var now = clock.GetUtcNow();
        var answer = resource.Current(at ?? now, now, cache.Stale, cache.Options);
        // No exemplar: the default one formats the request's trace id on every answer, and these answers are counted by the thousand per second.
        AnswerCounter(answer).Inc(1, Prometheus.Exemplar.None);
        return (answer, now);
    }

    /// <summary>The answers counter's child for (source, stale), looked up once per pair rather than once per request.</summary>
    static Prometheus.Counter.Child AnswerCounter(Rendered answer)
    {
        var source = answer.Source is { } name ? Array.IndexOf(SourceNames, name) : SourceNames.Length;
        var slot = (source < 0 ? SourceNames.Length + 1 : source) * 2 + (answer.Stale ? 1 : 0);
        return Volatile.Read(ref AnswerCounters[slot]) ?? (AnswerCounters[slot] =
            Observability.ForecasterMetrics.PlanAnswers.WithLabels(answer.Source ?? "missing", answer.Stale ? "true" : "false"));
    }

    static readonly string[] SourceNames = [.. Enum.GetValues<StepSource>().Select(v => JsonSerializer.Serialize(v).Trim('"'))];

    static readonly Prometheus.Counter.Child?[] AnswerCounters = new Prometheus.Counter.Child?[(SourceNames.Length + 2) * 2];

    /// <summary>Seconds until the answer changes at the latest: the step boundary (a few seconds only while stale).</summary>
    static int MaxAge(DateTimeOffset validUntil, DateTimeOffset now, bool stale)
    {
        var seconds = (int)Math.Clamp(Math.Floor((validUntil - now).TotalSeconds), 0, int.MaxValue);
        return stale ? Math.Min(seconds, StaleMaxAgeSeconds) : seconds;
    }

    static ProblemHttpResult Missing(string name, IReadOnlyList<string> missing) =>
        TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "No plan and nothing to fall back on",
            detail: $"No plan covers this instant for '{name}', and the fallback cannot compute one: {string.Join("; ", missing)}.",
            extensions: new Dictionary<string, object?> { ["missing"] = missing });

    static ProblemHttpResult Loading() =>
        TypedResults.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "Plans are loading",
            detail: $"The plan cache has not finished its first load; retry in {DatabaseUnavailable.RetryAfterSeconds} s.");

    /// <summary>True when the request's If-None-Match names <paramref name="etag"/> (or is `*`).</summary>
    internal static bool NotModified(HttpRequest request, string etag)
    {
        foreach (var value in request.Headers.IfNoneMatch)
        {
            if (value is not null && (value == etag || value == "*" || value.Contains(etag, StringComparison.Ordinal)))
            {
                return true;
            }
        }
        return false;
    }

    internal static void CacheHeaders(HttpResponse response, string etag, int maxAge)
    {
        response.Headers.ETag = etag;
        response.Headers.CacheControl = maxAge == 0 ? "no-cache" : MaxAgeValue(maxAge);
    }

    /// <summary>`max-age=N`, kept once per N up to an hour (a step's length), the usual values, rather than two strings per answer.</summary>
    static string MaxAgeValue(int maxAge)
    {
        if ((uint)maxAge >= (uint)MaxAgeValues.Length)
        {
            return "max-age=" + maxAge.ToString(CultureInfo.InvariantCulture);
        }
        return MaxAgeValues[maxAge] ??= "max-age=" + maxAge.ToString(CultureInfo.InvariantCulture);
    }

    static readonly string?[] MaxAgeValues = new string?[3601];
}

/// <summary>A body rendered beforehand, with its ETag and max-age: 304 when the client has it, else the bytes as they are.</summary>
public sealed class CachedBody(byte[] body, string contentType, string etag, int maxAge) : IResult
{
    public const string JsonType = "application/json; charset=utf-8";

    public byte[] Body => body;

    public static CachedBody Json(byte[] body, string etag, int maxAge) => new(body, JsonType, etag, maxAge);

    public Task ExecuteAsync(HttpContext httpContext)
    {
        var response = httpContext.Response;
        ServingApi.CacheHeaders(response, etag, maxAge);
        if (ServingApi.NotModified(httpContext.Request, etag))
        {
            response.StatusCode = StatusCodes.Status304NotModified;
            return Task.CompletedTask;
        }
        response.ContentType = contentType;
        response.ContentLength = body.Length;
        // Written and flushed here, not left for the end of the request: the client has its answer while the middleware unwinds.
        return response.Body.WriteAsync(body, 0, body.Length);
    }
}

/// <summary>
/// The batch answer, streamed: each item's pre-rendered bytes go straight to the response through one Utf8JsonWriter,
/// flushed every 64 KiB, so 10,000 resources cost neither a second serialization nor one large buffer.
/// </summary>
public sealed class StreamedPlans(List<Rendered> items, string? next, string etag, int maxAge) : IResult
{
    public async Task ExecuteAsync(HttpContext httpContext)
    {
        var response = httpContext.Response;
        ServingApi.CacheHeaders(response, etag, maxAge);
        if (ServingApi.NotModified(httpContext.Request, etag))
        {
            response.StatusCode = StatusCodes.Status304NotModified;
            return;
        }
        response.ContentType = "application/json; charset=utf-8";
        var pipe = response.BodyWriter;
        await using var json = new Utf8JsonWriter(pipe, new JsonWriterOptions { SkipValidation = true });
        json.WriteStartObject();
        json.WriteNumber("count", items.Count);
        json.WriteStartArray("items");
        foreach (var item in items)
        {
            json.WriteRawValue(item.Body, skipInputValidation: true);
            if (json.BytesPending > 64 * 1024)
            {
                json.Flush();
                await pipe.FlushAsync(httpContext.RequestAborted);
            }
        }
        json.WriteEndArray();
        if (next is null)
        {
            json.WriteNull("next");
        }
        else
        {
            json.WriteString("next", next);
        }
        json.WriteEndObject();
        json.Flush();
        await pipe.FlushAsync(httpContext.RequestAborted);
    }
}
