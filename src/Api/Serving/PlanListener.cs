using Forecaster.Api.Database;
using Forecaster.Api.Errors;
using Forecaster.Api.Plans;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Forecaster.Api.Serving;

/// <summary>
/// Keeps <see cref="PlanCache"/> current: loads everything at start, then LISTENs on <c>plans</c> (published plans) and
/// <c>resources</c> (created, changed, deleted) on a connection of its own and reloads the named resources, coalescing a
/// fleet run's notifications into batches. A periodic sync catches anything a notification missed, and the fallback
/// history is refreshed every few minutes. When the database goes away, the cache is marked stale and the connection is
/// retried with backoff until it returns; the first sync after reconnecting catches up on everything missed meanwhile.
/// </summary>
sealed class PlanListener(PlanCache cache, ResolvedDatabase database, TimeProvider clock, ILogger<PlanListener> logger) : BackgroundService
{
    /// <summary>Most names reloaded in one go; a fleet run's stream of notifications is taken in slices of this.</summary>
    const int MaxCoalesced = 10_000;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = cache.Options;
        var retry = TimeSpan.FromMilliseconds(500);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await ListenAsync(o, () => retry = TimeSpan.FromMilliseconds(500), stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // Whatever went wrong, the loop must go on: the service keeps serving what it has and tries again.
                if (e is NpgsqlException or TimeoutException || DatabaseUnavailable.Is(e))
                {
                    cache.MarkUnreachable(e);
                    logger.LogDebug(e, "Plan listener lost the database; retrying in {Retry}", retry);
                }
                else
                {
                    logger.LogError(e, "Plan cache refresh failed; retrying in {Retry}", retry);
                }
                try
                {
                    await Task.Delay(retry, clock, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                retry = TimeSpan.FromTicks(Math.Min(retry.Ticks * 2, TimeSpan.FromSeconds(o.MaxRetrySeconds).Ticks));
            }
        }
    }

    async Task ListenAsync(ServingOptions o, Action connected, CancellationToken ct)
    {
        // Not pooled: LISTEN belongs to this session, and a pooled connection would be reset when returned.
        var builder = new NpgsqlConnectionStringBuilder(database.ConnectionString) { Pooling = false, KeepAlive = 10, ApplicationName = "forecaster-plan-listener" };
        await using var conn = new NpgsqlConnection(builder.ConnectionString);
        var pending = new HashSet<string>(StringComparer.Ordinal);
        conn.Notification += (_, e) =>
        {
            lock (pending)
            {
                pending.Add(e.Payload);
            }
        };
        await conn.OpenAsync(ct);
        await using (var listen = new NpgsqlCommand($"LISTEN {PlanningPipeline.Channel}; LISTEN {Channels.Resources}", conn))
        {
            await listen.ExecuteNonQueryAsync(ct);
        }
        // Listening first, then syncing: whatever is published in between is in the sync or in a notification.
        await cache.SyncAsync(ct);
        connected();
        logger.LogInformation("Plan cache loaded: {Count} resources; listening for published plans", cache.Count);
        var lastSync = clock.GetTimestamp();
        var lastHistory = lastSync;
        while (true)
        {
            await conn.WaitAsync(TimeSpan.FromSeconds(1), ct);
            if (Count(pending) > 0)
            {
                // A fleet run notifies once per resource: gather until a quiet moment (or a full slice), then reload together.
                var started = clock.GetTimestamp();
                while (Count(pending) < MaxCoalesced && clock.GetElapsedTime(started) < TimeSpan.FromSeconds(1)
                       && await conn.WaitAsync(TimeSpan.FromMilliseconds(o.CoalesceMilliseconds), ct))
                {
                }
                string[] names;
                lock (pending)
                {
                    names = [.. pending];
                    pending.Clear();
                }
                await cache.ReloadAsync(names, ct);
            }
            if (clock.GetElapsedTime(lastSync) >= TimeSpan.FromSeconds(o.SyncSeconds))
            {
                await cache.SyncAsync(ct);
                lastSync = clock.GetTimestamp();
            }
            if (clock.GetElapsedTime(lastHistory) >= TimeSpan.FromMinutes(o.HistoryRefreshMinutes))
            {
                await cache.RefreshHistoryAsync(ct);
                lastHistory = clock.GetTimestamp();
            }
        }
    }

    static int Count(HashSet<string> pending)
    {
        lock (pending)
        {
            return pending.Count;
        }
    }
}

/// <summary>LISTEN/NOTIFY channels besides <see cref="PlanningPipeline.Channel"/>.</summary>
public static class Channels
{
    /// <summary>A resource was created, changed or deleted; the payload is its name.</summary>
    public const string Resources = "resources";
}
