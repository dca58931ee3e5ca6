using System.Buffers;
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

    [ThreadStatic]
    static ArrayBufferWriter<byte>? t_jsonb;
    [ThreadStatic]
    static Utf8JsonWriter? t_writer;

    /// <summary>
    /// <paramref name="value"/> as a jsonb value in PostgreSQL's binary form, for a binary COPY field written as its bytes:
    /// jsonb_recv reads a version byte (1) and then the JSON text (src/backend/utils/adt/jsonb.c). The same text as
    /// <see cref="Write{T}"/>, written as UTF-8 straight into a buffer reused by the thread instead of a string that the
    /// COPY then encodes again.
    /// </summary>
    public static byte[] WriteJsonb<T>(T value)
    {
        var buffer = t_jsonb ??= new ArrayBufferWriter<byte>(1024);
        buffer.ResetWrittenCount();
        buffer.GetSpan(1)[0] = 1;
        buffer.Advance(1);
        var writer = t_writer ??= new Utf8JsonWriter(buffer, new JsonWriterOptions
        {
            Encoder = Options.Encoder, Indented = Options.WriteIndented, MaxDepth = Options.MaxDepth, SkipValidation = true,
        });
        writer.Reset(buffer);
        JsonSerializer.Serialize(writer, value, Options);
        return buffer.WrittenSpan.ToArray();
    }

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
