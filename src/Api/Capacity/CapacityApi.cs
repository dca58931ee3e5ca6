using Dapper;
using Forecaster.Api.Errors;
using Forecaster.Api.Security;
using Forecaster.Planner;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;
using static Forecaster.Planner.Hours;

namespace Forecaster.Api.Capacity;

/// <summary>
/// The fleet view: per hour, planned cpu and memory (replicas × request per replica, from the active plans) of a group
/// against its quota (free capacity for co-located offline work, or the shortfall), and of the whole fleet. The fleet has
/// no quota of its own: its free and shortfall figures are absent.
/// </summary>
public sealed record CapacityView(
    DateTimeOffset From, DateTimeOffset To, string? Group, CapacityQuota? Quota, IReadOnlyList<CapacityHour>? Hours, IReadOnlyList<CapacityHour> Fleet);

/// <summary>/api/v1/capacity: planned requests summed per hour for a group and the fleet.</summary>
public static class CapacityApi
{
    /// <summary>The widest range one request may ask for: the longest plan horizon.</summary>
    public const int MaxHours = 24 * 14;

    public static IEndpointRouteBuilder MapCapacity(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/v1/capacity").WithTags("Capacity");

        group.MapGet("/", GetCapacity)
            .WithName(nameof(GetCapacity))
            .WithSummary("Planned cpu and memory per hour for a group (against its quota: free and shortfall) and for the whole fleet; from/to default to the next 48 hours")
            .RequireAuthorization(ApiKeyExtensions.ReadPolicy)
            .ProducesProblem(StatusCodes.Status400BadRequest);
        return app;
    }

    static async Task<Results<Ok<CapacityView>, ValidationProblem>> GetCapacity(
        NpgsqlDataSource db, TimeProvider clock, string? group, DateTimeOffset? from, DateTimeOffset? to, CancellationToken ct)
    {
        if ((ProblemHandling.OutOfRange("from", from) ?? ProblemHandling.OutOfRange("to", to)) is { } bad)
        {
            return bad;
        }
        var now = clock.GetUtcNow();
        var start = FloorHour(from ?? now);
        var end = to ?? start.AddHours(48);
        if (end <= start)
        {
            return ProblemHandling.Invalid("to", "must be after from");
        }
        var hours = (int)Math.Ceiling((end - start).TotalHours);
        if (hours > MaxHours)
        {
            return ProblemHandling.Invalid("to", $"the range is {hours} hours; at most {MaxHours} are allowed");
        }
        // Each active plan stores count × request per hour as arrays from horizon_start: unnest them instead of opening the steps.
        // The memory sum (numeric) saturates at bigint's maximum rather than failing the request (issue 13).
        const string sums = """
            SELECT p.horizon_start + (h.i - 1) * interval '1 hour' AS hour,
                   coalesce(r."group" = @group, false) AS in_group,
                   sum(h.cpu) AS cpu, least(sum(h.memory), 9223372036854775807)::bigint AS memory, count(*)::int AS resources,
                   count(*) FILTER (WHERE NOT p.requests_known)::int AS without_requests
            FROM plan_current c
            JOIN plan_versions p ON p.id = c.version_id
            JOIN resources r ON r.id = c.resource_id
            CROSS JOIN LATERAL unnest(p.cpu_hours, p.memory_hours) WITH ORDINALITY AS h(cpu, memory, i)
            WHERE p.horizon_start < @end AND p.horizon_start + p.horizon_hours * interval '1 hour' > @start
              AND p.horizon_start + (h.i - 1) * interval '1 hour' >= @start
              AND p.horizon_start + (h.i - 1) * interval '1 hour' < @end
            GROUP BY 1, 2
            """;
        const string quota = """SELECT cpu_cores AS Cpu, memory_bytes AS Memory FROM group_quotas WHERE "group" = @group""";
        await using var conn = await db.OpenConnectionAsync(ct);
        var rows = (await conn.QueryAsync<(DateTime Hour, bool InGroup, double Cpu, long Memory, int Resources, int WithoutRequests)>(
            new CommandDefinition(sums, new { group, start, end }, cancellationToken: ct))).ToList();
        var groupQuota = group is null ? null
            : await conn.QuerySingleOrDefaultAsync<CapacityQuota>(new CommandDefinition(quota, new { group }, cancellationToken: ct));

        var fleet = Hours(start, hours, rows, null);
        var groupHours = group is null ? null : Hours(start, hours, rows.Where(r => r.InGroup), groupQuota);
        return TypedResults.Ok(new CapacityView(start, start.AddHours(hours), group, groupQuota, groupHours, fleet));
    }

    static CapacityHour[] Hours(
        DateTimeOffset start, int count, IEnumerable<(DateTime Hour, bool InGroup, double Cpu, long Memory, int Resources, int WithoutRequests)> rows, CapacityQuota? quota)
    {
        var cpu = new double[count];
        var memory = new long[count];
        var resources = new int[count];
        var without = new int[count];
        foreach (var r in rows)
        {
            var i = (int)((new DateTimeOffset(r.Hour, TimeSpan.Zero) - start).Ticks / TimeSpan.TicksPerHour);
            cpu[i] += r.Cpu;
            memory[i] += r.Memory;
            resources[i] += r.Resources;
            without[i] += r.WithoutRequests;
        }
        return [.. Enumerable.Range(0, count).Select(i => new CapacityHour(
            start.AddHours(i), Math.Round(cpu[i], 6), memory[i], resources[i], without[i], quota?.Cpu, quota?.Memory))];
    }

}
