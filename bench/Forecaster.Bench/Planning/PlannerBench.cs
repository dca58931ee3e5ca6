using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Forecaster.Planner;

namespace Forecaster.Bench.Planning;

/// <summary>
/// Issue 5's closing note: plan 100,000 resources × 48 steps in memory with the pure planner (goal under 2 s).
/// The fleet is a realistic mix: 80% services, 20% streaming jobs, a third with time windows, some stale
/// forecasts (fallback path), some capacity models, some dry runs. Inputs share a pool of series, as the planner
/// only reads them; each plan is folded into a checksum and dropped, as a host storing in batches would.
/// Baseline in the same run: bare arithmetic ceil(load / (capacity × target)) per step, no policy.
/// </summary>
public static class PlannerBench
{
    private static readonly DateTimeOffset Now = new(2025, 3, 28, 9, 17, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset Start = new(2025, 3, 28, 10, 0, 0, TimeSpan.Zero);

    public static Task<int> Run(string[] args)
    {
        var resources = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 100_000;
        var runs = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 5;
        // A third argument gives every resource a stated risk (maxUnderProvisionedHoursFraction) instead of the target alone:
        // a risk plan searches its quantile over trial plans, so it costs more per resource than a plain one.
        var risk = args.Length > 2 ? new RiskPolicy(double.Parse(args[2], CultureInfo.InvariantCulture)) : null;
        var inputs = Fleet(resources, new Random(42), risk);
        Console.WriteLine($"planner: {resources:N0} resources × 48 steps, {Environment.ProcessorCount} cores, {runs} runs after a warm-up{(risk is null ? "" : $", every policy with risk {risk.MaxUnderProvisionedHoursFraction}")}");

        var baseline = Measure(runs, () => Baseline(inputs));
        var parallel = Measure(runs, () => PlanAll(inputs, parallel: true));
        var serial = Measure(Math.Min(runs, 3), () => PlanAll(inputs, parallel: false));

        Report("baseline (ceil(load/capacity) only)", baseline, resources);
        Report("planner, 1 thread", serial, resources);
        Report($"planner, {Environment.ProcessorCount} threads", parallel, resources);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"planner/baseline {parallel.Median.TotalMilliseconds / baseline.Median.TotalMilliseconds:F1}×; allocated {parallel.Allocated / resources / 1024.0:F1} KiB per plan; goal < 2 s: {(parallel.Median < TimeSpan.FromSeconds(2) ? "met" : "MISSED")}"));
        return Task.FromResult(0);
    }

    private sealed record Timing(TimeSpan Median, long Allocated, long Checksum);

    private static Timing Measure(int runs, Func<long> work)
    {
        var checksum = work();
        var times = new List<TimeSpan>();
        long allocated = 0;
        for (var i = 0; i < runs; i++)
        {
            GC.Collect();
            var before = GC.GetTotalAllocatedBytes(precise: true);
            var clock = Stopwatch.StartNew();
            var sum = work();
            times.Add(clock.Elapsed);
            allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
            if (sum != checksum)
            {
                throw new InvalidOperationException("planner is not deterministic");
            }
        }
        times.Sort();
        return new Timing(times[times.Count / 2], allocated, checksum);
    }

    private static void Report(string name, Timing t, int resources) =>
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  {name,-38} median {t.Median.TotalMilliseconds,8:F0} ms  {resources / t.Median.TotalSeconds,12:N0} resources/s  checksum {t.Checksum}"));

    private static long PlanAll(PlanInput[] inputs, bool parallel)
    {
        if (!parallel)
        {
            return Range(inputs, 0, inputs.Length);
        }
        long total = 0;
        Parallel.ForEach(Partitioner.Create(0, inputs.Length, 1_000), range => Interlocked.Add(ref total, Range(inputs, range.Item1, range.Item2)));
        return total;
    }

    private static long Range(PlanInput[] inputs, int from, int to)
    {
        long sum = 0;
        for (var i = from; i < to; i++)
        {
            if (ScalePlanner.Plan(inputs[i]) is Planned<Plan> planned)
            {
                foreach (var step in planned.Value.Steps)
                {
                    sum += step.Count + (step.WindowApplied ? 1_000_000 : 0);
                }
            }
        }
        return sum;
    }

    private static long Baseline(PlanInput[] inputs)
    {
        long sum = 0;
        foreach (var input in inputs)
        {
            var capacity = (input.Policy.CapacityPerReplica ?? input.Policy.CapacityPerSubtask ?? 100) * input.Policy.TargetUtilization;
            foreach (var hour in input.Forecast!.Hours)
            {
                sum += (long)Math.Ceiling(hour.Upper / capacity);
            }
        }
        return sum;
    }

    private static PlanInput[] Fleet(int count, Random r, RiskPolicy? risk)
    {
        // A pool of series: 100,000 distinct 8-day histories would measure the allocator, not the planner.
        const int Pool = 512;
        var zones = new[] { "Europe/Berlin", "Asia/Shanghai", "America/New_York" }.Select(TimeZoneInfo.FindSystemTimeZoneById).ToArray();
        var forecasts = new ForecastRun[Pool];
        var histories = new HourlySeries[Pool];
        for (var i = 0; i < Pool; i++)
        {
            var level = Math.Exp(r.NextDouble() * 9);
            var phase = r.NextDouble() * 24;
            double Load(int hour) => level * (1 + (0.6 * Math.Sin(2 * Math.PI * (hour + phase) / 24))) * (0.9 + (r.NextDouble() * 0.2));
            forecasts[i] = new ForecastRun($"fc-{i}", "ssa-3", Now.AddHours(-1), BeatsSeasonalNaive: r.Next(10) != 0,
                [.. Enumerable.Range(0, 48).Select(k => { var p = Load(k); return new ForecastHour(Start.AddHours(k), p, p * 0.8, p * 1.25); })]);
            histories[i] = new HourlySeries(Start.AddDays(-8), [.. Enumerable.Range(0, 8 * 24).Select(Load)]);
        }
        var inputs = new PlanInput[count];
        for (var i = 0; i < count; i++)
        {
            var job = r.Next(5) == 0;
            var min = r.Next(1, 5);
            var policy = new Policy
            {
                CapacityPerReplica = !job && r.Next(5) < 3 ? 20 + (r.NextDouble() * 200) : null,
                CapacityPerSubtask = job ? 500 + (r.NextDouble() * 5000) : null,
                MinReplicas = min,
                MaxReplicas = min + r.Next(5, 300),
                MaxStepUp = r.Next(2) == 0 ? r.Next(2, 20) : null,
                MaxStepDown = r.Next(2) == 0 ? r.Next(1, 10) : null,
                ScaleDownDelayHours = r.Next(0, 4),
                MaxBreach = r.Next(4) == 0 ? MaxBreach.Exceed : MaxBreach.Honor,
                Mode = r.Next(10) == 0 ? PlanMode.ForecastOnly : PlanMode.Scale,
                Risk = risk,
                MaxParallelism = job ? 720 : null,
                Windows = r.Next(3) == 0
                    ? [new PolicyWindow { Days = DaySet.Weekdays, From = new ClockTime(19 * 60), To = new ClockTime(23 * 60), TimeZone = zones[r.Next(zones.Length)], MinReplicas = min + 10, TargetUtilization = 0.6 }]
                    : [],
            };
            var pick = r.Next(Pool);
            inputs[i] = new PlanInput
            {
                Resource = $"resource-{i}",
                Kind = job ? ResourceKind.Job : ResourceKind.Service,
                Policy = policy,
                Now = Now,
                HorizonStart = Start,
                Forecast = r.Next(20) == 0 ? forecasts[pick] with { GeneratedAt = Now.AddDays(-3) } : forecasts[pick],
                ObservedLoad = histories[pick],
                Current = r.Next(1, 50),
                CapacityModel = new CapacityModel(0.1, 0.002, 0.8, 300, "cap-1"),
                ReplicaCpu = 2,
                WeeklyPeak = new UsagePeak(r.NextDouble() * 3, r.NextInt64(100L << 20, 8L << 30)),
                CurrentBacklog = job ? r.NextDouble() * 1e6 : null,
            };
        }
        return inputs;
    }
}
