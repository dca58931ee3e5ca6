using System.Text.Json;
using Forecaster.Api.Demo;
using Forecaster.Planner;

namespace Forecaster.Api.Tests.Plans;

public sealed class DemoPolicyTests
{
    [Fact]
    public void EveryDemoPolicyPassesThePutValidation()
    {
        foreach (var r in DemoFleet.Resources())
        {
            using var policy = JsonDocument.Parse(r.Policy.ToJsonString());
            var problems = PolicyValidator.Validate(policy.RootElement, r.Kind);
            Assert.True(problems.Count == 0, $"{r.Name}: {string.Join("; ", problems)}");
            // Without a stated capacity the host needs replicaCpu to use the capacity model.
            var p = PolicyJson.Read(policy.RootElement);
            Assert.True(p.CapacityPerReplica is not null || p.CapacityPerSubtask is not null || p.ReplicaCpu is not null, r.Name);
        }
    }
}
