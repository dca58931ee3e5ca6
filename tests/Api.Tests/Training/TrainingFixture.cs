using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Forecaster.Api.Tests.Infrastructure;
using Npgsql;

namespace Forecaster.Api.Tests.Training;

/// <summary>
/// The service on a database seeded with the demo fleet, training with fewer backtest origins (the same code path, less
/// work on the suite's two cores) and model artifacts in a temporary directory.
/// </summary>
public class TrainingFixture : ApiFixture
{
    public string ModelsDir { get; } = TestEnvironment.NewHome("models");

    protected override IEnumerable<KeyValuePair<string, string?>> Settings =>
    [
        new("Forecaster:Training:ModelsPath", ModelsDir),
        new("Forecaster:Training:LoadBacktestOrigins", "2"),
        new("Forecaster:Training:UsageBacktestOrigins", "1"),
        new("Forecaster:Training:Shards", "3"),
        new("Forecaster:Training:BatchResources", "4"),
        new("Forecaster:Training:SchedulerIdleSeconds", "1"),
    ];

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        await TestCluster.SeedDemoAsync(ConnectionString, Now);
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        try
        {
            Directory.Delete(ModelsDir, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    readonly SemaphoreSlim _gate = new(1, 1);
    long? _fullRun;

    /// <summary>The id of a finished run over the whole fleet, started through the API once for the class.</summary>
    public async Task<long> FullRunAsync()
    {
        await _gate.WaitAsync();
        try
        {
            _fullRun ??= await RunAsync(null);
            return _fullRun.Value;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Starts a run through POST /api/v1/training-runs and waits until it has finished; returns its id.</summary>
    public async Task<long> RunAsync(string[]? resources)
    {
        using var client = Writer();
        var response = await client.PostAsync("/api/v1/training-runs", Json(resources is null ? "{}" : JsonSerializer.Serialize(new { resources })));
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        Assert.Equal($"/api/v1/training-runs/{id}", response.Headers.Location?.OriginalString);
        await WaitForRunAsync(id);
        return id;
    }

    public async Task<JsonElement> WaitForRunAsync(long id)
    {
        using var client = Reader();
        var deadline = TimeProvider.System.GetUtcNow().AddMinutes(3);
        while (true)
        {
            var run = await client.GetFromJsonAsync<JsonElement>($"/api/v1/training-runs/{id}");
            if (run.GetProperty("status").GetString() is "succeeded" or "failed")
            {
                return run;
            }
            Assert.True(TimeProvider.System.GetUtcNow() < deadline, $"run {id} did not finish: {run}");
            await Task.Delay(200);
        }
    }
}
