using System.Net.Http.Json;
using System.Text.Json;
using Forecaster.Api.Tests.Training;

namespace Forecaster.Api.Tests.Plans;

/// <summary>Issue 5's integration test: demo fleet → train → plan → every resource has 48 explained steps.</summary>
public sealed class DemoPlanningTests(TrainingFixture fx) : IClassFixture<TrainingFixture>
{
    [Fact]
    public async Task ATrainingRunPlansEveryDemoResourceWith48ExplainedSteps()
    {
        var id = await fx.FullRunAsync();
        Assert.Equal("succeeded", (await fx.WaitForRunAsync(id)).GetProperty("status").GetString());
        Assert.StartsWith("resources=25 planned=25 cannot=0", await RunPlanning.WaitAsync(fx, id), StringComparison.Ordinal);

        using var client = fx.Reader();
        var resources = await client.GetFromJsonAsync<JsonElement>("/api/v1/resources?limit=100");
        var sources = new HashSet<string>();
        var capacitySources = new HashSet<string>();
        foreach (var resource in resources.GetProperty("items").EnumerateArray())
        {
            var name = resource.GetProperty("name").GetString();
            var versions = (await client.GetFromJsonAsync<JsonElement>($"/api/v1/resources/{name}/plans")).GetProperty("items");
            var active = Assert.Single(versions.EnumerateArray(), v => v.GetProperty("status").GetString() == "active");
            Assert.Equal("training", active.GetProperty("trigger").GetString());
            var plan = await client.GetFromJsonAsync<JsonElement>($"/api/v1/resources/{name}/plans/{active.GetProperty("id").GetInt64()}");
            var steps = plan.GetProperty("steps");
            Assert.Equal(48, steps.GetArrayLength());
            var count = resource.GetProperty("kind").GetString() == "job" ? "parallelism" : "replicas";
            foreach (var step in steps.EnumerateArray())
            {
                Assert.True(step.GetProperty(count).GetInt32() >= 1, $"{name}: {step}");
                var explanation = step.GetProperty("explanation");
                Assert.EndsWith($"planned {step.GetProperty(count).GetInt32()}", explanation.GetProperty("sentence").GetString(), StringComparison.Ordinal);
                sources.Add(step.GetProperty("source").GetString()!);
                capacitySources.Add(explanation.GetProperty("capacitySource").GetString()!);
            }
            if (steps.EnumerateArray().Any(s => s.GetProperty("explanation").GetProperty("capacitySource").GetString() == "none"))
            {
                // No usable capacity (e.g. a weak fit) is said once on the plan, not guessed.
                Assert.Contains(active.GetProperty("notes").EnumerateArray(), n => n.GetString()!.Contains("capacity", StringComparison.Ordinal));
            }
            // Requests come from the weekly peaks training computed.
            Assert.True(steps[0].GetProperty("cpu").GetDouble() > 0, name);
            Assert.True(steps[0].GetProperty("memory").GetInt64() > 0, name);
        }
        Assert.Contains("forecast", sources);
        // Half the fleet states its capacity; the other half gets it from the capacity model and policy.replicaCpu.
        Assert.Contains("capacityModel", capacitySources);
        Assert.Contains("policy", capacitySources);
    }
}
