using System.Globalization;
using System.Text.Json;

namespace Forecaster.Planner;

/// <summary>One thing wrong with a policy: the JSON path of the field (<c>policy.windows[0].timeZone</c>) and why.</summary>
public sealed record PolicyProblem(string Field, string Message);

/// <summary>
/// Checks a resource's <c>policy</c> JSON before it is stored and returns every problem, not just the first,
/// so a PUT can answer with one validation problem naming each bad field.
/// Unknown properties are rejected (with a "did you mean" for a wrong case): a misspelt <c>maxReplica</c> that is
/// silently ignored would leave a service unbounded, which is worse than a 400.
/// </summary>
public static class PolicyValidator
{
    private const string Root = "policy";

    private static readonly string[] ServiceOnly = ["capacityPerReplica"];

    private static readonly string[] JobOnly = ["backlogMetric", "catchUpMinutes", "restartMinutes", "capacityPerSubtask", "maxParallelism", "vertices"];

    private static readonly string[] PolicyFields =
    [
        "loadMetric", "capacityPerReplica", "replicaCpu", "targetUtilization", "minReplicas", "maxReplicas", "forecastBound",
        "maxStepUp", "maxStepDown", "tolerance", "scaleDownDelayHours", "leadMinutes", "windows", "maxBreach",
        "maxBreachBuffer", "mode", "overcommitBuffer", "minCpu", "minMemory", "cpuGranularity", "memoryGranularity",
        "staleAfterHours", "risk", "requests", .. JobOnly,
    ];

    /// <summary>More windows than hours in a week says nothing more, and each one costs every planning run.</summary>
    public const int MaxWindows = 100;

    private static readonly string[] RequestsFields = ["rule", "percentile", "halfLifeHours", "containerName"];

    private static readonly string[] WindowFields = ["days", "from", "to", "timeZone", "minReplicas", "maxReplicas", "targetUtilization"];

    /// <summary>All problems of <paramref name="policy"/> for a resource of <paramref name="kind"/>; empty when it is valid.</summary>
    public static IReadOnlyList<PolicyProblem> Validate(JsonElement policy, ResourceKind kind)
    {
        var problems = new List<PolicyProblem>();
        if (policy.ValueKind != JsonValueKind.Object)
        {
            problems.Add(new(Root, "must be a JSON object"));
            return problems;
        }
        var fields = Fields(policy, Root, PolicyFields, problems);
        var check = new Checker(fields, Root, problems);

        check.Text("loadMetric");
        check.Text("backlogMetric");
        check.Number("capacityPerReplica", min: 0, minExclusive: true);
        check.Number("capacityPerSubtask", min: 0, minExclusive: true);
        check.Number("replicaCpu", min: 0, minExclusive: true, max: 1024);
        check.Number("targetUtilization", min: 0, minExclusive: true, max: 1, nullable: false);
        var min = check.Integer("minReplicas", min: kind == ResourceKind.Job ? 1 : 0);
        var max = check.Integer("maxReplicas", min: 1);
        check.Choice("forecastBound", ["point", "upper"]);
        check.Integer("maxStepUp", min: 1);
        check.Integer("maxStepDown", min: 1);
        check.Number("tolerance", min: 0, max: 1, maxExclusive: true, nullable: false);
        check.Integer("scaleDownDelayHours", min: 0, max: 168, nullable: false);
        check.Integer("leadMinutes", min: 0, max: 240, nullable: false);
        var breach = check.Choice("maxBreach", ["honor", "exceed"]);
        check.Number("maxBreachBuffer", min: 0, max: 10);
        check.Choice("mode", ["scale", "forecastOnly"]);
        check.Number("overcommitBuffer", min: 0, max: 10, nullable: false);
        check.Number("minCpu", min: 0, minExclusive: true, max: 1024);
        check.Long("minMemory", min: 0);
        check.Number("cpuGranularity", min: 0, minExclusive: true, max: 64, nullable: false);
        check.Long("memoryGranularity", min: 1, nullable: false);
        check.Number("staleAfterHours", min: 0, minExclusive: true, max: 24 * 30, nullable: false);
        check.Integer("catchUpMinutes", min: 1, max: 24 * 60);
        check.Integer("restartMinutes", min: 0, max: 24 * 60);
        var maxParallelism = check.Integer("maxParallelism", min: 1, max: 32768);

        foreach (var name in kind == ResourceKind.Job ? ServiceOnly : JobOnly)
        {
            if (fields.ContainsKey(name))
            {
                problems.Add(new($"{Root}.{name}", kind == ResourceKind.Job
                    ? "applies only to services; for a streaming job use capacityPerSubtask"
                    : "applies only to streaming jobs"));
            }
        }
        if (min is int lo && max is int hi && lo > hi)
        {
            problems.Add(new($"{Root}.minReplicas", $"minReplicas {lo} is greater than maxReplicas {hi}"));
        }
        if (kind == ResourceKind.Job && max is int m && maxParallelism is int mp && m > mp)
        {
            problems.Add(new($"{Root}.maxReplicas", $"maxReplicas {m} is greater than maxParallelism {mp}: parallelism cannot exceed the key groups"));
        }
        if (fields.TryGetValue("maxBreachBuffer", out var buffer) && buffer.ValueKind != JsonValueKind.Null && breach != "exceed")
        {
            problems.Add(new($"{Root}.maxBreachBuffer", "only applies with maxBreach \"exceed\""));
        }
        if (fields.TryGetValue("windows", out var windows))
        {
            Windows(windows, min, max, problems);
        }
        if (fields.TryGetValue("risk", out var risk) && risk.ValueKind != JsonValueKind.Null)
        {
            Risk(risk, problems);
        }
        if (fields.TryGetValue("requests", out var requests))
        {
            Requests(requests, problems);
        }
        if (fields.TryGetValue("vertices", out var vertices) && kind == ResourceKind.Job)
        {
            Vertices(vertices, problems);
        }
        return problems;
    }

    private static void Risk(JsonElement risk, List<PolicyProblem> problems)
    {
        var at = $"{Root}.risk";
        if (risk.ValueKind != JsonValueKind.Object)
        {
            problems.Add(new(at, "must be an object such as {\"maxUnderProvisionedHoursFraction\": 0.005}"));
            return;
        }
        var fields = Fields(risk, at, ["maxUnderProvisionedHoursFraction"], problems);
        if (!fields.TryGetValue("maxUnderProvisionedHoursFraction", out var value) || value.ValueKind == JsonValueKind.Null)
        {
            problems.Add(new($"{at}.maxUnderProvisionedHoursFraction", "is required"));
            return;
        }
        new Checker(fields, at, problems).Number("maxUnderProvisionedHoursFraction", min: 0, minExclusive: true, max: 0.5, nullable: false);
    }

    /// <summary>The sizing rule of requests per replica; percentile and half-life only mean something with rule percentile.</summary>
    private static void Requests(JsonElement requests, List<PolicyProblem> problems)
    {
        var at = $"{Root}.requests";
        if (requests.ValueKind != JsonValueKind.Object)
        {
            problems.Add(new(at, "must be an object such as {\"rule\":\"percentile\",\"percentile\":0.9,\"halfLifeHours\":24}"));
            return;
        }
        var fields = Fields(requests, at, RequestsFields, problems);
        var check = new Checker(fields, at, problems);
        var rule = check.Choice("rule", ["weeklyPeak", "percentile"]);
        var percentile = check.Number("percentile", min: 0, minExclusive: true, max: 1);
        var halfLife = check.Number("halfLifeHours", min: 0, minExclusive: true, max: 24 * 30);
        check.Text("containerName");
        if (rule != "percentile")
        {
            foreach (var (name, value) in new[] { ("percentile", percentile), ("halfLifeHours", halfLife) })
            {
                if (value is not null)
                {
                    problems.Add(new($"{at}.{name}", "only applies with rule \"percentile\""));
                }
            }
        }
    }

    /// <summary>Flink job vertex ids: 32 hex digits each (a JobVertexID), none repeated.</summary>
    private static void Vertices(JsonElement vertices, List<PolicyProblem> problems)
    {
        var at = $"{Root}.vertices";
        if (vertices.ValueKind == JsonValueKind.Null)
        {
            return;
        }
        if (vertices.ValueKind != JsonValueKind.Array || vertices.GetArrayLength() == 0)
        {
            problems.Add(new(at, "must be a non-empty array of Flink job vertex ids (32 hex digits); omit it to set the whole job's parallelism"));
            return;
        }
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var i = 0;
        foreach (var vertex in vertices.EnumerateArray())
        {
            var path = string.Create(CultureInfo.InvariantCulture, $"{at}[{i++}]");
            var id = vertex.ValueKind == JsonValueKind.String ? vertex.GetString()! : "";
            if (id.Length != 32 || !id.All(char.IsAsciiHexDigit))
            {
                problems.Add(new(path, "must be a Flink job vertex id: 32 hex digits"));
            }
            else if (!seen.Add(id))
            {
                problems.Add(new(path, $"repeats vertex {id}"));
            }
        }
    }

    private static void Windows(JsonElement windows, int? policyMin, int? policyMax, List<PolicyProblem> problems)
    {
        var path = $"{Root}.windows";
        if (windows.ValueKind != JsonValueKind.Array)
        {
            problems.Add(new(path, "must be an array of windows"));
            return;
        }
        if (windows.GetArrayLength() > MaxWindows)
        {
            problems.Add(new(path, $"has {windows.GetArrayLength()} windows; at most {MaxWindows} are allowed"));
            return;
        }
        var i = 0;
        foreach (var window in windows.EnumerateArray())
        {
            var at = string.Create(CultureInfo.InvariantCulture, $"{path}[{i++}]");
            if (window.ValueKind != JsonValueKind.Object)
            {
                problems.Add(new(at, "must be an object with days, from, to and timeZone"));
                continue;
            }
            var fields = Fields(window, at, WindowFields, problems);
            var check = new Checker(fields, at, problems);
            foreach (var required in (string[])["days", "from", "to", "timeZone"])
            {
                if (!fields.TryGetValue(required, out var value) || value.ValueKind == JsonValueKind.Null)
                {
                    problems.Add(new($"{at}.{required}", "is required"));
                }
            }
            check.Parsed("days", s => DaySet.TryParse(s, out _), "must be days such as \"Mon-Fri\", \"Sat,Sun\" or \"Mon\"");
            var from = check.Parsed("from", s => ClockTime.TryParse(s, out var t) && t.Minutes < ClockTime.MinutesPerDay, "must be a time \"HH:mm\" from 00:00 to 23:59");
            var to = check.Parsed("to", s => ClockTime.TryParse(s, out _), "must be a time \"HH:mm\" from 00:00 to 24:00");
            check.Parsed("timeZone", s => TimeZoneInfo.TryFindSystemTimeZoneById(s, out _), "must be an IANA time zone id such as \"Europe/Berlin\"");
            if (from is not null && to is not null && ClockTime.Parse(from) == ClockTime.Parse(to))
            {
                problems.Add(new($"{at}.to", "equals from: the window would be empty; use 00:00-24:00 for a whole day"));
            }
            var min = check.Integer("minReplicas", min: 0);
            var max = check.Integer("maxReplicas", min: 1);
            var target = check.Number("targetUtilization", min: 0, minExclusive: true, max: 1);
            if ((min ?? policyMin) is int lo && (max ?? policyMax) is int hi && lo > hi)
            {
                problems.Add(new($"{at}.minReplicas", $"minReplicas {lo} is greater than maxReplicas {hi} inside the window"));
            }
            if (!fields.ContainsKey("minReplicas") && !fields.ContainsKey("maxReplicas") && target is null)
            {
                problems.Add(new(at, "overrides nothing: set minReplicas, maxReplicas or targetUtilization"));
            }
        }
    }

    private static bool TryName(JsonProperty property, out string name)
    {
        try
        {
            name = property.Name;
            return true;
        }
        catch (InvalidOperationException)
        {
            name = "";
            return false;
        }
    }

    /// <summary>The object's properties by name; unknown and repeated ones are reported.</summary>
    private static Dictionary<string, JsonElement> Fields(JsonElement obj, string at, string[] known, List<PolicyProblem> problems)
    {
        var fields = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var property in obj.EnumerateObject())
        {
            // A name escaped as a lone surrogate ("\ud800") cannot be read as a string: report it instead of throwing.
            if (!TryName(property, out _))
            {
                problems.Add(new(at, "has a property name that is not valid Unicode text (a lone surrogate)"));
                continue;
            }
            if (!known.Contains(property.Name, StringComparer.Ordinal))
            {
                var near = known.FirstOrDefault(k => string.Equals(k, property.Name, StringComparison.OrdinalIgnoreCase));
                problems.Add(new($"{at}.{property.Name}", near is not null
                    ? $"unknown property; did you mean \"{near}\"? (names are case-sensitive)"
                    : $"unknown property; known properties are {string.Join(", ", known)}"));
            }
            else if (!fields.TryAdd(property.Name, property.Value))
            {
                problems.Add(new($"{at}.{property.Name}", "appears more than once"));
            }
        }
        return fields;
    }

    /// <summary>Type and range checks of one object's fields; each returns the value when it is valid.</summary>
    private sealed class Checker(Dictionary<string, JsonElement> fields, string at, List<PolicyProblem> problems)
    {
        private bool TryGet(string name, bool nullable, out JsonElement value)
        {
            if (!fields.TryGetValue(name, out value))
            {
                return false;
            }
            if (value.ValueKind == JsonValueKind.Null)
            {
                if (!nullable)
                {
                    Problem(name, "must not be null; omit it to get the default");
                }
                return false;
            }
            return true;
        }

        private void Problem(string name, string message) => problems.Add(new($"{at}.{name}", message));

        public void Text(string name)
        {
            if (TryGet(name, nullable: true, out var value) && (value.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(value.GetString())))
            {
                Problem(name, "must be a non-empty string");
            }
        }

        public string? Choice(string name, string[] allowed)
        {
            if (!TryGet(name, nullable: false, out var value))
            {
                return null;
            }
            var text = value.ValueKind == JsonValueKind.String ? value.GetString() : null;
            if (text is null || !allowed.Contains(text, StringComparer.Ordinal))
            {
                Problem(name, $"must be one of {string.Join(", ", allowed.Select(a => $"\"{a}\""))}");
                return null;
            }
            return text;
        }

        public string? Parsed(string name, Func<string, bool> parse, string message)
        {
            if (!TryGet(name, nullable: true, out var value))
            {
                return null;
            }
            if (value.ValueKind != JsonValueKind.String || !parse(value.GetString()!))
            {
                Problem(name, message);
                return null;
            }
            return value.GetString();
        }

        public double? Number(string name, double min, double max = double.MaxValue, bool minExclusive = false,
            bool maxExclusive = false, bool nullable = true)
        {
            if (!TryGet(name, nullable, out var value))
            {
                return null;
            }
            if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out var x) || !double.IsFinite(x))
            {
                Problem(name, "must be a number");
                return null;
            }
            var tooLow = minExclusive ? x <= min : x < min;
            var tooHigh = maxExclusive ? x >= max : x > max;
            if (tooLow || tooHigh)
            {
                var lower = min.ToString(CultureInfo.InvariantCulture) + (minExclusive ? " (exclusive)" : "");
                var upper = max == double.MaxValue ? "" : $" and at most {max.ToString(CultureInfo.InvariantCulture)}{(maxExclusive ? " (exclusive)" : "")}";
                Problem(name, $"must be at least {lower}{upper}");
                return null;
            }
            return x;
        }

        public int? Integer(string name, int min, int max = int.MaxValue, bool nullable = true)
        {
            var x = Long(name, min, max, nullable);
            return x is long v ? (int)v : null;
        }

        public long? Long(string name, long min, long max = long.MaxValue, bool nullable = true)
        {
            if (!TryGet(name, nullable, out var value))
            {
                return null;
            }
            if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt64(out var x))
            {
                Problem(name, "must be a whole number");
                return null;
            }
            if (x < min || x > max)
            {
                Problem(name, max == long.MaxValue
                    ? string.Create(CultureInfo.InvariantCulture, $"must be at least {min}")
                    : string.Create(CultureInfo.InvariantCulture, $"must be between {min} and {max}"));
                return null;
            }
            return x;
        }
    }
}
