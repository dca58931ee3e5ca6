using Forecaster.Api;
using Forecaster.Api.Capacity;
using Forecaster.Api.Cli;
using Forecaster.Api.Dashboard;
using Forecaster.Api.Database;
using Forecaster.Api.Demo;
using Forecaster.Api.Errors;
using Forecaster.Api.Health;
using Forecaster.Api.OpenApi;
using Forecaster.Api.Plans;
using Forecaster.Api.Resources;
using Forecaster.Api.Samples;
using Forecaster.Api.Security;
using Forecaster.Api.Simulations;
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
builder.AddForecasterPlanning();
builder.AddForecasterSimulations();
builder.AddForecasterServing();
builder.Services.AddApiKeys();
builder.Services.AddForecasterProblems();
builder.Services.AddForecasterOpenApi();
builder.Services.AddForecasterHealth();

var app = builder.Build();
app.UseForecasterProblems();
app.UseDashboard();
app.UseForecasterOpenApi();
app.UseApiKeys();

app.MapHealth();
app.MapResources();
app.MapSamples();
app.MapModels();
app.MapTrainingRuns();
app.MapPlans();
app.MapServing();
app.MapCapacity();
app.MapGroups();
app.MapSimulations();

app.PrintDemoBanner();
await app.RunAsync();
return 0;

/// <summary>The entry point, visible to WebApplicationFactory in the tests.</summary>
public partial class Program;
