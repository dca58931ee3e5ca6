using Microsoft.Extensions.Options;
using Npgsql;

namespace Forecaster.Api.Training;

/// <summary>
/// Fails runs that a dead process abandoned (no progress for <see cref="TrainingOptions.StaleRunMinutes"/>), at start and
/// every minute, so a crash never leaves a run "running" forever and the next run can start. The series such a run did not
/// reach keep their active models: activation is per batch and transactional.
/// </summary>
sealed class TrainingWatchdog(NpgsqlDataSource db, IOptions<TrainingOptions> options, TimeProvider clock, ILogger<TrainingWatchdog> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMinutes(1), clock);
        do
        {
            try
            {
                var now = clock.GetUtcNow();
                foreach (var id in await TrainingRuns.FailStaleAsync(db, now - TimeSpan.FromMinutes(options.Value.StaleRunMinutes), now, stoppingToken))
                {
                    logger.LogWarning("Training run {RunId} was abandoned by a stopped process and is marked failed", id);
                }
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException)
            {
                // Before migrations on a fresh database, or while the database is away: try again next minute.
                logger.LogDebug(e, "Training watchdog could not check for abandoned runs");
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }
}
