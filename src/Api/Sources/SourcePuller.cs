using System.Diagnostics;
using System.Threading.Channels;
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
/// write the points through the samples' bulk upsert, and record the outcome per source.
/// Queries and writes overlap: workers query while a writer stores what earlier queries returned, many series per
/// transaction, each series' watermark in the same transaction as its points. A failing source only records its error
/// and backs off; the others go on, and a batch that cannot be stored is stored again series by series.
/// </summary>
public sealed class SourcePuller(NpgsqlDataSource db, SamplePartitions partitions, PrometheusClient prometheus,
    IOptions<PrometheusOptions> options, IOptions<ForecasterOptions> service, IBackgroundJobClient jobs, TimeProvider clock, ILogger<SourcePuller> log)
{
    /// <summary>At most this many series, and about <see cref="BatchRows"/> points, are stored in one transaction: enough to
    /// make a transaction's fixed cost small, little enough that the queries never wait long for the writer.</summary>
    const int BatchSeries = 64;

    const int BatchRows = 200_000;

    /// <summary>Transactions storing at once. PostgreSQL runs each COPY and merge on one core of its own; two keep two
    /// backends busy (and one can commit while the other copies) without crowding a database that also serves and trains.</summary>
    const int Writers = 2;

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

    /// <summary>What the query of one source returned: its points (values the rules refuse already left out), or the error.</summary>
    sealed record Pulled(Claim Claim, bool Backfill, DateTime To, List<(DateTime Ts, double Value)> Points, string? Error, long Started);

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
        // Twice the servers' request slots: while some workers parse an answer, the others keep every slot busy (the
        // per-server gates in PrometheusClient bound what each server sees). Answers wait in a bounded queue for the writer.
        var parallel = Math.Clamp(2 * o.AllServers().Sum(s => s.Server.MaxConcurrency), 1, 64);
        var pulled = Channel.CreateBounded<Pulled>(new BoundedChannelOptions(parallel) { SingleReader = false, SingleWriter = false });
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var querying = Task.Run(async () =>
        {
            try
            {
                await Parallel.ForEachAsync(claims, new ParallelOptions { MaxDegreeOfParallelism = parallel, CancellationToken = stop.Token },
                    async (c, token) => await pulled.Writer.WriteAsync(await QueryAsync(c, now, token), token));
                pulled.Writer.Complete();
            }
            catch (Exception e)
            {
                pulled.Writer.Complete(e);
            }
        }, CancellationToken.None);
        try
        {
            // Each writer stores whatever answers are waiting, up to a batch, in one transaction on its own connection.
            await Task.WhenAll(Enumerable.Range(0, Writers).Select(_ => Task.Run(async () =>
            {
                var batch = new List<Pulled>();
                while (await pulled.Reader.WaitToReadAsync(ct))
                {
                    long rows = 0;
                    while (batch.Count < BatchSeries && rows < BatchRows && pulled.Reader.TryRead(out var p))
                    {
                        batch.Add(p);
                        rows += p.Points.Count;
                    }
                    if (batch.Count == 0)
                    {
                        continue;
                    }
                    var writing = Stopwatch.GetTimestamp();
                    foreach (var (ok, n) in await StoreAsync(batch, now, ct))
                    {
                        Interlocked.Add(ref points, n);
                        Interlocked.Increment(ref ok ? ref succeeded : ref failed);
                    }
                    Interlocked.Add(ref _writeTicks, Stopwatch.GetElapsedTime(writing).Ticks);
                    batch.Clear();
                }
            }, CancellationToken.None)));
        }
        finally
        {
            // A writer failed (the database is unreachable, say): the queries stop too; the claims' leases expire.
            await stop.CancelAsync();
            await querying;
        }
        await RecordLagAsync(now, ct);
        log.LogInformation("Pulled {Claimed} sources in {Seconds:F2}s: {Succeeded} succeeded, {Failed} failed, {Points} points stored (summed over workers: {QuerySeconds:F1}s querying, {WriteSeconds:F1}s writing)",
            claims.Count, Stopwatch.GetElapsedTime(roundStarted).TotalSeconds, succeeded, failed, points,
            TimeSpan.FromTicks(Interlocked.Read(ref _queryTicks)).TotalSeconds, TimeSpan.FromTicks(Interlocked.Read(ref _writeTicks)).TotalSeconds);
        return new PullRoundSummary(claims.Count, succeeded, failed, points);
    }

    /// <summary>Queries one source from its watermark (or over the backfill window) and checks that it returned one series.</summary>
    async Task<Pulled> QueryAsync(Claim c, DateTimeOffset now, CancellationToken ct)
    {
        var o = options.Value;
        var step = TimeSpan.FromSeconds(o.StepSeconds);
        var to = Floor(now.UtcDateTime, step);
        var backfill = c.Watermark is null;
        var from = backfill ? Floor(to - TimeSpan.FromDays(o.BackfillDays), step) : Floor(c.Watermark!.Value - TimeSpan.FromMinutes(o.OverlapMinutes), step);
        var started = Stopwatch.GetTimestamp();
        try
        {
            var series = await prometheus.QueryRangeAsync(c.Server, c.Query, from, to, step, ct);
            Interlocked.Add(ref _queryTicks, Stopwatch.GetElapsedTime(started).Ticks);
            var error = series.Count switch
            {
                > 1 => $"the query returned {series.Count} series ({Describe(series)}); a source must return exactly one: aggregate it, e.g. sum(...)",
                0 when backfill => $"the query returned no series over the last {o.BackfillDays} days",
                _ => null,
            };
            return new Pulled(c, backfill, to, error is null && series.Count == 1 ? Storable(series[0].Points) : [], error, started);
        }
        catch (Exception e) when (e is HttpRequestException or PrometheusQueryException or TimeoutException or Polly.Timeout.TimeoutRejectedException
            or Polly.CircuitBreaker.BrokenCircuitException or System.Text.Json.JsonException || e is TaskCanceledException && !ct.IsCancellationRequested)
        {
            return new Pulled(c, backfill, to, [], $"{(backfill ? "backfill" : "pull")} from {PrometheusOptions.Display(c.Server)} failed: {Message(e)}", started);
        }
    }

    /// <summary>
    /// The points the bulk write takes: values the rules for pushed samples refuse (negative, beyond the accepted range)
    /// are gaps, like NaN; times strictly increasing (a server that repeats or reorders points keeps its last value).
    /// </summary>
    List<(DateTime Ts, double Value)> Storable(List<(DateTime Ts, double Value)> points)
    {
        var max = service.Value.MaxSampleValue;
        points.RemoveAll(p => SampleRules.CheckValue(p.Value, max) is not null);
        for (var i = 1; i < points.Count; i++)
        {
            if (points[i].Ts <= points[i - 1].Ts)
            {
                return [.. points.Select((p, n) => (p, n)).GroupBy(x => x.p.Ts).Select(g => g.MaxBy(x => x.n).p).OrderBy(p => p.Ts)];
            }
        }
        return points;
    }

    /// <summary>
    /// Stores a batch: every answered source's points and its new watermark in one transaction; when that fails, each
    /// source in a transaction of its own, so that one source's failure (a database error on its rows) loses none of the
    /// others. Records each outcome; returns them in the batch's order.
    /// </summary>
    async Task<List<(bool Ok, long Points)>> StoreAsync(List<Pulled> batch, DateTimeOffset now, CancellationToken ct)
    {
        var answered = batch.Where(p => p.Error is null).ToList();
        var stored = new Dictionary<Pulled, long>();
        var errors = batch.Where(p => p.Error is not null).ToDictionary(p => p, p => p.Error!);
        try
        {
            if (answered.Count > 0)
            {
                stored = await CommitAsync(answered, now, ct);
            }
        }
        catch (NpgsqlException e) when (answered.Count > 1)
        {
            log.LogWarning(e, "Storing {Count} pulled sources together failed; storing them one by one", answered.Count);
            foreach (var p in answered)
            {
                try
                {
                    stored[p] = (await CommitAsync([p], now, ct))[p];
                }
                catch (PostgresException e1)
                {
                    errors[p] = $"{(p.Backfill ? "backfill" : "pull")} from {PrometheusOptions.Display(p.Claim.Server)} could not be stored: {e1.MessageText}";
                }
            }
        }
        catch (PostgresException e)
        {
            var p = answered[0];
            errors[p] = $"{(p.Backfill ? "backfill" : "pull")} from {PrometheusOptions.Display(p.Claim.Server)} could not be stored: {e.MessageText}";
        }

        var results = new List<(bool, long)>(batch.Count);
        await using var conn = await db.OpenConnectionAsync(ct);
        foreach (var p in batch)
        {
            if (errors.TryGetValue(p, out var error))
            {
                await RecordFailureAsync(conn, p, error, now, ct);
                results.Add((false, 0));
            }
            else if (stored[p] < 0)
            {
                // The resource was deleted meanwhile (and its pull state with it): nothing to record.
                results.Add((false, 0));
            }
            else
            {
                ForecasterMetrics.SourcePulls.WithLabels(p.Backfill ? "backfilled" : "pulled").Inc();
                ForecasterMetrics.SourcePullSeconds.WithLabels(p.Backfill ? "backfill" : "pull").Observe(Stopwatch.GetElapsedTime(p.Started).TotalSeconds);
                results.Add((true, stored[p]));
            }
        }
        return results;
    }

    /// <summary>The sources' points and their watermarks, in one transaction; the rows stored per source (-1: resource gone).</summary>
    async Task<Dictionary<Pulled, long>> CommitAsync(List<Pulled> items, DateTimeOffset now, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        // Each watermark commits with its points, so a commit lost in a crash only means that those sources are pulled again.
        await conn.ExecuteAsync(new CommandDefinition("SET LOCAL synchronous_commit = off", transaction: tx, cancellationToken: ct));
        var rows = await SampleImport.WriteSeriesAsync(conn, tx, partitions,
            [.. items.Select(p => new SampleImport.SeriesPoints(p.Claim.ResourceId, p.Claim.Metric, p.Points, MayExist: !p.Backfill))], ct, log);
        var done = items.Where((_, i) => rows[i] >= 0).OrderBy(p => p.Claim.ResourceId).ThenBy(p => p.Claim.Metric, StringComparer.Ordinal).ToList();
        // Guarded by the query: a definition changed meanwhile has reset the watermark for its own backfill.
        const string success = """
            UPDATE source_pulls p
            SET watermark = u.watermark, last_success_at = @now, last_error = NULL, last_error_at = NULL, failures = 0,
                due_at = @due, leased_until = NULL, leased_by = NULL
            FROM unnest(@resourceIds, @metrics, @queries, @servers, @watermarks) AS u(resource_id, metric, query, server, watermark)
            WHERE p.resource_id = u.resource_id AND p.metric = u.metric AND p.query = u.query AND p.server = u.server
            """;
        await conn.ExecuteAsync(new CommandDefinition(success, new
        {
            resourceIds = done.Select(p => p.Claim.ResourceId).ToArray(),
            metrics = done.Select(p => p.Claim.Metric).ToArray(),
            queries = done.Select(p => p.Claim.Query).ToArray(),
            servers = done.Select(p => p.Claim.Server).ToArray(),
            watermarks = done.Select(p => p.To).ToArray(),
            now,
            due = now + TimeSpan.FromMinutes(options.Value.PullMinutes),
        }, tx, cancellationToken: ct));
        await tx.CommitAsync(ct);
        ForecasterMetrics.SamplesIngested.WithLabels("prometheus").Inc(rows.Where(r => r > 0).Sum());
        return items.Select((p, i) => (p, i)).ToDictionary(x => x.p, x => rows[x.i]);
    }

    async Task RecordFailureAsync(NpgsqlConnection conn, Pulled p, string error, DateTimeOffset now, CancellationToken ct)
    {
        var c = p.Claim;
        ForecasterMetrics.SourcePulls.WithLabels("failed").Inc();
        ForecasterMetrics.SourcePullSeconds.WithLabels(p.Backfill ? "backfill" : "pull").Observe(Stopwatch.GetElapsedTime(p.Started).TotalSeconds);
        log.LogWarning("Source {Metric} of {Resource}: {Error}", c.Metric, c.Name, error);
        // Backs off per source (the HTTP pipeline already retried with jitter): one interval, two, four..., at most an hour.
        const string failure = """
            UPDATE source_pulls
            SET last_error = @error, last_error_at = @now, failures = failures + 1,
                due_at = @now + least(make_interval(mins => @pull) * power(2, least(failures, 10)), interval '1 hour'),
                leased_until = NULL, leased_by = NULL
            WHERE resource_id = @ResourceId AND metric = @Metric AND query = @Query AND server = @Server
            """;
        await conn.ExecuteAsync(new CommandDefinition(failure, new { c.ResourceId, c.Metric, c.Query, c.Server, error, now, pull = options.Value.PullMinutes }, cancellationToken: ct));
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
