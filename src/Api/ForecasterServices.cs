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
using Microsoft.Extensions.Options;
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
    /// services or job servers), with every option validated as the service's start validates it (an invalid one throws
    /// <see cref="OptionsValidationException"/>, which the CLI reports with exit code 2) and the database not touched yet.
    /// Logs go to stderr at <paramref name="minimum"/> and above, so stdout holds only what the verb prints.
    /// </summary>
    public static WebApplication BuildForVerb(LogLevel minimum)
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
            // The ValidateOnStart registrations: the checks a host runs when it starts, which a verb's host never does.
            app.Services.GetService<IStartupValidator>()?.Validate();
            return app;
        }
        catch
        {
            ((IDisposable)app).Dispose();
            throw;
        }
    }

    /// <summary>
    /// <see cref="BuildForVerb"/> with the database migrated and partitioned as the service's start does (the embedded
    /// cluster started if it is the one configured): what every verb that reads or writes data runs on.
    /// </summary>
    public static async Task<WebApplication> BuildForVerbAsync(LogLevel minimum, CancellationToken ct)
    {
        var app = BuildForVerb(minimum);
        try
        {
            await app.PrepareDatabaseAsync(ct);
            return app;
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }
    }

    /// <summary>Migrations, policy checks and sample partitions, exactly as <c>DatabaseStartup</c> runs them; returns the migrations applied now.</summary>
    public static Task<int> PrepareDatabaseAsync(this WebApplication app, CancellationToken ct)
    {
        var services = app.Services;
        return DatabaseSetup.PrepareAsync(services.GetRequiredService<NpgsqlDataSource>(), services.GetRequiredService<SamplePartitions>(),
            services.GetRequiredService<TimeProvider>(), services.GetRequiredService<ILoggerFactory>().CreateLogger("forecaster"), ct,
            services.GetRequiredService<IOptions<ForecasterOptions>>().Value.MaxSampleAgeDays);
    }
}
