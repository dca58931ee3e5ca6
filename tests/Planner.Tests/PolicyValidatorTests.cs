using System.Text.Json;

namespace Forecaster.Planner.Tests;

public class PolicyValidatorTests
{
    private static IReadOnlyList<PolicyProblem> Validate(string json, ResourceKind kind = ResourceKind.Service) =>
        PolicyValidator.Validate(JsonDocument.Parse(json).RootElement, kind);

    private static Dictionary<string, string> Problems(string json, ResourceKind kind = ResourceKind.Service) =>
        Validate(json, kind).ToDictionary(p => p.Field, p => p.Message);

    private const string IssueExample = """
        {
          "loadMetric": "http_requests", "capacityPerReplica": 120, "targetUtilization": 0.7, "minReplicas": 2, "maxReplicas": 300,
          "forecastBound": "upper", "maxStepUp": 20, "maxStepDown": 5, "tolerance": 0.1, "scaleDownDelayHours": 3, "leadMinutes": 10,
          "windows": [{"days":"Mon-Fri","from":"19:00","to":"23:00","timeZone":"Asia/Shanghai","minReplicas":40,"maxReplicas":200,"targetUtilization":0.6}],
          "maxBreach": "exceed", "maxBreachBuffer": 0.1, "mode": "scale", "overcommitBuffer": 0.15,
          "minCpu": 0.25, "minMemory": 268435456, "cpuGranularity": 0.1, "memoryGranularity": 67108864, "staleAfterHours": 36
        }
        """;

    [Fact]
    public void PolicyFromTheIssueIsValidAndReadsBack()
    {
        Assert.Empty(Validate(IssueExample));
        var policy = PolicyJson.Read(IssueExample);
        Assert.Equal(MaxBreach.Exceed, policy.MaxBreach);
        Assert.Equal("Asia/Shanghai", policy.Windows[0].TimeZone.Id);
        Assert.Equal("Mon,Tue,Wed,Thu,Fri", policy.Windows[0].Days.ToString());
        Assert.Equal(19 * 60, policy.Windows[0].From.Minutes);
    }

    [Fact]
    public void EmptyPolicyGetsTheIssuesDefaults()
    {
        Assert.Empty(Validate("{}"));
        var p = PolicyJson.Read("{}");
        Assert.Equal((0.7, ForecastBound.Upper, 0.1, 10, 0.15, MaxBreach.Honor, PlanMode.Scale), (p.TargetUtilization, p.ForecastBound, p.Tolerance, p.LeadMinutes, p.OvercommitBuffer, p.MaxBreach, p.Mode));
        Assert.Equal((36.0, 0.1, 64L << 20, null, null), (p.StaleAfterHours, p.CpuGranularity, p.MemoryGranularity, p.CatchUpMinutes, p.RestartMinutes));
    }

    [Fact]
    public void EveryProblemIsReportedAtOnceWithItsFieldPath()
    {
        var problems = Problems("""
            {
              "targetUtilization": 1.5, "minReplicas": 10, "maxReplicas": 5, "forecastBound": "lower", "maxBreachBuffer": 0.1,
              "tolerance": -0.1, "leadMinutes": "10", "mode": "dryRun",
              "windows": [{"days":"Mon-Fry","from":"25:00","to":"7pm","timeZone":"Mars/Olympus","minReplicas":1}, 3]
            }
            """);
        Assert.Equal(
            [
                "policy.forecastBound", "policy.leadMinutes", "policy.maxBreachBuffer", "policy.minReplicas", "policy.mode",
                "policy.targetUtilization", "policy.tolerance", "policy.windows[0].days", "policy.windows[0].from",
                "policy.windows[0].timeZone", "policy.windows[0].to", "policy.windows[1]",
            ],
            problems.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("only applies with maxBreach \"exceed\"", problems["policy.maxBreachBuffer"]);
        Assert.Equal("minReplicas 10 is greater than maxReplicas 5", problems["policy.minReplicas"]);
        Assert.Contains("IANA", problems["policy.windows[0].timeZone"], StringComparison.Ordinal);
        Assert.Equal("must be a whole number", problems["policy.leadMinutes"]);
    }

    [Fact]
    public void UnknownPropertyIsRejectedAndAWrongCaseGetsASuggestion()
    {
        var problems = Problems("""{"maxReplica": 5, "MinReplicas": 2, "windows":[{"days":"Sat","from":"00:00","to":"24:00","timeZone":"UTC","min":3}]}""");
        Assert.StartsWith("unknown property; known properties are loadMetric", problems["policy.maxReplica"], StringComparison.Ordinal);
        Assert.Equal("unknown property; did you mean \"minReplicas\"? (names are case-sensitive)", problems["policy.MinReplicas"]);
        Assert.Contains("policy.windows[0].min", problems.Keys);
        Assert.Equal("overrides nothing: set minReplicas, maxReplicas or targetUtilization", problems["policy.windows[0]"]);
    }

    [Fact]
    public void FieldsOfTheOtherKindAreRejected()
    {
        Assert.Equal("applies only to streaming jobs", Problems("""{"maxParallelism": 128}""")["policy.maxParallelism"]);
        Assert.Contains("capacityPerSubtask", Problems("""{"capacityPerReplica": 10}""", ResourceKind.Job)["policy.capacityPerReplica"], StringComparison.Ordinal);
        Assert.Empty(Validate("""{"maxParallelism": 128, "catchUpMinutes": 15, "restartMinutes": 3, "backlogMetric": "lag", "capacityPerSubtask": 500, "maxReplicas": 64}""", ResourceKind.Job));
    }

    [Fact]
    public void JobParallelismBoundsMustFitTheKeyGroups()
    {
        Assert.Contains("maxParallelism 64", Problems("""{"maxParallelism": 64, "maxReplicas": 100}""", ResourceKind.Job)["policy.maxReplicas"], StringComparison.Ordinal);
        Assert.Contains("policy.minReplicas", Problems("""{"minReplicas": 0}""", ResourceKind.Job).Keys);
    }

    [Theory]
    [InlineData("""{"minReplicas": 2.5}""", "policy.minReplicas", "must be a whole number")]
    [InlineData("""{"targetUtilization": null}""", "policy.targetUtilization", "must not be null; omit it to get the default")]
    [InlineData("""{"targetUtilization": 0}""", "policy.targetUtilization", "must be at least 0 (exclusive) and at most 1")]
    [InlineData("""{"capacityPerReplica": -1}""", "policy.capacityPerReplica", "must be at least 0 (exclusive)")]
    [InlineData("""{"windows": {}}""", "policy.windows", "must be an array of windows")]
    [InlineData("""{"windows": [{"days":"Mon","from":"09:00","to":"09:00","timeZone":"UTC","minReplicas":1}]}""", "policy.windows[0].to", "equals from: the window would be empty; use 00:00-24:00 for a whole day")]
    [InlineData("""{"windows": [{"days":"Mon","from":"24:00","to":"09:00","timeZone":"UTC","minReplicas":1}]}""", "policy.windows[0].from", "must be a time \"HH:mm\" from 00:00 to 23:59")]
    [InlineData("""{"windows": [{"days":"Mon","from":"09:00","timeZone":"UTC","minReplicas":1}]}""", "policy.windows[0].to", "is required")]
    [InlineData("""{"maxReplicas": 10, "windows": [{"days":"Mon","from":"09:00","to":"10:00","timeZone":"UTC","minReplicas":20}]}""", "policy.windows[0].minReplicas", "minReplicas 20 is greater than maxReplicas 10 inside the window")]
    [InlineData("""{"minReplicas": 1, "minReplicas": 2}""", "policy.minReplicas", "appears more than once")]
    [InlineData("[]", "policy", "must be a JSON object")]
    public void SingleProblemIsNamedPrecisely(string json, string field, string message)
    {
        var problem = Assert.Single(Validate(json));
        Assert.Equal(new PolicyProblem(field, message), problem);
    }

    [Fact]
    public void WindowWrappingMidnightAndEndingAt2400IsValid()
    {
        Assert.Empty(Validate("""{"windows": [{"days":"Fri","from":"22:00","to":"02:00","timeZone":"Europe/Berlin","maxReplicas":5}, {"days":"Sat,Sun","from":"00:00","to":"24:00","timeZone":"America/New_York","targetUtilization":0.5}]}"""));
    }

    [Fact]
    public void RandomPoliciesWrittenAsJsonAreValidAndReadBackUnchanged()
    {
        foreach (var seed in Enumerable.Range(1, 300))
        {
            var kind = seed % 2 == 0 ? ResourceKind.Job : ResourceKind.Service;
            var policy = Scenarios.RandomPolicy(new Random(seed), kind);
            var json = PolicyJson.Write(policy);
            Assert.True(Validate(json, kind).Count == 0, $"seed {seed}: {string.Join("; ", Validate(json, kind))} in {json}");
            Assert.Equal(json, PolicyJson.Write(PolicyJson.Read(json)));
        }
    }

    [Fact]
    public void MoreThanAHundredWindowsAreRefusedAndAHundredAreNot()
    {
        static string Policy(int n) => $$"""{"maxReplicas":10,"windows":[{{string.Join(',', Enumerable.Repeat("""{"days":"Mon","from":"08:00","to":"18:00","timeZone":"UTC","minReplicas":2}""", n))}}]}""";
        Assert.Empty(Validate(Policy(PolicyValidator.MaxWindows)));
        Assert.Equal("has 101 windows; at most 100 are allowed", Problems(Policy(101))["policy.windows"]);
    }

    [Fact]
    public void APropertyNameThatIsALoneSurrogateIsAProblemNotAnException()
    {
        var problems = Problems("""{"maxReplicas":4,"\ud800":1}""");
        Assert.Contains("lone surrogate", problems["policy"], StringComparison.Ordinal);
    }
}
