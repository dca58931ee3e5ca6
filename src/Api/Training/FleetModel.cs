using Dapper;
using Forecaster.Api.Samples;
using Forecaster.Training.Forecasting;
using Forecaster.Training.Global;
using Npgsql;
using static Forecaster.Planner.Hours;

namespace Forecaster.Api.Training;

/// <summary>
/// The run's fleet-wide LightGBM model (issue 15): trained once per run and instance, on the load series of up to
/// <see cref="GlobalModelOptions.MaxSeries"/> resources of the whole fleet (every k-th by id, so every shard and every
/// instance trains the same model from the same rows), each cut at its first backtest origin so that no backtest fold
/// scores a model that saw its future. Its ML.NET zip is <c>global/run-{id}.zip</c> under the models directory, and that
/// path is the version each series' model names (<see cref="GlobalForecastModel.GlobalVersion"/>).
/// </summary>
public static class FleetModel
{
    /// <summary>The artifact's path relative to the models directory, which is also the model's version.</summary>
    public static string RelativePath(long runId) => Path.Combine("global", $"run-{runId}.zip");

    /// <summary>Reads the sample, trains and saves the model; null when the fleet gives too little to train on.</summary>
    public static async Task<GlobalModel?> TrainAsync(NpgsqlDataSource db, long runId, DateTimeOffset from, DateTimeOffset to, TrainingOptions o, CancellationToken ct)
    {
        var forecast = SeriesFitting.Options(o, loadMetric: true);
        const string sample = """
            SELECT s.id FROM resources r JOIN series s ON s.resource_id = r.id AND s.metric = r.load_metric
            ORDER BY s.id
            """;
        Dictionary<int, HourlyAggregates> history;
        await using (var conn = await db.OpenConnectionAsync(ct))
        {
            var ids = (await conn.QueryAsync<int>(new CommandDefinition(sample, cancellationToken: ct))).ToArray();
            int every = Math.Max(1, (int)Math.Ceiling(ids.Length / (double)forecast.GlobalModel.MaxSeries));
            history = await HourlyHistory.ReadAsync(conn, [.. ids.Where((_, i) => i % every == 0)], from, to, ct);
        }
        var fleet = history.OrderBy(h => h.Key)
            .Select(h => SeriesForecaster.ForGlobalModel(h.Value.Mean, from, Hour, forecast))
            .OfType<GlobalSeries>()
            .ToArray();
        var relative = RelativePath(runId);
        var model = GlobalModel.Train(fleet, o.HorizonHours, relative, forecast.GlobalModel);
        model?.Save(Path.Combine(o.ResolvedModelsPath, relative));
        return model;
    }
}
