using System.Text.Json.Nodes;
using Forecaster.Api.Resources;
using Forecaster.Planner;
using static Forecaster.Planner.Hours;

namespace Forecaster.Api.Demo;

/// <summary>One synthetic resource of the demo fleet and the shape of its load.</summary>
public sealed record DemoResource(
    string Name, ResourceKind Kind, string Group, string LoadMetric, JsonObject Policy, TimeSpan Step,
    double BaseLoad, double DailyAmplitude, int PeakHourUtc, double WeekendFactor, double TrendPerDay, double Noise,
    double LoadPerCore, double MemoryBase, double MemoryPerLoad, int Seed)
{
    /// <summary>The resource the demo registers (not stored yet: no id; its policy is validated when it is registered).</summary>
    public Resource ToResource() =>
        new(0, Name, Kind, Group, LoadMetric, PolicyJson.Read(Policy.ToJsonString()), [], Policy.ToJsonString(), default, default);
}

/// <summary>One generated step of a demo resource: its samples and what made them (<see cref="DemoFleet.Steps"/>).</summary>
public readonly record struct DemoStep(
    DateTime Timestamp, double Load, double NoiselessLoad, bool BurstStarts, double BurstFactor,
    double Cores, double Memory, double Replicas, double? Backlog);

/// <summary>
/// A deterministic synthetic fleet with the tidal shape of real traffic: daily and weekly cycles, trend, noise,
/// spikes, a holiday dip and gaps, on hourly or per-minute steps, with the metrics the planner needs.
/// </summary>
public static class DemoFleet
{
    public const int HistoryDays = 35;

    static readonly string[] Services =
    [
        "checkout", "search", "payments", "catalog", "cart", "auth", "recommendations", "notifications", "inventory", "pricing",
        "reviews", "shipping", "ads", "images", "gateway", "profile", "orders", "feed", "chat", "reporting-api",
    ];
    static readonly string[] Jobs = ["clickstream-enrich", "fraud-scoring", "orders-cdc", "metrics-rollup", "search-indexer"];
    static readonly string[] Groups = ["shop", "platform", "growth"];

    public static IReadOnlyList<DemoResource> Resources(int seed = 42)
    {
        var rng = new Random(seed);
        var list = new List<DemoResource>();
        for (var i = 0; i < Services.Length; i++)
        {
            var baseLoad = Math.Round(40 + rng.NextDouble() * 1500);
            var loadPerCore = Math.Round(80 + rng.NextDouble() * 220);
            var policy = new JsonObject
            {
                ["minReplicas"] = 2,
                ["maxReplicas"] = 10 + (int)(baseLoad * 2.5 / loadPerCore) * 2,
                ["targetUtilization"] = 0.7,
                ["maxStepUp"] = 10,
                ["maxStepDown"] = 3,
                ["scaleDownDelayHours"] = 1,
                ["overcommitBuffer"] = 0.15,
            };
            // Half the fleet states its capacity; the other half leaves it to the trained capacity model.
            // The other half states the cores a replica is sized for (its limit), which turns the capacity model's
            // cpu = a + b·load into a capacity: (replicaCpu − a) / b.
            if (i % 2 == 0)
            {
                policy["capacityPerReplica"] = loadPerCore;
            }
            else
            {
                policy["replicaCpu"] = 1.0;
            }
            if (i % 5 == 0)
            {
                policy["windows"] = new JsonArray(new JsonObject
                {
                    ["days"] = "Mon-Fri", ["from"] = "19:00", ["to"] = "23:00", ["timeZone"] = "Asia/Shanghai", ["minReplicas"] = 4,
                });
            }
            list.Add(new DemoResource(
                Services[i], ResourceKind.Service, Groups[i % Groups.Length], "qps", policy,
                // A few series arrive per minute, as scraped metrics do; the rest hourly.
                i is 0 or 7 ? TimeSpan.FromMinutes(1) : Hour,
                baseLoad, 0.35 + rng.NextDouble() * 0.45, 10 + rng.Next(11), 0.55 + rng.NextDouble() * 0.6,
                rng.NextDouble() * 0.008, 0.03 + rng.NextDouble() * 0.05, loadPerCore,
                (256 + rng.Next(768)) * 1048576.0, 2048 + rng.NextDouble() * 8192, rng.Next()));
        }
        for (var i = 0; i < Jobs.Length; i++)
        {
            var baseLoad = Math.Round(2000 + rng.NextDouble() * 40000);
            var perCore = Math.Round(1500 + rng.NextDouble() * 3000);
            var policy = new JsonObject
            {
                ["minReplicas"] = 1,
                ["maxReplicas"] = 128,
                ["maxParallelism"] = 128,
                ["targetUtilization"] = 0.7,
                ["backlogMetric"] = "backlog_records",
                ["catchUpMinutes"] = 30,
                ["restartMinutes"] = 5,
            };
            if (i % 2 == 1)
            {
                policy["capacityPerSubtask"] = perCore;
            }
            else
            {
                policy["replicaCpu"] = 1.0;
            }
            list.Add(new DemoResource(
                Jobs[i], ResourceKind.Job, "streaming", "records_in_rate", policy,
                i == 0 ? TimeSpan.FromMinutes(1) : Hour,
                baseLoad, 0.3 + rng.NextDouble() * 0.4, 12 + rng.Next(8), 0.7 + rng.NextDouble() * 0.5,
                rng.NextDouble() * 0.006, 0.04 + rng.NextDouble() * 0.04, perCore,
                (1024 + rng.Next(2048)) * 1048576.0, 4096 + rng.NextDouble() * 4096, rng.Next()));
        }
        return list;
    }

    /// <summary>The samples of <paramref name="r"/> for the <see cref="HistoryDays"/> days before <paramref name="endUtc"/>.</summary>
    public static IEnumerable<(string Metric, DateTime Timestamp, double Value)> Samples(DemoResource r, DateTime endUtc, int days = HistoryDays)
    {
        foreach (var s in Steps(r, endUtc, days))
        {
            yield return (r.LoadMetric, s.Timestamp, s.Load);
            yield return ("cpu_cores", s.Timestamp, s.Cores);
            yield return ("memory_bytes", s.Timestamp, s.Memory);
            // The observed replica (job: parallelism) count: training divides cpu and memory by it for per-replica usage.
            yield return ("replicas", s.Timestamp, s.Replicas);
            if (s.Backlog is { } backlog)
            {
                yield return ("backlog_records", s.Timestamp, backlog);
            }
        }
    }

    /// <summary>
    /// Every step of <paramref name="r"/>'s history with what generated it: the noiseless load and whether a burst starts
    /// there. Bursts are drawn independently of everything before them, so no forecast can see one coming; the
    /// simulation's benchmark counts them (bench/demo-bursts.cs) to tell unforeseeable short hours from forecast errors.
    /// </summary>
    public static IEnumerable<DemoStep> Steps(DemoResource r, DateTime endUtc, int days = HistoryDays)
    {
        var rng = new Random(r.Seed);
        var end = FloorHour(endUtc);
        var start = end.AddDays(-days);
        var holiday = end.AddDays(-12).Date;
        var gaps = Enumerable.Range(0, 2).Select(_ =>
        {
            var from = start.AddHours(24 + rng.Next((days - 2) * 24));
            return (From: from, To: from.AddHours(2 + rng.Next(10)));
        }).ToArray();
        var spike = 1.0;
        var backlog = 0.0;
        for (var t = start; t < end; t += r.Step)
        {
            if (gaps.Any(g => t >= g.From && t < g.To))
            {
                continue;
            }
            var noiseless = Load(r, t, start, holiday);
            var load = noiseless * (1 + r.Noise * Gaussian(rng));
            // Spikes: rare bursts that decay over a few steps.
            var burstStarts = rng.NextDouble() < 0.003 * r.Step.TotalHours;
            spike = burstStarts ? 1.6 + rng.NextDouble() * 1.4 : 1 + (spike - 1) * Math.Pow(0.5, r.Step.TotalHours);
            load = Math.Max(0, load * spike);
            var replicas = Math.Max(2, Math.Ceiling(load / (r.LoadPerCore * 0.7)));
            // Each replica idles at 0.1 core and load costs 1 / LoadPerCore cores: per replica, cpu = 0.1 + load / LoadPerCore.
            var cores = replicas * 0.1 + load / r.LoadPerCore * (1 + 0.03 * Gaussian(rng));
            var memory = replicas * r.MemoryBase + load * r.MemoryPerLoad * (1 + 0.02 * Gaussian(rng));
            double? jobBacklog = null;
            if (r.Kind == ResourceKind.Job)
            {
                // Backlog builds while a spike outruns the job and drains afterwards.
                backlog = Math.Max(0, backlog + (spike - 1.15) * load * r.Step.TotalSeconds * 0.2);
                jobBacklog = Math.Round(backlog);
            }
            yield return new DemoStep(t, Math.Round(load, 3), noiseless, burstStarts, spike,
                Math.Round(Math.Max(0, cores), 4), Math.Round(memory), replicas, jobBacklog);
        }
    }

    /// <summary>The noiseless load at <paramref name="t"/>: base × trend × weekly × daily (× holiday).</summary>
    public static double Load(DemoResource r, DateTime t, DateTime start, DateTime holiday)
    {
        var hours = t.Hour + t.Minute / 60.0;
        // Two harmonics: a morning ramp up to a peak and a quiet night, as tidal traffic has.
        var phase = 2 * Math.PI * (hours - r.PeakHourUtc) / 24;
        var daily = 1 + r.DailyAmplitude * (0.8 * Math.Cos(phase) + 0.2 * Math.Cos(2 * phase));
        var weekly = t.DayOfWeek is DayOfWeek.Saturday or DayOfWeek.Sunday ? r.WeekendFactor : 1;
        var trend = 1 + r.TrendPerDay * (t - start).TotalDays;
        var dip = t.Date == holiday ? 0.45 : 1;
        return r.BaseLoad * Math.Max(0.05, daily) * weekly * trend * dip;
    }

    static double Gaussian(Random rng) =>
        Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
}
