using Dapper;
using Forecaster.Api.Samples;
using Npgsql;

namespace Forecaster.Api.Database;

/// <summary>Where the database is: FORECASTER_DB / ConnectionStrings:Forecaster, or the embedded cluster.</summary>
/// <param name="Cluster">The embedded cluster when this process started it (and so stops it when the service stops).</param>
public sealed record ResolvedDatabase(string ConnectionString, bool Embedded, EmbeddedPostgres? Cluster);

public static class DatabaseSetup
{
    /// <summary>Resolves the database, starting the embedded cluster when no connection string is configured.</summary>
    public static async Task<ResolvedDatabase> ResolveAsync(IConfiguration configuration, CancellationToken ct = default)
    {
        var configured = configuration["FORECASTER_DB"] is { Length: > 0 } env ? env : configuration.GetConnectionString("Forecaster");
        if (!string.IsNullOrWhiteSpace(configured))
        {
            return new ResolvedDatabase(configured, false, null);
        }
        var cluster = EmbeddedPostgres.For(EmbeddedPostgres.DefaultHome());
        var (connectionString, started) = await cluster.EnsureRunningAsync(ct);
        return new ResolvedDatabase(connectionString, true, started ? cluster : null);
    }

    public static NpgsqlDataSource CreateDataSource(string connectionString)
    {
        var builder = new NpgsqlDataSourceBuilder(connectionString);
        builder.ConnectionStringBuilder.ApplicationName ??= "forecaster";
        return builder.Build();
    }

    /// <summary>Registers the data source and the start-up work (migrations, partitions) of the service.</summary>
    public static WebApplicationBuilder AddForecasterDatabase(this WebApplicationBuilder builder)
    {
        // Resolved on first use, not at registration: a verb that needs no database (simulate, a bad option) builds the
        // container without starting the embedded cluster; the service's start (DatabaseStartup) is the first user.
        var configuration = builder.Configuration;
        builder.Services.AddSingleton(_ => ResolveAsync(configuration).GetAwaiter().GetResult());
        builder.Services.AddSingleton(sp => CreateDataSource(sp.GetRequiredService<ResolvedDatabase>().ConnectionString));
        builder.Services.AddSingleton<SamplePartitions>();
        builder.Services.AddHostedService<DatabaseStartup>();
        return builder;
    }

    /// <summary>Migrations plus the partitions around today: what every entry point needs before it touches data.</summary>
    /// <param name="maxSampleAgeDays">The oldest samples accepted (<see cref="ForecasterOptions.MaxSampleAgeDays"/>): their months get partitions now.</param>
    /// <returns>How many migrations were applied now.</returns>
    public static async Task<int> PrepareAsync(NpgsqlDataSource dataSource, SamplePartitions partitions, TimeProvider clock, ILogger logger, CancellationToken ct,
        int maxSampleAgeDays = 400)
    {
        var applied = await MigrationRunner.ApplyAsync(dataSource, Migration.Embedded, logger, ct);
        // Policies stored before they were validated at the door (or by hand) are checked once, here.
        await Resources.ResourcePolicy.CheckUncheckedAsync(dataSource, ct);
        var now = clock.GetUtcNow().UtcDateTime;
        await partitions.EnsureAsync(now.AddDays(-maxSampleAgeDays), now.AddMonths(3), ct);
        return applied;
    }
}

/// <summary>
/// Applies migrations before the server accepts requests, keeps sample partitions months ahead, and stops an
/// embedded cluster that this service started once the service has stopped.
/// </summary>
sealed class DatabaseStartup(
    NpgsqlDataSource dataSource, SamplePartitions partitions, ResolvedDatabase database, TimeProvider clock,
    Microsoft.Extensions.Options.IOptions<ForecasterOptions> options, IHostApplicationLifetime lifetime, ILogger<DatabaseStartup> logger) : BackgroundService
{
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        if (database.Cluster is { } cluster)
        {
            lifetime.ApplicationStopped.Register(() =>
            {
                logger.LogInformation("Stopping the embedded PostgreSQL cluster in {DataDir}", cluster.DataDir);
                cluster.StopAsync().GetAwaiter().GetResult();
            });
        }
        await DatabaseSetup.PrepareAsync(dataSource, partitions, clock, logger, cancellationToken, options.Value.MaxSampleAgeDays);
        logger.LogInformation("Database ready ({Where})", database.Embedded ? "embedded cluster" : "external server");
        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromHours(6), clock);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                var now = clock.GetUtcNow().UtcDateTime;
                await partitions.EnsureAsync(now, now.AddMonths(3), stoppingToken);
            }
            catch (NpgsqlException e)
            {
                logger.LogWarning(e, "Could not create sample partitions ahead; will retry");
            }
        }
    }
}

/// <summary>Readiness: the database answers and every migration of this executable is applied.</summary>
sealed class DatabaseHealthCheck(NpgsqlDataSource dataSource) : Microsoft.Extensions.Diagnostics.HealthChecks.IHealthCheck
{
    public async Task<Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult> CheckHealthAsync(
        Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckContext context, CancellationToken ct = default)
    {
        try
        {
            await using var conn = await dataSource.OpenConnectionAsync(ct);
            return await MigrationRunner.IsCurrentAsync(conn, Migration.Embedded, ct)
                ? Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult.Healthy("database answers; migrations applied")
                : Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult.Unhealthy("migrations are not applied yet");
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException)
        {
            return new Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult(context.Registration.FailureStatus, $"database unreachable: {e.Message}");
        }
    }
}
