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
    /// The `matrix` result of query_range, read with a forward-only reader (a month of per-minute points is megabytes of
    /// JSON). Values are strings; `NaN`, `+Inf`, `-Inf` are gaps. Staleness markers never reach the API: Prometheus
    /// ends the series there, which is a gap as well.
    /// </summary>
    /// <param name="points">The points a series has at most (the request's range over its step), so its list never grows.</param>
    public static List<PromSeries> ParseMatrix(ReadOnlySpan<byte> json, int points = 0)
    {
        var reader = new Utf8JsonReader(json);
        var result = new List<PromSeries>();
        string? status = null;
        while (reader.Read())
        {
            if (reader.TokenType != JsonTokenType.PropertyName)
            {
                continue;
            }
            if (reader.CurrentDepth == 1 && reader.ValueTextEquals("status"u8))
            {
                reader.Read();
                status = reader.GetString();
            }
            else if (reader.CurrentDepth == 2 && reader.ValueTextEquals("resultType"u8))
            {
                reader.Read();
                if (reader.GetString() != "matrix")
                {
                    throw new PrometheusQueryException($"expected a range vector (matrix), got {reader.GetString()}");
                }
            }
            else if (reader.CurrentDepth == 2 && reader.ValueTextEquals("result"u8))
            {
                reader.Read();
                while (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
                {
                    // Sized for the first series only: a query that wrongly returns thousands must not reserve a range for each.
                    result.Add(ReadSeries(ref reader, result.Count == 0 ? points : 0));
                }
            }
            else if (reader.CurrentDepth == 1 && !reader.ValueTextEquals("data"u8))
            {
                // errorType, warnings...
                reader.Read();
                reader.Skip();
            }
        }
        return status == "success" ? result : throw new PrometheusQueryException($"Prometheus answered status '{status}'");
    }

    static PromSeries ReadSeries(ref Utf8JsonReader reader, int capacity)
    {
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        var points = new List<(DateTime, double)>(capacity);
        var gaps = 0;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("metric"u8))
            {
                reader.Read();
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var key = reader.GetString()!;
                    reader.Read();
                    labels[key] = reader.GetString() ?? "";
                }
            }
            else if (reader.ValueTextEquals("values"u8))
            {
                reader.Read();
                while (reader.Read() && reader.TokenType == JsonTokenType.StartArray)
                {
                    reader.Read();
                    var ms = (long)Math.Round(reader.GetDouble() * 1000);
                    reader.Read();
                    var raw = reader.HasValueSequence ? System.Buffers.BuffersExtensions.ToArray(reader.ValueSequence) : reader.ValueSpan;
                    reader.Read();
                    if (double.TryParse(raw, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && double.IsFinite(v))
                    {
                        points.Add((DateTime.UnixEpoch.AddMilliseconds(ms), v));
                    }
                    else
                    {
                        gaps++;
                    }
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
        return new PromSeries(labels, points) { Gaps = gaps };
    }
}
