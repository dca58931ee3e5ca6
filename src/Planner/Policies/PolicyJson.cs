using System.Text.Json;
using System.Text.Json.Serialization;

namespace Forecaster.Planner;

/// <summary>Reading and writing policies; the converters sit on the types, so plain web defaults work too.</summary>
public static class PolicyJson
{
    /// <summary>Web defaults (camelCase, case-insensitive names), unknown properties rejected.</summary>
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>Reads a policy that <see cref="PolicyValidator.Validate"/> accepted; throws <see cref="JsonException"/> otherwise.</summary>
    public static Policy Read(JsonElement policy) =>
        policy.Deserialize<Policy>(Options) ?? throw new JsonException("policy is null");

    public static Policy Read(string json) =>
        JsonSerializer.Deserialize<Policy>(json, Options) ?? throw new JsonException("policy is null");

    public static string Write(Policy policy) => JsonSerializer.Serialize(policy, Options);
}

/// <summary>Enums as camelCase strings (<c>forecastOnly</c>), never as numbers.</summary>
public sealed class CamelCaseEnumConverter<TEnum>() : JsonStringEnumConverter<TEnum>(JsonNamingPolicy.CamelCase, allowIntegerValues: false)
    where TEnum : struct, Enum;

internal sealed class DaySetConverter : JsonConverter<DaySet>
{
    public override DaySet Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.String && DaySet.TryParse(reader.GetString(), out var days)
            ? days
            : throw new JsonException("days must be a day set such as \"Mon-Fri\" or \"Sat,Sun\"");

    public override void Write(Utf8JsonWriter writer, DaySet value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.ToString());
}

internal sealed class ClockTimeConverter : JsonConverter<ClockTime>
{
    public override ClockTime Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.String && ClockTime.TryParse(reader.GetString(), out var time)
            ? time
            : throw new JsonException("time must be \"HH:mm\"");

    public override void Write(Utf8JsonWriter writer, ClockTime value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.ToString());
}

internal sealed class TimeZoneIdConverter : JsonConverter<TimeZoneInfo>
{
    public override TimeZoneInfo Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.String && TimeZoneInfo.TryFindSystemTimeZoneById(reader.GetString()!, out var zone)
            ? zone
            : throw new JsonException("timeZone must be an IANA time zone id such as \"Europe/Berlin\"");

    public override void Write(Utf8JsonWriter writer, TimeZoneInfo value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.Id);
}
