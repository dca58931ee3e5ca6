namespace Forecaster.Api.Training;

public static class TrainingSetup
{
    /// <summary>
    /// The training pipeline, its options and the watchdog. The runs and shards are Hangfire jobs (<see cref="TrainingJobs"/>,
    /// wired in Jobs/JobsSetup): the nightly recurring job and the shards any instance may take.
    /// </summary>
    public static WebApplicationBuilder AddForecasterTraining(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<TrainingOptions>()
            .BindConfiguration(TrainingOptions.Section)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        builder.Services.AddSingleton<TrainingPipeline>();
        builder.Services.AddSingleton<ShardProcesses>();
        builder.Services.AddSingleton<ShardRunner>();
        builder.Services.AddSingleton<PlanAfterTraining>();
        builder.Services.AddHostedService<TrainingWatchdog>();
        return builder;
    }
}
