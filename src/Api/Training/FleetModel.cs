using Dapper;
using Forecaster.Api.Jobs;
using Forecaster.Api.Samples;
using Forecaster.Training.Forecasting;
using Forecaster.Training.Global;
using Npgsql;
using static Forecaster.Planner.Hours;

namespace Forecaster.Api.Training;

/// <summary>A run's fleet-wide model and whether this call trained it (false: another instance or call did, and it was loaded).</summary>
public sealed record FleetModelResult(GlobalModel? Model, bool Trained);

/// <summary>
/// The run's fleet-wide LightGBM model (issue 15): trained once per run, on the load series of up to
/// <see cref="GlobalModelOptions.MaxSeries"/> resources of the whole fleet (every k-th by id), each cut at its first backtest
/// origin so that no backtest fold scores a model that saw its future. Its ML.NET zip is <c>global/run-{id}.zip</c> under the
/// models directory, and that path is the version each series' model names (<see cref="GlobalForecastModel.GlobalVersion"/>).
/// </summary>
/// <remarks>
/// Every instance that runs shards of a run needs the model, but only one trains it (issue 16): the first to take the run's
/// lease (<see cref="WorkLease"/>, an advisory lock) trains it and stores its zip in <c>fleet_models</c> before letting go;
/// the others wait on the lease and then load the stored zip (instances need not share a models volume). Should the trainer
/// die, its connection and so its lease die with it, and the next instance waiting finds no model stored and trains it.
/// </remarks>
public static class FleetModel
{
    /// <summary>The artifact's path relative to the models directory, which is also the model's version.</summary>
    public static string RelativePath(long runId) => Path.Combine("global", $"run-{runId}.zip");

    /// <summary>The name of the lease its trainer holds while it trains the run's model.</summary>
    public static string LeaseName(long runId) => $"fleet-model:{runId}";

    /// <summary>A stored model (<c>fleet_models</c>); no artifact when the fleet gave too little to train on.</summary>
    sealed class StoredModel
    {
        public string Version { get; init; } = "";
        public byte[]? Artifact { get; init; }
        public double[]? ResidualRms { get; init; }
        public int Rows { get; init; }
        public int Series { get; init; }
    }

    /// <summary>
    /// The run's model: loaded when an instance already stored it, else trained (reading the fleet's sample), saved under the
    /// models directory and stored for the other instances. Null when the fleet gives too little to train on.
    /// <paramref name="trainsHere"/> hears, as soon as it is known, whether this call trains the model (true) or another
    /// instance does or did (false: the lease is held, or the model is stored).
    /// </summary>
    public static async Task<FleetModelResult> GetAsync(
        NpgsqlDataSource db, long runId, DateTimeOffset from, DateTimeOffset to, TrainingOptions o, TimeProvider clock, CancellationToken ct,
        Action<bool>? trainsHere = null)
    {
        var (lease, _) = await WorkLease.AcquireAsync(db, LeaseName(runId), ct, () => trainsHere?.Invoke(false));
        await using var held = lease;
        var forecast = SeriesFitting.Options(o, loadMetric: true);
        var relative = RelativePath(runId);
        var path = Path.Combine(o.ResolvedModelsPath, relative);

        const string stored = """
            SELECT version, artifact, residual_rms AS ResidualRms, training_rows AS Rows, training_series AS Series FROM fleet_models WHERE run_id = @runId
            """;
        StoredModel? found;
        await using (var conn = await db.OpenConnectionAsync(ct))
        {
            found = await conn.QuerySingleOrDefaultAsync<StoredModel>(new CommandDefinition(stored, new { runId }, cancellationToken: ct));
        }
        if (found is not null)
        {
            trainsHere?.Invoke(false);
            if (found.Artifact is null || found.ResidualRms is null)
            {
                return new FleetModelResult(null, false);
            }
            // The series' models name the zip by its path under the models directory: this instance's directory gets a copy.
            if (!File.Exists(path))
            {
                GlobalModel.SaveZip(found.Artifact, path);
            }
            return new FleetModelResult(
                GlobalModel.Load(found.Artifact, found.Version, found.ResidualRms, found.Rows, found.Series, forecast.GlobalModel), false);
        }

        trainsHere?.Invoke(true);
        var model = await TrainAsync(db, from, to, relative, o, ct);
        var zip = model?.ToZip();
        if (zip is not null)
        {
            GlobalModel.SaveZip(zip, path);
        }
        // Stored before the lease is let go, so whoever waits on it finds the model. Only one run is active at a time and its
        // shards are the only readers, so older runs' rows are dropped here (their zips stay under the models directory).
        const string store = """
            DELETE FROM fleet_models WHERE run_id < @runId;
            INSERT INTO fleet_models (run_id, version, artifact, residual_rms, training_rows, training_series, trained_at)
            VALUES (@runId, @version, @artifact, @residualRms, @rows, @series, @now);
            """;
        await using (var conn = await db.OpenConnectionAsync(ct))
        {
            await conn.ExecuteAsync(new CommandDefinition(store, new
            {
                runId,
                version = relative,
                artifact = zip,
                residualRms = model?.ResidualRms,
                rows = model?.Rows ?? 0,
                series = model?.Series ?? 0,
                now = clock.GetUtcNow(),
            }, cancellationToken: ct));
        }
        return new FleetModelResult(model, true);
    }

    /// <summary>Reads the fleet's sample and trains the model; null when the fleet gives too little to train on.</summary>
    static async Task<GlobalModel?> TrainAsync(NpgsqlDataSource db, DateTimeOffset from, DateTimeOffset to, string version, TrainingOptions o, CancellationToken ct)
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
        return GlobalModel.Train(fleet, o.HorizonHours, version, forecast.GlobalModel);
    }
}
