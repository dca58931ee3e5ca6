using System.Globalization;
using YamlDotNet.RepresentationModel;

namespace Forecaster.Api.Tests.Executors;

/// <summary>One scaling direction of an HPA's behavior (autoscaling/v2 HPAScalingRules).</summary>
public sealed record HpaRules(int StabilizationSeconds, string SelectPolicy, IReadOnlyList<(string Type, int Value, int PeriodSeconds)> Policies);

/// <summary>A trigger as the HPA sees it: an External metric (Value or AverageValue target) or cpu Utilization.</summary>
public sealed record HpaMetric(string Kind, string TargetType, double Target);

/// <summary>The HPA that KEDA creates from a ScaledObject: bounds, metrics, behavior (read from the YAML, nothing assumed).</summary>
public sealed record HpaSpec(int Min, int Max, IReadOnlyList<HpaMetric> Metrics, HpaRules Up, HpaRules Down)
{
    public static HpaSpec FromScaledObject(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        var so = stream.Documents.Select(d => (YamlMappingNode)d.RootNode).Single(d => S(d, "kind") == "ScaledObject");
        var spec = M(so, "spec");
        var behavior = M(M(M(spec, "advanced"), "horizontalPodAutoscalerConfig"), "behavior");
        var metrics = new List<HpaMetric>();
        foreach (YamlMappingNode t in (YamlSequenceNode)spec["triggers"])
        {
            var meta = M(t, "metadata");
            metrics.Add(S(t, "type") switch
            {
                "metrics-api" => new HpaMetric("external", S(t, "metricType"), D(S(meta, "targetValue"))),
                "cpu" => new HpaMetric("cpu", S(t, "metricType"), D(S(meta, "value"))),
                var other => throw new InvalidOperationException($"trigger type {other} is not modelled"),
            });
        }
        return new HpaSpec(int.Parse(S(spec, "minReplicaCount"), CultureInfo.InvariantCulture), int.Parse(S(spec, "maxReplicaCount"), CultureInfo.InvariantCulture),
            metrics, Rules(M(behavior, "scaleUp")), Rules(M(behavior, "scaleDown")));
    }

    static HpaRules Rules(YamlMappingNode r) => new(
        int.Parse(S(r, "stabilizationWindowSeconds"), CultureInfo.InvariantCulture), S(r, "selectPolicy"),
        [.. ((YamlSequenceNode)r["policies"]).Cast<YamlMappingNode>().Select(p => (S(p, "type"), int.Parse(S(p, "value"), CultureInfo.InvariantCulture), int.Parse(S(p, "periodSeconds"), CultureInfo.InvariantCulture)))]);

    static YamlMappingNode M(YamlMappingNode node, string key) => (YamlMappingNode)node[key];

    static string S(YamlMappingNode node, string key) => ((YamlScalarNode)node[key]).Value!;

    static double D(string s) => double.Parse(s, CultureInfo.InvariantCulture);
}

/// <summary>
/// The HPA controller's documented algorithm (kubernetes pkg/controller/podautoscaler: replica_calculator.go and
/// horizontal.go), one sync at a time:
/// <list type="bullet">
/// <item>External, AverageValue: ratio = value / (target × current); within the tolerance keep current, else ceil(value / target).</item>
/// <item>External, Value: ratio = value / target; within the tolerance keep current, else ceil(ratio × ready pods).</item>
/// <item>cpu Utilization: ratio = utilization / target; within the tolerance keep current, else ceil(ratio × ready pods).</item>
/// <item>The maximum over metrics; then the stabilization windows (up: min of recent recommendations, down: max), the
/// rate policies over their periods (selectPolicy Max: the largest change), and minReplicas/maxReplicas.</item>
/// </list>
/// All pods are ready. Tolerance 0.1 (the controller's default).
/// </summary>
public sealed class Hpa(HpaSpec spec, int current)
{
    public const double Tolerance = 0.1;

    readonly List<(double At, int Recommendation)> _recommendations = [];
    readonly List<(double At, int Change)> _ups = [];
    readonly List<(double At, int Change)> _downs = [];

    public int Current { get; private set; } = current;

    /// <summary>One sync at second <paramref name="at"/>: the plan trigger reads <paramref name="planValue"/>, pods use <paramref name="cpuCores"/> in total with <paramref name="requestCores"/> each.</summary>
    public int Sync(double at, double planValue, double cpuCores, double requestCores)
    {
        int desired;
        if (Current > spec.Max)
        {
            desired = spec.Max;
        }
        else if (Current < spec.Min)
        {
            desired = spec.Min;
        }
        else
        {
            desired = spec.Metrics.Max(m => Proposal(m, planValue, cpuCores, requestCores));
            desired = Normalize(at, desired);
        }
        if (desired > Current)
        {
            _ups.Add((at, desired - Current));
        }
        else if (desired < Current)
        {
            _downs.Add((at, Current - desired));
        }
        Current = desired;
        return desired;
    }

    int Proposal(HpaMetric m, double planValue, double cpuCores, double requestCores)
    {
        switch (m.Kind, m.TargetType)
        {
            case ("external", "AverageValue"):
                {
                    var ratio = planValue / (m.Target * Current);
                    return Math.Abs(1 - ratio) > Tolerance ? (int)Math.Ceiling(planValue / m.Target) : Current;
                }
            case ("external", "Value"):
                {
                    var ratio = planValue / m.Target;
                    return Math.Abs(1 - ratio) <= Tolerance ? Current : (int)Math.Ceiling(ratio * Current);
                }
            case ("cpu", "Utilization"):
                {
                    var utilization = 100 * cpuCores / (Current * requestCores);
                    var ratio = utilization / m.Target;
                    return Math.Abs(1 - ratio) <= Tolerance ? Current : (int)Math.Ceiling(ratio * Current);
                }
            default:
                throw new InvalidOperationException($"{m.Kind}/{m.TargetType} is not modelled");
        }
    }

    int Normalize(double at, int desired)
    {
        // stabilizeRecommendationWithBehaviors
        var up = desired;
        var down = desired;
        foreach (var (t, r) in _recommendations)
        {
            if (t > at - spec.Up.StabilizationSeconds)
            {
                up = Math.Min(up, r);
            }
            if (t > at - spec.Down.StabilizationSeconds)
            {
                down = Math.Max(down, r);
            }
        }
        _recommendations.Add((at, desired));
        _recommendations.RemoveAll(r => r.At <= at - Math.Max(spec.Up.StabilizationSeconds, spec.Down.StabilizationSeconds) - 1);
        var stabilized = Current;
        if (stabilized < up)
        {
            stabilized = up;
        }
        if (stabilized > down)
        {
            stabilized = down;
        }
        // convertDesiredReplicasWithBehaviorRate
        if (stabilized > Current)
        {
            var limit = Math.Max(Current, Limit(spec.Up, at, scaleUp: true));
            return Math.Min(stabilized, Math.Min(spec.Max, limit));
        }
        if (stabilized < Current)
        {
            var limit = Math.Min(Current, Limit(spec.Down, at, scaleUp: false));
            return Math.Max(stabilized, Math.Max(spec.Min, limit));
        }
        return stabilized;
    }

    int Limit(HpaRules rules, double at, bool scaleUp)
    {
        var result = scaleUp == (rules.SelectPolicy != "Min") ? int.MinValue : int.MaxValue;
        foreach (var (type, value, period) in rules.Policies)
        {
            var added = _ups.Where(e => e.At > at - period).Sum(e => e.Change);
            var deleted = _downs.Where(e => e.At > at - period).Sum(e => e.Change);
            var periodStart = Current - added + deleted;
            int proposed = scaleUp
                ? type == "Pods" ? periodStart + value : (int)Math.Ceiling(periodStart * (1 + (value / 100.0)))
                : type == "Pods" ? periodStart - value : (int)(periodStart * (1 - (value / 100.0)));
            result = (scaleUp, rules.SelectPolicy) switch
            {
                (true, "Min") => Math.Min(result, proposed),
                (true, _) => Math.Max(result, proposed),
                (false, "Min") => Math.Max(result, proposed),
                (false, _) => Math.Min(result, proposed),
            };
        }
        return result;
    }
}
