using System.CommandLine;
using System.Text;
using Dapper;
using Forecaster.Api.Plans;
using Forecaster.Api.Resources;
using Forecaster.Api.Serving;
using Forecaster.Planner;

namespace Forecaster.Api.Executors;

/// <summary>
/// <c>forecaster manifest scaledobject NAME</c> and <c>forecaster manifest flink NAME</c>: the same YAML as the endpoints, from the
/// database, on stdout (pipe it into <c>kubectl apply -f -</c> or <c>kubectl patch ... --type merge --patch-file</c>).
/// Exit codes: 0 printed, 1 failure, 2 unknown name or a policy that makes the manifest impossible (the field is named).
/// </summary>
public static class ManifestCommand
{
    public static Command Create()
    {
        var scaled = new Command("scaledobject", "Print the KEDA ScaledObject (and TriggerAuthentication when reads need a key) of a service.");
        var scaledName = new Argument<string>("NAME") { Description = "The resource." };
        scaled.Add(scaledName);
        scaled.SetAction(async (parse, ct) => await ScaledObjectAsync(parse.GetValue(scaledName)!, ct));

        var flink = new Command("flink", "Print the FlinkDeployment merge patch of a streaming job's current step, for kubectl patch --type merge.");
        var flinkName = new Argument<string>("NAME") { Description = "The resource." };
        flink.Add(flinkName);
        flink.SetAction(async (parse, ct) => await FlinkAsync(parse.GetValue(flinkName)!, ct));

        return new Command("manifest", "Print what an executor applies: a KEDA ScaledObject or a Flink patch.") { scaled, flink };
    }

    static async Task<PlanCache.Row?> ReadAsync(Npgsql.NpgsqlDataSource db, string name, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        return (await PlanCache.ReadAsync(conn, [name], ct)).SingleOrDefault();
    }

    static async Task<int> ScaledObjectAsync(string name, CancellationToken ct)
    {
        await using var host = await ForecasterServices.BuildForVerbAsync(LogLevel.Warning, ct);
        // The service's validated options: the manifest says what the service it points at will ask for.
        var options = host.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<ExecutorOptions>>().Value;
        var readsNeedKey = host.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<ForecasterOptions>>().Value.RequireApiKeyForReads;
        if (await ReadAsync(host.Services.GetRequiredService<Npgsql.NpgsqlDataSource>(), name, ct) is not { } row)
        {
            Console.Error.WriteLine($"NAME: no resource is named '{name}'");
            return 2;
        }
        switch (ExecutorsApi.ScaledObject(row.ToResource(), options, readsNeedKey))
        {
            case ManifestText text:
                Console.Out.Write(text.Yaml);
                return 0;
            case ManifestImpossible bad:
                Console.Error.WriteLine($"{bad.Field}: {bad.Message}");
                return 2;
            default:
                return 1;
        }
    }

    static async Task<int> FlinkAsync(string name, CancellationToken ct)
    {
        await using var host = await ForecasterServices.BuildForVerbAsync(LogLevel.Warning, ct);
        var db = host.Services.GetRequiredService<Npgsql.NpgsqlDataSource>();
        if (await ReadAsync(db, name, ct) is not { } row)
        {
            Console.Error.WriteLine($"NAME: no resource is named '{name}'");
            return 2;
        }
        var now = TimeProvider.System.GetUtcNow();
        // The fallback's inputs, as the serving cache loads them, for hours no plan covers.
        var stored = row.ToResource();
        var request = (await PlanInputs.LoadAsync(db, [stored], now, PlanInputs.HorizonStart(now), new PlanningOptions(), ct))[0];
        var resource = PlanCache.Served(stored, row.Plan?.Id, PlanCache.Plan(row, now), request);
        var (body, problem) = ExecutorsApi.Flink(resource, now, stale: false, yaml: true);
        if (body is not null)
        {
            Console.Out.Write(Encoding.UTF8.GetString(body.Body));
            return 0;
        }
        // A service is bad input (exit 2); nothing to patch yet or a dry run is a state, not a mistake (exit 1).
        var status = problem?.StatusCode;
        Console.Error.WriteLine(status == StatusCodes.Status400BadRequest ? $"kind: {problem?.ProblemDetails.Detail}" : problem?.ProblemDetails.Detail);
        return status == StatusCodes.Status400BadRequest ? 2 : 1;
    }
}
