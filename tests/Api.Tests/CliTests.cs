using Dapper;
using Forecaster.Api.Tests.Infrastructure;
using Npgsql;

namespace Forecaster.Api.Tests;

/// <summary>The `forecaster` executable itself, run as a process against the test cluster.</summary>
public sealed class CliTests
{
    static Task<(int Exit, string Out, string Err)> RunAsync(string connectionString, params string[] args) =>
        ForecasterProcess.RunAsync(connectionString, args);

    sealed class TempCsv : IDisposable
    {
        public TempCsv(string content) => File.WriteAllText(Path, content);

        public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"forecaster-cli-{Guid.NewGuid():N}.csv");

        public void Dispose() => File.Delete(Path);
    }

    [Fact]
    public async Task ImportLoadsAFileAndPrintsASummary()
    {
        var db = await TestCluster.CreateDatabaseAsync("cliimport");
        var now = TimeProvider.System.GetUtcNow().AddHours(-3).ToString("yyyy-MM-ddTHH:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
        using var file = new TempCsv($"resource,metric,timestamp,value\ncli-svc,qps,{now},10\ncli-svc,cpu_cores,{now},1.5\ncli-job,records_in_rate,{now},900\n");
        var (exit, stdout, stderr) = await RunAsync(db, "import", file.Path, "--create-resources");
        Assert.True(exit == 0, stderr);
        Assert.Matches(@"rows=3 series=3 seconds=[\d.]+ rate=\d+ rows/s", stdout);
        await using var conn = new NpgsqlConnection(db);
        Assert.Equal(3, await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM sample_points"));
        Assert.Equal(2, await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM resources"));
    }

    [Fact]
    public async Task ImportRejectsABadRowWithItsLineNumberAndExitCode2()
    {
        var db = await TestCluster.CreateDatabaseAsync("clibad");
        using var file = new TempCsv("resource,metric,timestamp,value\ncli-svc,qps,2026-01-01T00:00:00Z,10\ncli-svc,qps,2026-01-01T01:00:00Z,-4\n");
        var (exit, _, stderr) = await RunAsync(db, "import", file.Path, "--create-resources");
        Assert.Equal(2, exit);
        Assert.Contains("line 3: value:", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);
        await using var conn = new NpgsqlConnection(db);
        Assert.Equal(0, await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM sample_points"));

        var (missingExit, _, missingErr) = await RunAsync(db, "import", "/nonexistent.csv");
        Assert.Equal(2, missingExit);
        Assert.Contains("no such file", missingErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MigrateAppliesOnceThenReportsUpToDate()
    {
        var db = await TestCluster.CreateDatabaseAsync("climigrate");
        var (exit, stdout, stderr) = await RunAsync(db, "migrate");
        Assert.True(exit == 0, stderr);
        Assert.Contains("Applied", stdout, StringComparison.Ordinal);
        (exit, stdout, _) = await RunAsync(db, "migrate");
        Assert.Equal(0, exit);
        Assert.Contains("up to date", stdout, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("migrate")]
    [InlineData("train")]
    [InlineData("plan")]
    [InlineData("prune-models")]
    [InlineData("import", "/etc/hostname")]
    public async Task AVerbFacingAnUnreachableDatabaseSaysSoInOneLineAndExits1(params string[] args)
    {
        // Port 1 on loopback: nothing listens there, so the connection is refused at once.
        var (exit, stdout, stderr) = await RunAsync("Host=127.0.0.1;Port=1;Username=u;Password=p;Database=nowhere;Timeout=3", args);
        Assert.Equal(1, exit);
        Assert.Equal("", stdout);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("forecaster: cannot reach the database 127.0.0.1:1/nowhere", line, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Forecaster__Training__Shards", "0", "train")]
    [InlineData("Forecaster__Planning__BatchResources", "0", "plan")]
    [InlineData("Forecaster__Training__HistoryDays", "1", "simulate", "--demo", "--policy", "POLICY")]
    [InlineData("Forecaster__Prometheus__StepSeconds", "0", "migrate")]
    [InlineData("Forecaster__ModelRetention__KeepSuperseded", "0", "prune-models")]
    [InlineData("Forecaster__ModelRetention__Cron", "every night", "prune-models")]
    public async Task AVerbWithAnInvalidOptionNamesItAndExits2BeforeTouchingTheDatabase(string variable, string value, params string[] args)
    {
        // The service's own start-up validation, on the service's container: the same message the service would stop with.
        // The database is unreachable, so exit code 2 (not 1) also shows that nothing tried to connect first.
        using var policy = new TempCsv("""{"minReplicas":1,"maxReplicas":40}""");
        var (exit, stdout, stderr) = await ForecasterProcess.RunAsync(new Dictionary<string, string>
        {
            ["FORECASTER_DB"] = "Host=127.0.0.1;Port=1;Username=u;Password=p;Database=nowhere;Timeout=3",
            [variable] = value,
        }, [.. args.Select(a => a == "POLICY" ? policy.Path : a)]);
        Assert.True(exit == 2, $"exit {exit}: {stderr}");
        Assert.Equal("", stdout);
        var member = variable.Split("__")[^1];
        Assert.Contains(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries),
            line => line.StartsWith("forecaster: configuration: ", StringComparison.Ordinal) && line.Contains(member, StringComparison.Ordinal));
        Assert.DoesNotContain("cannot reach", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ImportPlanAndTrainPrintOnlyTheirSummaryOnStdout()
    {
        var db = await TestCluster.CreateDatabaseAsync("clisummary");
        var now = TimeProvider.System.GetUtcNow().AddHours(-3).ToString("yyyy-MM-ddTHH:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
        using var file = new TempCsv($"resource,metric,timestamp,value\ncli-svc,qps,{now},10\n");
        var (exit, stdout, stderr) = await RunAsync(db, "import", file.Path, "--create-resources");
        Assert.True(exit == 0, stderr);
        // The list of created resources, then the summary line; progress (when drawn) and logs go to stderr.
        Assert.Matches(@"^created 1 resources: cli-svc\nrows=1 series=1 seconds=[\d.]+ rate=\d+ rows/s\n$", stdout.Replace("\r", "", StringComparison.Ordinal));

        (exit, stdout, stderr) = await RunAsync(db, "plan");
        Assert.True(exit == 0, stderr);
        Assert.Single(stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));

        (_, stdout, _) = await RunAsync(db, "train");
        Assert.Matches(@"^series=\d+ failed=\d+ seconds=[\d.]+ rate=[\d.]+/s\n$", stdout.Replace("\r", "", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ForecastToAFilePrintsASummaryLineAndToStdoutKeepsItOnStderr()
    {
        var history = new System.Text.StringBuilder("series,timestamp,value\n");
        var start = new DateTime(2026, 11, 2, 0, 0, 0, DateTimeKind.Utc);
        for (var i = 0; i < 14 * 24; i++)
        {
            history.Append(System.Globalization.CultureInfo.InvariantCulture, $"web,{start.AddHours(i):yyyy-MM-ddTHH:mm:ssZ},{100 + (50 * Math.Sin(i * Math.PI / 12)):F1}\n");
        }
        using var input = new TempCsv(history.ToString());
        var output = input.Path + ".out.csv";
        try
        {
            var (exit, stdout, stderr) = await ForecasterProcess.RunAsync(new Dictionary<string, string>(), "forecast", "--input", input.Path, "--horizon", "24", "--output", output);
            Assert.True(exit == 0, stderr);
            Assert.Matches($@"^series=1 rows=24 seconds=[\d.]+ output={System.Text.RegularExpressions.Regex.Escape(output)}\s*$", stdout);
            Assert.Equal(25, File.ReadAllLines(output).Length);

            (exit, stdout, stderr) = await ForecasterProcess.RunAsync(new Dictionary<string, string>(), "forecast", "--input", input.Path, "--horizon", "24");
            Assert.Equal(0, exit);
            Assert.StartsWith("series,timestamp,forecast,lower,upper,model", stdout, StringComparison.Ordinal);
            Assert.DoesNotContain("series=1", stdout, StringComparison.Ordinal);
            Assert.Contains("series=1 rows=24", stderr, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(output);
        }
    }

    [Fact]
    public async Task SimulateHelpGivesTheDemoReplaysRealWindow()
    {
        var (exit, stdout, _) = await ForecasterProcess.RunAsync(new Dictionary<string, string>(), "simulate", "--help");
        Assert.Equal(0, exit);
        var end = Forecaster.Training.Csv.ForecastCsv.FormatTimestamp(Forecaster.Api.Simulations.SimulateCommand.DemoEnd);
        Assert.Contains($"{Forecaster.Api.Demo.DemoFleet.HistoryDays} days ending {end}", stdout.ReplaceLineEndings(" ").Replace("  ", " ", StringComparison.Ordinal), StringComparison.Ordinal);
    }
}
