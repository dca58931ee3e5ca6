using Forecaster.Api.Database;
using Forecaster.Api.Errors;
using Forecaster.Api.Executors;
using Forecaster.Api.Health;
using Forecaster.Api.Jobs;
using Forecaster.Api.Observability;
using Forecaster.Api.OpenApi;
using Forecaster.Api.Plans;
using Forecaster.Api.Samples;
using Forecaster.Api.Security;
using Forecaster.Api.Serving;
using Forecaster.Api.Simulations;
using Forecaster.Api.Sources;
using Forecaster.Api.Training;
using Microsoft.Extensions.Logging.Console;
using Npgsql;

namespace Forecaster.Api;

/// <summary>The one composition root: the service (Program.cs) and every CLI verb resolve the same services from it.</summary>
public static class ForecasterServices
{
    /// <summary>One <c>AddXxx</c> per concern, each beside what it wires.</summary>
    public static WebApplicationBuilder AddForecasterServices(this WebApplicationBuilder builder)
    {
        builder.AddForecasterHost();
        builder.AddForecasterDatabase();
        builder.AddForecasterTraining();
        builder.AddForecasterRetention();
        builder.AddForecasterJobs();
        builder.AddForecasterPlanning();
        builder.AddForecasterSimulations();
        builder.AddForecasterServing();
        builder.AddForecasterExecutors();
        builder.AddForecasterSources();
        builder.AddForecasterObservability();
        builder.Services.AddApiKeys();
        builder.Services.AddForecasterProblems();
        builder.Services.AddForecasterOpenApi();
        builder.Services.AddForecasterHealth();
        return builder;
    }

    /// <summary>
    /// The service's container for a CLI verb: the same registrations, built but never run (no Kestrel, no background
    /// services or job servers), with the database migrated and partitioned as the service's start does. Logs go to stderr
    /// at <paramref name="minimum"/> and above, so stdout holds only what the verb prints.
    /// </summary>
    public static async Task<WebApplication> BuildForVerbAsync(LogLevel minimum, CancellationToken ct)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.AddForecasterServices();
        builder.Logging.ClearProviders()
            .AddSimpleConsole(o => o.SingleLine = true)
            // A provider rule outranks appsettings.json's `Logging:LogLevel`, which is the service's.
            .AddFilter<ConsoleLoggerProvider>(level => level >= minimum)
            .Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        var app = builder.Build();
        try
        {
            var services = app.Services;
            await DatabaseSetup.PrepareAsync(services.GetRequiredService<NpgsqlDataSource>(), services.GetRequiredService<SamplePartitions>(),
                services.GetRequiredService<TimeProvider>(), services.GetRequiredService<ILoggerFactory>().CreateLogger("forecaster"), ct);
            return app;
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }
    }
}
