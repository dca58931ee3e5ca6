using System.Runtime.CompilerServices;

namespace Forecaster.Api.Tests.Infrastructure;

/// <summary>Settings every host and child process of the test run inherits, and where the run keeps its clusters.</summary>
static class TestEnvironment
{
    /// <summary>
    /// Where this run's clusters and homes live: FORECASTER_TEST_ROOT (a directory `./forecaster test` creates per run,
    /// removes on exit and checks is empty when the tests end), else forecaster-tests in the temporary directory.
    /// </summary>
    public static string Root { get; } = Environment.GetEnvironmentVariable("FORECASTER_TEST_ROOT") is { Length: > 0 } root
        ? Path.GetFullPath(root)
        : Path.Combine(Path.GetTempPath(), "forecaster-tests");

    /// <summary>A fresh directory name under <see cref="Root"/> (not created).</summary>
    public static string NewHome(string label) => Path.Combine(Root, $"{label}-{Guid.NewGuid().ToString("N")[..8]}");

    [ModuleInitializer]
    internal static void Initialize() =>
        // The real nightly schedule would fire in every test host of a run that crosses 02:00 UTC and make its API-started
        // runs answer 409; tests start runs themselves (the cluster test moves this trigger explicitly). February 31st never comes.
        Environment.SetEnvironmentVariable("Forecaster__Training__NightlyCron", "0 0 31 2 *");

    /// <summary>Removes a directory tree, quietly: cleanup must not hide the test's own failure.</summary>
    public static void TryDelete(string dir)
    {
        try
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
