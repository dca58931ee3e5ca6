using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using Dapper;
using Forecaster.Api.Tests.Infrastructure;
using Npgsql;

namespace Forecaster.Api.Tests.Training;

/// <summary>
/// The service process is killed (SIGKILL) in the middle of a training run and started again: the run is resumed (the
/// clustered scheduler recovers the dead instance's shards) or marked failed, no series loses its active model, and the
/// next run works.
/// </summary>
public sealed class TrainingKillTests
{
    [Fact]
    public async Task AServiceKilledMidRunResumesOrFailsTheRunAndKeepsEveryModel()
    {
        var db = await TestCluster.CreateDatabaseAsync("trainkill");
        var models = Path.Combine(Path.GetTempPath(), "forecaster-models", Guid.NewGuid().ToString("N")[..12]);
        await TestCluster.SeedDemoAsync(db, TimeProvider.System.GetUtcNow());
        Process? first = null, second = null;
        try
        {
            first = Serve(db, models, out var client);
            var before = await RunToEndAsync(client);
            Assert.Equal("succeeded", before.GetProperty("status").GetString());
            var activeBefore = await ActiveAsync(db);

            var id = (await (await client.PostAsync("/api/v1/training-runs", ApiFixture.Json("{}"))).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
            string? statusAtKill = null;
            for (var i = 0; i < 2000 && statusAtKill is not ("succeeded" or "failed"); i++)
            {
                var run = await client.GetFromJsonAsync<JsonElement>($"/api/v1/training-runs/{id}");
                statusAtKill = run.GetProperty("status").GetString();
                if (run.GetProperty("progress").GetProperty("done").GetInt32() > 0)
                {
                    break;
                }
                await Task.Delay(10);
            }
            first.Kill(entireProcessTree: true);
            await first.WaitForExitAsync();
            Assert.Equal("running", statusAtKill);

            second = Serve(db, models, out client);
            var after = await WaitAsync(client, id, TimeSpan.FromMinutes(3));
            Assert.Contains(after.GetProperty("status").GetString(), new[] { "succeeded", "failed" });
            Assert.True(activeBefore.SetEquals(await ActiveAsync(db)), "every series keeps an active model");

            var next = await RunToEndAsync(client);
            Assert.Equal("succeeded", next.GetProperty("status").GetString());
        }
        finally
        {
            // Never leave a server behind, whatever failed.
            foreach (var p in new[] { first, second })
            {
                if (p is not null)
                {
                    if (!p.HasExited)
                    {
                        p.Kill(entireProcessTree: true);
                        await p.WaitForExitAsync();
                    }
                    p.Dispose();
                }
            }
            if (Directory.Exists(models))
            {
                Directory.Delete(models, recursive: true);
            }
        }
    }

    /// <summary>(resource, metric) pairs with an active model.</summary>
    static async Task<HashSet<(int, string)>> ActiveAsync(string db)
    {
        await using var conn = new NpgsqlConnection(db);
        return (await conn.QueryAsync<(int, string)>("SELECT resource_id, metric FROM model_versions WHERE status = 'active'")).ToHashSet();
    }

    static Process Serve(string db, string models, out HttpClient client)
    {
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "forecaster.dll"), "serve", "--urls", $"http://127.0.0.1:{port}" })
        {
            psi.ArgumentList.Add(a);
        }
        psi.Environment["FORECASTER_DB"] = db;
        psi.Environment["FORECASTER_API_KEYS"] = ApiFixture.ApiKey;
        psi.Environment["Forecaster__Training__ModelsPath"] = models;
        psi.Environment["Forecaster__Training__Shards"] = "2";
        psi.Environment["Forecaster__Training__BatchResources"] = "2";
        psi.Environment["Forecaster__Training__SchedulerIdleSeconds"] = "1";
        var process = Process.Start(psi)!;
        // Drain the output so the child never blocks on a full pipe.
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        client.DefaultRequestHeaders.Add("X-Api-Key", ApiFixture.ApiKey);
        return process;
    }

    static async Task<JsonElement> RunToEndAsync(HttpClient client)
    {
        HttpResponseMessage? response = null;
        for (var attempt = 0; attempt < 240 && response?.StatusCode != HttpStatusCode.Accepted; attempt++)
        {
            try
            {
                response = await client.PostAsync("/api/v1/training-runs", ApiFixture.Json("{}"));
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            if (response?.StatusCode != HttpStatusCode.Accepted)
            {
                await Task.Delay(500);
            }
        }
        Assert.Equal(HttpStatusCode.Accepted, response?.StatusCode);
        var id = (await response!.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        return await WaitAsync(client, id, TimeSpan.FromMinutes(3));
    }

    static async Task<JsonElement> WaitAsync(HttpClient client, long id, TimeSpan timeout)
    {
        var deadline = TimeProvider.System.GetUtcNow() + timeout;
        while (true)
        {
            try
            {
                var run = await client.GetFromJsonAsync<JsonElement>($"/api/v1/training-runs/{id}");
                if (run.GetProperty("status").GetString() is "succeeded" or "failed")
                {
                    return run;
                }
            }
            catch (HttpRequestException)
            {
                // The restarted service is not listening yet.
            }
            Assert.True(TimeProvider.System.GetUtcNow() < deadline, $"run {id} did not finish");
            await Task.Delay(250);
        }
    }
}
