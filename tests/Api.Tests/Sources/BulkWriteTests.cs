using Dapper;
using Forecaster.Api.Database;
using Forecaster.Api.Samples;
using Forecaster.Api.Tests.Infrastructure;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Forecaster.Api.Tests.Sources;

/// <summary>
/// The bulk write of pulled history (<see cref="SampleImport.WriteSeriesAsync"/>) against a concurrent writer of the same
/// keys: the straight COPY a backfill tries first must give way, and the merge must overwrite, never duplicate.
/// </summary>
public sealed class BulkWriteTests
{
    static readonly DateTime From = new(2026, 3, 1, 0, 0, 0, DateTimeKind.Utc);

    [Fact]
    public async Task BackfillMeetingAnUncommittedRowOfAnotherWriterFallsBackToTheMergeAndOverwritesItWithoutDuplicates()
    {
        await using var db = NpgsqlDataSource.Create(await TestCluster.CreateDatabaseAsync("bulk-write"));
        await MigrationRunner.ApplyAsync(db, Migration.Embedded, NullLogger.Instance);
        var partitions = new SamplePartitions(db);
        await partitions.EnsureAsync(From, From.AddDays(1), default);
        await using var setup = await db.OpenConnectionAsync();
        var resourceId = await setup.ExecuteScalarAsync<int>("""
            INSERT INTO resources (name, kind, load_metric, created_at, updated_at) VALUES ('api', 'service', 'qps', now(), now()) RETURNING id
            """);
        var seriesId = await setup.ExecuteScalarAsync<int>("INSERT INTO series (resource_id, metric) VALUES (@resourceId, 'qps') RETURNING id", new { resourceId });
        var points = Enumerable.Range(0, 288).Select(i => (From.AddMinutes(5 * i), 100.0 + i)).ToList();

        // Another writer (a push, say) has written one of the backfill's keys and not committed yet: the backfill's check
        // for stored rows cannot see it, so the backfill tries the straight COPY, which meets that row.
        await using var other = await db.OpenConnectionAsync();
        await using var otherTx = await other.BeginTransactionAsync();
        await other.ExecuteAsync("INSERT INTO sample_points (series_id, ts, value) VALUES (@seriesId, @ts, 1)", new { seriesId, ts = From.AddMinutes(50) }, otherTx);

        var log = new RecordingLog();
        await using var conn = await db.OpenConnectionAsync();
        await using var tx = await conn.BeginTransactionAsync();
        var writing = SampleImport.WriteSeriesAsync(conn, tx, partitions, [new SampleImport.SeriesPoints(resourceId, "qps", points, MayExist: false)], default, log);
        // The merge waits for the other writer's commit; commit once the COPY has given way.
        for (var i = 0; i < 300 && !log.Messages.Any(m => m.Contains("fell back to the merge", StringComparison.Ordinal)); i++)
        {
            await Task.Delay(100);
        }
        Assert.Contains(log.Messages, m => m.Contains("fell back to the merge", StringComparison.Ordinal));
        await otherTx.CommitAsync();
        var stored = await writing;
        await tx.CommitAsync();

        Assert.Equal(new long[] { 288 }, stored);
        var rows = (await setup.QueryAsync<(DateTime Ts, double Value)>("SELECT ts, value FROM sample_points WHERE series_id = @seriesId ORDER BY ts", new { seriesId })).ToList();
        Assert.Equal(288, rows.Count);
        Assert.Equal(points.Select(p => p.Item1), rows.Select(r => DateTime.SpecifyKind(r.Ts, DateTimeKind.Utc)));
        // The backfill's value replaced the other writer's 1 at 00:50 (the row the COPY met).
        Assert.Equal(110.0, rows[10].Value);
        Assert.Equal(points.Select(p => p.Item2), rows.Select(r => r.Value));
    }

    sealed class RecordingLog : ILogger
    {
        readonly List<string> _messages = [];

        public List<string> Messages
        {
            get
            {
                lock (_messages)
                {
                    return [.. _messages];
                }
            }
        }

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (_messages)
            {
                _messages.Add(formatter(state, exception));
            }
        }
    }
}
