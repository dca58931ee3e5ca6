using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;

namespace Forecaster.Api.Security;

/// <summary>
/// `Forecaster:RateLimit`: a token bucket per API key (per client address for anonymous callers) on /api. Plan reads (the
/// serving endpoints executors poll) have buckets of their own, and so do refused keys, so neither a write flood nor an
/// invalid-key flood from behind the same address can starve the executors.
/// </summary>
public sealed class RateLimitOptions
{
    public const string Section = "Forecaster:RateLimit";

    public bool Enabled { get; set; } = true;

    /// <summary>Requests a key may make per period, sustained.</summary>
    [Range(1, 1_000_000)]
    public int PermitsPerPeriod { get; set; } = 2000;

    /// <summary>The burst a key may spend at once.</summary>
    [Range(1, 1_000_000)]
    public int Burst { get; set; } = 4000;

    [Range(1, 3600)]
    public int PeriodSeconds { get; set; } = 1;
}

public static class RateLimiting
{
    /// <summary>The endpoints executors poll (OpenAPI tags): their reads never share a bucket with writes or other reads.</summary>
    static readonly string[] ServingTags = ["Serving", "Executors"];

    /// <summary>The bucket of a request; authentication has run, so a key's requests share one bucket wherever they come from.</summary>
    public static string Partition(HttpContext http)
    {
        var serving = HttpMethods.IsGet(http.Request.Method) && http.GetEndpoint()?.Metadata.GetMetadata<Microsoft.AspNetCore.Http.Metadata.ITagsMetadata>() is { } tags
            && tags.Tags.Any(t => ServingTags.Contains(t));
        var caller = http.User.Identity is { IsAuthenticated: true, Name: { } key } ? "key:" + key
            : http.Items.ContainsKey(ApiKeyHandler.InvalidKey) ? "invalid-key:" + http.Connection.RemoteIpAddress
            : "addr:" + http.Connection.RemoteIpAddress;
        return serving ? "serving:" + caller : caller;
    }

    public static IServiceCollection AddForecasterRateLimits(this IServiceCollection services)
    {
        services.AddOptions<RateLimitOptions>().BindConfiguration(RateLimitOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddRateLimiter(o =>
        {
            o.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(http =>
            {
                var options = http.RequestServices.GetRequiredService<IOptions<RateLimitOptions>>().Value;
                if (!options.Enabled || !http.Request.Path.StartsWithSegments("/api"))
                {
                    return RateLimitPartition.GetNoLimiter("unlimited");
                }
                var partition = Partition(http);
                return RateLimitPartition.GetTokenBucketLimiter(partition, _ => new TokenBucketRateLimiterOptions
                {
                    TokenLimit = options.Burst,
                    TokensPerPeriod = options.PermitsPerPeriod,
                    ReplenishmentPeriod = TimeSpan.FromSeconds(options.PeriodSeconds),
                    QueueLimit = 0,
                    AutoReplenishment = true,
                });
            });
            o.OnRejected = async (context, ct) =>
            {
                var http = context.HttpContext;
                var retryAfter = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var wait)
                    ? Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds))
                    : http.RequestServices.GetRequiredService<IOptions<RateLimitOptions>>().Value.PeriodSeconds;
                http.Response.StatusCode = StatusCodes.Status429TooManyRequests;
                http.Response.Headers.RetryAfter = retryAfter.ToString(CultureInfo.InvariantCulture);
                await http.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
                {
                    HttpContext = http,
                    ProblemDetails =
                    {
                        Status = StatusCodes.Status429TooManyRequests,
                        Title = "Too many requests",
                        Detail = $"This client has used its request budget; retry in {retryAfter} s.",
                    },
                });
            };
        });
        return services;
    }
}
