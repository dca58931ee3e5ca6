using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using System.Diagnostics;
using System.Text.RegularExpressions;
using Dapper;
using Forecaster.Api.Jobs;
using Forecaster.Api.Samples;
using Hangfire;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Forecaster.Api.Training;

/// <summary>The `Forecaster:ModelRetention` configuration section: which model versions and artifacts are kept.</summary>
public sealed class ModelRetentionOptions : IValidatableObject
{
    public const string Section = "Forecaster:ModelRetention";

    /// <summary>Whether the retention job and the file sweep run at all; false keeps every version and file.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// Superseded versions kept per series (resource and metric), the newest ones: the models a series can be compared with
    /// or rolled back to. At least one, so that the version a plan being written right now names is never the one removed.
    /// </summary>
    [Range(1, 1000)]
    public int KeepSuperseded { get; set; } = 3;

    /// <summary>Versions trained less than this many days ago are kept whatever their number (failed ones included).</summary>
    [Range(0, 36500)]
    public int KeepDays { get; set; } = 3;

    /// <summary>Versions deleted per statement (and transaction): bounds each transaction's length and the rows it locks.</summary>
    [Range(100, 100_000)]
    public int BatchVersions { get; set; } = 5000;

    /// <summary>
    /// How often every instance sweeps its own models directory for files no version refers to, in hours (0: only the instance
    /// that runs the retention job sweeps, after it). Instances that do not share a models directory each need their own sweep.
    /// </summary>
    [Range(0, 24 * 7)]
    public int SweepHours { get; set; } = 6;

    /// <summary>
    /// A file written less than this many minutes ago is never removed: training renames a pack into place just before the
    /// transaction that refers to it commits, and a shard can be slower than its run's status says.
    /// </summary>
    [Range(0, 7 * 24 * 60)]
    public int SweepGraceMinutes { get; set; } = 60;

    /// <summary>Cron of the retention job, in UTC.</summary>
    [Required]
    public string Cron { get; set; } = "45 3 * * *";

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (RetentionOptions.CronError(Cron) is { } error)
        {
            yield return new ValidationResult(error, [nameof(Cron)]);
        }
    }
}

/// <summary>What the file sweep of one models directory removed.</summary>
public sealed record ModelSweepOutcome(int Packs, int OneFileArtifacts, int FleetModels, int Temporary, long Bytes)
{
    public int Files => Packs + OneFileArtifacts + FleetModels + Temporary;
}

/// <summary>What one retention pass did: the age cutoff, the versions it deleted (of how many resources), and the files.</summary>
public sealed record ModelRetentionOutcome(DateTimeOffset Cutoff, long Removed, int Resources, ModelSweepOutcome Files);

/// <summary>
/// Retention of model versions and their artifacts, as a Hangfire recurring job (issue 16). A version is kept when it is
/// active, when anything still stored names it (a stored forecast, a plan version: served or superseded and not yet purged
/// by `Forecaster:Planning:RetentionDays`), when it is one of the newest <see cref="ModelRetentionOptions.KeepSuperseded"/>
/// superseded versions of its series, when it was trained less than <see cref="ModelRetentionOptions.KeepDays"/> days ago,
/// or when its run is still queued or running; every other version (superseded or failed) is deleted, in batches of
/// <see cref="ModelRetentionOptions.BatchVersions"/>, each its own short transaction that locks only the rows it deletes.
/// Then the models directory is swept (<see cref="SweepAsync"/>): a pack goes once no remaining version points into it.
/// </summary>
/// <remarks>
/// A pack holds the artifacts of a whole training batch (its resources' load, cpu and memory models), so it stays as long as
/// any one of them is kept; plan versions name the load metric's version, so packs live about as long as plans are kept.
/// </remarks>
public sealed partial class ModelRetention(
    NpgsqlDataSource db, IOptions<ModelRetentionOptions> retention, IOptions<TrainingOptions> training, TimeProvider clock, ILogger<ModelRetention> logger)
{
    public const string RecurringId = "model-retention";

    /// <summary>Resources whose versions are ranked by one query: bounds its memory and the plan versions it reads.</summary>
    const int ResourcesPerRead = 1000;

    /// <summary>Registers the recurring job, in UTC (or removes it when retention is off); a missed pass runs once on start.</summary>
    public static void Schedule(IRecurringJobManager manager, ModelRetentionOptions o)
    {
        if (!o.Enabled)
        {
            manager.RemoveIfExists(RecurringId);
            return;
        }
        manager.AddOrUpdate<ModelRetention>(RecurringId, JobQueues.Default, j => j.RunAsync(CancellationToken.None), o.Cron,
            new RecurringJobOptions { TimeZone = TimeZoneInfo.Utc, MisfireHandling = MisfireHandlingMode.Relaxed });
    }

    [DisplayName("Model retention")]
    [AutomaticRetry(Attempts = 3)]
    public Task<ModelRetentionOutcome> RunAsync(CancellationToken ct) => PassAsync(retention.Value, clock.GetUtcNow(), ct);

    /// <summary>One pass at <paramref name="now"/> with <paramref name="o"/>: versions first, then this instance's models directory.</summary>
    public async Task<ModelRetentionOutcome> PassAsync(ModelRetentionOptions o, DateTimeOffset now, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        var cutoff = now - TimeSpan.FromDays(o.KeepDays);
        var (removed, resources) = await RemoveVersionsAsync(db, o, cutoff, now, ct);
        var files = await SweepAsync(db, training.Value.ResolvedModelsPath, TimeSpan.FromMinutes(o.SweepGraceMinutes), ct);
        var outcome = new ModelRetentionOutcome(cutoff, removed, resources, files);
        logger.LogInformation(
            "Model retention: removed {Removed} versions of {Resources} resources (kept: active, named by a forecast or plan, the last {Keep} superseded per series, trained after {Cutoff:u}); " +
            "removed {Packs} packs, {OneFile} one-file artifacts, {Fleet} fleet-wide models and {Temporary} temporary files ({Bytes} bytes) from {Directory} in {Seconds:F1} s",
            removed, resources, o.KeepSuperseded, cutoff, files.Packs, files.OneFileArtifacts, files.FleetModels, files.Temporary, files.Bytes,
            training.Value.ResolvedModelsPath, Stopwatch.GetElapsedTime(started).TotalSeconds);
        return outcome;
    }

    /// <summary>Deletes the versions nothing keeps (see the class); returns how many, and of how many resources.</summary>
    static async Task<(long Removed, int Resources)> RemoveVersionsAsync(NpgsqlDataSource db, ModelRetentionOptions o, DateTimeOffset cutoff, DateTimeOffset now, CancellationToken ct)
    {
        const string chunk = "SELECT max(id) FROM (SELECT id FROM resources WHERE id > @after ORDER BY id LIMIT @take) r";
        // A resource range at a time: its versions ranked newest first per series and status (the series index gives them in
        // that order), and what its forecasts and plan versions name read once for the range (plan versions by their
        // resource index; nothing indexes plan_versions by model version, and planning's writes should not pay for one).
        const string candidates = """
            WITH runs AS (
                SELECT coalesce(array_agg(id), '{}') AS active FROM training_runs WHERE status IN ('queued', 'running')
            ), named AS (
                SELECT model_version_id AS id FROM plan_versions
                WHERE resource_id > @after AND resource_id <= @upto AND model_version_id IS NOT NULL
                UNION
                SELECT model_version_id FROM series_forecasts WHERE resource_id > @after AND resource_id <= @upto
            ), ranked AS (
                SELECT mv.id, mv.status, mv.trained_at, mv.run_id,
                       row_number() OVER (PARTITION BY mv.resource_id, mv.metric, mv.status ORDER BY mv.id DESC) AS rank
                FROM model_versions mv
                WHERE mv.resource_id > @after AND mv.resource_id <= @upto AND mv.status <> 'active'
            )
            SELECT v.id FROM ranked v, runs
            WHERE v.trained_at < @cutoff
              AND (v.status = 'failed' OR v.rank > @keep)
              AND (v.run_id IS NULL OR v.run_id <> ALL (runs.active))
              AND NOT EXISTS (SELECT 1 FROM named n WHERE n.id = v.id)
            ORDER BY v.id
            """;
        // Checked again as it deletes: a version is only ever named by a forecast while it is active (training writes both in
        // one transaction), and plans name the forecast's version, so a version already past the newest superseded ones
        // cannot gain a reference meanwhile. What was removed is remembered per resource for the artifact endpoint's 410.
        const string delete = """
            WITH gone AS (
                DELETE FROM model_versions mv
                WHERE mv.id = ANY (@ids) AND mv.status <> 'active'
                  AND NOT EXISTS (SELECT 1 FROM series_forecasts f WHERE f.resource_id = mv.resource_id AND f.metric = mv.metric AND f.model_version_id = mv.id)
                RETURNING mv.resource_id, mv.id
            ), marked AS (
                INSERT INTO model_versions_removed AS m (resource_id, from_version, through_version, versions, removed_at)
                SELECT resource_id, min(id), max(id), count(*), @now FROM gone GROUP BY resource_id
                ON CONFLICT (resource_id) DO UPDATE SET
                    from_version = least(m.from_version, EXCLUDED.from_version),
                    through_version = greatest(m.through_version, EXCLUDED.through_version),
                    versions = m.versions + EXCLUDED.versions,
                    removed_at = EXCLUDED.removed_at
            )
            SELECT resource_id AS ResourceId, count(*) AS Removed FROM gone GROUP BY resource_id
            """;
        long removed = 0;
        var resources = new HashSet<int>();
        await using var conn = await db.OpenConnectionAsync(ct);
        for (int after = 0; ;)
        {
            if (await conn.ExecuteScalarAsync<int?>(new CommandDefinition(chunk, new { after, take = ResourcesPerRead }, cancellationToken: ct)) is not int upto)
            {
                break;
            }
            var ids = (await conn.QueryAsync<long>(new CommandDefinition(candidates,
                new { after, upto, cutoff, keep = (long)o.KeepSuperseded }, cancellationToken: ct))).ToArray();
            for (int i = 0; i < ids.Length; i += o.BatchVersions)
            {
                var batch = ids[i..Math.Min(ids.Length, i + o.BatchVersions)];
                foreach (var (resourceId, count) in await conn.QueryAsync<(int ResourceId, long Removed)>(new CommandDefinition(delete, new { ids = batch, now }, cancellationToken: ct)))
                {
                    resources.Add(resourceId);
                    removed += count;
                }
            }
            after = upto;
        }
        return (removed, resources.Count);
    }

    /// <summary>
    /// Removes the files of <paramref name="modelsDir"/> that no model version refers to: packs (<c>packs/run-{run}/*.jsonl</c>)
    /// that no remaining version of their run points into, one-file artifacts of releases before packs
    /// (<c>{resource}/{metric}-v{version}.json</c>) whose version is gone or points elsewhere, fleet-wide models
    /// (<c>global/run-{run}.zip</c>) of runs with no remaining version (and not the stored fleet model), and temporary packs
    /// left by a crash. Only this directory is looked at, so instances that do not share one each sweep their own.
    /// </summary>
    /// <remarks>
    /// Never touched: anything of a run still queued or running, or of a run the database does not know (its versions could
    /// have lost their run); anything written less than <paramref name="grace"/> ago (training renames a pack into place
    /// before the transaction that refers to it commits, and a shard can outlive its run's status); files of any other shape.
    /// File times are the file system's, so their age is taken on the system clock, not the service's.
    /// </remarks>
    public static async Task<ModelSweepOutcome> SweepAsync(NpgsqlDataSource db, string modelsDir, TimeSpan grace, CancellationToken ct)
    {
        int packs = 0, oneFile = 0, fleet = 0, temporary = 0;
        long bytes = 0;
        if (!Directory.Exists(modelsDir))
        {
            return new ModelSweepOutcome(0, 0, 0, 0, 0);
        }
        var old = TimeProvider.System.GetUtcNow().UtcDateTime - grace;
        bool Delete(string file)
        {
            try
            {
                var info = new FileInfo(file);
                if (!info.Exists || info.LastWriteTimeUtc > old)
                {
                    return false;
                }
                var length = info.Length;
                info.Delete();
                bytes += length;
                return true;
            }
            catch (IOException)
            {
                // Another instance sharing the directory got there first, or the file is in use: the next sweep sees it again.
                return false;
            }
        }

        var packRuns = Directory.Exists(Path.Combine(modelsDir, "packs"))
            ? Directory.GetDirectories(Path.Combine(modelsDir, "packs")).Select(d => (Dir: d, Run: RunOf(Path.GetFileName(d), "run-", ""))).Where(d => d.Run is not null).ToList()
            : [];
        var zips = Directory.Exists(Path.Combine(modelsDir, "global"))
            ? Directory.GetFiles(Path.Combine(modelsDir, "global")).Select(f => (File: f, Run: RunOf(Path.GetFileName(f), "run-", ".zip"))).Where(f => f.Run is not null).ToList()
            : [];
        await using var conn = await db.OpenConnectionAsync(ct);
        long[] named = [.. packRuns.Select(d => d.Run!.Value).Concat(zips.Select(z => z.Run!.Value)).Distinct()];
        var finished = (await conn.QueryAsync<long>(new CommandDefinition(
            "SELECT id FROM training_runs WHERE id = ANY (@named) AND status IN ('succeeded', 'failed')", new { named }, cancellationToken: ct))).ToHashSet();

        foreach (var (dir, run) in packRuns.Where(d => finished.Contains(d.Run!.Value)))
        {
            var files = Directory.GetFiles(dir);
            if (!files.Any(f => File.GetLastWriteTimeUtc(f) <= old))
            {
                continue;
            }
            // The run's versions by their run index: what its remaining versions point at.
            var referenced = (await conn.QueryAsync<string>(new CommandDefinition(
                "SELECT DISTINCT artifact FROM model_versions WHERE run_id = @run AND artifact IS NOT NULL", new { run }, cancellationToken: ct))).ToHashSet(StringComparer.Ordinal);
            foreach (var file in files)
            {
                if (file.EndsWith(".tmp", StringComparison.Ordinal))
                {
                    temporary += Delete(file) ? 1 : 0;
                }
                else if (file.EndsWith(".jsonl", StringComparison.Ordinal) && !referenced.Contains(Path.GetRelativePath(modelsDir, file)))
                {
                    packs += Delete(file) ? 1 : 0;
                }
            }
            if (Directory.GetFileSystemEntries(dir).Length == 0)
            {
                try
                {
                    Directory.Delete(dir);
                }
                catch (IOException)
                {
                    // A file arrived meanwhile (a shared directory): it stays, and so does its directory.
                }
            }
        }

        const string fleetNamed = """
            SELECT EXISTS (SELECT 1 FROM model_versions WHERE run_id = @run) OR EXISTS (SELECT 1 FROM fleet_models WHERE run_id = @run)
            """;
        foreach (var (file, run) in zips.Where(z => finished.Contains(z.Run!.Value)))
        {
            if (File.GetLastWriteTimeUtc(file) <= old && !await conn.ExecuteScalarAsync<bool>(new CommandDefinition(fleetNamed, new { run }, cancellationToken: ct)))
            {
                fleet += Delete(file) ? 1 : 0;
            }
        }

        // One-file artifacts of releases before packs: each names its version, so each is checked by primary key.
        var legacy = Directory.GetDirectories(modelsDir)
            .Where(d => Path.GetFileName(d) is not ("packs" or "global"))
            .SelectMany(Directory.GetFiles)
            .Select(f => (File: f, Version: OneFileVersion().Match(Path.GetFileName(f))))
            .Where(f => f.Version.Success && File.GetLastWriteTimeUtc(f.File) <= old)
            .Select(f => (f.File, Path: Path.GetRelativePath(modelsDir, f.File), Version: long.Parse(f.Version.Groups[1].ValueSpan, System.Globalization.CultureInfo.InvariantCulture)))
            .ToList();
        const string unreferenced = """
            SELECT c.path FROM unnest(@paths, @versions) AS c(path, version)
            WHERE NOT EXISTS (SELECT 1 FROM model_versions mv WHERE mv.id = c.version AND mv.artifact = c.path)
            """;
        foreach (var part in legacy.Chunk(1000))
        {
            var gone = (await conn.QueryAsync<string>(new CommandDefinition(unreferenced,
                new { paths = part.Select(p => p.Path).ToArray(), versions = part.Select(p => p.Version).ToArray() }, cancellationToken: ct))).ToHashSet(StringComparer.Ordinal);
            foreach (var (file, path, _) in part.Where(p => gone.Contains(p.Path)))
            {
                oneFile += Delete(file) ? 1 : 0;
            }
        }
        return new ModelSweepOutcome(packs, oneFile, fleet, temporary, bytes);
    }

    static long? RunOf(string name, string prefix, string suffix) =>
        name.StartsWith(prefix, StringComparison.Ordinal) && name.EndsWith(suffix, StringComparison.Ordinal)
        && long.TryParse(name.AsSpan(prefix.Length, name.Length - prefix.Length - suffix.Length), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var run)
            ? run : null;

    [GeneratedRegex(@"^.+-v([0-9]{1,18})\.json$")]
    private static partial Regex OneFileVersion();
}

/// <summary>
/// Sweeps this instance's models directory every <see cref="ModelRetentionOptions.SweepHours"/> (the retention job runs on one
/// instance only, and instances need not share the directory). The first sweep comes one period after start.
/// </summary>
sealed class ModelSweeper(NpgsqlDataSource db, IOptions<ModelRetentionOptions> retention, IOptions<TrainingOptions> training, TimeProvider clock, ILogger<ModelSweeper> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = retention.Value;
        if (!o.Enabled || o.SweepHours == 0)
        {
            return;
        }
        var dir = training.Value.ResolvedModelsPath;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(TimeSpan.FromHours(o.SweepHours), clock, stoppingToken);
                var swept = await ModelRetention.SweepAsync(db, dir, TimeSpan.FromMinutes(o.SweepGraceMinutes), stoppingToken);
                logger.LogInformation("Model files: removed {Packs} packs, {OneFile} one-file artifacts, {Fleet} fleet-wide models and {Temporary} temporary files ({Bytes} bytes) from {Directory}",
                    swept.Packs, swept.OneFileArtifacts, swept.FleetModels, swept.Temporary, swept.Bytes, dir);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // The database away, a directory that cannot be read: the next period tries again.
                logger.LogWarning(e, "Sweeping the models directory {Directory} failed; trying again in {Hours} h", dir, o.SweepHours);
            }
        }
    }
}

/// <summary>
/// <c>forecaster prune-models</c>: one model retention pass now, with the configured <c>Forecaster:ModelRetention</c> rules
/// (as the recurring job runs it): the versions nothing keeps, then the files of this models directory no version refers to.
/// Prints <c>removed=N resources=R packs=P one-file=O fleet=F temporary=T bytes=B seconds=S</c>. Exit codes: 0 done, 1 failure.
/// </summary>
public static class PruneModelsCommand
{
    public static System.CommandLine.Command Create()
    {
        var command = new System.CommandLine.Command("prune-models",
            "Apply model retention now (Forecaster:ModelRetention): delete model versions nothing keeps and model files no version refers to.");
        command.SetAction(async (parse, ct) =>
        {
            await using var host = await ForecasterServices.BuildForVerbAsync(LogLevel.Information, ct);
            var retention = host.Services.GetRequiredService<ModelRetention>();
            var o = host.Services.GetRequiredService<IOptions<ModelRetentionOptions>>().Value;
            var started = Stopwatch.GetTimestamp();
            var outcome = await retention.PassAsync(o, host.Services.GetRequiredService<TimeProvider>().GetUtcNow(), ct);
            var f = outcome.Files;
            Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"removed={outcome.Removed} resources={outcome.Resources} packs={f.Packs} one-file={f.OneFileArtifacts} fleet={f.FleetModels} temporary={f.Temporary} bytes={f.Bytes} seconds={Stopwatch.GetElapsedTime(started).TotalSeconds:F2}"));
            return 0;
        });
        return command;
    }
}
