using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Dapper;
using Forecaster.Api.Database;
using Forecaster.Api.Resources;
using Forecaster.Planner;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;

namespace Forecaster.Api.Plans;

/// <summary>What started a planning run: the end of a training run, a policy change (PUT resource) or the `plan` verb.</summary>
public enum PlanTrigger { Training, Policy, Cli }

/// <summary>Which resources to plan (null: the whole fleet) and why.</summary>
public sealed record PlanScope(PlanTrigger Trigger, string[]? Resources = null, long? TrainingRunId = null);

/// <summary>What a planning run did. <see cref="Skipped"/> counts resources changed or deleted while their batch was planned (their own change replans them).</summary>
public sealed record PlanningOutcome(int Resources, int Planned, int Cannot, int Skipped, int Purged, TimeSpan Elapsed)
{
    public string Summary => string.Create(CultureInfo.InvariantCulture,
        $"resources={Resources} planned={Planned} cannot={Cannot} seconds={Elapsed.TotalSeconds:F2} rate={Resources / Math.Max(Elapsed.TotalSeconds, 1e-9):F1}/s");
}

/// <summary>
/// Plans resources in batches of <see cref="PlanningOptions.BatchResources"/>: each batch's inputs are loaded with a few
/// queries (<see cref="PlanInputs"/>), planned in parallel with the pure <see cref="ScalePlanner"/>, and published in one
/// transaction: the new version inserted with binary COPY (steps included, packed by <see cref="PackedSteps"/>, so a plan is
/// published whole or not at all) and made the resource's active one in <c>plan_current</c> (which supersedes the previous one), <c>NOTIFY plans, '&lt;resource name&gt;'</c> per resource, and resources that cannot
/// be planned recorded in <c>plan_problems</c> with what is missing (their previous plan stays active). A fleet run then
/// deletes superseded versions older than <see cref="PlanningOptions.RetentionDays"/>.
/// </summary>
public sealed class PlanningPipeline(NpgsqlDataSource db, IOptions<PlanningOptions> options, TimeProvider clock, ILogger<PlanningPipeline> logger)
{
    /// <summary>The LISTEN/NOTIFY channel a published plan is announced on; the payload is the resource's name.</summary>
    public const string Channel = "plans";

    /// <summary>One planned (or unplannable) resource: the model version and generation time of the forecast it was planned from, and its row.</summary>
    sealed record Result(Resource Resource, long? ModelVersionId, DateTime? ForecastGeneratedAt, PlanRow? Plan, IReadOnlyList<string> Missing);

    /// <summary>
    /// A plan's columns as the COPY writes them, taken from the plan right after it is made: the plan's step objects (most of
    /// what planning allocates) then die young, instead of outliving the batch's publication and the collections meanwhile.
    /// </summary>
    sealed record PlanRow(
        string Mode, DateTime GeneratedAt, DateTime HorizonStart, int HorizonHours, int LeadMinutes, string? CapacityModel, byte[] Notes,
        byte[] Steps, byte[] Requests, byte[] Counts, byte[] CpuHours, byte[] MemoryHours, bool RequestsKnown);

    /// <summary>What publishing one batch did.</summary>
    sealed record BatchOutcome(int Resources, int Published, int Cannot);

    /// <summary>Plans <paramref name="scope"/>; <paramref name="progress"/> hears the resources done after each batch.</summary>
    public async Task<PlanningOutcome> PlanAsync(PlanScope scope, Action<int>? progress, CancellationToken ct)
    {
        var o = options.Value;
        var started = Stopwatch.GetTimestamp();
        var now = clock.GetUtcNow();
        var horizonStart = PlanInputs.HorizonStart(now);
        int after = 0, resources = 0, planned = 0, cannot = 0, skipped = 0;
        // Where the time goes (waiting for reading, planning, waiting for publishing), for the log: the planner itself is the smallest part.
        TimeSpan reading = default, planning = default, publishing = default;
        void Count(BatchOutcome b)
        {
            resources += b.Resources;
            planned += b.Published;
            cannot += b.Cannot;
            skipped += b.Resources - b.Published - b.Cannot;
            progress?.Invoke(resources);
        }
        // Batches overlap: the next one is read and up to PublishingConnections earlier ones are published while this one is
        // planned. Reading and publishing are mostly PostgreSQL's work and planning is ours, so on two cores each hides behind
        // the other; a second publication keeps PostgreSQL busy while the first waits for its commit or for the planner.
        // Batches hold disjoint resources (id order), so concurrent publications never wait for each other's row locks, and
        // each re-checks its resources' updated_at under a lock, so a batch read early never publishes over a newer policy.
        // They are counted in order.
        var next = ReadBatchAsync(scope, after, now, horizonStart, o, ct);
        var inFlight = new Queue<Task<BatchOutcome>>();
        try
        {
            while (true)
            {
                var t0 = Stopwatch.GetTimestamp();
                var (batch, requests) = await next;
                reading += Stopwatch.GetElapsedTime(t0);
                if (batch.Count == 0)
                {
                    break;
                }
                after = batch[^1].Id;
                next = ReadBatchAsync(scope, after, now, horizonStart, o, ct);
                var t1 = Stopwatch.GetTimestamp();
                var results = Plan(requests, o, ct);
                var t2 = Stopwatch.GetTimestamp();
                planning += Stopwatch.GetElapsedTime(t1, t2);
                if (inFlight.Count >= o.PublishingConnections)
                {
                    Count(await inFlight.Dequeue());
                    publishing += Stopwatch.GetElapsedTime(t2);
                }
                inFlight.Enqueue(Task.Run(() => PublishAsync(results, scope, now, ct), ct));
            }
            var t3 = Stopwatch.GetTimestamp();
            while (inFlight.TryDequeue(out var p))
            {
                Count(await p);
            }
            publishing += Stopwatch.GetElapsedTime(t3);
        }
        catch
        {
            // A failed batch abandons the read ahead and the publications in flight: observe them so that their own failures
            // (or cancellations) are not lost unobserved, and so that no transaction of this run is still open when it ends.
            await next.ContinueWith(static t => _ = t.Exception, TaskScheduler.Default);
            foreach (var p in inFlight)
            {
                await p.ContinueWith(static t => _ = t.Exception, TaskScheduler.Default);
            }
            throw;
        }
        var purged = scope.Resources is null ? await PurgeAsync(now - TimeSpan.FromDays(o.RetentionDays), ct) : 0;
        var outcome = new PlanningOutcome(resources, planned, cannot, skipped, purged, Stopwatch.GetElapsedTime(started));
        logger.LogInformation("Planning ({Trigger}): {Summary} skipped={Skipped} purged={Purged} (waiting for reading {Reading:F2} s, planning {Planning:F2} s, publishing {Publishing:F2} s)",
            scope.Trigger, outcome.Summary, skipped, purged, reading.TotalSeconds, planning.TotalSeconds, publishing.TotalSeconds);
        return outcome;
    }

    /// <summary>The resources after <paramref name="after"/> (id order) and their planning inputs.</summary>
    async Task<(List<Resource> Batch, PlanRequest[] Requests)> ReadBatchAsync(
        PlanScope scope, int after, DateTimeOffset now, DateTimeOffset horizonStart, PlanningOptions o, CancellationToken ct)
    {
        var batch = await ResourceStore.NextBatchAsync(db, scope.Resources, after, o.BatchResources, ct);
        return batch.Count == 0 ? (batch, []) : (batch, await PlanInputs.LoadAsync(db, batch, now, horizonStart, o, ct));
    }

    Result[] Plan(PlanRequest[] requests, PlanningOptions o, CancellationToken ct)
    {
        var results = new Result[requests.Length];
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = o.EffectiveParallelism, CancellationToken = ct };
        // Ranges rather than single items: a plan takes microseconds, so per-item scheduling would cost as much as the work.
        Parallel.ForEach(Partitioner.Create(0, requests.Length, Math.Max(16, requests.Length / (4 * o.EffectiveParallelism))), parallel, range =>
        {
            for (var i = range.Item1; i < range.Item2; i++)
            {
                results[i] = PlanOne(requests[i]);
            }
        });
        foreach (var r in results.Where(r => r.Plan is null))
        {
            logger.LogWarning("Cannot plan {Resource}: {Missing}", r.Resource.Name, string.Join("; ", r.Missing.Take(3)));
        }
        return results;
    }

    static Result PlanOne(PlanRequest request)
    {
        if (request.Input is not { } input)
        {
            return new Result(request.Resource, null, null, null, [.. request.Problems.Select(p => $"invalid stored policy: {p}")]);
        }
        try
        {
            return ScalePlanner.Plan(input) switch
            {
                Planned<Plan> { Value: var plan } => new Result(request.Resource,
                    input.Forecast is { } f ? long.Parse(f.ModelVersion, CultureInfo.InvariantCulture) : null, input.Forecast?.GeneratedAt.UtcDateTime,
                    Row(plan), []),
                CannotPlan<Plan> c => new Result(request.Resource, null, null, null, c.Missing),
                _ => throw new InvalidOperationException("unknown plan outcome"),
            };
        }
        catch (ArgumentException e)
        {
            // One resource's bad input never stops the fleet: it is recorded like any other gap.
            return new Result(request.Resource, null, null, null, [$"planner rejected the input: {e.Message}"]);
        }
    }

    /// <summary>
    /// The plan's columns: steps packed, requests as jsonb, notes as text[] and per step the planned count and count × request,
    /// these three as int4[], float8[] and int8[], the arrays already in PostgreSQL's binary form (<see cref="PostgresBinary"/>).
    /// </summary>
    static PlanRow Row(Plan plan)
    {
        var steps = plan.Steps;
        Span<int> counts = steps.Count <= 256 ? stackalloc int[steps.Count] : new int[steps.Count];
        Span<double> cpu = steps.Count <= 256 ? stackalloc double[steps.Count] : new double[steps.Count];
        Span<long> memory = steps.Count <= 256 ? stackalloc long[steps.Count] : new long[steps.Count];
        for (var i = 0; i < steps.Count; i++)
        {
            var s = steps[i];
            counts[i] = s.Count;
            cpu[i] = s.Count * (s.Cpu ?? 0);
            memory[i] = s.Count * (s.Memory ?? 0);
        }
        return new PlanRow(plan.Mode == PlanMode.ForecastOnly ? "forecastOnly" : "scale", plan.GeneratedAt.UtcDateTime, steps[0].Hour.UtcDateTime,
            steps.Count, (int)(steps[0].Hour - steps[0].Start).TotalMinutes, plan.CapacityModelVersion, PostgresBinary.TextArray(plan.Notes),
            PackedSteps.Write(steps), PlanJson.WriteJsonb(plan.Requests), PostgresBinary.Int4Array(counts), PostgresBinary.Float8Array(cpu),
            PostgresBinary.Int8Array(memory), plan.Requests.Cpu is not null && plan.Requests.Memory is not null);
    }

    async Task<BatchOutcome> PublishAsync(Result[] results, PlanScope scope, DateTimeOffset now, CancellationToken ct)
    {
        var ids = results.Select(r => r.Resource.Id).ToArray();
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        // Lock the batch's resources (in id order, so concurrent runs cannot deadlock) and drop those changed or deleted since
        // they were read: a PUT that changed a policy plans that resource itself, and a stale plan must not overwrite it.
        const string lockResources = "SELECT id, updated_at FROM resources WHERE id = ANY(@ids) ORDER BY id FOR NO KEY UPDATE";
        var current = (await conn.QueryAsync<(int Id, DateTime UpdatedAt)>(new CommandDefinition(lockResources, new { ids }, tx, cancellationToken: ct)))
            .ToDictionary(r => r.Id, r => r.UpdatedAt);
        var fresh = results.Where(r => current.TryGetValue(r.Resource.Id, out var u) && u == r.Resource.UpdatedAt).ToList();
        var plans = fresh.Where(r => r.Plan is not null).ToList();
        var gaps = fresh.Where(r => r.Plan is null).ToList();

        // The batch's version ids, allocated up front (the resources are locked, so a later publication of the same resource
        // gets later ids): the versions are copied with them and plan_current is pointed at them in the same transaction.
        // Nothing rewrites the previous version: it is superseded by plan_current no longer naming it (migration 0060).
        // The identity's sequence by name: a constant resolved once per statement (pg_get_serial_sequence would be looked up per row).
        const string allocate = "SELECT nextval('plan_versions_id_seq') FROM generate_series(1, @n)";
        var versionIds = (await conn.QueryAsync<long>(new CommandDefinition(allocate, new { n = plans.Count }, tx, cancellationToken: ct))).ToArray();
        var plannedIds = plans.Select(r => r.Resource.Id).ToArray();
        await using (var copy = await conn.BeginBinaryImportAsync("""
            COPY plan_versions (id, resource_id, kind, mode, trigger, training_run_id, generated_at, horizon_start, horizon_hours,
                lead_minutes, model_version_id, forecast_generated_at, capacity_model, policy, requests, notes, steps_packed, counts, cpu_hours,
                memory_hours, requests_known) FROM STDIN (FORMAT BINARY)
            """, ct))
        {
            var trigger = scope.Trigger.ToString().ToLowerInvariant();
            for (var i = 0; i < plans.Count; i++)
            {
                var r = plans[i];
                var plan = r.Plan!;
                await copy.StartRowAsync(ct);
                await copy.WriteAsync(versionIds[i], NpgsqlDbType.Bigint, ct);
                await copy.WriteAsync(r.Resource.Id, NpgsqlDbType.Integer, ct);
                await copy.WriteAsync(ResourceKinds.Name(r.Resource.Kind), NpgsqlDbType.Text, ct);
                await copy.WriteAsync(plan.Mode, NpgsqlDbType.Text, ct);
                await copy.WriteAsync(trigger, NpgsqlDbType.Text, ct);
                await Nullable(copy, scope.TrainingRunId, NpgsqlDbType.Bigint, ct);
                await copy.WriteAsync(plan.GeneratedAt, NpgsqlDbType.TimestampTz, ct);
                await copy.WriteAsync(plan.HorizonStart, NpgsqlDbType.TimestampTz, ct);
                await copy.WriteAsync(plan.HorizonHours, NpgsqlDbType.Integer, ct);
                await copy.WriteAsync(plan.LeadMinutes, NpgsqlDbType.Integer, ct);
                await Nullable(copy, r.ModelVersionId, NpgsqlDbType.Bigint, ct);
                await Nullable(copy, r.ForecastGeneratedAt, NpgsqlDbType.TimestampTz, ct);
                await Nullable(copy, plan.CapacityModel, NpgsqlDbType.Text, ct);
                await copy.WriteAsync(r.Resource.StoredPolicy, NpgsqlDbType.Jsonb, ct);
                // The jsonb's binary form (PlanJson.WriteJsonb), sent as it is like the arrays below.
                await copy.WriteAsync(plan.Requests, NpgsqlDbType.Bytea, ct);
                await copy.WriteAsync(plan.Notes, NpgsqlDbType.Bytea, ct);
                await copy.WriteAsync(plan.Steps, NpgsqlDbType.Bytea, ct);
                // The int4[], float8[] and int8[] columns' binary forms, encoded by Row: a binary COPY field is its bytes, which
                // the server reads with the column type's receive function (array_recv), so they go as they are.
                await copy.WriteAsync(plan.Counts, NpgsqlDbType.Bytea, ct);
                await copy.WriteAsync(plan.CpuHours, NpgsqlDbType.Bytea, ct);
                await copy.WriteAsync(plan.MemoryHours, NpgsqlDbType.Bytea, ct);
                await copy.WriteAsync(plan.RequestsKnown, NpgsqlDbType.Boolean, ct);
            }
            await copy.CompleteAsync(ct);
        }

        // Listeners (the serving side) reload the named resources' active plans once this transaction commits.
        const string publish = """
            INSERT INTO plan_current (resource_id, version_id) SELECT * FROM unnest(@planned, @versionIds)
            ON CONFLICT (resource_id) DO UPDATE SET version_id = EXCLUDED.version_id;
            DELETE FROM plan_problems WHERE resource_id = ANY(@planned);
            SELECT pg_notify('plans', n) FROM unnest(@names) AS n;
            INSERT INTO plan_problems (resource_id, checked_at, missing)
            SELECT g.id, @now, string_to_array(g.missing, E'\n') FROM unnest(@gapIds, @gapMissing) AS g(id, missing)
            ON CONFLICT (resource_id) DO UPDATE SET checked_at = EXCLUDED.checked_at, missing = EXCLUDED.missing;
            """;
        await conn.ExecuteAsync(new CommandDefinition(publish, new
        {
            planned = plannedIds,
            versionIds,
            names = plans.Select(r => r.Resource.Name).ToArray(),
            gapIds = gaps.Select(r => r.Resource.Id).ToArray(),
            gapMissing = gaps.Select(r => string.Join('\n', r.Missing.Select(m => m.ReplaceLineEndings(" ")))).ToArray(),
            now,
        }, tx, cancellationToken: ct));
        await tx.CommitAsync(ct);
        return new BatchOutcome(results.Length, plans.Count, gaps.Count);
    }

    /// <summary>Deletes superseded versions generated before <paramref name="cutoff"/>, in chunks so no single statement holds locks long.</summary>
    public async Task<int> PurgeAsync(DateTimeOffset cutoff, CancellationToken ct)
    {
        // A version is active while plan_current names it; the probe goes by plan_current's key (resource_id), which has the
        // only index on that table.
        const string purge = """
            DELETE FROM plan_versions
            WHERE id IN (SELECT p.id FROM plan_versions p
                         WHERE p.generated_at < @cutoff AND NOT EXISTS (SELECT 1 FROM plan_current c WHERE c.resource_id = p.resource_id AND c.version_id = p.id)
                         LIMIT 10000)
            """;
        var total = 0;
        await using var conn = await db.OpenConnectionAsync(ct);
        while (await conn.ExecuteAsync(new CommandDefinition(purge, new { cutoff }, cancellationToken: ct)) is var n and > 0)
        {
            total += n;
        }
        return total;
    }

    static async Task Nullable<T>(NpgsqlBinaryImporter w, T? value, NpgsqlDbType type, CancellationToken ct)
    {
        if (value is null)
        {
            await w.WriteNullAsync(ct);
        }
        else
        {
            await w.WriteAsync(value, type, ct);
        }
    }
}
