using Forecaster.Api.Samples;
using Forecaster.Planner;
using Forecaster.Training.Csv;
using Forecaster.Training.Series;
using Npgsql;

namespace Forecaster.Api.Simulations;

/// <summary>Checks a simulation request and turns it into the series to replay: inline points, or resources' stored load.</summary>
public static class SimulationRequests
{
    /// <summary>Every problem of the body's shape, keyed by field (`series[2].points`, `policy.maxReplicas`); empty when valid.</summary>
    public static Dictionary<string, string[]> Validate(SimulationRequest? request, int maxSeries)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (request is null)
        {
            errors["body"] = ["is required: {\"resources\": [...]} or {\"series\": [...]}, with a policy"];
            return errors;
        }
        if ((request.Resources is null) == (request.Series is null))
        {
            errors["resources"] = ["give either resources (names of stored resources) or series (inline load), not both or neither"];
        }
        if (request.Resources is { } names)
        {
            if (names.Length == 0 || names.Length > maxSeries)
            {
                errors["resources"] = [$"must list between 1 and {maxSeries} resource names"];
            }
            for (var i = 0; i < names.Length; i++)
            {
                if (names[i] is not { } name || !SampleRules.ResourceName().IsMatch(name))
                {
                    errors[$"resources[{i}]"] = [$"'{names[i]}' is not a resource name"];
                }
            }
        }
        if (request.Series is { } series)
        {
            if (series.Length == 0 || series.Length > maxSeries)
            {
                errors["series"] = [$"must hold between 1 and {maxSeries} series"];
            }
            var seen = new HashSet<string>(StringComparer.Ordinal);
            for (var i = 0; i < series.Length; i++)
            {
                if (series[i]?.Name is not { Length: > 0 } name)
                {
                    errors[$"series[{i}].name"] = ["is required"];
                }
                else if (Errors.TextRules.CheckName(name) is { } badName)
                {
                    errors[$"series[{i}].name"] = [badName];
                }
                else if (!seen.Add(name))
                {
                    errors[$"series[{i}].name"] = [$"'{name}' appears twice"];
                }
                if (series[i]?.Points is not { Length: > 0 } points)
                {
                    errors[$"series[{i}].points"] = ["must hold at least one point"];
                    continue;
                }
                // Every point present and dated, and the whole series within a bounded span: a far-off timestamp would
                // otherwise make the hourly grid (and this request's memory) as long as the gap.
                var bad = Array.FindIndex(points, p => p is null || p.Timestamp.Year is < 1970 or > 9000);
                if (bad >= 0)
                {
                    errors[$"series[{i}].points[{bad}]"] = [points[bad] is null ? "is null" : "needs a timestamp between the years 1970 and 9000"];
                    continue;
                }
                var span = points.Max(p => p.Timestamp) - points.Min(p => p.Timestamp);
                if (span > TimeSpan.FromDays(MaxSpanDays))
                {
                    errors[$"series[{i}].points"] = [$"span {span.TotalDays:F0} days; at most {MaxSpanDays} days of load can be replayed"];
                }
            }
        }
        if (request.TrainDays is < 1 or > 400)
        {
            errors["trainDays"] = ["must be between 1 and 400"];
        }
        if (request.Policy is not { } policy)
        {
            errors["policy"] = ["is required: the planner policy applied to every series"];
        }
        else
        {
            foreach (var p in SimulationInputs.ReadPolicy(policy).Problems)
            {
                errors[p.Field] = [p.Message];
            }
        }
        if (errors.Count == 0 && request.Series is { } inline && SimulationInputs.Prepare(Histories(inline), Policy(request)).Problem is { } problem)
        {
            errors["series"] = [problem];
        }
        return errors;
    }

    /// <summary>The policy of a request <see cref="Validate"/> accepted.</summary>
    public static Policy Policy(SimulationRequest request) => SimulationInputs.ReadPolicy(request.Policy!.Value).Policy!;

    /// <summary>The series of a valid request, or why they cannot be replayed (a resource without load samples, say).</summary>
    public static async Task<(IReadOnlyList<ReplaySeries> Series, string? Problem)> LoadAsync(NpgsqlDataSource db, SimulationRequest request, CancellationToken ct)
    {
        var histories = request.Series is { } inline ? Histories(inline) : await StoredLoadAsync(db, request.Resources!, ct);
        return SimulationInputs.Prepare(histories, Policy(request));
    }

    /// <summary>The longest history an inline series may span (two years of hourly load).</summary>
    public const int MaxSpanDays = 731;

    static List<SeriesHistory> Histories(InlineSeries[] series) =>
        [.. series.Select(s => new SeriesHistory(s.Name!, [.. s.Points!.Select(p => new Observation(p.Timestamp.ToUniversalTime(), p.Value ?? double.NaN))]))];

    /// <summary>
    /// Each resource's load metric as hourly means over all its history (PostgreSQL aggregates, as training does); values
    /// beyond SampleRules.AggregateLimit are left out, so the mean cannot overflow.
    /// </summary>
    static async Task<List<SeriesHistory>> StoredLoadAsync(NpgsqlDataSource db, string[] names, CancellationToken ct)
    {
        const string load = """
            SELECT r.name, sa.hour, avg(p.value) AS mean
            FROM resources r
            JOIN series s ON s.resource_id = r.id AND s.metric = r.load_metric
            JOIN samples sa ON sa.series_id = s.id
            CROSS JOIN LATERAL unnest(coalesce(sa.vals, ARRAY[sa.value])) AS p(value)
            WHERE r.name = ANY(@names) AND abs(p.value) <= 1e100
            GROUP BY 1, 2
            ORDER BY 1, 2
            """;
        var byName = names.Distinct(StringComparer.Ordinal).ToDictionary(n => n, n => new SeriesHistory(n, []), StringComparer.Ordinal);
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var cmd = new NpgsqlCommand(load, conn) { CommandTimeout = 600 };
        cmd.Parameters.AddWithValue("names", names);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            byName[reader.GetString(0)].Observations.Add(new Observation(new DateTimeOffset(reader.GetDateTime(1), TimeSpan.Zero), reader.GetDouble(2)));
        }
        return [.. byName.Values];
    }
}
