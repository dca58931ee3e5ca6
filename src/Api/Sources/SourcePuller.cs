using System.Diagnostics;
using Dapper;
using Hangfire;
using Forecaster.Api.Observability;
using Forecaster.Api.Samples;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Forecaster.Api.Sources;

/// <summary>What one round did.</summary>
public sealed record PullRoundSummary(int Claimed, int Succeeded, int Failed, long Points);

/// <summary>
/// One pull round: claim the due sources (a lease taken with FOR UPDATE SKIP LOCKED, so no two instances pull the same
/// series at once), read each from its watermark (or the whole backfill window when it has none) through query_range,
/// write the points through the same all-or-nothing upsert as pushed samples, and record the outcome per source.
/// A failing source only records its error and backs off; the others go on.
/// </summary>
public sealed class SourcePuller(NpgsqlDataSource db, SamplePartitions partitions, PrometheusClient prometheus,
    IOptions<PrometheusOptions> options, IOptions<ForecasterOptions> service, IBackgroundJobClient jobs, TimeProvider clock, ILogger<SourcePuller> log)
{
    readonly string _instance = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid().ToString("N")[..8]}";
    /// <summary>A round now, on the `pulls` queue (a source was created or changed), where this instance schedules pulls;
    /// a failure to enqueue leaves the source to the next minute's run.</summary>
    public void Wake()
    {
        if (!options.Value.Puller || !options.Value.AllServers().Any())
        {
            return;
        }
        try
        {
            jobs.Enqueue<SourcePullJob>(Jobs.JobQueues.Pulls, j => j.RunAsync(CancellationToken.None));
        }
        catch (BackgroundJobClientException e)
        {
            log.LogWarning(e, "Could not enqueue a pull round; the next scheduled one pulls the new sources");
        }
    }

    long _queryTicks, _writeTicks;
    DateTimeOffset _reconciledAt = DateTimeOffset.MinValue;

    sealed record Claim(int ResourceId, string Name, string Metric, string Query, string Server, DateTime? Watermark);

    /// <summary>Claims up to BatchSources due sources and pulls them; returns what happened.</summary>
    public async Task<PullRoundSummary> PullDueAsync(CancellationToken ct)
    {
        var o = options.Value;
        var now = clock.GetUtcNow();
        List<Claim> claims;
        await using (var conn = await db.OpenConnectionAsync(ct))
        {
            // Resources created by a CSV import into a group with sources join here, once per pull interval (every PUT
            // reconciles its own resource or group at once).
            if (now - _reconciledAt >= TimeSpan.FromMinutes(o.PullMinutes) || now < _reconciledAt)
            {
                await SourceDefinitions.ReconcileAsync(conn, null, null, null, now, ct);
                _reconciledAt = now;
            }
            const string claim = """
                UPDATE source_pulls p SET leased_until = @leaseUntil, leased_by = @instance
                FROM (SELECT resource_id, metric FROM source_pulls
                      WHERE due_at <= @now AND (leased_until IS NULL OR leased_until < @now)
                      ORDER BY due_at LIMIT @batch FOR UPDATE SKIP LOCKED) c, resources r
                WHERE p.resource_id = c.resource_id AND p.metric = c.metric AND r.id = p.resource_id
                RETURNING p.resource_id AS ResourceId, r.name AS Name, p.metric AS Metric, p.query AS Query, p.server AS Server, p.watermark AS Watermark
                """;
            claims = [.. await conn.QueryAsync<Claim>(new CommandDefinition(claim, new
            {
                now,
                leaseUntil = now + TimeSpan.FromMinutes(Math.Max(10, 2 * o.PullMinutes)),
                instance = _instance,
                batch = o.BatchSources,
            }, cancellationToken: ct))];
        }
        if (claims.Count == 0)
        {
            await RecordLagAsync(now, ct);
            return new PullRoundSummary(0, 0, 0, 0);
        }
        var roundStarted = Stopwatch.GetTimestamp();
        int succeeded = 0, failed = 0;
        long points = 0;
        _queryTicks = 0;
        _writeTicks = 0;
        // Twice the servers' request slots: while some sources are being written to PostgreSQL, others keep every slot
        // busy (the per-server gates in PrometheusClient still bound what each server sees).
        var parallel = Math.Clamp(2 * o.AllServers().Sum(s => s.Server.MaxConcurrency), 1, 64);
        await Parallel.ForEachAsync(claims, new ParallelOptions { MaxDegreeOfParallelism = parallel, CancellationToken = ct }, async (c, token) =>
        {
            var (ok, n) = await PullAsync(c, now, token);
            Interlocked.Add(ref points, n);
            Interlocked.Increment(ref ok ? ref succeeded : ref failed);
        });
        await RecordLagAsync(now, ct);
        log.LogInformation("Pulled {Claimed} sources in {Seconds:F2}s: {Succeeded} succeeded, {Failed} failed, {Points} points stored (summed over workers: {QuerySeconds:F1}s querying, {WriteSeconds:F1}s writing)",
            claims.Count, Stopwatch.GetElapsedTime(roundStarted).TotalSeconds, succeeded, failed, points,
            TimeSpan.FromTicks(Interlocked.Read(ref _queryTicks)).TotalSeconds, TimeSpan.FromTicks(Interlocked.Read(ref _writeTicks)).TotalSeconds);
        return new PullRoundSummary(claims.Count, succeeded, failed, points);
    }

    async Task<(bool Ok, long Points)> PullAsync(Claim c, DateTimeOffset now, CancellationToken ct)
    {
        var o = options.Value;
        var step = TimeSpan.FromSeconds(o.StepSeconds);
        var to = Floor(now.UtcDateTime, step);
        var backfill = c.Watermark is null;
        var from = backfill ? Floor(to - TimeSpan.FromDays(o.BackfillDays), step) : Floor(c.Watermark!.Value - TimeSpan.FromMinutes(o.OverlapMinutes), step);
        var started = Stopwatch.GetTimestamp();
        string? error;
        long stored = 0;
        try
        {
            var series = await prometheus.QueryRangeAsync(c.Server, c.Query, from, to, step, ct);
            Interlocked.Add(ref _queryTicks, Stopwatch.GetElapsedTime(started).Ticks);
            error = series.Count switch
            {
                > 1 => $"the query returned {series.Count} series ({Describe(series)}); a source must return exactly one: aggregate it, e.g. sum(...)",
                0 when backfill => $"the query returned no series over the last {o.BackfillDays} days",
                _ => null,
            };
            if (error is null && series.Count == 1)
            {
                var writing = Stopwatch.GetTimestamp();
                stored = await WriteAsync(c, series[0], now, ct);
                Interlocked.Add(ref _writeTicks, Stopwatch.GetElapsedTime(writing).Ticks);
                if (stored < 0)
                {
                    return (false, 0);
                }
            }
        }
        catch (Exception e) when (e is HttpRequestException or PrometheusQueryException or TimeoutException or Polly.Timeout.TimeoutRejectedException
            or Polly.CircuitBreaker.BrokenCircuitException or System.Text.Json.JsonException || e is TaskCanceledException && !ct.IsCancellationRequested)
        {
            error = $"{(backfill ? "backfill" : "pull")} from {PrometheusOptions.Display(c.Server)} failed: {Message(e)}";
        }
        var outcome = error is null ? (backfill ? "backfilled" : "pulled") : "failed";
        ForecasterMetrics.SourcePulls.WithLabels(outcome).Inc();
        ForecasterMetrics.SourcePullSeconds.WithLabels(backfill ? "backfill" : "pull").Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
        await using var conn = await db.OpenConnectionAsync(ct);
        if (error is null)
        {
            // Guarded by the query: a definition changed meanwhile has reset the watermark for its own backfill.
            const string success = """
                UPDATE source_pulls
                SET watermark = @to, last_success_at = @now, last_error = NULL, last_error_at = NULL, failures = 0,
                    due_at = @due, leased_until = NULL, leased_by = NULL
                WHERE resource_id = @ResourceId AND metric = @Metric AND query = @Query AND server = @Server
                """;
            await conn.ExecuteAsync(new CommandDefinition(success, new { c.ResourceId, c.Metric, c.Query, c.Server, to, now, due = now + TimeSpan.FromMinutes(o.PullMinutes) }, cancellationToken: ct));
            return (true, stored);
        }
        log.LogWarning("Source {Metric} of {Resource}: {Error}", c.Metric, c.Name, error);
        // Backs off per source (the HTTP pipeline already retried with jitter): one interval, two, four..., at most an hour.
        const string failure = """
            UPDATE source_pulls
            SET last_error = @error, last_error_at = @now, failures = failures + 1,
                due_at = @now + least(make_interval(mins => @pull) * power(2, least(failures, 10)), interval '1 hour'),
                leased_until = NULL, leased_by = NULL
            WHERE resource_id = @ResourceId AND metric = @Metric AND query = @Query AND server = @Server
            """;
        await conn.ExecuteAsync(new CommandDefinition(failure, new { c.ResourceId, c.Metric, c.Query, c.Server, error, now, pull = o.PullMinutes }, cancellationToken: ct));
        return (false, 0);
    }

    /// <summary>Writes one series' points as pushed samples are written (all-or-nothing upsert); -1 when the resource was deleted meanwhile.</summary>
    async Task<long> WriteAsync(Claim c, PromSeries series, DateTimeOffset now, CancellationToken ct)
    {
        if (series.Points.Count == 0)
        {
            return 0;
        }
        await using var import = await SampleImport.BeginAsync(db, partitions, createResources: false, now, ct);
        var key = await import.AddKeyAsync(c.Name, c.Metric, 0, ct);
        long rows = 0;
        foreach (var (ts, value) in series.Points)
        {
            // The rules pushed samples pass; a value they refuse (negative, beyond the accepted range) is a gap, like NaN.
            if (SampleRules.CheckValue(value, service.Value.MaxSampleValue) is null)
            {
                await import.AddAsync(key, ts, value, ct);
                rows++;
            }
        }
        var (summary, _) = await import.CompleteAsync(ct);
        if (summary is null)
        {
            return -1;
        }
        ForecasterMetrics.SamplesIngested.WithLabels("prometheus").Inc(rows);
        return rows;
    }

    async Task RecordLagAsync(DateTimeOffset now, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        var oldest = await conn.ExecuteScalarAsync<DateTime?>(new CommandDefinition("SELECT min(watermark) FROM source_pulls", cancellationToken: ct));
        ForecasterMetrics.SourcePullLag.Set(oldest is { } w ? Math.Max(0, (now.UtcDateTime - DateTime.SpecifyKind(w, DateTimeKind.Utc)).TotalSeconds) : 0);
    }

    internal static DateTime Floor(DateTime t, TimeSpan step) => new(t.Ticks - t.Ticks % step.Ticks, DateTimeKind.Utc);

    internal static string Describe(List<PromSeries> series) =>
        string.Join(", ", series.Take(3).Select(s => s.Describe())) + (series.Count > 3 ? $", and {series.Count - 3} more" : "");

    internal static string Message(Exception e) => e switch
    {
        Polly.CircuitBreaker.BrokenCircuitException => "the circuit to this server is open after repeated failures; retrying later",
        Polly.Timeout.TimeoutRejectedException or TaskCanceledException => "timed out",
        _ => e.GetBaseException().Message,
    };
}
