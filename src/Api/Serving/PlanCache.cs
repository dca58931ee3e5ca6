using Dapper;
using Forecaster.Api.Plans;
using Forecaster.Api.Resources;
using Forecaster.Planner;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Forecaster.Api.Serving;

/// <summary>
/// Every resource's active plan (and, where a plan runs out soon, the history behind the serve-time fallback) held in
/// memory, so the plan endpoints never touch the database. The snapshot is immutable and swapped whole; one writer at a
/// time (the listener, or a test) loads from the database and swaps. While the database is unreachable the last snapshot
/// keeps being served, marked stale.
/// </summary>
public sealed class PlanCache(
    NpgsqlDataSource db, IOptions<ServingOptions> options, IOptions<PlanningOptions> planning, TimeProvider clock, ILogger<PlanCache> logger) : IDisposable
{
    /// <summary>Resources by name, and the same sorted by name (ordinal) for paging.</summary>
    sealed record Snapshot(Dictionary<string, ServedResource> ByName, ServedResource[] Ordered);

    /// <summary>A resource as (re)loaded (<see cref="ResourceStore.Columns"/>), with its active plan once that is read.</summary>
    internal sealed class Row : ResourceRow
    {
        public StoredPlan? Plan { get; set; }
    }

    /// <summary>An active plan version as stored: steps packed (<see cref="PackedSteps"/>), or as JSON in a version written before migration 0010.</summary>
    internal sealed record StoredPlan(long Id, DateTime GeneratedAt, string Mode, byte[]? Packed, string? Steps);

    readonly SemaphoreSlim _writer = new(1, 1);
    Snapshot _snapshot = new(new Dictionary<string, ServedResource>(StringComparer.Ordinal), []);
    string? _unreachable;
    DateTimeOffset? _unreachableSince;

    public ServingOptions Options => options.Value;

    /// <summary>True once the first full load succeeded: readiness waits for it.</summary>
    public bool Loaded { get; private set; }

    /// <summary>True while the database cannot be reached: answers come from memory and say <c>stale: true</c>.</summary>
    public bool Stale => Volatile.Read(ref _unreachable) is not null;

    /// <summary>Why the database is unreachable and since when, or null.</summary>
    public (string Reason, DateTimeOffset Since)? Outage => Volatile.Read(ref _unreachable) is { } reason ? (reason, _unreachableSince!.Value) : null;

    public DateTimeOffset? SyncedAt { get; private set; }

    public int Count => Volatile.Read(ref _snapshot).Ordered.Length;

    public ServedResource? Find(string name) => Volatile.Read(ref _snapshot).ByName.GetValueOrDefault(name);

    /// <summary>Every resource, sorted by name (ordinal). The snapshot's own array: read it, never write it.</summary>
    public ServedResource[] Ordered => Volatile.Read(ref _snapshot).Ordered;

    /// <summary>(plans, resources holding fallback history) in the current snapshot, for readiness.</summary>
    public (int Plans, int WithHistory) Counts()
    {
        var all = Volatile.Read(ref _snapshot).Ordered;
        return (all.Count(r => r.Plan is not null), all.Count(r => r.Fallback is not null));
    }

    public void MarkUnreachable(Exception e)
    {
        if (Volatile.Read(ref _unreachable) is null)
        {
            _unreachableSince = clock.GetUtcNow();
            logger.LogWarning("Database unreachable ({Reason}): serving {Count} resources from memory, stale", e.GetBaseException().Message, Count);
        }
        Volatile.Write(ref _unreachable, e.GetBaseException().Message);
    }

    void MarkReachable()
    {
        if (Interlocked.Exchange(ref _unreachable, null) is not null)
        {
            logger.LogInformation("Database reachable again: plans are fresh");
        }
        SyncedAt = clock.GetUtcNow();
    }

    /// <summary>
    /// Compares every resource's version and active plan id with the snapshot and reloads what differs (all of it on the
    /// first call); also loads the history of resources whose plan has meanwhile come within the fallback horizon.
    /// </summary>
    public async Task SyncAsync(CancellationToken ct)
    {
        const string versions = """
            SELECT r.name, r.updated_at, c.version_id
            FROM resources r LEFT JOIN plan_current c ON c.resource_id = r.id
            """;
        await _writer.WaitAsync(ct);
        try
        {
            List<(string Name, DateTime UpdatedAt, long? PlanId)> rows;
            await using (var conn = await db.OpenConnectionAsync(ct))
            {
                rows = [.. await conn.QueryAsync<(string, DateTime, long?)>(new CommandDefinition(versions, cancellationToken: ct))];
            }
            var snapshot = _snapshot;
            var now = clock.GetUtcNow();
            var ahead = TimeSpan.FromHours(Options.FallbackAheadHours);
            var changed = rows.Where(r => !snapshot.ByName.TryGetValue(r.Name, out var e) || e.UpdatedAt != r.UpdatedAt || e.PlanId != r.PlanId
                    || (e.Fallback is null && e.Problems.Count == 0 && e.NeedsHistory(now, ahead)))
                .Select(r => r.Name).ToList();
            var present = rows.Select(r => r.Name).ToHashSet(StringComparer.Ordinal);
            var removed = snapshot.ByName.Keys.Where(n => !present.Contains(n)).ToList();
            await LoadAsync(changed, removed, ct, everything: snapshot.ByName.Count == 0);
            Loaded = true;
            MarkReachable();
        }
        finally
        {
            _writer.Release();
        }
    }

    /// <summary>Reloads the named resources (a notification named them): changed, published, created or deleted.</summary>
    public async Task ReloadAsync(IReadOnlyCollection<string> names, CancellationToken ct)
    {
        await _writer.WaitAsync(ct);
        try
        {
            await LoadAsync(names, [], ct);
            MarkReachable();
        }
        finally
        {
            _writer.Release();
        }
    }

    /// <summary>Reloads the observed history of every resource that may need the fallback soon.</summary>
    public async Task RefreshHistoryAsync(CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var ahead = TimeSpan.FromHours(Options.FallbackAheadHours);
        var names = Volatile.Read(ref _snapshot).Ordered.Where(r => r.NeedsHistory(now, ahead)).Select(r => r.Name).ToList();
        await ReloadAsync(names, ct);
    }

    /// <summary>The named resources (the definition only; their plans are read by <see cref="ReadActivePlansAsync"/>).</summary>
    static async Task<List<Row>> ReadResourcesAsync(NpgsqlConnection conn, string[] names, CancellationToken ct)
    {
        const string sql = $"""
            SELECT {ResourceStore.Columns}
            FROM resources r
            WHERE r.name = ANY(@names)
            """;
        return [.. await conn.QueryAsync<Row>(new CommandDefinition(sql, new { names }, cancellationToken: ct))];
    }

    /// <summary>
    /// The active plan of each of <paramref name="ids"/>, read with binary COPY: the packed steps come as they are stored,
    /// with nothing to parse (a version stored before migration 0010 brings its JSON steps instead).
    /// </summary>
    /// <remarks><paramref name="ids"/> null: every active plan.</remarks>
    static async Task<Dictionary<int, StoredPlan>> ReadActivePlansAsync(NpgsqlConnection conn, int[]? ids, CancellationToken ct)
    {
        var plans = new Dictionary<int, StoredPlan>(ids?.Length ?? 0);
        if (ids is { Length: 0 })
        {
            return plans;
        }
        // COPY takes no parameters: the ids are integers formatted here, never text from a request.
        var only = ids is null ? "" : $"WHERE c.resource_id IN ({string.Join(',', ids.Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)))})";
        await using var copy = await conn.BeginBinaryExportAsync($"""
            COPY (SELECT p.resource_id, p.id, p.generated_at, p.mode, p.steps_packed, CASE WHEN p.steps_packed IS NULL THEN p.steps::text END
                  FROM plan_current c JOIN plan_versions p ON p.id = c.version_id {only}) TO STDOUT (FORMAT BINARY)
            """, ct);
        while (await copy.StartRowAsync(ct) >= 0)
        {
            var resourceId = await copy.ReadAsync<int>(ct);
            var id = await copy.ReadAsync<long>(ct);
            var generatedAt = await copy.ReadAsync<DateTime>(ct);
            var mode = await copy.ReadAsync<string>(ct);
            var packed = copy.IsNull ? Skip<byte[]>(copy) : await copy.ReadAsync<byte[]>(ct);
            var json = copy.IsNull ? Skip<string>(copy) : await copy.ReadAsync<string>(ct);
            plans[resourceId] = new StoredPlan(id, generatedAt, mode, packed, json);
        }
        return plans;
    }

    static T? Skip<T>(NpgsqlBinaryExporter copy) where T : class
    {
        copy.Skip();
        return null;
    }

    /// <summary>The named resources with their active plans (also what the `manifest` verb reads).</summary>
    internal static async Task<List<Row>> ReadAsync(NpgsqlConnection conn, string[] names, CancellationToken ct)
    {
        var rows = await ReadResourcesAsync(conn, names, ct);
        return WithPlans(rows, await ReadActivePlansAsync(conn, [.. rows.Select(r => r.Id)], ct));
    }

    static List<Row> WithPlans(List<Row> rows, Dictionary<int, StoredPlan> plans)
    {
        foreach (var r in rows)
        {
            r.Plan = plans.GetValueOrDefault(r.Id);
        }
        return rows;
    }

    async Task LoadAsync(IReadOnlyCollection<string> names, IReadOnlyCollection<string> removed, CancellationToken ct, bool everything = false)
    {
        // The first load wants every active plan: one COPY of them all (a cold start reads them in bulk), not one per slice.
        Dictionary<int, StoredPlan>? allPlans = null;
        if (everything)
        {
            await using var conn = await db.OpenConnectionAsync(ct);
            allPlans = await ReadActivePlansAsync(conn, null, ct);
        }
        var now = clock.GetUtcNow();
        var ahead = TimeSpan.FromHours(Options.FallbackAheadHours);
        var hourStart = new DateTimeOffset(now.UtcTicks - (now.UtcTicks % TimeSpan.TicksPerHour), TimeSpan.Zero);
        var loaded = new List<ServedResource>(names.Count);
        var gone = new HashSet<string>(removed, StringComparer.Ordinal);
        foreach (var chunk in names.Chunk(Options.LoadBatch))
        {
            List<Row> rows;
            await using (var conn = await db.OpenConnectionAsync(ct))
            {
                rows = allPlans is null ? await ReadAsync(conn, chunk, ct) : WithPlans(await ReadResourcesAsync(conn, chunk, ct), allPlans);
            }
            gone.UnionWith(chunk.Except(rows.Select(r => r.Name), StringComparer.Ordinal));
            var resources = rows.Select(r => r.ToResource()).ToArray();
            var plans = rows.Select(r => Plan(r, now)).ToArray();
            // History only where a plan runs out within the fallback horizon: a planned fleet holds no history at all.
            var needy = resources.Where((r, i) => plans[i] is not { } p || p.End < now + ahead).ToList();
            var inputs = needy.Count == 0 ? [] : (await PlanInputs.LoadAsync(db, needy, now, hourStart, planning.Value, ct)).ToDictionary(q => q.Resource.Id);
            for (var i = 0; i < rows.Count; i++)
            {
                loaded.Add(Served(resources[i], rows[i].Plan?.Id, plans[i], inputs.GetValueOrDefault(rows[i].Id)));
            }
        }
        if (loaded.Count > 0 || gone.Count > 0)
        {
            Swap(loaded, gone);
        }
    }

    /// <summary>What is served for a loaded row: its plan, and the fallback's inputs where they were loaded.</summary>
    internal static ServedResource Served(Resource r, long? planId, ServedPlan? plan, PlanRequest? request) =>
        new(r.Id, r.Name, r.Kind, r.Group, r.UpdatedAt, planId, plan, request?.Input, request?.Problems ?? [])
        {
            Policy = request?.Input?.Policy ?? (r.Kind == ResourceKind.Job ? r.Policy : null),
        };

    /// <summary>The plan as served: its steps that are not over (an hour of slack for a slightly past <c>at</c>); what is over only costs memory.</summary>
    internal static ServedPlan? Plan(Row r, DateTimeOffset now)
    {
        if (r.Plan is not { } p)
        {
            return null;
        }
        var packed = p.Packed ?? PackedSteps.Write(PlanJson.ReadSteps(p.Steps ?? "[]"));
        return new ServedPlan(p.Id, new DateTimeOffset(p.GeneratedAt, TimeSpan.Zero), p.Mode == "forecastOnly", packed, now - TimeSpan.FromHours(1));
    }

    /// <summary>Copy, change, publish: readers keep the snapshot they started with, and see the next one whole.</summary>
    void Swap(List<ServedResource> loaded, HashSet<string> gone)
    {
        var old = _snapshot;
        var byName = new Dictionary<string, ServedResource>(old.ByName, StringComparer.Ordinal);
        var reshaped = false;
        foreach (var name in gone)
        {
            reshaped |= byName.Remove(name);
        }
        foreach (var r in loaded)
        {
            reshaped |= !byName.ContainsKey(r.Name);
            byName[r.Name] = r;
        }
        ServedResource[] ordered;
        if (reshaped)
        {
            ordered = [.. byName.Values];
            Array.Sort(ordered, (a, b) => string.CompareOrdinal(a.Name, b.Name));
        }
        else
        {
            // Same names: replace in place in a copy, no sort.
            ordered = (ServedResource[])old.Ordered.Clone();
            foreach (var r in loaded)
            {
                ordered[IndexOf(ordered, r.Name)] = r;
            }
        }
        Volatile.Write(ref _snapshot, new Snapshot(byName, ordered));
    }

    /// <summary>Index of the first resource whose name is at or after <paramref name="name"/> (ordinal).</summary>
    public static int IndexOf(ServedResource[] ordered, string name)
    {
        int lo = 0, hi = ordered.Length;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (string.CompareOrdinal(ordered[mid].Name, name) < 0)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }
        return lo;
    }

    public void Dispose() => _writer.Dispose();
}
