using System.Globalization;
using System.Text;
using Forecaster.Planner;

namespace Forecaster.Api.Executors;

/// <summary>
/// A ready-to-apply KEDA ScaledObject for a service: the plan trigger (metrics-api on /keda), the reactive cpu trigger, bounds,
/// polling interval, HPA behavior and fallback derived from the policy, and a TriggerAuthentication when reads need a key.
/// <para>
/// The plan trigger is <c>AverageValue</c> with target 1: the HPA's External metric formula then gives
/// desired = ceil(value / target) = the plan's count, whereas <c>Value</c> gives ceil(currentReplicas × value / target)
/// (kubernetes <c>replica_calculator.go</c>, GetExternalPerPodMetricReplicas and GetExternalMetricReplicas). The HPA takes the
/// maximum over triggers, so the cpu trigger still scales up for load the forecast missed, and a neutral /keda answer (0)
/// leaves both directions to it.
/// </para>
/// </summary>
public static class ScaledObjectManifest
{
    /// <summary>The HPA controller's sync period (kube-controller-manager --horizontal-pod-autoscaler-sync-period default).</summary>
    public const int HpaSyncSeconds = 15;

    /// <summary>Longest scale-down stabilization: the HPA's own default, enough to smooth the cpu trigger.</summary>
    public const int MaxScaleDownWindowSeconds = 300;

    /// <summary>Consecutive failed polls of /keda before KEDA's fallback holds the count.</summary>
    public const int FallbackFailureThreshold = 3;

    /// <summary>Where the comments of the YAML start.</summary>
    const int CommentColumn = 40;

    /// <summary>
    /// The ScaledObject of service <paramref name="name"/> under <paramref name="policy"/>; impossible without a maximum (the
    /// HPA needs one) or for a streaming job (whose parallelism the Flink patch applies).
    /// </summary>
    public static ManifestOutcome Build(string name, ResourceKind kind, Policy policy, string publicUrl, string? readKeySecret)
    {
        if (kind == ResourceKind.Job)
        {
            return new ManifestImpossible("kind", "a streaming job's parallelism is applied by the Flink operator: use /flink (or `forecaster manifest flink`)");
        }
        if (!Yaml.IsObjectName(name))
        {
            return new ManifestImpossible("name", $"'{name}' is not a Kubernetes object name (lowercase letters, digits, '-' and '.', at most 253)");
        }
        if (policy.MaxReplicas is not int policyMax)
        {
            return new ManifestImpossible("policy.maxReplicas", "is required for a ScaledObject: the HPA needs a maximum (maxReplicaCount)");
        }
        // The HPA's bounds are static; the plan applies the windows' own bounds within them.
        var max = policy.Windows.Select(w => w.MaxReplicas ?? policyMax).Append(policyMax).Max();
        // At least 1: with minReplicaCount 0 a neutral plan answer (0) would let KEDA scale the Deployment to zero.
        var min = Math.Max(1, policy.Windows.Select(w => w.MinReplicas ?? policy.MinReplicas ?? 1).Append(policy.MinReplicas ?? 1).Min());
        var lead = policy.LeadMinutes;
        // KEDA checks the plan at least ten times within the lead (the HPA itself reads it every sync).
        var polling = Math.Clamp(lead * 6, 5, 30);
        // A planned scale-down lands within half the lead, before its hour.
        var downWindow = Math.Min(MaxScaleDownWindowSeconds, lead * 30);
        var utilization = (int)Math.Round(policy.TargetUtilization * 100);
        var url = $"{publicUrl.TrimEnd('/')}/api/v1/resources/{Uri.EscapeDataString(name)}/keda";
        var n = Yaml.Quote(name);

        var y = new StringBuilder();
        void L(string line, string? comment = null) =>
            y.Append(comment is null ? line : line.PadRight(CommentColumn) + "# " + comment).Append('\n');
        if (readKeySecret is not null)
        {
            L("apiVersion: keda.sh/v1alpha1");
            L("kind: TriggerAuthentication");
            L("metadata:");
            L($"  name: {n}");
            L("spec:");
            L("  secretTargetRef:", "reads need a key (Forecaster:RequireApiKeyForReads)");
            L("    - parameter: apiKey");
            L($"      name: {Yaml.Quote(readKeySecret)}");
            L("      key: \"apiKey\"");
            L("---");
        }
        L("apiVersion: keda.sh/v1alpha1");
        L("kind: ScaledObject");
        L("metadata:");
        L($"  name: {n}");
        L("spec:");
        L("  scaleTargetRef:");
        L($"    name: {n}", $"the Deployment");
        L($"  pollingInterval: {polling}");
        L($"  minReplicaCount: {min}");
        L($"  maxReplicaCount: {max}", policy.MaxBreach == MaxBreach.Exceed ? "policy.maxBreach exceed: a plan above this is capped here" : null);
        L("  fallback:", "Forecaster unreachable: hold the current count, the cpu trigger can still scale up");
        L($"    failureThreshold: {FallbackFailureThreshold}");
        L($"    replicas: {min}");
        L("    behavior: \"currentReplicasIfHigher\"");
        L("  advanced:");
        L("    horizontalPodAutoscalerConfig:");
        L("      behavior:");
        L("        scaleUp:", "a planned step lands at the next sync: the plan already limits its steps");
        L("          stabilizationWindowSeconds: 0");
        L("          selectPolicy: \"Max\"");
        L("          policies:");
        L("            - type: \"Pods\"");
        L($"              value: {max}");
        L($"              periodSeconds: {HpaSyncSeconds}");
        L($"        scaleDown:", $"a planned step down lands within half the lead ({lead} min)");
        L($"          stabilizationWindowSeconds: {downWindow}");
        L("          selectPolicy: \"Max\"");
        L("          policies:");
        L("            - type: \"Percent\"");
        L("              value: 100");
        L($"              periodSeconds: {HpaSyncSeconds}");
        L("  triggers:");
        L("    - type: \"metrics-api\"", "the plan");
        L("      metricType: \"AverageValue\"", "desired = ceil(value / 1): the plan's count");
        L("      metadata:");
        L($"        url: {Yaml.Quote(url)}");
        L("        valueLocation: \"desiredReplicas\"");
        L("        targetValue: \"1\"");
        if (readKeySecret is not null)
        {
            L("        authMode: \"apiKey\"");
            L("        method: \"header\"");
            L("        keyParamName: \"X-Api-Key\"");
            L("      authenticationRef:");
            L($"        name: {n}");
        }
        L("    - type: \"cpu\"", "reality: the reactive safety net");
        L("      metricType: \"Utilization\"");
        L("      metadata:");
        L($"        value: \"{utilization.ToString(CultureInfo.InvariantCulture)}\"");
        return new ManifestText(y.ToString());
    }
}
