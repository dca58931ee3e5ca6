using System.Diagnostics;
using System.Text.Json;
using Dapper;
using Forecaster.Api.Resources;
using Forecaster.Api.Samples;
using Forecaster.Training.Capacity;
using Forecaster.Training.Forecasting;
using Forecaster.Training.Global;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;

namespace Forecaster.Api.Training;

/// <summary>
/// What one shard did: series fitted (including failures), series that failed, and where the time went: fitting, and how long
/// fitting waited for reading and writing, which run beside it.
/// </summary>
public sealed record ShardOutcome(int Series, int Failed, TimeSpan Reading, TimeSpan Fitting, TimeSpan Writing);

/// <summary>
/// A batch a shard wrote: the shard's series so far (done, failed), the batch's own counts, and each written series' backtest
/// MASE of the chosen model and of seasonal naive (for the service's metrics). Plain data, so that a shard fitted in a child
/// process (<see cref="ShardProcesses"/>) can hand it to the service, which records the metrics.
/// </summary>
public sealed record BatchWritten(int Done, int Failed, int Trained, int BatchFailed, double?[] ChosenMase, double?[] SeasonalNaiveMase);

/// <summary>
/// Trains one shard of a run: the shard's resources (its slots: <see cref="TrainingRuns.Layout"/>) in batches of <see cref="TrainingOptions.BatchResources"/>,
/// each read with one query (hourly mean and max of every series of the batch), fitted in parallel on every core, and written
/// in one transaction: new model versions active, the previous ones superseded, forecasts replaced, capacity models and weekly
/// peaks upserted, progress counted. A series that fails is recorded as a failed version and keeps its active model and
/// forecasts. Resources this run already trained are skipped, so a shard recovered after a crash resumes where it stopped.
/// </summary>
public sealed class TrainingPipeline(NpgsqlDataSource db, IOptions<TrainingOptions> options, TimeProvider clock, ILogger<TrainingPipeline> logger)
{
    static readonly TimeSpan Hour = TimeSpan.FromHours(1);
    static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    /// <summary>A resource of the batch and the series it has among those training reads.</summary>
    sealed record BatchResource(Resource Resource, int[] SeriesIds, string[] Metrics)
    {
        public int Id => Resource.Id;
        public string Name => Resource.Name;
        public string LoadMetric => Resource.LoadMetric;
    }

    /// <summary>A resource row (<see cref="ResourceStore.Columns"/>) with its series, as the batch query returns it.</summary>
    sealed class BatchRow : ResourceRow
    {
        public int[] SeriesIds { get; init; } = [];
        public string[] Metrics { get; init; } = [];
    }

    /// <summary>One series to fit, with its pre-allocated model version id.</summary>
    sealed record Item(BatchResource Resource, string Metric, int SeriesId, long Version);

    /// <summary>What fitting one series gave: the model and its forecast, or the error; where its artifact went once the batch's pack is written.</summary>
    sealed record Fitted(FittedModel? Model, Forecast? Forecast, string? Error)
    {
        public ArtifactPlace? Artifact { get; init; }
    }

    /// <summary>Runs shard <paramref name="shard"/> of run <paramref name="runId"/>; <paramref name="written"/> hears of each batch written.</summary>
    public async Task<ShardOutcome> RunShardAsync(long runId, int shard, Action<BatchWritten>? written, CancellationToken ct)
    {
        var o = options.Value;
        TrainingRunRow run;
        ShardSlots slots;
        await using (var conn = await db.OpenConnectionAsync(ct))
        {
            run = await TrainingRuns.GetAsync(conn, runId, ct) ?? throw new InvalidOperationException($"training run {runId} does not exist");
            slots = await TrainingRuns.ShardSlotsAsync(conn, runId, shard, ct);
        }
        // Every shard of a run sees the same window, ending at the last whole hour before the run was created.
        var (from, to) = SeriesFitting.Window(new DateTimeOffset(DateTime.SpecifyKind(run.CreatedAt, DateTimeKind.Utc)), o);
        // Not awaited here: while the fleet-wide model trains (or another instance trains it), the series that do not need it
        // are fitted (issue 16).
        var (fleet, fleetTrainsHere) = o.GlobalModel ? GlobalModelAsync(runId, from, to, o, ct) : (Task.FromResult<GlobalModel?>(null), Task.FromResult(false));
        GlobalModel? global;

        int done = 0, failed = 0;
        TimeSpan reading = default, fitting = default, writing = default, waitingForFleet = default;
        // The fleet-wide model is a candidate for the load metric only: the other series go first, without it.
        bool NeedsFleet(Item item) => o.GlobalModel && item.Metric == item.Resource.LoadMetric;
        // Three stages in flight: the next batch is read while this one is fitted, and the previous one is written meanwhile,
        // so the database's work overlaps the fitting instead of leaving the cores idle (issue 16). While the fleet-wide model
        // is not ready, up to MaxAwaitingFleet batches have their other series fitted and wait for it; memory stays flat in
        // the fleet's size either way.
        var read = ReadBatchAsync(runId, slots, run, 0, from, to, o, ct);
        var lastWrite = Task.CompletedTask;
        var awaiting = new Queue<Fitting>();
        try
        {
            while (true)
            {
                var started = Stopwatch.GetTimestamp();
                var next = await read;
                reading += Stopwatch.GetElapsedTime(started);
                if (next is { } current)
                {
                    read = ReadBatchAsync(runId, slots, run, current.Batch[^1].Id, from, to, o, ct);
                    // While this process trains the fleet-wide model, every other instance's first shard waits for it once its
                    // other series are fitted: the model goes first, with a core of its own (LightGBM trains on one), so that
                    // they wait as little as possible. On one core the fitting waits for it: the same CPU, spent in the order
                    // that idles nobody (issue 16: the other instance waited 3.5 s for a model ready 6.5 s after the start,
                    // whose training took 2 s of CPU).
                    int parallelism = o.EffectiveParallelism;
                    if (!fleet.IsCompleted && await Task.WhenAny(fleetTrainsHere, fleet) == fleetTrainsHere && fleetTrainsHere.Result)
                    {
                        if (parallelism > 1)
                        {
                            parallelism--;
                        }
                        else
                        {
                            var waitStarted = Stopwatch.GetTimestamp();
                            await ((Task)fleet).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                            waitingForFleet += Stopwatch.GetElapsedTime(waitStarted);
                        }
                    }
                    started = Stopwatch.GetTimestamp();
                    var batch = new Fitting(current.Batch, current.History, current.Unreadable, current.Items, new Fitted[current.Items.Count], clock.GetUtcNow());
                    Fit(batch, NeedsFleet, false, from, runId, o, null, parallelism, ct);
                    fitting += Stopwatch.GetElapsedTime(started);
                    awaiting.Enqueue(batch);
                    if (!fleet.IsCompleted && awaiting.Count < MaxAwaitingFleet)
                    {
                        continue;
                    }
                }
                if (awaiting.Count == 0)
                {
                    break;
                }
                started = Stopwatch.GetTimestamp();
                global = await fleet;
                waitingForFleet += Stopwatch.GetElapsedTime(started);
                while (awaiting.TryDequeue(out var batch))
                {
                    started = Stopwatch.GetTimestamp();
                    Fit(batch, NeedsFleet, true, from, runId, o, global, o.EffectiveParallelism, ct);
                    fitting += Stopwatch.GetElapsedTime(started);

                    started = Stopwatch.GetTimestamp();
                    await lastWrite;
                    writing += Stopwatch.GetElapsedTime(started);
                    lastWrite = WriteBatchAsync(batch, global?.Version);
                }
                if (next is null)
                {
                    break;
                }
            }
            var last = Stopwatch.GetTimestamp();
            await lastWrite;
            writing += Stopwatch.GetElapsedTime(last);
        }
        finally
        {
            // On failure or cancellation, the stages still in flight end before the shard reports (their errors are the loop's).
            await Task.WhenAll(read, lastWrite, fleet).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        async Task WriteBatchAsync(Fitting b, string? globalVersion)
        {
            // The pack goes to disk before the transaction that refers to it (on a pool thread: this stage overlaps the next fit).
            await Task.Run(() => WritePack(b, runId, shard, o), ct);
            var batchFailed = b.Results.Count(r => r.Error is not null);
            await WriteAsync(runId, shard, b.Batch, b.Items, b.Results, b.History, from, to, b.TrainedAt, o, globalVersion, ct);
            done += b.Items.Count;
            failed += batchFailed;
            written?.Invoke(new BatchWritten(done, failed, b.Items.Count - batchFailed, batchFailed,
                [.. b.Results.Select(r => r.Model?.Backtest?.Chosen?.Mase)], [.. b.Results.Select(r => r.Model?.Backtest?.SeasonalNaiveDaily?.Mase)]));
        }
        logger.LogInformation(
            "Training run {RunId} shard {Shard}: {Series} series, {Failed} failed; reading {Reading:F1}s, fitting {Fitting:F1}s, writing {Writing:F1}s, waiting for the fleet-wide model {Fleet:F1}s",
            runId, shard, done, failed, reading.TotalSeconds, fitting.TotalSeconds, writing.TotalSeconds, waitingForFleet.TotalSeconds);
        return new ShardOutcome(done, failed, reading, fitting, writing);
    }

    /// <summary>The shard's next batch after resource <paramref name="after"/>, its history and version ids; null when none is left.</summary>
    async Task<(List<BatchResource> Batch, Dictionary<int, HourlyAggregates> History, Dictionary<int, string> Unreadable, List<Item> Items)?> ReadBatchAsync(
        long runId, ShardSlots slots, TrainingRunRow run, int after, DateTimeOffset from, DateTimeOffset to, TrainingOptions o, CancellationToken ct)
    {
        var batch = await NextBatchAsync(runId, slots, run.Resources, after, o.BatchResources, ct);
        if (batch.Count == 0)
        {
            return null;
        }
        var (history, unreadable) = await ReadHistoryAsync(runId, batch, from, to, ct);
        return (batch, history, unreadable, await AllocateAsync(batch, ct));
    }

    async Task<List<BatchResource>> NextBatchAsync(long runId, ShardSlots slots, string[]? resources, int after, int take, CancellationToken ct)
    {
        // Keyset paging by id keeps memory flat however large the fleet; resources this run already wrote are skipped.
        const string next = $"""
            SELECT {ResourceStore.Columns}, array_agg(s.id ORDER BY s.metric) AS SeriesIds, array_agg(s.metric ORDER BY s.metric) AS Metrics
            FROM resources r JOIN series s ON s.resource_id = r.id
            WHERE {TrainingRuns.SlotOf} >= @slotFrom AND {TrainingRuns.SlotOf} < @slotTo AND r.id > @after
              AND (@resources::text[] IS NULL OR r.name = ANY(@resources))
              AND s.metric IN (r.load_metric, 'cpu_cores', 'memory_bytes', 'replicas')
              AND NOT EXISTS (SELECT 1 FROM model_versions mv WHERE mv.run_id = @runId AND mv.resource_id = r.id)
            GROUP BY r.id
            HAVING bool_or(s.metric IN (r.load_metric, 'cpu_cores', 'memory_bytes'))
            ORDER BY r.id
            LIMIT @take
            """;
        await using var conn = await db.OpenConnectionAsync(ct);
        return [.. (await conn.QueryAsync<BatchRow>(new CommandDefinition(next, new { runId, slots = slots.Slots, slotFrom = slots.From, slotTo = slots.To, resources, after, take }, cancellationToken: ct)))
            .Select(r => new BatchResource(r.ToResource(), r.SeriesIds, r.Metrics))];
    }

    /// <summary>
    /// The batch's history in one query. Should that query fail on the data (not on the connection), each series is read
    /// alone, so that only the series whose history cannot be read fail, with PostgreSQL's error (issue 13).
    /// </summary>
    async Task<(Dictionary<int, HourlyAggregates> History, Dictionary<int, string> Unreadable)> ReadHistoryAsync(
        long runId, List<BatchResource> batch, DateTimeOffset from, DateTimeOffset to, CancellationToken ct)
    {
        int[] ids = [.. batch.SelectMany(r => r.SeriesIds)];
        var unreadable = new Dictionary<int, string>();
        await using var conn = await db.OpenConnectionAsync(ct);
        try
        {
            return (await HourlyHistory.ReadAsync(conn, ids, from, to, ct), unreadable);
        }
        catch (PostgresException e) when (IsDataError(e))
        {
            logger.LogWarning("Training run {RunId}: reading the history of {Series} series failed ({SqlState}: {Message}); reading them one by one",
                runId, ids.Length, e.SqlState, e.MessageText);
        }
        var history = new Dictionary<int, HourlyAggregates>();
        foreach (var id in ids)
        {
            try
            {
                foreach (var (key, values) in await HourlyHistory.ReadAsync(conn, [id], from, to, ct))
                {
                    history[key] = values;
                }
            }
            catch (PostgresException e) when (IsDataError(e))
            {
                unreadable[id] = $"reading its history failed: {e.SqlState} {e.MessageText}";
            }
        }
        return (history, unreadable);
    }

    /// <summary>A failure of the query on the data (an overflow, a corrupt page), not of the database being away or stopping the query.</summary>
    static bool IsDataError(PostgresException e) =>
        !Errors.DatabaseUnavailable.Is(e) && e.SqlState is not (PostgresErrorCodes.QueryCanceled or PostgresErrorCodes.AdminShutdown)
        && !e.SqlState.StartsWith("53", StringComparison.Ordinal);

    async Task<List<Item>> AllocateAsync(List<BatchResource> batch, CancellationToken ct)
    {
        var pending = new List<(BatchResource Resource, string Metric, int SeriesId)>();
        foreach (var r in batch)
        {
            for (int i = 0; i < r.Metrics.Length; i++)
            {
                if (r.Metrics[i] == r.LoadMetric || r.Metrics[i] is "cpu_cores" or "memory_bytes")
                {
                    pending.Add((r, r.Metrics[i], r.SeriesIds[i]));
                }
            }
        }
        // Version ids up front: the artifacts' headers and packs are named by them.
        const string allocate = "SELECT nextval(pg_get_serial_sequence('model_versions', 'id')) FROM generate_series(1, @n)";
        await using var conn = await db.OpenConnectionAsync(ct);
        var ids = (await conn.QueryAsync<long>(new CommandDefinition(allocate, new { n = pending.Count }, cancellationToken: ct))).ToList();
        return [.. pending.Select((p, i) => new Item(p.Resource, p.Metric, p.SeriesId, ids[i]))];
    }

    /// <summary>
    /// The run's fleet-wide model: trained or loaded (<see cref="FleetModel"/>) once per instance, by the first shard this
    /// instance runs, and shared by its other shards (one run at a time is kept). The returned task ends when the model is
    /// there or when <paramref name="ct"/> (this shard's) is cancelled, whichever comes first; <c>TrainsHere</c> ends as soon as
    /// it is known whether this process trains the model (true) or another instance does or did (false).
    /// </summary>
    /// <remarks>
    /// The shared work runs under a cancellation of its own, not the token of the shard that happened to start it: that shard
    /// may be handed back or aborted (Hangfire delivered it elsewhere) while another shard of this instance still waits for
    /// the model, which would otherwise see "a task was canceled" with its own token untouched, and fail with nothing written
    /// (issue 16). The shared work is cancelled once no shard of this instance waits for it, so that its lease goes to the
    /// next instance at once.
    /// </remarks>
    (Task<GlobalModel?> Model, Task<bool> TrainsHere) GlobalModelAsync(long runId, DateTimeOffset from, DateTimeOffset to, TrainingOptions o, CancellationToken ct)
    {
        SharedFleetModel shared;
        lock (_globalLock)
        {
            if (_global is not { } current || current.RunId != runId || current.Model.IsFaulted || current.Model.IsCanceled)
            {
                var cancel = new CancellationTokenSource();
                var trainsHere = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
                var model = Task.Run(async () =>
                {
                    try
                    {
                        var started = Stopwatch.GetTimestamp();
                        var (model, trained) = await FleetModel.GetAsync(db, runId, from, to, o, clock, cancel.Token, here => trainsHere.TrySetResult(here));
                        logger.LogInformation("Training run {RunId}: fleet-wide model {Version} {How} ({Rows} rows of {Series} series) in {Seconds:F1}s",
                            runId, model?.Version ?? "none (too little history)", trained ? "trained" : "loaded", model?.Rows ?? 0, model?.Series ?? 0,
                            Stopwatch.GetElapsedTime(started).TotalSeconds);
                        return model;
                    }
                    finally
                    {
                        trainsHere.TrySetResult(false);
                    }
                }, cancel.Token);
                current = new SharedFleetModel(runId, model, trainsHere.Task, cancel);
                _global = current;
            }
            shared = current;
            shared.Waiting++;
        }
        return (WaitAsync(shared, ct), shared.TrainsHere);
    }

    async Task<GlobalModel?> WaitAsync(SharedFleetModel shared, CancellationToken ct)
    {
        try
        {
            return await shared.Model.WaitAsync(ct);
        }
        finally
        {
            lock (_globalLock)
            {
                // The last shard of this instance that needed the model stopped waiting (handed back, aborted): let it go,
                // and let the next shard start afresh rather than join work that is being cancelled (its lease keeps the two apart).
                if (--shared.Waiting == 0 && !shared.Model.IsCompleted)
                {
                    shared.Cancel.Cancel();
                    if (ReferenceEquals(_global, shared))
                    {
                        _global = null;
                    }
                }
            }
        }
    }

    /// <summary>
    /// The fleet-wide model of run <see cref="RunId"/> as this instance gets it, whether this instance trains it, and how many
    /// shards wait for it.
    /// </summary>
    sealed class SharedFleetModel(long runId, Task<GlobalModel?> model, Task<bool> trainsHere, CancellationTokenSource cancel)
    {
        public long RunId { get; } = runId;
        public Task<GlobalModel?> Model { get; } = model;
        public Task<bool> TrainsHere { get; } = trainsHere;
        public CancellationTokenSource Cancel { get; } = cancel;
        public int Waiting { get; set; }
    }

    readonly object _globalLock = new();
    SharedFleetModel? _global;

    /// <summary>Batches whose other series are fitted may wait for the fleet-wide model, at most this many at once.</summary>
    const int MaxAwaitingFleet = 4;

    /// <summary>A batch being fitted: what was read, the results so far, and when it was fitted.</summary>
    sealed record Fitting(List<BatchResource> Batch, Dictionary<int, HourlyAggregates> History, Dictionary<int, string> Unreadable, List<Item> Items,
        Fitted[] Results, DateTimeOffset TrainedAt);

    /// <summary>Fits the batch's items for which <paramref name="needsFleet"/> gives <paramref name="which"/>, into its results.</summary>
    void Fit(Fitting batch, Func<Item, bool> needsFleet, bool which, DateTimeOffset from, long runId, TrainingOptions o, GlobalModel? global, int parallelism, CancellationToken ct)
    {
        var (items, history, unreadable, results) = (batch.Items, batch.History, batch.Unreadable, batch.Results);
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = parallelism, CancellationToken = ct };
        var chosen = Enumerable.Range(0, items.Count).Where(i => needsFleet(items[i]) == which).ToArray();
        Parallel.For(0, chosen.Length, parallel, k =>
        {
            int i = chosen[k];
            var item = items[i];
            try
            {
                if (unreadable.TryGetValue(item.SeriesId, out var unread))
                {
                    results[i] = new Fitted(null, null, unread);
                    return;
                }
                if (!history.TryGetValue(item.SeriesId, out var hourly))
                {
                    results[i] = new Fitted(null, null, $"no samples in the last {o.HistoryDays} days");
                    return;
                }
                if (hourly.Ignored > 0)
                {
                    // Such values predate the ingestion rule or were written by hand; a model of the rest would hide them.
                    results[i] = new Fitted(null, null,
                        $"{hourly.Ignored} stored samples in the last {o.HistoryDays} days are beyond {SampleRules.AggregateLimit:R} or not numbers; " +
                        "overwrite or delete them (the previous model stays active)");
                    return;
                }
                var fit = SeriesFitting.Fit(hourly.Mean, from, o, item.Metric == item.Resource.LoadMetric, global);
                if (fit is not { Model: { } model, Forecast: { } forecast })
                {
                    results[i] = new Fitted(null, null, fit.Error);
                    return;
                }
                results[i] = new Fitted(model, forecast, null);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // One series' failure never fails the run: it is recorded and the series keeps its previous model.
                results[i] = new Fitted(null, null, $"{e.GetType().Name}: {e.Message}");
            }
        });
        foreach (int i in chosen.Where(i => results[i].Error is not null))
        {
            logger.LogWarning("Training run {RunId}: {Resource}/{Metric} failed and keeps its previous model: {Error}", runId, items[i].Resource.Name, items[i].Metric, results[i].Error);
        }
    }

    /// <summary>
    /// Writes the batch's fitted models as one pack (<see cref="ModelArtifact.WritePack"/>) and records each one's place in it.
    /// A model that cannot be written, or a pack that cannot (a full disk), fails its series, which keep their previous model.
    /// </summary>
    void WritePack(Fitting b, long runId, int shard, TrainingOptions o)
    {
        var (items, results) = (b.Items, b.Results);
        int[] fitted = [.. Enumerable.Range(0, items.Count).Where(i => results[i].Model is not null)];
        if (fitted.Length == 0)
        {
            return;
        }
        var pack = ModelArtifact.PackPath(runId, shard, items[fitted[0]].Version);
        PackEntry[] entries;
        try
        {
            entries = ModelArtifact.WritePack(o.ResolvedModelsPath, pack, [.. fitted.Select(i => (
                new ArtifactHeader(items[i].Version, items[i].Resource.Name, items[i].Metric, runId, b.TrainedAt, o.HorizonHours, o.Level),
                results[i].Model!))]);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            var error = $"writing its model artifact failed: {e.GetType().Name}: {e.Message}";
            entries = [.. fitted.Select(_ => new PackEntry(0, 0, error))];
        }
        for (int k = 0; k < fitted.Length; k++)
        {
            int i = fitted[k];
            if (entries[k].Error is { } error)
            {
                results[i] = new Fitted(null, null, error);
                logger.LogWarning("Training run {RunId}: {Resource}/{Metric} failed and keeps its previous model: {Error}", runId, items[i].Resource.Name, items[i].Metric, error);
            }
            else
            {
                results[i] = results[i] with { Artifact = new ArtifactPlace(pack, entries[k].Offset, entries[k].Length) };
            }
        }
    }

    async Task WriteAsync(
        long runId, int shard, List<BatchResource> batch, List<Item> items, Fitted[] results, Dictionary<int, HourlyAggregates> history,
        DateTimeOffset from, DateTimeOffset to, DateTimeOffset trainedAt, TrainingOptions o, string? globalVersion, CancellationToken ct)
    {
        var activated = items.Zip(results).Where(p => p.Second.Error is null).Select(p => p.First).ToList();
        var resourceIds = activated.Select(i => i.Resource.Id).ToArray();
        var metrics = activated.Select(i => i.Metric).ToArray();

        await using var conn = await db.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        // The previous active version of each refitted series steps down, in the same transaction as its replacement goes up.
        const string supersede = """
            UPDATE model_versions mv SET status = 'superseded'
            FROM unnest(@resourceIds, @metrics) AS n(resource_id, metric)
            WHERE mv.resource_id = n.resource_id AND mv.metric = n.metric AND mv.status = 'active'
            """;
        await conn.ExecuteAsync(new CommandDefinition(supersede, new { resourceIds, metrics }, tx, cancellationToken: ct));

        await using (var versions = await conn.BeginBinaryImportAsync("""
            COPY model_versions (id, resource_id, metric, run_id, status, algorithm, parameters, train_from, train_to, train_points,
                train_observed, train_clipped, trained_at, horizon, level, backtest_origins, mase, smape, coverage, snaive_mase,
                beats_seasonal_naive, artifact, artifact_offset, artifact_length, error, upper_tail) FROM STDIN (FORMAT BINARY)
            """, ct))
        {
            for (int i = 0; i < items.Count; i++)
            {
                await WriteVersionAsync(versions, runId, items[i], results[i], trainedAt, o, items[i].Metric == items[i].Resource.LoadMetric ? globalVersion : null, ct);
            }
            await versions.CompleteAsync(ct);
        }

        // Each refitted series' forecast replaces its previous one, as one row of arrays.
        await ForecastStore.ReplaceAsync(conn, tx, resourceIds, metrics,
            Enumerable.Range(0, items.Count).Where(i => results[i].Forecast is not null)
                .Select(i => new SeriesForecast(items[i].Resource.Id, items[i].Metric, items[i].Version, results[i].Forecast!)),
            trainedAt, ct);

        await WriteUsageAsync(conn, tx, runId, batch, history, from, to, trainedAt, ct);

        // Progress in the same transaction as the results, so the counters never claim more than is stored.
        const string progress = """
            UPDATE training_runs SET series_done = series_done + @done, series_failed = series_failed + @failed, heartbeat_at = @now
            WHERE id = @runId;
            UPDATE training_shards SET series_done = series_done + @done, series_failed = series_failed + @failed
            WHERE run_id = @runId AND shard = @shard;
            """;
        await conn.ExecuteAsync(new CommandDefinition(progress,
            new { runId, shard, done = items.Count, failed = items.Count - activated.Count, now = clock.GetUtcNow() }, tx, cancellationToken: ct));
        await tx.CommitAsync(ct);
    }

    static async Task WriteVersionAsync(NpgsqlBinaryImporter w, long runId, Item item, Fitted r, DateTimeOffset trainedAt, TrainingOptions o, string? globalVersion, CancellationToken ct)
    {
        var m = r.Model;
        var backtest = m?.Backtest;
        var chosen = backtest?.Chosen;
        var snaive = backtest?.SeasonalNaiveDaily;
        await w.StartRowAsync(ct);
        await w.WriteAsync(item.Version, NpgsqlDbType.Bigint, ct);
        await w.WriteAsync(item.Resource.Id, NpgsqlDbType.Integer, ct);
        await w.WriteAsync(item.Metric, NpgsqlDbType.Text, ct);
        await w.WriteAsync(runId, NpgsqlDbType.Bigint, ct);
        await w.WriteAsync(r.Error is null ? "active" : "failed", NpgsqlDbType.Text, ct);
        await Nullable(w, r.Forecast?.Model, NpgsqlDbType.Text, ct);
        await Nullable(w, m is null ? null : JsonSerializer.Serialize(new { model = r.Forecast!.Model, notes = m.Notes, candidates = backtest?.Candidates, globalModel = globalVersion }, Json), NpgsqlDbType.Json, ct);
        await Nullable(w, m?.Training.From.UtcDateTime, NpgsqlDbType.TimestampTz, ct);
        await Nullable(w, m?.Training.To.UtcDateTime, NpgsqlDbType.TimestampTz, ct);
        await Nullable(w, m?.Training.Points, NpgsqlDbType.Integer, ct);
        await Nullable(w, m?.Training.Observed, NpgsqlDbType.Integer, ct);
        await Nullable(w, m?.Training.Clipped, NpgsqlDbType.Integer, ct);
        await w.WriteAsync(trainedAt.UtcDateTime, NpgsqlDbType.TimestampTz, ct);
        await w.WriteAsync(o.HorizonHours, NpgsqlDbType.Integer, ct);
        await w.WriteAsync(o.Level, NpgsqlDbType.Double, ct);
        await Nullable(w, backtest?.Origins, NpgsqlDbType.Integer, ct);
        await Nullable(w, Finite(chosen?.Mase), NpgsqlDbType.Double, ct);
        await Nullable(w, Finite(chosen?.Smape), NpgsqlDbType.Double, ct);
        await Nullable(w, Finite(chosen?.Coverage), NpgsqlDbType.Double, ct);
        await Nullable(w, Finite(snaive?.Mase), NpgsqlDbType.Double, ct);
        await Nullable(w, SeriesFitting.BeatsSeasonalNaive(backtest), NpgsqlDbType.Boolean, ct);
        await Nullable(w, r.Artifact?.Path, NpgsqlDbType.Text, ct);
        await Nullable(w, r.Artifact?.Offset, NpgsqlDbType.Bigint, ct);
        await Nullable(w, r.Artifact?.Length, NpgsqlDbType.Integer, ct);
        await Nullable(w, r.Error, NpgsqlDbType.Text, ct);
        // The planner's view of the upper errors, step 0 at the forecast's first hour (PlanInputs reads it back).
        await Nullable(w, r.Forecast is { UpperErrors: { } upper } f ? JsonSerializer.Serialize(Plans.PlanInputs.Tail(upper, f.Start), Json) : null, NpgsqlDbType.Json, ct);
    }

    static double? Finite(double? v) => v is double d && double.IsFinite(d) ? d : null;

    static async Task Nullable<T>(NpgsqlBinaryImporter w, T? value, NpgsqlDbType type, CancellationToken ct)
    {
        if (value is null)
        {
            await w.WriteNullAsync(ct);
        }
        else
        {
            await w.WriteAsync(value, type, ct);
        }
    }

    /// <summary>
    /// Capacity models (robust cpu ~ load fit) and weekly per-replica peaks of the batch's resources, each kind upserted in
    /// one statement over arrays (one round trip per batch, not one per resource).
    /// </summary>
    static async Task WriteUsageAsync(
        NpgsqlConnection conn, NpgsqlTransaction tx, long runId, List<BatchResource> batch, Dictionary<int, HourlyAggregates> history,
        DateTimeOffset from, DateTimeOffset to, DateTimeOffset now, CancellationToken ct)
    {
        var capacity = new List<(int ResourceId, string LoadMetric, LinearFit Fit, bool PerReplica)>();
        var peaks = new List<(int ResourceId, double? CpuCores, long? MemoryBytes)>();
        int hours = (int)((to - from) / Hour);
        int week = Math.Min(hours, 7 * 24);
        foreach (var r in batch)
        {
            var load = Series(r, r.LoadMetric, history);
            var cpu = Series(r, "cpu_cores", history);
            var memory = Series(r, "memory_bytes", history);
            var replicas = Series(r, "replicas", history);
            if (load is not null && cpu is not null && UsageModels.Capacity(load.Mean, cpu.Mean, replicas is null ? default : replicas.Mean) is { } fit)
            {
                capacity.Add((r.Id, r.LoadMetric, fit, replicas is not null));
            }
            if (cpu is not null || memory is not null)
            {
                var peakCpu = replicas is null || cpu is null ? null : UsageModels.PeakPerReplica(cpu.Max, replicas.Mean, hours - week);
                var peakMemory = replicas is null || memory is null ? null : UsageModels.PeakPerReplica(memory.Max, replicas.Mean, hours - week);
                peaks.Add((r.Id, peakCpu, peakMemory is double b ? (long?)Math.Round(b) : null));
            }
        }
        const string upsertCapacity = """
            INSERT INTO capacity_models (resource_id, load_metric, intercept, slope, r_squared, samples, per_replica, load_min, load_max, data_from, data_to, run_id, fitted_at)
            SELECT c.resource_id, c.load_metric, c.intercept, c.slope, c.r_squared, c.samples, c.per_replica, c.load_min, c.load_max, @from, @to, @runId, @now
            FROM unnest(@resourceIds, @loadMetrics, @intercepts, @slopes, @rSquared, @samples, @perReplica, @loadMin, @loadMax)
                AS c(resource_id, load_metric, intercept, slope, r_squared, samples, per_replica, load_min, load_max)
            ON CONFLICT (resource_id) DO UPDATE SET
                load_metric = EXCLUDED.load_metric, intercept = EXCLUDED.intercept, slope = EXCLUDED.slope, r_squared = EXCLUDED.r_squared,
                samples = EXCLUDED.samples, per_replica = EXCLUDED.per_replica, load_min = EXCLUDED.load_min, load_max = EXCLUDED.load_max,
                data_from = EXCLUDED.data_from, data_to = EXCLUDED.data_to, run_id = EXCLUDED.run_id, fitted_at = EXCLUDED.fitted_at
            """;
        const string upsertPeaks = """
            INSERT INTO weekly_peaks (resource_id, cpu_cores, memory_bytes, window_from, window_to, run_id, computed_at)
            SELECT p.resource_id, p.cpu_cores, p.memory_bytes, @weekFrom, @to, @runId, @now
            FROM unnest(@resourceIds, @cpuCores, @memoryBytes) AS p(resource_id, cpu_cores, memory_bytes)
            ON CONFLICT (resource_id) DO UPDATE SET
                cpu_cores = EXCLUDED.cpu_cores, memory_bytes = EXCLUDED.memory_bytes, window_from = EXCLUDED.window_from,
                window_to = EXCLUDED.window_to, run_id = EXCLUDED.run_id, computed_at = EXCLUDED.computed_at
            """;
        if (capacity.Count > 0)
        {
            await conn.ExecuteAsync(new CommandDefinition(upsertCapacity, new
            {
                resourceIds = capacity.Select(c => c.ResourceId).ToArray(),
                loadMetrics = capacity.Select(c => c.LoadMetric).ToArray(),
                intercepts = capacity.Select(c => c.Fit.Intercept).ToArray(),
                slopes = capacity.Select(c => c.Fit.Slope).ToArray(),
                rSquared = capacity.Select(c => c.Fit.RSquared).ToArray(),
                samples = capacity.Select(c => c.Fit.Samples).ToArray(),
                perReplica = capacity.Select(c => c.PerReplica).ToArray(),
                loadMin = capacity.Select(c => c.Fit.XMin).ToArray(),
                loadMax = capacity.Select(c => c.Fit.XMax).ToArray(),
                from,
                to,
                runId,
                now,
            }, tx, cancellationToken: ct));
        }
        if (peaks.Count > 0)
        {
            await conn.ExecuteAsync(new CommandDefinition(upsertPeaks, new
            {
                resourceIds = peaks.Select(p => p.ResourceId).ToArray(),
                cpuCores = peaks.Select(p => p.CpuCores).ToArray(),
                memoryBytes = peaks.Select(p => p.MemoryBytes).ToArray(),
                weekFrom = to - (Hour * week),
                to,
                runId,
                now,
            }, tx, cancellationToken: ct));
        }
    }

    static HourlyAggregates? Series(BatchResource r, string metric, Dictionary<int, HourlyAggregates> history)
    {
        int i = Array.IndexOf(r.Metrics, metric);
        return i >= 0 && history.TryGetValue(r.SeriesIds[i], out var h) ? h : null;
    }
}
