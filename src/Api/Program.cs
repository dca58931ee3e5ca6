using Forecaster.Api;
using Forecaster.Api.Capacity;
using Forecaster.Api.Cli;
using Forecaster.Api.Dashboard;
using Forecaster.Api.Database;
using Forecaster.Api.Demo;
using Forecaster.Api.Errors;
using Forecaster.Api.Executors;
using Forecaster.Api.Health;
using Forecaster.Api.Jobs;
using Forecaster.Api.Observability;
using Forecaster.Api.OpenApi;
using Forecaster.Api.Plans;
using Forecaster.Api.Resources;
using Forecaster.Api.Samples;
using Forecaster.Api.Security;
using Forecaster.Api.Simulations;
using Forecaster.Api.Sources;
using Forecaster.Api.Serving;
using Forecaster.Api.Training;

// `forecaster VERB ...` runs a command-line verb; `forecaster serve` (or no verb) runs the service below.
if (Cli.IsVerb(args))
{
    return await Cli.RunAsync(args);
}

var builder = WebApplication.CreateBuilder(new WebApplicationOptions
{
    Args = Cli.ServeArguments(args),
    ContentRootPath = AppContext.BaseDirectory,
});
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

var app = builder.Build();
// Before the middleware: the jobs dashboard creates Hangfire's schema on first use, and that logs.
app.PrintDemoBanner();
app.UseSecurityHeaders();
app.UseForecasterProblems();
app.UseForecasterMetrics();
app.UseDashboard();
app.UseForecasterOpenApi();
app.UseApiKeys();
app.UseJobsDashboard();

app.MapHealth();
app.MapResources();
app.MapSamples();
app.MapModels();
app.MapTrainingRuns();
app.MapPlans();
app.MapServing();
app.MapExecutors();
app.MapCapacity();
app.MapGroups();
app.MapSimulations();
app.MapSources();

await app.RunAsync();
return 0;

/// <summary>The entry point, visible to WebApplicationFactory in the tests.</summary>
public partial class Program;
