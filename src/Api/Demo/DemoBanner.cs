using Forecaster.Api.Security;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Forecaster.Api.Demo;

/// <summary>
/// What a `serve --demo` user needs, printed before the first log line: where the dashboard, Swagger UI (and the jobs
/// dashboard, where one is mapped) are, and the API key.
/// </summary>
public static class DemoBanner
{
    /// <summary>Prints the banner when the demo is on; call right after the host is built, before anything can log.</summary>
    public static WebApplication PrintDemoBanner(this WebApplication app)
    {
        if (!app.Configuration.GetValue<bool>($"{ForecasterOptions.Section}:Demo"))
        {
            return app;
        }
        var url = BaseUrl(app.Configuration["urls"] ?? app.Configuration["ASPNETCORE_URLS"]);
        var key = app.Services.GetRequiredService<ApiKeyRing>().GeneratedKey;
        // Hangfire's dashboard (UseJobsDashboard) is always on, whatever else is mapped.
        Console.Out.Write(Text(url, jobs: true, key, DemoKey.PathIn(app.Configuration)));
        Console.Out.Flush();
        return app;
    }

    /// <summary>The banner's text (a pure function, so its test needs no console).</summary>
    public static string Text(string url, bool jobs, string? key, string keyFile)
    {
        var lines = new List<string>
        {
            "",
            "Forecaster demo",
            $"  Dashboard   {url}/",
            $"  Swagger UI  {url}/swagger",
        };
        if (jobs)
        {
            lines.Add($"  Jobs        {url}/jobs");
        }
        lines.Add(key is null
            ? "  API key     the configured ones (FORECASTER_API_KEYS or Forecaster:ApiKeys)"
            : $"  API key     {key}   (send as X-Api-Key; kept in {keyFile} until --new-key)");
        lines.Add($"  Ready when  {url}/health/ready answers 200 (after the demo fleet is seeded)");
        lines.Add("");
        return string.Join(Environment.NewLine, lines) + Environment.NewLine;
    }

    /// <summary>The first listening address, with a wildcard host shown as 127.0.0.1 (the address a browser on this machine opens).</summary>
    public static string BaseUrl(string? urls)
    {
        var first = (urls ?? "http://127.0.0.1:8080").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .FirstOrDefault() ?? "http://127.0.0.1:8080";
        return first.Replace("://*", "://127.0.0.1", StringComparison.Ordinal).Replace("://+", "://127.0.0.1", StringComparison.Ordinal)
            .Replace("://0.0.0.0", "://127.0.0.1", StringComparison.Ordinal).TrimEnd('/');
    }
}

/// <summary>Whether the demo fleet is in place: readiness stays 503 until it is, so "ready" means there is something to see.</summary>
public sealed class DemoState
{
    readonly TaskCompletionSource _seeded = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public bool Seeded => _seeded.Task.IsCompleted;

    public void MarkSeeded() => _seeded.TrySetResult();
}

sealed class DemoHealthCheck(DemoState state) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken ct = default) =>
        Task.FromResult(state.Seeded
            ? HealthCheckResult.Healthy("demo fleet in place")
            : HealthCheckResult.Unhealthy("seeding the demo fleet"));
}
