using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Forecaster.Api.Errors;

/// <summary>
/// The one check every text input passes (path, query, header, JSON, CSV): no NUL or other control character, no lone
/// surrogate, no invalid UTF-8 (decoders turn it into U+FFFD, so that character is refused too). PostgreSQL refuses NUL in
/// text and jsonb, so without this a NUL reached the database and came back as a 500.
/// </summary>
public static class TextRules
{
    static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Why <paramref name="text"/> is not acceptable text, or null when it is.</summary>
    public static string? Check(ReadOnlySpan<char> text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c == '\0')
            {
                return $"contains a NUL character at position {i}";
            }
            if (char.IsControl(c))
            {
                return $"contains the control character U+{(int)c:X4} at position {i}";
            }
            if (c == '\uFFFD')
            {
                return $"contains invalid UTF-8 (a replacement character U+FFFD) at position {i}";
            }
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
                continue;
            }
            if (char.IsSurrogate(c))
            {
                return $"contains a lone surrogate U+{(int)c:X4} at position {i} (not valid Unicode text)";
            }
        }
        return null;
    }

    /// <summary>
    /// Like <see cref="Check(ReadOnlySpan{char})"/>, and a name never starts or ends with whitespace (it would be trimmed into
    /// another name elsewhere) nor holds an invisible format character (a bidi override or zero-width character that makes two
    /// names look alike).
    /// </summary>
    public static string? CheckName(string name)
    {
        if (Check(name) is { } error)
        {
            return error;
        }
        if (name.Length > 0 && (char.IsWhiteSpace(name[0]) || char.IsWhiteSpace(name[^1])))
        {
            return "starts or ends with whitespace";
        }
        var format = name.AsSpan().IndexOfAnyInRange('\u200B', '\u206F') is var i and >= 0 && char.GetUnicodeCategory(name[i]) == System.Globalization.UnicodeCategory.Format ? i
            : name.IndexOf('\uFEFF');
        return format >= 0 ? $"contains the invisible format character U+{(int)name[format]:X4} at position {format}" : null;
    }

    /// <summary>A group name: at most 128 characters of <see cref="CheckName"/>-clean text; empty only where "no group" is meant.</summary>
    public static string? CheckGroup(string group, bool allowEmpty) =>
        group.Length == 0 ? (allowEmpty ? null : "is empty")
        : group.Length > 128 ? "is longer than 128 characters"
        : CheckName(group);

    /// <summary>Decodes UTF-8 <paramref name="bytes"/> strictly: null (and <paramref name="error"/>) on invalid bytes.</summary>
    public static string? Decode(ReadOnlySpan<byte> bytes, out string? error)
    {
        try
        {
            var text = StrictUtf8.GetString(bytes);
            error = Check(text);
            return error is null ? text : null;
        }
        catch (DecoderFallbackException e)
        {
            error = $"is not valid UTF-8 (byte 0x{(e.BytesUnknown is { Length: > 0 } b ? b[0] : 0):X2} at position {e.Index})";
            return null;
        }
    }

    /// <summary>Percent-decodes a URL component to bytes, then decodes them strictly as UTF-8 text.</summary>
    public static string? DecodeUrlComponent(ReadOnlySpan<char> raw, out string? error)
    {
        Span<byte> small = stackalloc byte[256];
        var bytes = raw.Length <= small.Length ? small : new byte[raw.Length];
        var n = 0;
        for (var i = 0; i < raw.Length; i++)
        {
            var c = raw[i];
            if (c == '%' && i + 2 < raw.Length && IsHex(raw[i + 1]) && IsHex(raw[i + 2]))
            {
                bytes[n++] = (byte)(Hex(raw[i + 1]) << 4 | Hex(raw[i + 2]));
                i += 2;
            }
            else if (c == '+')
            {
                bytes[n++] = (byte)' ';
            }
            else if (c < 0x80)
            {
                bytes[n++] = (byte)c;
            }
            else
            {
                // Non-ASCII in a raw target has been decoded already by the server: check it as text.
                error = Check(raw);
                return error is null ? raw.ToString() : null;
            }
        }
        return Decode(bytes[..n], out error);
    }

    static bool IsHex(char c) => char.IsAsciiHexDigit(c);

    static int Hex(char c) => c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/// <summary>Every JSON string a request body binds to passes <see cref="TextRules.Check"/>; a bad one is a 400 naming its path.</summary>
public sealed class CheckedStringConverter : JsonConverter<string>
{
    public override string? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType is not (JsonTokenType.String or JsonTokenType.PropertyName))
        {
            throw new JsonException($"must be a string, not {Kind(reader.TokenType)}");
        }
        string text;
        try
        {
            text = reader.GetString()!;
        }
        catch (InvalidOperationException)
        {
            throw new JsonException("contains a lone surrogate (not valid Unicode text)");
        }
        return TextRules.Check(text) is { } error ? throw new JsonException(error) : text;
    }

    public override void Write(Utf8JsonWriter writer, string value, JsonSerializerOptions options) => writer.WriteStringValue(value);

    public override string ReadAsPropertyName(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        Read(ref reader, typeToConvert, options)!;

    public override void WriteAsPropertyName(Utf8JsonWriter writer, string value, JsonSerializerOptions options) => writer.WritePropertyName(value);

    internal static string Kind(JsonTokenType token) => token switch
    {
        JsonTokenType.Number => "a number",
        JsonTokenType.True or JsonTokenType.False => "a boolean",
        JsonTokenType.StartObject => "an object",
        JsonTokenType.StartArray => "an array",
        JsonTokenType.Null => "null",
        _ => token.ToString(),
    };
}

/// <summary>Free-form JSON (a policy, a series) passes the same text check on every property name and string inside it.</summary>
public sealed class CheckedElementConverter : JsonConverter<JsonElement>
{
    public override JsonElement Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var element = JsonElement.ParseValue(ref reader);
        if (Find(element, "") is { } bad)
        {
            throw new JsonFieldException(bad.Path, bad.Error);
        }
        return element;
    }

    public override void Write(Utf8JsonWriter writer, JsonElement value, JsonSerializerOptions options) => value.WriteTo(writer);

    static (string Path, string Error)? Find(JsonElement e, string path)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.String:
                return Text(() => e.GetString()!) is { } s ? (path, s) : null;
            case JsonValueKind.Array:
                var i = 0;
                foreach (var item in e.EnumerateArray())
                {
                    if (Find(item, $"{path}[{i++}]") is { } bad)
                    {
                        return bad;
                    }
                }
                return null;
            case JsonValueKind.Object:
                foreach (var p in e.EnumerateObject())
                {
                    string name;
                    try
                    {
                        name = p.Name;
                    }
                    catch (InvalidOperationException)
                    {
                        return (path, "has a property name with a lone surrogate (not valid Unicode text)");
                    }
                    if (TextRules.Check(name) is { } error)
                    {
                        return (path, $"has a property name that {error}");
                    }
                    if (Find(p.Value, $"{path}.{name}") is { } bad)
                    {
                        return bad;
                    }
                }
                return null;
            default:
                return null;
        }
    }

    static string? Text(Func<string> read)
    {
        try
        {
            return TextRules.Check(read());
        }
        catch (InvalidOperationException)
        {
            return "contains a lone surrogate (not valid Unicode text)";
        }
    }
}

/// <summary>A bad value found inside a bound JSON value: <see cref="RelativePath"/> continues the serializer's own path.</summary>
public sealed class JsonFieldException(string relativePath, string message) : JsonException(message)
{
    public string RelativePath { get; } = relativePath;
}

/// <summary>The one timestamp rule in JSON bodies too: <see cref="UtcTimestamp"/> (explicit offset, converted to UTC).</summary>
public sealed class UtcDateTimeOffsetConverter : JsonConverter<DateTimeOffset>
{
    public override DateTimeOffset Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.String)
        {
            throw new JsonException($"must be an ISO 8601 timestamp string, not {CheckedStringConverter.Kind(reader.TokenType)}");
        }
        string text;
        try
        {
            text = reader.GetString()!;
        }
        catch (InvalidOperationException)
        {
            throw new JsonException("contains a lone surrogate (not valid Unicode text)");
        }
        return UtcTimestamp.TryParse(text, out var utc, out var error) ? new DateTimeOffset(utc, TimeSpan.Zero) : throw new JsonException(error);
    }

    public override void Write(Utf8JsonWriter writer, DateTimeOffset value, JsonSerializerOptions options) => writer.WriteStringValue(value);
}
