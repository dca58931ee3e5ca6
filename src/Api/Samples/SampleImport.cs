using System.Buffers.Binary;
using Dapper;
using Forecaster.Api.Database;
using Forecaster.Api.Resources;
using Npgsql;
using NpgsqlTypes;

namespace Forecaster.Api.Samples;

/// <summary>What one accepted write stored.</summary>
/// <param name="Upserted">True when some rows already existed and were overwritten through the merge path.</param>
/// <param name="FinishSeconds">Time from the end of the body to the commit (the rest of a request is parsing and COPY).</param>
/// <param name="Retries">Times the whole write was rolled back and merged again after a deadlock or serialization failure.</param>
public sealed record ImportSummary(long Rows, int Series, IReadOnlyList<string> ResourcesCreated, bool Upserted, double FinishSeconds, int Retries = 0);

/// <summary>
/// The write kept losing to concurrent writers of the same keys (deadlock or serialization failures) after every retry;
/// nothing was stored. Answered with 503 and Retry-After.
/// </summary>
public sealed class SampleWriteConflictException(int attempts, Exception inner)
    : Exception($"the write conflicted with concurrent writers of the same samples {attempts} times ({(inner as PostgresException)?.SqlState})", inner)
{
    public const int RetryAfterSeconds = 1;
}

/// <summary>
/// One all-or-nothing write of samples. Rows of series that already exist stream straight into `samples` through
/// binary COPY while the body is still being read (the fast path: one write per row, as `\copy` does), and every row
/// is also spooled to a temporary file. When that cannot finish, because a row's series is new, or a row is a retry of a
/// stored sample (an upsert), the spool is replayed: new series are registered first, and overwrites go through a
/// staging table and one INSERT ... ON CONFLICT. Nothing is visible until <see cref="CompleteAsync"/> commits;
/// disposing without completing rolls everything back.
/// <para>
/// Concurrent writers of the same keys cannot deadlock (issue 13): the merge, the only step that waits for other writers'
/// rows, creates resources, then series, then samples, each in key order, so every writer takes its locks in one global
/// order. The direct path streams rows in arrival order, so it must never wait: it runs under a short lock_timeout, and a
/// wait that long abandons it for the merge, like a conflict does. Should a deadlock or serialization failure still
/// happen (the rare mix of a committed direct segment and a merge), the whole write is rolled back and merged again
/// from the spool with jittered backoff; after <see cref="MaxAttempts"/> it fails with <see cref="SampleWriteConflictException"/>.
/// </para>
/// </summary>
public sealed class SampleImport : IAsyncDisposable
{
    const int DirectFlag = 1 << 30;

    /// <summary>Attempts of the whole write before it gives up with <see cref="SampleWriteConflictException"/>.</summary>
    public const int MaxAttempts = 6;

    /// <summary>How long the direct path may wait for another writer's row before it falls back to the ordered merge.</summary>
    const string DirectLockTimeout = "100ms";

    readonly NpgsqlConnection _conn;
    readonly NpgsqlConnection _lookup;
    NpgsqlTransaction _tx;
    readonly SamplePartitions _partitions;
    readonly FileStream _spoolFile;
    readonly BinaryWriter _spool;
    readonly Dictionary<string, int> _keys = new(StringComparer.Ordinal);
    readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _keyLookup;
    readonly List<Key> _keyList = [];
    readonly List<Resource> _register = [];
    readonly List<(int Key, DateTime Ts, double Value)> _waiting = [];
    const int WaitingLimit = 1 << 16;
    RawBinaryCopy? _direct;
    readonly OpenBlocks _blocks = new();
    DateTime _min = DateTime.MaxValue, _max = DateTime.MinValue;
    long _pending;

    sealed record Key(string Resource, string Metric, long FirstRow)
    {
        public int? SeriesId { get; set; }
        public bool ResourceExists { get; set; }

        /// <summary>Created by this transaction after the savepoint, so undone when the direct path rolls back.</summary>
        public bool CreatedHere { get; set; }

        /// <summary>The earliest and latest timestamp written to this series: the days whose hourly rollups it makes stale.</summary>
        public DateTime First { get; set; } = DateTime.MaxValue;

        public DateTime Last { get; set; } = DateTime.MinValue;
    }

    readonly bool _createResources;
    readonly DateTimeOffset _now;
    readonly List<string> _created = [];

    SampleImport(NpgsqlConnection conn, NpgsqlConnection lookup, NpgsqlTransaction tx, RawBinaryCopy? direct, SamplePartitions partitions,
        bool createResources, DateTimeOffset now)
    {
        _createResources = createResources;
        _now = now;
        _conn = conn;
        _lookup = lookup;
        _tx = tx;
        _direct = direct;
        _partitions = partitions;
        _keyLookup = _keys.GetAlternateLookup<ReadOnlySpan<char>>();
        // The spool lives on disk, so a request of any size keeps only buffers in memory.
        _spoolFile = new FileStream(Path.Combine(Path.GetTempPath(), $"forecaster-import-{Guid.NewGuid():N}.spool"),
            FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16, FileOptions.DeleteOnClose);
        _spool = new BinaryWriter(_spoolFile);
    }

    public long Rows { get; private set; }

    /// <param name="createResources">Register unknown resources as services (else they are errors at the end).</param>
    public static async Task<SampleImport> BeginAsync(NpgsqlDataSource dataSource, SamplePartitions partitions, bool createResources, DateTimeOffset now, CancellationToken ct)
    {
        var conn = await dataSource.OpenConnectionAsync(ct);
        NpgsqlConnection? lookup = null;
        try
        {
            lookup = await dataSource.OpenConnectionAsync(ct);
            var tx = await conn.BeginTransactionAsync(ct);
            await tx.SaveAsync("direct", ct);
            // Undone with the savepoint when the direct path is abandoned; reset when it succeeds (FinishAsync).
            await conn.ExecuteAsync(new CommandDefinition($"SET LOCAL lock_timeout = '{DirectLockTimeout}'", transaction: tx, cancellationToken: ct));
            RawBinaryCopy? direct;
            try
            {
                direct = await StartCopyAsync(conn, ct);
            }
            catch (PostgresException e) when (IsContention(e))
            {
                // `samples` is locked (a partition being created): every row goes through the merge instead.
                await tx.RollbackAsync("direct", ct);
                direct = null;
            }
            return new SampleImport(conn, lookup, tx, direct, partitions, createResources, now);
        }
        catch
        {
            if (lookup is not null)
            {
                await lookup.DisposeAsync();
            }
            await conn.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// The id of a (resource, metric) pair given as "resource,metric" (the CSV's first two fields, which is
    /// why names never contain commas), or -1 when this request has not seen it yet.
    /// </summary>
    public int FindKey(ReadOnlySpan<char> resourceCommaMetric) =>
        _keyLookup.TryGetValue(resourceCommaMetric, out var k) ? k : -1;

    /// <summary>Registers an already validated (resource, metric) pair first seen at <paramref name="row"/>.</summary>
    public async ValueTask<int> AddKeyAsync(string resource, string metric, long row, CancellationToken ct)
    {
        var composite = string.Concat(resource, ",", metric);
        if (_keys.TryGetValue(composite, out var existing))
        {
            return existing;
        }
        // Looked up on a second connection: the first is busy streaming the COPY.
        const string find = """
            SELECT r.id AS ResourceId, s.id AS SeriesId
            FROM resources r LEFT JOIN series s ON s.resource_id = r.id AND s.metric = @metric
            WHERE r.name = @resource
            """;
        var found = await _lookup.QuerySingleOrDefaultAsync<(int ResourceId, int? SeriesId)?>(
            new CommandDefinition(find, new { resource, metric }, cancellationToken: ct));
        var key = new Key(resource, metric, row) { ResourceExists = found is not null, SeriesId = found?.SeriesId };
        var k = _keyList.Count;
        _keys.Add(composite, k);
        _keyList.Add(key);
        return k;
    }

    /// <summary>
    /// Rows of series this request introduces wait (a bounded batch) until their series exist. Then the COPY is ended,
    /// the series (and with createResources the resources) are created inside the transaction, and a new COPY takes
    /// the waiting rows and whatever follows: new series stream straight in too, at the cost of one pause per batch.
    /// When the segment that ends turns out to hold a stored sample, the direct path is abandoned for the merge.
    /// </summary>
    async Task SwitchSegmentAsync(CancellationToken ct)
    {
        if (!await FinishCopyAsync(_direct!, "direct", ct))
        {
            _direct = null;
            _blocks.Clear();
            AbandonDirect();
            foreach (var (key, ts, value) in _waiting)
            {
                Spool(key, ts, value, direct: false);
            }
            _pending += _waiting.Count;
            _waiting.Clear();
            return;
        }
        var keys = _waiting.Select(w => _keyList[w.Key]).Distinct().Where(k => k.SeriesId is null).ToList();
        var newResources = keys.Where(k => !k.ResourceExists).GroupBy(k => k.Resource).Select(g => g.MinBy(k => k.FirstRow)!).ToList();
        try
        {
            if (newResources.Count > 0)
            {
                _created.AddRange(await CreateResourcesAsync(newResources, _now, ct));
                foreach (var k in keys)
                {
                    k.ResourceExists = true;
                }
            }
            await ResolveSeriesAsync(keys, ct);
            foreach (var k in keys)
            {
                k.CreatedHere = true;
            }
            _direct = await StartCopyAsync(_conn, ct);
        }
        catch (PostgresException e) when (IsContention(e))
        {
            // Another writer holds a resource or series this segment needs: the direct path gives way to the merge.
            _direct = null;
            _blocks.Clear();
            await _tx.RollbackAsync("direct", ct);
            ResetKeys();
            foreach (var (key, ts, value) in _waiting)
            {
                Spool(key, ts, value, direct: false);
            }
            _pending += _waiting.Count;
            _waiting.Clear();
            return;
        }
        foreach (var (key, ts, value) in _waiting)
        {
            _blocks.Add(_direct, _keyList[key].SeriesId!.Value, ts, value);
            Spool(key, ts, value, direct: true);
        }
        _waiting.Clear();
    }

    /// <summary>After a rollback to the savepoint, what this transaction created must be created again at the end.</summary>
    void AbandonDirect()
    {
        foreach (var k in _keyList.Where(k => k.CreatedHere))
        {
            k.SeriesId = null;
            k.CreatedHere = false;
            k.ResourceExists = !_created.Contains(k.Resource) && k.ResourceExists;
        }
        _created.Clear();
    }

    /// <summary>Forgets what any rolled-back work learnt: every key is looked up (and created) again before the merge.</summary>
    void ResetKeys()
    {
        foreach (var k in _keyList)
        {
            k.SeriesId = null;
            k.CreatedHere = false;
            k.ResourceExists = false;
        }
        _created.Clear();
    }

    /// <summary>Waiting on, or deadlocked with, another writer (55P03 only arises under the direct path's lock_timeout).</summary>
    static bool IsContention(PostgresException e) =>
        e.SqlState is PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure or PostgresErrorCodes.LockNotAvailable;

    /// <summary>Jittered exponential backoff: 10-30 ms, then doubling, so that retrying writers do not collide again in step.</summary>
    static TimeSpan Backoff(int attempt) =>
        TimeSpan.FromMilliseconds((10 + Random.Shared.NextDouble() * 20) * (1 << Math.Min(attempt - 1, 6)));

    static Task<RawBinaryCopy> StartCopyAsync(NpgsqlConnection conn, CancellationToken ct) => RawBinaryCopy.BeginAsync(conn, SampleBlocks.Copy, ct);

    /// <summary>Resources to create in the same transaction (when absent), before the samples are resolved.</summary>
    public void RegisterResources(IEnumerable<Resource> resources) =>
        _register.AddRange(resources);

    /// <summary>Adds one validated sample.</summary>
    public async ValueTask AddAsync(int key, DateTime utc, double value, CancellationToken ct)
    {
        if (!TryAdd(key, utc, value))
        {
            await SwitchSegmentAsync(ct);
            TryAdd(key, utc, value);
        }
    }

    /// <summary>True when a sample cannot be added before <see cref="FlushWaitingAsync"/>: the batch of new series' rows is full.</summary>
    public bool MustFlush => _waiting.Count >= WaitingLimit;

    /// <summary>Creates the series whose rows are waiting and streams those rows in (see <see cref="SwitchSegmentAsync"/>).</summary>
    public Task FlushWaitingAsync(CancellationToken ct) => _direct is null || _waiting.Count == 0 ? Task.CompletedTask : SwitchSegmentAsync(ct);

    /// <summary>
    /// Adds one validated sample without awaiting (the bulk path parses spans, which cannot cross an await). False, and
    /// nothing added, when the rows of new series wait in a full batch: call <see cref="FlushWaitingAsync"/> and add again.
    /// </summary>
    public bool TryAdd(int key, DateTime utc, double value)
    {
        var k = _keyList[key];
        var direct = _direct is not null && _partitions.IsKnown(utc);
        if (direct && k.SeriesId is null && (k.ResourceExists || _createResources) && _waiting.Count >= WaitingLimit)
        {
            return false;
        }
        Rows++;
        if (utc < _min)
        {
            _min = utc;
        }
        if (utc > _max)
        {
            _max = utc;
        }
        if (utc < k.First)
        {
            k.First = utc;
        }
        if (utc > k.Last)
        {
            k.Last = utc;
        }
        if (!direct)
        {
            // After a conflict, or in a month without a partition yet: replayed at the end.
            Spool(key, utc, value, direct: false);
            _pending++;
        }
        else if (k.SeriesId is { } seriesId)
        {
            _blocks.Add(_direct!, seriesId, utc, value);
            Spool(key, utc, value, direct: true);
        }
        else if (k.ResourceExists || _createResources)
        {
            _waiting.Add((key, utc, value));
        }
        else
        {
            // An unknown resource: an error at the end, unless registered by RegisterResources (the demo).
            Spool(key, utc, value, direct: false);
            _pending++;
        }
        return true;
    }

    void Spool(int key, DateTime utc, double value, bool direct)
    {
        _spool.Write(direct ? key | DirectFlag : key);
        _spool.Write(utc.Ticks);
        _spool.Write(value);
    }

    /// <summary>
    /// Finishes the write and commits. Returns the errors instead (and stores nothing) when a resource is unknown
    /// and createResources is off. Deadlock and serialization failures are retried (see the class summary).
    /// </summary>
    public async Task<(ImportSummary? Summary, IReadOnlyList<SampleError> Errors)> CompleteAsync(CancellationToken ct)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                var (created, errors, upserted, ensured) = attempt == 1 ? await FinishAsync(ct) : await FinishByMergeAsync(ct);
                if (errors.Count > 0)
                {
                    return (null, errors);
                }
                var written = _keyList.Where(k => k.SeriesId is not null && k.First <= k.Last).ToList();
                await HourlyRollups.MarkStaleAsync(_conn, _tx, [.. written.Select(k => k.SeriesId!.Value)], [.. written.Select(k => k.First)], [.. written.Select(k => k.Last)], ct);
                await _tx.CommitAsync(ct);
                if (ensured)
                {
                    // Only then did ensure_sample_partitions run over the whole range; a direct-only import proves no month between.
                    _partitions.MarkKnown(_min, _max);
                }
                return (new ImportSummary(Rows, _keyList.Count, created, upserted,
                    System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds, attempt - 1), []);
            }
            catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure)
            {
                if (attempt >= MaxAttempts)
                {
                    throw new SampleWriteConflictException(attempt, e);
                }
                await _tx.RollbackAsync(ct);
                await _tx.DisposeAsync();
                await Task.Delay(Backoff(attempt), ct);
                _tx = await _conn.BeginTransactionAsync(ct);
                ResetKeys();
            }
        }
    }

    /// <summary>The first attempt: the direct path's COPY is completed, and what it could not store is merged.</summary>
    async Task<(List<string> Created, IReadOnlyList<SampleError> Errors, bool Upserted, bool Ensured)> FinishAsync(CancellationToken ct)
    {
        var now = _now;
        var createResources = _createResources;
        if (_waiting.Count > 0)
        {
            await SwitchSegmentAsync(ct);
        }
        _spool.Flush();
        if (_direct is not null && await OpenBlocksStoredAsync(ct))
        {
            // A push into an hour that already has a block (a collector pushing every minute): the COPY would fail with
            // a unique violation when it ends, so it is cancelled now and the whole write merged, without that error's round trip.
            await _direct.DisposeAsync();
            await _tx.RollbackAsync("direct", ct);
            _direct = null;
            _blocks.Clear();
            AbandonDirect();
        }
        if (_direct is not null)
        {
            // Blocks still open are complete now: a series' hour that continued across segments is one block.
            _blocks.Flush(_direct);
        }
        var directFailed = _direct is null || !await FinishCopyAsync(_direct, "direct", ct);
        if (directFailed && _direct is not null)
        {
            AbandonDirect();
        }
        if (!directFailed)
        {
            // The direct path is over; from here on waits are ordered (or end in a retry), so no short timeout.
            await _conn.ExecuteAsync(new CommandDefinition("SET LOCAL lock_timeout TO DEFAULT", transaction: _tx, cancellationToken: ct));
        }
        _direct = null;

        var created = new List<string>(_created);
        if (_keyList.Any(k => !k.ResourceExists) || _register.Count > 0)
        {
            var missing = await RegisterResourcesAsync(now, ct);
            if (missing.Count > 0 && !createResources)
            {
                return (created, UnknownResources(missing), false, false);
            }
            created.AddRange(await CreateResourcesAsync(missing, now, ct));
        }
        await ResolveSeriesAsync(_keyList, ct);
        if (Vanished() is { } vanished)
        {
            return (created, vanished, false, false);
        }

        var upserted = directFailed;
        if (directFailed)
        {
            await MergeAsync(onlyPending: false, ct);
        }
        else if (_pending > 0)
        {
            await _conn.ExecuteAsync(new CommandDefinition("SELECT ensure_sample_partitions(@_min, @_max)", new { _min, _max }, _tx, cancellationToken: ct));
            await _tx.SaveAsync("pending", ct);
            var copy = await StartCopyAsync(_conn, ct);
            var pending = new OpenBlocks();
            Replay(onlyPending: true, (k, ts, v) => pending.Add(copy, _keyList[k].SeriesId!.Value, ts, v));
            pending.Flush(copy);
            if (!await FinishCopyAsync(copy, "pending", ct))
            {
                upserted = true;
                await MergeAsync(onlyPending: true, ct);
            }
        }
        return (created, [], upserted, directFailed || _pending > 0);
    }

    /// <summary>A retry in a fresh transaction: resources, series and every spooled row through the ordered merge.</summary>
    async Task<(List<string> Created, IReadOnlyList<SampleError> Errors, bool Upserted, bool Ensured)> FinishByMergeAsync(CancellationToken ct)
    {
        var created = new List<string>();
        var missing = await RegisterResourcesAsync(_now, ct);
        if (missing.Count > 0 && !_createResources)
        {
            return (created, UnknownResources(missing), false, false);
        }
        created.AddRange(await CreateResourcesAsync(missing, _now, ct));
        await ResolveSeriesAsync(_keyList, ct);
        if (Vanished() is { } vanished)
        {
            return (created, vanished, false, false);
        }
        await MergeAsync(onlyPending: false, ct);
        return (created, [], true, true);
    }

    static IReadOnlyList<SampleError> UnknownResources(List<Key> missing) =>
        [.. missing.Take(20).Select(k => new SampleError(k.FirstRow, "resource",
            $"unknown resource '{k.Resource}'; register it with PUT /api/v1/resources/{k.Resource} or pass createResources=true"))];

    /// <summary>A resource deleted while this request streamed: nothing of the request is kept.</summary>
    IReadOnlyList<SampleError>? Vanished() =>
        _keyList.FirstOrDefault(k => k.SeriesId is null) is { } vanished
            ? [new SampleError(vanished.FirstRow, "resource", $"resource '{vanished.Resource}' was deleted while the samples were being written")]
            : null;

    /// <summary>
    /// True when a block still open (for a small request: every block of it) has its (series, hour) stored already, asked
    /// on the lookup connection (the first is busy with the COPY). It sees only committed blocks; one committed meanwhile
    /// still fails the COPY with a unique violation, and the write is merged then, as before.
    /// </summary>
    async Task<bool> OpenBlocksStoredAsync(CancellationToken ct)
    {
        var (ids, hours) = _blocks.Keys();
        if (ids.Length == 0)
        {
            return false;
        }
        const string probe = """
            SELECT EXISTS (SELECT 1 FROM unnest(@ids, @hours) AS k(id, hour) JOIN samples s ON s.series_id = k.id AND s.hour = k.hour)
            """;
        return await _lookup.ExecuteScalarAsync<bool>(new CommandDefinition(probe, new { ids, hours }, cancellationToken: ct));
    }

    /// <summary>
    /// Completes a COPY; false (rolled back to <paramref name="savepoint"/>) when a row was already stored, or another
    /// writer held one of its rows (lock_timeout or deadlock): either way the merge stores those rows.
    /// </summary>
    async Task<bool> FinishCopyAsync(RawBinaryCopy copy, string savepoint, CancellationToken ct)
    {
        try
        {
            await copy.CompleteAsync(ct);
            await copy.DisposeAsync();
            return true;
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation || IsContention(e))
        {
            await copy.DisposeAsync();
            await _tx.RollbackAsync(savepoint, ct);
            return false;
        }
    }

    /// <summary>Inserts the resources given by <see cref="RegisterResources"/>; returns the keys whose resource is still unknown.</summary>
    async Task<List<Key>> RegisterResourcesAsync(DateTimeOffset now, CancellationToken ct)
    {
        await ResourceStore.RegisterAsync(_conn, _tx, _register, now, ct);
        var names = _keyList.Where(k => !k.ResourceExists).Select(k => k.Resource).Distinct().ToArray();
        var known = await ResourceStore.KnownAsync(_conn, names, ct, _tx);
        return [.. _keyList.Where(k => !k.ResourceExists && !known.Contains(k.Resource)).GroupBy(k => k.Resource).Select(g => g.MinBy(k => k.FirstRow)!).OrderBy(k => k.FirstRow)];
    }

    /// <summary>New resources are services whose load metric is the first metric seen for them.</summary>
    async Task<IEnumerable<string>> CreateResourcesAsync(List<Key> missing, DateTimeOffset now, CancellationToken ct)
    {
        // In name order, so that two imports creating the same resources lock them in the same order (no deadlock).
        missing = [.. missing.OrderBy(k => k.Resource, StringComparer.Ordinal)];
        const string create = """
            INSERT INTO resources (name, kind, load_metric, policy_problems, created_at, updated_at)
            SELECT name, 'service', metric, '{}', @now, @now FROM unnest(@names, @metrics) AS m(name, metric)
            ORDER BY name COLLATE "C"
            ON CONFLICT (name) DO NOTHING
            RETURNING name
            """;
        return await _conn.QueryAsync<string>(new CommandDefinition(create,
            new { names = missing.Select(k => k.Resource).ToArray(), metrics = missing.Select(k => k.Metric).ToArray(), now }, _tx, cancellationToken: ct));
    }

    /// <summary>Creates the series this request introduces and learns every key's series id.</summary>
    async Task ResolveSeriesAsync(IEnumerable<Key> keys, CancellationToken ct)
    {
        var unresolved = keys.Where(k => k.SeriesId is null).OrderBy(k => k.Resource, StringComparer.Ordinal).ThenBy(k => k.Metric, StringComparer.Ordinal).ToList();
        if (unresolved.Count == 0)
        {
            return;
        }
        const string resolve = """
            INSERT INTO series (resource_id, metric)
            SELECT r.id, m.metric FROM unnest(@resources, @metrics) AS m(resource, metric) JOIN resources r ON r.name = m.resource
            ORDER BY r.id, m.metric COLLATE "C"
            ON CONFLICT (resource_id, metric) DO NOTHING;
            SELECT r.name AS Resource, s.metric AS Metric, s.id AS Id
            FROM unnest(@resources, @metrics) AS m(resource, metric)
            JOIN resources r ON r.name = m.resource JOIN series s ON s.resource_id = r.id AND s.metric = m.metric;
            """;
        var ids = (await _conn.QueryAsync<(string Resource, string Metric, int Id)>(new CommandDefinition(resolve, new
        {
            resources = unresolved.Select(k => k.Resource).ToArray(),
            metrics = unresolved.Select(k => k.Metric).ToArray(),
        }, _tx, cancellationToken: ct))).ToDictionary(x => (x.Resource, x.Metric), x => x.Id);
        foreach (var k in unresolved)
        {
            k.SeriesId = ids.TryGetValue((k.Resource, k.Metric), out var id) ? id : null;
        }
    }

    /// <summary>
    /// The upsert path: spooled rows into a staging table, then one INSERT ... ON CONFLICT DO UPDATE that takes the rows
    /// in (series, timestamp) order, the order of the primary key, which is what keeps concurrent merges from deadlocking.
    /// A request may repeat a (series, timestamp); the upsert cannot touch one row twice, so the last occurrence wins.
    /// </summary>
    async Task MergeAsync(bool onlyPending, CancellationToken ct)
    {
        await _conn.ExecuteAsync(new CommandDefinition(
            "CREATE TEMP TABLE import_staging (series_id integer NOT NULL, ts timestamptz NOT NULL, value double precision NOT NULL, seq bigint NOT NULL) ON COMMIT DROP",
            transaction: _tx, cancellationToken: ct));
        var staging = await _conn.BeginBinaryImportAsync("COPY import_staging (series_id, ts, value, seq) FROM STDIN (FORMAT BINARY)", ct);
        staging.Timeout = TimeSpan.FromHours(1);
        long seq = 0;
        // Rows already strictly in key order (a bulk file sorted by series and time, say) need neither the sort nor the dedupe.
        var ordered = true;
        // Every row at the start of its hour: once deduplicated, each is alone in its hour (a one-point block).
        var hourly = true;
        (int Series, DateTime Ts) previous = (int.MinValue, DateTime.MinValue);
        Replay(onlyPending, (k, ts, v) =>
        {
            var id = _keyList[k].SeriesId!.Value;
            ordered = ordered && (id > previous.Series || (id == previous.Series && ts > previous.Ts));
            hourly = hourly && ts.Ticks % TimeSpan.TicksPerHour == 0;
            previous = (id, ts);
            WriteRow(staging, id, ts, v);
            staging.Write(seq++, NpgsqlDbType.Bigint);
        });
        await staging.CompleteAsync(ct);
        await staging.DisposeAsync();
        await _conn.ExecuteAsync(new CommandDefinition("SELECT ensure_sample_partitions(@_min, @_max)", new { _min, _max }, _tx, cancellationToken: ct));

        // A retry of identical rows writes nothing (the WHERE), which is what makes retries cheap as well as safe. The
        // sort is in memory up to a few million rows.
        // Rows in strictly increasing key order repeat no (series, ts), so they need no dedupe (their sort is one pass
        // over presorted input). The SQL is SampleBlocks.Merge's; rows each at the start of its hour (hourly data) are
        // one-point blocks as they stand and need no grouping (SampleBlocks.MergeOnePoints).
        await _conn.ExecuteAsync(new CommandDefinition("SET LOCAL work_mem = '64MB'", transaction: _tx, cancellationToken: ct));
        var merge = hourly ? SampleBlocks.MergeOnePoints("import_staging", dedupe: !ordered) : SampleBlocks.Merge("import_staging", dedupe: !ordered);
        await _conn.ExecuteAsync(new CommandDefinition(merge, transaction: _tx, cancellationToken: ct, commandTimeout: 0));
    }

    /// <summary>Reads the spool back: every row, or only those that did not go straight into `samples`.</summary>
    void Replay(bool onlyPending, Action<int, DateTime, double> write)
    {
        _spoolFile.Position = 0;
        using var reader = new BinaryReader(_spoolFile, System.Text.Encoding.UTF8, leaveOpen: true);
        for (long i = 0; i < Rows; i++)
        {
            var flagged = reader.ReadInt32();
            var ts = new DateTime(reader.ReadInt64(), DateTimeKind.Utc);
            var value = reader.ReadDouble();
            if (onlyPending && (flagged & DirectFlag) != 0)
            {
                continue;
            }
            write(flagged & ~DirectFlag, ts, value);
        }
    }

    static void WriteRow(NpgsqlBinaryImporter copy, int seriesId, DateTime ts, double value)
    {
        // Synchronous writes into Npgsql's buffer: four awaited calls per row cost more CPU than the row itself, and
        // the rare flush to a loopback or LAN socket is short.
        copy.StartRow();
        copy.Write(seriesId, NpgsqlDbType.Integer);
        copy.Write(ts, NpgsqlDbType.TimestampTz);
        copy.Write(value, NpgsqlDbType.Double);
    }

    /// <summary>One series' points for <see cref="WriteSeriesAsync"/>: validated values, in strictly increasing time.</summary>
    /// <param name="MayExist">False when the caller knows of no stored rows in the range (a backfill): then the rows are
    /// tried straight into `samples` before the merge.</param>
    public sealed record SeriesPoints(int ResourceId, string Metric, List<(DateTime Ts, double Value)> Points, bool MayExist);

    /// <summary>
    /// The bulk entry point for pulled history (Prometheus sources): many series' points in the caller's transaction, so
    /// that the caller can commit them with its own bookkeeping (a watermark) or roll them all back. Series are created
    /// as needed. Rows of series with nothing stored in their range go straight into `samples` through one binary COPY
    /// (as the import's direct path does); the rest, and everything when that COPY meets a stored row or another writer,
    /// go through a staging table and one INSERT ... ON CONFLICT in (series, timestamp) order, the global lock order that
    /// keeps concurrent writers from deadlocking (see the class summary). Returns the rows stored per item, -1 where
    /// the resource no longer exists (nothing of it is stored).
    /// </summary>
    public static async Task<long[]> WriteSeriesAsync(NpgsqlConnection conn, NpgsqlTransaction tx, SamplePartitions partitions,
        IReadOnlyList<SeriesPoints> items, CancellationToken ct, ILogger? log = null)
    {
        var stored = new long[items.Count];
        var ids = await SeriesIdsAsync(conn, tx, items, ct);
        var order = Enumerable.Range(0, items.Count).Where(i => items[i].Points.Count > 0 && ids[i] is not null).OrderBy(i => ids[i]).ToList();
        for (var i = 0; i < items.Count; i++)
        {
            stored[i] = ids[i] is null ? -1 : 0;
        }
        if (order.Count == 0)
        {
            return stored;
        }
        var min = order.Min(i => items[i].Points[0].Ts);
        var max = order.Max(i => items[i].Points[^1].Ts);
        await partitions.EnsureAsync(min, max, ct);

        // A backfill over a range that already holds rows (a changed query, pushed samples) is an upsert.
        var maybe = order.Where(i => items[i].MayExist).ToHashSet();
        var unsure = order.Where(i => !items[i].MayExist).ToList();
        if (unsure.Count > 0)
        {
            const string existing = """
                SELECT k.id FROM unnest(@ids, @froms, @tos) AS k(id, from_ts, to_ts)
                WHERE EXISTS (SELECT 1 FROM samples s WHERE s.series_id = k.id
                    AND s.hour BETWEEN date_bin('1 hour', k.from_ts, timestamptz '2000-01-01 00:00:00+00') AND k.to_ts)
                """;
            var hit = (await conn.QueryAsync<int>(new CommandDefinition(existing, new
            {
                ids = unsure.Select(i => ids[i]!.Value).ToArray(),
                froms = unsure.Select(i => items[i].Points[0].Ts).ToArray(),
                tos = unsure.Select(i => items[i].Points[^1].Ts).ToArray(),
            }, tx, cancellationToken: ct))).ToHashSet();
            maybe.UnionWith(unsure.Where(i => hit.Contains(ids[i]!.Value)));
        }

        var direct = order.Where(i => !maybe.Contains(i)).ToList();
        if (direct.Count > 0)
        {
            await tx.SaveAsync("bulk_direct", ct);
            await conn.ExecuteAsync(new CommandDefinition($"SET LOCAL lock_timeout = '{DirectLockTimeout}'", transaction: tx, cancellationToken: ct));
            var ok = false;
            try
            {
                await CopyBlocksAsync(conn, [.. direct.Select(i => (ids[i]!.Value, items[i].Points))], ct);
                ok = true;
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation || IsContention(e))
            {
                // A row appeared meanwhile, or another writer holds one: these series are merged with the rest.
                log?.LogInformation("Direct COPY of {Series} series fell back to the merge ({SqlState}: {Message})", direct.Count, e.SqlState, e.MessageText);
            }
            if (ok)
            {
                await conn.ExecuteAsync(new CommandDefinition("SET LOCAL lock_timeout TO DEFAULT", transaction: tx, cancellationToken: ct));
                await tx.ReleaseAsync("bulk_direct", ct);
                foreach (var i in direct)
                {
                    stored[i] = items[i].Points.Count;
                }
            }
            else
            {
                await tx.RollbackAsync("bulk_direct", ct);
                maybe.UnionWith(direct);
            }
        }

        await HourlyRollups.MarkStaleAsync(conn, tx, [.. order.Select(i => ids[i]!.Value)], [.. order.Select(i => items[i].Points[0].Ts)], [.. order.Select(i => items[i].Points[^1].Ts)], ct);

        var merged = order.Where(maybe.Contains).ToList();
        if (merged.Count > 0)
        {
            await conn.ExecuteAsync(new CommandDefinition(
                "CREATE TEMP TABLE bulk_staging (series_id integer NOT NULL, ts timestamptz NOT NULL, value double precision NOT NULL) ON COMMIT DROP",
                transaction: tx, cancellationToken: ct));
            await CopyRowsAsync(conn, "COPY bulk_staging (series_id, ts, value) FROM STDIN (FORMAT BINARY)", [.. merged.Select(i => (ids[i]!.Value, items[i].Points))], ct);
            // The staging rows are distinct (each series once, its points strictly increasing in time); identical points write nothing.
            await conn.ExecuteAsync(new CommandDefinition(SampleBlocks.Merge("bulk_staging", dedupe: false), transaction: tx, cancellationToken: ct, commandTimeout: 0));
            foreach (var i in merged)
            {
                stored[i] = items[i].Points.Count;
            }
        }
        return stored;
    }

    /// <summary>Each item's series id, the series created where missing (in key order); null where the resource is gone.</summary>
    static async Task<int?[]> SeriesIdsAsync(NpgsqlConnection conn, NpgsqlTransaction tx, IReadOnlyList<SeriesPoints> items, CancellationToken ct)
    {
        // Only missing series are inserted: an INSERT that conflicts still draws an identity value, and pulls repeat every few minutes.
        const string resolve = """
            INSERT INTO series (resource_id, metric)
            SELECT r.id, m.metric FROM unnest(@resourceIds, @metrics) AS m(resource_id, metric) JOIN resources r ON r.id = m.resource_id
            WHERE NOT EXISTS (SELECT 1 FROM series s WHERE s.resource_id = m.resource_id AND s.metric = m.metric)
            ORDER BY r.id, m.metric COLLATE "C"
            ON CONFLICT (resource_id, metric) DO NOTHING;
            SELECT s.resource_id AS ResourceId, s.metric AS Metric, s.id AS Id
            FROM unnest(@resourceIds, @metrics) AS m(resource_id, metric)
            JOIN resources r ON r.id = m.resource_id JOIN series s ON s.resource_id = r.id AND s.metric = m.metric;
            """;
        var found = (await conn.QueryAsync<(int ResourceId, string Metric, int Id)>(new CommandDefinition(resolve, new
        {
            resourceIds = items.Select(i => i.ResourceId).ToArray(),
            metrics = items.Select(i => i.Metric).ToArray(),
        }, tx, cancellationToken: ct))).ToDictionary(x => (x.ResourceId, x.Metric), x => x.Id);
        return [.. items.Select(i => found.TryGetValue((i.ResourceId, i.Metric), out var id) ? id : (int?)null)];
    }

    /// <summary>
    /// Streams (series_id, ts, value) rows through a <see cref="RawBinaryCopy"/>: three length-prefixed big-endian fields,
    /// 38 bytes a row laid out here. The COPY fails (a <see cref="PostgresException"/>) when it ends.
    /// </summary>
    static async Task CopyRowsAsync(NpgsqlConnection conn, string copy, List<(int SeriesId, List<(DateTime Ts, double Value)> Points)> series, CancellationToken ct)
    {
        const int Row = 2 + 4 + 4 + 4 + 8 + 4 + 8;
        await using var rows = await RawBinaryCopy.BeginAsync(conn, copy, ct);
        foreach (var (seriesId, points) in series)
        {
            foreach (var (ts, value) in points)
            {
                var row = rows.Row(Row);
                BinaryPrimitives.WriteInt16BigEndian(row, 3);
                BinaryPrimitives.WriteInt32BigEndian(row[2..], 4);
                BinaryPrimitives.WriteInt32BigEndian(row[6..], seriesId);
                BinaryPrimitives.WriteInt32BigEndian(row[10..], 8);
                // timestamptz: microseconds since 2000-01-01 UTC.
                BinaryPrimitives.WriteInt64BigEndian(row[14..], (ts.Ticks - PostgresBinary.EpochTicks) / 10);
                BinaryPrimitives.WriteInt32BigEndian(row[22..], 8);
                BinaryPrimitives.WriteDoubleBigEndian(row[26..], value);
            }
        }
        await rows.CompleteAsync(ct);
    }

    /// <summary>
    /// Streams series' points as blocks (one row per series and hour, <see cref="SampleBlocks.WriteRaw"/>) through a raw
    /// binary COPY into `samples`. Each series' points are strictly increasing in time, so an hour's points are adjacent.
    /// The COPY fails (a <see cref="PostgresException"/>, a unique violation when a block of the same hour is stored) when it ends.
    /// </summary>
    static async Task CopyBlocksAsync(NpgsqlConnection conn, List<(int SeriesId, List<(DateTime Ts, double Value)> Points)> series, CancellationToken ct)
    {
        await using var copy = await StartCopyAsync(conn, ct);
        foreach (var (seriesId, list) in series)
        {
            var points = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(list);
            var start = 0;
            while (start < points.Length)
            {
                var hour = SampleBlocks.HourTicks(points[start].Ts.Ticks);
                var end = start + 1;
                while (end < points.Length && points[end].Ts.Ticks - hour < TimeSpan.TicksPerHour)
                {
                    end++;
                }
                SampleBlocks.Write(copy, seriesId, hour, points[start..end]);
                start = end;
            }
        }
        await copy.CompleteAsync(ct);
    }

    public async ValueTask DisposeAsync()
    {
        if (_direct is not null)
        {
            // Disposing an unfinished COPY cancels it; the transaction then rolls back with the connection.
            await _direct.DisposeAsync();
        }
        await _spool.DisposeAsync();
        await _tx.DisposeAsync();
        await _conn.DisposeAsync();
        await _lookup.DisposeAsync();
    }
}
