using System.ComponentModel.DataAnnotations;

namespace Forecaster.Api.Training;

/// <summary>The `Forecaster:Training` configuration section. Validated at start: a bad value stops the service with every error listed.</summary>
public sealed partial class TrainingOptions : IValidatableObject
{
    public const string Section = "Forecaster:Training";

    /// <summary>Days of history each series is fitted on.</summary>
    [Range(3, 400)]
    public int HistoryDays { get; set; } = 35;

    /// <summary>Hours forecast ahead (with bounds) and stored.</summary>
    [Range(1, 24 * 14)]
    public int HorizonHours { get; set; } = 48;

    /// <summary>Level of the stored forecast bounds.</summary>
    [Range(0.5, 0.999)]
    public double Level { get; set; } = 0.95;

    /// <summary>Cron of the nightly retraining, in UTC: five fields (minute hour day month weekday), or six with seconds first.</summary>
    [Required]
    public string NightlyCron { get; set; } = "0 2 * * *";

    /// <summary>Whether this instance runs Hangfire's workers (nightly run, shards, planning, simulations, pulls); it enqueues work either way.</summary>
    public bool Scheduler { get; set; } = true;

    /// <summary>
    /// Shards a scheduled run is split into; each is a Hangfire job any instance's workers may take, so the instances share
    /// a run by taking the next shard when one is done. Sixteen: the last (the smallest: shards shrink towards the run's
    /// end, <see cref="TrainingRuns.Layout"/>) leaves little idle tail on two instances, and there are few enough that each
    /// shard's own start and end (its first read, its last write) stay small (issue 16).
    /// </summary>
    [Range(1, 1024)]
    public int Shards { get; set; } = 16;

    /// <summary>
    /// Shards one instance runs at once: the `training` queue's workers (each shard already uses every core). One: with two
    /// in flight on an instance, the run's last two shards share its cores while the other instance has nothing left, which
    /// measured a 42 s idle tail of a 280 s run (issue 16, bench/README).
    /// </summary>
    [Range(1, 64)]
    public int ShardsPerInstance { get; set; } = 1;

    /// <summary>Resources read, fitted and written together: bounds memory whatever the fleet's size.</summary>
    [Range(1, 100_000)]
    public int BatchResources { get; set; } = 200;

    /// <summary>Series fitted at once; 0 uses every core.</summary>
    [Range(0, 1024)]
    public int Parallelism { get; set; }

    /// <summary>Backtest origins for the load metric's model selection.</summary>
    [Range(1, 30)]
    public int LoadBacktestOrigins { get; set; } = 6;

    /// <summary>Backtest origins for cpu and memory: fewer, because they follow load and only size requests.</summary>
    [Range(1, 30)]
    public int UsageBacktestOrigins { get; set; } = 3;

    /// <summary>Train the fleet-wide LightGBM model once per run and let it compete in each load series' selection (issue 15).</summary>
    public bool GlobalModel { get; set; } = true;

    /// <summary>
    /// Fit the service's shards in a child process started without tiered compilation (<see cref="ShardProcesses"/>), so that
    /// every instance does not pay the JIT's warm-up in its first shards while serving keeps tiering (issue 16). A service
    /// on a clock other than the system's (a test's) fits in-process whatever this says: a child could not share that clock.
    /// </summary>
    public bool ShardProcess { get; set; } = true;

    /// <summary>
    /// A shard with fewer series left than this is fitted in the service all the same, unless a child is idle (an earlier
    /// shard started it, so its JIT is paid; the last shards of a run are the smallest): a child's start and its JIT of every
    /// method at full optimisation (the fleet-wide model's ML.NET included) cost several CPU seconds, more than tiering's
    /// warm-up on a few dozen series (the demo fleet's shards, a restarted shard's last batches). Not measured at its
    /// crossing point: at 375 series per shard the child was ahead (bench/README.md, session 6).
    /// </summary>
    [Range(0, 10_000_000)]
    public int ShardProcessMinSeries { get; set; } = 200;

    /// <summary>Where model artifacts go; relative paths are under FORECASTER_HOME (default ~/.forecaster).</summary>
    [Required]
    public string ModelsPath { get; set; } = "models";

    /// <summary>A running run whose shards have shown no progress for this long was abandoned by a dead process.</summary>
    [Range(1, 24 * 60)]
    public int StaleRunMinutes { get; set; } = 15;

    /// <summary>How often an idle worker looks for work in the shared store (Hangfire's queue and schedule polling), in seconds.</summary>
    [Range(1, 300)]
    public int SchedulerIdleSeconds { get; set; } = 5;

    /// <summary>The absolute directory of model artifacts.</summary>
    public string ResolvedModelsPath => Path.IsPathRooted(ModelsPath)
        ? ModelsPath
        : Path.Combine(Database.EmbeddedPostgres.DefaultHome(), ModelsPath);

    public int EffectiveParallelism => Parallelism > 0 ? Parallelism : Environment.ProcessorCount;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        // Hangfire parses the expression when it registers the schedule at start; this catches the shape early, with the field named.
        var fields = (NightlyCron ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length is not (5 or 6) || fields.Any(f => !CronField().IsMatch(f)))
        {
            yield return new ValidationResult($"'{NightlyCron}' is not a cron expression (minute hour day month weekday, e.g. '0 2 * * *'; six fields with seconds first).", [nameof(NightlyCron)]);
        }
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^[0-9A-Za-z*?/,#\-]+$")]
    private static partial System.Text.RegularExpressions.Regex CronField();
}
