using System.Diagnostics;
using System.Text.Json;
using System.Threading.Channels;
using Forecaster.Api.Plans;
using Forecaster.Api.Training;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Forecaster.Api.Simulations;

/// <summary>
/// Runs simulations one at a time in the background (each replay already uses every core), from a bounded queue of ids: a POST
/// that finds it full is refused rather than piling up work. The request and the report live in PostgreSQL, so after a restart
/// the simulations left queued or running are run again, and a finished report is still there.
/// </summary>
public sealed class SimulationQueue(
    NpgsqlDataSource db, IOptions<SimulationOptions> options, IOptions<TrainingOptions> training, IOptions<PlanningOptions> planning,
    TimeProvider clock, IHostApplicationLifetime lifetime, ILogger<SimulationQueue> logger) : BackgroundService
{
    readonly Channel<long> _queue = Channel.CreateBounded<long>(new BoundedChannelOptions(options.Value.QueueCapacity) { SingleReader = true });

    /// <summary>Queues a stored simulation; false when the queue is full.</summary>
    public bool TryEnqueue(long id) => _queue.Writer.TryWrite(id);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // After start-up, so the migrations have run.
        var started = new TaskCompletionSource();
        using (lifetime.ApplicationStarted.Register(started.SetResult))
        {
            await started.Task.WaitAsync(stoppingToken);
        }
        // A database that is away at start only delays this recovery's simulations; it must not stop the service.
        await Training.TrainingRunJob.TryAsync(async () =>
        {
            foreach (var id in await Simulations.UnfinishedAsync(db, stoppingToken))
            {
                if (!TryEnqueue(id))
                {
                    await Simulations.FailAsync(db, id, "interrupted by a restart and the queue is full; post it again", clock.GetUtcNow(), stoppingToken);
                }
            }
        }, logger, stoppingToken);
        await foreach (var id in _queue.Reader.ReadAllAsync(stoppingToken))
        {
            try
            {
                await RunAsync(id, stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // One simulation's failure is its own: recorded on it, and the queue goes on.
                logger.LogError(e, "Simulation {Id} failed", id);
                // Recording it may fail too when the database is the cause; that must not stop the service either.
                await Training.TrainingRunJob.TryAsync(
                    () => Simulations.FailAsync(db, id, $"{e.GetType().Name}: {e.Message}", clock.GetUtcNow(), CancellationToken.None), logger, stoppingToken);
            }
        }
    }

    async Task RunAsync(long id, CancellationToken ct)
    {
        if (!await Simulations.StartAsync(db, id, clock.GetUtcNow(), ct) || await Simulations.GetAsync(db, id, ct) is not { } row)
        {
            return;
        }
        var request = JsonSerializer.Deserialize<SimulationRequest>(row.Request, JsonSerializerOptions.Web)!;
        var (series, problem) = await SimulationRequests.LoadAsync(db, request, ct);
        if (problem is not null)
        {
            await Simulations.FailAsync(db, id, problem, clock.GetUtcNow(), ct);
            return;
        }
        var settings = new ReplaySettings(request.TrainDays ?? ReplaySettings.DefaultTrainDays, training.Value, planning.Value);
        var notes = new[] { request.Resources is { } names ? $"input: stored load of {names.Length} resources" : $"input: {series.Count} inline series" };

        // The replay reports every fit from worker threads; the database hears about it at most once a second.
        var total = 0;
        var done = 0;
        var clockStarted = Stopwatch.GetTimestamp();
        using var ticker = new PeriodicTimer(TimeSpan.FromSeconds(1));
        var replay = Task.Run(() => Replay.Simulate(series, settings, notes, (d, t) =>
        {
            Volatile.Write(ref total, t);
            Interlocked.Exchange(ref done, Math.Max(d, Volatile.Read(ref done)));
        }, ct), ct);
        while (!replay.IsCompleted)
        {
            await Task.WhenAny(replay, ticker.WaitForNextTickAsync(ct).AsTask());
            if (!replay.IsCompleted)
            {
                await Simulations.ProgressAsync(db, id, Volatile.Read(ref done), Volatile.Read(ref total), ct);
            }
        }
        var report = await replay;
        await Simulations.SucceedAsync(db, id, JsonSerializer.Serialize(report, JsonSerializerOptions.Web), Volatile.Read(ref total), clock.GetUtcNow(), ct);
        logger.LogInformation("Simulation {Id}: {Series} series, {Days} series-days in {Seconds:F1}s; goal met: {Met}",
            id, report.ReplayedSeries, report.SeriesDays, Stopwatch.GetElapsedTime(clockStarted).TotalSeconds, report.Goal.Met);
    }
}
