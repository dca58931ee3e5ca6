using System.Text.Json;
using Forecaster.Api.Database;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Forecaster.Api.Health;

/// <summary>/health/live (the process answers) and /health/ready (the database answers and is migrated, plans are loaded).</summary>
public static class HealthApi
{
    public static IServiceCollection AddForecasterHealth(this IServiceCollection services)
    {
        // Unreachable is Degraded, not Unhealthy: the plan endpoints go on serving from memory, so the instance must stay
        // behind the load balancer. Migrations not applied stay Unhealthy (the check says so itself).
        services.AddHealthChecks().AddCheck<DatabaseHealthCheck>("database", failureStatus: HealthStatus.Degraded, tags: ["ready"]);
        return services;
    }

    public static IEndpointRouteBuilder MapHealth(this IEndpointRouteBuilder app)
    {
        app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false, ResponseWriter = WriteAsync })
            .WithTags("Health").WithSummary("Liveness: 200 while the process runs");
        app.MapHealthChecks("/health/ready", new HealthCheckOptions
        {
            Predicate = c => c.Tags.Contains("ready"),
            ResponseWriter = WriteAsync,
            // Degraded (database away, plans served stale from memory) is still ready: reads must keep reaching this instance.
            ResultStatusCodes =
            {
                [HealthStatus.Healthy] = StatusCodes.Status200OK,
                [HealthStatus.Degraded] = StatusCodes.Status200OK,
                [HealthStatus.Unhealthy] = StatusCodes.Status503ServiceUnavailable,
            },
        }).WithTags("Health").WithSummary(
            "Readiness: 200 Healthy when the database answers, migrations are applied and plans are loaded; 200 Degraded with the reason while the database is unreachable and plans are served from memory; 503 Unhealthy before the first plan load or with migrations missing");
        return app;
    }

    static Task WriteAsync(HttpContext http, HealthReport report)
    {
        http.Response.ContentType = "application/json";
        return JsonSerializer.SerializeAsync(http.Response.Body, new
        {
            status = report.Status.ToString(),
            checks = report.Entries.ToDictionary(e => e.Key, e => new { status = e.Value.Status.ToString(), description = e.Value.Description }),
        });
    }
}
