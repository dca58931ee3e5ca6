using System.Globalization;
using static Forecaster.Planner.Hours;

namespace Forecaster.Planner;

/// <summary>One hour while it is being planned; a mutable struct so 48 of them live in one array per resource.</summary>
internal struct HourPlan
{
    public DateTimeOffset At;
    public HourLimits Limits;
    public int Lo;
    public int Hi;
    public StepSource Source;
    public FallbackReason Fallback;
    public DateTimeOffset? LoadHour;
    public double? Load;
    public RiskChoice? Risk;
    public bool LoadFromForecast;
    public double? Raw;
    public int? Demand;
    public JobDemand? Job;
    public int Need;
    public bool Ramped;
    public bool UpperLimited;
    public int Count;
    // The rules that changed this hour's count, in order: the first three held here (an hour rarely has more), the rest in
    // a list. A list per clamped hour, with its array, was 3.4 of the 21 KiB planning a resource allocated (bench planner).
    private Clamp clamp0, clamp1, clamp2;
    private int clampCount;
    private List<Clamp>? moreClamps;

    public void Add(ClampRule rule, int from, int to, double limit)
    {
        var clamp = new Clamp(rule, from, to, limit);
        switch (clampCount++)
        {
            case 0: clamp0 = clamp; break;
            case 1: clamp1 = clamp; break;
            case 2: clamp2 = clamp; break;
            default: (moreClamps ??= new(2)).Add(clamp); break;
        }
    }

    /// <summary>The clamps in the order they were added.</summary>
    public readonly Clamp[] Clamps()
    {
        if (clampCount == 0)
        {
            return [];
        }
        var clamps = new Clamp[clampCount];
        clamps[0] = clamp0;
        if (clampCount > 1)
        {
            clamps[1] = clamp1;
        }
        if (clampCount > 2)
        {
            clamps[2] = clamp2;
        }
        moreClamps?.CopyTo(clamps, 3);
        return clamps;
    }
}

/// <summary>What stays the same across a resource's hours: policy, capacity, requests, and a job's divisors.</summary>
internal sealed class PlanningContext
{
    /// <summary>Caps a runaway raw count (a near-zero capacity) far below int overflow.</summary>
    private const int MaxCount = 1_000_000_000;

    private static readonly TimeSpan Day = TimeSpan.FromDays(1);
    private static readonly TimeSpan Week = TimeSpan.FromDays(7);
    private readonly PlanInput input;
    private readonly Policy policy;
    private readonly int[]? divisors;
    // Each window's rule as people read it, written once per plan rather than once per step the window covers.
    private string?[]? windowRules;

    public PlanningContext(PlanInput input)
    {
        this.input = input;
        policy = input.Policy;
        Capacity = Capacity.Resolve(input);
        Requests = ResourceRequests.For(policy, input.WeeklyPeak, input.Usage, input.Now);
        if (input.Kind == ResourceKind.Job && policy.MaxParallelism is int keyGroups)
        {
            divisors = Divisors(keyGroups);
        }
    }

    public Capacity Capacity { get; }

    /// <summary>The plan's one forecast quantile under a risk policy (<see cref="RiskChoice.PlanQuantile"/>), set before the hours resolve.</summary>
    public double? RiskQuantile { get; set; }

    public ResourceRequests Requests { get; }

    /// <summary>Load, raw count and bounds for one hour; false when it cannot be planned at all.</summary>
    public bool Resolve(DateTimeOffset at, ForecastHour? forecast, FallbackReason noForecast, out HourPlan h)
    {
        h = default;
        h.At = at;
        h.Limits = policy.LimitsAt(at, input.Kind);
        h.Lo = h.Limits.Lower;
        h.Hi = h.Limits.Upper;
        if (policy.Risk is { } risk && forecast is ForecastHour r && double.IsFinite(r.Point) && double.IsFinite(r.Upper))
        {
            h.Source = StepSource.Forecast;
            h.Risk = RiskChoice.For(risk, r, input.Forecast!.BandLevel, h.Limits.TargetUtilization, RiskQuantile, input.Forecast.Tail);
            h.Load = h.Risk.Load;
            h.LoadHour = at;
        }
        else if (forecast is ForecastHour f && double.IsFinite(f.At(policy.ForecastBound)))
        {
            h.Source = StepSource.Forecast;
            h.Load = Math.Max(0, f.At(policy.ForecastBound));
            h.LoadHour = at;
            h.LoadFromForecast = true;
        }
        else
        {
            h.Fallback = noForecast;
            (h.Source, h.LoadHour, h.Load) =
                Observed(at - Day, out var yesterday) ? (StepSource.YesterdaySameHour, at - Day, yesterday)
                : Observed(at - Week, out var lastWeek) ? (StepSource.LastWeekSameHour, at - Week, lastWeek)
                : (StepSource.Static, (DateTimeOffset?)null, (double?)null);
        }
        if (h.Load is not null && Capacity.PerUnit is null)
        {
            h.Source = StepSource.Static;
            h.Fallback = FallbackReason.NoCapacity;
        }
        if (h.Source == StepSource.Static)
        {
            return Static(ref h);
        }

        var utilization = h.Limits.TargetUtilization;
        double needed;
        if (input.Kind == ResourceKind.Job)
        {
            h.Job = JobRate(at, h.Load!.Value, utilization);
            needed = h.Job.NeededRate;
        }
        else
        {
            needed = h.Load!.Value / utilization;
        }
        h.Raw = needed / Capacity.PerUnit!.Value;
        var demand = CeilCount(h.Raw.Value);
        h.Demand = demand;

        // AWS predictive scaling's IncreaseMaxCapacity: the effective max becomes forecast capacity × (1 + buffer).
        var exceeds = policy.MaxBreach == MaxBreach.Exceed && h.Limits.Max is int max;
        if (exceeds)
        {
            var allowed = Math.Min(CeilCount(h.Raw.Value * (1 + (policy.MaxBreachBuffer ?? 0))), h.Limits.KeyGroupCeiling);
            h.Hi = Math.Max(h.Hi, allowed);
        }
        var wanted = demand;
        if (wanted < h.Lo)
        {
            h.Add(h.Limits.LowerRule, wanted, h.Lo, h.Lo);
            wanted = h.Lo;
        }
        if (wanted > h.Hi)
        {
            h.Add(exceeds ? ClampRule.MaxParallelism : h.Limits.UpperRule, wanted, h.Hi, h.Hi);
            wanted = h.Hi;
            h.UpperLimited = true;
        }
        if (exceeds && wanted > h.Limits.Max!.Value)
        {
            h.Add(ClampRule.ExceedMax, h.Limits.Max.Value, wanted, policy.MaxBreachBuffer ?? 0);
        }
        var snapped = SnapUp(wanted, h.Hi);
        if (snapped != wanted)
        {
            h.Add(ClampRule.Divisor, wanted, snapped, policy.MaxParallelism!.Value);
            wanted = snapped;
        }
        h.Need = wanted;
        return true;
    }

    /// <summary>fallback:static is max(minReplicas, current): it needs at least one of the two.</summary>
    private bool Static(ref HourPlan h)
    {
        if (h.Limits.Min is null && input.Current is null)
        {
            return false;
        }
        var count = Math.Max(h.Lo, input.Current ?? h.Lo);
        if (count > h.Hi)
        {
            h.Add(h.Limits.UpperRule, count, h.Hi, h.Hi);
            count = h.Hi;
        }
        h.Need = count;
        return true;
    }

    /// <summary>
    /// Needed rate = rate / targetUtilization + backlog / catch-up + rate × restart / catch-up: the Flink Kubernetes
    /// operator's autoscaler sizes for the target rate plus draining the backlog, and the records piling up while the
    /// job restarts, within the catch-up time (apache/flink-kubernetes-operator, docs/content/docs/custom-resource/autoscaler.md).
    /// </summary>
    private JobDemand JobRate(DateTimeOffset at, double rate, double utilization)
    {
        var catchUpMinutes = policy.CatchUpMinutes ?? Policy.DefaultCatchUpMinutes;
        var catchUp = catchUpMinutes * 60.0;
        var restart = (policy.RestartMinutes ?? Policy.DefaultRestartMinutes) * 60.0;
        // The backlog seen now is drained within catch-up, so it only sizes the hours that start before that is over.
        var backlog = input.BacklogForecast is { } series && series.TryGet(at, out var b) ? b
            : input.CurrentBacklog is double current && at < input.Now + TimeSpan.FromMinutes(Math.Max(catchUpMinutes, 60)) ? current
            : 0;
        backlog = Math.Max(0, backlog);
        var needed = JobDemand.Needed(rate, utilization, backlog, catchUp, restart);
        return new JobDemand(rate, backlog, catchUp, restart, needed);
    }

    /// <summary>
    /// Backwards over the horizon: when a later hour needs more than maxStepUp above this one, this one starts rising,
    /// so the count is there when the load arrives instead of trailing it by hours.
    /// </summary>
    public void Ramp(HourPlan[] hours)
    {
        if (policy.MaxStepUp is not int up)
        {
            return;
        }
        for (var k = hours.Length - 2; k >= 0; k--)
        {
            ref var h = ref hours[k];
            var floor = hours[k + 1].Need - up;
            if (floor <= h.Need)
            {
                continue;
            }
            var raised = SnapUp(Math.Min(floor, h.Hi), h.Hi);
            if (raised > h.Need)
            {
                h.Add(ClampRule.RampUp, h.Need, raised, up);
                h.Need = raised;
                h.Ramped = true;
            }
        }
    }

    /// <summary>
    /// Hour <paramref name="k"/> given the count before it: scale-down delay, tolerance, step limits, then bounds.
    /// Hours before the array count as wanting <paramref name="preHorizon"/> (the current count): a plan cannot
    /// know that a lower count was already wanted, so it waits the full delay.
    /// </summary>
    public void Smooth(HourPlan[] hours, int k, int? previous, int? preHorizon)
    {
        ref var h = ref hours[k];
        var t = h.Need;
        if (previous is int p)
        {
            var delay = policy.ScaleDownDelayHours;
            if (t < p && delay > 0)
            {
                // A lower count only once it has been wanted that long: hold the highest count wanted within the delay.
                var held = t;
                for (var j = k - delay; j < k; j++)
                {
                    held = Math.Max(held, j >= 0 ? hours[j].Need : preHorizon ?? int.MinValue);
                }
                var kept = Math.Max(t, Math.Min(p, held));
                if (kept != t)
                {
                    h.Add(ClampRule.ScaleDownDelay, t, kept, delay);
                    t = kept;
                }
            }
            // Kubernetes HPA's tolerance: a change this small is noise, not worth a rollout; a ramp step is never noise.
            if (t != p && !h.Ramped && Math.Abs(t - p) <= policy.Tolerance * p)
            {
                h.Add(ClampRule.Tolerance, t, p, policy.Tolerance);
                t = p;
            }
            if (policy.MaxStepUp is int up && t > p + up)
            {
                var limited = SnapDownAbove(p + up, p);
                h.Add(ClampRule.MaxStepUp, t, limited, up);
                t = limited;
                h.UpperLimited = true;
            }
            if (policy.MaxStepDown is int down && t < p - down)
            {
                var limited = SnapUpBelow(p - down, p);
                h.Add(ClampRule.MaxStepDown, t, limited, down);
                t = limited;
            }
        }
        // Bounds win over step limits: a window's floor at 19:00 is a promise, not a suggestion.
        if (t < h.Lo)
        {
            h.Add(h.Limits.LowerRule, t, h.Lo, h.Lo);
            t = h.Lo;
        }
        if (t > h.Hi)
        {
            h.Add(h.Limits.UpperRule, t, h.Hi, h.Hi);
            t = h.Hi;
            h.UpperLimited = true;
        }
        h.Count = t;
    }

    public PlanStep Step(ref HourPlan h)
    {
        var shortfall = h.Demand is int demand && h.UpperLimited && h.Count < demand ? demand - h.Count : 0;
        // The bound is named whenever the load came from the forecast, also when it could not be used (no capacity).
        var explanation = new StepExplanation(h.Source, h.Fallback, h.LoadHour, h.Load,
            h.LoadFromForecast && h.Risk is null ? policy.ForecastBound : null, Capacity.PerUnit, Capacity.Source,
            h.Limits.TargetUtilization, h.Raw, h.Demand, h.Limits.Window, h.Job,
            h.Clamps(), h.Count)
        {
            Risk = h.Source == StepSource.Forecast ? h.Risk : null,
            WindowRule = h.Limits.Window is int w ? WindowRule(w) : null,
        };
        var lead = TimeSpan.FromMinutes(policy.LeadMinutes);
        return new PlanStep(h.At, h.At - lead, h.At + Hour - lead, input.Kind, h.Count, Requests.Cpu, Requests.Memory,
            h.Source, shortfall > 0, shortfall, policy.Mode == PlanMode.ForecastOnly, h.Limits.Window is not null, explanation);
    }

    private string WindowRule(int window)
    {
        windowRules ??= new string?[policy.Windows.Count];
        return windowRules[window] ??= policy.Windows[window].Describe();
    }

    /// <summary>Why an hour cannot be planned, naming what the host or the operator can supply.</summary>
    public string Missing(DateTimeOffset at)
    {
        var load = Capacity.Gap is string gap
            ? $"no usable count from load ({gap})"
            : $"no usable forecast and no observed load at {at - Day:yyyy-MM-dd HH:mm}Z or {at - Week:yyyy-MM-dd HH:mm}Z";
        return string.Create(CultureInfo.InvariantCulture,
            $"{at:yyyy-MM-dd HH:mm}Z: {load}, and neither policy.minReplicas nor the current {(input.Kind == ResourceKind.Job ? "parallelism" : "replica count")} is known");
    }

    /// <summary>Only complete hours count as observed: the hour in progress has a partial mean.</summary>
    private bool Observed(DateTimeOffset hour, out double load)
    {
        if (input.ObservedLoad is { } observed && hour + Hour <= input.Now && observed.TryGet(hour, out load))
        {
            load = Math.Max(0, load);
            return true;
        }
        load = double.NaN;
        return false;
    }

    internal static int CeilCount(double raw) =>
        raw >= MaxCount ? MaxCount : raw <= 0 ? 0 : (int)Math.Ceiling(raw - 1e-9);

    /// <summary>
    /// Smallest divisor of maxParallelism at or above <paramref name="x"/> and within <paramref name="hi"/>, else x:
    /// key groups then spread evenly over subtasks (Flink's JobVertexScaler does the same search).
    /// </summary>
    private int SnapUp(int x, int hi)
    {
        if (divisors is null)
        {
            return x;
        }
        var i = Array.BinarySearch(divisors, x);
        var d = i >= 0 ? divisors[i] : ~i < divisors.Length ? divisors[~i] : int.MaxValue;
        return d <= hi ? d : x;
    }

    /// <summary>For a step limited upwards: the largest divisor above the previous count and within the step, else the step.</summary>
    private int SnapDownAbove(int x, int previous)
    {
        if (divisors is null)
        {
            return x;
        }
        var i = Array.BinarySearch(divisors, x);
        var below = i >= 0 ? i : ~i - 1;
        return below >= 0 && divisors[below] > previous ? divisors[below] : x;
    }

    /// <summary>For a step limited downwards: the smallest divisor below the previous count and within the step, else the step.</summary>
    private int SnapUpBelow(int x, int previous)
    {
        if (divisors is null)
        {
            return x;
        }
        var i = Array.BinarySearch(divisors, x);
        var above = i >= 0 ? i : ~i;
        return above < divisors.Length && divisors[above] < previous ? divisors[above] : x;
    }

    internal static int[] Divisors(int n)
    {
        var list = new List<int>();
        for (var d = 1; d * d <= n; d++)
        {
            if (n % d == 0)
            {
                list.Add(d);
                if (d * d != n)
                {
                    list.Add(n / d);
                }
            }
        }
        list.Sort();
        return [.. list];
    }
}
