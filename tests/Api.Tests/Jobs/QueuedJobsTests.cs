using System.Collections.Concurrent;
using System.Net.Http.Json;
using System.Text.Json;
using Forecaster.Api.Jobs;
using Forecaster.Api.Plans;
using Forecaster.Api.Tests.Infrastructure;
using Hangfire;
using Hangfire.Server;
using Microsoft.Extensions.DependencyInjection;

namespace Forecaster.Api.Tests.Jobs;

/// <summary>A pull as the Prometheus pulls will be: records which queue ran it.</summary>
public sealed class PullProbe
{
    public static readonly ConcurrentDictionary<string, string> Ran = new();

    public Task PullAsync(string token, PerformContext? context, CancellationToken ct)
    {
        Ran[token] = context?.BackgroundJob.Job.Queue ?? "";
        return Task.CompletedTask;
    }
}

/// <summary>Jobs on the queues besides training: planning one resource, and a recurring pull registered with the helper.</summary>
public sealed class QueuedJobsTests(ApiFixture api) : IClassFixture<ApiFixture>
{
    [Fact]
    public async Task APlanningJobPlansTheNamedResource()
    {
        var client = api.Writer();
        await api.PutServiceAsync(client, "job-planned");
        var before = (await client.GetFromJsonAsync<JsonElement>("/api/v1/resources/job-planned/plans")).GetProperty("items").GetArrayLength();

        PlanningJob.Enqueue(api.Factory.Services.GetRequiredService<IBackgroundJobClient>(), ["job-planned"]);
        var deadline = TimeProvider.System.GetUtcNow().AddMinutes(1);
        while ((await client.GetFromJsonAsync<JsonElement>("/api/v1/resources/job-planned/plans")).GetProperty("items").GetArrayLength() == before)
        {
            Assert.True(TimeProvider.System.GetUtcNow() < deadline, "the planning job planned nothing");
            await Task.Delay(200);
        }
        var items = (await client.GetFromJsonAsync<JsonElement>("/api/v1/resources/job-planned/plans")).GetProperty("items");
        Assert.Equal("active", items[0].GetProperty("status").GetString());
    }

    [Fact]
    public async Task ARecurringPullRegisteredWithTheHelperRunsOnThePullsQueue()
    {
        var token = Guid.NewGuid().ToString("N");
        var manager = api.Factory.Services.GetRequiredService<IRecurringJobManager>();
        JobsSetup.AddOrUpdatePull<PullProbe>(manager, "probe-pull", p => p.PullAsync(token, null, CancellationToken.None), Cron.Never());
        manager.Trigger("probe-pull");
        var deadline = TimeProvider.System.GetUtcNow().AddMinutes(1);
        while (!PullProbe.Ran.ContainsKey(token))
        {
            Assert.True(TimeProvider.System.GetUtcNow() < deadline, "the pull never ran");
            await Task.Delay(200);
        }
        Assert.Equal(JobQueues.Pulls, PullProbe.Ran[token]);
    }
}
