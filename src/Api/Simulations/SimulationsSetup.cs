namespace Forecaster.Api.Simulations;

public static class SimulationsSetup
{
    /// <summary>The simulation queue (a bounded channel drained by a background service) and its options.</summary>
    public static WebApplicationBuilder AddForecasterSimulations(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<SimulationOptions>()
            .BindConfiguration(SimulationOptions.Section)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        builder.Services.AddSingleton<SimulationQueue>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<SimulationQueue>());
        return builder;
    }
}
