using Forecaster.Api.Jobs;
using Hangfire;
using Microsoft.Extensions.Options;

namespace Forecaster.Api.Sources;

public static class SourcesSetup
{
    /// <summary>
    /// Prometheus as a history source: validated options, one resilient HttpClient per configured server, the pull
    /// round as a Hangfire job on the `pulls` queue, scheduled every minute (only where a server is configured and `Puller` is on).
    /// </summary>
    public static WebApplicationBuilder AddForecasterSources(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<PrometheusOptions>()
            .BindConfiguration(PrometheusOptions.Section)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<PrometheusOptions>, PrometheusOptionsValidator>();
        var options = Read(builder.Configuration);
        PrometheusClient.AddClients(builder.Services, options);
        builder.Services.AddSingleton<SourcePuller>();
        builder.Services.AddTransient<SourcePullJob>();
        if (options.Puller && options.AllServers().Any())
        {
            builder.Services.AddHostedService<SourcePullRegistration>();
        }
        return builder;
    }

    /// <summary>The section as configured (the HttpClients are registered before the container exists).</summary>
    public static PrometheusOptions Read(IConfiguration configuration) =>
        configuration.GetSection(PrometheusOptions.Section).Get<PrometheusOptions>() ?? new PrometheusOptions();
}

/// <summary>
/// Pull rounds as a Hangfire job on the `pulls` queue: every minute (each source is due every PullMinutes; a round claims
/// only those, with leases, so workers of several instances share the work) and at once when a source is created or changed.
/// </summary>
public sealed class SourcePullJob(SourcePuller puller)
{
    public const string RecurringId = "prometheus-pull";

    /// <summary>Rounds until nothing is due. No automatic retry: each source keeps its own backoff and the next minute's run
    /// starts from the watermarks, so a retried round would only pull the same sources twice.</summary>
    [AutomaticRetry(Attempts = 0)]
    public async Task RunAsync(CancellationToken ct)
    {
        PullRoundSummary round;
        do
        {
            round = await puller.PullDueAsync(ct);
        }
        while (round.Claimed > 0 && !ct.IsCancellationRequested);
    }
}

/// <summary>Registers the recurring pull once the service has started (instances with `Puller` off leave it alone).</summary>
sealed class SourcePullRegistration(IRecurringJobManager manager) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        JobsSetup.AddOrUpdatePull<SourcePullJob>(manager, SourcePullJob.RecurringId, j => j.RunAsync(CancellationToken.None), "* * * * *");
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
