using Forecaster.Api.Database;
using Forecaster.Api.Demo;
using Forecaster.Api.Samples;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Forecaster.Api.Tests.Infrastructure;

/// <summary>
/// One real PostgreSQL server per test run: FORECASTER_TEST_DB when set (any server the user points at), otherwise
/// a private embedded cluster (the service's own launcher) under <see cref="TestEnvironment.Root"/>, stopped and removed when
/// the assembly's tests end (<see cref="CleanupTestFramework"/>: before the runner may kill the test host) or at exit.
/// Each test class gets a database of its own, so classes run in parallel without seeing each other's rows.
/// </summary>
public static class TestCluster
{
    static readonly Lazy<Task<string>> Server = new(StartAsync);
    static EmbeddedPostgres? _cluster;

    /// <summary>Creates an empty database and returns its connection string.</summary>
    public static async Task<string> CreateDatabaseAsync(string label)
    {
        var admin = new NpgsqlConnectionStringBuilder(await Server.Value) { Pooling = false };
        // Identifiers stop at 63 bytes: keep the label short and the random suffix whole.
        var name = $"t_{label.ToLowerInvariant()[..Math.Min(label.Length, 24)]}_{Guid.NewGuid():N}";
        await using (var conn = new NpgsqlConnection(admin.ConnectionString))
        {
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", conn);
            await cmd.ExecuteNonQueryAsync();
        }
        return new NpgsqlConnectionStringBuilder(admin.ConnectionString) { Database = name, Pooling = true }.ConnectionString;
    }

    /// <summary>
    /// Migrates the database (a no-op when a host already did) and seeds the demo fleet's 35 days ending at
    /// <paramref name="end"/>: what the training, serving and dashboard tests start from.
    /// </summary>
    public static async Task SeedDemoAsync(string connectionString, DateTimeOffset end)
    {
        await using var source = NpgsqlDataSource.Create(connectionString);
        var partitions = new SamplePartitions(source);
        await DatabaseSetup.PrepareAsync(source, partitions, new FakeClock(end), NullLogger.Instance, default);
        await DemoSeeder.SeedAsync(source, partitions, end, NullLogger.Instance, default);
    }

    static async Task<string> StartAsync()
    {
        if (Environment.GetEnvironmentVariable("FORECASTER_TEST_DB") is { Length: > 0 } external)
        {
            return external;
        }
        var cluster = EmbeddedPostgres.For(TestEnvironment.NewHome("shared"), fast: true);
        _cluster = cluster;
        var (connectionString, _) = await cluster.EnsureRunningAsync();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => StopAsync().GetAwaiter().GetResult();
        return new NpgsqlConnectionStringBuilder(connectionString) { Database = "postgres" }.ConnectionString;
    }

    /// <summary>Stops the run's cluster (if this run started one) and removes its home; safe to call twice.</summary>
    public static async Task StopAsync()
    {
        if (Interlocked.Exchange(ref _cluster, null) is not { } cluster)
        {
            return;
        }
        NpgsqlConnection.ClearAllPools();
        try
        {
            await cluster.StopAsync();
        }
        catch (Exception e) when (e is EmbeddedPostgresException or IOException or InvalidOperationException)
        {
            Console.Error.WriteLine($"TestCluster: could not stop {cluster.DataDir}: {e.Message}");
        }
        TestEnvironment.TryDelete(cluster.Home);
        TestEnvironment.TryDelete(Path.GetDirectoryName(cluster.DataDir)!);
    }
}
