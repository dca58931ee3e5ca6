using Dapper;
using Forecaster.Api.Database;
using Npgsql;
using NpgsqlTypes;

namespace Forecaster.Api.Samples;

/// <summary>What one accepted write stored.</summary>
/// <param name="MergeSeconds">Time spent upserting from staging and committing (the rest of a request is parsing and COPY).</param>
public sealed record ImportSummary(long Rows, int Series, IReadOnlyList<string> ResourcesCreated, double MergeSeconds);

/// <summary>
/// One all-or-nothing write of samples: rows stream through binary COPY into a temporary staging table keyed by a
/// small per-request id of (resource, metric), then one statement upserts them into `samples`. Nothing is visible
/// until <see cref="CompleteAsync"/> commits; disposing without completing rolls everything back.
/// </summary>
public sealed class SampleImport : IAsyncDisposable
{
    readonly NpgsqlConnection _conn;
    readonly NpgsqlTransaction _tx;
    readonly NpgsqlBinaryImporter _staging;
    readonly SamplePartitions _partitions;
    readonly Dictionary<string, int> _keys = new(StringComparer.Ordinal);
    readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _keyLookup;
    readonly List<(string Resource, string Metric, long FirstRow)> _keyList = [];
    readonly List<object> _register = [];
    DateTime _min = DateTime.MaxValue, _max = DateTime.MinValue;
    bool _stagingOpen = true;

    SampleImport(NpgsqlConnection conn, NpgsqlTransaction tx, NpgsqlBinaryImporter staging, SamplePartitions partitions)
    {
        _conn = conn;
        _tx = tx;
        _staging = staging;
        _partitions = partitions;
        _keyLookup = _keys.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    public long Rows { get; private set; }

    public static async Task<SampleImport> BeginAsync(NpgsqlDataSource dataSource, SamplePartitions partitions, CancellationToken ct)
    {
        var conn = await dataSource.OpenConnectionAsync(ct);
        try
        {
            var tx = await conn.BeginTransactionAsync(ct);
            const string staging = """
                CREATE TEMP TABLE import_staging (k integer NOT NULL, ts timestamptz NOT NULL, value double precision NOT NULL) ON COMMIT DROP;
                CREATE TEMP TABLE import_keys (k integer NOT NULL, resource text NOT NULL, metric text NOT NULL, first_row bigint NOT NULL) ON COMMIT DROP;
                """;
            await conn.ExecuteAsync(new CommandDefinition(staging, transaction: tx, cancellationToken: ct));
            var importer = await conn.BeginBinaryImportAsync("COPY import_staging (k, ts, value) FROM STDIN (FORMAT BINARY)", ct);
            // A bulk load may stream for many minutes; the request itself bounds it.
            importer.Timeout = TimeSpan.FromHours(1);
            return new SampleImport(conn, tx, importer, partitions);
        }
        catch
        {
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
    public int AddKey(string resource, string metric, long row)
    {
        var composite = string.Concat(resource, ",", metric);
        if (_keys.TryGetValue(composite, out var existing))
        {
            return existing;
        }
        var k = _keyList.Count;
        _keys.Add(composite, k);
        _keyList.Add((resource, metric, row));
        return k;
    }

    /// <summary>Resources to create in the same transaction (when absent), before the samples are resolved.</summary>
    public void RegisterResources(IEnumerable<(string Name, string Kind, string Group, string LoadMetric, string Policy)> resources) =>
        _register.AddRange(resources.Select(r => new { r.Name, r.Kind, r.Group, r.LoadMetric, r.Policy }));

    /// <summary>Adds one validated sample.</summary>
    public async ValueTask AddAsync(int key, DateTime utc, double value, CancellationToken ct)
    {
        await _staging.StartRowAsync(ct);
        await _staging.WriteAsync(key, NpgsqlDbType.Integer, ct);
        await _staging.WriteAsync(utc, NpgsqlDbType.TimestampTz, ct);
        await _staging.WriteAsync(value, NpgsqlDbType.Double, ct);
        if (utc < _min)
        {
            _min = utc;
        }
        if (utc > _max)
        {
            _max = utc;
        }
        Rows++;
    }

    /// <summary>
    /// Resolves resources, upserts every staged row and commits. Returns the errors instead (and stores nothing)
    /// when a resource is unknown and <paramref name="createResources"/> is off.
    /// </summary>
    public async Task<(ImportSummary? Summary, IReadOnlyList<SampleError> Errors)> CompleteAsync(bool createResources, DateTimeOffset now, CancellationToken ct)
    {
        await _staging.CompleteAsync(ct);
        await _staging.DisposeAsync();
        _stagingOpen = false;

        await using (var keys = await _conn.BeginBinaryImportAsync("COPY import_keys (k, resource, metric, first_row) FROM STDIN (FORMAT BINARY)", ct))
        {
            keys.Timeout = TimeSpan.FromHours(1);
            for (var k = 0; k < _keyList.Count; k++)
            {
                var (resource, metric, row) = _keyList[k];
                await keys.WriteRowAsync(ct, k, resource, metric, row);
            }
            await keys.CompleteAsync(ct);
        }

        if (_register.Count > 0)
        {
            const string register = """
                INSERT INTO resources (name, kind, "group", load_metric, policy, created_at, updated_at)
                VALUES (@Name, @Kind, @Group, @LoadMetric, @Policy::jsonb, @now, @now)
                ON CONFLICT (name) DO NOTHING
                """;
            foreach (var r in _register)
            {
                var p = new DynamicParameters(r);
                p.Add("now", now);
                await _conn.ExecuteAsync(new CommandDefinition(register, p, _tx, cancellationToken: ct));
            }
        }

        const string unknown = """
            SELECT k.resource, min(k.first_row) AS row
            FROM import_keys k LEFT JOIN resources r ON r.name = k.resource
            WHERE r.id IS NULL
            GROUP BY k.resource
            ORDER BY 2
            """;
        var missing = (await _conn.QueryAsync<(string Resource, long Row)>(new CommandDefinition(unknown, transaction: _tx, cancellationToken: ct))).ToList();
        var created = new List<string>();
        if (missing.Count > 0)
        {
            if (!createResources)
            {
                return (null, [.. missing.Take(20).Select(m => new SampleError(m.Row, "resource",
                    $"unknown resource '{m.Resource}'; register it with PUT /api/v1/resources/{m.Resource} or pass createResources=true"))]);
            }
            // New resources are services whose load metric is the first metric seen for them.
            const string create = """
                INSERT INTO resources (name, kind, load_metric, created_at, updated_at)
                SELECT DISTINCT ON (k.resource) k.resource, 'service', k.metric, @now, @now
                FROM import_keys k
                WHERE NOT EXISTS (SELECT 1 FROM resources r WHERE r.name = k.resource)
                ORDER BY k.resource, k.first_row
                ON CONFLICT (name) DO NOTHING
                RETURNING name
                """;
            created.AddRange(await _conn.QueryAsync<string>(new CommandDefinition(create, new { now }, _tx, cancellationToken: ct)));
        }

        const string series = """
            INSERT INTO series (resource_id, metric)
            SELECT r.id, k.metric FROM import_keys k JOIN resources r ON r.name = k.resource
            ON CONFLICT (resource_id, metric) DO NOTHING;
            CREATE TEMP TABLE import_map ON COMMIT DROP AS
            SELECT k.k, s.id AS series_id
            FROM import_keys k
            JOIN resources r ON r.name = k.resource
            JOIN series s ON s.resource_id = r.id AND s.metric = k.metric;
            ANALYZE import_map;
            """;
        await _conn.ExecuteAsync(new CommandDefinition(series, transaction: _tx, cancellationToken: ct));

        var merging = System.Diagnostics.Stopwatch.GetTimestamp();
        if (Rows > 0)
        {
            await _partitions.EnsureAsync(_min, _max, ct);
            await MergeAsync(ct);
        }
        await _tx.CommitAsync(ct);
        return (new ImportSummary(Rows, _keyList.Count, created, System.Diagnostics.Stopwatch.GetElapsedTime(merging).TotalSeconds), []);
    }

    async Task MergeAsync(CancellationToken ct)
    {
        const string merge = """
            INSERT INTO samples (series_id, ts, value)
            SELECT m.series_id, st.ts, st.value
            FROM import_staging st JOIN import_map m ON m.k = st.k
            ON CONFLICT (series_id, ts) DO UPDATE SET value = EXCLUDED.value
            """;
        // A request may repeat a (series, timestamp); the upsert cannot touch one row twice, so such a request is
        // merged again keeping the last occurrence (the staging heap holds rows in arrival order, hence ctid).
        const string mergeDistinct = """
            INSERT INTO samples (series_id, ts, value)
            SELECT DISTINCT ON (m.series_id, st.ts) m.series_id, st.ts, st.value
            FROM import_staging st JOIN import_map m ON m.k = st.k
            ORDER BY m.series_id, st.ts, st.ctid DESC
            ON CONFLICT (series_id, ts) DO UPDATE SET value = EXCLUDED.value
            """;
        await _tx.SaveAsync("merge", ct);
        try
        {
            await _conn.ExecuteAsync(new CommandDefinition(merge, transaction: _tx, cancellationToken: ct, commandTimeout: 0));
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.CardinalityViolation)
        {
            await _tx.RollbackAsync("merge", ct);
            await _conn.ExecuteAsync(new CommandDefinition(mergeDistinct, transaction: _tx, cancellationToken: ct, commandTimeout: 0));
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_stagingOpen)
        {
            // Disposing an unfinished COPY cancels it; the transaction then rolls back with the connection.
            try
            {
                await _staging.DisposeAsync();
            }
            catch (NpgsqlException)
            {
                // The connection is being discarded anyway.
            }
        }
        await _tx.DisposeAsync();
        await _conn.DisposeAsync();
    }
}
