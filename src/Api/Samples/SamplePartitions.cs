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

    /// <summary>True when this process knows the month of <paramref name="utc"/> has its partition.</summary>
    public bool IsKnown(DateTime utc) => _known.ContainsKey(new DateTime(utc.Year, utc.Month, 1, 0, 0, 0, DateTimeKind.Utc));

    /// <summary>Records months whose partitions a committed transaction created.</summary>
    public void MarkKnown(DateTime fromUtc, DateTime toUtc)
    {
        for (var m = new DateTime(fromUtc.Year, fromUtc.Month, 1, 0, 0, 0, DateTimeKind.Utc); m <= toUtc; m = m.AddMonths(1))
        {
            _known[m] = true;
        }
    }

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
        MarkKnown(months[0], months[^1]);
    }
}
