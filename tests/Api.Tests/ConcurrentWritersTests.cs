using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Dapper;
using Forecaster.Api.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Npgsql;

namespace Forecaster.Api.Tests;

/// <summary>The service on a real port (Kestrel) with the rate limiter off, so that many writers really run at once.</summary>
public sealed class KestrelFixture : IAsyncLifetime
{
    WebApplicationFactory<Program>? _factory;

    public string ConnectionString { get; private set; } = "";
    public Uri BaseAddress { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        ConnectionString = await TestCluster.CreateDatabaseAsync("writers");
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }
        _factory = new WebApplicationFactory<Program>().WithWebHostBuilder(web =>
        {
            web.UseSetting("FORECASTER_DB", ConnectionString);
            web.UseSetting("urls", $"http://127.0.0.1:{port}");
            web.UseSetting("Forecaster:ApiKeys:0", ApiFixture.ApiKey);
            web.UseSetting("Forecaster:RateLimit:Enabled", "false");
        });
        _factory.UseKestrel();
        _factory.StartServer();
        BaseAddress = new Uri($"http://127.0.0.1:{port}");
        await Task.CompletedTask;
    }

    public HttpClient Writer()
    {
        var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromMinutes(2) };
        client.DefaultRequestHeaders.Add("X-Api-Key", ApiFixture.ApiKey);
        return client;
    }

    public Task DisposeAsync()
    {
        _factory?.Dispose();
        NpgsqlConnection.ClearAllPools();
        return Task.CompletedTask;
    }
}

/// <summary>Issue 13: writers upserting overlapping (resource, metric, timestamp) keys at once never fail, and the last write wins.</summary>
public sealed class ConcurrentWritersTests(KestrelFixture api) : IClassFixture<KestrelFixture>
{
    const int Writers = 8;
    const int RequestsPerWriter = 24;
    static readonly string[] Shared = ["cw-a", "cw-b", "cw-c"];
    static readonly string[] Metrics = ["qps", "cpu_cores"];

    [Fact]
    public async Task EightWritersOnOverlappingKeysAllSucceedAndEachKeyHoldsOneOfTheWrittenValues()
    {
        using (var setup = api.Writer())
        {
            foreach (var name in Shared.Concat(Enumerable.Range(0, Writers).Select(w => $"cw-solo-{w}")))
            {
                var put = await setup.PutAsync($"/api/v1/resources/{name}",
                    ApiFixture.Json("""{"kind":"service","group":"cw","loadMetric":"qps","policy":{"minReplicas":1,"maxReplicas":10}}"""));
                Assert.True(put.IsSuccessStatusCode, await put.Content.ReadAsStringAsync());
            }
        }
        // Hours well inside the accepted window of the real clock.
        var hour0 = TimeProvider.System.GetUtcNow().UtcDateTime.Date.AddDays(-3);
        string Ts(int h) => hour0.AddHours(h).ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

        var written = new ConcurrentDictionary<(string Resource, string Metric, int Hour), ConcurrentBag<double>>();
        var lastSolo = new ConcurrentDictionary<(string Resource, string Metric, int Hour), double>();
        var failures = new ConcurrentQueue<string>();
        using var start = new SemaphoreSlim(0, Writers);

        var tasks = Enumerable.Range(0, Writers).Select(w => Task.Run(async () =>
        {
            using var client = api.Writer();
            var random = new Random(w);
            await start.WaitAsync();
            for (var r = 0; r < RequestsPerWriter; r++)
            {
                // Overlapping windows of the shared resources, rows in a different order in every request (the order
                // that used to deadlock), a repeated key now and then, and on CSV requests a new resource created on the
                // fly plus this writer's own keys, always the same ones, written sequentially.
                var rows = new List<(string Resource, string Metric, int Hour, double Value)>();
                var offset = random.Next(0, 6);
                var seq = 0;
                double Value() => w * 1_000_000 + r * 1_000 + seq++;
                var resource = Shared[random.Next(Shared.Length)];
                foreach (var metric in Metrics)
                {
                    for (var h = offset; h < offset + 12; h++)
                    {
                        rows.Add((resource, metric, h, Value()));
                    }
                }
                rows.Add(rows[random.Next(rows.Count)] with { Value = Value() });
                var csv = r % 2 == 1;
                if (csv)
                {
                    var other = Shared[random.Next(Shared.Length)];
                    for (var h = 0; h < 8; h++)
                    {
                        rows.Add((other, "qps", random.Next(0, 18), Value()));
                        rows.Add(($"cw-solo-{w}", "qps", h, Value()));
                    }
                    rows.Add(($"cw-new-{random.Next(4)}", "qps", random.Next(0, 18), Value()));
                }
                rows = [.. rows.OrderBy(_ => random.Next())];

                HttpResponseMessage response;
                if (csv)
                {
                    var body = new StringBuilder("resource,metric,timestamp,value\n");
                    foreach (var x in rows)
                    {
                        body.Append(CultureInfo.InvariantCulture, $"{x.Resource},{x.Metric},{Ts(x.Hour)},{x.Value}\n");
                    }
                    response = await client.PostAsync("/api/v1/samples?createResources=true", ApiFixture.Csv(body.ToString()));
                }
                else
                {
                    var samples = string.Join(",", rows.Select(x => $$"""{"metric":"{{x.Metric}}","timestamp":"{{Ts(x.Hour)}}","value":{{x.Value}}}"""));
                    response = await client.PostAsync($"/api/v1/resources/{resource}/samples", ApiFixture.Json($$"""{"samples":[{{samples}}]}"""));
                }
                if (response.StatusCode != HttpStatusCode.OK)
                {
                    failures.Enqueue($"writer {w} request {r}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                    continue;
                }
                // Within one request the last occurrence of a key is the one written.
                foreach (var group in rows.GroupBy(x => (x.Resource, x.Metric, x.Hour)))
                {
                    var value = group.Last().Value;
                    if (group.Key.Resource.StartsWith("cw-solo-", StringComparison.Ordinal))
                    {
                        lastSolo[group.Key] = value;
                    }
                    else
                    {
                        written.GetOrAdd(group.Key, _ => []).Add(value);
                    }
                }
            }
        })).ToList();
        start.Release(Writers);
        await Task.WhenAll(tasks);

        Assert.Empty(failures);
        await using var conn = new NpgsqlConnection(api.ConnectionString);
        var stored = (await conn.QueryAsync<(string Resource, string Metric, DateTime Ts, double Value)>("""
            SELECT r.name, s.metric, sa.ts, sa.value
            FROM sample_points sa JOIN series s ON s.id = sa.series_id JOIN resources r ON r.id = s.resource_id
            """)).ToDictionary(x => (x.Resource, x.Metric, (int)(x.Ts.ToUniversalTime() - hour0).TotalHours), x => x.Value);

        Assert.Equal(written.Count + lastSolo.Count, stored.Count);
        foreach (var (key, values) in written)
        {
            Assert.True(stored.TryGetValue(key, out var value), $"{key} was not stored");
            Assert.Contains(value, values);
        }
        foreach (var (key, last) in lastSolo)
        {
            Assert.Equal(last, stored[key]);
        }
        // Resources created concurrently by several writers exist once each.
        Assert.Equal(written.Keys.Select(k => k.Resource).Where(n => n.StartsWith("cw-new-", StringComparison.Ordinal)).Distinct().Count(),
            await conn.ExecuteScalarAsync<int>("SELECT count(*) FROM resources WHERE name LIKE 'cw-new-%'"));
    }

    [Fact]
    public async Task AWriteChosenAsADeadlockVictimIsRetriedAndItsValuesWin()
    {
        using var client = api.Writer();
        var put = await client.PutAsync("/api/v1/resources/cw-victim",
            ApiFixture.Json("""{"kind":"service","group":"cw","loadMetric":"qps","policy":{"minReplicas":1,"maxReplicas":10}}"""));
        Assert.True(put.IsSuccessStatusCode);
        var hour0 = TimeProvider.System.GetUtcNow().UtcDateTime.Date.AddDays(-2);
        string Body(double a, double b) => $$"""
            {"samples":[{"metric":"qps","timestamp":"{{hour0:yyyy-MM-dd'T'HH:mm:ss'Z'}}","value":{{a}}},{"metric":"qps","timestamp":"{{hour0.AddHours(1):yyyy-MM-dd'T'HH:mm:ss'Z'}}","value":{{b}}}]}
            """;
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/api/v1/resources/cw-victim/samples", ApiFixture.Json(Body(1, 2)))).StatusCode);

        // Another session holds the second key, the write locks the first and waits for the second, then the other
        // session asks for the first: a deadlock, which PostgreSQL breaks by failing the write, the first to wait.
        await using var other = new NpgsqlConnection(api.ConnectionString);
        await other.OpenAsync();
        await using var tx = await other.BeginTransactionAsync();
        const string key = "series_id = (SELECT s.id FROM series s JOIN resources r ON r.id = s.resource_id WHERE r.name = 'cw-victim' AND s.metric = 'qps') AND hour = @ts";
        // Each sample is its hour's block (migration 0140): holding the block holds the key.
        await other.ExecuteAsync($"SELECT 1 FROM samples WHERE {key} FOR UPDATE", new { ts = hour0.AddHours(1) }, tx);
        var write = client.PostAsync("/api/v1/resources/cw-victim/samples", ApiFixture.Json(Body(10, 20)));
        var otherPid = other.ProcessID;
        await using (var watch = new NpgsqlConnection(api.ConnectionString))
        {
            for (var i = 0; ; i++)
            {
                var waiting = await watch.ExecuteScalarAsync<int>(
                    "SELECT count(*)::int FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND @otherPid = ANY(pg_blocking_pids(pid))",
                    new { otherPid });
                if (waiting > 0)
                {
                    break;
                }
                Assert.True(i < 600, "the write never waited for the held row");
                await Task.Delay(50);
            }
        }
        await other.ExecuteAsync($"UPDATE samples SET vals = '{{5}}' WHERE {key}", new { ts = hour0 }, tx);
        await tx.CommitAsync();

        var response = await write;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var values = (await other.QueryAsync<double>(
            "SELECT value FROM sample_points sa JOIN series s ON s.id = sa.series_id JOIN resources r ON r.id = s.resource_id WHERE r.name = 'cw-victim' ORDER BY ts")).ToList();
        // The retried write committed after the other session: its values are the last written.
        Assert.Equal([10.0, 20.0], values);
    }
}
