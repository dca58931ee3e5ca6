using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Forecaster.Api.Tests.Infrastructure;

namespace Forecaster.Api.Tests;

/// <summary>
/// The README's tour, run as written: a fresh `forecaster serve --demo` (the real executable, its own FORECASTER_HOME and
/// embedded cluster, a free port), then every block fenced <c>```sh</c> after the "Quick start" section, in order, in one
/// bash script, from a directory holding <c>./forecaster</c> and <c>examples/</c> as the repository does.
/// <para>
/// The rule, for anyone adding a README section: a <c>```sh</c> block runs; a <c>```console</c> (or any other) block is
/// shown only (syntax summaries with placeholders). Blocks use <c>$api</c> and <c>$key</c> from the tour's first block.
/// Every curl's status is recorded (a curl function adds <c>-w '%{stderr}...'</c>); an answer that is not 2xx fails the
/// test unless its command carries <c># expect NNN</c>, and an announced error that does not happen fails it too.
/// </para>
/// </summary>
public sealed partial class ReadmeTourTests
{
    [Fact]
    public async Task TheReadmeTourRunsAsWrittenAgainstAFreshDemo()
    {
        var repo = RepositoryRoot();
        var blocks = TourBlocks(await File.ReadAllTextAsync(Path.Combine(repo, "README.md")));
        Assert.True(blocks.Count >= 4, $"expected the tour's sh blocks, found {blocks.Count}");

        var home = TestEnvironment.NewHome("tour");
        var work = Path.Combine(home, "work");
        Directory.CreateDirectory(work);
        try
        {
            // As in a clone: ./forecaster (here the executable built beside the tests) and examples/.
            var shim = Path.Combine(work, "forecaster");
            await File.WriteAllTextAsync(shim, $"#!/usr/bin/env bash\nexec dotnet '{Path.Combine(AppContext.BaseDirectory, "forecaster.dll")}' \"$@\"\n");
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(shim, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
            Directory.CreateSymbolicLink(Path.Combine(work, "examples"), Path.Combine(repo, "examples"));

            var port = FreePort();
            var url = $"http://127.0.0.1:{port}";
            var environment = new Dictionary<string, string?>
            {
                ["FORECASTER_HOME"] = home,
                ["FORECASTER_DB"] = null,
                ["ConnectionStrings__Forecaster"] = null,
                ["FORECASTER_API_KEYS"] = null,
                ["Forecaster__Training__ModelsPath"] = Path.Combine(home, "models"),
                ["Forecaster__Training__LoadBacktestOrigins"] = "2",
                ["Forecaster__Training__UsageBacktestOrigins"] = "1",
                ["Forecaster__Training__SchedulerIdleSeconds"] = "1",
            };
            string key;
            JsonElement checkoutBefore;
            await using (var serve = ForecasterProcess.Start(environment, "serve", "--demo", "--urls", url))
            {
                key = await BannerKeyAsync(serve, url);
                Assert.Equal(key, (await File.ReadAllTextAsync(Path.Combine(home, "demo-api-key"))).Trim());
                using var http = new HttpClient { BaseAddress = new Uri(url) };
                await WaitReadyAsync(http, serve);
                checkoutBefore = await http.GetFromJsonAsync<JsonElement>("/api/v1/resources/checkout");

                var (exit, statuses, output) = await RunTourAsync(blocks, work, url, home);
                Assert.True(exit == 0, $"the tour's script exited {exit}:\n{output}");
                var problems = Unannounced(blocks, statuses);
                Assert.True(problems.Count == 0, string.Join("\n", problems) + "\n---\n" + output);

                // The tour made its own resources: the demo's showcase is as seeded (policy and group).
                var checkoutAfter = await http.GetFromJsonAsync<JsonElement>("/api/v1/resources/checkout");
                Assert.Equal(checkoutBefore.GetProperty("policy").GetRawText(), checkoutAfter.GetProperty("policy").GetRawText());
                Assert.Equal(checkoutBefore.GetProperty("group").GetString(), checkoutAfter.GetProperty("group").GetString());
                Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/api/v1/resources/tour-web")).StatusCode);
                Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/api/v1/resources/tour-search")).StatusCode);
            }

            // A restart keeps the key: the one printed before still writes.
            await using (var again = ForecasterProcess.Start(environment, "serve", "--demo", "--urls", url))
            {
                Assert.Equal(key, await BannerKeyAsync(again, url));
                using var http = new HttpClient { BaseAddress = new Uri(url) };
                await WaitReadyAsync(http, again);
                http.DefaultRequestHeaders.Add("X-Api-Key", key);
                var put = await http.PutAsync("/api/v1/resources/tour-restart", ApiFixture.Json("""{"kind":"service","loadMetric":"qps"}"""));
                Assert.Equal(HttpStatusCode.Created, put.StatusCode);
            }
        }
        finally
        {
            TestEnvironment.TryDelete(home);
        }
    }

    [Fact]
    public void OnlyShBlocksAfterTheQuickStartAreTheTour()
    {
        const string readme = """
            # X
            ## Quick start
            ```sh
            ./forecaster serve --demo
            ```
            ## A short tour
            ```sh
            curl $api/a   # expect 404
            ```
            ```console
            ./forecaster simulate --input FILE [--train-days N]
            ```
            ```yaml
            a: b
            ```
            ## Later
            ```sh
            curl $api/b
            ```
            """;
        var blocks = TourBlocks(readme);
        Assert.Equal(["curl $api/a   # expect 404", "curl $api/b"], blocks.Select(b => b.Trim()));
        Assert.Empty(Unannounced(blocks, [(0, 404, "GET a"), (1, 200, "GET b")]));
        Assert.Single(Unannounced(blocks, [(0, 200, "GET a"), (1, 200, "GET b")]));   // the announced 404 did not happen
        Assert.Single(Unannounced(blocks, [(0, 404, "GET a"), (1, 500, "GET b")]));   // an unannounced 500
    }

    /// <summary>The <c>```sh</c> blocks after the "Quick start" section (whose commands start the service), in order.</summary>
    static List<string> TourBlocks(string readme)
    {
        var lines = readme.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        var blocks = new List<string>();
        var (inQuickStart, afterQuickStart) = (false, false);
        StringBuilder? block = null;
        var fence = false;
        foreach (var line in lines)
        {
            if (!fence && line.StartsWith("## ", StringComparison.Ordinal))
            {
                afterQuickStart |= inQuickStart;
                inQuickStart = line.StartsWith("## Quick start", StringComparison.Ordinal);
            }
            if (line.StartsWith("```", StringComparison.Ordinal))
            {
                if (!fence)
                {
                    fence = true;
                    block = afterQuickStart && line.Trim() == "```sh" ? new StringBuilder() : null;
                }
                else
                {
                    fence = false;
                    if (block is not null)
                    {
                        blocks.Add(block.ToString());
                    }
                    block = null;
                }
                continue;
            }
            block?.Append(line).Append('\n');
        }
        return blocks;
    }

    /// <summary>Non-2xx answers no <c># expect NNN</c> announced, and announcements that did not happen.</summary>
    static List<string> Unannounced(List<string> blocks, List<(int Block, int Status, string Request)> statuses)
    {
        var problems = new List<string>();
        for (var b = 0; b < blocks.Count; b++)
        {
            var expected = new Queue<int>(Expect().Matches(blocks[b]).Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)));
            foreach (var (_, status, request) in statuses.Where(s => s.Block == b))
            {
                if (status is >= 200 and < 300)
                {
                    continue;
                }
                if (expected.TryPeek(out var next) && next == status)
                {
                    expected.Dequeue();
                    continue;
                }
                problems.Add($"block {b + 1}: {request} answered {status}, which the README does not announce (# expect {status})");
            }
            problems.AddRange(expected.Select(e => $"block {b + 1}: announces # expect {e}, but no request answered {e}"));
        }
        return problems;
    }

    static async Task<(int Exit, List<(int Block, int Status, string Request)> Statuses, string Output)> RunTourAsync(List<string> blocks, string work, string url, string home)
    {
        var script = new StringBuilder("""
            set -euo pipefail
            # Every curl reports its status on stderr, so the test can hold each answer against the README's announcements.
            curl() { command curl -sS -w '%{stderr}tour-status %{http_code} %{method} %{url_effective}\n' "$@"; }

            """);
        for (var b = 0; b < blocks.Count; b++)
        {
            script.Append("echo 'tour-block ").Append(b).Append("' >&2\n").Append(blocks[b]).Append('\n');
        }
        var path = Path.Combine(work, "tour.sh");
        await File.WriteAllTextAsync(path, script.ToString());
        var psi = new ProcessStartInfo("bash", [path]) { WorkingDirectory = work, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.Environment["FORECASTER_URL"] = url;
        psi.Environment["FORECASTER_HOME"] = home;
        // The tour's scratch files go to $TMPDIR: this run's own, so parallel runs on one machine do not share them.
        psi.Environment["TMPDIR"] = work;
        psi.Environment.Remove("FORECASTER_DB");
        psi.Environment.Remove("ConnectionStrings__Forecaster");
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(8));
        try
        {
            await p.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException("the tour did not finish in 8 minutes:\n" + await stderr);
        }
        var err = await stderr;
        var statuses = new List<(int, int, string)>();
        var block = -1;
        foreach (var line in err.Split('\n'))
        {
            if (line.StartsWith("tour-block ", StringComparison.Ordinal))
            {
                block = int.Parse(line["tour-block ".Length..], System.Globalization.CultureInfo.InvariantCulture);
            }
            else if (line.StartsWith("tour-status ", StringComparison.Ordinal))
            {
                var parts = line.Split(' ', 3);
                statuses.Add((block, int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture), parts[2]));
            }
        }
        return (p.ExitCode, statuses, $"stdout:\n{await stdout}\nstderr:\n{err}");
    }

    /// <summary>Waits for the banner and checks it comes before any log line; returns the key it prints.</summary>
    static async Task<string> BannerKeyAsync(ForecasterProcess.Running serve, string url)
    {
        for (var i = 0; i < 1200 && !serve.Out.Any(l => l.Contains("API key", StringComparison.Ordinal)); i++)
        {
            Assert.False(serve.HasExited, "serve --demo exited:\n" + string.Join("\n", serve.Out.Concat(serve.Err)));
            await Task.Delay(100);
        }
        var lines = serve.Out.SkipWhile(string.IsNullOrWhiteSpace).ToList();
        Assert.True(lines.Count > 0 && lines[0] == "Forecaster demo", "the banner is not first:\n" + string.Join("\n", lines.Take(10)));
        var banner = lines.TakeWhile(l => !string.IsNullOrWhiteSpace(l)).ToList();
        Assert.Contains($"  Dashboard   {url}/", banner);
        Assert.Contains($"  Swagger UI  {url}/swagger", banner);
        var keyLine = banner.Single(l => l.Contains("API key", StringComparison.Ordinal));
        return KeyPattern().Match(keyLine).Value;
    }

    static async Task WaitReadyAsync(HttpClient http, ForecasterProcess.Running serve)
    {
        for (var i = 0; i < 1200; i++)
        {
            Assert.False(serve.HasExited, "serve --demo exited:\n" + string.Join("\n", serve.Err));
            try
            {
                if ((await http.GetAsync("/health/ready")).StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }
            await Task.Delay(100);
        }
        Assert.Fail("serve --demo did not become ready in 2 minutes");
    }

    static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "README.md")) && File.Exists(Path.Combine(dir.FullName, "forecaster")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException("the repository root (README.md beside ./forecaster) was not found above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex(@"#\s*expect\s+(\d{3})")]
    private static partial Regex Expect();

    [GeneratedRegex(@"demo-[0-9a-f]{32}")]
    private static partial Regex KeyPattern();
}
