using System.Buffers;
using System.Globalization;
using System.Net.Http.Headers;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Options;
using Polly;

namespace Forecaster.Api.Sources;

/// <summary>One series a query returned: its labels and its points (non-finite values already dropped as gaps).</summary>
public sealed record PromSeries(IReadOnlyDictionary<string, string> Labels, List<(DateTime Ts, double Value)> Points)
{
    /// <summary>The label set as PromQL writes it: {job="api",pod="a"}.</summary>
    public string Describe() => "{" + string.Join(",", Labels.OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => $"{l.Key}=\"{l.Value}\"")) + "}";

    /// <summary>NaN, ±Inf and unparsable values the server sent, left out as gaps.</summary>
    public int Gaps { get; set; }
}

/// <summary>Prometheus answered with an error (bad PromQL, a timeout on its side, a refused range).</summary>
public sealed class PrometheusQueryException(string message) : Exception(message);

/// <summary>
/// Reads `/api/v1/query_range` from the configured servers, each through its own HttpClient with a resilience pipeline
/// (retry with jitter, a timeout per attempt, a circuit breaker per server). Long ranges are split so that no request
/// asks for more than Prometheus' 11,000 points per series.
/// </summary>
public sealed class PrometheusClient(IHttpClientFactory http, IOptions<PrometheusOptions> options)
{
    /// <summary>Prometheus refuses a query_range whose (end − start) / step + 1 exceeds this.</summary>
    public const int MaxPointsPerRequest = 11_000;

    readonly Dictionary<string, SemaphoreSlim> _gates = options.Value.AllServers().ToDictionary(s => s.Name, s => new SemaphoreSlim(s.Server.MaxConcurrency));

    public static string ClientName(string server) => "prometheus:" + server;

    /// <summary>Registers one HttpClient per configured server.</summary>
    public static void AddClients(IServiceCollection services, PrometheusOptions options)
    {
        services.AddSingleton<PrometheusClient>();
        // The factory exists even with no server configured (then no source can be defined).
        services.AddHttpClient();
        foreach (var (name, server) in options.AllServers())
        {
            var s = server;
            services.AddHttpClient(ClientName(name), c =>
                {
                    c.BaseAddress = new Uri(s.Url!.TrimEnd('/') + "/");
                    // The resilience pipeline bounds each attempt and the whole request.
                    c.Timeout = Timeout.InfiniteTimeSpan;
                    if (s.BearerToken is not null)
                    {
                        c.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", s.BearerToken);
                    }
                    else if (s.Username is not null)
                    {
                        c.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic",
                            Convert.ToBase64String(Encoding.UTF8.GetBytes($"{s.Username}:{s.Password}")));
                    }
                    foreach (var (header, value) in s.Headers)
                    {
                        c.DefaultRequestHeaders.TryAddWithoutValidation(header, value);
                    }
                })
                .ConfigurePrimaryHttpMessageHandler(() => Handler(s))
                .AddResilienceHandler("prometheus-" + (name.Length == 0 ? "default" : name), b => Resilience(b, s));
        }
    }

    static SocketsHttpHandler Handler(PrometheusServerOptions s)
    {
        var handler = new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5), AutomaticDecompression = System.Net.DecompressionMethods.All };
        if (s.CaFile is not null)
        {
            // A private CA: trust exactly it for this server, not the machine's store.
            var ca = X509CertificateLoader.LoadCertificateFromFile(s.CaFile);
            handler.SslOptions.RemoteCertificateValidationCallback = (_, cert, _, errors) =>
            {
                if (cert is null)
                {
                    return false;
                }
                if (errors == System.Net.Security.SslPolicyErrors.None)
                {
                    return true;
                }
                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.Add(ca);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return chain.Build(new X509Certificate2(cert)) && (errors & System.Net.Security.SslPolicyErrors.RemoteCertificateNameMismatch) == 0;
            };
        }
        return handler;
    }

    static void Resilience(ResiliencePipelineBuilder<HttpResponseMessage> b, PrometheusServerOptions s)
    {
        var attempt = TimeSpan.FromSeconds(s.TimeoutSeconds);
        b.AddTimeout(attempt * (s.Retries + 1) + TimeSpan.FromSeconds(2 * s.Retries + 1));
        if (s.Retries > 0)
        {
            b.AddRetry(new HttpRetryStrategyOptions
            {
                MaxRetryAttempts = s.Retries,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = TimeSpan.FromMilliseconds(300),
            });
        }
        // Per server: a Prometheus that keeps failing is left alone for a while instead of being hammered by every source.
        b.AddCircuitBreaker(new HttpCircuitBreakerStrategyOptions
        {
            FailureRatio = 0.5,
            MinimumThroughput = 20,
            SamplingDuration = TimeSpan.FromSeconds(Math.Max(60, 2 * s.TimeoutSeconds + 1)),
            BreakDuration = TimeSpan.FromSeconds(15),
        });
        b.AddTimeout(attempt);
    }

    public bool IsKnown(string server) => _gates.ContainsKey(server);

    /// <summary>
    /// The series <paramref name="query"/> returns over [<paramref name="start"/>, <paramref name="end"/>] at
    /// <paramref name="step"/>, read in requests of at most <see cref="MaxPointsPerRequest"/> points per series;
    /// the chunks of one series (same labels) are joined.
    /// </summary>
    public async Task<List<PromSeries>> QueryRangeAsync(string server, string query, DateTime start, DateTime end, TimeSpan step, CancellationToken ct)
    {
        var client = http.CreateClient(ClientName(server));
        var gate = _gates[server];
        var bySeries = new Dictionary<string, PromSeries>(StringComparer.Ordinal);
        var chunk = step * (MaxPointsPerRequest - 1);
        for (var from = start; from <= end; from += chunk + step)
        {
            var to = from + chunk < end ? from + chunk : end;
            // Answers are hundreds of kilobytes: read into a pooled buffer rather than a new large-object array each.
            var body = ArrayPool<byte>.Shared.Rent(1 << 16);
            var length = 0;
            await gate.WaitAsync(ct);
            try
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/query_range")
                {
                    Content = new FormUrlEncodedContent([
                        new("query", query),
                        new("start", Unix(from)),
                        new("end", Unix(to)),
                        new("step", step.TotalSeconds.ToString(CultureInfo.InvariantCulture)),
                    ]),
                };
                using var response = await client.SendAsync(request, HttpCompletionOption.ResponseContentRead, ct);
                // The answer is already buffered (ResponseContentRead, within the resilience pipeline's timeout).
                await using var stream = await response.Content.ReadAsStreamAsync(ct);
                int read;
                while ((read = await stream.ReadAsync(body.AsMemory(length), ct)) > 0)
                {
                    length += read;
                    if (length == body.Length)
                    {
                        var larger = ArrayPool<byte>.Shared.Rent(2 * body.Length);
                        body.AsSpan(0, length).CopyTo(larger);
                        ArrayPool<byte>.Shared.Return(body);
                        body = larger;
                    }
                }
                if (!response.IsSuccessStatusCode)
                {
                    throw new PrometheusQueryException($"Prometheus answered {(int)response.StatusCode}: {ErrorText(body.AsMemory(0, length))}");
                }
            }
            catch
            {
                ArrayPool<byte>.Shared.Return(body);
                throw;
            }
            finally
            {
                gate.Release();
            }
            List<PromSeries> answer;
            try
            {
                // The first chunk's series holds the whole range once the later chunks are appended (up to a few
                // megabytes reserved: a sparse series over a long range at a fine step must not reserve the range).
                answer = ParseMatrix(body.AsSpan(0, length), (int)Math.Min(((from == start ? end : to) - from) / step + 1, 1 << 17));
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(body);
            }
            foreach (var series in answer)
            {
                var key = series.Describe();
                if (bySeries.TryGetValue(key, out var known))
                {
                    known.Points.AddRange(series.Points);
                    known.Gaps += series.Gaps;
                }
                else
                {
                    bySeries.Add(key, series);
                }
            }
        }
        return [.. bySeries.Values];
    }

    static string Unix(DateTime t) => (new DateTimeOffset(t, TimeSpan.Zero).ToUnixTimeMilliseconds() / 1000.0).ToString("0.###", CultureInfo.InvariantCulture);

    static string ErrorText(ReadOnlyMemory<byte> body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            if (doc.RootElement.TryGetProperty("error", out var e))
            {
                return e.GetString() ?? "";
            }
        }
        catch (JsonException)
        {
        }
        var text = Encoding.UTF8.GetString(body.Span[..Math.Min(body.Length, 300)]);
        return text.Length == 0 ? "(empty body)" : text;
    }

    /// <summary>
    /// The `matrix` result of query_range (https://prometheus.io/docs/prometheus/latest/querying/api/#range-vectors):
    /// {"status":"success","data":{"resultType":"matrix","result":[{"metric":{...},"values":[[1733000000,"12.5"],...]}]}}.
    /// The points are nearly all of an answer (a month of per-minute points is megabytes), so the envelope is walked by
    /// hand and each `values` array is scanned as Prometheus, Thanos and VictoriaMetrics write it
    /// (<see cref="ScanValues"/>); labels, strings and whatever else the answer holds are read by Utf8JsonReader, each
    /// value as a document of its own, and so is a `values` array the scan does not recognise. Values are strings;
    /// `NaN`, `+Inf`, `-Inf` are gaps. Staleness markers never reach the API: Prometheus ends the series there, which
    /// is a gap as well. Malformed JSON is a <see cref="JsonException"/>.
    /// </summary>
    /// <param name="points">The points a series has at most (the request's range over its step), so its list never grows.</param>
    public static List<PromSeries> ParseMatrix(ReadOnlySpan<byte> json, int points = 0)
    {
        var result = new List<PromSeries>();
        string? status = null;
        var c = new JsonWalk(json);
        var top = true;
        while (c.NextMember(ref top, out var key))
        {
            if (key.SequenceEqual("status"u8))
            {
                status = c.String();
            }
            else if (key.SequenceEqual("data"u8) && c.Peek() == (byte)'{')
            {
                var data = true;
                while (c.NextMember(ref data, out var field))
                {
                    if (field.SequenceEqual("resultType"u8))
                    {
                        var type = c.String();
                        if (type != "matrix")
                        {
                            throw new PrometheusQueryException($"expected a range vector (matrix), got {type}");
                        }
                    }
                    else if (field.SequenceEqual("result"u8) && c.Peek() == (byte)'[')
                    {
                        var items = true;
                        while (c.NextItem(ref items))
                        {
                            // Sized for the first series only: a query that wrongly returns thousands must not reserve a range for each.
                            result.Add(ReadSeries(ref c, result.Count == 0 ? points : 0));
                        }
                    }
                    else
                    {
                        c.Value();
                    }
                }
            }
            else
            {
                // errorType, error, warnings, infos...
                c.Value();
            }
        }
        c.End();
        return status == "success" ? result : throw new PrometheusQueryException($"Prometheus answered status '{status}'");
    }

    static PromSeries ReadSeries(ref JsonWalk c, int capacity)
    {
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        var points = new List<(DateTime, double)>(capacity);
        var gaps = 0;
        var first = true;
        while (c.NextMember(ref first, out var key))
        {
            if (key.SequenceEqual("metric"u8))
            {
                var reader = new Utf8JsonReader(c.Value());
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    throw new JsonException("a series' metric is not an object");
                }
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var name = reader.GetString()!;
                    reader.Read();
                    labels[name] = reader.GetString() ?? "";
                }
            }
            else if (key.SequenceEqual("values"u8))
            {
                var start = c.Position;
                var before = points.Count;
                var scanned = ScanValues(c.Rest, points, out var read);
                if (scanned >= 0)
                {
                    gaps += scanned;
                    c.Advance(read);
                }
                else
                {
                    points.RemoveRange(before, points.Count - before);
                    c.Position = start;
                    gaps += ReadValues(c.Value(), points);
                }
            }
            else
            {
                c.Value();
            }
        }
        return new PromSeries(labels, points) { Gaps = gaps };
    }

    /// <summary>
    /// Scans a `values` array as these servers write it, `[[1733000000,"12.5"],[1733000060.5,"NaN"]]` (whitespace
    /// allowed between tokens), appending the finite points: a timestamp of unsigned decimal seconds with at most three
    /// decimals (milliseconds, Prometheus' resolution), a value string without escapes parsed as a double. Returns the
    /// gaps (values that are not finite numbers) and the bytes read, or -1 for anything else, which the caller reads
    /// with Utf8JsonReader instead (<see cref="ReadValues"/>); the points it appended are then the caller's to drop.
    /// </summary>
    internal static int ScanValues(ReadOnlySpan<byte> s, List<(DateTime Ts, double Value)> points, out int read)
    {
        read = 0;
        var gaps = 0;
        var i = SkipSpace(s, 0);
        if (i >= s.Length || s[i] != (byte)'[')
        {
            return -1;
        }
        i = SkipSpace(s, i + 1);
        if (i < s.Length && s[i] == (byte)']')
        {
            read = i + 1;
            return 0;
        }
        while (true)
        {
            if (i >= s.Length || s[i] != (byte)'[')
            {
                return -1;
            }
            i = SkipSpace(s, i + 1);
            // Seconds: at most 11 digits (up to year 5138, within DateTime), then up to three decimals.
            long seconds = 0;
            var digits = 0;
            while (i < s.Length && (uint)(s[i] - '0') <= 9 && digits < 11)
            {
                seconds = seconds * 10 + (s[i++] - '0');
                digits++;
            }
            if (digits == 0)
            {
                return -1;
            }
            long ms = seconds * 1000;
            if (i < s.Length && s[i] == (byte)'.')
            {
                i++;
                var scale = 100;
                var decimals = 0;
                while (i < s.Length && (uint)(s[i] - '0') <= 9 && decimals < 3)
                {
                    ms += (s[i++] - '0') * scale;
                    scale /= 10;
                    decimals++;
                }
                if (decimals == 0)
                {
                    return -1;
                }
            }
            i = SkipSpace(s, i);
            if (i >= s.Length || s[i] != (byte)',')
            {
                return -1;
            }
            i = SkipSpace(s, i + 1);
            if (i >= s.Length || s[i] != (byte)'"')
            {
                return -1;
            }
            i++;
            var length = s[i..].IndexOfAny((byte)'"', (byte)'\\');
            if (length < 0 || s[i + length] != (byte)'"')
            {
                return -1;
            }
            if (ParseValue(s.Slice(i, length), out var v) && double.IsFinite(v))
            {
                points.Add((DateTime.UnixEpoch.AddMilliseconds(ms), v));
            }
            else
            {
                gaps++;
            }
            i = SkipSpace(s, i + length + 1);
            if (i >= s.Length || s[i] != (byte)']')
            {
                return -1;
            }
            i = SkipSpace(s, i + 1);
            if (i >= s.Length)
            {
                return -1;
            }
            if (s[i] == (byte)']')
            {
                read = i + 1;
                return gaps;
            }
            if (s[i] != (byte)',')
            {
                return -1;
            }
            i = SkipSpace(s, i + 1);
        }
    }

    /// <summary>
    /// A point's value as Prometheus writes it (Go's strconv.FormatFloat(v, 'f', -1, 64): "12.5", "2345670000",
    /// "0.001"): up to 15 digits with an optional decimal point are an integer w below 2^53 and a power of ten 10^k
    /// with k ≤ 15, both exact doubles, so the one division w / 10^k is correctly rounded (Clinger's fast path:
    /// W. D. Clinger, "How to Read Floating Point Numbers Accurately", PLDI 1990). Anything else (exponents, more
    /// digits, NaN, Inf) goes to double.TryParse.
    /// </summary>
    internal static bool ParseValue(ReadOnlySpan<byte> text, out double value)
    {
        var negative = text.Length > 0 && text[0] == (byte)'-';
        var i = negative ? 1 : 0;
        long w = 0;
        var digits = 0;
        var decimals = -1;
        for (; i < text.Length; i++)
        {
            var b = text[i];
            if ((uint)(b - '0') <= 9)
            {
                w = w * 10 + (b - '0');
                digits++;
                if (decimals >= 0)
                {
                    decimals++;
                }
            }
            else if (b == (byte)'.' && decimals < 0)
            {
                decimals = 0;
            }
            else
            {
                break;
            }
        }
        if (i == text.Length && digits is > 0 and <= 15 && decimals != 0)
        {
            value = decimals > 0 ? w / PowersOfTen[decimals] : w;
            value = negative ? -value : value;
            return true;
        }
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value);
    }

    static ReadOnlySpan<double> PowersOfTen => [1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];

    /// <summary>A `values` array read token by token (what <see cref="ScanValues"/> does not recognise); returns the gaps.</summary>
    static int ReadValues(ReadOnlySpan<byte> json, List<(DateTime Ts, double Value)> points)
    {
        var reader = new Utf8JsonReader(json);
        var gaps = 0;
        reader.Read();
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw new JsonException("a series' values are not an array");
        }
        while (reader.Read() && reader.TokenType == JsonTokenType.StartArray)
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.Number)
            {
                throw new JsonException("a point is not [time, \"value\"]");
            }
            var seconds = reader.GetDouble();
            // Within DateTime (years 1 to 9999), or the point is not a time at all.
            if (!(seconds > -6.2e10 && seconds < 2.5e11))
            {
                throw new JsonException($"a point's time {seconds} is out of range");
            }
            var ms = (long)Math.Round(seconds * 1000);
            if (!reader.Read() || reader.TokenType != JsonTokenType.String)
            {
                throw new JsonException("a point is not [time, \"value\"]");
            }
            // An escaped value ("1\u002e5") is no number as written: a gap, as the scan makes it.
            ReadOnlySpan<byte> raw = reader.ValueIsEscaped ? [] : reader.ValueSpan;
            if (!reader.Read() || reader.TokenType != JsonTokenType.EndArray)
            {
                throw new JsonException("a point is not [time, \"value\"]");
            }
            if (double.TryParse(raw, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && double.IsFinite(v))
            {
                points.Add((DateTime.UnixEpoch.AddMilliseconds(ms), v));
            }
            else
            {
                gaps++;
            }
        }
        return gaps;
    }

    static int SkipSpace(ReadOnlySpan<byte> s, int i)
    {
        while (i < s.Length && s[i] is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r')
        {
            i++;
        }
        return i;
    }

    /// <summary>
    /// Walks a JSON document's objects and arrays by hand: member names and item separators here, every value that is
    /// kept or skipped checked and measured by Utf8JsonReader as a document of its own (<see cref="Value"/>).
    /// </summary>
    ref struct JsonWalk(ReadOnlySpan<byte> json)
    {
        readonly ReadOnlySpan<byte> _json = json;

        public int Position { get; set; }

        public readonly ReadOnlySpan<byte> Rest => _json[Position..];

        public void Advance(int bytes) => Position += bytes;

        /// <summary>The next byte that is not whitespace.</summary>
        public byte Peek()
        {
            Position = SkipSpace(_json, Position);
            return Position < _json.Length ? _json[Position] : throw new JsonException("the answer ends early");
        }

        void Expect(byte b)
        {
            if (Peek() != b)
            {
                throw new JsonException($"expected '{(char)b}' at byte {Position}, found '{(char)_json[Position]}'");
            }
            Position++;
        }

        /// <summary>The next member's name (an object's opening brace is read when <paramref name="first"/>); false at its end.</summary>
        public bool NextMember(ref bool first, out ReadOnlySpan<byte> name)
        {
            name = default;
            if (!Next(ref first, (byte)'{', (byte)'}'))
            {
                return false;
            }
            if (Peek() != (byte)'"')
            {
                throw new JsonException($"expected a member name at byte {Position}");
            }
            var quoted = Value();
            name = quoted.IndexOf((byte)'\\') < 0 ? quoted[1..^1] : Encoding.UTF8.GetBytes(Unquote(quoted)!);
            Expect((byte)':');
            return true;
        }

        /// <summary>Whether an array has a next item (its opening bracket is read when <paramref name="first"/>).</summary>
        public bool NextItem(ref bool first) => Next(ref first, (byte)'[', (byte)']');

        /// <summary>
        /// Whether an object or array has a next element: its opening bracket is read when <paramref name="first"/>, its closing
        /// one at the end, and the comma before every element after the first.
        /// </summary>
        bool Next(ref bool first, byte open, byte close)
        {
            var opening = first;
            if (opening)
            {
                Expect(open);
                first = false;
            }
            if (Peek() == close)
            {
                Position++;
                return false;
            }
            if (!opening)
            {
                Expect((byte)',');
            }
            return true;
        }

        /// <summary>The next value, whole (checked by Utf8JsonReader), and the position after it.</summary>
        public ReadOnlySpan<byte> Value()
        {
            Peek();
            // Whatever follows the value (a comma, a closing bracket) is the walk's, not this reader's to judge.
            var reader = new Utf8JsonReader(_json[Position..], new JsonReaderOptions { AllowMultipleValues = true });
            reader.Read();
            reader.Skip();
            var value = _json.Slice(Position, (int)reader.BytesConsumed);
            Position += value.Length;
            return value;
        }

        /// <summary>The next value as a string (null for a JSON null).</summary>
        public string? String() => Unquote(Value());

        /// <summary>Only whitespace may follow the document.</summary>
        public void End()
        {
            Position = SkipSpace(_json, Position);
            if (Position != _json.Length)
            {
                throw new JsonException($"unexpected data after the answer at byte {Position}");
            }
        }

        static string? Unquote(ReadOnlySpan<byte> value)
        {
            var reader = new Utf8JsonReader(value);
            reader.Read();
            return reader.TokenType switch
            {
                JsonTokenType.String => reader.GetString(),
                JsonTokenType.Null => null,
                _ => throw new JsonException($"expected a string, found {reader.TokenType}"),
            };
        }
    }
}
