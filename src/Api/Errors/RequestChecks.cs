using System.Collections.Concurrent;
using System.Reflection;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace Forecaster.Api.Errors;

/// <summary>Marks an endpoint that streams a body under its own, larger limit (the bulk CSV import).</summary>
public sealed record OwnBodyLimit;

/// <summary>
/// Checks every request before its endpoint runs, the same way for every endpoint: path segments, query names and values,
/// and header values are valid UTF-8 text without control characters (a 400 naming the parameter); a body declares UTF-8
/// if it declares a charset at all (415); and no body is larger than `Forecaster:MaxJsonBodyBytes` (413), instead of
/// the server's 30 MB default.
/// </summary>
public static class RequestChecks
{
    public static WebApplication UseRequestChecks(this WebApplication app)
    {
        app.Use(async (context, next) =>
        {
            if (Find(context) is { } bad)
            {
                await WriteAsync(context, bad.Status, bad.Field, bad.Message);
                return;
            }
            NormalizeTimestamps(context);
            if (context.GetEndpoint()?.Metadata.GetMetadata<OwnBodyLimit>() is null)
            {
                var limit = context.RequestServices.GetRequiredService<IOptions<ForecasterOptions>>().Value.MaxJsonBodyBytes;
                if (context.Request.ContentLength > limit)
                {
                    await WriteAsync(context, StatusCodes.Status413PayloadTooLarge, "body",
                        $"exceeds the configured limit of {limit} bytes (Forecaster:MaxJsonBodyBytes). Nothing was stored");
                    return;
                }
                if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } feature)
                {
                    feature.MaxRequestBodySize = limit;
                }
                else if (context.Request.ContentLength is null)
                {
                    context.Request.Body = new LimitedStream(context.Request.Body, limit);
                }
            }
            await next(context);
        });
        return app;
    }

    static (int Status, string Field, string Message)? Find(HttpContext context)
    {
        var request = context.Request;
        // Path: the raw target, so invalid UTF-8 the server left percent-encoded is seen too.
        var raw = context.Features.Get<IHttpRequestFeature>()?.RawTarget is { Length: > 0 } target && target[0] == '/' ? target : request.Path.Value ?? "";
        var pathPart = raw.AsSpan();
        if (pathPart.IndexOf('?') is var q and >= 0)
        {
            pathPart = pathPart[..q];
        }
        foreach (var range in pathPart.Split('/'))
        {
            // Printable ASCII without a percent escape decodes to itself and is clean text: nothing to decode (the common case).
            var segment = pathPart[range];
            if (segment.ContainsAnyExcept(PlainUrlText) && TextRules.DecodeUrlComponent(segment, out var error) is null)
            {
                return (400, PathField(context, segment.ToString()), error!);
            }
        }
        foreach (var (name, value) in request.RouteValues)
        {
            if (value is string s && TextRules.Check(s) is { } error)
            {
                return (400, name, error);
            }
        }
        // Query: names and values, decoded strictly from the raw string (the framework's decoder hides bad bytes).
        var query = request.QueryString.Value ?? "";
        foreach (var pair in query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = pair.IndexOf('=');
            var rawName = eq < 0 ? pair : pair[..eq];
            if (TextRules.DecodeUrlComponent(rawName, out var nameError) is not { } name)
            {
                return (400, "query", $"has a parameter name that {nameError}");
            }
            if (eq >= 0 && TextRules.DecodeUrlComponent(pair.AsSpan(eq + 1), out var valueError) is null)
            {
                return (400, name, valueError!);
            }
        }
        foreach (var (name, values) in request.Headers)
        {
            foreach (var value in values)
            {
                // A header value may hold a horizontal tab (RFC 9110 field-value), nothing else below 0x20.
                if (value is not null && TextRules.Check(value.Replace('\t', ' ')) is { } error)
                {
                    return (400, name, error);
                }
            }
        }
        // One timestamp rule: a query parameter the handler takes as a DateTimeOffset or DateTime passes UtcTimestamp (explicit
        // offset required), instead of the framework's parser, which reads a time without offset as the server's local time.
        foreach (var name in request.QueryString.HasValue ? TimestampParameters(context.GetEndpoint()) : [])
        {
            foreach (var value in request.Query[name])
            {
                if (value is not null && !UtcTimestamp.TryParse(value, out _, out var error))
                {
                    return (400, name, error!);
                }
            }
        }
        if (request.ContentType is { } contentType)
        {
            if (!MediaTypeHeaderValue.TryParse(contentType, out var media))
            {
                return (415, "Content-Type", $"'{contentType}' is not a media type");
            }
            if (media.Charset.HasValue && !media.Charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase)
                && !media.Charset.Equals("utf8", StringComparison.OrdinalIgnoreCase) && !media.Charset.Equals("us-ascii", StringComparison.OrdinalIgnoreCase))
            {
                return (415, "Content-Type", $"declares charset '{media.Charset}'; send the body as UTF-8");
            }
        }
        return null;
    }

    /// <summary>Rewrites checked timestamp parameters in UTC, so a handler never sees (nor sends PostgreSQL) another offset.</summary>
    static void NormalizeTimestamps(HttpContext context)
    {
        var names = TimestampParameters(context.GetEndpoint());
        if (names.Length == 0 || !AnyPresent(context.Request, names))
        {
            return;
        }
        context.Request.QueryString = QueryString.Create(context.Request.Query.Select(q => !names.Contains(q.Key) ? q
            : new KeyValuePair<string, Microsoft.Extensions.Primitives.StringValues>(q.Key, new([.. q.Value.Select(v =>
                UtcTimestamp.TryParse(v, out var utc, out _) ? utc.ToString("yyyy-MM-ddTHH:mm:ss.fffffffZ", System.Globalization.CultureInfo.InvariantCulture) : v)]))));
    }

    static bool AnyPresent(HttpRequest request, string[] names)
    {
        if (!request.QueryString.HasValue)
        {
            return false;
        }
        foreach (var name in names)
        {
            if (request.Query.ContainsKey(name))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Printable ASCII except '%': a URL component made only of these is its own decoding.</summary>
    static readonly System.Buffers.SearchValues<char> PlainUrlText =
        System.Buffers.SearchValues.Create(" !\"#$&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~");

    static readonly ConcurrentDictionary<Endpoint, string[]> Timestamps = new();

    static string[] TimestampParameters(Endpoint? endpoint) =>
        endpoint?.Metadata.GetMetadata<MethodInfo>() is not { } method ? []
        : Timestamps.GetOrAdd(endpoint, _ => [.. method.GetParameters()
            .Where(p => (Nullable.GetUnderlyingType(p.ParameterType) ?? p.ParameterType) is var t && (t == typeof(DateTimeOffset) || t == typeof(DateTime)))
            .Select(p => p.Name!)]);

    static string PathField(HttpContext context, string rawSegment)
    {
        var decoded = Uri.UnescapeDataString(rawSegment);
        return context.Request.RouteValues.FirstOrDefault(r => r.Value is string s && (s == decoded || s == rawSegment)).Key ?? "path";
    }

    static async Task WriteAsync(HttpContext context, int status, string field, string message)
    {
        context.Response.StatusCode = status;
        await context.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            ProblemDetails = new HttpValidationProblemDetails(new Dictionary<string, string[]> { [field] = [message] })
            {
                Status = status,
                Title = status switch { 413 => "Request body too large", 415 => "Unsupported media type", _ => "Invalid text" },
                Detail = $"{field} {message}.",
            },
        });
    }
}
