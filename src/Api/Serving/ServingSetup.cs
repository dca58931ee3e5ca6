using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Forecaster.Api.Serving;

public static class ServingSetup
{
    /// <summary>The in-memory plan cache, the listener that keeps it current, and its readiness check.</summary>
    public static WebApplicationBuilder AddForecasterServing(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<ServingOptions>()
            .BindConfiguration(ServingOptions.Section)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        builder.Services.AddSingleton<PlanCache>();
        builder.Services.AddHostedService<PlanListener>();
        builder.Services.AddHealthChecks().AddCheck<PlanCacheHealthCheck>("plans", tags: ["ready"]);
        return builder;
    }
}

/// <summary>
/// Readiness of the plan endpoints: unhealthy until the first load (nothing to serve yet), degraded while the database is
/// unreachable (plans are served from memory, stale), healthy otherwise.
/// </summary>
sealed class PlanCacheHealthCheck(PlanCache cache) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (!cache.Loaded)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy(cache.Outage is { } o ? $"plans not loaded yet: database unreachable: {o.Reason}" : "plans not loaded yet"));
        }
        var (plans, history) = cache.Counts();
        var held = $"{cache.Count} resources, {plans} plans, {history} with fallback history in memory";
        return Task.FromResult(cache.Outage is { } outage
            ? HealthCheckResult.Degraded($"serving stale plans from memory since {outage.Since:yyyy-MM-ddTHH:mm:ssZ} (database unreachable: {outage.Reason}); {held}")
            : HealthCheckResult.Healthy($"{held}; synced {cache.SyncedAt:yyyy-MM-ddTHH:mm:ssZ}"));
    }
}
