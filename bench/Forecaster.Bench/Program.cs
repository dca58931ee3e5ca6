// Benchmarks are run by hand (never in CI): `dotnet run -c Release --project bench/Forecaster.Bench -- <name> [args]`.
// Each benchmark compares against a baseline in the same run and prints ratios and medians,
// because these machines are too noisy for absolute timings to mean much.


var benches = new Dictionary<string, Func<string[], Task<int>>>(StringComparer.OrdinalIgnoreCase)
{
    ["planner"] = Forecaster.Bench.Planning.PlannerBench.Run,
    ["m4"] = Forecaster.Bench.Forecasting.M4Bench.Run,
    ["m4-candidates"] = Forecaster.Bench.Forecasting.M4Candidates.Run,
    ["fit-dump"] = Forecaster.Bench.Forecasting.FitDump.Run,
    ["writers"] = Forecaster.Bench.Ingestion.WritersBench.Run,
};

if (args.Length == 0 || !benches.TryGetValue(args[0], out var run))
{
    Console.Error.WriteLine($"usage: Forecaster.Bench <{string.Join('|', benches.Keys)}> [args]");
    return 2;
}
return await run(args[1..]);
