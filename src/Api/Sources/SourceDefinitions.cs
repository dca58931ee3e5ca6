using System.Text.Json;
using System.Text.RegularExpressions;
using Dapper;
using Forecaster.Api.Resources;
using Forecaster.Api.Samples;
using Npgsql;

namespace Forecaster.Api.Sources;

/// <summary>A source's definition and pull state, as `GET /api/v1/resources/{name}` shows it under `sources.METRIC`.</summary>
/// <param name="Origin">`resource` (its own) or `group` (its group's template, resolved).</param>
/// <param name="Watermark">Points up to here are stored; the next pull starts shortly before. Null until the backfill succeeds.</param>
public sealed record SourceView(string Query, string Server, string Origin, DateTimeOffset? Watermark, DateTimeOffset? LastSuccessAt,
    string? LastError, DateTimeOffset? LastErrorAt, int Failures);

/// <summary>
/// The owner of `resource_sources`, `group_sources` and `source_pulls`: parses and validates source maps at the door,
/// stores them, and keeps one pull row per (resource, metric) that some source feeds.
/// </summary>
public static partial class SourceDefinitions
{
    public const int MaxQueryLength = 8192;

    [GeneratedRegex(@"\{\{\s*([^}]*?)\s*\}\}")]
    private static partial Regex Placeholder();

    /// <summary>
    /// Parses `{"qps": "PromQL", "cpu_cores": {"query": "...", "server": "thanos"}}`; errors are keyed by field
    /// (`sources.qps`). Templates (`{{name}}`, `{{group}}`) are allowed only when <paramref name="templates"/> is set.
    /// </summary>
    public static Dictionary<string, SourceSpec> Parse(JsonElement sources, PrometheusOptions options, bool templates, Dictionary<string, string[]> errors)
    {
        var result = new Dictionary<string, SourceSpec>(StringComparer.Ordinal);
        if (sources.ValueKind != JsonValueKind.Object)
        {
            errors["sources"] = ["must be an object mapping a metric name to a PromQL query"];
            return result;
        }
        foreach (var p in sources.EnumerateObject())
        {
            var field = $"sources.{p.Name}";
            if (SampleRules.CheckMetric(p.Name) is { } bad)
            {
                errors[field] = [$"the metric name {bad}"];
                continue;
            }
            string? query = null, server = "";
            if (p.Value.ValueKind == JsonValueKind.String)
            {
                query = p.Value.GetString();
            }
            else if (p.Value.ValueKind == JsonValueKind.Object)
            {
                query = p.Value.TryGetProperty("query", out var q) && q.ValueKind == JsonValueKind.String ? q.GetString() : null;
                if (p.Value.TryGetProperty("server", out var s))
                {
                    server = s.ValueKind == JsonValueKind.String ? s.GetString()! : null;
                }
            }
            if (server is null)
            {
                errors[$"{field}.server"] = ["must be a string naming a server under Forecaster:Prometheus:Servers"];
                continue;
            }
            if (server == "default")
            {
                server = "";
            }
            if (string.IsNullOrWhiteSpace(query))
            {
                errors[field] = ["must be a PromQL query (a string, or {\"query\": ..., \"server\": ...})"];
                continue;
            }
            if (query.Length > MaxQueryLength)
            {
                errors[field] = [$"is longer than {MaxQueryLength} characters"];
                continue;
            }
            if (options.Server(server) is null)
            {
                errors[server.Length == 0 ? field : $"{field}.server"] = [server.Length == 0
                    ? "needs a Prometheus server, but none is configured (set Forecaster:Prometheus:Url)"
                    : $"names server '{server}', which is not configured under Forecaster:Prometheus:Servers (known: {string.Join(", ", options.AllServers().Select(x => PrometheusOptions.Display(x.Name)))})"];
                continue;
            }
            if (CheckTemplate(query, templates) is { } templateError)
            {
                errors[field] = [templateError];
                continue;
            }
            result[p.Name] = new SourceSpec(query, server);
        }
        return result;
    }

    /// <summary>Only {{name}} and {{group}}, and only in group templates; a lone `{{` is a typo, not PromQL.</summary>
    static string? CheckTemplate(string query, bool templates)
    {
        foreach (Match m in Placeholder().Matches(query))
        {
            var key = m.Groups[1].Value;
            if (!templates)
            {
                return $"contains the placeholder {m.Value}; placeholders are resolved only in group sources (PUT /api/v1/groups/{{group}}/sources)";
            }
            if (key is not ("name" or "group"))
            {
                return $"contains the unknown placeholder {m.Value}; use {{{{name}}}} (the resource's name) or {{{{group}}}}";
            }
        }
        var rest = Placeholder().Replace(query, "");
        return rest.Contains("{{", StringComparison.Ordinal) || rest.Contains("}}", StringComparison.Ordinal)
            ? "has an unclosed placeholder ('{{' or '}}' without its partner); write {{name}} or {{group}}"
            : null;
    }

    /// <summary>A group template resolved for one resource (PromQL string escaping for the group, which may hold any character).</summary>
    public static string Resolve(string template, string name, string group) =>
        Placeholder().Replace(template, m => m.Groups[1].Value == "name" ? name : group.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal));

    /// <summary>Replaces a resource's own sources (inside the caller's transaction).</summary>
    public static async Task SaveForResourceAsync(NpgsqlConnection conn, NpgsqlTransaction tx, int resourceId, IReadOnlyDictionary<string, SourceSpec> sources, DateTimeOffset now, CancellationToken ct)
    {
        const string replace = """
            DELETE FROM resource_sources WHERE resource_id = @resourceId AND NOT (metric = ANY(@metrics));
            INSERT INTO resource_sources (resource_id, metric, query, server, updated_at)
            SELECT @resourceId, m, q, s, @now FROM unnest(@metrics, @queries, @servers) AS x(m, q, s)
            ON CONFLICT (resource_id, metric) DO UPDATE SET query = EXCLUDED.query, server = EXCLUDED.server, updated_at = EXCLUDED.updated_at
            WHERE (resource_sources.query, resource_sources.server) IS DISTINCT FROM (EXCLUDED.query, EXCLUDED.server);
            """;
        await conn.ExecuteAsync(new CommandDefinition(replace, Args(resourceId, sources, now), tx, cancellationToken: ct));
        await ReconcileAsync(conn, tx, resourceId, null, now, ct);
    }

    /// <summary>Replaces a group's templates and brings its resources' pulls in line.</summary>
    public static async Task SaveForGroupAsync(NpgsqlConnection conn, NpgsqlTransaction tx, string group, IReadOnlyDictionary<string, SourceSpec> sources, DateTimeOffset now, CancellationToken ct)
    {
        const string replace = """
            DELETE FROM group_sources WHERE "group" = @group AND NOT (metric = ANY(@metrics));
            INSERT INTO group_sources ("group", metric, query, server, updated_at)
            SELECT @group, m, q, s, @now FROM unnest(@metrics, @queries, @servers) AS x(m, q, s)
            ON CONFLICT ("group", metric) DO UPDATE SET query = EXCLUDED.query, server = EXCLUDED.server, updated_at = EXCLUDED.updated_at
            WHERE (group_sources.query, group_sources.server) IS DISTINCT FROM (EXCLUDED.query, EXCLUDED.server);
            """;
        await conn.ExecuteAsync(new CommandDefinition(replace, new
        {
            group,
            metrics = sources.Keys.ToArray(),
            queries = sources.Values.Select(s => s.Query).ToArray(),
            servers = sources.Values.Select(s => s.Server).ToArray(),
            now,
        }, tx, cancellationToken: ct));
        await ReconcileAsync(conn, tx, null, group, now, ct);
    }

    static object Args(int resourceId, IReadOnlyDictionary<string, SourceSpec> sources, DateTimeOffset now) => new
    {
        resourceId,
        metrics = sources.Keys.ToArray(),
        queries = sources.Values.Select(s => s.Query).ToArray(),
        servers = sources.Values.Select(s => s.Server).ToArray(),
        now,
    };

    /// <summary>
    /// A resource's own sources as one JSON object (metric → {query, server}; null when it has none), for
    /// <see cref="ResourceStore.Columns"/>: the resource record carries them, this module owns the table and its SQL.
    /// </summary>
    public const string OwnSourcesColumn = """
        (SELECT jsonb_object_agg(rs.metric, jsonb_build_object('query', rs.query, 'server', rs.server))
         FROM resource_sources rs WHERE rs.resource_id = r.id)::text
        """;

    /// <summary>The <see cref="OwnSourcesColumn"/> text as a map (empty for null).</summary>
    public static IReadOnlyDictionary<string, SourceSpec> ReadOwnSources(string? json) =>
        json is null
            ? Resource.NoSources
            : JsonSerializer.Deserialize<Dictionary<string, SourceSpec>>(json, JsonSerializerOptions.Web)!
                .ToDictionary(x => x.Key, x => x.Value, StringComparer.Ordinal);

    /// <summary>A group's templates, as stored.</summary>
    public static async Task<Dictionary<string, SourceSpec>> GroupSourcesAsync(NpgsqlConnection conn, string group, CancellationToken ct) =>
        (await conn.QueryAsync<(string Metric, string Query, string Server)>(new CommandDefinition(
            """SELECT metric, query, server FROM group_sources WHERE "group" = @group ORDER BY metric""", new { group }, cancellationToken: ct)))
        .ToDictionary(r => r.Metric, r => new SourceSpec(r.Query, r.Server), StringComparer.Ordinal);

    /// <summary>
    /// Makes `source_pulls` match the effective sources (a resource's own, else its group's resolved template) of one
    /// resource, one group, or everything (both null). A new or changed query resets the watermark, so its history is
    /// backfilled; a removed source stops being pulled (its stored samples stay).
    /// </summary>
    public static Task ReconcileAsync(NpgsqlConnection conn, NpgsqlTransaction? tx, int? resourceId, string? group, DateTimeOffset now, CancellationToken ct)
    {
        // Templates resolve in SQL so that a group of thousands of resources is one statement; the group is escaped
        // for a PromQL string literal (names cannot hold quotes or backslashes), then its backslashes doubled again for
        // regexp_replace's replacement text. Mirrors Resolve above.
        const string reconcile = """
            WITH scope AS (
                SELECT id, name, "group" FROM resources
                WHERE (@resourceId::int IS NULL OR id = @resourceId) AND (@group::text IS NULL OR "group" = @group)
            ), effective AS (
                SELECT r.id AS resource_id, rs.metric, rs.query, rs.server, 'resource' AS origin
                FROM scope r JOIN resource_sources rs ON rs.resource_id = r.id
                UNION ALL
                SELECT r.id, gs.metric,
                       regexp_replace(regexp_replace(gs.query, '\{\{\s*name\s*\}\}', r.name, 'g'),
                                      '\{\{\s*group\s*\}\}', replace(replace(replace(r."group", '\', '\\'), '"', '\"'), '\', '\\'), 'g'),
                       gs.server, 'group'
                FROM scope r JOIN group_sources gs ON gs."group" = r."group"
                WHERE NOT EXISTS (SELECT 1 FROM resource_sources rs WHERE rs.resource_id = r.id AND rs.metric = gs.metric)
            ), removed AS (
                DELETE FROM source_pulls p
                WHERE p.resource_id IN (SELECT id FROM scope)
                  AND NOT EXISTS (SELECT 1 FROM effective e WHERE e.resource_id = p.resource_id AND e.metric = p.metric)
            )
            INSERT INTO source_pulls (resource_id, metric, query, server, origin, due_at)
            SELECT resource_id, metric, query, server, origin, @now FROM effective
            ON CONFLICT (resource_id, metric) DO UPDATE
               SET query = EXCLUDED.query, server = EXCLUDED.server, origin = EXCLUDED.origin,
                   watermark = NULL, due_at = EXCLUDED.due_at, last_error = NULL, last_error_at = NULL, failures = 0
             WHERE (source_pulls.query, source_pulls.server, source_pulls.origin) IS DISTINCT FROM (EXCLUDED.query, EXCLUDED.server, EXCLUDED.origin)
            """;
        return conn.ExecuteAsync(new CommandDefinition(reconcile, new { resourceId, group, now }, tx, cancellationToken: ct));
    }

    /// <summary>The pull state of one resource's sources, keyed by metric.</summary>
    public static async Task<IReadOnlyDictionary<string, SourceView>> ViewsAsync(NpgsqlConnection conn, int resourceId, CancellationToken ct)
    {
        const string state = """
            SELECT metric AS Metric, query AS Query, server AS Server, origin AS Origin, watermark AS Watermark,
                   last_success_at AS LastSuccessAt, last_error AS LastError, last_error_at AS LastErrorAt, failures AS Failures
            FROM source_pulls WHERE resource_id = @resourceId ORDER BY metric
            """;
        var rows = await conn.QueryAsync<SourceRow>(new CommandDefinition(state, new { resourceId }, cancellationToken: ct));
        return rows.ToDictionary(r => r.Metric, r => new SourceView(r.Query, PrometheusOptions.Display(r.Server), r.Origin,
            Utc(r.Watermark), Utc(r.LastSuccessAt), r.LastError, Utc(r.LastErrorAt), r.Failures), StringComparer.Ordinal);
    }

    static DateTimeOffset? Utc(DateTime? t) => t is { } v ? new DateTimeOffset(DateTime.SpecifyKind(v, DateTimeKind.Utc)) : null;

    sealed class SourceRow
    {
        public string Metric { get; init; } = "";
        public string Query { get; init; } = "";
        public string Server { get; init; } = "";
        public string Origin { get; init; } = "";
        public DateTime? Watermark { get; init; }
        public DateTime? LastSuccessAt { get; init; }
        public string? LastError { get; init; }
        public DateTime? LastErrorAt { get; init; }
        public int Failures { get; init; }
    }
}
