using System.Diagnostics;
using System.Text.Json;
using Forecaster.Api.Tests.Infrastructure;

namespace Forecaster.Api.Tests;

/// <summary>
/// `serve`'s console logs: JSON, one object a line, when stdout is a pipe or a file (log shippers); one readable line each
/// on a terminal (here a pseudo-terminal from util-linux's `script`); `Forecaster:Logging:Format` overrides either.
/// </summary>
public sealed class ConsoleLogTests
{
    [Theory]
    [InlineData("text", true, true)]
    [InlineData("json", false, false)]
    [InlineData("auto", true, false)]
    [InlineData("auto", false, true)]
    [InlineData(null, false, true)]
    public void TheFormatFollowsTheSettingElseTheTerminal(string? format, bool redirected, bool text) =>
        Assert.Equal(text, LoggingFormatOptions.UseText(format, redirected));

    [Fact]
    public async Task OnAPipeLogsAreJsonAndOnATerminalText()
    {
        var db = await TestCluster.CreateDatabaseAsync("consolelog");
        var dll = Path.Combine(AppContext.BaseDirectory, "forecaster.dll");
        var serve = $"dotnet '{dll}' serve --urls http://127.0.0.1:0";

        // A pipe: stdout redirected to the test.
        var piped = await FirstLogLineAsync("bash", ["-c", $"exec {serve}"], db);
        using (var json = JsonDocument.Parse(piped))
        {
            Assert.True(json.RootElement.TryGetProperty("LogLevel", out _), piped);
        }

        // A terminal: `script` runs the service on a pseudo-terminal and copies what it prints.
        var terminal = await FirstLogLineAsync("script", ["-qfec", serve, "/dev/null"], db);
        Assert.Matches(@"^\d\d:\d\d:\d\d (info|warn): ", terminal);

        // Configured: JSON on the terminal too.
        var configured = await FirstLogLineAsync("script", ["-qfec", serve, "/dev/null"], db, ("Forecaster__Logging__Format", "json"));
        Assert.StartsWith("{", configured, StringComparison.Ordinal);
    }

    /// <summary>Starts the command and returns the first line that is a log line (JSON or "HH:mm:ss level:"), then stops it.</summary>
    static async Task<string> FirstLogLineAsync(string file, string[] args, string db, params (string Key, string Value)[] extra)
    {
        var psi = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.Environment["FORECASTER_DB"] = db;
        psi.Environment["Forecaster__ApiKeys__0"] = ApiFixture.ApiKey;
        psi.Environment["Forecaster__Training__Scheduler"] = "false";
        foreach (var (key, value) in extra)
        {
            psi.Environment[key] = value;
        }
        using var p = Process.Start(psi)!;
        _ = p.StandardError.ReadToEndAsync();
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            while (await p.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
            {
                // A terminal gets colours and mode switches: compare the text without them.
                var clean = System.Text.RegularExpressions.Regex.Replace(line, @"\x1B(\[[0-9;?]*[A-Za-z]|[=>])", "").Trim('\r', ' ');
                if (clean.StartsWith('{') || System.Text.RegularExpressions.Regex.IsMatch(clean, @"^\d\d:\d\d:\d\d \w+: "))
                {
                    return clean;
                }
            }
            throw new InvalidOperationException($"{file} printed no log line");
        }
        finally
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
        }
    }
}
