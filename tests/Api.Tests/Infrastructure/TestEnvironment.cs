using System.Runtime.CompilerServices;

namespace Forecaster.Api.Tests.Infrastructure;

/// <summary>Settings every host and child process of the test run inherits.</summary>
static class TestEnvironment
{
    [ModuleInitializer]
    internal static void Initialize() =>
        // The real nightly schedule would fire in every test host of a run that crosses 02:00 UTC and make its API-started
        // runs answer 409; tests start runs themselves (the cluster test moves this trigger explicitly). February 31st never comes.
        Environment.SetEnvironmentVariable("Forecaster__Training__NightlyCron", "0 0 31 2 *");
}
