using System.Text.Json;
using System.Text.Json.Serialization;
using Forecaster.Api.Plans;
using Forecaster.Planner;

namespace Forecaster.Api.Serving;

/// <summary>
/// An active plan version as served: its steps in the compact stored form (<see cref="PackedSteps"/>), decoded only when an
/// answer is rendered, so 100,000 plans cost a few KB each rather than one object graph per step. Steps over before
/// <c>first</c> are skipped (an hour of slack for a slightly past <c>at</c>), as if they were not there.
/// </summary>
public sealed class ServedPlan
{
    readonly byte[] _packed;
    readonly int _first;
    readonly long _start;
    readonly long _end;
    // Steps an hour apart, each ending where the next starts (what the planner makes): the step at an instant is arithmetic, not a walk.
    readonly bool _regular;

    public ServedPlan(long version, DateTimeOffset generatedAt, bool forecastOnly, byte[] packed, DateTimeOffset keepFrom)
    {
        Version = version;
        GeneratedAt = generatedAt;
        ForecastOnly = forecastOnly;
        _packed = packed;
        var reader = new PackedSteps.StepReader(packed);
        var regular = true;
        long expected = 0;
        for (var i = 0; i < reader.Count; i++)
        {
            reader.Next(explain: false);
            if (reader.End <= keepFrom)
            {
                _first = i + 1;
                continue;
            }
            if (i == _first)
            {
                _start = reader.Start.UtcTicks;
                expected = _start;
            }
            // Each step starts an hour after the previous one, where the previous one ends.
            regular &= reader.Start.UtcTicks == expected && (i == _first || reader.Start.UtcTicks == _end) && reader.End > reader.Start;
            expected += TimeSpan.TicksPerHour;
            _end = reader.End.UtcTicks;
        }
        Count = reader.Count - _first;
        _regular = regular;
    }

    public long Version { get; }
    public DateTimeOffset GeneratedAt { get; }
    public bool ForecastOnly { get; }

    /// <summary>How many steps are served (those not over).</summary>
    public int Count { get; }

    public DateTimeOffset End => Count == 0 ? DateTimeOffset.MinValue : new DateTimeOffset(_end, TimeSpan.Zero);

    /// <summary>The served steps, decoded (explanations included).</summary>
    public PlanStep[] Steps => [.. PackedSteps.Read(_packed).Skip(_first)];

    /// <summary>
    /// The instants [from, until) at which <see cref="IndexAt"/> gives <paramref name="index"/>, as UTC ticks, for a regular
    /// plan (each step an hour, the last one up to the plan's end); empty (0, 0) for any other, whose steps IndexAt walks.
    /// </summary>
    public (long From, long Until) Window(int index)
    {
        if (!_regular || index < 0 || index >= Count)
        {
            return (0, 0);
        }
        var from = _start + (index * TimeSpan.TicksPerHour);
        return (from, index == Count - 1 ? _end : from + TimeSpan.TicksPerHour);
    }

    /// <summary>The step in force at <paramref name="at"/>, or -1.</summary>
    public int IndexAt(DateTimeOffset at)
    {
        if (Count == 0 || at.UtcTicks < _start || at.UtcTicks >= _end)
        {
            return -1;
        }
        if (_regular)
        {
            return (int)Math.Min((at.UtcTicks - _start) / TimeSpan.TicksPerHour, Count - 1);
        }
        var reader = new PackedSteps.StepReader(_packed);
        for (var i = 0; i < reader.Count; i++)
        {
            reader.Next(explain: false);
            if (i >= _first && reader.Start <= at && at < reader.End)
            {
                return i - _first;
            }
        }
        return -1;
    }

    /// <summary>Served step <paramref name="index"/> with its explanation, and the first later step whose count, cpu or memory differs.</summary>
    public (PlanStep Step, NextStep? Next) StepAndNext(int index)
    {
        var reader = new PackedSteps.StepReader(_packed);
        for (var i = 0; i < _first + index; i++)
        {
            reader.Next(explain: false);
        }
        reader.Next(explain: true);
        var step = reader.Step();
        var job = step.Kind == ResourceKind.Job;
        for (var i = _first + index + 1; i < reader.Count; i++)
        {
            reader.Next(explain: false);
            if (reader.StepCount != step.Count || reader.Cpu != step.Cpu || reader.Memory != step.Memory)
            {
                return (step, new NextStep(job ? null : reader.StepCount, job ? reader.StepCount : null, reader.Cpu, reader.Memory, reader.Start, reader.End, reader.Source));
            }
        }
        return (step, null);
    }

    /// <summary>Served steps from <paramref name="index"/> on while they start before <paramref name="to"/>.</summary>
    public IEnumerable<PlanStep> From(int index, DateTimeOffset to)
    {
        var steps = PackedSteps.Read(_packed);
        for (var i = _first + index; i < steps.Length && steps[i].Start < to; i++)
        {
            yield return steps[i];
        }
    }
}

/// <summary>
/// An answer rendered once and reused: the JSON body, its ETag and how long it holds. <see cref="Missing"/> is set
/// (and <see cref="Count"/> null) when neither a plan nor the fallback can say anything.
/// </summary>
public sealed class Rendered
{
    public required byte[] Body { get; init; }
    public required string ETag { get; init; }
    public DateTimeOffset ValidUntil { get; init; }
    public int? Count { get; init; }
    public bool ForecastOnly { get; init; }
    public IReadOnlyList<string>? Missing { get; init; }

    /// <summary>Where the answer came from (`forecast` or a fallback); null when <see cref="Missing"/>.</summary>
    public string? Source { get; init; }

    internal long Key { get; init; }
    internal bool Stale { get; init; }
    internal bool FromPlan { get; init; }

    /// <summary>
    /// A plan answer's step as UTC ticks [<see cref="FromTicks"/>, <see cref="UntilTicks"/>) (empty when its plan is not
    /// regular) and the plan's GeneratedAt, so that a repeated poll is answered from this object alone, without reading the plan.
    /// </summary>
    internal long FromTicks { get; init; }
    internal long UntilTicks { get; init; }
    internal long GeneratedAtTicks { get; init; }
}

/// <summary>
/// One resource in the serving cache: immutable data (replaced whole when its plan or definition changes, so a reader
/// sees a plan version whole or not at all) plus the last rendered answer, since every executor polling it in the same
/// hour gets the same bytes.
/// </summary>
public sealed class ServedResource(
    int id, string name, ResourceKind kind, string group, DateTime updatedAt, long? planId, ServedPlan? plan, PlanInput? fallback, IReadOnlyList<string> problems)
{
    static readonly TimeSpan Hour = TimeSpan.FromHours(1);

    /// <summary>How far ahead the fallback looks for the next differing step: yesterday's load says nothing beyond a day.</summary>
    const int FallbackLookAheadHours = 24;

    Rendered? _last;

    /// <summary>Each source's wire name, once, rather than a string per rendered answer.</summary>
    static readonly string[] SourceNames = [.. Enum.GetValues<StepSource>().Select(v => JsonSerializer.Serialize(v).Trim('"'))];

    public int Id => id;
    public string Name => name;
    public ResourceKind Kind => kind;
    public string Group => group;
    public DateTime UpdatedAt => updatedAt;

    /// <summary>The active plan version's id in the database (also when every step of it is over).</summary>
    public long? PlanId => planId;

    public ServedPlan? Plan => plan;

    /// <summary>Policy, recent observed hourly load and current count for the serve-time fallback; loaded only where a plan runs out soon.</summary>
    public PlanInput? Fallback => fallback;

    /// <summary>Why the stored policy cannot be used (the fallback then cannot run either).</summary>
    public IReadOnlyList<string> Problems => problems;

    /// <summary>The stored policy, held for streaming jobs (their Flink patch needs restartMinutes and vertices); null otherwise or when invalid.</summary>
    public Policy? Policy { get; init; }

    /// <summary>Whether this resource needs its history in memory: no plan, or one that ends within <paramref name="ahead"/>.</summary>
    public bool NeedsHistory(DateTimeOffset now, TimeSpan ahead) => plan is null || plan.End < now + ahead;

    /// <summary>The answer at <paramref name="at"/>: the plan's step in force, else the serve-time fallback, else what is missing.</summary>
    public Rendered Current(DateTimeOffset at, DateTimeOffset now, bool databaseStale, ServingOptions o)
    {
        var last = Volatile.Read(ref _last);
        // The common poll: the answer held is the plan's step in force at `at` (its window) and its staleness is unchanged,
        // decided from the answer alone. With 100,000 resources polled at random, each object read is a cache miss, and the
        // plan is one fewer. The same test as below (a plan answer is from this resource's plan, which never changes).
        if (last is { FromPlan: true } && at.UtcTicks >= last.FromTicks && at.UtcTicks < last.UntilTicks
            && last.Stale == (databaseStale || new TimeSpan(now.UtcTicks - last.GeneratedAtTicks).TotalHours > o.PlanStaleAfterHours))
        {
            return last;
        }
        if (plan is not null && plan.IndexAt(at) is var i and >= 0)
        {
            var stale = databaseStale || (now - plan.GeneratedAt).TotalHours > o.PlanStaleAfterHours;
            if (last is { FromPlan: true } && last.Key == i && last.Stale == stale)
            {
                return last;
            }
            var (step, next) = plan.StepAndNext(i);
            return Remember(Render(step, next, plan, stale, i, fromPlan: true));
        }
        if (fallback is null)
        {
            return Remember(RenderMissing(at.UtcTicks, problems.Count > 0
                ? [.. problems.Select(p => $"invalid stored policy: {p}")]
                : [$"no plan covers {at:yyyy-MM-dd HH:mm}Z and no observed history of {name} is held in memory"]));
        }
        var leadAhead = at.AddMinutes(fallback.Policy.LeadMinutes).UtcTicks;
        var served = leadAhead - (leadAhead % TimeSpan.TicksPerHour);
        if (last is { FromPlan: false } && last.Key == served && last.Stale == databaseStale)
        {
            return last;
        }
        var input = fallback with { Now = now };
        switch (ScalePlanner.CurrentStep(input, at))
        {
            case Planned<PlanStep> { Value: var step }:
                PlanStep? next = null;
                for (var k = 0; k < FallbackLookAheadHours && next is null; k++)
                {
                    if (ScalePlanner.CurrentStep(input, step.End + (k * Hour)) is Planned<PlanStep> { Value: var later } && Differs(later, step))
                    {
                        next = later;
                    }
                }
                var job = kind == ResourceKind.Job;
                var nextStep = next is null ? null : new NextStep(job ? null : next.Count, job ? next.Count : null, next.Cpu, next.Memory, next.Start, next.End, next.Source);
                return Remember(Render(step, nextStep, null, databaseStale, served, fromPlan: false));
            case CannotPlan<PlanStep> cannot:
                return Remember(RenderMissing(served, cannot.Missing));
            default:
                throw new InvalidOperationException("unknown plan outcome");
        }
    }

    /// <summary>The steps overlapping [from, to): the plan's, and the fallback's for hours the plan does not cover.</summary>
    public IReadOnlyList<PlanStep> Schedule(DateTimeOffset from, DateTimeOffset to, DateTimeOffset now)
    {
        var steps = new List<PlanStep>();
        var at = from;
        while (at < to)
        {
            if (plan is not null && plan.IndexAt(at) is var i and >= 0)
            {
                steps.AddRange(plan.From(i, to));
                at = steps[^1].End;
            }
            else if (fallback is not null && ScalePlanner.CurrentStep(fallback with { Now = now }, at) is Planned<PlanStep> { Value: var step })
            {
                steps.Add(step);
                at = step.End;
            }
            else
            {
                // Nothing can be said for this hour; look at the next one (a plan may start there).
                at = new DateTimeOffset(at.UtcTicks - (at.UtcTicks % TimeSpan.TicksPerHour), TimeSpan.Zero) + Hour;
            }
        }
        return steps;
    }

    Rendered Remember(Rendered r)
    {
        Volatile.Write(ref _last, r);
        return r;
    }

    static bool Differs(PlanStep a, PlanStep b) => a.Count != b.Count || a.Cpu != b.Cpu || a.Memory != b.Memory;

    Rendered Render(PlanStep step, NextStep? next, ServedPlan? from, bool stale, long key, bool fromPlan)
    {
        var job = kind == ResourceKind.Job;
        var view = new CurrentPlan(name, kind, job ? null : step.Count, job ? step.Count : null, step.Cpu, step.Memory,
            step.Start, step.End, step.Hour, next, step.Source, from?.Version, from?.GeneratedAt, stale, from?.ForecastOnly ?? step.ForecastOnly, step.CapacityShortfall, step.Explanation);
        var body = JsonSerializer.SerializeToUtf8Bytes(view, ServingJson.Options);
        var (fromTicks, untilTicks) = fromPlan && from is not null ? from.Window((int)key) : (0, 0);
        return new Rendered
        {
            Body = body,
            ETag = ServingJson.ETag(body),
            ValidUntil = step.End,
            Count = step.Count,
            ForecastOnly = view.ForecastOnly,
            Source = SourceNames[(int)step.Source],
            Key = key,
            Stale = stale,
            FromPlan = fromPlan,
            FromTicks = fromTicks,
            UntilTicks = untilTicks,
            GeneratedAtTicks = from?.GeneratedAt.UtcTicks ?? 0,
        };
    }

    Rendered RenderMissing(long key, IReadOnlyList<string> missing)
    {
        var body = JsonSerializer.SerializeToUtf8Bytes(new MissingPlan(name, missing), ServingJson.Options);
        return new Rendered { Body = body, ETag = ServingJson.ETag(body), Missing = missing, Key = key, FromPlan = false, Stale = false };
    }
}

/// <summary>JSON of the serving endpoints: web defaults, nulls omitted, and a content hash for ETags.</summary>
public static class ServingJson
{
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web) { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    /// <summary>A strong ETag: FNV-1a (64-bit) of the body. Not cryptographic; it only has to change when the bytes do.</summary>
    public static string ETag(ReadOnlySpan<byte> body) => Quote(Fnv(body, 14695981039346656037UL));

    /// <summary>An ETag over several ETags (the batch answer), so a 304 needs no body written.</summary>
    public static string Combine(IEnumerable<string> etags, string salt)
    {
        var h = Fnv(salt, 14695981039346656037UL);
        foreach (var e in etags)
        {
            h = Fnv(e, h);
        }
        return Quote(h);
    }

    static ulong Fnv(string chars, ulong h)
    {
        foreach (var c in chars)
        {
            h = (h ^ c) * 1099511628211UL;
        }
        return h;
    }

    static ulong Fnv(ReadOnlySpan<byte> bytes, ulong h)
    {
        foreach (var b in bytes)
        {
            h = (h ^ b) * 1099511628211UL;
        }
        return h;
    }

    static string Quote(ulong h) => "\"" + h.ToString("x16", System.Globalization.CultureInfo.InvariantCulture) + "\"";
}
