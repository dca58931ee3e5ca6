using Dapper;
using Npgsql;

namespace Forecaster.Api.Training;

/// <summary>A training run as stored: status, progress counters and timing.</summary>
public sealed record TrainingRunRow
{
    public long Id { get; init; }
    public string Trigger { get; init; } = "";
    public string Status { get; init; } = "";
    public string[]? Resources { get; init; }
    public int ShardCount { get; init; }
    public int SeriesTotal { get; init; }
    public int SeriesDone { get; init; }
    public int SeriesFailed { get; init; }
    public DateTime CreatedAt { get; init; }
    public DateTime? StartedAt { get; init; }
    public DateTime? FinishedAt { get; init; }
    public string? Error { get; init; }
    public string? Planning { get; init; }

    public const string Columns = """
        id, trigger, status, resources, shard_count AS ShardCount, series_total AS SeriesTotal, series_done AS SeriesDone,
        series_failed AS SeriesFailed, created_at AS CreatedAt, started_at AS StartedAt, finished_at AS FinishedAt, error, planning
        """;
}

/// <summary>
/// The resources a shard trains: those whose slot (<see cref="TrainingRuns.SlotOf"/>, one of the run's <paramref name="Slots"/>)
/// is in [<paramref name="From"/>, <paramref name="To"/>).
/// </summary>
public readonly record struct ShardSlots(int Slots, int From, int To);

/// <summary>One shard of a run as stored.</summary>
public sealed record TrainingShardRow(
    int Shard, string Status, string? InstanceId, int SeriesTotal, int SeriesDone, int SeriesFailed, DateTime? StartedAt, DateTime? FinishedAt, string? Error);

/// <summary>
/// The lifecycle of training runs in the database: created queued (at most one queued or running, by a unique index), started
/// with one row per shard, advanced by the shards' batches, and finalized by whichever shard finishes last.
/// </summary>
public static class TrainingRuns
{
    /// <summary>Creates a queued run, or returns the id of the run already queued or running (and null) when there is one.</summary>
    public static async Task<(long? Created, long? Active)> CreateAsync(
        NpgsqlDataSource db, string trigger, string[]? resources, DateTimeOffset now, CancellationToken ct)
    {
        const string insert = """
            INSERT INTO training_runs (trigger, status, resources, created_at)
            VALUES (@trigger, 'queued', @resources, @now)
            ON CONFLICT DO NOTHING
            RETURNING id
            """;
        await using var conn = await db.OpenConnectionAsync(ct);
        var id = await conn.ExecuteScalarAsync<long?>(new CommandDefinition(insert, new { trigger, resources, now }, cancellationToken: ct));
        if (id is not null)
        {
            return (id, null);
        }
        var active = await conn.ExecuteScalarAsync<long?>(new CommandDefinition(
            "SELECT id FROM training_runs WHERE status IN ('queued', 'running') ORDER BY id LIMIT 1", cancellationToken: ct));
        return (null, active);
    }

    /// <summary>
    /// A resource's slot, as SQL over <c>r.id</c> and <c>@slots</c>: the fractional part of its id times the golden ratio,
    /// scaled to the slots. Consecutive ids spread evenly over every range of slots (the golden ratio's Weyl sequence has the
    /// lowest discrepancy: Knuth, TAOCP vol. 3, section 6.4), so each shard's range holds its share of a fleet of 25 as of one
    /// of 100,000, of old and new resources alike; a plain modulo would put ids 1 to 25 all in the first shard's slots.
    /// </summary>
    public const string SlotOf = "floor((r.id * 0.6180339887498949::float8 - floor(r.id * 0.6180339887498949::float8)) * @slots)::int";

    /// <summary>
    /// How a run's resources are split into <paramref name="shards"/> shards: each resource has one of <c>Slots</c> slots
    /// (<see cref="SlotOf"/>), and shard s takes the slots from <c>Bounds[s]</c> up to <c>Bounds[s + 1]</c>; the many slots
    /// let shards differ in size.
    /// </summary>
    /// <remarks>
    /// Shards shrink linearly towards the end of the run, the first up to eight times the last (guided self-scheduling,
    /// Polychronopoulos and Kuck, IEEE Trans. Computers 36(12), 1987): instances take the next shard as they finish one, so
    /// they start on large shards (few starts and ends) and finish on small ones, and when the last one ends the others have
    /// been idle for at most a small shard's time rather than a whole average one (issue 16). The ratio is the shard count
    /// over two, between one and eight: with few shards, as many as the instances perhaps, equal shards end together. At 16
    /// shards of 20,000 series the last holds about 270 series (under a second's fitting); a ratio of four left 500, and the
    /// instance that ran out of shards first waited 1.5-1.8 s for the other (bench/README.md, session 13).
    /// </remarks>
    public static (int Slots, int[] Bounds) Layout(int shards)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(shards, 1);
        double ratio = Math.Clamp(shards / 2.0, 1, 8);
        int slots = 64 * shards;
        double Weight(int s) => shards == 1 ? 1 : ratio - ((ratio - 1) * s / (shards - 1));
        double total = Enumerable.Range(0, shards).Sum(Weight), sum = 0;
        var bounds = new int[shards + 1];
        for (int s = 0; s < shards; s++)
        {
            sum += Weight(s);
            bounds[s + 1] = s == shards - 1 ? slots : (int)Math.Round(slots * sum / total);
        }
        return (slots, bounds);
    }

    /// <summary>
    /// Moves a queued run to running: lays its shards out (<see cref="Layout"/>), counts the series of each and writes the
    /// shard rows. Returns the shards to start: all of them, or, for a run already running (its start delivered again after
    /// a crash), those still pending; none for a finished run.
    /// </summary>
    public static async Task<IReadOnlyList<int>> StartAsync(NpgsqlDataSource db, long runId, int shards, DateTimeOffset now, CancellationToken ct)
    {
        var (slots, bounds) = Layout(shards);
        const string start = """
            UPDATE training_runs SET status = 'running', shard_count = @shards, shard_slots = @slots, started_at = @now, heartbeat_at = @now
            WHERE id = @runId AND status = 'queued'
            RETURNING resources
            """;
        // The series a run trains: each resource's load metric, cpu_cores and memory_bytes, counted per slot, summed per shard.
        const string count = $"""
            WITH per_slot AS (
                SELECT {SlotOf} AS slot, count(*)::int AS n
                FROM resources r JOIN series s ON s.resource_id = r.id
                WHERE s.metric IN (r.load_metric, 'cpu_cores', 'memory_bytes')
                  AND (@resources::text[] IS NULL OR r.name = ANY(@resources))
                GROUP BY 1
            )
            INSERT INTO training_shards (run_id, shard, status, series_total, slot_from, slot_to)
            SELECT @runId, (l.n - 1)::int, 'pending', coalesce((SELECT sum(p.n) FROM per_slot p WHERE p.slot >= l.slot_from AND p.slot < l.slot_to), 0),
                   l.slot_from, l.slot_to
            FROM unnest(@slotFrom, @slotTo) WITH ORDINALITY AS l(slot_from, slot_to, n);
            UPDATE training_runs SET series_total = (SELECT sum(series_total) FROM training_shards WHERE run_id = @runId)
            WHERE id = @runId;
            """;
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        var started = (await conn.QueryAsync<string[]?>(new CommandDefinition(start, new { runId, shards, slots, now }, tx, cancellationToken: ct))).ToList();
        if (started.Count == 0)
        {
            const string pending = """
                SELECT sh.shard FROM training_shards sh JOIN training_runs r ON r.id = sh.run_id
                WHERE sh.run_id = @runId AND r.status = 'running' AND sh.status = 'pending'
                ORDER BY sh.shard
                """;
            return [.. await conn.QueryAsync<int>(new CommandDefinition(pending, new { runId }, tx, cancellationToken: ct))];
        }
        await conn.ExecuteAsync(new CommandDefinition(count, new { runId, slots, slotFrom = bounds[..^1], slotTo = bounds[1..], resources = started[0] }, tx, cancellationToken: ct));
        await tx.CommitAsync(ct);
        return [.. Enumerable.Range(0, shards)];
    }

    /// <summary>The slots shard <paramref name="shard"/> of run <paramref name="runId"/> takes.</summary>
    public static async Task<ShardSlots> ShardSlotsAsync(NpgsqlConnection conn, long runId, int shard, CancellationToken ct)
    {
        const string slots = """
            SELECT r.shard_slots AS "Slots", sh.slot_from AS "From", sh.slot_to AS "To" FROM training_runs r JOIN training_shards sh ON sh.run_id = r.id
            WHERE r.id = @runId AND sh.shard = @shard
            """;
        // A started run has at least one slot per shard: no slots means no such shard.
        var found = await conn.QuerySingleOrDefaultAsync<ShardSlots>(new CommandDefinition(slots, new { runId, shard }, cancellationToken: ct));
        return found.Slots > 0 ? found : throw new InvalidOperationException($"training run {runId} has no shard {shard}");
    }

    /// <summary>
    /// Marks a shard running on <paramref name="instance"/>; false when it is finished or its run is no longer running (nothing
    /// to do). A shard still marked running was left by a stopped instance: its caller holds the shard's lease, so nobody else runs it.
    /// </summary>
    public static async Task<bool> ClaimShardAsync(NpgsqlDataSource db, long runId, int shard, string instance, DateTimeOffset now, CancellationToken ct)
    {
        const string claim = """
            UPDATE training_shards sh SET status = 'running', instance_id = @instance, started_at = coalesce(sh.started_at, @now)
            FROM training_runs r
            WHERE sh.run_id = @runId AND sh.shard = @shard AND r.id = sh.run_id AND r.status = 'running'
              AND sh.status IN ('pending', 'running')
            """;
        await using var conn = await db.OpenConnectionAsync(ct);
        return await conn.ExecuteAsync(new CommandDefinition(claim, new { runId, shard, instance, now }, cancellationToken: ct)) == 1;
    }

    /// <summary>The series of a shard not yet written: what is left to fit.</summary>
    public static async Task<int> ShardSeriesLeftAsync(NpgsqlDataSource db, long runId, int shard, CancellationToken ct)
    {
        const string left = "SELECT series_total - series_done FROM training_shards WHERE run_id = @runId AND shard = @shard";
        await using var conn = await db.OpenConnectionAsync(ct);
        return await conn.ExecuteScalarAsync<int>(new CommandDefinition(left, new { runId, shard }, cancellationToken: ct));
    }

    /// <summary>Hands a running shard back (its instance is stopping): pending again, for whichever instance takes its job next.</summary>
    public static async Task ReleaseShardAsync(NpgsqlDataSource db, long runId, int shard, CancellationToken ct)
    {
        const string release = """
            UPDATE training_shards SET status = 'pending', instance_id = NULL
            WHERE run_id = @runId AND shard = @shard AND status = 'running'
            """;
        await using var conn = await db.OpenConnectionAsync(ct);
        await conn.ExecuteAsync(new CommandDefinition(release, new { runId, shard }, cancellationToken: ct));
    }

    /// <summary>
    /// Ends a shard (failed when <paramref name="error"/> is set) and, when it was the last one running, the run: returns the
    /// run's final status then, or null while other shards are still at work. The run row is locked first, so two shards
    /// finishing at once cannot both see the other still running.
    /// </summary>
    public static async Task<string?> CompleteShardAsync(NpgsqlDataSource db, long runId, int shard, string? error, DateTimeOffset now, CancellationToken ct)
    {
        const string complete = """
            SELECT 1 FROM training_runs WHERE id = @runId FOR UPDATE;
            UPDATE training_shards SET status = CASE WHEN @error::text IS NULL THEN 'succeeded' ELSE 'failed' END,
                   finished_at = @now, error = @error
            WHERE run_id = @runId AND shard = @shard;
            """;
        const string finalize = """
            UPDATE training_runs r
            SET status = CASE WHEN EXISTS (SELECT 1 FROM training_shards WHERE run_id = r.id AND status = 'failed') THEN 'failed' ELSE 'succeeded' END,
                finished_at = @now,
                error = (SELECT string_agg(format('shard %s: %s', shard, error), '; ' ORDER BY shard) FROM training_shards WHERE run_id = r.id AND status = 'failed')
            WHERE r.id = @runId AND r.status = 'running'
              AND NOT EXISTS (SELECT 1 FROM training_shards WHERE run_id = r.id AND status IN ('pending', 'running'))
            RETURNING r.status AS Status, extract(epoch FROM r.finished_at - r.started_at)::float8 AS Seconds
            """;
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        await conn.ExecuteAsync(new CommandDefinition(complete, new { runId, shard, error, now }, tx, cancellationToken: ct));
        var finished = await conn.QuerySingleOrDefaultAsync<(string Status, double? Seconds)?>(new CommandDefinition(finalize, new { runId, now }, tx, cancellationToken: ct));
        await tx.CommitAsync(ct);
        if (finished is { } f)
        {
            Observability.ForecasterMetrics.TrainingRuns.WithLabels(f.Status).Inc();
            Observability.ForecasterMetrics.TrainingRunSeconds.WithLabels(f.Status).Observe(f.Seconds ?? 0);
        }
        return finished?.Status;
    }

    /// <summary>Ends a run that never got going (its start failed) as failed.</summary>
    public static async Task FailAsync(NpgsqlDataSource db, long runId, string error, DateTimeOffset now, CancellationToken ct)
    {
        const string fail = """
            UPDATE training_runs SET status = 'failed', error = @error, finished_at = @now
            WHERE id = @runId AND status IN ('queued', 'running')
            """;
        await using var conn = await db.OpenConnectionAsync(ct);
        await conn.ExecuteAsync(new CommandDefinition(fail, new { runId, error, now }, cancellationToken: ct));
    }

    /// <summary>Records what the planning step after a run did.</summary>
    public static async Task SetPlanningAsync(NpgsqlDataSource db, long runId, string planning, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        await conn.ExecuteAsync(new CommandDefinition("UPDATE training_runs SET planning = @planning WHERE id = @runId", new { runId, planning }, cancellationToken: ct));
    }

    /// <summary>
    /// Fails runs abandoned by a dead process: running with no progress since <paramref name="staleBefore"/>, or queued since
    /// then. A live shard moves the heartbeat every batch, so only a run nobody works on any more matches. Returns their ids.
    /// </summary>
    public static async Task<IReadOnlyList<long>> FailStaleAsync(NpgsqlDataSource db, DateTimeOffset staleBefore, DateTimeOffset now, CancellationToken ct)
    {
        const string stale = """
            WITH gone AS (
                UPDATE training_runs SET status = 'failed', finished_at = @now,
                       error = 'abandoned: no progress since ' || to_char(coalesce(heartbeat_at, created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                            || ' (the process running it stopped); series not retrained keep their previous model'
                WHERE (status = 'running' AND heartbeat_at < @staleBefore) OR (status = 'queued' AND created_at < @staleBefore)
                RETURNING id
            ), shards AS (
                UPDATE training_shards sh SET status = 'failed', finished_at = @now, error = 'abandoned'
                FROM gone WHERE sh.run_id = gone.id AND sh.status IN ('pending', 'running')
                RETURNING sh.run_id
            )
            SELECT id FROM gone
            """;
        await using var conn = await db.OpenConnectionAsync(ct);
        return [.. await conn.QueryAsync<long>(new CommandDefinition(stale, new { staleBefore, now }, cancellationToken: ct))];
    }

    public static async Task<TrainingRunRow?> GetAsync(NpgsqlConnection conn, long runId, CancellationToken ct) =>
        await conn.QuerySingleOrDefaultAsync<TrainingRunRow>(new CommandDefinition(
            $"SELECT {TrainingRunRow.Columns} FROM training_runs WHERE id = @runId", new { runId }, cancellationToken: ct));
}
