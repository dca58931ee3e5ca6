using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;

namespace Forecaster.Bench.Ingestion;

/// <summary>
/// Issue 13's concurrent-writer benchmark against a running service: W writers upsert samples for a fixed time through
/// POST /api/v1/resources/{name}/samples (JSON) and POST /api/v1/samples (CSV), alternately, each request 25 rows in a
/// shuffled order. "overlapping": every writer of the case writes the same two resources' windows (the keys of
/// concurrent requests overlap heavily, the case that deadlocked); "disjoint": each writer has its own two resources,
/// the same work otherwise. Prints writes/s and errors per case, and overlapping ÷ disjoint (goal ≥ 0.5, zero errors).
/// Usage: writers BASE_URL API_KEY [seconds=60] [writer counts=8,32]
/// </summary>
public static class WritersBench
{
    sealed record Outcome(string Mode, int Writers, long Writes, long Errors, double Seconds, IReadOnlyDictionary<string, long> ErrorKinds, double P50Ms, double P99Ms);

    public static async Task<int> Run(string[] args)
    {
        if (args.Length < 2)
        {
            Console.Error.WriteLine("usage: writers BASE_URL API_KEY [seconds=60] [writer counts=8,32]");
            return 2;
        }
        var baseUrl = new Uri(args[0]);
        var key = args[1];
        var seconds = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 60;
        var counts = args.Length > 3 ? args[3].Split(',').Select(c => int.Parse(c, CultureInfo.InvariantCulture)).ToArray() : [8, 32];

        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 256 }) { BaseAddress = baseUrl, Timeout = TimeSpan.FromMinutes(2) };
        http.DefaultRequestHeaders.Add("X-Api-Key", key);
        // A short warm-up (JIT, pools, plan caches) that is not reported, so the first case is not penalised.
        Console.Error.WriteLine($"warm-up: {counts[0]} writers, 5 s ...");
        await RunCaseAsync(http, "disjoint", counts[0], 5);
        var outcomes = new List<Outcome>();
        foreach (var writers in counts)
        {
            // Disjoint first, then overlapping, for each writer count: neighbours in time share the machine's state.
            foreach (var mode in new[] { "disjoint", "overlapping" })
            {
                Console.Error.WriteLine($"{writers} writers, {mode} keys, {seconds} s ...");
                outcomes.Add(await RunCaseAsync(http, mode, writers, seconds));
            }
        }

        Console.WriteLine($"{"case",-26} {"writes",8} {"writes/s",9} {"errors",7} {"p50 ms",8} {"p99 ms",8}");
        foreach (var o in outcomes)
        {
            Console.WriteLine($"{$"{o.Writers} writers, {o.Mode}",-26} {o.Writes,8} {o.Writes / o.Seconds,9:F1} {o.Errors,7} {o.P50Ms,8:F1} {o.P99Ms,8:F1}"
                + (o.ErrorKinds.Count == 0 ? "" : "   " + string.Join(", ", o.ErrorKinds.Select(k => $"{k.Key}: {k.Value}"))));
        }
        foreach (var writers in counts)
        {
            var d = outcomes.Single(o => o.Writers == writers && o.Mode == "disjoint");
            var v = outcomes.Single(o => o.Writers == writers && o.Mode == "overlapping");
            var ratio = v.Writes / v.Seconds / (d.Writes / d.Seconds);
            Console.WriteLine($"{writers} writers: overlapping / disjoint throughput {ratio:F2} (goal >= 0.50), errors {v.Errors + d.Errors} (goal 0)");
        }
        return outcomes.Any(o => o.Errors > 0) ? 1 : 0;
    }

    static async Task<Outcome> RunCaseAsync(HttpClient http, string mode, int writers, int seconds)
    {
        var prefix = $"wb-{writers}-{mode[0]}-{Guid.NewGuid():N}"[..20];
        string Resource(int writer, int i) => mode == "overlapping" ? $"{prefix}-{i}" : $"{prefix}-{writer}-{i}";
        foreach (var name in Enumerable.Range(0, writers).SelectMany(w => new[] { Resource(w, 0), Resource(w, 1) }).Distinct())
        {
            var put = await http.PutAsync($"/api/v1/resources/{name}", new StringContent(
                """{"kind":"service","group":"writers-bench","loadMetric":"qps","policy":{"minReplicas":1,"maxReplicas":10}}""", Encoding.UTF8, "application/json"));
            put.EnsureSuccessStatusCode();
        }
        var hour0 = TimeProvider.System.GetUtcNow().UtcDateTime.Date.AddDays(-2);
        string Ts(int h) => hour0.AddHours(h).ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

        long writes = 0, errors = 0;
        var kinds = new System.Collections.Concurrent.ConcurrentDictionary<string, long>();
        var latencies = new System.Collections.Concurrent.ConcurrentBag<double>();
        var clock = Stopwatch.StartNew();
        var end = TimeSpan.FromSeconds(seconds);
        await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            var random = new Random(w * 7919 + writers);
            for (var r = 0; clock.Elapsed < end; r++)
            {
                var offset = random.Next(0, 6);
                var rows = new List<(string Resource, string Metric, int Hour, double Value)>();
                var csv = r % 2 == 1;
                var pick = random.Next(2);
                var resource = Resource(w, pick);
                for (var h = offset; h < offset + 12; h++)
                {
                    rows.Add((resource, "qps", h, random.Next(0, 100_000) / 10.0));
                    rows.Add((csv ? Resource(w, 1 - pick) : resource, "cpu_cores", h, random.Next(0, 1000) / 100.0));
                }
                rows.Add(rows[random.Next(rows.Count)] with { Value = 1.5 });
                rows = [.. rows.OrderBy(_ => random.Next())];
                HttpContent body;
                string path;
                if (csv)
                {
                    var text = new StringBuilder("resource,metric,timestamp,value\n");
                    foreach (var x in rows)
                    {
                        text.Append(CultureInfo.InvariantCulture, $"{x.Resource},{x.Metric},{Ts(x.Hour)},{x.Value}\n");
                    }
                    body = new StringContent(text.ToString(), Encoding.UTF8, "text/csv");
                    path = "/api/v1/samples";
                }
                else
                {
                    body = new StringContent("{\"samples\":[" + string.Join(",", rows.Select(x =>
                        string.Create(CultureInfo.InvariantCulture, $$"""{"metric":"{{x.Metric}}","timestamp":"{{Ts(x.Hour)}}","value":{{x.Value}}}"""))) + "]}",
                        Encoding.UTF8, "application/json");
                    path = $"/api/v1/resources/{resource}/samples";
                }
                var started = Stopwatch.GetTimestamp();
                string? error = null;
                try
                {
                    using var response = await http.PostAsync(path, body);
                    if (response.StatusCode != HttpStatusCode.OK)
                    {
                        error = ((int)response.StatusCode).ToString(CultureInfo.InvariantCulture);
                    }
                }
                catch (HttpRequestException e)
                {
                    error = e.GetType().Name;
                }
                latencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                if (error is null)
                {
                    Interlocked.Increment(ref writes);
                }
                else
                {
                    Interlocked.Increment(ref errors);
                    kinds.AddOrUpdate(error, 1, (_, n) => n + 1);
                }
            }
        })));
        var elapsed = clock.Elapsed.TotalSeconds;
        var sorted = latencies.Order().ToArray();
        double Pct(double p) => sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))];
        return new Outcome(mode, writers, writes, errors, elapsed, new Dictionary<string, long>(kinds), Pct(0.5), Pct(0.99));
    }
}
