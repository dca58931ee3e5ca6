using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Dapper;
using Forecaster.Api.Training;
using Forecaster.Training.Forecasting;
using Npgsql;

namespace Forecaster.Api.Tests.Training;

/// <summary>
/// Model artifacts in packs (issue 16): one JSON Lines file per batch, each version pointing at its bytes. They read back
/// through GET .../models/{version}/artifact and reproduce the stored forecasts to the bit; a version written as one file
/// before packs still reads; a pack that cannot be written fails its series and leaves no version pointing at nothing.
/// </summary>
public sealed class ModelArtifactTests(TrainingFixture fx) : IClassFixture<TrainingFixture>
{
    [Fact]
    public async Task EveryModelOfARunReadsBackFromItsPackAndReproducesItsStoredForecastExactly()
    {
        var id = await fx.FullRunAsync();
        await using var conn = new NpgsqlConnection(fx.ConnectionString);
        var versions = (await conn.QueryAsync<(long Id, string Resource, string Metric, int Horizon, double Level)>("""
            SELECT mv.id, r.name, mv.metric, mv.horizon, mv.level FROM model_versions mv JOIN resources r ON r.id = mv.resource_id
            WHERE mv.run_id = @id AND mv.status = 'active' ORDER BY mv.id
            """, new { id })).ToList();
        Assert.Equal(75, versions.Count);
        using var client = fx.Reader();
        var places = new Dictionary<long, (string Path, long Offset, int Length)>();
        foreach (var resource in versions.Select(v => v.Resource).Distinct())
        {
            var page = await client.GetFromJsonAsync<JsonElement>($"/api/v1/resources/{resource}/models");
            foreach (var item in page.GetProperty("items").EnumerateArray().Where(i => i.GetProperty("status").GetString() == "active"))
            {
                places[item.GetProperty("version").GetInt64()] = (item.GetProperty("artifact").GetString()!,
                    item.GetProperty("artifactOffset").GetInt64(), item.GetProperty("artifactLength").GetInt32());
            }
        }
        foreach (var v in versions)
        {
            var response = await client.GetAsync($"/api/v1/resources/{v.Resource}/models/{v.Id}/artifact");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
            var bytes = await response.Content.ReadAsByteArrayAsync();
            var (path, offset, length) = places[v.Id];
            Assert.Equal(length, bytes.Length);
            Assert.StartsWith($"packs/run-{id}/shard-", path, StringComparison.Ordinal);
            using var doc = JsonDocument.Parse(bytes);
            var header = doc.RootElement.GetProperty("header");
            Assert.Equal(v.Id, header.GetProperty("version").GetInt64());
            Assert.Equal((v.Resource, v.Metric, id), (header.GetProperty("resource").GetString(), header.GetProperty("metric").GetString(), header.GetProperty("runId").GetInt64()));
            Assert.Equal((v.Horizon, v.Level), (header.GetProperty("horizon").GetInt32(), header.GetProperty("level").GetDouble()));
            var forecast = FittedModel.FromJson(doc.RootElement.GetProperty("model").GetRawText()).Forecast(v.Horizon, v.Level);
            await AssertStoredAsync(conn, v.Id, forecast);
        }

        // The packs: one file per batch, each its versions' lines back to back and nothing else; no file per series, no temporary left.
        var packs = places.Values.GroupBy(p => p.Path).ToList();
        Assert.Equal(packs.Count, Directory.GetFiles(Path.Combine(fx.ModelsDir, "packs", $"run-{id}"), "*").Length);
        Assert.Empty(Directory.GetFiles(fx.ModelsDir, "*.json", SearchOption.AllDirectories));
        Assert.Empty(Directory.GetFiles(fx.ModelsDir, "*.tmp", SearchOption.AllDirectories));
        Assert.InRange(packs.Count, 3, 75 / 2);
        foreach (var pack in packs)
        {
            var file = await File.ReadAllBytesAsync(Path.Combine(fx.ModelsDir, pack.Key));
            var expected = 0L;
            foreach (var (_, offset, length) in pack.OrderBy(p => p.Offset))
            {
                Assert.Equal(expected, offset);
                Assert.Equal((byte)'\n', file[offset + length]);
                expected = offset + length + 1;
            }
            Assert.Equal(expected, file.LongLength);
        }
        await ModelArtifactChecks.AssertEveryArtifactReadsAsync(fx.ConnectionString, fx.ModelsDir);
    }

    [Fact]
    public async Task AVersionStoredAsOneFileBeforePacksStillReads()
    {
        var id = await fx.FullRunAsync();
        await using var conn = new NpgsqlConnection(fx.ConnectionString);
        var (version, horizon, level, path, offset, length) = await conn.QuerySingleAsync<(long, int, double, string, long, int)>("""
            SELECT mv.id, mv.horizon, mv.level, mv.artifact, mv.artifact_offset, mv.artifact_length
            FROM model_versions mv JOIN resources r ON r.id = mv.resource_id
            WHERE r.name = 'checkout' AND mv.metric = 'cpu_cores' AND mv.run_id = @id
            """, new { id });
        var (header, model) = ModelArtifact.Read(fx.ModelsDir, new ArtifactPlace(path, offset, length));
        // As a release before packs wrote it: {resource}/{metric}-v{version}.json, the header serialised with web defaults and
        // the model's JSON indented; the version's row names the file, with no offset or length (as migration 0150 leaves it).
        var old = $"checkout/cpu_cores-v{version}.json";
        Directory.CreateDirectory(Path.Combine(fx.ModelsDir, "checkout"));
        var oldBytes = Encoding.UTF8.GetBytes(
            $"{{\"header\":{JsonSerializer.Serialize(header, new JsonSerializerOptions(JsonSerializerDefaults.Web))},\"model\":{model.ToJson()}}}");
        await File.WriteAllBytesAsync(Path.Combine(fx.ModelsDir, old), oldBytes);
        try
        {
            await conn.ExecuteAsync("UPDATE model_versions SET artifact = @old, artifact_offset = NULL, artifact_length = NULL WHERE id = @version", new { old, version });
            using var client = fx.Reader();
            var listed = (await client.GetFromJsonAsync<JsonElement>("/api/v1/resources/checkout/models?metric=cpu_cores")).GetProperty("items")
                .EnumerateArray().Single(i => i.GetProperty("version").GetInt64() == version);
            Assert.Equal(old, listed.GetProperty("artifact").GetString());
            // Null fields are left out of the service's JSON.
            Assert.False(listed.TryGetProperty("artifactOffset", out _));
            Assert.False(listed.TryGetProperty("artifactLength", out _));

            var served = await client.GetByteArrayAsync($"/api/v1/resources/checkout/models/{version}/artifact");
            Assert.Equal(oldBytes, served);
            var (oldHeader, oldModel) = ModelArtifact.Read(fx.ModelsDir, new ArtifactPlace(old, null, null));
            Assert.Equal(header, oldHeader);
            await AssertStoredAsync(conn, version, oldModel.Forecast(horizon, level));
            await ModelArtifactChecks.AssertEveryArtifactReadsAsync(fx.ConnectionString, fx.ModelsDir);
        }
        finally
        {
            await conn.ExecuteAsync("UPDATE model_versions SET artifact = @path, artifact_offset = @offset, artifact_length = @length WHERE id = @version",
                new { path, offset, length, version });
            File.Delete(Path.Combine(fx.ModelsDir, old));
        }
    }

    [Fact]
    public async Task APackThatCannotBeWrittenFailsItsSeriesWhichKeepTheirModelsAndNothingPointsAtAMissingFile()
    {
        await fx.FullRunAsync();
        const string active = """
            SELECT mv.id FROM model_versions mv JOIN resources r ON r.id = mv.resource_id
            WHERE r.name = ANY(@names) AND mv.status = 'active' ORDER BY mv.id
            """;
        string[] names = ["search", "cart"];
        await using var conn = new NpgsqlConnection(fx.ConnectionString);
        var before = (await conn.QueryAsync<long>(active, new { names })).ToList();
        Assert.Equal(6, before.Count);
        // A file where the packs' directory must be: creating a pack fails as a full or read-only disk would make it. The
        // earlier packs are moved aside meanwhile and back before the check that every version finds its artifact.
        var packs = Path.Combine(fx.ModelsDir, "packs");
        Directory.Move(packs, packs + ".aside");
        await File.WriteAllTextAsync(packs, "not a directory");
        long id;
        try
        {
            id = await fx.RunAsync(names);
        }
        finally
        {
            File.Delete(packs);
            Directory.Move(packs + ".aside", packs);
        }
        var run = await fx.WaitForRunAsync(id);
        Assert.Equal(6, run.GetProperty("progress").GetProperty("failed").GetInt32());
        var failures = run.GetProperty("failures").EnumerateArray().Select(f => f.GetProperty("error").GetString()!).ToList();
        Assert.Equal(6, failures.Count);
        Assert.All(failures, e => Assert.StartsWith("writing its model artifact failed: DirectoryNotFoundException", e, StringComparison.Ordinal));
        Assert.Equal(6, await fx.ScalarAsync<int>($"SELECT count(*)::int FROM model_versions WHERE run_id = {id} AND status = 'failed' AND artifact IS NULL AND artifact_offset IS NULL"));
        Assert.Equal(before, (await conn.QueryAsync<long>(active, new { names })).ToList());
        await ModelArtifactChecks.AssertEveryArtifactReadsAsync(fx.ConnectionString, fx.ModelsDir);
        using var client = fx.Reader();
        var response = await client.GetAsync($"/api/v1/resources/search/models/{await fx.ScalarAsync<long>($"SELECT min(mv.id) FROM model_versions mv JOIN resources r ON r.id = mv.resource_id WHERE mv.run_id = {id} AND r.name = 'search'")}/artifact");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Contains("has no artifact", (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnArtifactThatIsNotThereAnswersAProblem()
    {
        var id = await fx.FullRunAsync();
        using var client = fx.Reader();
        var version = await fx.ScalarAsync<long>($"SELECT min(mv.id) FROM model_versions mv JOIN resources r ON r.id = mv.resource_id WHERE mv.run_id = {id} AND r.name = 'search'");
        foreach (var url in new[] { $"/api/v1/resources/nope/models/{version}/artifact", $"/api/v1/resources/cart/models/{version}/artifact", "/api/v1/resources/search/models/0/artifact" })
        {
            var response = await client.GetAsync(url);
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        }
    }

    /// <summary>The stored forecast of <paramref name="version"/>, hour by hour, is <paramref name="forecast"/> to the last bit.</summary>
    static async Task AssertStoredAsync(NpgsqlConnection conn, long version, Forecast forecast)
    {
        var stored = (await conn.QueryAsync<(DateTime Ts, double Forecast, double Lower, double Upper)>("""
            SELECT f.start + (h.k - 1) * f.step AS ts, h.forecast, h.lower, h.upper
            FROM series_forecasts f, unnest(f.forecast, f.lower, f.upper) WITH ORDINALITY AS h(forecast, lower, upper, k)
            WHERE f.model_version_id = @version ORDER BY h.k
            """, new { version })).ToList();
        Assert.Equal(forecast.Point.Length, stored.Count);
        for (int h = 0; h < stored.Count; h++)
        {
            Assert.Equal(forecast.TimestampAt(h).UtcDateTime, stored[h].Ts);
            Assert.Equal((forecast.Point[h], forecast.Lower[h], forecast.Upper[h]), (stored[h].Forecast, stored[h].Lower, stored[h].Upper));
        }
    }
}

/// <summary>What every test that trains can check of the artifacts.</summary>
public static class ModelArtifactChecks
{
    /// <summary>Every model version that names an artifact finds it whole under <paramref name="models"/>, with its own header.</summary>
    public static async Task AssertEveryArtifactReadsAsync(string connectionString, string models)
    {
        await using var conn = new NpgsqlConnection(connectionString);
        var versions = await conn.QueryAsync<(long Id, string Path, long? Offset, int? Length)>(
            "SELECT id, artifact, artifact_offset, artifact_length FROM model_versions WHERE artifact IS NOT NULL");
        foreach (var v in versions)
        {
            var (header, _) = ModelArtifact.Read(models, new ArtifactPlace(v.Path, v.Offset, v.Length));
            Assert.Equal(v.Id, header.Version);
        }
    }
}
