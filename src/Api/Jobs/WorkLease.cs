using Dapper;
using Npgsql;

namespace Forecaster.Api.Jobs;

/// <summary>
/// A lease on one piece of work (a training shard, a simulation) held in the database: a session-level advisory lock on
/// a connection kept open while the work runs. Only one instance holds it at a time, so a job that Hangfire delivers twice
/// (at-least-once: after an invisibility timeout, or a start-up recovery) never runs twice at once. It needs no clock and no
/// renewal: when the holder stops, even by SIGKILL, its connection closes and PostgreSQL releases the lease at once.
/// A second delivery waits for the lease, then finds the work finished (and does nothing) or abandoned (and takes it over),
/// so a duplicate never consumes the job that would have finished the work.
/// </summary>
public sealed class WorkLease : IAsyncDisposable
{
    readonly NpgsqlConnection _connection;
    readonly string _name;

    WorkLease(NpgsqlConnection connection, string name)
    {
        _connection = connection;
        _name = name;
    }

    /// <summary>
    /// Takes the lease named <paramref name="name"/>, waiting while another session holds it: when the holder finishes, the
    /// caller finds the work done; when the holder dies, the caller takes the work over. <paramref name="waited"/> says whether it had to wait.
    /// <paramref name="waiting"/> hears, before the wait, that another session holds the lease.
    /// </summary>
    public static async Task<(WorkLease Lease, bool Waited)> AcquireAsync(NpgsqlDataSource db, string name, CancellationToken ct, Action? waiting = null)
    {
        // hashtextextended gives the 64-bit key the advisory lock functions take; a collision would only serialise two works.
        const string tryAcquire = "SELECT pg_try_advisory_lock(hashtextextended(@name, 0))";
        const string acquire = "SELECT pg_advisory_lock(hashtextextended(@name, 0))";
        var connection = await db.OpenConnectionAsync(ct);
        try
        {
            if (await connection.ExecuteScalarAsync<bool>(new CommandDefinition(tryAcquire, new { name }, cancellationToken: ct)))
            {
                return (new WorkLease(connection, name), false);
            }
            waiting?.Invoke();
            // No command timeout: the wait lasts as long as the holder works (or until this instance stops).
            await connection.ExecuteAsync(new CommandDefinition(acquire, new { name }, commandTimeout: 0, cancellationToken: ct));
            return (new WorkLease(connection, name), true);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Releases the lease. Explicitly: a pooled connection keeps its session (and so its locks) after it is returned.
    /// When the database is the thing that failed, the session and the lock are gone already.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await _connection.ExecuteAsync("SELECT pg_advisory_unlock(hashtextextended(@name, 0))", new { name = _name });
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException)
        {
            // The connection broke: PostgreSQL ended the session and released the lock with it.
        }
        await _connection.DisposeAsync();
    }
}
