using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Forecaster.Api.Tests.Sources;

/// <summary>Runs a test only where Debian's Prometheus is installed (`.ci/run` and `./forecaster test` install it).</summary>
public sealed class PrometheusFactAttribute : FactAttribute
{
    public const string Server = "/usr/bin/prometheus";
    public const string Tool = "/usr/bin/promtool";

    public static bool Installed => File.Exists(Server) && File.Exists(Tool);

    public PrometheusFactAttribute()
    {
        if (!Installed)
        {
            Skip = $"Prometheus is not installed ({Server}, {Tool}; apt-get install prometheus); the source tests need a real one";
        }
    }
}

/// <summary>
/// A real `prometheus` on a loopback port, over a data directory of its own. History is written as OpenMetrics text and
/// turned into TSDB blocks with `promtool tsdb create-blocks-from openmetrics`, so no scrape has to be waited for.
/// </summary>
public sealed class PrometheusServer : IAsyncDisposable
{
    readonly string _dir;
    readonly string _config;
    Process? _process;

    public int Port { get; }
    public string Url => $"http://127.0.0.1:{Port}";

    PrometheusServer(string dir, string config, int port)
    {
        _dir = dir;
        _config = config;
        Port = port;
    }

    /// <summary>
    /// Writes <paramref name="series"/> (name with labels → value at a unix second) every <paramref name="step"/> over
    /// [<paramref name="from"/>, <paramref name="to"/>] into blocks, then starts Prometheus on them.
    /// <paramref name="scrapeConfig"/> is the YAML of `scrape_configs` (none by default).
    /// </summary>
    public static async Task<PrometheusServer> StartAsync(IReadOnlyDictionary<string, Func<long, double>> series, DateTimeOffset from, DateTimeOffset to,
        TimeSpan step, string scrapeConfig = "")
    {
        var dir = Directory.CreateTempSubdirectory("forecaster-prometheus-").FullName;
        var data = Path.Combine(dir, "data");
        if (series.Count > 0)
        {
            var input = Path.Combine(dir, "history.om");
            await using (var w = new StreamWriter(input, false, new UTF8Encoding(false), 1 << 16))
            {
                foreach (var (name, f) in series)
                {
                    for (var t = from.ToUnixTimeSeconds(); t <= to.ToUnixTimeSeconds(); t += (long)step.TotalSeconds)
                    {
                        var v = f(t);
                        // OpenMetrics spells the special values NaN, +Inf and -Inf.
                        var text = double.IsNaN(v) ? "NaN" : double.IsPositiveInfinity(v) ? "+Inf" : double.IsNegativeInfinity(v) ? "-Inf" : v.ToString("R", CultureInfo.InvariantCulture);
                        await w.WriteAsync(string.Create(CultureInfo.InvariantCulture, $"{name} {text} {t}\n"));
                    }
                }
                await w.WriteAsync("# EOF\n");
            }
            var (exit, output) = await RunAsync(PrometheusFactAttribute.Tool, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=24h", input, data);
            Assert.True(exit == 0, $"promtool failed ({exit}): {output}");
            File.Delete(input);
        }
        var config = Path.Combine(dir, "prometheus.yml");
        await File.WriteAllTextAsync(config, "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n" + scrapeConfig);
        var server = new PrometheusServer(dir, config, FreePort());
        await server.StartAsync();
        return server;
    }

    /// <summary>Starts (or restarts) the process on the same data and port and waits until it is ready.</summary>
    public async Task StartAsync()
    {
        var psi = new ProcessStartInfo(PrometheusFactAttribute.Server) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[]
        {
            $"--config.file={_config}", $"--storage.tsdb.path={Path.Combine(_dir, "data")}", $"--web.listen-address=127.0.0.1:{Port}",
            // The history is weeks old by the wall clock; a short retention would delete it at start.
            "--storage.tsdb.retention.time=100y", "--log.level=warn",
        })
        {
            psi.ArgumentList.Add(a);
        }
        _process = Process.Start(psi)!;
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        using var http = new HttpClient();
        for (var i = 0; i < 300; i++)
        {
            try
            {
                if ((await http.GetAsync($"{Url}/-/ready")).IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }
            Assert.False(_process.HasExited, $"prometheus exited with {(_process.HasExited ? _process.ExitCode : 0)}");
            await Task.Delay(100);
        }
        Assert.Fail("prometheus did not become ready in 30 s");
    }

    /// <summary>Stops the process (the data stays for a restart).</summary>
    public async Task StopAsync()
    {
        if (_process is { HasExited: false } p)
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
        }
        _process?.Dispose();
        _process = null;
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    static async Task<(int Exit, string Output)> RunAsync(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return (p.ExitCode, await stdout + await stderr);
    }
}
