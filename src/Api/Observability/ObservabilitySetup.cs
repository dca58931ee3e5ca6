using Forecaster.Api.Serving;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Prometheus;

namespace Forecaster.Api.Observability;

public static class ObservabilitySetup
{
    /// <summary>
    /// OpenTelemetry traces and metrics (ASP.NET Core, Npgsql, HttpClient), exported over OTLP only when
    /// OTEL_EXPORTER_OTLP_ENDPOINT is set; /metrics itself is prometheus-net's (see the README for why).
    /// </summary>
    public static WebApplicationBuilder AddForecasterObservability(this WebApplicationBuilder builder)
    {
        if (!string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]))
        {
            builder.Services.AddOpenTelemetry()
                .ConfigureResource(r => r.AddService(builder.Configuration["OTEL_SERVICE_NAME"] ?? "forecaster"))
                .WithTracing(t => t.AddAspNetCoreInstrumentation().AddSource("Npgsql", "System.Net.Http").AddOtlpExporter())
                .WithMetrics(m => m.AddAspNetCoreInstrumentation().AddMeter("Npgsql", "System.Net.Http").AddOtlpExporter());
        }
        return builder;
    }

    /// <summary>HTTP rate and latency per route, and GET /metrics in the Prometheus text format.</summary>
    public static WebApplication UseForecasterMetrics(this WebApplication app)
    {
        var cache = app.Services.GetRequiredService<PlanCache>();
        var clock = app.Services.GetRequiredService<TimeProvider>();
        // Read at scrape time from the cache itself, so the gauges cannot drift from what serving holds.
        Metrics.DefaultRegistry.AddBeforeCollectCallback(() =>
        {
            ForecasterMetrics.PlanCacheResources.Set(cache.Count);
            ForecasterMetrics.DatabaseUnreachableSeconds.Set(cache.Outage is { } o ? Math.Max(0, (clock.GetUtcNow() - o.Since).TotalSeconds) : 0);
        });
        app.UseHttpMetrics();
        app.MapMetrics().WithTags("Metrics").WithSummary("Forecaster's own metrics in the Prometheus text format");
        return app;
    }
}
