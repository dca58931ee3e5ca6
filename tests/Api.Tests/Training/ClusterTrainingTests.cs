using Dapper;
using Forecaster.Api.Tests.Infrastructure;
using Forecaster.Api.Training;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Hangfire;
using Npgsql;
using System.Net.Http.Json;
using System.Text.Json;

namespace Forecaster.Api.Tests.Training;

/// <summary>
/// Two service instances on one database: Hangfire's recurring scheduler fires the nightly job once and both take shards,
/// and the run's fleet-wide model is trained by one and loaded by the other. Both run on the wall clock (no fake clock): the
/// scheduler compares fire times with real time across instances.
/// </summary>
public sealed class ClusterTrainingTests
{
    [Fact]
    public async Task TwoInstancesRunTheNightlyTriggerExactlyOnceAndShareItsShardsAndItsFleetModel()
    {
        var db = await TestCluster.CreateDatabaseAsync("cluster");
        await TestCluster.SeedDemoAsync(db, TimeProvider.System.GetUtcNow());
        // The nightly job is registered as configured (never), then moved to a few seconds from now once both instances are
        // up: a start slower than the wait would otherwise put the first firing in the past.
        const string cron = "0 0 31 2 *";
        // A models directory each, as two pods have: the instance that does not train the fleet-wide model gets it from the database.
        var models = TestEnvironment.NewHome("models");
        var modelsB = TestEnvironment.NewHome("models");

        // Removed however the test ends: a failed assertion must not leave the instances' artifacts under the test root.
        try
        {
            using var a = Instance(db, cron, models);
            using var b = Instance(db, cron, modelsB);
            _ = a.Server;
            _ = b.Server;
            // Once, at a second a few seconds ahead (six fields: seconds first), in UTC.
            var at = TimeProvider.System.GetUtcNow().AddSeconds(4);
            TrainingJobs.ScheduleNightly(a.Services.GetRequiredService<IRecurringJobManager>(), $"{at.Second} {at.Minute} {at.Hour} {at.Day} {at.Month} *");

            await using var conn = new NpgsqlConnection(db);
            var deadline = TimeProvider.System.GetUtcNow().AddMinutes(3);
            while (await conn.ExecuteScalarAsync<int>("SELECT count(*)::int FROM training_runs WHERE status IN ('succeeded', 'failed')") == 0)
            {
                Assert.True(TimeProvider.System.GetUtcNow() < deadline, "the nightly run did not finish: " + string.Join("; ",
                    await conn.QueryAsync<string>("SELECT format('run %s %s %s/%s', id, status, series_done, series_total) FROM training_runs")));
                await Task.Delay(250);
            }
            // Give a second firing every chance to show up.
            await Task.Delay(TimeSpan.FromSeconds(3));

            var run = await conn.QuerySingleAsync<(long Id, string Trigger, string Status, int Done, int Total, string? Error)>(
                "SELECT id, trigger, status, series_done, series_total, error FROM training_runs");
            Assert.True(run.Status == "succeeded", $"run {run.Id} {run.Status}: {run.Error}");
            Assert.Equal(("nightly", "succeeded"), (run.Trigger, run.Status));
            Assert.Equal(75, run.Done);
            Assert.Equal(run.Total, run.Done);
            var instances = (await conn.QueryAsync<string>("SELECT DISTINCT instance_id FROM training_shards WHERE run_id = @Id", new { run.Id })).ToList();
            Assert.Equal(2, instances.Count);

            // One fleet-wide model, stored once: a second training would have collided with the stored row and failed its shard.
            var fleet = await conn.QuerySingleAsync<(string Version, byte[] Artifact)>(
                "SELECT version, artifact FROM fleet_models WHERE run_id = @Id", new { run.Id });
            Assert.Equal(FleetModel.RelativePath(run.Id), fleet.Version);
            // Both instances' load series name it, and both models directories hold exactly the stored zip.
            var slot = TrainingRuns.SlotOf.Replace("@slots", "tr.shard_slots", StringComparison.Ordinal);
            var versions = (await conn.QueryAsync<(string Instance, string? Global)>($"""
                SELECT DISTINCT sh.instance_id, mv.parameters ->> 'globalModel'
                FROM model_versions mv JOIN resources r ON r.id = mv.resource_id AND mv.metric = r.load_metric
                JOIN training_runs tr ON tr.id = mv.run_id
                JOIN training_shards sh ON sh.run_id = mv.run_id AND {slot} >= sh.slot_from AND {slot} < sh.slot_to
                WHERE mv.run_id = @Id AND mv.status <> 'failed'
                """, new { run.Id })).ToList();
            Assert.Equal(2, versions.Count);
            Assert.All(versions, v => Assert.Equal(fleet.Version, v.Global));
            Assert.Equal(fleet.Artifact, await File.ReadAllBytesAsync(Path.Combine(models, fleet.Version)));
            Assert.Equal(fleet.Artifact, await File.ReadAllBytesAsync(Path.Combine(modelsB, fleet.Version)));
        }
        finally
        {
            TestEnvironment.TryDelete(models);
            TestEnvironment.TryDelete(modelsB);
        }
    }

    [Fact]
    public async Task AFleetModelTrainerThatDiesLeavesTheModelToTheInstanceWaitingForIt()
    {
        var db = await TestCluster.CreateDatabaseAsync("fleetcrash");
        await TestCluster.SeedDemoAsync(db, TimeProvider.System.GetUtcNow());
        var models = TestEnvironment.NewHome("models");
        try
        {
            await using var conn = new NpgsqlConnection(db);
            // Another instance took the lease of the next run's fleet-wide model and is training it: a session holding the lock.
            var next = await conn.ExecuteScalarAsync<long>("SELECT coalesce(max(id), 0) + 1 FROM training_runs");
            // Unpooled: the session is ended under it, and no later test connection should be handed the dead one.
            await using var trainer = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(db) { Pooling = false }.ConnectionString);
            await trainer.OpenAsync();
            await trainer.ExecuteAsync("SELECT pg_advisory_lock(hashtextextended(@name, 0))", new { name = FleetModel.LeaseName(next) });

            using var a = Instance(db, "0 0 31 2 *", models);
            using var client = a.CreateClient();
            client.DefaultRequestHeaders.Add("X-Api-Key", ApiFixture.ApiKey);
            var created = await client.PostAsync("/api/v1/training-runs", ApiFixture.Json("{}"));
            Assert.Equal(System.Net.HttpStatusCode.Accepted, created.StatusCode);
            var id = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
            Assert.Equal(next, id);

            // The instance waits for the model (its load series need it); nothing is written while it waits.
            var deadline = TimeProvider.System.GetUtcNow().AddMinutes(2);
            while (!await conn.ExecuteScalarAsync<bool>("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted)"))
            {
                Assert.True(TimeProvider.System.GetUtcNow() < deadline, "the instance never waited for the fleet-wide model's lease");
                await Task.Delay(100);
            }
            await Task.Delay(TimeSpan.FromSeconds(1));
            Assert.Equal(0, await conn.ExecuteScalarAsync<int>("SELECT series_done FROM training_runs WHERE id = @id", new { id }));
            Assert.Equal(0, await conn.ExecuteScalarAsync<int>("SELECT count(*)::int FROM fleet_models"));

            // The trainer dies: its session ends, as when its process is killed, and the lease with it.
            await conn.ExecuteAsync("SELECT pg_terminate_backend(@pid)", new { pid = trainer.ProcessID });

            while (await conn.ExecuteScalarAsync<string>("SELECT status FROM training_runs WHERE id = @id", new { id }) is not ("succeeded" or "failed"))
            {
                Assert.True(TimeProvider.System.GetUtcNow() < deadline, "the run did not finish after the trainer died");
                await Task.Delay(250);
            }
            var run = await conn.QuerySingleAsync<(string Status, int Done, int Total, string? Error)>(
                "SELECT status, series_done, series_total, error FROM training_runs WHERE id = @id", new { id });
            Assert.True(run.Status == "succeeded", $"run {id} {run.Status}: {run.Error}");
            Assert.Equal(run.Total, run.Done);
            // The waiting instance trained the model itself, stored it, and its load series use it.
            Assert.Equal(FleetModel.RelativePath(id), await conn.ExecuteScalarAsync<string>(
                "SELECT version FROM fleet_models WHERE run_id = @id AND artifact IS NOT NULL", new { id }));
            Assert.True(File.Exists(Path.Combine(models, FleetModel.RelativePath(id))));
            Assert.Equal(0, await conn.ExecuteScalarAsync<int>("""
                SELECT count(*)::int FROM model_versions mv JOIN resources r ON r.id = mv.resource_id AND mv.metric = r.load_metric
                WHERE mv.run_id = @id AND mv.status <> 'failed' AND mv.parameters ->> 'globalModel' IS DISTINCT FROM @version
                """, new { id, version = FleetModel.RelativePath(id) }));
        }
        finally
        {
            TestEnvironment.TryDelete(models);
        }
    }

    [Fact]
    public async Task AShardHandedBackWhileTheFleetModelIsAwaitedDoesNotFailTheOtherShardWaitingForIt()
    {
        // One instance running two shards at once (Forecaster:Training:ShardsPerInstance 2): the first shard starts getting the
        // run's fleet-wide model, the second waits for the same model, and the first is then handed back (its instance stops it,
        // or Hangfire gave it to another instance). The second must go on and finish, not fail with "a task was canceled" and
        // nothing written, which failed the whole run (issue 16).
        var db = await TestCluster.CreateDatabaseAsync("fleetshare");
        await TestCluster.SeedDemoAsync(db, TimeProvider.System.GetUtcNow());
        var models = TestEnvironment.NewHome("models");
        try
        {
            using var a = Instance(db, "0 0 31 2 *", models, ("Forecaster:Training:Scheduler", "false"), ("Forecaster:Training:BatchResources", "1000"));
            var services = a.Services;
            var source = services.GetRequiredService<NpgsqlDataSource>();
            var runner = services.GetRequiredService<ShardRunner>();
            var (created, _) = await TrainingRuns.CreateAsync(source, "api", null, TimeProvider.System.GetUtcNow(), CancellationToken.None);
            var id = created!.Value;
            Assert.Equal([0, 1], await TrainingRuns.StartAsync(source, id, 2, TimeProvider.System.GetUtcNow(), CancellationToken.None));

            await using var conn = new NpgsqlConnection(db);
            // Another instance holds the model's lease (it is training it): both shards' wait for the model is a wait on it.
            await using var trainer = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(db) { Pooling = false }.ConnectionString);
            await trainer.OpenAsync();
            await trainer.ExecuteAsync("SELECT pg_advisory_lock(hashtextextended(@name, 0))", new { name = FleetModel.LeaseName(id) });
            async Task<long> AllocatedAsync() => await conn.ExecuteScalarAsync<long>("SELECT coalesce(last_value, 0) FROM pg_sequences WHERE sequencename = 'model_versions_id_seq'");
            async Task UntilAsync(Func<Task<bool>> condition, string what)
            {
                var deadline = TimeProvider.System.GetUtcNow().AddMinutes(2);
                while (!await condition())
                {
                    Assert.True(TimeProvider.System.GetUtcNow() < deadline, what);
                    await Task.Delay(100);
                }
            }

            // Shard 0 first: it starts getting the model, and its one batch (BatchResources 1000) is read and allocated.
            using var stopFirst = new CancellationTokenSource();
            var before = await AllocatedAsync();
            var first = Task.Run(() => runner.RunAsync(id, 0, "instance-a", null, handBack: true, recordAttempts: 1, stopFirst.Token));
            await UntilAsync(() => conn.ExecuteScalarAsync<bool>("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted)"),
                "shard 0 never waited for the fleet-wide model's lease");
            await UntilAsync(async () => await AllocatedAsync() > before, "shard 0 never read its batch");
            // Then shard 1, which waits for the same model; its batch read (version ids allocated) comes after it asked for it.
            var afterFirst = await AllocatedAsync();
            var second = Task.Run(() => runner.RunAsync(id, 1, "instance-a", null, handBack: true, recordAttempts: 1, CancellationToken.None));
            await UntilAsync(async () => await AllocatedAsync() > afterFirst, "shard 1 never read its batch");

            // Shard 0 is handed back while both wait.
            stopFirst.Cancel();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first);
            Assert.Equal("pending", await conn.ExecuteScalarAsync<string>("SELECT status FROM training_shards WHERE run_id = @id AND shard = 0", new { id }));
            Assert.False(second.IsCompleted, "shard 1 ended while the model it waits for was still being trained elsewhere");

            // The other instance dies: this one takes the lease, trains the model, and shard 1 finishes with it.
            await conn.ExecuteAsync("SELECT pg_terminate_backend(@pid)", new { pid = trainer.ProcessID });
            var done = await second;
            Assert.True(done.Error is null, $"shard 1 failed: {done.Error}");
            var shard = await conn.QuerySingleAsync<(string Status, int Done, int Total)>(
                "SELECT status, series_done, series_total FROM training_shards WHERE run_id = @id AND shard = 1", new { id });
            Assert.Equal("succeeded", shard.Status);
            Assert.Equal(shard.Total, shard.Done);
            Assert.Equal(FleetModel.RelativePath(id), await conn.ExecuteScalarAsync<string>(
                "SELECT version FROM fleet_models WHERE run_id = @id AND artifact IS NOT NULL", new { id }));
        }
        finally
        {
            TestEnvironment.TryDelete(models);
        }
    }

    [Fact]
    public async Task AShardProcessStoppedOrKilledInTheMiddleOfABatchLosesNothingAndWritesNothingTwice()
    {
        // The service fits its shards in a child process (ShardProcesses, issue 16). Each batch is written in one transaction,
        // whose last statement counts the shard's progress: holding that row's lock stops the child inside a batch's write.
        // There, the shard is first handed back (its child is stopped), then run again and its child killed (the service
        // starts another and the shard resumes): the shard must end with every series trained exactly once.
        var db = await TestCluster.CreateDatabaseAsync("shardproc");
        await TestCluster.SeedDemoAsync(db, TimeProvider.System.GetUtcNow());
        var models = TestEnvironment.NewHome("models");
        try
        {
            // The demo fleet's 75 series are fewer than a child is started for by default.
            using var a = Instance(db, "0 0 31 2 *", models, ("Forecaster:Training:Scheduler", "false"), ("Forecaster:Training:ShardProcessMinSeries", "0"));
            var services = a.Services;
            var source = services.GetRequiredService<NpgsqlDataSource>();
            var runner = services.GetRequiredService<ShardRunner>();
            var processes = services.GetRequiredService<ShardProcesses>();
            var (created, _) = await TrainingRuns.CreateAsync(source, "api", null, TimeProvider.System.GetUtcNow(), CancellationToken.None);
            var id = created!.Value;
            Assert.Equal([0], await TrainingRuns.StartAsync(source, id, 1, TimeProvider.System.GetUtcNow(), CancellationToken.None));

            await using var conn = new NpgsqlConnection(db);
            async Task UntilAsync(Func<Task<bool>> condition, string what)
            {
                var deadline = TimeProvider.System.GetUtcNow().AddMinutes(2);
                while (!await condition())
                {
                    Assert.True(TimeProvider.System.GetUtcNow() < deadline, what);
                    await Task.Delay(50);
                }
            }
            Task<int> DoneAsync() => conn.ExecuteScalarAsync<int>("SELECT series_done FROM training_shards WHERE run_id = @id AND shard = 0", new { id });
            // Once a batch has committed, the shard's row is locked; the child's next write waits for it, its batch uncommitted.
            async Task<NpgsqlConnection> StopInsideABatchAsync(int after)
            {
                await UntilAsync(async () => await DoneAsync() > after, "the shard never wrote a batch");
                var holder = new NpgsqlConnection(db);
                await holder.OpenAsync();
                await holder.ExecuteAsync("BEGIN; SELECT 1 FROM training_shards WHERE run_id = @id AND shard = 0 FOR UPDATE", new { id });
                await UntilAsync(() => conn.ExecuteScalarAsync<bool>("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock')"),
                    "the shard's next batch never waited for its row");
                return holder;
            }

            // 1. Handed back: the child is stopped before the shard is marked pending.
            using var stop = new CancellationTokenSource();
            var first = Task.Run(() => runner.RunAsync(id, 0, "instance-a", null, handBack: true, recordAttempts: 1, stop.Token, inChildProcess: true));
            var holder = await StopInsideABatchAsync(0);
            var child = Assert.Single(processes.ProcessIds);
            stop.Cancel();
            // The child is gone while the shard's row is still locked: before the shard could be handed back.
            await UntilAsync(() => Task.FromResult(processes.ProcessIds.Count == 0), "the shard's process was not stopped");
            Assert.Throws<ArgumentException>(() => System.Diagnostics.Process.GetProcessById(child));
            await holder.DisposeAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first);
            Assert.Equal("pending", await conn.ExecuteScalarAsync<string>("SELECT status FROM training_shards WHERE run_id = @id AND shard = 0", new { id }));

            // 2. Delivered again; its child is killed inside a batch, and the shard resumes in a new one.
            var doneBefore = await DoneAsync();
            var second = Task.Run(() => runner.RunAsync(id, 0, "instance-a", null, handBack: true, recordAttempts: 1, CancellationToken.None, inChildProcess: true));
            holder = await StopInsideABatchAsync(doneBefore);
            child = Assert.Single(processes.ProcessIds);
            System.Diagnostics.Process.GetProcessById(child).Kill();
            await holder.DisposeAsync();
            var run = await second;
            Assert.True(run.Error is null, $"the shard failed: {run.Error}");
            Assert.NotEqual(child, Assert.Single(processes.ProcessIds));

            var shard = await conn.QuerySingleAsync<(string Status, int Done, int Failed, int Total)>(
                "SELECT status, series_done, series_failed, series_total FROM training_shards WHERE run_id = @id AND shard = 0", new { id });
            Assert.Equal(("succeeded", 0), (shard.Status, shard.Failed));
            Assert.Equal(shard.Total, shard.Done);
            Assert.Equal(75, shard.Total);
            // Every series has exactly one model version of this run, and one active model.
            Assert.Equal(75, await conn.ExecuteScalarAsync<int>("SELECT count(*)::int FROM model_versions WHERE run_id = @id", new { id }));
            Assert.Equal(75, await conn.ExecuteScalarAsync<int>("SELECT count(DISTINCT (resource_id, metric))::int FROM model_versions WHERE run_id = @id", new { id }));
            Assert.Equal(75, await conn.ExecuteScalarAsync<int>("SELECT count(*)::int FROM model_versions WHERE status = 'active'"));
            Assert.Equal("succeeded", await conn.ExecuteScalarAsync<string>("SELECT status FROM training_runs WHERE id = @id", new { id }));
        }
        finally
        {
            TestEnvironment.TryDelete(models);
        }
    }

    static WebApplicationFactory<Program> Instance(string db, string cron, string models, params (string Key, string Value)[] settings) =>
        new WebApplicationFactory<Program>().WithWebHostBuilder(web =>
        {
            web.UseSetting("FORECASTER_DB", db);
            web.UseSetting("Forecaster:ApiKeys:0", ApiFixture.ApiKey);
            web.UseSetting("Forecaster:Training:NightlyCron", cron);
            web.UseSetting("Forecaster:Training:ModelsPath", models);
            web.UseSetting("Forecaster:Training:Shards", "6");
            web.UseSetting("Forecaster:Training:BatchResources", "2");
            web.UseSetting("Forecaster:Training:LoadBacktestOrigins", "2");
            web.UseSetting("Forecaster:Training:UsageBacktestOrigins", "1");
            web.UseSetting("Forecaster:Training:SchedulerIdleSeconds", "1");
            foreach (var (key, value) in settings)
            {
                web.UseSetting(key, value);
            }
        });
}
