using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.WebUtilities;

namespace Forecaster.Api.Errors;

/// <summary>Every error is an RFC 7807 problem document; a user's bad input is a 4xx naming the field and row, never a 500.</summary>
public static class ProblemHandling
{
    public static IServiceCollection AddForecasterProblems(this IServiceCollection services)
    {
        services.AddProblemDetails(o => o.CustomizeProblemDetails = ctx =>
        {
            ctx.ProblemDetails.Extensions.TryAdd("traceId", ctx.HttpContext.TraceIdentifier);
            // Routing answers a wrong Content-Type before any handler runs; say what the endpoint takes.
            if (ctx.ProblemDetails.Status == StatusCodes.Status415UnsupportedMediaType && ctx.ProblemDetails.Detail is null
                && ctx.HttpContext.GetEndpoint()?.Metadata.GetMetadata<Microsoft.AspNetCore.Http.Metadata.IAcceptsMetadata>() is { } accepts)
            {
                ctx.ProblemDetails.Detail = $"Send the body as {string.Join(" or ", accepts.ContentTypes)}.";
            }
            AddErrors(ctx.ProblemDetails, ctx.HttpContext);
        });
        // Every JSON string and free-form JSON value in a request body passes the one text check.
        services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.Converters.Add(new CheckedStringConverter());
            o.SerializerOptions.Converters.Add(new CheckedElementConverter());
            o.SerializerOptions.Converters.Add(new UtcDateTimeOffsetConverter());
            // Deep nesting is refused early (a policy or series is a few levels deep).
            o.SerializerOptions.MaxDepth = 32;
        });
        // After the default writer: a problem is written as JSON even to a client whose Accept names only other types.
        services.AddSingleton<IProblemDetailsWriter, AnyAcceptProblemWriter>();
        services.AddExceptionHandler<BadRequestExceptionHandler>();
        // Minimal APIs throw instead of answering a bare 400, so the handler below can say what was wrong.
        services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        return services;
    }

    public static WebApplication UseForecasterProblems(this WebApplication app)
    {
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseRequestChecks();
        return app;
    }

    /// <summary>
    /// The one shape of every 4xx: `errors` keyed by field path. A problem that concerns no single field (a missing key, an
    /// unknown resource, a wrong media type) is keyed by the part of the request it concerns.
    /// </summary>
    static void AddErrors(Microsoft.AspNetCore.Mvc.ProblemDetails problem, HttpContext http)
    {
        if (problem.Status is not (>= 400 and < 500) || problem is HttpValidationProblemDetails { Errors.Count: > 0 } || problem.Extensions.ContainsKey("errors"))
        {
            return;
        }
        var field = problem.Extensions.TryGetValue("field", out var f) && f is string named ? named : problem.Status switch
        {
            401 or 403 => Security.ApiKeyHandler.Header,
            404 => http.GetEndpoint() is null ? "path" : http.Request.RouteValues.ContainsKey("name") ? "name" : "path",
            405 => "method",
            413 => "body",
            415 => "Content-Type",
            429 => "request",
            _ => "request",
        };
        problem.Extensions["errors"] = new Dictionary<string, string[]> { [field] = [problem.Detail ?? problem.Title ?? "is not acceptable"] };
    }

    /// <summary>A 400 validation problem for one field.</summary>
    public static ValidationProblem Invalid(string field, string message) =>
        TypedResults.ValidationProblem(new Dictionary<string, string[]> { [field] = [message] }, detail: $"{field} {message}.", extensions: new Dictionary<string, object?> { ["field"] = field });

    /// <summary>A 400 for an instant outside 1970–9000 (no load is there, and date arithmetic on it would overflow); null when in range.</summary>
    public static ValidationProblem? OutOfRange(string field, DateTimeOffset? value) =>
        value is { Year: < 1970 or > 9000 } v ? Invalid(field, $"{v:O} is outside the years 1970 to 9000") : null;

    public static ProblemHttpResult TooLarge(long limit) =>
        TypedResults.Problem(statusCode: StatusCodes.Status413PayloadTooLarge, title: "Request body too large",
            detail: $"The body exceeds the configured limit of {limit} bytes. Split it into several requests. Nothing was stored.");

    public static ProblemHttpResult NotFound(string what) =>
        TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Not found", detail: what);
}

/// <summary>
/// Writes a problem whatever the request's Accept header says: the default writer declines a client that accepts only e.g.
/// application/xml, which left those answers without a body (or failed with a 500 where a problem had to be written).
/// </summary>
sealed class AnyAcceptProblemWriter(Microsoft.Extensions.Options.IOptions<ProblemDetailsOptions> options, Microsoft.Extensions.Options.IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json)
    : IProblemDetailsWriter
{
    public bool CanWrite(ProblemDetailsContext context) => true;

    public ValueTask WriteAsync(ProblemDetailsContext context)
    {
        var http = context.HttpContext;
        ProblemDetailsDefaults.Apply(context.ProblemDetails, http.Response.StatusCode);
        options.Value.CustomizeProblemDetails?.Invoke(context);
        return new ValueTask(http.Response.WriteAsJsonAsync(context.ProblemDetails, context.ProblemDetails.GetType(), json.Value.SerializerOptions, "application/problem+json"));
    }
}

/// <summary>The status, title and type a problem gets when its writer did not set them (what the default writer does).</summary>
static class ProblemDetailsDefaults
{
    public static void Apply(Microsoft.AspNetCore.Mvc.ProblemDetails problem, int status)
    {
        problem.Status ??= status;
        problem.Title ??= ReasonPhrases.GetReasonPhrase(problem.Status.Value);
        problem.Type ??= "https://tools.ietf.org/html/rfc9110";
    }
}

/// <summary>Turns request-binding failures (malformed JSON, bad query values, bodies over the limit) into problem documents.</summary>
sealed partial class BadRequestExceptionHandler(IProblemDetailsService problems) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken ct)
    {
        if (DatabaseUnavailable.Is(exception) && !context.Response.HasStarted)
        {
            // A write (or a read that needs the database) while PostgreSQL is away: nothing was stored, retry later.
            context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            context.Response.Headers.RetryAfter = DatabaseUnavailable.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return await problems.TryWriteAsync(new ProblemDetailsContext
            {
                HttpContext = context,
                Exception = exception,
                ProblemDetails =
                {
                    Status = StatusCodes.Status503ServiceUnavailable,
                    Title = "Database unavailable",
                    // The driver's own message stays in the log: it names hosts and internals a client has no use for.
                    Detail = $"The database cannot be reached. Nothing was stored; retry in {DatabaseUnavailable.RetryAfterSeconds} s.",
                },
            });
        }
        var (status, field, detail) = exception switch
        {
            BadHttpRequestException { InnerException: JsonException json } => (400, Field(json), Describe(json)),
            JsonException json => (400, Field(json), Describe(json)),
            BadHttpRequestException { StatusCode: 413 } => (413, "body", "exceeds the configured body limit."),
            BadHttpRequestException bad => Binding(bad),
            BodyTooLargeException large => (413, "body", large.Message),
            _ => (0, "", ""),
        };
        if (status == 0 || context.Response.HasStarted)
        {
            return false;
        }
        context.Response.StatusCode = status;
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            Exception = exception,
            ProblemDetails = new HttpValidationProblemDetails(new Dictionary<string, string[]> { [field] = [detail] })
            {
                Status = status,
                Title = status == 413 ? "Request body too large" : "Malformed request",
                Detail = $"{(detail.StartsWith("The JSON body", StringComparison.Ordinal) ? "" : field + ": ")}{detail} Nothing was stored.",
            },
        });
    }

    /// <summary>The field a binding failure is about, in words without the framework's parameter types.</summary>
    static (int Status, string Field, string Detail) Binding(BadHttpRequestException bad)
    {
        // The framework's messages name the parameter as `"Type name"`; keep the name, drop the .NET type.
        var match = ParameterName().Match(bad.Message);
        var name = match.Success ? match.Groups["name"].Value : "request";
        var fromBody = bad.Message.Contains("body", StringComparison.OrdinalIgnoreCase);
        var detail = bad.Message switch
        {
            _ when bad.Message.StartsWith("Implicit body inferred", StringComparison.Ordinal) || fromBody && bad.Message.Contains("was not provided", StringComparison.Ordinal)
                => "is required: send a JSON object as the request body.",
            _ when bad.Message.StartsWith("Failed to bind parameter", StringComparison.Ordinal) && bad.Message.LastIndexOf(" from \"", StringComparison.Ordinal) is var at and >= 0
                => $"'{Shorten(bad.Message[(at + 7)..].TrimEnd('.').TrimEnd('"'))}' is not a valid value for this parameter.",
            _ when bad.Message.Contains("was not provided", StringComparison.Ordinal) => "is required.",
            _ => "is not valid.",
        };
        return (bad.StatusCode, fromBody && detail.StartsWith("is required: send", StringComparison.Ordinal) ? "body" : name, detail);
    }

    [System.Text.RegularExpressions.GeneratedRegex("parameter \"(?:[^\"]* )?(?<name>[A-Za-z_][A-Za-z0-9_]*)\"")]
    private static partial System.Text.RegularExpressions.Regex ParameterName();

    /// <summary>`$.samples[3].value` → `samples[3].value`; the whole body is `body`.</summary>
    static string Field(JsonException e)
    {
        var path = (e.Path ?? "$").TrimStart('$').TrimStart('.') + (e is JsonFieldException inner ? inner.RelativePath : "");
        path = path.TrimStart('.');
        return path.Length == 0 ? "body" : path;
    }

    static string Shorten(string s) => s.Length <= 40 ? s : s[..40] + "...";

    static string Describe(JsonException e)
    {
        var message = e.Message.Split(" Path:", 2)[0];
        // The serializer names the .NET type it wanted ("could not be converted to Forecaster.Api...QuotaInput"): say it in JSON words.
        if (message.Contains("could not be converted to", StringComparison.Ordinal))
        {
            message = "the value has the wrong JSON type (see the schema in /swagger)";
        }
        else if (DotNetName().IsMatch(message))
        {
            message = "the value is not valid here";
        }
        var at = "$" + (Field(e) is var f && f != "body" ? (f.StartsWith('[') ? f : "." + f) : "");
        return e is JsonFieldException or { LineNumber: null }
            ? $"The JSON body is malformed at {at}: {message}."
            : $"The JSON body is malformed at {at} (line {e.LineNumber + 1}, position {e.BytePositionInLine + 1}): {message}.";
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"\b(System|Microsoft|Forecaster|Npgsql)\.[A-Za-z]")]
    private static partial System.Text.RegularExpressions.Regex DotNetName();
}

/// <summary>Thrown by <see cref="LimitedStream"/> when a streamed body passes its limit.</summary>
public sealed class BodyTooLargeException(long limit)
    : Exception($"The body exceeds the configured limit of {limit} bytes. Split it into several requests.");

/// <summary>Counts what is read and stops at a limit, for bodies sent without Content-Length.</summary>
public sealed class LimitedStream(Stream inner, long limit) : Stream
{
    long _read;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => _read; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override int Read(byte[] buffer, int offset, int count) => Count(inner.Read(buffer, offset, count));

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        Count(await inner.ReadAsync(buffer, cancellationToken));

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    int Count(int n)
    {
        _read += n;
        return _read > limit ? throw new BodyTooLargeException(limit) : n;
    }
}

/// <summary>Tells a database that cannot be reached (connection refused, reset, shut down, timed out) from a real error.</summary>
public static class DatabaseUnavailable
{
    public const int RetryAfterSeconds = 5;

    public static bool Is(Exception e) => e switch
    {
        // 08: connection exceptions; 57P01-57P03: the server is shutting down or not yet accepting connections.
        Npgsql.PostgresException pg => pg.SqlState.StartsWith("08", StringComparison.Ordinal) || pg.SqlState is "57P01" or "57P02" or "57P03",
        Npgsql.NpgsqlException npgsql => npgsql.IsTransient || npgsql.InnerException is System.Net.Sockets.SocketException or IOException or TimeoutException,
        _ => e.InnerException is not null && Is(e.InnerException),
    };
}
