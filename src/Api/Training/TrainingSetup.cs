using Npgsql;
using Quartz;

namespace Forecaster.Api.Training;

public static class TrainingSetup
{
    /// <summary>
    /// The training pipeline, its options, the watchdog, and the Quartz scheduler: a persistent, clustered store in the service's
    /// PostgreSQL (Quartz creates its own qrtz_* tables), the nightly trigger and the run and shard jobs.
    /// </summary>
    public static WebApplicationBuilder AddForecasterTraining(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<TrainingOptions>()
            .BindConfiguration(TrainingOptions.Section)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        builder.Services.AddSingleton<TrainingPipeline>();
        builder.Services.AddSingleton<PlanningStep>();
        builder.Services.AddHostedService<TrainingWatchdog>();

        // The trigger and limits are fixed when the scheduler is described; validation reports a bad value at start.
        var training = builder.Configuration.GetSection(TrainingOptions.Section).Get<TrainingOptions>() ?? new TrainingOptions();
        if (!training.Scheduler || !CronExpression.TryParse(training.NightlyCron, out _))
        {
            return builder;
        }
        builder.Services.AddQuartz(q =>
        {
            // The scheduler runs on wall-clock time whatever clock the application injects: cluster check-ins and misfires
            // are compared with other instances' real clocks.
            q.UseTimeProvider(TimeProvider.System);
            q.ConfigureScheduler(s =>
            {
                s.InstanceName = "forecaster";
                s.IdleWaitTime = TimeSpan.FromSeconds(training.SchedulerIdleSeconds);
            });
            q.UsePersistentStore(store =>
            {
                store.UsePostgres(ds => ds.DataSourceFactory = sp => sp.GetRequiredService<NpgsqlDataSource>());
                store.UseClustering(_ => { });
                store.UseSystemTextJsonSerializer();
                store.ProvisionSchema();
                store.ConfigureStore(s =>
                {
                    s.TablePrefix = "qrtz_";
                    s.StoreJobDataAsStrings = true;
                });
            });
            // A shard already uses every core: one (or a few) per instance, so a cluster's instances share the shards.
            q.UseExecutionLimits(limits => limits.ForGroup(TrainingShardJob.Group, training.ShardsPerInstance));
            q.AddJob<TrainingRunJob>(j => j.WithIdentity(TrainingRunJob.Key).StoreDurably().RequestRecovery());
            q.AddJob<TrainingShardJob>(j => j.WithIdentity(TrainingShardJob.Key).StoreDurably().RequestRecovery());
            q.AddTrigger(t => t
                .WithIdentity("nightly-training", "training")
                .ForJob(TrainingRunJob.Key)
                // A night missed while the service was down runs once on start.
                .WithSchedule(CronScheduleBuilder.Create(training.NightlyCron).InTimeZone(TimeZoneInfo.Utc).WithMisfireInstruction(CronTriggerMisfireInstruction.FireAndProceed)));
        });
        builder.Services.AddQuartzHostedService(o =>
        {
            o.AwaitApplicationStarted = true;
            o.WaitForJobsToComplete = false;
        });
        return builder;
    }
}
