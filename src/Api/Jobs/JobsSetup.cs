using System.Linq.Expressions;
using Forecaster.Api.Database;
using Forecaster.Api.Training;
using Hangfire;
using Hangfire.AspNetCore;
using Hangfire.PostgreSql;
using Hangfire.PostgreSql.Factories;

namespace Forecaster.Api.Jobs;

/// <summary>This process among the instances that share the database: names the shards and simulations it runs.</summary>
public sealed record JobsInstance(string Id);

public static class JobsSetup
{
    /// <summary>
    /// Hangfire: its storage in its own schema of the service's database, the client every endpoint enqueues with, and (unless
    /// `Forecaster:Training:Scheduler` is false) one server per group of queues with its own worker count.
    /// </summary>
    public static WebApplicationBuilder AddForecasterJobs(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<JobsOptions>()
            .BindConfiguration(JobsOptions.Section)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        var jobs = builder.Configuration.GetSection(JobsOptions.Section).Get<JobsOptions>() ?? new JobsOptions();
        var training = builder.Configuration.GetSection(TrainingOptions.Section).Get<TrainingOptions>() ?? new TrainingOptions();
        // Bounded below so that a bad value reaches options validation (which lists it) instead of failing here.
        var poll = TimeSpan.FromSeconds(Math.Max(1, training.SchedulerIdleSeconds));

        builder.Services.AddSingleton(new JobsInstance($"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid().ToString("N")[..6]}"));
        // The storage and activator are this host's own rather than Hangfire's process-wide JobStorage.Current, so that
        // several hosts in one process (the tests) each work on their own database. AddHangfire only adds what is missing.
        builder.Services.AddSingleton<JobStorage>(sp =>
        {
            var storage = new PostgreSqlStorageOptions
            {
                SchemaName = jobs.Schema,
                PrepareSchemaIfNecessary = true,
                QueuePollInterval = poll,
                InvisibilityTimeout = TimeSpan.FromSeconds(jobs.InvisibilityTimeoutSeconds),
                UseSlidingInvisibilityTimeout = true,
            };
            // Hangfire's own pool, bounded and quick to let idle connections go: its many background processes query
            // briefly, and PostgreSQL's connection slots are shared with the service's pool (and, in tests, other hosts').
            // No reset on close: Hangfire keeps no session state (its locks are rows), and every poll returns its connection,
            // so the reset was a DISCARD ALL before nearly every one of its statements (about 2,000 in a 6,000-series run of
            // two instances, bench/README.md session 10).
            var connection = new Npgsql.NpgsqlConnectionStringBuilder(sp.GetRequiredService<ResolvedDatabase>().ConnectionString)
            {
                ApplicationName = "forecaster-jobs",
                MaxPoolSize = 20,
                ConnectionIdleLifetime = 15,
                NoResetOnClose = true,
            };
            return new PostgreSqlStorage(new NpgsqlConnectionFactory(connection.ConnectionString, storage), storage);
        });
        builder.Services.AddSingleton<JobActivator>(sp => new AspNetCoreJobActivator(sp.GetRequiredService<IServiceScopeFactory>()));
        builder.Services.AddHangfire((sp, c) => c
            .UseLogProvider(new HostSafeLogProvider(sp.GetRequiredService<ILoggerFactory>()))
            .SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
            .UseSimpleAssemblyNameTypeSerializer()
            .UseRecommendedSerializerSettings());
        if (!training.Scheduler)
        {
            return builder;
        }

        // One full server (recurring and delayed jobs, the storage's keep-alive of fetched jobs); the others only work.
        AddServer(builder.Services, "planning", [JobQueues.Planning, JobQueues.Default], jobs.PlanningWorkers, poll, lightweight: false);
        AddServer(builder.Services, "training", [JobQueues.Training], training.ShardsPerInstance, poll, lightweight: true);
        AddServer(builder.Services, "simulations", [JobQueues.Simulations], jobs.SimulationWorkers, poll, lightweight: true);
        AddServer(builder.Services, "pulls", [JobQueues.Pulls], jobs.PullWorkers, poll, lightweight: true);
        builder.Services.AddHostedService<RecurringJobsRegistration>();
        return builder;
    }

    static void AddServer(IServiceCollection services, string name, string[] queues, int workers, TimeSpan poll, bool lightweight) =>
        services.AddHangfireServer((sp, o) =>
        {
            o.ServerName = $"{sp.GetRequiredService<JobsInstance>().Id}/{name}";
            o.Queues = queues;
            o.WorkerCount = workers;
            o.SchedulePollingInterval = poll;
            o.IsLightweightServer = lightweight;
        });

    /// <summary>
    /// Registers (or updates) a recurring job on the `pulls` queue, in UTC. For the Prometheus pulls: e.g.
    /// <c>JobsSetup.AddOrUpdatePull&lt;PullJob&gt;(manager, "prometheus-pull", j => j.PullAsync(CancellationToken.None), "*/5 * * * *")</c>.
    /// A pull missed while every instance was down runs once on start, not once per missed period.
    /// </summary>
    public static void AddOrUpdatePull<TJob>(IRecurringJobManager manager, string id, Expression<Func<TJob, Task>> pull, string cron) =>
        manager.AddOrUpdate(id, JobQueues.Pulls, pull, cron, new RecurringJobOptions { TimeZone = TimeZoneInfo.Utc, MisfireHandling = MisfireHandlingMode.Relaxed });
}

/// <summary>Registers the recurring jobs with the configured schedules once the service has started.</summary>
sealed class RecurringJobsRegistration(
    IRecurringJobManager manager, Microsoft.Extensions.Options.IOptions<TrainingOptions> training,
    Microsoft.Extensions.Options.IOptions<Samples.RetentionOptions> retention, Microsoft.Extensions.Options.IOptions<ModelRetentionOptions> models) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        TrainingJobs.ScheduleNightly(manager, training.Value.NightlyCron);
        Samples.SampleRetention.Schedule(manager, retention.Value.Cron);
        Samples.HourlyRollupRefresh.Schedule(manager);
        ModelRetention.Schedule(manager, models.Value);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>
/// Hangfire logs through one process-wide provider, set by the host built last. Where several hosts share a process (the
/// tests), a stopped host's disposed logger factory would throw in every other host's workers, after a job was fetched
/// and before it ran (ObjectDisposedException in PostgreSqlFetchedJob), stranding that job until its invisibility timeout:
/// a disposed factory gives loggers that write nothing instead.
/// </summary>
sealed class HostSafeLogProvider(ILoggerFactory factory) : Hangfire.Logging.ILogProvider
{
    readonly AspNetCoreLogProvider _inner = new(factory);

    public Hangfire.Logging.ILog GetLogger(string name)
    {
        try
        {
            return _inner.GetLogger(name);
        }
        catch (ObjectDisposedException)
        {
            return Silent.Instance;
        }
    }

    sealed class Silent : Hangfire.Logging.ILog
    {
        public static readonly Silent Instance = new();

        public bool Log(Hangfire.Logging.LogLevel logLevel, Func<string>? messageFunc, Exception? exception = null) => false;
    }
}
