using System.Globalization;
using static Forecaster.Planner.Hours;

namespace Forecaster.Planner;

/// <summary>
/// Turns a resource's forecast and policy into an hourly scale plan (issue 5). Pure: records in, records out.
/// Order per hour: load (forecast, else fallback) → raw count → min/max and windows (or exceed) → divisor (jobs);
/// then backwards a ramp so a rise is reached within maxStepUp; then forwards in hour order scale-down delay,
/// tolerance, maxStepUp/Down, and last the bounds, which win over step limits when a window opens or closes.
/// </summary>
public static class ScalePlanner
{
    /// <summary>The plan for the horizon, or what is missing when some hour has no forecast, no history and no bounds.</summary>
    public static PlanOutcome<Plan> Plan(PlanInput input)
    {
        Guard(input);
        var context = new PlanningContext(input);
        var trust = Trust(input.Forecast, input.Policy, input.Now);
        var forecast = trust == FallbackReason.None ? input.Forecast : null;
        var hours = Scratch(input.HorizonHours);
        if (input.Policy.Risk is { } risk && forecast is not null)
        {
            var planned = new List<RiskHour>(hours.Length);
            var cursor = 0;
            for (var k = 0; k < hours.Length; k++)
            {
                var at = input.HorizonStart + (k * Hour);
                if (Find(forecast.Hours, at, ref cursor) is ForecastHour f && double.IsFinite(f.Point) && double.IsFinite(f.Upper))
                {
                    var limits = input.Policy.LimitsAt(at, input.Kind);
                    planned.Add(new RiskHour(f, limits.TargetUtilization, limits.Lower));
                }
            }
            // A service's count is load over capacity per replica, rounded up; a job's rate also pays for backlog and restarts.
            var perReplica = input.Kind == ResourceKind.Service ? context.Capacity.PerUnit : null;
            // The risk is taken at the counts the plan will run: after the scale-down delay, tolerance and step limits, not
            // before them. A rise the tolerance does not make (within 10% of the count before) leaves its hour below its
            // quantile, and a fall the delay holds leaves its hour above it; counted before smoothing, a daily cycle planned
            // at 0.005 with the benchmark policy's smoothing was short 0.0057 of its hours (RiskTests).
            context.RiskQuantile = RiskChoice.PlanQuantile(risk, planned, forecast.BandLevel, perReplica,
                perReplica is null ? null : q => SmoothedCounts(input, context, forecast, q, planned.Count), forecast.Tail);
        }
        if (ResolveAndRamp(input, context, forecast, trust, hours) is { } missing)
        {
            return new CannotPlan<Plan>(input.Resource, missing);
        }
        var steps = new PlanStep[hours.Length];
        var previous = input.Current;
        for (var k = 0; k < hours.Length; k++)
        {
            context.Smooth(hours, k, previous, input.Current);
            steps[k] = context.Step(ref hours[k]);
            previous = hours[k].Count;
        }
        return new Planned<Plan>(new Plan(input.Resource, input.Kind, input.Now, input.Policy.Mode,
            input.Forecast?.Version, input.Forecast?.ModelVersion, input.CapacityModel?.Version,
            context.Requests, Notes(input, trust, context.Capacity), steps));
    }

    /// <summary>
    /// Every horizon hour resolved (its forecast, else the fallback: <paramref name="trust"/> says why there is no forecast,
    /// or an hour the trusted forecast lacks) into <paramref name="hours"/>, then the backward ramp; what is missing for the
    /// hours that cannot be planned, or null. The one first half of <see cref="Plan"/> and of each risk trial.
    /// </summary>
    private static List<string>? ResolveAndRamp(PlanInput input, PlanningContext context, ForecastRun? forecast, FallbackReason trust, HourPlan[] hours)
    {
        List<string>? missing = null;
        var cursor = 0;
        for (var k = 0; k < hours.Length; k++)
        {
            var at = input.HorizonStart + (k * Hour);
            var hour = forecast is null ? (ForecastHour?)null : Find(forecast.Hours, at, ref cursor);
            var reason = forecast is null ? trust : FallbackReason.HourNotForecast;
            if (!context.Resolve(at, hour, reason, out hours[k]))
            {
                (missing ??= []).Add(context.Missing(at));
            }
        }
        if (missing is null)
        {
            context.Ramp(hours);
        }
        return missing;
    }

    /// <summary>
    /// The counts the plan would run at the forecast hours a risk policy plans (those <see cref="RiskChoice.PlanQuantile"/>
    /// weighs, in order) if every one of them planned for quantile <paramref name="quantile"/>: every horizon hour resolved,
    /// ramped and smoothed exactly as <see cref="Plan"/> does it. Null when some hour cannot be planned (the plan then fails anyway).
    /// </summary>
    private static int[]? SmoothedCounts(PlanInput input, PlanningContext context, ForecastRun forecast, double quantile, int riskHours)
    {
        context.RiskQuantile = quantile;
        // The plan's own hours are resolved only after its quantile is chosen, so the trials may use the same array.
        var hours = Scratch(input.HorizonHours);
        if (ResolveAndRamp(input, context, forecast, FallbackReason.None, hours) is not null)
        {
            return null;
        }
        var previous = input.Current;
        var counts = new int[riskHours];
        var i = 0;
        for (var k = 0; k < hours.Length; k++)
        {
            context.Smooth(hours, k, previous, input.Current);
            previous = hours[k].Count;
            // The same hours, in the same order, as the plan's RiskHour list: those whose forecast has a finite point and upper bound.
            if (hours[k].Risk is not null)
            {
                counts[i++] = hours[k].Count;
            }
        }
        return i == riskHours ? counts : null;
    }

    /// <summary>
    /// The desired state at <paramref name="instant"/> when no plan covers it (serve time): yesterday's same hour,
    /// else last week's, else <c>max(minReplicas, current)</c>, through the same policy. The served hour is the one
    /// starting within the lead. Scale-down delay uses the fallback counts of the preceding hours, since no plan
    /// history exists to say what was wanted.
    /// </summary>
    public static PlanOutcome<PlanStep> CurrentStep(PlanInput input, DateTimeOffset instant)
    {
        ArgumentNullException.ThrowIfNull(input);
        var context = new PlanningContext(input);
        var leadAhead = instant.AddMinutes(input.Policy.LeadMinutes).ToUniversalTime();
        var served = FloorHour(leadAhead);
        var delay = input.Policy.ScaleDownDelayHours;
        var hours = new HourPlan[delay + 1];
        for (var j = 0; j <= delay; j++)
        {
            var at = served - ((delay - j) * Hour);
            if (!context.Resolve(at, null, FallbackReason.ServeTime, out hours[j]))
            {
                if (j == delay)
                {
                    return new CannotPlan<PlanStep>(input.Resource, [context.Missing(at)]);
                }
                hours[j].Need = int.MinValue;
            }
        }
        context.Smooth(hours, delay, input.Current, preHorizon: null);
        return new Planned<PlanStep>(context.Step(ref hours[delay]));
    }

    [ThreadStatic]
    private static HourPlan[]? t_hours;

    /// <summary>
    /// The hours of one plan being made on this thread, reused from plan to plan: the array was the largest single allocation
    /// of a plan (48 structs of about 170 bytes), and a fleet run plans 100,000 resources. Every hour is overwritten by
    /// <see cref="PlanningContext.Resolve"/> before it is read, and a plan is made on one thread without re-entering.
    /// </summary>
    private static HourPlan[] Scratch(int length)
    {
        if (t_hours is not { } hours || hours.Length != length)
        {
            t_hours = hours = new HourPlan[length];
        }
        return hours;
    }

    private static void Guard(PlanInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.HorizonStart.UtcTicks % TimeSpan.TicksPerHour != 0)
        {
            throw new ArgumentException("HorizonStart must be a UTC hour boundary", nameof(input));
        }
        if (input.HorizonHours is < 1 or > 24 * 14)
        {
            throw new ArgumentException("HorizonHours must be between 1 and 336", nameof(input));
        }
    }

    /// <summary>Whether the forecast may be used at all: it exists, is fresh, and its model beats seasonal naive.</summary>
    internal static FallbackReason Trust(ForecastRun? forecast, Policy policy, DateTimeOffset now) => forecast switch
    {
        null => FallbackReason.NoForecast,
        _ when (now - forecast.GeneratedAt).TotalHours > policy.StaleAfterHours => FallbackReason.Stale,
        { BeatsSeasonalNaive: false } => FallbackReason.WorseThanSeasonalNaive,
        _ => FallbackReason.None,
    };

    /// <summary>Forecast hours are sorted, and so are the horizon's: one cursor walks both.</summary>
    private static ForecastHour? Find(IReadOnlyList<ForecastHour> hours, DateTimeOffset at, ref int cursor)
    {
        while (cursor < hours.Count && hours[cursor].Hour < at)
        {
            cursor++;
        }
        return cursor < hours.Count && hours[cursor].Hour == at ? hours[cursor] : null;
    }

    private static string[] Notes(PlanInput input, FallbackReason trust, Capacity capacity)
    {
        var notes = new List<string>(2);
        var c = CultureInfo.InvariantCulture;
        switch (trust)
        {
            case FallbackReason.NoForecast:
                notes.Add("no forecast: every hour falls back");
                break;
            case FallbackReason.Stale:
                notes.Add(string.Create(c, $"forecast {input.Forecast!.Version} generated {(input.Now - input.Forecast.GeneratedAt).TotalHours:F1} h ago (staleAfterHours {input.Policy.StaleAfterHours}): every hour falls back"));
                break;
            case FallbackReason.WorseThanSeasonalNaive:
                notes.Add(string.Create(c, $"model {input.Forecast!.ModelVersion} does not beat seasonal naive in backtest: every hour falls back"));
                break;
        }
        if (capacity.Gap is string gap)
        {
            notes.Add($"{gap}: load cannot be turned into a count, so every hour uses fallback:static");
        }
        return [.. notes];
    }
}
