using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Forecaster.Api.Tests.Infrastructure;
using Forecaster.Api.Training;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Forecaster.Api.Tests.Training;

/// <summary>A training fixture of its own: retention removes versions and files that other classes' checks expect.</summary>
public sealed class ModelRetentionFixture : TrainingFixture;

/// <summary>
/// Retention of model versions (issue 16): five real training runs of two resources, then passes of the service's own
/// retention over its database and models directory, checked through the models API and on disk.
/// </summary>
public sealed class ModelRetentionTests(ModelRetentionFixture fx) : IClassFixture<ModelRetentionFixture>
{
    static ModelRetentionOptions Options(int keepSuperseded, int keepDays, int graceMinutes = 0) =>
        new() { KeepSuperseded = keepSuperseded, KeepDays = keepDays, SweepGraceMinutes = graceMinutes, BatchVersions = 100 };

    sealed record Version(long Id, string Resource, string Metric, long RunId, string Status, string? Artifact);

    [Fact]
    public async Task RetentionKeepsTheActiveTheReferencedAndTheLastSupersededAndRemovesTheRestWithTheirUnreferencedFiles()
    {
        string[] names = ["checkout", "search"];
        var runs = new List<long>();
        for (int i = 0; i < 5; i++)
        {
            runs.Add(await fx.RunAsync(names));
        }
        await using var conn = new NpgsqlConnection(fx.ConnectionString);
        const string stored = """
            SELECT mv.id, r.name AS Resource, mv.metric, mv.run_id AS RunId, mv.status, mv.artifact
            FROM model_versions mv JOIN resources r ON r.id = mv.resource_id WHERE r.name = ANY(@names) ORDER BY mv.id
            """;
        // One-file artifacts of a release before packs: one whose version will be removed, one whose version is kept.
        var trained = (await conn.QueryAsync<Version>(stored, new { names })).ToList();
        var removedCpu = trained.Single(v => v is { Resource: "checkout", Metric: "cpu_cores" } && v.RunId == runs[1]);
        var keptCpu = trained.Single(v => v is { Resource: "checkout", Metric: "cpu_cores" } && v.RunId == runs[3]);
        Directory.CreateDirectory(Path.Combine(fx.ModelsDir, "checkout"));
        foreach (var v in new[] { removedCpu, keptCpu })
        {
            var oneFile = $"checkout/cpu_cores-v{v.Id}.json";
            await File.WriteAllBytesAsync(Path.Combine(fx.ModelsDir, oneFile), await fx.Reader().GetByteArrayAsync($"/api/v1/resources/checkout/models/{v.Id}/artifact"));
            await conn.ExecuteAsync("UPDATE model_versions SET artifact = @oneFile, artifact_offset = NULL, artifact_length = NULL WHERE id = @id", new { oneFile, id = v.Id });
        }
        var oneFileGone = Path.Combine(fx.ModelsDir, $"checkout/cpu_cores-v{removedCpu.Id}.json");
        var before = (await conn.QueryAsync<Version>(stored, new { names })).ToList();
        Assert.Equal(2 * 3 * 5, before.Count);
        Assert.All(before, v => Assert.NotNull(v.Artifact));
        var checkoutLoad = before.Where(v => v is { Resource: "checkout", Metric: "qps" }).ToList();

        // Plans name each run's load version; as if the plan purge had run, only the served plans and checkout's first plan
        // (naming the first run's load version) are left.
        var firstPlan = await conn.QuerySingleAsync<(long Id, long? ModelVersionId)>("""
            SELECT p.id, p.model_version_id FROM plan_versions p JOIN resources r ON r.id = p.resource_id
            WHERE r.name = 'checkout' AND p.training_run_id = @run ORDER BY p.id LIMIT 1
            """, new { run = runs[0] });
        Assert.Equal(checkoutLoad.Single(v => v.RunId == runs[0]).Id, firstPlan.ModelVersionId);
        await conn.ExecuteAsync("""
            DELETE FROM plan_versions p USING resources r
            WHERE r.id = p.resource_id AND r.name = ANY(@names) AND p.id <> @first AND p.id NOT IN (SELECT version_id FROM plan_current)
            """, new { names, first = firstPlan.Id });

        // A failed version of the first run (kept KeepDays only), and one trained later (younger than the cutoff below).
        var searchId = await conn.QuerySingleAsync<int>("SELECT id FROM resources WHERE name = 'search'");
        var failedOld = await conn.ExecuteScalarAsync<long>("""
            INSERT INTO model_versions (resource_id, metric, run_id, status, trained_at, error) VALUES (@searchId, 'qps', @run, 'failed', @at, 'no samples') RETURNING id
            """, new { searchId, run = runs[0], at = ApiFixture.Now });
        var failedYoung = await conn.ExecuteScalarAsync<long>("""
            INSERT INTO model_versions (resource_id, metric, run_id, status, trained_at, error) VALUES (@searchId, 'qps', @run, 'failed', @at, 'no samples') RETURNING id
            """, new { searchId, run = runs[4], at = ApiFixture.Now.AddDays(9) });
        // Files retention must leave: a directory of a run the database does not know, and an unknown file.
        var unknownRun = Path.Combine(fx.ModelsDir, "packs", "run-987654", "shard-0-v1.jsonl");
        Directory.CreateDirectory(Path.GetDirectoryName(unknownRun)!);
        await File.WriteAllTextAsync(unknownRun, "{}\n");
        var notOurs = Path.Combine(fx.ModelsDir, "checkout", "notes.txt");
        await File.WriteAllTextAsync(notOurs, "kept");

        var zips = runs.Select(r => Path.Combine(fx.ModelsDir, "global", $"run-{r}.zip")).ToList();
        Assert.All(zips, z => Assert.True(File.Exists(z), z));

        var retention = fx.Factory.Services.GetRequiredService<ModelRetention>();
        // Everything is younger than three days a day later: nothing goes.
        var young = await retention.PassAsync(Options(keepSuperseded: 2, keepDays: 3), ApiFixture.Now.AddDays(1), default);
        Assert.Equal((0L, 0), (young.Removed, young.Files.Files));

        // Ten days later: per series the active version, the two newest superseded, and checkout's first load version (its
        // plan is still stored) stay; the first two runs' other versions and the old failed one go.
        var outcome = await retention.PassAsync(Options(keepSuperseded: 2, keepDays: 3), ApiFixture.Now.AddDays(10), default);
        var keptPlanned = checkoutLoad.Single(v => v.RunId == runs[0]);
        var expectedGone = before.Where(v => (v.RunId == runs[0] || v.RunId == runs[1]) && v.Id != keptPlanned.Id).Select(v => v.Id).Append(failedOld).Order().ToList();
        Assert.Equal(expectedGone.Count, outcome.Removed);
        Assert.Equal(2, outcome.Resources);
        var after = (await conn.QueryAsync<Version>(stored, new { names })).ToList();
        Assert.Equal(before.Select(v => v.Id).Append(failedOld).Append(failedYoung).Except(expectedGone).Order(), after.Select(v => v.Id).Order());
        Assert.All(names.SelectMany(n => new[] { "qps", "cpu_cores", "memory_bytes" }.Select(m => (n, m))),
            s => Assert.Single(after, v => v.Resource == s.n && v.Metric == s.m && v.Status == "active"));

        // Files: a pack goes once none of its versions is left; the first run's pack of checkout stays (its load version is
        // kept) though its cpu and memory versions were removed.
        var keptPaths = after.Select(v => v.Artifact).OfType<string>().ToHashSet();
        var gonePacks = before.Select(v => v.Artifact!).Distinct().Where(p => p.StartsWith("packs/", StringComparison.Ordinal) && !keptPaths.Contains(p)).ToList();
        Assert.NotEmpty(gonePacks);
        Assert.All(gonePacks, p => Assert.False(File.Exists(Path.Combine(fx.ModelsDir, p)), p));
        Assert.All(keptPaths, p => Assert.True(File.Exists(Path.Combine(fx.ModelsDir, p)), p));
        Assert.Contains(before, v => v.Artifact == keptPlanned.Artifact && expectedGone.Contains(v.Id));
        Assert.Equal(gonePacks.Count, outcome.Files.Packs);
        Assert.False(File.Exists(oneFileGone));
        Assert.Equal(1, outcome.Files.OneFileArtifacts);
        Assert.True(File.Exists(unknownRun));
        Assert.True(File.Exists(notOurs));
        // The fleet-wide model of a run none of whose versions is left goes; the first run's stays with its kept version.
        Assert.False(File.Exists(zips[1]));
        Assert.True(File.Exists(zips[0]));
        Assert.All(zips.Skip(2), z => Assert.True(File.Exists(z), z));
        Assert.Equal(1, outcome.Files.FleetModels);
        Assert.False(Directory.Exists(Path.Combine(fx.ModelsDir, "packs", $"run-{runs[1]}")));
        await ModelArtifactChecks.AssertEveryArtifactReadsAsync(fx.ConnectionString, fx.ModelsDir);

        // Through the API: a removed version answers 410 saying retention removed it; kept ones still read.
        using var client = fx.Reader();
        var removed = before.First(v => v.Resource == "search" && v.RunId == runs[0]);
        var gone = await client.GetAsync($"/api/v1/resources/search/models/{removed.Id}/artifact");
        Assert.Equal(HttpStatusCode.Gone, gone.StatusCode);
        Assert.Equal("application/problem+json", gone.Content.Headers.ContentType?.MediaType);
        var problem = await gone.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Contains("Model retention (Forecaster:ModelRetention) removed", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.True(problem.GetProperty("errors").TryGetProperty("version", out _));
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync($"/api/v1/resources/checkout/models/{keptPlanned.Id}/artifact")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync($"/api/v1/resources/checkout/models/{keptCpu.Id}/artifact")).StatusCode);
        // Not a version retention removed of that resource: 404 as before.
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/api/v1/resources/search/models/0/artifact")).StatusCode);
        var listed = (await client.GetFromJsonAsync<JsonElement>("/api/v1/resources/search/models?limit=1000")).GetProperty("items")
            .EnumerateArray().Select(i => i.GetProperty("version").GetInt64()).ToList();
        Assert.Empty(listed.Intersect(expectedGone));

        // Idempotent: a second pass finds nothing.
        var again = await retention.PassAsync(Options(keepSuperseded: 2, keepDays: 3), ApiFixture.Now.AddDays(10), default);
        Assert.Equal((0L, 0, 0), (again.Removed, again.Resources, again.Files.Files));

        // A pack of a run still running is never removed, nor a file younger than the grace period; once the run is over
        // and the file old enough, an unreferenced pack and a temporary one go.
        var running = await conn.ExecuteScalarAsync<long>("""
            INSERT INTO training_runs (trigger, status, created_at, started_at) VALUES ('api', 'running', @now, @now) RETURNING id
            """, new { now = ApiFixture.Now });
        try
        {
            var pack = Path.Combine(fx.ModelsDir, "packs", $"run-{running}", "shard-0-v1.jsonl");
            Directory.CreateDirectory(Path.GetDirectoryName(pack)!);
            await File.WriteAllTextAsync(pack, "{}\n");
            await File.WriteAllTextAsync(pack + ".tmp", "{}\n");
            Assert.Equal(0, (await retention.PassAsync(Options(2, 3), ApiFixture.Now.AddDays(10), default)).Files.Files);
            Assert.True(File.Exists(pack));
            await conn.ExecuteAsync("UPDATE training_runs SET status = 'failed', finished_at = @now WHERE id = @running", new { now = ApiFixture.Now, running });
            Assert.Equal(0, (await retention.PassAsync(Options(2, 3, graceMinutes: 60), ApiFixture.Now.AddDays(10), default)).Files.Files);
            Assert.True(File.Exists(pack));
            var swept = await retention.PassAsync(Options(2, 3), ApiFixture.Now.AddDays(10), default);
            Assert.Equal((1, 1), (swept.Files.Packs, swept.Files.Temporary));
            Assert.False(Directory.Exists(Path.GetDirectoryName(pack)));
        }
        finally
        {
            await conn.ExecuteAsync("UPDATE training_runs SET status = 'failed' WHERE id = @running AND status = 'running'", new { running });
        }
    }

    [Fact]
    public async Task ATruncatedOrCorruptPackAnswersAProblemNamingTheFileAndWhatIsWrong()
    {
        var run = await fx.RunAsync(["cart"]);
        await using var conn = new NpgsqlConnection(fx.ConnectionString);
        var (version, path, offset, length) = await conn.QuerySingleAsync<(long, string, long, int)>("""
            SELECT mv.id, mv.artifact, mv.artifact_offset, mv.artifact_length FROM model_versions mv JOIN resources r ON r.id = mv.resource_id
            WHERE r.name = 'cart' AND mv.metric = 'cpu_cores' AND mv.run_id = @run
            """, new { run });
        var file = Path.Combine(fx.ModelsDir, path);
        var whole = await File.ReadAllBytesAsync(file);
        var url = $"/api/v1/resources/cart/models/{version}/artifact";
        using var client = fx.Reader();
        try
        {
            // Cut in the middle of the artifact, as a disk that filled or a copy cut short would leave it.
            await File.WriteAllBytesAsync(file, whole.AsSpan(0, (int)offset + length / 2).ToArray());
            var truncated = await client.GetAsync(url);
            Assert.Equal(HttpStatusCode.InternalServerError, truncated.StatusCode);
            Assert.Equal("application/problem+json", truncated.Content.Headers.ContentType?.MediaType);
            var problem = await truncated.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal("Model artifact damaged", problem.GetProperty("title").GetString());
            Assert.Equal(path, problem.GetProperty("artifact").GetString());
            var detail = problem.GetProperty("detail").GetString()!;
            Assert.Contains($"{path} (in the models directory) is {offset + length / 2} bytes long and ends before the artifact's bytes {offset} to {offset + length} (it was cut short, or the version points past its end)", detail, StringComparison.Ordinal);

            // The same length, other bytes: not the artifact.
            var corrupt = whole.ToArray();
            corrupt.AsSpan((int)offset, 8).Fill((byte)'#');
            await File.WriteAllBytesAsync(file, corrupt);
            var damaged = await client.GetAsync(url);
            Assert.Equal(HttpStatusCode.InternalServerError, damaged.StatusCode);
            Assert.Contains($"{path} (in the models directory) bytes {offset} to {offset + length} are not a model artifact",
                (await damaged.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString(), StringComparison.Ordinal);
        }
        finally
        {
            await File.WriteAllBytesAsync(file, whole);
        }
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(url)).StatusCode);
    }
}
