using Prometheus;

namespace Forecaster.Api.Observability;

/// <summary>
/// The domain metrics on GET /metrics, all named forecaster_*. prometheus-net (stable) exports them; HTTP rate and latency
/// per route come from its middleware (http_request_duration_seconds with the endpoint's route template).
/// </summary>
public static class ForecasterMetrics
{
    public static readonly Counter PlanAnswers = Metrics.CreateCounter("forecaster_plan_answers_total",
        "Plan answers served to executors, by where the answer came from (forecast or a fallback) and whether it was stale.", "source", "stale");

    public static readonly Gauge PlanCacheResources = Metrics.CreateGauge("forecaster_plan_cache_resources",
        "Resources held in the serving cache.");

    public static readonly Counter TrainingRuns = Metrics.CreateCounter("forecaster_training_runs_total",
        "Training runs finished, by status.", "status");

    public static readonly Histogram TrainingRunSeconds = Metrics.CreateHistogram("forecaster_training_run_duration_seconds",
        "Wall time of finished training runs.", new HistogramConfiguration
        {
            LabelNames = ["status"],
            Buckets = Histogram.ExponentialBuckets(1, 2, 14),
        });

    public static readonly Counter SeriesTrained = Metrics.CreateCounter("forecaster_series_trained_total",
        "Series whose new model became active.");

    public static readonly Counter SeriesFailed = Metrics.CreateCounter("forecaster_series_failed_total",
        "Series that failed to train (they keep their previous model).");

    public static readonly Histogram BacktestMaseRatio = Metrics.CreateHistogram("forecaster_backtest_mase_ratio",
        "Backtest MASE of the chosen model divided by seasonal naive's (below 1: better than the baseline).", new HistogramConfiguration
        {
            Buckets = [0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2, 4],
        });

    public static readonly Counter SourcePulls = Metrics.CreateCounter("forecaster_source_pulls_total",
        "Pulls of Prometheus sources, by outcome (backfilled, pulled, failed).", "outcome");

    public static readonly Histogram SourcePullSeconds = Metrics.CreateHistogram("forecaster_source_pull_duration_seconds",
        "Time to read and store one source (backfill or incremental pull).", new HistogramConfiguration
        {
            LabelNames = ["kind"],
            Buckets = Histogram.ExponentialBuckets(0.01, 2, 14),
        });

    public static readonly Gauge SourcePullLag = Metrics.CreateGauge("forecaster_source_pull_lag_seconds",
        "Now minus the oldest watermark among pulled sources: how far behind the most lagging source is.");

    public static readonly Counter SamplesIngested = Metrics.CreateCounter("forecaster_samples_ingested_total",
        "Samples stored, by path (json, csv, prometheus).", "path");

    public static readonly Gauge DatabaseUnreachableSeconds = Metrics.CreateGauge("forecaster_database_unreachable_seconds",
        "Seconds since the serving cache lost the database (0 while it is reachable).");

    /// <summary>One training batch: series activated and failed, and each chosen model's backtest MASE against seasonal naive's.</summary>
    public static void RecordTrained(int trained, int failed, IEnumerable<(double? Chosen, double? SeasonalNaive)> mase)
    {
        SeriesTrained.Inc(trained);
        SeriesFailed.Inc(failed);
        foreach (var (chosen, naive) in mase)
        {
            if (chosen is { } c && naive is { } n && n > 0 && double.IsFinite(c / n))
            {
                BacktestMaseRatio.Observe(c / n);
            }
        }
    }
}
