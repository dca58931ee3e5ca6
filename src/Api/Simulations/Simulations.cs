using Dapper;
using Npgsql;

namespace Forecaster.Api.Simulations;

/// <summary>A simulation as stored.</summary>
public sealed record SimulationRow
{
    public long Id { get; init; }
    public string Status { get; init; } = "";
    public string Request { get; init; } = "{}";
    public int FitsTotal { get; init; }
    public int FitsDone { get; init; }
    public DateTime CreatedAt { get; init; }
    public DateTime? StartedAt { get; init; }
    public DateTime? FinishedAt { get; init; }
    public string? Error { get; init; }
    public string? Report { get; init; }

    public const string Columns = """
        id, status, request::text AS Request, fits_total AS FitsTotal, fits_done AS FitsDone, created_at AS CreatedAt,
        started_at AS StartedAt, finished_at AS FinishedAt, error, report::text AS Report
        """;
}

/// <summary>The lifecycle of simulations in the database: queued, running with progress, then succeeded with a report or failed.</summary>
public static class Simulations
{
    public static async Task<long> CreateAsync(NpgsqlDataSource db, string request, DateTimeOffset now, CancellationToken ct)
    {
        const string insert = "INSERT INTO simulations (status, request, created_at) VALUES ('queued', @request::jsonb, @now) RETURNING id";
        await using var conn = await db.OpenConnectionAsync(ct);
        return await conn.ExecuteScalarAsync<long>(new CommandDefinition(insert, new { request, now }, cancellationToken: ct));
    }

    public static async Task<SimulationRow?> GetAsync(NpgsqlDataSource db, long id, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        return await conn.QuerySingleOrDefaultAsync<SimulationRow>(new CommandDefinition(
            $"SELECT {SimulationRow.Columns} FROM simulations WHERE id = @id", new { id }, cancellationToken: ct));
    }

    /// <summary>The newest simulations, without their reports (a report can run to megabytes).</summary>
    public static async Task<IReadOnlyList<SimulationRow>> ListAsync(NpgsqlDataSource db, int limit, CancellationToken ct)
    {
        const string list = """
            SELECT id, status, request::text AS Request, fits_total AS FitsTotal, fits_done AS FitsDone, created_at AS CreatedAt,
                   started_at AS StartedAt, finished_at AS FinishedAt, error, NULL AS Report
            FROM simulations ORDER BY id DESC LIMIT @limit
            """;
        await using var conn = await db.OpenConnectionAsync(ct);
        return [.. await conn.QueryAsync<SimulationRow>(new CommandDefinition(list, new { limit }, cancellationToken: ct))];
    }

    /// <summary>Marks a queued (or interrupted) simulation running on <paramref name="instance"/>; false when it is already finished.</summary>
    public static async Task<bool> StartAsync(NpgsqlDataSource db, long id, string instance, DateTimeOffset now, CancellationToken ct)
    {
        const string start = """
            UPDATE simulations SET status = 'running', started_at = @now, fits_done = 0, instance_id = @instance, starts = starts + 1
            WHERE id = @id AND status IN ('queued', 'running')
            """;
        await using var conn = await db.OpenConnectionAsync(ct);
        return await conn.ExecuteAsync(new CommandDefinition(start, new { id, instance, now }, cancellationToken: ct)) == 1;
    }

    /// <summary>Puts a running simulation back in the queue (its instance is stopping).</summary>
    public static async Task RequeueAsync(NpgsqlDataSource db, long id, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        await conn.ExecuteAsync(new CommandDefinition(
            "UPDATE simulations SET status = 'queued', instance_id = NULL WHERE id = @id AND status = 'running'", new { id }, cancellationToken: ct));
    }

    /// <summary>Simulations waiting to run, older than <paramref name="id"/>: the bound on the queue.</summary>
    public static async Task<int> QueuedBeforeAsync(NpgsqlDataSource db, long id, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        return await conn.ExecuteScalarAsync<int>(new CommandDefinition(
            "SELECT count(*)::int FROM simulations WHERE status = 'queued' AND id < @id", new { id }, cancellationToken: ct));
    }

    /// <summary>Records the Hangfire job that runs simulation <paramref name="id"/>.</summary>
    public static async Task SetJobAsync(NpgsqlDataSource db, long id, string jobId, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        await conn.ExecuteAsync(new CommandDefinition("UPDATE simulations SET job_id = @jobId WHERE id = @id", new { id, jobId }, cancellationToken: ct));
    }

    public static async Task ProgressAsync(NpgsqlDataSource db, long id, int done, int total, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        await conn.ExecuteAsync(new CommandDefinition(
            "UPDATE simulations SET fits_done = @done, fits_total = @total WHERE id = @id AND status = 'running'", new { id, done, total }, cancellationToken: ct));
    }

    public static async Task SucceedAsync(NpgsqlDataSource db, long id, string report, int fits, DateTimeOffset now, CancellationToken ct)
    {
        const string succeed = """
            UPDATE simulations SET status = 'succeeded', report = @report::json, fits_done = @fits, fits_total = @fits, finished_at = @now
            WHERE id = @id
            """;
        await using var conn = await db.OpenConnectionAsync(ct);
        await conn.ExecuteAsync(new CommandDefinition(succeed, new { id, report, fits, now }, cancellationToken: ct));
    }

    public static async Task FailAsync(NpgsqlDataSource db, long id, string error, DateTimeOffset now, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        await conn.ExecuteAsync(new CommandDefinition(
            "UPDATE simulations SET status = 'failed', error = @error, finished_at = @now WHERE id = @id", new { id, error, now }, cancellationToken: ct));
    }

    /// <summary>
    /// Unfinished simulations without a Hangfire job, oldest first, marked as being given one (a concurrent caller gets other
    /// rows, or none): what <see cref="SimulationRecovery"/> enqueues at start.
    /// </summary>
    public static async Task<IReadOnlyList<long>> ClaimOrphansAsync(NpgsqlDataSource db, CancellationToken ct)
    {
        const string claim = """
            UPDATE simulations SET job_id = 'recovering'
            WHERE id IN (SELECT id FROM simulations WHERE status IN ('queued', 'running') AND job_id IS NULL ORDER BY id FOR UPDATE SKIP LOCKED)
            RETURNING id
            """;
        await using var conn = await db.OpenConnectionAsync(ct);
        return [.. (await conn.QueryAsync<long>(new CommandDefinition(claim, cancellationToken: ct))).Order()];
    }
}
