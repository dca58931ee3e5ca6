using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using Dapper;
using Forecaster.Api.Jobs;
using Forecaster.Api.Training;
using Hangfire;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Forecaster.Api.Samples;

/// <summary>The `Forecaster:Retention` configuration section: how long raw samples are kept (issue 16).</summary>
public sealed partial class RetentionOptions : IValidatableObject
{
    public const string Section = "Forecaster:Retention";

    /// <summary>
    /// Days of raw samples kept; 0 keeps everything. Never less than the training window in effect: a value below
    /// `Forecaster:Training:HistoryDays` keeps that many days instead. Whole monthly partitions go, so up to a month more is kept.
    /// </summary>
    [Range(0, 36500)]
    public int RawDays { get; set; } = 40;

    /// <summary>
    /// Days of hourly rollups (`sample_hours`, what training reads) kept; 0 keeps everything. Never less than the training
    /// window or than <see cref="RawDays"/>: the larger of the three is kept. Whole monthly partitions go.
    /// </summary>
    [Range(0, 36500)]
    public int HourlyDays { get; set; } = 400;

    /// <summary>Cron of the retention job, in UTC.</summary>
    [Required]
    public string Cron { get; set; } = "30 3 * * *";

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (CronError(Cron) is { } error)
        {
            yield return new ValidationResult(error, [nameof(Cron)]);
        }
    }

    /// <summary>
    /// Why <paramref name="cron"/> is not a cron expression, or null. Hangfire parses the expression when it registers the
    /// schedule; this catches the shape at start, with the field named (also for `Forecaster:ModelRetention:Cron`).
    /// </summary>
    public static string? CronError(string? cron)
    {
        var fields = (cron ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return fields.Length is not (5 or 6) || fields.Any(f => !CronField().IsMatch(f))
            ? $"'{cron}' is not a cron expression (minute hour day month weekday, e.g. '30 3 * * *')."
            : null;
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^[0-9A-Za-z*?/,#\-]+$")]
    private static partial System.Text.RegularExpressions.Regex CronField();
}

/// <summary>What one retention pass did: the cutoff it used and each partition it emptied or dropped.</summary>
public sealed record RetentionOutcome(DateTimeOffset? Cutoff, IReadOnlyList<(string Partition, DateTime UpperBound, string Action)> Partitions);

/// <summary>
/// Retention of raw samples by whole partitions, as a Hangfire recurring job: every partition of `samples` wholly older than
/// <see cref="RetentionOptions.RawDays"/> (and than the training window of any run still queued or running) is emptied, or
/// dropped when it is also older than any sample ingestion accepts. Nothing inside a training window is ever touched, and no
/// row is deleted one by one.
/// </summary>
public sealed class SampleRetention(
    NpgsqlDataSource db, IOptions<RetentionOptions> retention, IOptions<TrainingOptions> training, IOptions<ForecasterOptions> forecaster,
    TimeProvider clock, ILogger<SampleRetention> logger)
{
    public const string RecurringId = "sample-retention";

    /// <summary>Registers the recurring job, in UTC; a pass missed while every instance was down runs once on start.</summary>
    public static void Schedule(IRecurringJobManager manager, string cron) =>
        manager.AddOrUpdate<SampleRetention>(RecurringId, JobQueues.Default, j => j.RunAsync(CancellationToken.None), cron,
            new RecurringJobOptions { TimeZone = TimeZoneInfo.Utc, MisfireHandling = MisfireHandlingMode.Relaxed });

    [DisplayName("Sample retention")]
    [AutomaticRetry(Attempts = 3)]
    public async Task<RetentionOutcome> RunAsync(CancellationToken ct)
    {
        var outcome = await ApplyAsync(db, retention.Value.RawDays, training.Value.HistoryDays, forecaster.Value.MaxSampleAgeDays, clock.GetUtcNow(), ct, retention.Value.HourlyDays);
        foreach (var (partition, upper, action) in outcome.Partitions)
        {
            logger.LogInformation("Retention: {Action} {Partition} (samples before {Upper:u}; cutoff {Cutoff:u})", action, partition, upper, outcome.Cutoff);
        }
        return outcome;
    }

    /// <summary>
    /// The start of the raw samples retention keeps at <paramref name="now"/> at least (null: all of them): days before it may
    /// have lost samples to retention, so their hourly rollups keep what the samples no longer show (HourlyRollups.RefreshAsync).
    /// </summary>
    public static DateTimeOffset? RawKeptFrom(int rawDays, int historyDays, DateTimeOffset now) =>
        rawDays <= 0 ? null : now - TimeSpan.FromDays(Math.Max(rawDays, historyDays));

    /// <summary>
    /// One pass at <paramref name="now"/>: the cutoff is <paramref name="rawDays"/> (at least <paramref name="historyDays"/>) days
    /// back, moved earlier to the window start of the oldest run still queued or running; partitions wholly before it go.
    /// First every stale hourly rollup is refreshed, so that the rollups hold those samples before they go. Then the
    /// rollups' own partitions wholly older than <paramref name="hourlyDays"/> (at least the raw and training days) go.
    /// </summary>
    public static async Task<RetentionOutcome> ApplyAsync(NpgsqlDataSource db, int rawDays, int historyDays, int maxSampleAgeDays, DateTimeOffset now, CancellationToken ct, int hourlyDays = 0)
    {
        if (rawDays <= 0 && hourlyDays <= 0)
        {
            return new RetentionOutcome(null, []);
        }
        await HourlyRollups.RefreshAsync(db, RawKeptFrom(rawDays, historyDays, now), ct);
        IReadOnlyList<(string Partition, DateTime UpperBound, string Action)> hourly = [];
        if (hourlyDays > 0)
        {
            var hourlyCutoff = now - TimeSpan.FromDays(Math.Max(hourlyDays, Math.Max(rawDays, historyDays)));
            hourly = await DropPartitionsAsync(db,
                "SELECT partition, upper_bound AS UpperBound, action FROM drop_sample_hour_partitions_before(@hourlyCutoff)", new { hourlyCutoff }, ct);
        }
        if (rawDays <= 0)
        {
            return new RetentionOutcome(null, hourly);
        }
        var days = TimeSpan.FromDays(Math.Max(rawDays, historyDays));
        // A run's window ends at its creation hour and reaches HistoryDays back (SeriesFitting.Window); a day more covers any rounding.
        const string oldestActive = "SELECT min(created_at) FROM training_runs WHERE status IN ('queued', 'running')";
        DateTime? active;
        await using (var conn = await db.OpenConnectionAsync(ct))
        {
            active = await conn.ExecuteScalarAsync<DateTime?>(new CommandDefinition(oldestActive, cancellationToken: ct));
        }
        var cutoff = now - days;
        if (active is DateTime created && new DateTimeOffset(DateTime.SpecifyKind(created, DateTimeKind.Utc)) - TimeSpan.FromDays(historyDays + 1) is var window && window < cutoff)
        {
            cutoff = window;
        }
        var keepFrom = now - TimeSpan.FromDays(maxSampleAgeDays);

        var rows = await DropPartitionsAsync(db,
            "SELECT partition, upper_bound AS UpperBound, action FROM drop_sample_partitions_before(@cutoff, @keepFrom)", new { cutoff, keepFrom }, ct);
        return new RetentionOutcome(cutoff, [.. rows, .. hourly]);
    }

    /// <summary>
    /// Runs one of the partition-dropping functions (<paramref name="sql"/>) in its own transaction. Dropping or truncating a
    /// partition waits for an exclusive lock; queued behind a long read it would stall every reader and writer after it, so
    /// it gives up after a few seconds and tries again shortly, up to five times (Hangfire retries the job too).
    /// </summary>
    static async Task<IReadOnlyList<(string Partition, DateTime UpperBound, string Action)>> DropPartitionsAsync(NpgsqlDataSource db, string sql, object parameters, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                await using var tx = await conn.BeginTransactionAsync(ct);
                await conn.ExecuteAsync(new CommandDefinition("SET LOCAL lock_timeout = '5s'", transaction: tx, cancellationToken: ct));
                var rows = (await conn.QueryAsync<(string Partition, DateTime UpperBound, string Action)>(new CommandDefinition(sql, parameters, tx, cancellationToken: ct))).ToList();
                await tx.CommitAsync(ct);
                return rows;
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.LockNotAvailable && attempt < 5)
            {
                await Task.Delay(TimeSpan.FromSeconds(2 * attempt), ct);
            }
        }
    }
}

public static class RetentionSetup
{
    /// <summary>
    /// Retention options of samples and of model versions (validated at start), their jobs and each instance's sweep of its
    /// models directory; the recurring schedules are registered with the other jobs.
    /// </summary>
    public static WebApplicationBuilder AddForecasterRetention(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<RetentionOptions>()
            .BindConfiguration(RetentionOptions.Section)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        builder.Services.AddTransient<SampleRetention>();
        builder.Services.AddTransient<HourlyRollupRefresh>();
        builder.Services.AddOptions<Training.ModelRetentionOptions>()
            .BindConfiguration(Training.ModelRetentionOptions.Section)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        builder.Services.AddTransient<Training.ModelRetention>();
        builder.Services.AddHostedService<Training.ModelSweeper>();
        return builder;
    }
}
