using Dapper;
using Forecaster.Api.Errors;
using Forecaster.Api.OpenApi;
using Forecaster.Api.Security;
using Forecaster.Planner;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;

namespace Forecaster.Api.Capacity;

/// <summary>Body of PUT /api/v1/groups/{group}/quota: either side may be absent (no quota on it).</summary>
/// <param name="CpuCores">Cores the group's resources may request in total.</param>
/// <param name="MemoryBytes">Bytes the group's resources may request in total.</param>
public sealed record QuotaInput(double? CpuCores, long? MemoryBytes);

/// <summary>A group's stored quota.</summary>
public sealed record QuotaView(string Group, double? CpuCores, long? MemoryBytes, DateTimeOffset UpdatedAt);

/// <summary>
/// /api/v1/groups/{group}/quota: the quota the capacity view compares a group's planned requests with. Stored in the database
/// rather than configuration, so an operator changes it without a restart and every instance sees the same figure.
/// </summary>
public static class GroupsApi
{
    public static IEndpointRouteBuilder MapGroups(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/v1/groups/{group}").WithTags("Capacity");

        group.MapGet("/quota", GetQuota)
            .WithName(nameof(GetQuota))
            .WithSummary("The group's cpu and memory quota")
            .RequireAuthorization(ApiKeyExtensions.ReadPolicy);
        group.MapPut("/quota", PutQuota)
            .WithName(nameof(PutQuota))
            .WithSummary("Set the group's cpu (cores) and memory (bytes) quota; an absent side has no quota")
            .RequireAuthorization(ApiKeyExtensions.WritePolicy)
            .WithRequestExample("""{"cpuCores":400,"memoryBytes":1099511627776}""")
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status401Unauthorized);
        return app;
    }

    const string Select = """SELECT "group" AS Group, cpu_cores AS CpuCores, memory_bytes AS MemoryBytes, updated_at AS UpdatedAt FROM group_quotas WHERE "group" = @group""";

    static async Task<Results<Ok<QuotaView>, ProblemHttpResult>> GetQuota(NpgsqlDataSource db, string group, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        var row = await conn.QuerySingleOrDefaultAsync<QuotaRow>(new CommandDefinition(Select, new { group }, cancellationToken: ct));
        return row is null ? ProblemHandling.NotFound($"Group '{group}' has no quota.") : TypedResults.Ok(row.ToView());
    }

    static async Task<Results<Ok<QuotaView>, ValidationProblem>> PutQuota(
        NpgsqlDataSource db, TimeProvider clock, string group, QuotaInput input, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        if (TextRules.CheckGroup(group, allowEmpty: false) is { } bad)
        {
            errors["group"] = [bad];
        }
        if (input.CpuCores is double cpu && (!double.IsFinite(cpu) || cpu < 0))
        {
            errors["cpuCores"] = ["must be a number of cores, 0 or more"];
        }
        if (input.MemoryBytes is < 0)
        {
            errors["memoryBytes"] = ["must be a number of bytes, 0 or more"];
        }
        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors, detail: string.Join(" ", errors.Select(e => $"{e.Key} {e.Value[0]}.")));
        }
        const string upsert = """
            INSERT INTO group_quotas ("group", cpu_cores, memory_bytes, updated_at) VALUES (@group, @cpu, @memory, @now)
            ON CONFLICT ("group") DO UPDATE SET cpu_cores = EXCLUDED.cpu_cores, memory_bytes = EXCLUDED.memory_bytes, updated_at = EXCLUDED.updated_at
            """;
        await using var conn = await db.OpenConnectionAsync(ct);
        await conn.ExecuteAsync(new CommandDefinition(upsert, new { group, cpu = input.CpuCores, memory = input.MemoryBytes, now = clock.GetUtcNow() }, cancellationToken: ct));
        return TypedResults.Ok((await conn.QuerySingleAsync<QuotaRow>(new CommandDefinition(Select, new { group }, cancellationToken: ct))).ToView());
    }

    sealed record QuotaRow
    {
        public string Group { get; init; } = "";
        public double? CpuCores { get; init; }
        public long? MemoryBytes { get; init; }
        public DateTime UpdatedAt { get; init; }

        public QuotaView ToView() => new(Group, CpuCores, MemoryBytes, new DateTimeOffset(UpdatedAt, TimeSpan.Zero));
    }
}
