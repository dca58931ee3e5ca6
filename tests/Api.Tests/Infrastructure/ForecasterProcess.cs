using System.Diagnostics;

namespace Forecaster.Api.Tests.Infrastructure;

/// <summary>The `forecaster` executable (built beside the tests) run as a real process, as a user runs it.</summary>
public static class ForecasterProcess
{
    /// <summary>Runs `forecaster ARGS` with <paramref name="environment"/> added; returns its exit code and what it printed.</summary>
    public static async Task<(int Exit, string Out, string Err)> RunAsync(IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "forecaster.dll"));
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        foreach (var (key, value) in environment)
        {
            psi.Environment[key] = value;
        }
        using var p = Process.Start(psi)!;
        // Read both pipes at once: a chatty child blocks on a full pipe otherwise.
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return (p.ExitCode, await stdout, await stderr);
    }

    /// <summary>Starts `forecaster ARGS` (e.g. `serve`) and keeps it running; <see cref="Running.StopAsync"/> stops it as Ctrl-C would.</summary>
    public static Running Start(IReadOnlyDictionary<string, string?> environment, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "forecaster.dll"));
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        foreach (var (key, value) in environment)
        {
            if (value is null)
            {
                psi.Environment.Remove(key);
            }
            else
            {
                psi.Environment[key] = value;
            }
        }
        return new Running(Process.Start(psi)!);
    }

    /// <summary>A running `forecaster` process; every line it printed so far, stdout and stderr apart.</summary>
    public sealed class Running : IAsyncDisposable
    {
        readonly Process _process;
        readonly List<string> _out = [];
        readonly List<string> _err = [];

        internal Running(Process process)
        {
            _process = process;
            process.OutputDataReceived += (_, e) => Add(_out, e.Data);
            process.ErrorDataReceived += (_, e) => Add(_err, e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }

        public IReadOnlyList<string> Out => Snapshot(_out);

        public IReadOnlyList<string> Err => Snapshot(_err);

        public bool HasExited => _process.HasExited;

        /// <summary>SIGTERM (what Ctrl-C and Kubernetes send), then SIGKILL when it has not exited after <paramref name="grace"/>.</summary>
        public async Task StopAsync(TimeSpan? grace = null)
        {
            if (_process.HasExited)
            {
                return;
            }
            using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            {
                await kill.WaitForExitAsync();
            }
            using var timeout = new CancellationTokenSource(grace ?? TimeSpan.FromSeconds(30));
            try
            {
                await _process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
        }

        public async ValueTask DisposeAsync()
        {
            await StopAsync();
            _process.Dispose();
        }

        static void Add(List<string> lines, string? line)
        {
            if (line is not null)
            {
                lock (lines)
                {
                    lines.Add(line);
                }
            }
        }

        static List<string> Snapshot(List<string> lines)
        {
            lock (lines)
            {
                return [.. lines];
            }
        }
    }

    /// <summary>Runs `forecaster ARGS` against the database <paramref name="connectionString"/> (FORECASTER_DB).</summary>
    public static Task<(int Exit, string Out, string Err)> RunAsync(string connectionString, params string[] args) =>
        RunAsync(new Dictionary<string, string> { ["FORECASTER_DB"] = connectionString }, args);
}
