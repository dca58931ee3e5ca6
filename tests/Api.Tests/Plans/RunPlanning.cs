using System.Net.Http.Json;
using System.Text.Json;
using Forecaster.Api.Tests.Infrastructure;

namespace Forecaster.Api.Tests.Plans;

/// <summary>Planning follows the end of a training run, so a run reads succeeded a moment before its `planning` is recorded.</summary>
public static class RunPlanning
{
    public static async Task<string> WaitAsync(ApiFixture fx, long runId)
    {
        using var client = fx.Reader();
        var deadline = TimeProvider.System.GetUtcNow().AddMinutes(2);
        while (true)
        {
            var run = await client.GetFromJsonAsync<JsonElement>($"/api/v1/training-runs/{runId}");
            if (run.TryGetProperty("planning", out var planning) && planning.ValueKind == JsonValueKind.String)
            {
                return planning.GetString()!;
            }
            Assert.True(TimeProvider.System.GetUtcNow() < deadline, $"run {runId} was not followed by planning: {run}");
            await Task.Delay(100);
        }
    }
}
