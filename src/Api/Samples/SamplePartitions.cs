using System.Collections.Concurrent;
using Dapper;
using Npgsql;

namespace Forecaster.Api.Samples;

/// <summary>
/// Keeps monthly partitions of `samples` ahead of the data. Partitions are created on a connection of their own and
/// committed at once: creating one takes a brief exclusive lock on `samples`, which must not be held for the length
/// of a bulk import.
/// </summary>
public sealed class SamplePartitions(NpgsqlDataSource dataSource)
{
    readonly ConcurrentDictionary<DateTime, bool> _known = new();

    public async Task EnsureAsync(DateTime fromUtc, DateTime toUtc, CancellationToken ct)
    {
        var first = new DateTime(fromUtc.Year, fromUtc.Month, 1, 0, 0, 0, DateTimeKind.Utc);
        var months = new List<DateTime>();
        for (var m = first; m <= toUtc; m = m.AddMonths(1))
        {
            if (!_known.ContainsKey(m))
            {
                months.Add(m);
            }
        }
        if (months.Count == 0)
        {
            return;
        }
        await using var conn = await dataSource.OpenConnectionAsync(ct);
        await conn.ExecuteAsync(new CommandDefinition("SELECT ensure_sample_partitions(@from, @to)",
            new { from = months[0], to = months[^1] }, cancellationToken: ct));
        foreach (var m in months)
        {
            _known[m] = true;
        }
    }
}
