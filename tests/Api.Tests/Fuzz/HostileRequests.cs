using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Forecaster.Api.Tests.Fuzz;

/// <summary>One operation of the OpenAPI document: what the fuzzer needs to build a request for it.</summary>
public sealed record FuzzOperation(
    string Method, string Path, IReadOnlyList<(string Name, string In)> Parameters, string? BodyType, string? BodyExample, bool Writes)
{
    /// <summary>Every operation in a swagger.json document.</summary>
    public static List<FuzzOperation> FromOpenApi(JsonElement document)
    {
        var operations = new List<FuzzOperation>();
        foreach (var path in document.GetProperty("paths").EnumerateObject())
        {
            foreach (var op in path.Value.EnumerateObject())
            {
                if (op.Name is not ("get" or "put" or "post" or "delete" or "patch"))
                {
                    continue;
                }
                var parameters = new List<(string, string)>();
                if (op.Value.TryGetProperty("parameters", out var ps))
                {
                    foreach (var p in ps.EnumerateArray())
                    {
                        parameters.Add((p.GetProperty("name").GetString()!, p.GetProperty("in").GetString()!));
                    }
                }
                string? bodyType = null, example = null;
                if (op.Value.TryGetProperty("requestBody", out var body) && body.TryGetProperty("content", out var content))
                {
                    foreach (var media in content.EnumerateObject())
                    {
                        bodyType ??= media.Name;
                        if (media.Name == bodyType && media.Value.TryGetProperty("example", out var ex))
                        {
                            example = ex.ValueKind == JsonValueKind.String ? ex.GetString() : ex.GetRawText();
                        }
                    }
                }
                var method = op.Name.ToUpperInvariant();
                operations.Add(new FuzzOperation(method, path.Name, parameters, bodyType, example, method is not "GET"));
            }
        }
        return operations;
    }
}

/// <summary>A request the fuzzer sends, described well enough to replay it from a test log.</summary>
public sealed record HostileRequest(string Method, string Url, IReadOnlyList<(string Name, string Value)> Headers, string? ContentType, byte[]? Body, bool Writes, string What)
{
    public HttpRequestMessage ToMessage()
    {
        var message = new HttpRequestMessage(new HttpMethod(Method), new Uri(Url, UriKind.Relative));
        foreach (var (name, value) in Headers)
        {
            message.Headers.TryAddWithoutValidation(name, value);
        }
        if (Body is not null)
        {
            message.Content = new ByteArrayContent(Body);
            if (ContentType is not null)
            {
                message.Content.Headers.TryAddWithoutValidation("Content-Type", ContentType);
            }
        }
        return message;
    }

    public override string ToString()
    {
        var body = Body is null ? "(no body)"
            : Body.Length > 300 ? $"{Body.Length} bytes: {Printable(Body.AsSpan(0, 300))}..."
            : Printable(Body);
        return $"{What}\n  {Method} {Shorten(Url)}\n  headers: {string.Join("; ", Headers.Select(h => $"{h.Name}: {Shorten(Escape(h.Value))}"))}\n  content-type: {ContentType ?? "(none)"}\n  body: {body}";
    }

    static string Printable(ReadOnlySpan<byte> bytes) => Escape(Encoding.UTF8.GetString(bytes));

    static string Escape(string s) => string.Concat(s.Select(c => c < 0x20 || c is >= '\u007f' and <= '\u009f' || char.IsSurrogate(c) ? $"\\u{(int)c:x4}" : c.ToString()));

    static string Shorten(string s) => s.Length <= 300 ? s : s[..300] + $"...({s.Length} chars)";
}

/// <summary>
/// Builds hostile requests from the OpenAPI operations with a seeded generator: each request takes a valid request (a
/// known resource name, the documented example body, the API key) and makes one or two parts of it hostile.
/// </summary>
public sealed class HostileRequests(IReadOnlyList<FuzzOperation> operations, int seed, string apiKey, IReadOnlyDictionary<string, string> validPathValues)
{
    readonly Random _random = new(seed);

    /// <summary>Hostile text for a URL, already percent-encoded (raw bytes a browser would never send included).</summary>
    static readonly string[] UrlValues =
    [
        "%00", "a%00b", "fuzz-svc%00", "%ED%A0%80", "x%ED%B0%80y", "%FF", "%C3%28", "%C0%AF", "%F8%88%80%80%80", "%01", "%1B%5B31m", "%7F", "%C2%85",
        "%0A", "%0D%0Ainjected:1", "%09", "%20lead", "trail%20", "%20", "", new string('x', 5000), "1e308", "-1e308", "1e309", "NaN", "Infinity",
        "-1", "0", "99999999999999999999999", "-9223372036854775809", "%25", "%", "..%2F..%2Fetc%2Fpasswd", "'%20OR%201=1--", "2026-11-21T12:00:00",
        "2026-11-21T12:00:00%2B05:00", "2026-11-21T12:00:00-03:30", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "2026-02-30T00:00:00Z",
        "%F0%9F%98%80", "%E2%80%AE", "%EF%BB%BF", "null", "true", "[]", "{}", "1h", "PT1H", "P99999999D", "-PT1H", "0s",
    ];

    /// <summary>Hostile JSON values (raw JSON text), for any position of a body.</summary>
    static readonly string[] JsonValues =
    [
        "\"\\u0000\"", "\"a\\u0000b\"", "\"\\ud800\"", "\"x\\udc00y\"", "\"\\u0001\"", "\"\\u001b[31m\"", "\"\\u007f\"", "\"\\n\"", "\" lead\"", "\"trail \"",
        "\"\"", $"\"{new string('y', 70_000)}\"", "1e308", "-1e308", "1.7976931348623157e308", "1e309", "-1e400", "4.9e-324", "99999999999999999999999999",
        "-9223372036854775809", "\"NaN\"", "\"Infinity\"", "\"-Infinity\"", "\"1e308\"", "null", "true", "false", "0", "-1", "[]", "{}", "[null]",
        "[1,2,3]", "{\"a\":{\"b\":{\"c\":[]}}}", "\"2026-11-21T12:00:00\"", "\"2026-11-21T12:00:00+05:00\"", "\"0001-01-01T00:00:00Z\"",
        "\"9999-12-31T23:59:59Z\"", "\"\\ud83d\\ude00\"", "\"\\u202e\"", "\"../../etc/passwd\"", "\"' OR 1=1 --\"", $"[{string.Join(',', Enumerable.Repeat("{}", 5000))}]",
    ];

    static readonly string[] HeaderValues = ["\0", "a\0b", "\u0001", "\u007f", "é", new string('k', 10_000), "", " ", "\t"];

    static readonly string[] ContentTypes =
    [
        "text/plain", "application/xml", "text/csv", "application/json; charset=utf-16", "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded", "application/json; charset=nonsense", "application/problem+json", "garbage", "",
    ];

    public HostileRequest Next()
    {
        var op = operations[_random.Next(operations.Count)];
        var path = op.Path;
        var query = new List<string>();
        var headers = new List<(string, string)> { ("X-Api-Key", apiKey) };
        string? contentType = op.BodyType;
        byte[]? body = op.BodyExample is null ? null : Encoding.UTF8.GetBytes(op.BodyExample);
        var what = new List<string>();

        var mutations = 1 + (_random.Next(4) == 0 ? 1 : 0);
        for (var m = 0; m < mutations; m++)
        {
            var pathParams = op.Parameters.Where(p => p.In == "path").ToList();
            var otherParams = op.Parameters.Where(p => p.In is "query" or "header").ToList();
            switch (_random.Next(body is null && op.BodyType is null ? 3 : 5))
            {
                case 0 when pathParams.Count > 0:
                {
                    var (name, _) = Pick(pathParams);
                    var value = Pick(UrlValues);
                    path = path.Replace("{" + name + "}", value, StringComparison.Ordinal);
                    what.Add($"path {name} = {value}");
                    break;
                }
                case 0 or 1:
                {
                    // A documented query parameter, or one the document doesn't know, sometimes twice.
                    var name = otherParams.Count > 0 && _random.Next(4) > 0 ? Pick(otherParams).Name : Pick(["group", "after", "metric", "at", "from", "to", "limit", "%00", "x%FF"]);
                    var value = Pick(UrlValues);
                    query.Add($"{name}={value}");
                    if (_random.Next(5) == 0)
                    {
                        query.Add($"{name}={Pick(UrlValues)}");
                    }
                    what.Add($"query {name} = {value}");
                    break;
                }
                case 2:
                    what.Add(MutateHeaders(headers));
                    break;
                case 3:
                    what.Add(MutateBody(ref body, ref contentType, op));
                    break;
                default:
                    var ct = Pick(ContentTypes);
                    contentType = ct.Length == 0 ? null : ct;
                    body ??= Encoding.UTF8.GetBytes(op.BodyExample ?? "{}");
                    what.Add($"content-type {ct}");
                    break;
            }
        }
        foreach (var (name, value) in validPathValues)
        {
            path = path.Replace("{" + name + "}", value, StringComparison.Ordinal);
        }
        var url = query.Count == 0 ? path : path + "?" + string.Join('&', query);
        return new HostileRequest(op.Method, url, headers, contentType, body, op.Writes, string.Join(", ", what));
    }

    string MutateHeaders(List<(string Name, string Value)> headers)
    {
        switch (_random.Next(6))
        {
            case 0:
                headers.Add(("X-Api-Key", apiKey));
                return "X-Api-Key twice (valid, valid)";
            case 1:
                headers.Add(("X-Api-Key", "not-a-key"));
                return "X-Api-Key twice (valid, invalid)";
            case 2:
                headers.Clear();
                return "no X-Api-Key";
            case 3:
            {
                headers.Clear();
                var v = Pick(HeaderValues);
                headers.Add(("X-Api-Key", v));
                return $"X-Api-Key hostile ({v.Length} chars)";
            }
            case 4:
            {
                var v = Pick(HeaderValues);
                headers.Add(("If-None-Match", v));
                return "If-None-Match hostile";
            }
            default:
            {
                var v = Pick(HeaderValues);
                headers.Add(("Accept", v.Length == 0 ? "application/xml" : v));
                return "Accept hostile";
            }
        }
    }

    string MutateBody(ref byte[]? body, ref string? contentType, FuzzOperation op)
    {
        contentType ??= "application/json";
        var json = contentType.StartsWith("application/json", StringComparison.Ordinal);
        switch (_random.Next(json ? 10 : 6))
        {
            case 0:
                body = null;
                return "missing body";
            case 1:
                body = [];
                return "empty body";
            case 2:
                body = [0xFF, 0xFE, 0x00, 0x7B, 0xC3, 0x28];
                return "invalid UTF-8 body";
            case 3:
                body = Encoding.UTF8.GetBytes(new string('[', 10_000) + new string(']', 10_000));
                return "deeply nested JSON";
            case 4:
                body = new byte[300_000];
                Array.Fill(body, (byte)'a');
                return "body over the limit";
            case 5 when !json:
            {
                // CSV: a hostile value in one cell of the example.
                var lines = (op.BodyExample ?? "resource,metric,timestamp,value\n").Split('\n');
                var line = 1 + _random.Next(Math.Max(1, lines.Length - 2));
                var cells = lines[Math.Min(line, lines.Length - 1)].Split(',');
                var cell = _random.Next(cells.Length);
                var value = Uri.UnescapeDataString(Pick(UrlValues).Replace("%ED%A0%80", "\uD800", StringComparison.Ordinal));
                cells[cell] = value;
                lines[Math.Min(line, lines.Length - 1)] = string.Join(',', cells);
                var text = string.Join('\n', lines);
                body = _random.Next(5) == 0 ? [.. Encoding.UTF8.GetBytes(text), 0xFF, 0x0A] : Encoding.UTF8.GetBytes(text);
                return $"csv line {line} cell {cell} = {value}";
            }
            case 5:
                body = Encoding.UTF8.GetBytes(Pick(["null", "[]", "\"text\"", "1e308", "{", "{}", "{\"a\":1,\"a\":2}", "true"]));
                return $"body {Encoding.UTF8.GetString(body)}";
            default:
                return MutateJson(ref body, op.BodyExample ?? "{}");
        }
    }

    /// <summary>Replaces one value of the example body (or adds a hostile property name) with a hostile JSON value.</summary>
    string MutateJson(ref byte[]? body, string example)
    {
        var root = JsonNode.Parse(example)!;
        var slots = new List<(JsonNode Parent, string? Property, int Index, string Path)>();
        Collect(root, "$", slots);
        const string marker = "\"__FUZZ_MARKER__\"";
        string path;
        if (slots.Count == 0 || _random.Next(6) == 0)
        {
            // A hostile property name in some object (e.g. a policy property that is invalid UTF-16 or holds a NUL).
            var objects = new List<(JsonObject, string)>();
            CollectObjects(root, "$", objects);
            var (target, at) = objects.Count > 0 ? Pick(objects) : (root.AsObject(), "$");
            target["__FUZZ_NAME__"] = 1;
            var name = Pick(["\\ud800", "a\\u0000b", "\\u0001", " lead", "\\udfff\\ud800", new string('p', 5000)]);
            body = Encoding.UTF8.GetBytes(root.ToJsonString().Replace("__FUZZ_NAME__", name, StringComparison.Ordinal));
            return $"property name {name[..Math.Min(20, name.Length)]} in {at}";
        }
        var slot = Pick(slots);
        if (slot.Property is not null)
        {
            slot.Parent.AsObject()[slot.Property] = "__FUZZ_MARKER__";
        }
        else
        {
            slot.Parent.AsArray()[slot.Index] = "__FUZZ_MARKER__";
        }
        path = slot.Path;
        var value = Pick(JsonValues);
        body = Encoding.UTF8.GetBytes(root.ToJsonString().Replace(marker, value, StringComparison.Ordinal));
        return $"json {path} = {(value.Length > 40 ? value[..40] + "..." : value)}";
    }

    static void Collect(JsonNode node, string path, List<(JsonNode, string?, int, string)> slots)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var (key, child) in o.ToList())
                {
                    slots.Add((o, key, -1, $"{path}.{key}"));
                    if (child is not null)
                    {
                        Collect(child, $"{path}.{key}", slots);
                    }
                }
                break;
            case JsonArray a:
                for (var i = 0; i < a.Count; i++)
                {
                    slots.Add((a, null, i, $"{path}[{i}]"));
                    if (a[i] is { } child)
                    {
                        Collect(child, $"{path}[{i}]", slots);
                    }
                }
                break;
        }
    }

    static void CollectObjects(JsonNode node, string path, List<(JsonObject, string)> objects)
    {
        switch (node)
        {
            case JsonObject o:
                objects.Add((o, path));
                foreach (var (key, child) in o.ToList())
                {
                    if (child is not null)
                    {
                        CollectObjects(child, $"{path}.{key}", objects);
                    }
                }
                break;
            case JsonArray a:
                for (var i = 0; i < a.Count; i++)
                {
                    if (a[i] is { } child)
                    {
                        CollectObjects(child, $"{path}[{i}]", objects);
                    }
                }
                break;
        }
    }

    T Pick<T>(IReadOnlyList<T> items) => items[_random.Next(items.Count)];
}

/// <summary>The media type of a response, or "" when it has none.</summary>
static class ResponseExtensions
{
    public static string MediaType(this HttpResponseMessage response) => response.Content.Headers.ContentType?.MediaType ?? "";
}
