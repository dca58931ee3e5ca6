namespace Forecaster.Api.Simulations;

public static class SimulationsSetup
{
    /// <summary>Simulations' options and the start-up recovery of simulations without a job; each runs as a <see cref="SimulationJob"/>.</summary>
    public static WebApplicationBuilder AddForecasterSimulations(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<SimulationOptions>()
            .BindConfiguration(SimulationOptions.Section)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        builder.Services.AddHostedService<SimulationRecovery>();
        return builder;
    }
}
