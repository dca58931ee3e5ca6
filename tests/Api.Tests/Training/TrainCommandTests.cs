using Dapper;
using Forecaster.Api.Tests.Infrastructure;
using Npgsql;

namespace Forecaster.Api.Tests.Training;

/// <summary>`forecaster train` as a process against a database holding the demo fleet (recorded up to now: the CLI runs on the wall clock).</summary>
public sealed class TrainCommandTests
{
    [Fact]
    public async Task TrainRetrainsTheNamedResourcesAndEndsWithASummaryLine()
    {
        var db = await TestCluster.CreateDatabaseAsync("clitrain");
        await TestCluster.SeedDemoAsync(db, TimeProvider.System.GetUtcNow());
        var models = TestEnvironment.NewHome("models");
        try
        {
            var (exit, stdout, stderr) = await RunAsync(db, models, "train", "--resource", "search", "--resource", "fraud-scoring");
            Assert.True(exit == 0, stderr);
            Assert.Matches(@"^series=6 failed=0 seconds=[\d.]+ rate=[\d.]+/s\s*$", stdout);
            await using var conn = new NpgsqlConnection(db);
            Assert.Equal(6, await conn.ExecuteScalarAsync<int>("SELECT count(*)::int FROM model_versions WHERE status = 'active'"));
            Assert.Equal("cli", await conn.ExecuteScalarAsync<string>("SELECT trigger FROM training_runs"));
            Assert.Equal(6, Directory.GetFiles(models, "*.json", SearchOption.AllDirectories).Length);

            var (badExit, _, badErr) = await RunAsync(db, models, "train", "--resource", "nope");
            Assert.Equal(2, badExit);
            Assert.Contains("no resource is named 'nope'", badErr, StringComparison.Ordinal);
        }
        finally
        {
            if (Directory.Exists(models))
            {
                Directory.Delete(models, recursive: true);
            }
        }
    }

    static Task<(int Exit, string Out, string Err)> RunAsync(string db, string models, params string[] args) =>
        ForecasterProcess.RunAsync(new Dictionary<string, string>
        {
            ["FORECASTER_DB"] = db,
            ["Forecaster__Training__ModelsPath"] = models,
            ["Forecaster__Training__LoadBacktestOrigins"] = "2",
            ["Forecaster__Training__UsageBacktestOrigins"] = "1",
        }, args);
}
