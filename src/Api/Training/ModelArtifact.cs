using System.Text.Json;
using Forecaster.Training.Forecasting;

namespace Forecaster.Api.Training;

/// <summary>Who an artifact belongs to and how its stored forecast was made (horizon and level reproduce it).</summary>
public sealed record ArtifactHeader(long Version, string Resource, string Metric, long RunId, DateTimeOffset TrainedAt, int Horizon, double Level);

/// <summary>
/// One model version's file under models/: <c>{resource}/{metric}-v{version}.json</c>, the header above plus the fitted model's
/// own JSON (<see cref="FittedModel.ToJson"/>: the model state, interval calibration, backtest, training window and notes).
/// <c>FittedModel.FromJson(model).Forecast(horizon, level)</c> gives back the stored forecast exactly.
/// </summary>
public static class ModelArtifact
{
    static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>The artifact's path relative to the models directory.</summary>
    public static string RelativePath(string resource, string metric, long version) =>
        Path.Combine(resource, $"{metric}-v{version}.json");

    /// <summary>Writes the artifact (to a temporary name first, so a reader never sees half a file).</summary>
    public static void Write(string modelsDir, string relativePath, ArtifactHeader header, FittedModel model)
    {
        var path = Path.Combine(modelsDir, relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var temp = path + ".tmp";
        // Serialised straight into the file as UTF-8 (the same bytes as building the text first, without a string of it).
        using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            file.Write("{\"header\":"u8);
            JsonSerializer.Serialize(file, header, Json);
            file.Write(",\"model\":"u8);
            model.WriteJson(file);
            file.Write("}"u8);
        }
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>Reads an artifact back.</summary>
    public static (ArtifactHeader Header, FittedModel Model) Read(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var header = doc.RootElement.GetProperty("header").Deserialize<ArtifactHeader>(Json) ?? throw new JsonException($"{path}: no header");
        return (header, FittedModel.FromJson(doc.RootElement.GetProperty("model").GetRawText()));
    }
}
