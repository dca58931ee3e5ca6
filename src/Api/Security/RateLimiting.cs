using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;

namespace Forecaster.Api.Security;

/// <summary>`Forecaster:RateLimit`: a token bucket per API key (per client address for anonymous reads) on /api.</summary>
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
                // Authentication has run: a key's requests share one bucket wherever they come from.
                var partition = http.User.Identity is { IsAuthenticated: true, Name: { } key } ? key : "addr:" + http.Connection.RemoteIpAddress;
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
