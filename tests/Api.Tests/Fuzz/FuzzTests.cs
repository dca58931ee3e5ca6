using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Dapper;
using Forecaster.Api.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using Xunit.Abstractions;

namespace Forecaster.Api.Tests.Fuzz;

/// <summary>The service with small body limits (so overlong bodies are cheap to send) and one known resource to aim at.</summary>
public sealed class FuzzFixture : ApiFixture
{
    protected override IEnumerable<KeyValuePair<string, string?>> Settings =>
    [
        new("Forecaster:MaxJsonBodyBytes", "65536"),
        new("Forecaster:MaxCsvBodyBytes", "262144"),
        // The fuzzer is one client sending thousands of requests a second; budgets are tested elsewhere.
        new("Forecaster:RateLimit:Enabled", "false"),
    ];

    /// <summary>Errors the service logged, so a failing request's log shows the exception behind it.</summary>
    public ErrorLog Errors { get; } = new();

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        Factory.Services.GetRequiredService<ILoggerFactory>().AddProvider(Errors);
        var client = Writer();
        var put = await client.PutAsync("/api/v1/resources/fuzz-svc",
            Json("""{"kind":"service","group":"fuzz","loadMetric":"qps","policy":{"minReplicas":1,"maxReplicas":10,"capacityPerReplica":100}}"""));
        put.EnsureSuccessStatusCode();
        var samples = string.Join(',', Enumerable.Range(1, 48).Select(h =>
            $$"""{"metric":"qps","timestamp":"{{Now.AddHours(-h):yyyy-MM-ddTHH:mm:ssZ}}","value":{{100 + h}}}"""));
        (await client.PostAsync("/api/v1/resources/fuzz-svc/samples", Json($$"""{"samples":[{{samples}}]}"""))).EnsureSuccessStatusCode();
        (await client.PutAsync("/api/v1/groups/fuzz/quota", Json("""{"cpuCores":64,"memoryBytes":68719476736}"""))).EnsureSuccessStatusCode();
    }
}

/// <summary>
/// Generated hostile requests against every operation of the service's own OpenAPI document (a new endpoint is fuzzed
/// without anyone listing it). Deterministic: FORECASTER_FUZZ_SEED (default 13) and FORECASTER_FUZZ_REQUESTS (default 2400).
/// Asserts: no 5xx; every 4xx is an application/problem+json document free of .NET type and driver names, a 400 with
/// `errors` keyed by field; and a rejected write leaves every table as it was.
/// </summary>
public sealed class FuzzTests(FuzzFixture api, ITestOutputHelper output) : IClassFixture<FuzzFixture>
{
    /// <summary>
    /// Tables that change without any request: the job scheduler's own bookkeeping (Hangfire's schema). Everything else in
    /// every schema is fingerprinted.
    /// </summary>
    static readonly string[] ExcludedSchemas = ["hangfire"];

    /// <summary>Words that only appear when an internal type or driver message leaks into an answer.</summary>
    static readonly string[] Leaks = ["Forecaster.Api", "Forecaster.Planner", "System.", "Microsoft.", "Npgsql", "PostgresException", "SqlState", "   at ", "Implicit body"];

    [Fact]
    public async Task HostileRequestsAgainstEveryDocumentedEndpointNeverFailTheServiceOrStoreAnything()
    {
        var seed = EnvInt("FORECASTER_FUZZ_SEED", 13);
        var count = EnvInt("FORECASTER_FUZZ_REQUESTS", 2400);
        var client = api.Reader();
        var document = JsonDocument.Parse(await client.GetStringAsync("/swagger/v1/swagger.json")).RootElement;
        var operations = FuzzOperation.FromOpenApi(document);
        Assert.True(operations.Count >= 10, $"the OpenAPI document lists only {operations.Count} operations");

        var fingerprint = await FingerprintSql();
        var before = await Fingerprint(fingerprint);
        var generator = new HostileRequests(operations, seed, ApiFixture.ApiKey, new Dictionary<string, string>
        {
            ["name"] = "fuzz-svc",
            ["group"] = "fuzz",
            ["id"] = "1",
        });
        var failures = new List<string>();
        var statuses = new SortedDictionary<int, int>();
        var perOperation = operations.ToDictionary(o => $"{o.Method} {o.Path}", _ => 0);
        var started = Stopwatch.StartNew();
        var accepted = 0;
        var undeliverable = 0;
        for (var i = 0; i < count; i++)
        {
            var request = generator.Next();
            HttpResponseMessage response;
            string text;
            try
            {
                response = await client.SendAsync(request.ToMessage());
                text = await response.Content.ReadAsStringAsync();
            }
            catch (InvalidOperationException e) when (e.Message.Contains("null characters", StringComparison.Ordinal))
            {
                // The in-process transport cannot carry a NUL in the path (Kestrel answers it with 400 before any endpoint runs).
                undeliverable++;
                continue;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                failures.Add($"#{i} threw {e.GetType().Name}: {e.Message}\n{request}");
                continue;
            }
            var status = (int)response.StatusCode;
            statuses[status] = statuses.GetValueOrDefault(status) + 1;
            if (Check(status, response, text) is { } problem)
            {
                failures.Add($"#{i} seed {seed}: {problem}\n{request}\n  answer {status} {response.MediaType()}: {(text.Length > 600 ? text[..600] : text)}" +
                             (status >= 500 ? $"\n  service log: {api.Errors.Last()}" : ""));
            }
            if (request.Writes)
            {
                if (status is >= 200 and < 300)
                {
                    // Accepted: it (and any job it started) may change the tables; wait for them to settle and take a new baseline.
                    accepted++;
                    output.WriteLine($"accepted {status}: {request.What} ({request.Method} {request.Url[..Math.Min(120, request.Url.Length)]})");
                    before = await Settled(fingerprint);
                }
                else if (await Fingerprint(fingerprint) is var after && Changed(before, after) is { Length: > 0 } changed)
                {
                    failures.Add($"#{i} seed {seed}: rejected with {status} but changed {changed}\n{request}");
                    before = await Settled(fingerprint);
                }
            }
        }
        output.WriteLine($"{count} hostile requests over {operations.Count} operations in {started.Elapsed.TotalSeconds:F1} s (seed {seed}); " +
                         $"{accepted} writes accepted, {undeliverable} not deliverable in process; answers: {string.Join(", ", statuses.Select(s => $"{s.Key}×{s.Value}"))}");
        var fiveXx = statuses.Where(s => s.Key >= 500).Sum(s => s.Value);
        output.WriteLine($"5xx answers: {fiveXx}");
        foreach (var failure in failures)
        {
            output.WriteLine(failure);
        }
        Assert.True(failures.Count == 0, $"{failures.Count} failing requests (first ones):\n\n{string.Join("\n\n", failures.Take(10))}");
    }

    static string? Check(int status, HttpResponseMessage response, string text)
    {
        if (status >= 500)
        {
            return "a 5xx";
        }
        if (status < 400)
        {
            return null;
        }
        if (response.MediaType() != "application/problem+json")
        {
            return $"a {status} without a problem document";
        }
        JsonElement problem;
        try
        {
            problem = JsonDocument.Parse(text).RootElement;
        }
        catch (JsonException)
        {
            return $"a {status} whose problem document is not JSON";
        }
        if (!problem.TryGetProperty("status", out var s) || s.GetInt32() != status || !problem.TryGetProperty("title", out _))
        {
            return "a problem document without its status and title";
        }
        if (status == 400 && (!problem.TryGetProperty("errors", out var errors) || errors.ValueKind != JsonValueKind.Object || !errors.EnumerateObject().Any()))
        {
            return "a 400 without `errors` keyed by field";
        }
        return Leaks.FirstOrDefault(l => text.Contains(l, StringComparison.Ordinal)) is { } leak ? $"an answer that leaks '{leak}'" : null;
    }

    /// <summary>One statement giving md5(every row) per table, for every table in every schema of the database but the excluded ones.</summary>
    async Task<string> FingerprintSql()
    {
        await using var conn = new NpgsqlConnection(api.ConnectionString);
        var tables = (await conn.QueryAsync<(string Schema, string Table)>("""
            SELECT table_schema, table_name FROM information_schema.tables
            WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')
            ORDER BY 1, 2
            """)).Where(t => !ExcludedSchemas.Contains(t.Schema)).ToList();
        Assert.Contains(tables, t => t.Table == "resources");
        Assert.Contains(tables, t => t.Table == "samples");
        return string.Join("\nUNION ALL\n", tables.Select(t =>
            $"SELECT '{t.Schema}.{t.Table}' AS t, (SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM \"{t.Schema}\".\"{t.Table}\" x) AS h"));
    }

    async Task<Dictionary<string, string>> Fingerprint(string sql)
    {
        await using var conn = new NpgsqlConnection(api.ConnectionString);
        return (await conn.QueryAsync<(string T, string H)>(sql)).ToDictionary(r => r.T, r => r.H);
    }

    /// <summary>
    /// The fingerprint once the work an accepted write started is over: no training run or simulation unfinished, no
    /// Hangfire job waiting or running (planning after a run is a job of its own, enqueued as the run ends), no other
    /// session of this database inside a statement or transaction (planning after a run, a listener reloading), the hourly
    /// rollups of what was written refreshed here (the recurring refresh would otherwise change them minutes later, beside
    /// some rejected request), and three readings 100 ms apart that agree; at most 120 s (a training run beside other
    /// suites' load has taken longer than 30).
    /// </summary>
    async Task<Dictionary<string, string>> Settled(string sql)
    {
        var rollups = api.Factory.Services.GetRequiredService<Forecaster.Api.Samples.HourlyRollupRefresh>();
        await rollups.RefreshAsync(null, CancellationToken.None);
        var last = await Fingerprint(sql);
        var agreeing = 0;
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(120))
        {
            await Task.Delay(100);
            await rollups.RefreshAsync(null, CancellationToken.None);
            var next = await Fingerprint(sql);
            var busy = await api.ScalarAsync<long>("""
                SELECT (SELECT count(*) FROM training_runs WHERE status IN ('queued', 'running'))
                     + (SELECT count(*) FROM simulations WHERE status IN ('queued', 'running'))
                     + (SELECT count(*) FROM hangfire.job WHERE statename IN ('Enqueued', 'Processing', 'Scheduled', 'Awaiting'))
                     + (SELECT count(*) FROM pg_stat_activity
                        WHERE datname = current_database() AND pid <> pg_backend_pid()
                          AND state IN ('active', 'idle in transaction'))
                """);
            agreeing = Changed(last, next).Length == 0 && busy == 0 ? agreeing + 1 : 0;
            if (agreeing >= 2)
            {
                return next;
            }
            last = next;
        }
        return last;
    }

    static string Changed(Dictionary<string, string> before, Dictionary<string, string> after) =>
        string.Join(", ", after.Where(a => !before.TryGetValue(a.Key, out var b) || b != a.Value).Select(a => a.Key));

    static int EnvInt(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v > 0 ? v : fallback;
}

/// <summary>Keeps the last errors the service logged (with their exceptions).</summary>
public sealed class ErrorLog : ILoggerProvider, ILogger
{
    readonly Queue<string> _entries = new();

    public string Last()
    {
        lock (_entries)
        {
            return _entries.Count == 0 ? "(nothing logged)" : _entries.Last();
        }
    }

    public ILogger CreateLogger(string categoryName) => this;

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Error;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (!IsEnabled(logLevel))
        {
            return;
        }
        lock (_entries)
        {
            _entries.Enqueue($"{formatter(state, exception)} {exception}");
            if (_entries.Count > 50)
            {
                _entries.Dequeue();
            }
        }
    }

    public void Dispose()
    {
    }
}
