using System.Globalization;

namespace Forecaster.Planner;

/// <summary>Where the load one replica (subtask) carries came from.</summary>
[System.Text.Json.Serialization.JsonConverter(typeof(CamelCaseEnumConverter<CapacitySource>))]
public enum CapacitySource { Policy, CapacityModel, None }

/// <summary>
/// The trained per-replica linear fit <c>cpu_cores = a + b·load</c> (a = <see cref="Intercept"/>, b = <see cref="Slope"/>),
/// with its fit quality.
/// <para>
/// Capacity per replica is the load at which one replica's cpu reaches the cores it is sized for (its limit, else its
/// manifest request): <c>(replicaCpu − a) / b</c>. It deliberately does not use the planner's own overcommitted request:
/// that request follows observed peak usage, which at target utilisation u is about <c>a + u·(request − a)</c>, so
/// request → 1.15·(a + 0.7·(request − a)) shrinks every week towards ≈1.8·a and the replica count would spiral up.
/// Sizing replicas against a fixed reference and requests against usage keeps the two loops apart.
/// </para>
/// </summary>
public sealed record CapacityModel(double Intercept, double Slope, double RSquared, int Samples, string? Version = null)
{
    /// <summary>Below this R² the fit explains too little of cpu to convert load into replicas.</summary>
    public const double MinRSquared = 0.5;

    /// <summary>Two days of hourly samples: fewer cannot have seen a daily peak and trough.</summary>
    public const int MinSamples = 48;

    /// <summary>Load one replica carries at 100% of <paramref name="replicaCpu"/>, or why the model cannot say.</summary>
    public Capacity CapacityAt(double? replicaCpu)
    {
        if (Slope <= 0 || !double.IsFinite(Slope) || !double.IsFinite(Intercept))
        {
            return Capacity.Missing(Invariant($"capacity model slope {Slope:G4} is not positive: cpu does not grow with load"));
        }
        // Name only the conditions that fail: "R² 0.28 < 0.5 or 833 samples < 48" would be a lie about the 833.
        if (RSquared < MinRSquared && Samples < MinSamples)
        {
            return Capacity.Missing(Invariant($"capacity model fit too weak (R² {RSquared:F2} < {MinRSquared} and {Samples} samples < {MinSamples})"));
        }
        if (RSquared < MinRSquared)
        {
            return Capacity.Missing(Invariant($"capacity model fit too weak (R² {RSquared:F2} < {MinRSquared})"));
        }
        if (Samples < MinSamples)
        {
            return Capacity.Missing(Invariant($"capacity model fit on too few hours ({Samples} samples < {MinSamples})"));
        }
        if (replicaCpu is not double cpu)
        {
            return Capacity.Missing("capacity model present but the replica's cpu size (limit or manifest request) is unknown");
        }
        if (cpu <= Intercept)
        {
            return Capacity.Missing(Invariant($"replica cpu {cpu:G4} is not above the model's idle cpu {Intercept:G4}"));
        }
        return new Capacity((cpu - Intercept) / Slope, CapacitySource.CapacityModel, null);
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}

/// <summary>Load one replica or subtask carries at 100% utilisation; <see cref="PerUnit"/> is null with a reason when unknown.</summary>
public readonly record struct Capacity(double? PerUnit, CapacitySource Source, string? Gap)
{
    public static Capacity Missing(string why) => new(null, CapacitySource.None, why);

    /// <summary>The policy's figure wins, then the capacity model.</summary>
    public static Capacity Resolve(PlanInput input)
    {
        var configured = input.Kind == ResourceKind.Job ? input.Policy.CapacityPerSubtask : input.Policy.CapacityPerReplica;
        if (configured is double c)
        {
            return new Capacity(c, CapacitySource.Policy, null);
        }
        return input.CapacityModel?.CapacityAt(input.ReplicaCpu)
            ?? Missing(input.Kind == ResourceKind.Job
                ? "no policy.capacityPerSubtask and no trained capacity model"
                : "no policy.capacityPerReplica and no trained capacity model");
    }
}
