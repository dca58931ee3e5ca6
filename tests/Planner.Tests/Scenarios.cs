namespace Forecaster.Planner.Tests;

/// <summary>Seeded random and hand-made planner inputs; every property test runs the same seeds on every machine.</summary>
internal static class Scenarios
{
    public static readonly DateTimeOffset Now = new(2025, 3, 20, 9, 17, 0, TimeSpan.Zero);

    public static readonly DateTimeOffset Start = new(2025, 3, 20, 10, 0, 0, TimeSpan.Zero);

    public static readonly string[] Zones = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Shanghai", "Asia/Kolkata"];

    public static readonly string[] DaySpecs = ["Mon-Fri", "Sat,Sun", "Mon", "Fri-Mon", "Tue,Thu", "Mon-Sun"];

    public static IEnumerable<int> Seeds(int count) => Enumerable.Range(1, count);

    public static Policy RandomPolicy(Random r, ResourceKind kind, bool windows = true)
    {
        int? min = r.Next(5) == 0 ? null : r.Next(kind == ResourceKind.Job ? 1 : 0, 10);
        int? max = r.Next(5) == 0 ? null : (min ?? 1) + r.Next(0, 60);
        var exceed = r.Next(4) == 0;
        int? maxParallelism = kind == ResourceKind.Job ? new[] { 12, 60, 90, 128, 360, 720 }[r.Next(6)] : null;
        if (maxParallelism is int mp)
        {
            min = min is int m ? Math.Min(m, mp) : null;
            max = max is int x ? Math.Clamp(x, min ?? 1, mp) : null;
        }
        return new Policy
        {
            CapacityPerReplica = kind == ResourceKind.Service ? 10 + (r.NextDouble() * 400) : null,
            CapacityPerSubtask = kind == ResourceKind.Job ? 100 + (r.NextDouble() * 4000) : null,
            TargetUtilization = 0.3 + (r.NextDouble() * 0.7),
            MinReplicas = min,
            MaxReplicas = max,
            ForecastBound = r.Next(2) == 0 ? ForecastBound.Point : ForecastBound.Upper,
            MaxStepUp = r.Next(3) == 0 ? null : r.Next(1, 12),
            MaxStepDown = r.Next(3) == 0 ? null : r.Next(1, 12),
            Tolerance = r.Next(3) == 0 ? 0 : r.NextDouble() * 0.3,
            ScaleDownDelayHours = r.Next(0, 5),
            LeadMinutes = r.Next(0, 30),
            Windows = windows ? [.. Enumerable.Range(0, r.Next(0, 3)).Select(_ => RandomWindow(r, min, max))] : [],
            MaxBreach = exceed ? MaxBreach.Exceed : MaxBreach.Honor,
            MaxBreachBuffer = exceed && r.Next(2) == 0 ? r.NextDouble() * 0.5 : null,
            Mode = r.Next(5) == 0 ? PlanMode.ForecastOnly : PlanMode.Scale,
            MaxParallelism = maxParallelism,
        };
    }

    private static PolicyWindow RandomWindow(Random r, int? min, int? max)
    {
        int? wMax = r.Next(2) == 0 ? null : r.Next(1, 100);
        int? wMin = r.Next(3) == 0 ? null : r.Next(0, 60);
        // Keep min <= max inside the window, as the validator demands.
        if ((wMin ?? min) is int lo && (wMax ?? max) is int hi && lo > hi)
        {
            if (wMin is not null)
            {
                wMin = hi;
            }
            else
            {
                wMax = lo;
            }
        }
        double? target = r.Next(2) == 0 && (wMin is not null || wMax is not null) ? null : 0.4 + (r.NextDouble() * 0.6);
        var from = r.Next(0, 24 * 4) * 15;
        var to = (from + (r.Next(1, 12 * 4) * 15)) % ClockTime.MinutesPerDay;
        return new PolicyWindow
        {
            Days = DaySet.Parse(DaySpecs[r.Next(DaySpecs.Length)]),
            From = new ClockTime(from),
            To = new ClockTime(to == from ? (to + 60) % ClockTime.MinutesPerDay : to),
            TimeZone = TimeZoneInfo.FindSystemTimeZoneById(Zones[r.Next(Zones.Length)]),
            MinReplicas = wMin,
            MaxReplicas = wMax,
            TargetUtilization = target,
        };
    }

    /// <summary>A daily-seasonal load with noise and the odd spike; some hours missing.</summary>
    public static double[] RandomLoad(Random r, int hours, double level)
    {
        var phase = r.NextDouble() * 24;
        var load = new double[hours];
        for (var k = 0; k < hours; k++)
        {
            var daily = 1 + (0.6 * Math.Sin(2 * Math.PI * (k + phase) / 24));
            var spike = r.Next(30) == 0 ? 1 + (r.NextDouble() * 3) : 1;
            load[k] = Math.Max(0, level * daily * spike * (0.9 + (r.NextDouble() * 0.2)));
        }
        return load;
    }

    public static PlanInput RandomInput(Random r, ResourceKind kind, Policy? policy = null, int hours = 48)
    {
        policy ??= RandomPolicy(r, kind);
        var level = r.NextDouble() * (kind == ResourceKind.Job ? 50_000 : 5_000);
        var point = RandomLoad(r, hours, level);
        var widths = point.Select(_ => 1 + (r.NextDouble() * 0.4)).ToArray();
        return new PlanInput
        {
            Resource = $"res-{r.Next()}",
            Kind = kind,
            Policy = policy,
            Now = Now,
            HorizonStart = Start,
            HorizonHours = hours,
            Forecast = ForecastOf(point, widths, dropEvery: r.Next(4) == 0 ? 7 : 0),
            ObservedLoad = new HourlySeries(Start.AddDays(-8), RandomLoad(r, 8 * 24, level)),
            Current = r.Next(4) == 0 ? null : Math.Clamp(r.Next(0, 80), policy.MinReplicas ?? 1, Math.Min(policy.MaxReplicas ?? 1000, policy.MaxParallelism ?? 1000)),
            CurrentBacklog = kind == ResourceKind.Job && r.Next(2) == 0 ? r.NextDouble() * 1e7 : null,
            WeeklyPeak = new UsagePeak(r.NextDouble() * 4, (long)(r.NextDouble() * 8e9)),
        };
    }

    public static ForecastRun ForecastOf(double[] point, double[]? upperFactor = null, int dropEvery = 0, DateTimeOffset? start = null) =>
        new("fc-1", "model-1", (start ?? Start).AddHours(-2), true,
            [.. point.Select((p, k) => new ForecastHour((start ?? Start).AddHours(k), p, p * 0.8, p * (upperFactor?[k] ?? 1.2)))
                .Where((_, k) => dropEvery == 0 || k % dropEvery != 3)]);

    /// <summary>A service with capacity 100 per replica at target 1.0: load 1,000 means 10 replicas.</summary>
    public static PlanInput Simple(double[] load, Policy? policy = null, int? current = null) => new()
    {
        Resource = "checkout",
        Kind = ResourceKind.Service,
        Policy = policy ?? new Policy { CapacityPerReplica = 100, TargetUtilization = 1, Tolerance = 0, ScaleDownDelayHours = 0, ForecastBound = ForecastBound.Point },
        Now = Now,
        HorizonStart = Start,
        HorizonHours = load.Length,
        Forecast = ForecastOf(load),
        Current = current,
    };

    public static Plan Planned(PlanInput input) => ScalePlanner.Plan(input) switch
    {
        Planned<Plan> p => p.Value,
        CannotPlan<Plan> c => throw new InvalidOperationException(string.Join("; ", c.Missing)),
        _ => throw new InvalidOperationException(),
    };

    public static int[] Counts(PlanInput input) => [.. Planned(input).Steps.Select(s => s.Count)];
}
