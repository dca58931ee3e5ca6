using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using Dapper;
using Forecaster.Api.Tests.Infrastructure;
using Npgsql;
using Xunit.Abstractions;

namespace Forecaster.Api.Tests.Training;

/// <summary>
/// The service process is killed (SIGKILL) or stopped (SIGTERM) in the middle of a training run and started again. Killed:
/// the run is resumed (the dead instance's shard job becomes visible again after the invisibility timeout, and its lease
/// died with its connection) or marked failed, no series loses its active model, and the next run works. Stopped: the
/// shard is handed back at once and the run finishes within a minute of the restart.
/// </summary>
public sealed class TrainingKillTests(ITestOutputHelper output)
{
    [Fact]
    public async Task AServiceKilledMidRunResumesOrFailsTheRunAndKeepsEveryModel()
    {
        var db = await TestCluster.CreateDatabaseAsync("trainkill");
        var models = TestEnvironment.NewHome("models");
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
            var running = await RunningShardsAsync(db, id);
            first.Kill(entireProcessTree: true);
            var killed = Stopwatch.StartNew();
            await first.WaitForExitAsync();
            Assert.Equal("running", statusAtKill);

            second = Serve(db, models, out client);
            // The shards the dead process was running: how long until another process runs them (or the run ends)?
            await using (var conn = new NpgsqlConnection(db))
            {
                while (running.Count > 0 && await conn.ExecuteScalarAsync<bool>("""
                    SELECT EXISTS (SELECT 1 FROM training_shards sh JOIN training_runs r ON r.id = sh.run_id
                                   WHERE r.id = @id AND r.status = 'running' AND (sh.shard, sh.instance_id) IN (SELECT * FROM unnest(@shards, @instances)))
                    """, new { id, shards = running.Keys.ToArray(), instances = running.Values.ToArray() }))
                {
                    Assert.True(killed.Elapsed < TimeSpan.FromMinutes(3), "the killed shards were never taken over");
                    await Task.Delay(250);
                }
            }
            // Hangfire's default invisibility timeout (30 minutes) would leave them for that long; ours is 30 s.
            output.WriteLine($"seconds from SIGKILL to the killed shards running again in another process: {killed.Elapsed.TotalSeconds:F1}");
            Assert.True(killed.Elapsed < TimeSpan.FromSeconds(90), $"killed shards taken over after {killed.Elapsed.TotalSeconds:F0} s");
            var after = await WaitAsync(client, id, TimeSpan.FromMinutes(3));
            Assert.Contains(after.GetProperty("status").GetString(), new[] { "succeeded", "failed" });
            Assert.True(activeBefore.SetEquals(await ActiveAsync(db)), "every series keeps an active model");
            // A pack is renamed into place before the transaction that refers to it: the kill left no version without its artifact.
            await ModelArtifactChecks.AssertEveryArtifactReadsAsync(db, models);

            var next = await RunToEndAsync(client);
            Assert.Equal("succeeded", next.GetProperty("status").GetString());
            await ModelArtifactChecks.AssertEveryArtifactReadsAsync(db, models);
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

    [Fact]
    public async Task ASigtermMidRunHandsTheShardBackAndTheRunFinishesWithinAMinuteOfTheRestart()
    {
        var db = await TestCluster.CreateDatabaseAsync("trainterm");
        var models = TestEnvironment.NewHome("models");
        await TestCluster.SeedDemoAsync(db, TimeProvider.System.GetUtcNow());
        Process? first = null, second = null;
        try
        {
            first = Serve(db, models, out var client);
            // Eight resources (24 series, two batches per shard): a minute after a restart is then a bound on the hand-back
            // and pickup, not on how fast two busy cores train the demo fleet (twelve took 72 s beside other suites' load).
            var response = await PostRunAsync(client, """{"resources":["checkout","search","payments","catalog","cart","auth","recommendations","notifications"]}""");
            var id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
            // Stopped as soon as its shards run: a shard's batches now report progress together once the run's fleet-wide
            // model is ready, so waiting for the first progress can mean waiting for nearly the whole (fast) run.
            var running = await RunningShardsAsync(db, id);
            for (var i = 0; i < 2000 && running.Count == 0; i++)
            {
                await Task.Delay(10);
                running = await RunningShardsAsync(db, id);
            }
            Assert.NotEmpty(running);

            using (var term = Process.Start("kill", ["-TERM", first.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            {
                await term.WaitForExitAsync();
            }
            var stopping = Stopwatch.StartNew();
            await first.WaitForExitAsync();
            output.WriteLine($"seconds from SIGTERM to exit: {stopping.Elapsed.TotalSeconds:F1}");
            // Handed back at once: nothing is left marked running by the stopped process, and the run is still under way.
            Assert.Empty(await RunningShardsAsync(db, id));
            await using (var conn = new NpgsqlConnection(db))
            {
                Assert.Equal("running", await conn.ExecuteScalarAsync<string>("SELECT status FROM training_runs WHERE id = @id", new { id }));
                Assert.True(await conn.ExecuteScalarAsync<bool>("SELECT EXISTS (SELECT 1 FROM training_shards WHERE run_id = @id AND status = 'pending')", new { id }));
                // And back in Hangfire's queue, free for the next fetch: a shard job still marked fetched would wait out the
                // invisibility timeout before any instance could take it.
                Assert.Equal(0, await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM hangfire.jobqueue WHERE queue = 'training' AND fetchedat IS NOT NULL"));
                Assert.True(await conn.ExecuteScalarAsync<long>("SELECT count(*) FROM hangfire.jobqueue WHERE queue = 'training'") > 0, "the stopped shards are queued again");
            }

            var restarted = Stopwatch.StartNew();
            second = Serve(db, models, out client);
            var after = await WaitAsync(client, id, TimeSpan.FromMinutes(3));
            output.WriteLine($"seconds from the restart to the run's end: {restarted.Elapsed.TotalSeconds:F1}");
            Assert.Equal("succeeded", after.GetProperty("status").GetString());
            Assert.True(restarted.Elapsed < TimeSpan.FromMinutes(1), $"the run finished {restarted.Elapsed.TotalSeconds:F0} s after the restart");
        }
        finally
        {
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

    /// <summary>The shards of run <paramref name="id"/> marked running, with the instance running each.</summary>
    static async Task<Dictionary<int, string>> RunningShardsAsync(string db, long id)
    {
        await using var conn = new NpgsqlConnection(db);
        return (await conn.QueryAsync<(int Shard, string Instance)>(
            "SELECT shard, instance_id FROM training_shards WHERE run_id = @id AND status = 'running'", new { id })).ToDictionary(r => r.Shard, r => r.Instance);
    }

    /// <summary>POST /api/v1/training-runs until the service answers 202 (it may still be starting).</summary>
    static async Task<HttpResponseMessage> PostRunAsync(HttpClient client, string body = "{}")
    {
        HttpResponseMessage? response = null;
        for (var attempt = 0; attempt < 240 && response?.StatusCode != HttpStatusCode.Accepted; attempt++)
        {
            try
            {
                response = await client.PostAsync("/api/v1/training-runs", ApiFixture.Json(body));
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
        return response!;
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
        // Both shards at once, so that a stop interrupts every shard it is running rather than one and a queued one.
        psi.Environment["Forecaster__Training__ShardsPerInstance"] = "2";
        psi.Environment["Forecaster__Training__LoadBacktestOrigins"] = "2";
        psi.Environment["Forecaster__Training__UsageBacktestOrigins"] = "1";
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
        var response = await PostRunAsync(client);
        var id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
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
