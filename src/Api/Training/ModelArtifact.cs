using System.Buffers;
using System.Text.Json;
using Forecaster.Training.Forecasting;

namespace Forecaster.Api.Training;

/// <summary>Who an artifact belongs to and how its stored forecast was made (horizon and level reproduce it).</summary>
public sealed record ArtifactHeader(long Version, string Resource, string Metric, long RunId, DateTimeOffset TrainedAt, int Horizon, double Level);

/// <summary>
/// Where a model version's artifact is (<c>model_versions.artifact</c>, <c>artifact_offset</c>, <c>artifact_length</c>): a
/// file relative to the models directory, and in a pack the artifact's bytes within it. A version written before packs
/// (one file each) has no offset and length: the whole file is its artifact.
/// </summary>
public sealed record ArtifactPlace(string Path, long? Offset, int? Length);

/// <summary>What writing one model into a pack gave: its bytes' place, or why it could not be written.</summary>
public readonly record struct PackEntry(long Offset, int Length, string? Error);

/// <summary>
/// A model version's artifact: <c>{"header":...,"model":...}</c>, the header above plus the fitted model's own JSON
/// (<see cref="FittedModel.WriteJson(Utf8JsonWriter)"/>: the model state, interval calibration, backtest, training window and
/// notes). <c>FittedModel.FromJson(model).Forecast(horizon, level)</c> gives back the stored forecast exactly.
/// Training writes one pack per batch, <c>packs/run-{run}/shard-{shard}-v{first version}.jsonl</c>: the batch's artifacts, one
/// JSON document per line (JSON Lines), written to a temporary name and renamed once, before the batch's transaction refers
/// to it. Creating a file costs this disk about 1 ms of kernel time whatever its size, which one file per series made 10-16%
/// of a training run's CPU (issue 16). Releases before packs wrote one file per version, <c>{resource}/{metric}-v{version}.json</c>
/// (the model's JSON indented); those still read.
/// </summary>
public static class ModelArtifact
{
    static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>The pack of a batch, relative to the models directory; named by its first model's version, which no other batch has.</summary>
    public static string PackPath(long runId, int shard, long firstVersion) =>
        Path.Combine("packs", $"run-{runId}", $"shard-{shard}-v{firstVersion}.jsonl");

    /// <summary>
    /// Writes <paramref name="models"/> as one pack (to a temporary name first and renamed once, so a reader never sees half a
    /// pack and a version refers to it only once it is whole). A model whose JSON cannot be written gets an error and no bytes.
    /// </summary>
    public static PackEntry[] WritePack(string modelsDir, string relativePath, IReadOnlyList<(ArtifactHeader Header, FittedModel Model)> models)
    {
        var path = Path.Combine(modelsDir, relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var temp = path + ".tmp";
        var entries = new PackEntry[models.Count];
        // One buffer and one writer for the whole pack: each model is laid out in the buffer, then appended to the file, so a
        // model that fails half way leaves nothing behind. Not indented: a line per model, and 0.55 of the indented size (14.7 against 26.9 KB).
        var buffer = new ArrayBufferWriter<byte>(64 * 1024);
        using (var json = new Utf8JsonWriter(buffer))
        using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
        {
            long offset = 0;
            for (int i = 0; i < models.Count; i++)
            {
                buffer.ResetWrittenCount();
                json.Reset(buffer);
                try
                {
                    Write(json, models[i].Header, models[i].Model);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    entries[i] = new PackEntry(0, 0, $"writing its model artifact failed: {e.GetType().Name}: {e.Message}");
                    continue;
                }
                int length = buffer.WrittenCount;
                buffer.Write("\n"u8);
                file.Write(buffer.WrittenSpan);
                entries[i] = new PackEntry(offset, length, null);
                offset += buffer.WrittenCount;
            }
            // On the disk before the transaction that refers to it commits.
            file.Flush(flushToDisk: true);
        }
        File.Move(temp, path, overwrite: true);
        return entries;
    }

    static void Write(Utf8JsonWriter json, ArtifactHeader header, FittedModel model)
    {
        // The header's properties as the serializer names them (web defaults), written directly.
        json.WriteStartObject();
        json.WriteStartObject("header"u8);
        json.WriteNumber("version"u8, header.Version);
        json.WriteString("resource"u8, header.Resource);
        json.WriteString("metric"u8, header.Metric);
        json.WriteNumber("runId"u8, header.RunId);
        json.WriteString("trainedAt"u8, header.TrainedAt);
        json.WriteNumber("horizon"u8, header.Horizon);
        json.WriteNumber("level"u8, header.Level);
        json.WriteEndObject();
        json.WritePropertyName("model"u8);
        model.WriteJson(json);
        json.WriteEndObject();
        json.Flush();
    }

    /// <summary>Reads the artifact at <paramref name="place"/> under <paramref name="modelsDir"/>: a whole file, or its bytes in a pack.</summary>
    public static (ArtifactHeader Header, FittedModel Model) Read(string modelsDir, ArtifactPlace place)
    {
        using var doc = JsonDocument.Parse(ReadBytes(modelsDir, place));
        var header = doc.RootElement.GetProperty("header").Deserialize<ArtifactHeader>(Json) ?? throw new JsonException($"{place.Path}: no header");
        return (header, FittedModel.FromJson(doc.RootElement.GetProperty("model").GetRawText()));
    }

    /// <summary>The artifact's JSON as stored (UTF-8).</summary>
    /// <exception cref="ArtifactDamagedException">the pack ends before the artifact's bytes.</exception>
    public static byte[] ReadBytes(string modelsDir, ArtifactPlace place)
    {
        var path = Path.Combine(modelsDir, place.Path);
        if (place is not { Offset: long offset, Length: int length })
        {
            return File.ReadAllBytes(path);
        }
        using var file = File.OpenHandle(path);
        // The length first: a truncated pack (a disk that filled, a copy cut short) is named as such, with its size.
        var size = RandomAccess.GetLength(file);
        if (offset < 0 || length < 0 || offset + length > size)
        {
            throw new ArtifactDamagedException(place.Path,
                $"is {size} bytes long and ends before the artifact's bytes {offset} to {offset + length} (it was cut short, or the version points past its end)");
        }
        var bytes = new byte[length];
        for (int read = 0, n; read < length; read += n)
        {
            n = RandomAccess.Read(file, bytes.AsSpan(read), offset + read);
            if (n == 0)
            {
                throw new ArtifactDamagedException(place.Path, $"ends before its artifact at {offset} (+{length} bytes)");
            }
        }
        return bytes;
    }

    /// <summary>
    /// The stored JSON of model version <paramref name="version"/>'s artifact, checked before it is served: it must be whole
    /// and be the artifact of that version (a JSON document whose header names it), so that a damaged pack is reported as
    /// such instead of being handed out as if it were a model.
    /// </summary>
    /// <exception cref="ArtifactDamagedException">the file is truncated, or its bytes at the place are not that version's artifact.</exception>
    public static byte[] ReadChecked(string modelsDir, ArtifactPlace place, long version)
    {
        var bytes = ReadBytes(modelsDir, place);
        var (where, are, hold) = place is { Offset: long offset, Length: int length }
            ? ($"bytes {offset} to {offset + length}", "are", "hold")
            : ("the file", "is", "holds");
        long named;
        try
        {
            using var doc = JsonDocument.Parse(bytes);
            named = doc.RootElement.GetProperty("header").GetProperty("version").GetInt64();
            _ = doc.RootElement.GetProperty("model");
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new ArtifactDamagedException(place.Path, $"{where} {are} not a model artifact ({e.GetType().Name}: {e.Message})");
        }
        if (named != version)
        {
            throw new ArtifactDamagedException(place.Path, $"{where} {hold} the artifact of version {named}, not of version {version}");
        }
        return bytes;
    }
}

/// <summary>A model artifact's file is there but its bytes are not the artifact its version row points at (truncated or corrupt).</summary>
public sealed class ArtifactDamagedException(string path, string problem) : IOException($"{path} {problem}")
{
    /// <summary>The file, relative to the models directory.</summary>
    public string ArtifactPath { get; } = path;

    /// <summary>What is wrong with it, as a sentence part following the file's name.</summary>
    public string Problem { get; } = problem;
}
