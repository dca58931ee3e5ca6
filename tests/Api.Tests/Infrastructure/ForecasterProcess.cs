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

    /// <summary>Runs `forecaster ARGS` against the database <paramref name="connectionString"/> (FORECASTER_DB).</summary>
    public static Task<(int Exit, string Out, string Err)> RunAsync(string connectionString, params string[] args) =>
        RunAsync(new Dictionary<string, string> { ["FORECASTER_DB"] = connectionString }, args);
}
