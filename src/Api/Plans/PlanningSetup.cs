namespace Forecaster.Api.Plans;

public static class PlanningSetup
{
    /// <summary>The planning pipeline and its options; it runs after training, after a policy change and from the `plan` verb.</summary>
    public static WebApplicationBuilder AddForecasterPlanning(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<PlanningOptions>()
            .BindConfiguration(PlanningOptions.Section)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        builder.Services.AddSingleton<PlanningPipeline>();
        return builder;
    }
}
