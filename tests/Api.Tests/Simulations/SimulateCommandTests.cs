using System.Globalization;
using System.Text;
using System.Text.Json;
using Forecaster.Api.Simulations;
using Forecaster.Api.Tests.Infrastructure;

namespace Forecaster.Api.Tests.Simulations;

/// <summary>The `simulate` verb: a run end to end as a process, and every bad input refused with exit code 2 and a clear message.</summary>
public sealed class SimulateCommandTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("simulate-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    string Write(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    static string Csv(string series, double[] load, DateTimeOffset start, TimeSpan? step = null)
    {
        var s = new StringBuilder("series,timestamp,value\n");
        for (var t = 0; t < load.Length; t++)
        {
            s.Append(CultureInfo.InvariantCulture, $"{series},{start + ((step ?? TimeSpan.FromHours(1)) * t):yyyy-MM-ddTHH:mm:ssZ},{load[t]:F3}\n");
        }
        return s.ToString();
    }

    static Task<(int Exit, string Out, string Err)> RunAsync(params string[] args) =>
        ForecasterProcess.RunAsync(new Dictionary<string, string>(), args);

    [Fact]
    public async Task SimulatePrintsTheTableAndWritesTheReport()
    {
        var start = new DateTimeOffset(2026, 1, 5, 0, 0, 0, TimeSpan.Zero);
        var input = Write("load.csv", Csv("web", ReplayTests.Tidal(30), start) + Csv("api", ReplayTests.Tidal(30, seed: 3), start)[("series,timestamp,value\n").Length..]);
        var policy = Write("policy.json", """{"minReplicas":1,"maxReplicas":40}""");
        var output = Path.Combine(_dir, "report.json");

        var (exit, stdout, stderr) = await RunAsync("simulate", "--input", input, "--policy", policy, "--train-days", "28", "--output", output);
        Assert.True(exit == 0, stderr);
        Assert.Contains("predictive+reactive", stdout, StringComparison.Ordinal);
        Assert.Matches(@"series=2 days=4 fits=4 seconds=[\d.]+", stderr);

        using var report = JsonDocument.Parse(File.ReadAllText(output));
        var totals = report.RootElement.GetProperty("totals");
        Assert.Equal(["predictive", "predictive+reactive", "reactive", "static-peak", "yesterday", "oracle"], totals.EnumerateObject().Select(p => p.Name));
        foreach (var strategy in totals.EnumerateObject())
        {
            Assert.Equal(["replicaHours", "underProvisionedHours", "hours", "unservedLoad", "meanUtilization", "scalingActions"],
                strategy.Value.EnumerateObject().Select(p => p.Name));
            Assert.Equal(96, strategy.Value.GetProperty("hours").GetInt32());
        }
        Assert.Equal(["web", "api"], report.RootElement.GetProperty("series").EnumerateObject().Select(p => p.Name));
        Assert.Equal(48, report.RootElement.GetProperty("series").GetProperty("web").GetProperty("reactive").GetProperty("hours").GetInt32());
        Assert.True(report.RootElement.GetProperty("forecast").GetProperty("mase").GetDouble() > 0);
        Assert.Equal("auto", report.RootElement.GetProperty("capacity").GetProperty("web").GetProperty("source").GetString());
        Assert.Contains(report.RootElement.GetProperty("notes").EnumerateArray(), n => n.GetString()!.Contains("maxReplicas/2", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ABadPolicyExitsWith2NamingTheField()
    {
        var input = Write("load.csv", "series,timestamp,value\nweb,2026-01-05T00:00:00Z,1\n");
        var policy = Write("policy.json", """{"minReplicas":1,"maxReplica":40}""");
        var (exit, _, stderr) = await RunAsync("simulate", "--input", input, "--policy", policy);
        Assert.Equal(2, exit);
        Assert.Contains("policy.maxReplica", stderr, StringComparison.Ordinal);
    }

    SimulateCommand.Prepared Prepare(string csv, string policy = """{"minReplicas":1,"maxReplicas":40}""", int trainDays = 28, bool demo = false, bool input = true) =>
        SimulateCommand.Prepare(input ? new FileInfo(Write("in.csv", csv)) : null, demo, new FileInfo(Write("p.json", policy)), trainDays);

    [Theory]
    [InlineData("series,time,value\n", "expected header 'series,timestamp,value'")]
    [InlineData("series,timestamp,value\nweb,2026-01-05T00:00:00Z,1\nweb,yesterday,2\n", "line 3: timestamp 'yesterday' is not ISO 8601")]
    [InlineData("series,timestamp,value\nweb,2026-01-05T00:00:00Z,abc\n", "line 2: value 'abc' is not a finite number")]
    [InlineData("series,timestamp,value\n", "no series")]
    [InlineData("series,timestamp,value\nweb,2026-01-05T00:00:00Z,-3\n", "series 'web' has a negative load -3")]
    [InlineData("series,timestamp,value\nweb,2026-01-05T00:00:00Z,1\nweb,2026-01-06T00:00:00Z,1\nweb,2026-01-07T00:00:00Z,1\n", "series 'web' is coarser than hourly")]
    [InlineData("series,timestamp,value\nweb,2026-01-05T00:00:00Z,0\nweb,2026-01-05T01:00:00Z,0\n", "series 'web' never has load above 0")]
    public void BadLoadIsRefusedWithTheLineOrSeries(string csv, string message)
    {
        var prepared = Prepare(csv);
        Assert.NotNull(prepared.Problem);
        Assert.Contains(message, prepared.Problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"minReplicas":1}""", "policy.capacityPerReplica")]
    [InlineData("""{"minReplicas":1,"maxReplicas":40,"maxParallelism":8}""", "policy.maxParallelism")]
    [InlineData("""{"minReplicas":1,""", "not JSON")]
    public void BadPoliciesAreRefusedNamingTheField(string policy, string message)
    {
        var prepared = Prepare("series,timestamp,value\nweb,2026-01-05T00:00:00Z,1\n", policy);
        Assert.Contains(message, prepared.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void BadArgumentsAreRefused()
    {
        Assert.Contains("--train-days", Prepare("", trainDays: 0).Problem, StringComparison.Ordinal);
        Assert.Contains("either --input", Prepare("", input: false).Problem, StringComparison.Ordinal);
        Assert.Contains("either --input", Prepare("", demo: true).Problem, StringComparison.Ordinal);
        var missing = SimulateCommand.Prepare(new FileInfo(Path.Combine(_dir, "nope.csv")), false, new FileInfo(Write("p.json", """{"maxReplicas":4}""")), 28);
        Assert.Contains("does not exist", missing.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void FinerThanHourlyLoadIsAveragedOntoHours()
    {
        var start = new DateTimeOffset(2026, 1, 5, 0, 0, 0, TimeSpan.Zero);
        var prepared = Prepare(Csv("web", [10, 20, 30, 40, 50, 60], start, TimeSpan.FromMinutes(20)), """{"capacityPerReplica":5}""");
        Assert.Null(prepared.Problem);
        var series = Assert.Single(prepared.Series);
        Assert.Equal([20.0, 50.0], series.Load);
        Assert.False(series.CapacityChosen);
    }
}
