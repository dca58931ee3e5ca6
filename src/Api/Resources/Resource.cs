using System.Text.Json;
using Dapper;
using Forecaster.Planner;
using Npgsql;

namespace Forecaster.Api.Resources;

/// <summary>
/// A registered resource as every stage sees it (ingestion, training, planning, serving, simulations, the demo): read from
/// the <c>resources</c> table only by <see cref="ResourceStore"/>. <see cref="LoadMetric"/> is the one load metric (training
/// fits it, the planner plans from it); <see cref="Policy"/> is the typed policy, validated when it was written, or null with
/// <see cref="PolicyProblems"/> saying why a stored policy cannot be used.
/// </summary>
/// <param name="StoredPolicy">The policy JSON as it was given (what GET shows).</param>
public sealed record Resource(
    int Id, string Name, ResourceKind Kind, string Group, string LoadMetric, Policy? Policy, IReadOnlyList<string> PolicyProblems,
    string StoredPolicy, DateTime CreatedAt, DateTime UpdatedAt)
{
    public static IReadOnlyDictionary<string, SourceSpec> NoSources { get; } = new Dictionary<string, SourceSpec>(StringComparer.Ordinal);

    /// <summary>
    /// Its own Prometheus sources (metric → PromQL and server), empty where it has none. Its group's templates are the group's:
    /// <c>Sources.SourceDefinitions</c> resolves the effective set and keeps their pull state.
    /// </summary>
    public IReadOnlyDictionary<string, SourceSpec> Sources { get; init; } = NoSources;
}

/// <summary>One Prometheus source of a resource (or a group's template): PromQL and the server it runs on ('' for the default).</summary>
public sealed record SourceSpec(string Query, string Server);

/// <summary>The stored names of <see cref="ResourceKind"/>: the one place `service`/`job` text becomes the enum and back.</summary>
public static class ResourceKinds
{
    public static bool TryParse(string? text, out ResourceKind kind)
    {
        (var ok, kind) = text switch
        {
            "service" => (true, ResourceKind.Service),
            "job" => (true, ResourceKind.Job),
            _ => (false, ResourceKind.Service),
        };
        return ok;
    }

    public static ResourceKind Parse(string text) =>
        TryParse(text, out var kind) ? kind : throw new FormatException($"'{text}' is not a resource kind");

    public static string Name(ResourceKind kind) => kind == ResourceKind.Job ? "job" : "service";
}

/// <summary>A policy checked the one time it is checked: at PUT, at registration, or at start for rows written before.</summary>
public static class ResourcePolicy
{
    /// <summary>Every problem of <paramref name="policy"/> (JSON text) for a resource of <paramref name="kind"/>, as "field: message".</summary>
    public static string[] Problems(string policy, ResourceKind kind)
    {
        using var doc = JsonDocument.Parse(policy);
        return [.. PolicyValidator.Validate(doc.RootElement, kind).Select(p => $"{p.Field}: {p.Message}")];
    }

    /// <summary>
    /// The typed policy from its stored form: only parsed where it was validated already (<paramref name="problems"/> empty),
    /// validated here only for a row nobody has checked yet (null: written by hand, or before start checked it).
    /// </summary>
    public static (Policy? Policy, IReadOnlyList<string> Problems) Read(string policy, ResourceKind kind, string[]? problems)
    {
        problems ??= Problems(policy, kind);
        return problems.Length > 0 ? (null, problems) : (PolicyJson.Read(policy), []);
    }

    /// <summary>
    /// Validates every stored policy nobody has checked yet (rows written before migration 0030 or by hand) and stores the
    /// outcome, so readers only parse. Run at start, after the migrations; <c>updated_at</c> is left alone (nothing changed).
    /// </summary>
    public static async Task<int> CheckUncheckedAsync(NpgsqlDataSource db, CancellationToken ct)
    {
        const string unchecked_ = "SELECT id, kind, policy::text FROM resources WHERE policy_problems IS NULL ORDER BY id LIMIT 10000";
        const string store = """
            UPDATE resources r SET policy_problems = ARRAY(SELECT jsonb_array_elements_text(x.problems))
            FROM unnest(@ids, @problems::jsonb[]) AS x(id, problems)
            WHERE r.id = x.id
            """;
        var total = 0;
        await using var conn = await db.OpenConnectionAsync(ct);
        while (true)
        {
            var rows = (await conn.QueryAsync<(int Id, string Kind, string Policy)>(new CommandDefinition(unchecked_, cancellationToken: ct))).ToList();
            if (rows.Count == 0)
            {
                return total;
            }
            var problems = rows.Select(r => JsonSerializer.Serialize(ResourceKinds.TryParse(r.Kind, out var kind)
                ? Problems(r.Policy, kind) : [$"kind: '{r.Kind}' is not a kind"])).ToArray();
            await conn.ExecuteAsync(new CommandDefinition(store, new { ids = rows.Select(r => r.Id).ToArray(), problems }, cancellationToken: ct));
            total += rows.Count;
        }
    }
}

/// <summary>
/// The owner of the <c>resources</c> table's reads: one column list, one row shape, one conversion into <see cref="Resource"/>.
/// Queries that need a resource with something beside it (its series, its active plan) select <see cref="Columns"/> and
/// map into a subclass of <see cref="ResourceRow"/>.
/// </summary>
public static class ResourceStore
{
    /// <summary>The columns of <see cref="ResourceRow"/> but its sources, from <c>resources r</c>.</summary>
    const string OwnColumns = """
        r.id AS Id, r.name AS Name, r.kind AS Kind, r."group" AS Group, r.load_metric AS LoadMetric, r.policy::text AS Policy,
        r.policy_problems AS PolicyProblems, r.created_at AS CreatedAt, r.updated_at AS UpdatedAt
        """;

    /// <summary>The columns of <see cref="ResourceRow"/>, from <c>resources r</c>.</summary>
    public const string Columns = OwnColumns + ", " + Sources.SourceDefinitions.OwnSourcesColumn + " AS Sources";

    public static async Task<Resource?> FindAsync(NpgsqlConnection conn, string name, CancellationToken ct, NpgsqlTransaction? tx = null) =>
        (await conn.QuerySingleOrDefaultAsync<ResourceRow>(new CommandDefinition(
            $"SELECT {Columns} FROM resources r WHERE r.name = @name", new { name }, tx, cancellationToken: ct)))?.ToResource();

    /// <summary>A page in name order, optionally of one group and kind.</summary>
    public static async Task<List<Resource>> PageAsync(
        NpgsqlConnection conn, string? group, ResourceKind? kind, string? after, int take, CancellationToken ct)
    {
        var sql = $"""
            SELECT {Columns}
            FROM resources r
            WHERE (@group::text IS NULL OR r."group" = @group)
              AND (@kind::text IS NULL OR r.kind = @kind)
              AND (@after::text IS NULL OR r.name > @after)
            ORDER BY r.name
            LIMIT @take
            """;
        var kindName = kind is { } k ? ResourceKinds.Name(k) : null;
        return [.. (await conn.QueryAsync<ResourceRow>(new CommandDefinition(sql, new { group, kind = kindName, after, take }, cancellationToken: ct)))
            .Select(r => r.ToResource())];
    }

    /// <summary>
    /// The next <paramref name="take"/> resources after id <paramref name="after"/> (all, or the named), for planning: keyset
    /// paging keeps memory flat. Their <see cref="Resource.Sources"/> are left empty: planning never reads them, and their
    /// subquery (an index probe and a jsonb aggregate per resource) was a cost of every planned resource.
    /// </summary>
    public static async Task<List<Resource>> NextBatchAsync(NpgsqlDataSource db, string[]? names, int after, int take, CancellationToken ct)
    {
        var sql = $"""
            SELECT {OwnColumns}
            FROM resources r
            WHERE r.id > @after AND (@names::text[] IS NULL OR r.name = ANY(@names))
            ORDER BY r.id
            LIMIT @take
            """;
        await using var conn = await db.OpenConnectionAsync(ct);
        return [.. (await conn.QueryAsync<ResourceRow>(new CommandDefinition(sql, new { names, after, take }, cancellationToken: ct))).Select(r => r.ToResource())];
    }

    /// <summary>Which of <paramref name="names"/> name a resource.</summary>
    public static async Task<HashSet<string>> KnownAsync(NpgsqlConnection conn, IReadOnlyCollection<string> names, CancellationToken ct, NpgsqlTransaction? tx = null) =>
        (await conn.QueryAsync<string>(new CommandDefinition(
            "SELECT name FROM resources WHERE name = ANY(@names)", new { names = names.ToArray() }, tx, cancellationToken: ct))).ToHashSet(StringComparer.Ordinal);

    /// <summary>The first of <paramref name="names"/> that no resource has, or null when all exist.</summary>
    public static async Task<string?> FirstUnknownAsync(NpgsqlConnection conn, IReadOnlyCollection<string> names, CancellationToken ct) =>
        await KnownAsync(conn, names, ct) is var known ? names.FirstOrDefault(n => !known.Contains(n)) : null;

    /// <summary>
    /// Creates the <paramref name="resources"/> that do not exist yet (ids and timestamps of the records are ignored), in name
    /// order so that two imports creating the same resources lock them in the same order. Each policy is validated here, at the door.
    /// </summary>
    public static async Task RegisterAsync(NpgsqlConnection conn, NpgsqlTransaction tx, IEnumerable<Resource> resources, DateTimeOffset now, CancellationToken ct)
    {
        const string register = """
            INSERT INTO resources (name, kind, "group", load_metric, policy, policy_problems, created_at, updated_at)
            VALUES (@Name, @Kind, @Group, @LoadMetric, @Policy::jsonb, @Problems, @now, @now)
            ON CONFLICT (name) DO NOTHING
            """;
        foreach (var r in resources.OrderBy(r => r.Name, StringComparer.Ordinal))
        {
            await conn.ExecuteAsync(new CommandDefinition(register, new
            {
                r.Name, Kind = ResourceKinds.Name(r.Kind), r.Group, r.LoadMetric, Policy = r.StoredPolicy,
                Problems = ResourcePolicy.Problems(r.StoredPolicy, r.Kind), now,
            }, tx, cancellationToken: ct));
        }
    }

    /// <summary>The id of the resource named <paramref name="name"/>, or null.</summary>
    public static Task<int?> IdAsync(NpgsqlConnection conn, string name, CancellationToken ct, NpgsqlTransaction? tx = null) =>
        conn.ExecuteScalarAsync<int?>(new CommandDefinition("SELECT id FROM resources WHERE name = @name", new { name }, tx, cancellationToken: ct));
}

/// <summary>A <c>resources</c> row as Dapper maps <see cref="ResourceStore.Columns"/> (by name); only <see cref="ToResource"/> leaves it.</summary>
public class ResourceRow
{
    public int Id { get; init; }
    public string Name { get; init; } = "";
    public string Kind { get; init; } = "";
    public string Group { get; init; } = "";
    public string LoadMetric { get; init; } = "";
    public string Policy { get; init; } = "{}";
    public string[]? PolicyProblems { get; init; }
    public DateTime CreatedAt { get; init; }
    public DateTime UpdatedAt { get; init; }
    public string? Sources { get; init; }

    public Resource ToResource()
    {
        var kind = ResourceKinds.Parse(Kind);
        var (policy, problems) = ResourcePolicy.Read(Policy, kind, PolicyProblems);
        return new(Id, Name, kind, Group, LoadMetric, policy, problems, Policy, CreatedAt, UpdatedAt)
        {
            Sources = Forecaster.Api.Sources.SourceDefinitions.ReadOwnSources(Sources),
        };
    }
}
