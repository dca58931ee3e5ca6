using Microsoft.Extensions.Options;

namespace Forecaster.Api.Sources;

public static class SourcesSetup
{
    /// <summary>
    /// Prometheus as a history source: validated options, one resilient HttpClient per configured server, the pull
    /// round and its scheduler (only where a server is configured and `Puller` is on).
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
        if (options.Puller && options.AllServers().Any())
        {
            builder.Services.AddHostedService<SourcePullService>();
        }
        return builder;
    }

    /// <summary>The section as configured (the HttpClients are registered before the container exists).</summary>
    public static PrometheusOptions Read(IConfiguration configuration) =>
        configuration.GetSection(PrometheusOptions.Section).Get<PrometheusOptions>() ?? new PrometheusOptions();
}

/// <summary>
/// Runs a pull round every 30 seconds (each source is due every PullMinutes; the round claims only those) and at once
/// when a source is created or changed. A round that throws (the database away) is logged and the next one tries again:
/// pulls never hold up training or serving.
/// </summary>
sealed class SourcePullService(SourcePuller puller, TimeProvider clock, ILogger<SourcePullService> log) : BackgroundService
{
    static readonly TimeSpan Tick = TimeSpan.FromSeconds(30);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Tick, clock);
        var tick = timer.WaitForNextTickAsync(stoppingToken).AsTask();
        var wake = puller.WokenAsync(stoppingToken).AsTask();
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                PullRoundSummary round;
                do
                {
                    round = await puller.PullDueAsync(stoppingToken);
                }
                while (round.Claimed > 0 && !stoppingToken.IsCancellationRequested);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                log.LogWarning(e, "Pull round failed; the next one retries");
            }
            try
            {
                var done = await Task.WhenAny(tick, wake);
                await done;
                if (done == tick)
                {
                    tick = timer.WaitForNextTickAsync(stoppingToken).AsTask();
                }
                else
                {
                    wake = puller.WokenAsync(stoppingToken).AsTask();
                }
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}
