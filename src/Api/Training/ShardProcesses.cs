using System.Collections.Concurrent;
using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Forecaster.Api.Database;
using Microsoft.Extensions.Options;

namespace Forecaster.Api.Training;

/// <summary>A shard's fitting failed in its child process: the message is the child's (<c>Type: message</c>), recorded as the shard's error.</summary>
public sealed class ShardProcessException(string message) : Exception(message);

/// <summary>
/// The service's shards are fitted in child processes, <c>forecaster train-worker</c>, started without tiered compilation
/// (<c>DOTNET_TieredCompilation=0</c>) while the service itself keeps tiering (issue 16). The service must tier: without it
/// the framework's precompiled code is never recompiled optimised, and plan/current served 18,570 requests/s against 47,598.
/// Fitting must not: with tiering every instance paid its JIT's warm-up again, the first three shards of a run fitting in
/// 16.6, 6.7 and 5.4 s against 2.0-2.4 s for each later one, and two instances spent 36 CPU seconds more than one on the
/// same 20,000 series (bench/README.md, "Session 5, merged main on a quiet machine").
/// </summary>
/// <remarks>
/// A child lives as long as the service and fits one shard at a time (an idle one is reused, so the JIT's work and the run's
/// fleet-wide model are paid once per instance, not per shard); a second shard in flight gets a second child. It builds the
/// same container as the service (the same configuration, the database the service resolved) and runs
/// <see cref="TrainingPipeline.RunShardAsync"/>, which writes exactly what it writes in-process; the claim, the lease and the
/// shard's end stay with the service (<see cref="ShardRunner"/>). Protocol: one JSON line per request on the child's stdin,
/// one JSON line per batch written and one with the outcome or error on its stdout; its logs go to stderr, the service's.
/// A cancelled shard (a stop, or Hangfire gave it to another instance) stops its child, whose open transaction PostgreSQL
/// then rolls back, before the shard is handed back: the next delivery resumes after the batches that committed, as after a
/// crash. A child that dies without answering is replaced and the shard resumed once; twice fails the shard. A child whose
/// service died reads the end of its stdin and exits.
/// </remarks>
public sealed class ShardProcesses(ResolvedDatabase database, IConfiguration configuration, IOptions<TrainingOptions> options, ILogger<ShardProcesses> logger)
    : IAsyncDisposable
{
    /// <summary>The hidden verb a child runs.</summary>
    public const string Verb = "train-worker";

    /// <summary>The exit code of a child that left after <see cref="IdleExit"/> without work: not a failure, the next shard starts another.</summary>
    const int IdleExitCode = 3;

    /// <summary>An idle child exits after this long, giving back its memory (the fleet-wide model, the fitted code) between nightly runs.</summary>
    static readonly TimeSpan IdleExit = TimeSpan.FromMinutes(10);

    static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    sealed record Request(long RunId, int Shard);

    /// <summary>One line of a child's answer: a batch written, or the shard's end (its outcome, or its error).</summary>
    sealed record Answer(BatchWritten? Batch, ShardOutcome? Outcome, string? Error);

    readonly ConcurrentBag<Process> _idle = [];
    readonly ConcurrentDictionary<int, Process> _children = new();

    /// <summary>Whether a child waits for work: a shard of any size is then fitted there, its start and JIT already paid.</summary>
    public bool HasIdleChild => _idle.Any(c => !c.HasExited);

    /// <summary>The children alive now (busy or idle), by process id.</summary>
    public IReadOnlyCollection<int> ProcessIds => [.. _children.Keys];

    /// <summary>
    /// Fits shard <paramref name="shard"/> of run <paramref name="runId"/> in a child; <paramref name="written"/> hears of each
    /// batch it wrote. Throws <see cref="OperationCanceledException"/> once <paramref name="ct"/> is cancelled and the child is
    /// dead, and <see cref="ShardProcessException"/> with the child's error.
    /// </summary>
    public async Task<ShardOutcome> RunShardAsync(long runId, int shard, Action<BatchWritten>? written, CancellationToken ct)
    {
        for (var crashes = 0; ;)
        {
            ct.ThrowIfCancellationRequested();
            var child = Take();
            var (answer, exit) = await RunAsync(child, new Request(runId, shard), written, ct);
            if (answer is { Outcome: { } outcome })
            {
                _idle.Add(child);
                return outcome;
            }
            if (answer is { Error: { } error })
            {
                _idle.Add(child);
                throw new ShardProcessException(error);
            }
            // The child is gone without an answer. One that had just left idle is no fault of the shard; another crash is
            // resumed once in a new child (what committed stays), then the shard fails rather than crash a child forever.
            Forget(child);
            child.Dispose();
            if (exit != IdleExitCode && ++crashes == 2)
            {
                throw new ShardProcessException($"the shard's process ({Verb}) exited with code {exit} twice without finishing it");
            }
            logger.LogWarning("Training run {RunId} shard {Shard}: its process exited with code {Exit} without finishing it; resuming in a new one", runId, shard, exit);
        }
    }

    /// <summary>Sends the request and reads the answers until the last; (null, exit code) when the child died first.</summary>
    async Task<(Answer? Answer, int Exit)> RunAsync(Process child, Request request, Action<BatchWritten>? written, CancellationToken ct)
    {
        // Cancelled: the child dies (its open transaction rolls back) and only then is the shard handed back, so that no two
        // deliveries of the shard ever write at once. Killing it also ends the read below, which a pipe may not do for a token.
        using (ct.Register(() => Close(child)))
        {
            try
            {
                await child.StandardInput.WriteLineAsync(JsonSerializer.Serialize(request, Json));
                await child.StandardInput.FlushAsync(CancellationToken.None);
                while (await child.StandardOutput.ReadLineAsync(CancellationToken.None) is { } line)
                {
                    var answer = JsonSerializer.Deserialize<Answer>(line, Json) ?? throw new InvalidDataException($"{Verb} answered '{line}'");
                    if (answer.Batch is { } batch)
                    {
                        written?.Invoke(batch);
                        continue;
                    }
                    return (answer, 0);
                }
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException)
            {
                // Writing to a child that has just exited (its exit code says why), or whose stdin a cancellation closed.
            }
        }
        if (ct.IsCancellationRequested)
        {
            await EndAsync(child);
            Forget(child);
            child.Dispose();
            throw new OperationCanceledException("the shard was cancelled; its process was stopped", ct);
        }
        await child.WaitForExitAsync(CancellationToken.None);
        return (null, child.ExitCode);
    }

    /// <summary>An idle child still alive, or a new one.</summary>
    Process Take()
    {
        while (_idle.TryTake(out var child))
        {
            if (!child.HasExited)
            {
                return child;
            }
            Forget(child);
        }
        return Start();
    }

    Process Start()
    {
        var start = ChildStart();
        start.RedirectStandardInput = true;
        start.RedirectStandardOutput = true;
        start.UseShellExecute = false;
        // Fitting without tiering (the point of the child), with the workstation collector (as `forecaster train`: the server
        // collector let the process's memory climb with the fleet). The rest of the environment is the service's.
        start.Environment["DOTNET_TieredCompilation"] = "0";
        start.Environment["DOTNET_gcServer"] = "0";
        // No spinning of idle thread-pool threads either, as for every verb of this executable (its runtimeconfig, see
        // Forecaster.Api.csproj): the child's pool threads only carry the reads and writes beside the fitting.
        // The same configuration as the service, whatever its source (a test host's in-memory settings included), and the
        // database the service resolved (the embedded cluster's address): never a second resolution that could differ.
        foreach (var (key, value) in configuration.AsEnumerable())
        {
            if (value is not null && key.StartsWith("Forecaster:", StringComparison.OrdinalIgnoreCase) && !key.Contains('='))
            {
                start.Environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
            }
        }
        start.Environment["Forecaster__Training__ModelsPath"] = options.Value.ResolvedModelsPath;
        start.Environment["FORECASTER_DB"] = database.ConnectionString;
        var child = Process.Start(start) ?? throw new InvalidOperationException($"could not start {start.FileName} {Verb}");
        _children[child.Id] = child;
        logger.LogInformation("Started the shard process {Pid} ({Verb}, without tiered compilation)", child.Id, Verb);
        return child;
    }

    /// <summary>This very program in its child role: the apphost as the service runs it, else <c>dotnet forecaster.dll</c> (a test host).</summary>
    static ProcessStartInfo ChildStart()
    {
        var assembly = typeof(ShardProcesses).Assembly.Location;
        var self = Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self) == Path.GetFileNameWithoutExtension(assembly))
        {
            return new ProcessStartInfo(self) { ArgumentList = { Verb } };
        }
        var dotnet = self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self : "dotnet";
        return new ProcessStartInfo(dotnet) { ArgumentList = { assembly, Verb } };
    }

    void Forget(Process child)
    {
        _children.TryRemove(child.Id, out _);
    }

    /// <summary>
    /// Closes a child's stdin, on which it exits at once (Environment.Exit: the runtime removes its diagnostics pipes in /tmp,
    /// which a kill leaves behind; its open transaction rolls back with its connection).
    /// </summary>
    static void Close(Process child)
    {
        try
        {
            child.StandardInput.Close();
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or ObjectDisposedException)
        {
            // Already gone.
        }
    }

    /// <summary>Stops a child: stdin closed, killed if it has not exited 5 s later (hung); returns once it is dead.</summary>
    static async Task EndAsync(Process child)
    {
        Close(child);
        using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            await child.WaitForExitAsync(grace.Token);
        }
        catch (OperationCanceledException)
        {
            Kill(child);
            await child.WaitForExitAsync(CancellationToken.None);
        }
    }

    static void Kill(Process child)
    {
        try
        {
            child.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Already exited.
        }
    }

    /// <summary>The service stops: every child is stopped (a shard in flight was handed back through its cancellation first).</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var child in _children.Values)
        {
            await EndAsync(child);
            child.Dispose();
        }
        _children.Clear();
    }

    /// <summary>
    /// <c>forecaster train-worker</c>: the child's side. Hidden: only <see cref="ShardProcesses"/> starts it. Exits when its
    /// stdin ends (the service closed it or died), or after <see cref="IdleExit"/> without a request.
    /// </summary>
    public static Command Command()
    {
        var command = new Command(Verb, "Fit the service's training shards (started by the service; reads requests on stdin).") { Hidden = true };
        command.SetAction(async (parse, ct) =>
        {
            await using var host = ForecasterServices.BuildForVerb(LogLevel.Information);
            host.Services.GetRequiredService<ILogger<ShardProcesses>>().LogInformation("Shard process ready after {Cpu:F1} CPU seconds", Environment.CpuUsage.TotalTime.TotalSeconds);
            var pipeline = host.Services.GetRequiredService<TrainingPipeline>();
            var logger = host.Services.GetRequiredService<ILogger<ShardProcesses>>();
            // Answers only on stdout: logs go to stderr (BuildForVerb). One writer at a time: batches end on the pipeline's tasks.
            var stdout = new StreamWriter(Console.OpenStandardOutput()) { AutoFlush = true };
            var gate = new object();
            void Send(Answer answer)
            {
                var line = JsonSerializer.Serialize(answer, Json);
                lock (gate)
                {
                    stdout.WriteLine(line);
                }
            }
            // Requests are read apart from the work, so that the end of stdin (the service died) stops a shard in flight at once:
            // its open transaction rolls back with the connection, and the shard's next delivery resumes after what committed.
            // A thread of its own: a blocking read on the thread pool would hold one of its threads (one, on a pinned core).
            var requests = System.Threading.Channels.Channel.CreateUnbounded<string>();
            new Thread(() =>
            {
                while (Console.In.ReadLine() is { } line)
                {
                    requests.Writer.TryWrite(line);
                }
                Environment.Exit(0);
            }) { IsBackground = true, Name = "shard requests" }.Start();
            while (true)
            {
                string line;
                using (var idle = CancellationTokenSource.CreateLinkedTokenSource(ct))
                {
                    idle.CancelAfter(IdleExit);
                    try
                    {
                        line = await requests.Reader.ReadAsync(idle.Token);
                    }
                    catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                    {
                        return IdleExitCode;
                    }
                }
                var request = JsonSerializer.Deserialize<Request>(line, Json) ?? throw new InvalidDataException($"{Verb}: bad request '{line}'");
                var cpu = Environment.CpuUsage.TotalTime;
                try
                {
                    var outcome = await pipeline.RunShardAsync(request.RunId, request.Shard, batch => Send(new Answer(batch, null, null)), ct);
                    // This process's CPU for the shard: what an instance spends on it, the JIT's warm-up included (bench/scale-out.sh).
                    logger.LogInformation("Training run {RunId} shard {Shard}: {Cpu:F1} CPU seconds in the shard process ({Total:F1} since it started)",
                        request.RunId, request.Shard, (Environment.CpuUsage.TotalTime - cpu).TotalSeconds, Environment.CpuUsage.TotalTime.TotalSeconds);
                    Send(new Answer(null, outcome, null));
                }
                catch (Exception e) when (!ct.IsCancellationRequested)
                {
                    Send(new Answer(null, null, $"{e.GetType().Name}: {e.Message}"));
                }
            }
        });
        return command;
    }
}
