using System.Reflection;
using Xunit.Abstractions;
using Xunit.Sdk;

[assembly: TestFramework("Forecaster.Api.Tests.Infrastructure.CleanupTestFramework", "Forecaster.Api.Tests")]

namespace Forecaster.Api.Tests.Infrastructure;

/// <summary>
/// xunit's own framework, plus one step after the last test of the assembly: the run's shared cluster is stopped and
/// removed. A ProcessExit handler alone is not enough: the test platform kills the test host about 100 ms after the
/// run ends, in the middle of `pg_ctl stop`, which left a 1.5 GB stopped cluster behind on every run. xunit 2 has no
/// assembly fixture, so this is the hook that runs inside the run.
/// </summary>
public sealed class CleanupTestFramework(IMessageSink messageSink) : XunitTestFramework(messageSink)
{
    protected override ITestFrameworkExecutor CreateExecutor(AssemblyName assemblyName) =>
        new Executor(assemblyName, SourceInformationProvider, DiagnosticMessageSink);

    sealed class Executor(AssemblyName assemblyName, ISourceInformationProvider sourceInformationProvider, IMessageSink diagnosticMessageSink)
        : XunitTestFrameworkExecutor(assemblyName, sourceInformationProvider, diagnosticMessageSink)
    {
        protected override async void RunTestCases(IEnumerable<IXunitTestCase> testCases, IMessageSink executionMessageSink, ITestFrameworkExecutionOptions executionOptions)
        {
            using var runner = new Runner(TestAssembly, testCases, DiagnosticMessageSink, executionMessageSink, executionOptions);
            await runner.RunAsync();
        }
    }

    sealed class Runner(ITestAssembly testAssembly, IEnumerable<IXunitTestCase> testCases, IMessageSink diagnosticMessageSink,
        IMessageSink executionMessageSink, ITestFrameworkExecutionOptions executionOptions)
        : XunitTestAssemblyRunner(testAssembly, testCases, diagnosticMessageSink, executionMessageSink, executionOptions)
    {
        protected override async Task<RunSummary> RunTestCollectionsAsync(IMessageBus messageBus, CancellationTokenSource cancellationTokenSource)
        {
            try
            {
                return await base.RunTestCollectionsAsync(messageBus, cancellationTokenSource);
            }
            finally
            {
                await TestCluster.StopAsync();
            }
        }
    }
}
