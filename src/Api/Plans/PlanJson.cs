using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Forecaster.Planner;

namespace Forecaster.Api.Plans;

/// <summary>
/// JSON of stored plan documents (requests) and of plan steps as versions stored before migration 0010 hold them in
/// <c>plan_versions.steps</c>: the JSON array of <see cref="PlanStep"/> (camelCase, nulls omitted), read back with
/// <see cref="ReadSteps"/> (newer versions are packed: <see cref="PackedSteps"/>). The explanation is stored as numbers
/// only: its <c>sentence</c> is written when a person asks (it is computed from those numbers).
/// </summary>
public static class PlanJson
{
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        TypeInfoResolver = new DefaultJsonTypeInfoResolver { Modifiers = { WithoutSentence } },
    };

    public static string WriteSteps(IReadOnlyList<PlanStep> steps) => JsonSerializer.Serialize(steps, Options);

    public static PlanStep[] ReadSteps(string json) => JsonSerializer.Deserialize<PlanStep[]>(json, Options) ?? [];

    public static string Write<T>(T value) => JsonSerializer.Serialize(value, Options);

    static void WithoutSentence(JsonTypeInfo type)
    {
        if (type.Type == typeof(StepExplanation))
        {
            for (var i = type.Properties.Count - 1; i >= 0; i--)
            {
                if (type.Properties[i].Name == "sentence")
                {
                    type.Properties.RemoveAt(i);
                }
            }
        }
    }
}
