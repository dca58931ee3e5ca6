using System.Text.Json;
using Forecaster.Api.Samples;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http.HttpResults;

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
        });
        services.AddExceptionHandler<BadRequestExceptionHandler>();
        // Minimal APIs throw instead of answering a bare 400, so the handler below can say what was wrong.
        services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        return services;
    }

    public static WebApplication UseForecasterProblems(this WebApplication app)
    {
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        return app;
    }

    /// <summary>A 400 validation problem listing each bad row's field (`samples[3].value`, `line 17: value`).</summary>
    public static ValidationProblem Invalid(string title, IReadOnlyList<SampleError> errors, Func<SampleError, string> field)
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

/// <summary>Turns request-binding failures (malformed JSON, bad query values, bodies over the limit) into problem documents.</summary>
sealed class BadRequestExceptionHandler(IProblemDetailsService problems) : IExceptionHandler
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
                    Detail = $"The database cannot be reached ({exception.GetBaseException().Message}). Nothing was stored; retry in {DatabaseUnavailable.RetryAfterSeconds} s.",
                },
            });
        }
        var (status, detail) = exception switch
        {
            BadHttpRequestException { InnerException: JsonException json } => (400, Describe(json)),
            JsonException json => (400, Describe(json)),
            BadHttpRequestException bad => (bad.StatusCode, bad.Message),
            BodyTooLargeException large => (413, large.Message),
            _ => (0, ""),
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
            ProblemDetails =
            {
                Status = status,
                Title = status == 413 ? "Request body too large" : "Malformed request",
                Detail = detail + " Nothing was stored.",
            },
        });
    }

    static string Describe(JsonException e) =>
        $"The JSON body is malformed at {e.Path ?? "$"} (line {e.LineNumber + 1}, position {e.BytePositionInLine + 1}): " +
        (e.Message.Split(" Path:", 2)[0]);
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
