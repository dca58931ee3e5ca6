namespace Forecaster.Api.Training;

/// <summary>The optional body of POST /api/v1/training-runs: the resources to train (all when absent).</summary>
public sealed record TrainingRunRequest(string[]? Resources);

/// <summary>Series done of the run's total, and how many of them failed (those keep their previous model).</summary>
public sealed record TrainingProgress(int Done, int Total, int Failed, double Percent);

/// <summary>A series the run could not fit, with the reason.</summary>
public sealed record SeriesFailure(string Resource, string Metric, string Error);

/// <summary>A training run: status, progress, timing, failures and what planning did afterwards.</summary>
public sealed record TrainingRunView(
    long Id, string Trigger, string Status, string[]? Resources, TrainingProgress Progress,
    DateTimeOffset CreatedAt, DateTimeOffset? StartedAt, DateTimeOffset? FinishedAt, double? Seconds,
    string? Error, string? Planning, IReadOnlyList<TrainingShardRow>? Shards, IReadOnlyList<SeriesFailure>? Failures)
{
    public static TrainingRunView From(TrainingRunRow r, IReadOnlyList<TrainingShardRow>? shards = null, IReadOnlyList<SeriesFailure>? failures = null) => new(
        r.Id, r.Trigger, r.Status, r.Resources,
        new TrainingProgress(r.SeriesDone, r.SeriesTotal, r.SeriesFailed, r.SeriesTotal == 0 ? (r.Status == "succeeded" ? 100 : 0) : Math.Round(100.0 * r.SeriesDone / r.SeriesTotal, 1)),
        Utc(r.CreatedAt), r.StartedAt is { } s ? Utc(s) : null, r.FinishedAt is { } f ? Utc(f) : null,
        r.StartedAt is { } a && r.FinishedAt is { } b ? (b - a).TotalSeconds : null,
        r.Error, r.Planning, shards, failures);

    static DateTimeOffset Utc(DateTime t) => new(DateTime.SpecifyKind(t, DateTimeKind.Utc));
}

/// <summary>A page of runs, newest first.</summary>
public sealed record TrainingRunPage(IReadOnlyList<TrainingRunView> Items);

/// <summary>
/// One model version of a series with its backtest figures (MASE against seasonal naive's, sMAPE, interval coverage). Its
/// artifact (GET .../models/{version}/artifact) is the file <paramref name="Artifact"/> under the models directory: a pack's
/// bytes from <paramref name="ArtifactOffset"/>, <paramref name="ArtifactLength"/> long, or the whole file for versions
/// trained before packs (both null).
/// </summary>
public sealed record ModelVersionView(
    long Version, string Metric, string Status, string? Algorithm, long? RunId, DateTime TrainedAt,
    DateTime? TrainFrom, DateTime? TrainTo, int? TrainPoints, int? BacktestOrigins,
    double? Mase, double? Smape, double? Coverage, double? SeasonalNaiveMase, bool? BeatsSeasonalNaive,
    string? Artifact, long? ArtifactOffset, int? ArtifactLength, string? Error);

/// <summary>The model versions of a resource, newest first.</summary>
public sealed record ModelVersionPage(string Resource, IReadOnlyList<ModelVersionView> Items);

/// <summary>The active model of a resource's load metric, for the fleet view.</summary>
public sealed record ActiveModelView(
    string Resource, string Metric, long Version, string? Algorithm, DateTime TrainedAt, long? RunId,
    double? Mase, double? SeasonalNaiveMase, bool? BeatsSeasonalNaive);

/// <summary>Active load models, by resource name.</summary>
public sealed record ActiveModelPage(IReadOnlyList<ActiveModelView> Items);

/// <summary>One forecast hour with its bounds.</summary>
public sealed record ForecastPoint(DateTimeOffset Timestamp, double Forecast, double Lower, double Upper);

/// <summary>The stored forecast of a series: the active model version that made it, when, at what interval level.</summary>
public sealed record StoredForecast(
    string Resource, string Metric, long ModelVersion, string? Algorithm, DateTimeOffset GeneratedAt, double? Level,
    bool? BeatsSeasonalNaive, IReadOnlyList<ForecastPoint> Points);
