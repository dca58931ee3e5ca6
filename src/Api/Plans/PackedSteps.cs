using System.Buffers.Binary;
using System.Text;
using Forecaster.Planner;

namespace Forecaster.Api.Plans;

/// <summary>
/// The compact binary form of a plan's steps (issue 16), stored in <c>plan_versions.steps_packed</c> and held as-is by the
/// serving cache: about 10-20 bytes a step instead of about 1 KB of JSON, and no parsing at load. Every number of a
/// <see cref="PlanStep"/> and its <see cref="StepExplanation"/> is kept exactly (doubles bit for bit, times in ticks or
/// whole seconds), so a step read back serializes to the same JSON and the same sentence as the planner's.
/// <para>
/// Layout: format byte, step count, time unit, the first hour (8 bytes), the window-rule strings once, then per step a
/// varint of flags followed by its fields. <see cref="Write"/> writes format 2; the reader also reads format 1, which
/// databases written before it hold (it is never rewritten: a plan is replaced by the next planning run).
/// </para>
/// <para>
/// Format 1: the flags as they are, then times, count, sources, fallback and shortfall on every step; values equal to the
/// previous step's (requests, capacity, target) flagged, not repeated, as is a raw count the other numbers give to the bit;
/// integral doubles (limits) written as varints. About 31 bytes a step on the bench fleet.
/// </para>
/// <para>
/// Format 2 (about 12 bytes a step on the bench fleet: 560 bytes a plan on average instead of 1,500, max 1,259 instead
/// of 2,664, so no row goes to TOAST; bench/README.md, session 11, branch steps2): a plan's consecutive steps mostly
/// repeat each other, so nearly everything is "the same as the last one" flags, and the flags are written XOR the
/// previous step's, usually a single 0 byte. Times (hour delta, lead, span), count, sources and fallback, the load
/// hour's offset, the load, demand, the clamp list, a job's backlog and policy constants, a risk's fraction and
/// quantile are each flagged when equal to the last value written (<see cref="Carried"/>, kept alike by writer and
/// reader); a job's rate and a risk's point and load when they are the step's load; a job's needed rate when Flink's
/// formula gives it to the bit; clamps chain (from = the previous clamp's to, the first's the demand; the last's to is
/// the count; a bound's limit is its to). The load, a full-precision double on nearly every step, is written as its 8
/// bytes without the tag byte. What is not equal is written as in format 1.
/// </para>
/// </summary>
public static class PackedSteps
{
    const byte Format1 = 1;
    const byte Format2 = 2;

    /// <summary>Format 1's flags (read only: <see cref="Write"/> writes format 2).</summary>
    [Flags]
    enum F : uint
    {
        Job = 1 << 0,
        CapacityShortfall = 1 << 1,
        ForecastOnly = 1 << 2,
        WindowApplied = 1 << 3,
        Cpu = 1 << 4,
        CpuSame = 1 << 5,
        Memory = 1 << 6,
        MemorySame = 1 << 7,
        LoadHour = 1 << 8,
        Load = 1 << 9,
        Bound = 1 << 10,
        Capacity = 1 << 11,
        CapacitySame = 1 << 12,
        TargetSame = 1 << 13,
        RawCount = 1 << 14,
        Demand = 1 << 15,
        Window = 1 << 16,
        JobDemand = 1 << 17,
        Risk = 1 << 18,
        WindowRule = 1 << 19,
        ExplainedCountDiffers = 1 << 20,
        RawDerived = 1 << 21,
    }

    /// <summary>
    /// Format 2's flags. Bits that change from one step to the next (a new count, new clamps) are the low ones, so that the
    /// XOR with the previous step's flags fits in one or two bytes; bits that hold for a whole plan (kind, requests, job or
    /// risk) are high and cost nothing while they hold.
    /// </summary>
    [Flags]
    enum G : ulong
    {
        CountSame = 1UL << 0,
        ClampsSame = 1UL << 1,
        DemandSame = 1UL << 2,
        LoadSame = 1UL << 3,
        ExplainedCountDiffers = 1UL << 4,
        CapacityShortfall = 1UL << 5,
        Shortfall = 1UL << 6,
        RiskBinds = 1UL << 7,
        RiskPointIsLoad = 1UL << 8,
        WindowApplied = 1UL << 9,
        Window = 1UL << 10,
        WindowRule = 1UL << 11,
        JobBacklogSame = 1UL << 12,
        SourcesSame = 1UL << 13,
        TimesSame = 1UL << 14,
        LoadHourSame = 1UL << 15,
        RawDerived = 1UL << 16,
        LoadWhole = 1UL << 17,
        RiskQuantileSame = 1UL << 18,
        Demand = 1UL << 19,
        RawCount = 1UL << 20,
        Load = 1UL << 21,
        LoadHour = 1UL << 22,
        Bound = 1UL << 23,
        Risk = 1UL << 24,
        JobDemand = 1UL << 25,
        Job = 1UL << 26,
        ForecastOnly = 1UL << 27,
        Cpu = 1UL << 28,
        CpuSame = 1UL << 29,
        Memory = 1UL << 30,
        MemorySame = 1UL << 31,
        Capacity = 1UL << 32,
        CapacitySame = 1UL << 33,
        TargetSame = 1UL << 34,
        JobRateIsLoad = 1UL << 35,
        JobConstantsSame = 1UL << 36,
        JobNeededDerived = 1UL << 37,
        RiskFractionSame = 1UL << 38,
        RiskLoadIsLoad = 1UL << 39,
        RiskFromBacktest = 1UL << 40,
    }

    // A format-2 clamp's header byte: the rule in the low four bits, then which numbers the chain gives.
    const byte ClampFromChain = 16, ClampToIsCount = 32, ClampLimitIsTo = 64;

    /// <summary>
    /// The values format 2's "same" flags refer to: each the last one written (by any earlier step), starting from zero.
    /// The writer and the reader update it alike, so a flag means the same to both.
    /// </summary>
    struct Carried
    {
        public long HourDelta, Lead, Span, LoadHourOffset, Memory;
        public int Count, Demand;
        public byte Sources, Fallback;
        public double Load, Cpu, Capacity, Target, Backlog, CatchUp, Restart, RiskFraction, RiskQuantile;
    }

    /// <summary>
    /// The raw count as the planner computes it from the other numbers (load ÷ target ÷ capacity; a job's needed rate ÷
    /// capacity), or null when one is missing. Where it gives the stored value to the bit, the value is not stored.
    /// </summary>
    static double? DeriveRaw(double? load, double target, double? capacity, double? neededRate) =>
        capacity is not { } c ? null : neededRate is { } n ? n / c : load is { } l ? l / target / c : null;

    /// <summary>The steps in their compact form.</summary>
    public static byte[] Write(IReadOnlyList<PlanStep> steps)
    {
        // One buffer per thread, reused plan after plan: planning writes 100,000 of these in a run, and a fresh buffer (then
        // its copy) per plan was a fifth of what the row builder allocated, all of it work for the collector.
        var w = Writer.ForThread();
        w.Byte(Format2);
        w.VarUInt((ulong)steps.Count);
        if (steps.Count == 0)
        {
            return w.ToArray();
        }
        // Whole seconds everywhere (the planner's hours and leads): times take two bytes a step rather than five.
        var seconds = true;
        // The window rules in order of first use (most plans have none, some one).
        List<string>? rules = null;
        for (var i = 0; i < steps.Count; i++)
        {
            var s = steps[i];
            seconds &= s.Hour.UtcTicks % TimeSpan.TicksPerSecond == 0 && s.Start.UtcTicks % TimeSpan.TicksPerSecond == 0
                && s.End.UtcTicks % TimeSpan.TicksPerSecond == 0 && (s.Explanation.LoadHour is not { } h || h.UtcTicks % TimeSpan.TicksPerSecond == 0);
            if (s.Explanation.WindowRule is { } rule && (rules is null || rules.IndexOf(rule) < 0))
            {
                (rules ??= new(1)).Add(rule);
            }
        }
        var unit = seconds ? TimeSpan.TicksPerSecond : 1;
        w.Byte(seconds ? (byte)1 : (byte)0);
        w.Int64(steps[0].Hour.UtcTicks);
        w.VarUInt((ulong)(rules?.Count ?? 0));
        for (var i = 0; i < (rules?.Count ?? 0); i++)
        {
            w.String(rules![i]);
        }
        var last = default(Carried);
        G lastFlags = 0;
        var hourTicks = steps[0].Hour.UtcTicks;
        IReadOnlyList<Clamp> lastClamps = [];
        for (var i = 0; i < steps.Count; i++)
        {
            var s = steps[i];
            var e = s.Explanation;
            var hourDelta = (s.Hour.UtcTicks - hourTicks) / unit;
            var lead = (s.Hour.UtcTicks - s.Start.UtcTicks) / unit;
            var span = (s.End.UtcTicks - s.Start.UtcTicks) / unit;
            hourTicks = s.Hour.UtcTicks;
            var sources = (byte)((int)s.Source | ((int)e.Source << 2) | ((int)e.CapacitySource << 4) | ((int)(e.Bound ?? 0) << 6));
            var fallback = (byte)e.Fallback;
            var loadHourOffset = e.LoadHour is { } lh ? (s.Hour.UtcTicks - lh.UtcTicks) / unit : 0;
            var job = e.Job;
            var risk = e.Risk;
            var f = (hourDelta == last.HourDelta && lead == last.Lead && span == last.Span ? G.TimesSame : 0)
                | (s.Count == last.Count ? G.CountSame : 0)
                | (sources == last.Sources && fallback == last.Fallback ? G.SourcesSame : 0)
                | (s.Kind == ResourceKind.Job ? G.Job : 0)
                | (s.CapacityShortfall ? G.CapacityShortfall : 0)
                | (s.Shortfall != 0 ? G.Shortfall : 0)
                | (s.ForecastOnly ? G.ForecastOnly : 0)
                | (s.WindowApplied ? G.WindowApplied : 0)
                | (s.Cpu is not null ? G.Cpu : 0)
                | (s.Cpu is { } cpu && Same(cpu, last.Cpu) ? G.CpuSame : 0)
                | (s.Memory is not null ? G.Memory : 0)
                | (s.Memory is { } mem && mem == last.Memory ? G.MemorySame : 0)
                | (e.LoadHour is not null ? G.LoadHour : 0)
                | (e.LoadHour is not null && loadHourOffset == last.LoadHourOffset ? G.LoadHourSame : 0)
                | (e.Load is not null ? G.Load : 0)
                | (e.Load is { } l1 && Same(l1, last.Load) ? G.LoadSame : 0)
                | (e.Load is { } l2 && IsWhole(l2) ? G.LoadWhole : 0)
                | (e.Bound is not null ? G.Bound : 0)
                | (e.Capacity is not null ? G.Capacity : 0)
                | (e.Capacity is { } cap && Same(cap, last.Capacity) ? G.CapacitySame : 0)
                | (Same(e.TargetUtilization, last.Target) ? G.TargetSame : 0)
                | (e.RawCount is not null ? G.RawCount : 0)
                | (e.RawCount is { } r && DeriveRaw(e.Load, e.TargetUtilization, e.Capacity, job?.NeededRate) is { } d && Same(r, d) ? G.RawDerived : 0)
                | (e.Demand is not null ? G.Demand : 0)
                | (e.Demand is { } demand && demand == last.Demand ? G.DemandSame : 0)
                | (e.Window is not null ? G.Window : 0)
                | (e.WindowRule is not null ? G.WindowRule : 0)
                | (e.Count != s.Count ? G.ExplainedCountDiffers : 0)
                | (SameClamps(e.Clamps, lastClamps) ? G.ClampsSame : 0)
                | (job is not null ? G.JobDemand : 0)
                | (job is not null && e.Load is { } l3 && Same(job.Rate, l3) ? G.JobRateIsLoad : 0)
                | (job is not null && Same(job.Backlog, last.Backlog) ? G.JobBacklogSame : 0)
                | (job is not null && Same(job.CatchUpSeconds, last.CatchUp) && Same(job.RestartSeconds, last.Restart) ? G.JobConstantsSame : 0)
                | (job is not null && Same(job.NeededRate, JobDemand.Needed(job.Rate, e.TargetUtilization, job.Backlog, job.CatchUpSeconds, job.RestartSeconds)) ? G.JobNeededDerived : 0)
                | (risk is not null ? G.Risk : 0)
                | (risk is not null && Same(risk.Fraction, last.RiskFraction) ? G.RiskFractionSame : 0)
                | (risk is not null && Same(risk.Quantile, last.RiskQuantile) ? G.RiskQuantileSame : 0)
                | (risk is not null && e.Load is { } l4 && Same(risk.Point, l4) ? G.RiskPointIsLoad : 0)
                | (risk is not null && e.Load is { } l5 && Same(risk.Load, l5) ? G.RiskLoadIsLoad : 0)
                | (risk is { QuantileBinds: true } ? G.RiskBinds : 0)
                | (risk is { FromBacktest: true } ? G.RiskFromBacktest : 0);
            w.VarUInt((ulong)(f ^ lastFlags));
            lastFlags = f;
            if ((f & G.TimesSame) == 0)
            {
                w.VarInt(hourDelta);
                w.VarInt(lead);
                w.VarInt(span);
                (last.HourDelta, last.Lead, last.Span) = (hourDelta, lead, span);
            }
            if ((f & G.CountSame) == 0)
            {
                w.VarInt((long)s.Count - last.Count);
                last.Count = s.Count;
            }
            if ((f & G.SourcesSame) == 0)
            {
                w.Byte(sources);
                w.Byte(fallback);
                (last.Sources, last.Fallback) = (sources, fallback);
            }
            if ((f & G.Shortfall) != 0)
            {
                w.VarInt(s.Shortfall);
            }
            if ((f & (G.Cpu | G.CpuSame)) == G.Cpu)
            {
                w.Double(last.Cpu = s.Cpu!.Value);
            }
            if ((f & (G.Memory | G.MemorySame)) == G.Memory)
            {
                w.VarInt(last.Memory = s.Memory!.Value);
            }
            if ((f & (G.LoadHour | G.LoadHourSame)) == G.LoadHour)
            {
                w.VarInt(last.LoadHourOffset = loadHourOffset);
            }
            if ((f & (G.Load | G.LoadSame)) == G.Load)
            {
                last.Load = e.Load!.Value;
                if ((f & G.LoadWhole) != 0)
                {
                    w.VarInt((long)last.Load);
                }
                else
                {
                    w.Exact(last.Load);
                }
            }
            if ((f & (G.Capacity | G.CapacitySame)) == G.Capacity)
            {
                w.Double(last.Capacity = e.Capacity!.Value);
            }
            if ((f & G.TargetSame) == 0)
            {
                w.Double(last.Target = e.TargetUtilization);
            }
            if ((f & (G.RawCount | G.RawDerived)) == G.RawCount)
            {
                w.Double(e.RawCount!.Value);
            }
            if ((f & (G.Demand | G.DemandSame)) == G.Demand)
            {
                last.Demand = e.Demand!.Value;
                w.VarInt((long)last.Demand - s.Count);
            }
            if (e.Window is { } window)
            {
                w.VarInt(window);
            }
            if (job is not null)
            {
                if ((f & G.JobRateIsLoad) == 0)
                {
                    w.Double(job.Rate);
                }
                if ((f & G.JobBacklogSame) == 0)
                {
                    w.Double(last.Backlog = job.Backlog);
                }
                if ((f & G.JobConstantsSame) == 0)
                {
                    w.Double(last.CatchUp = job.CatchUpSeconds);
                    w.Double(last.Restart = job.RestartSeconds);
                }
                if ((f & G.JobNeededDerived) == 0)
                {
                    w.Double(job.NeededRate);
                }
            }
            if ((f & G.ExplainedCountDiffers) != 0)
            {
                w.VarInt(e.Count);
            }
            if ((f & G.ClampsSame) == 0)
            {
                w.VarUInt((ulong)e.Clamps.Count);
                var chain = e.Demand ?? 0;
                for (var k = 0; k < e.Clamps.Count; k++)
                {
                    var c = e.Clamps[k];
                    var header = (byte)((int)c.Rule | (c.From == chain ? ClampFromChain : 0) | (c.To == e.Count ? ClampToIsCount : 0)
                        | (Same(c.Limit, c.To) ? ClampLimitIsTo : 0));
                    w.Byte(header);
                    if ((header & ClampFromChain) == 0)
                    {
                        w.VarInt(c.From);
                    }
                    if ((header & ClampToIsCount) == 0)
                    {
                        w.VarInt(c.To);
                    }
                    if ((header & ClampLimitIsTo) == 0)
                    {
                        w.Double(c.Limit);
                    }
                    chain = c.To;
                }
                lastClamps = e.Clamps;
            }
            if (risk is not null)
            {
                if ((f & G.RiskFractionSame) == 0)
                {
                    w.Double(last.RiskFraction = risk.Fraction);
                }
                if ((f & G.RiskQuantileSame) == 0)
                {
                    w.Double(last.RiskQuantile = risk.Quantile);
                }
                if ((f & G.RiskPointIsLoad) == 0)
                {
                    w.Double(risk.Point);
                }
                w.Double(risk.QuantileLoad);
                if ((f & G.RiskLoadIsLoad) == 0)
                {
                    w.Double(risk.Load);
                }
            }
            if (e.WindowRule is { } text)
            {
                w.VarUInt((ulong)rules!.IndexOf(text));
            }
        }
        return w.ToArray();
    }

    /// <summary>Whether two clamp lists are equal to the bit (a record's equality takes 0.0 for -0.0).</summary>
    static bool SameClamps(IReadOnlyList<Clamp> a, IReadOnlyList<Clamp> b)
    {
        if (a.Count != b.Count)
        {
            return false;
        }
        for (var k = 0; k < a.Count; k++)
        {
            if (a[k].Rule != b[k].Rule || a[k].From != b[k].From || a[k].To != b[k].To || !Same(a[k].Limit, b[k].Limit))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>Whether <see cref="Writer.Double"/> writes the value as a varint (an integral value; not -0).</summary>
    static bool IsWhole(double v) => Math.Abs(v) < (1L << 52) && v == Math.Floor(v) && !(v == 0 && double.IsNegative(v));

    /// <summary>Every step of a packed plan.</summary>
    public static PlanStep[] Read(ReadOnlySpan<byte> packed)
    {
        var reader = new StepReader(packed);
        var steps = new PlanStep[reader.Count];
        for (var i = 0; i < steps.Length; i++)
        {
            reader.Next(explain: true);
            steps[i] = reader.Step();
        }
        return steps;
    }

    /// <summary>How many steps a packed plan holds.</summary>
    public static int Count(ReadOnlySpan<byte> packed) => new StepReader(packed).Count;

    /// <summary>
    /// Reads the steps of a packed plan in order. <see cref="Next"/> decodes the next step's numbers; its explanation is
    /// built only when asked for, so walking a plan to find a step allocates nothing but the strings table.
    /// </summary>
    public ref struct StepReader
    {
        readonly ReadOnlySpan<byte> _data;
        int _pos;
        readonly long _unit;
        readonly string[] _rules;
        long _hour;

        public int Count { get; }

        /// <summary>The current step's numbers (valid after <see cref="Next"/>).</summary>
        public DateTimeOffset Hour { get; private set; }
        public DateTimeOffset Start { get; private set; }
        public DateTimeOffset End { get; private set; }
        public int StepCount { get; private set; }
        public double? Cpu { get; private set; }
        public long? Memory { get; private set; }
        public StepSource Source { get; private set; }
        ResourceKind _kind;
        bool _shortfallFlag, _forecastOnly, _windowApplied;
        int _shortfall;
        StepExplanation? _explanation;
        // Carried from step to step for format 1's "same as the previous" flags.
        double? _capacity;
        double _target;
        readonly byte _format;
        // Format 2's: the last values written, the previous step's flags, and where the last clamp list was written (with
        // the demand and count it chains from), so that a step whose clamps are "the same" can build them after steps
        // read without their explanation.
        Carried _last;
        G _flags;
        int _clampsAt, _clampsDemand, _clampsCount;
        Clamp[]? _clamps;

        public StepReader(ReadOnlySpan<byte> data)
        {
            _data = data;
            _pos = 0;
            if (data.Length == 0 || data[0] is not (Format1 or Format2))
            {
                throw new InvalidDataException($"packed plan steps of format {(data.Length == 0 ? "(empty)" : data[0])} cannot be read; expected {Format1} or {Format2}");
            }
            _format = data[0];
            _pos = 1;
            Count = (int)VarUInt();
            _rules = [];
            _unit = 1;
            _clampsAt = -1;
            if (Count == 0)
            {
                return;
            }
            _unit = _data[_pos++] == 1 ? TimeSpan.TicksPerSecond : 1;
            _hour = BinaryPrimitives.ReadInt64LittleEndian(_data[_pos..]);
            _pos += 8;
            _rules = new string[(int)VarUInt()];
            for (var i = 0; i < _rules.Length; i++)
            {
                var length = (int)VarUInt();
                _rules[i] = Encoding.UTF8.GetString(_data.Slice(_pos, length));
                _pos += length;
            }
        }

        /// <summary>Decodes the next step; with <paramref name="explain"/> its explanation too (else it is skipped over).</summary>
        public void Next(bool explain)
        {
            if (_format == Format2)
            {
                Next2(explain);
            }
            else
            {
                Next1(explain);
            }
        }

        void Next2(bool explain)
        {
            var f = _flags ^= (G)VarUInt();
            if ((f & G.TimesSame) == 0)
            {
                _last.HourDelta = VarInt();
                _last.Lead = VarInt();
                _last.Span = VarInt();
            }
            _hour += _last.HourDelta * _unit;
            var hour = _hour;
            var start = hour - (_last.Lead * _unit);
            Hour = new DateTimeOffset(hour, TimeSpan.Zero);
            Start = new DateTimeOffset(start, TimeSpan.Zero);
            End = new DateTimeOffset(start + (_last.Span * _unit), TimeSpan.Zero);
            if ((f & G.CountSame) == 0)
            {
                _last.Count += (int)VarInt();
            }
            StepCount = _last.Count;
            if ((f & G.SourcesSame) == 0)
            {
                _last.Sources = _data[_pos++];
                _last.Fallback = _data[_pos++];
            }
            var sources = _last.Sources;
            Source = (StepSource)(sources & 3);
            _shortfall = (f & G.Shortfall) != 0 ? (int)VarInt() : 0;
            _kind = (f & G.Job) != 0 ? ResourceKind.Job : ResourceKind.Service;
            _shortfallFlag = (f & G.CapacityShortfall) != 0;
            _forecastOnly = (f & G.ForecastOnly) != 0;
            _windowApplied = (f & G.WindowApplied) != 0;
            if ((f & (G.Cpu | G.CpuSame)) == G.Cpu)
            {
                _last.Cpu = Double();
            }
            Cpu = (f & G.Cpu) != 0 ? _last.Cpu : null;
            if ((f & (G.Memory | G.MemorySame)) == G.Memory)
            {
                _last.Memory = VarInt();
            }
            Memory = (f & G.Memory) != 0 ? _last.Memory : null;
            if ((f & (G.LoadHour | G.LoadHourSame)) == G.LoadHour)
            {
                _last.LoadHourOffset = VarInt();
            }
            DateTimeOffset? loadHour = (f & G.LoadHour) != 0 ? new DateTimeOffset(hour - (_last.LoadHourOffset * _unit), TimeSpan.Zero) : null;
            if ((f & (G.Load | G.LoadSame)) == G.Load)
            {
                _last.Load = (f & G.LoadWhole) != 0 ? VarInt() : Exact();
            }
            double? load = (f & G.Load) != 0 ? _last.Load : null;
            if ((f & (G.Capacity | G.CapacitySame)) == G.Capacity)
            {
                _last.Capacity = Double();
            }
            double? capacity = (f & G.Capacity) != 0 ? _last.Capacity : null;
            if ((f & G.TargetSame) == 0)
            {
                _last.Target = Double();
            }
            var target = _last.Target;
            double? raw = (f & (G.RawCount | G.RawDerived)) == G.RawCount ? Double() : null;
            if ((f & (G.Demand | G.DemandSame)) == G.Demand)
            {
                _last.Demand = StepCount + (int)VarInt();
            }
            int? demand = (f & G.Demand) != 0 ? _last.Demand : null;
            int? window = (f & G.Window) != 0 ? (int)VarInt() : null;
            JobDemand? job = null;
            double? needed = null;
            if ((f & G.JobDemand) != 0)
            {
                var rate = (f & G.JobRateIsLoad) != 0 ? load!.Value : Double();
                if ((f & G.JobBacklogSame) == 0)
                {
                    _last.Backlog = Double();
                }
                if ((f & G.JobConstantsSame) == 0)
                {
                    _last.CatchUp = Double();
                    _last.Restart = Double();
                }
                needed = (f & G.JobNeededDerived) != 0 ? JobDemand.Needed(rate, target, _last.Backlog, _last.CatchUp, _last.Restart) : Double();
                job = explain ? new JobDemand(rate, _last.Backlog, _last.CatchUp, _last.Restart, needed.Value) : null;
            }
            if ((f & G.RawDerived) != 0)
            {
                // On the numbers just read: the job's needed rate without building its record.
                raw = DeriveRaw(load, target, capacity, needed);
            }
            var explainedCount = (f & G.ExplainedCountDiffers) != 0 ? (int)VarInt() : StepCount;
            Clamp[]? clamps = null;
            if ((f & G.ClampsSame) == 0)
            {
                (_clampsAt, _clampsDemand, _clampsCount) = (_pos, demand ?? 0, explainedCount);
                _clamps = Clamps2(explain);
                clamps = _clamps;
            }
            else if (explain)
            {
                if (_clamps is null)
                {
                    var at = _pos;
                    _pos = _clampsAt;
                    _clamps = _clampsAt < 0 ? [] : Clamps2(build: true);
                    _pos = at;
                }
                clamps = _clamps;
            }
            RiskChoice? risk = null;
            if ((f & G.Risk) != 0)
            {
                if ((f & G.RiskFractionSame) == 0)
                {
                    _last.RiskFraction = Double();
                }
                if ((f & G.RiskQuantileSame) == 0)
                {
                    _last.RiskQuantile = Double();
                }
                var point = (f & G.RiskPointIsLoad) != 0 ? load!.Value : Double();
                var quantileLoad = Double();
                var riskLoad = (f & G.RiskLoadIsLoad) != 0 ? load!.Value : Double();
                risk = explain ? new RiskChoice(_last.RiskFraction, _last.RiskQuantile, point, quantileLoad, riskLoad, (f & G.RiskBinds) != 0, (f & G.RiskFromBacktest) != 0) : null;
            }
            string? rule = (f & G.WindowRule) != 0 ? _rules[(int)VarUInt()] : null;
            _explanation = !explain ? null : new StepExplanation(
                (StepSource)((sources >> 2) & 3), (FallbackReason)_last.Fallback, loadHour, load, (f & G.Bound) != 0 ? (ForecastBound)((sources >> 6) & 1) : null,
                capacity, (CapacitySource)((sources >> 4) & 3), target, raw, demand, window, job, clamps!, explainedCount)
            {
                Risk = risk,
                WindowRule = rule,
            };
        }

        /// <summary>A format-2 clamp list at the current position, chained from <see cref="_clampsDemand"/> and <see cref="_clampsCount"/>; built only when asked (else skipped over).</summary>
        Clamp[]? Clamps2(bool build)
        {
            var n = (int)VarUInt();
            var clamps = !build ? null : n == 0 ? [] : new Clamp[n];
            var chain = _clampsDemand;
            for (var i = 0; i < n; i++)
            {
                var header = _data[_pos++];
                var from = (header & ClampFromChain) != 0 ? chain : (int)VarInt();
                var to = (header & ClampToIsCount) != 0 ? _clampsCount : (int)VarInt();
                var limit = (header & ClampLimitIsTo) != 0 ? to : Double();
                if (clamps is not null)
                {
                    clamps[i] = new Clamp((ClampRule)(header & 15), from, to, limit);
                }
                chain = to;
            }
            return clamps;
        }

        void Next1(bool explain)
        {
            var f = (F)VarUInt();
            _hour += VarInt() * _unit;
            var hour = _hour;
            var start = hour - (VarInt() * _unit);
            var end = start + (VarInt() * _unit);
            Hour = new DateTimeOffset(hour, TimeSpan.Zero);
            Start = new DateTimeOffset(start, TimeSpan.Zero);
            End = new DateTimeOffset(end, TimeSpan.Zero);
            StepCount = (int)VarInt();
            var sources = _data[_pos++];
            Source = (StepSource)(sources & 3);
            var fallback = (FallbackReason)_data[_pos++];
            _shortfall = (int)VarInt();
            _kind = (f & F.Job) != 0 ? ResourceKind.Job : ResourceKind.Service;
            _shortfallFlag = (f & F.CapacityShortfall) != 0;
            _forecastOnly = (f & F.ForecastOnly) != 0;
            _windowApplied = (f & F.WindowApplied) != 0;
            Cpu = (f & F.Cpu) == 0 ? null : (f & F.CpuSame) != 0 ? Cpu : Double();
            Memory = (f & F.Memory) == 0 ? null : (f & F.MemorySame) != 0 ? Memory : VarInt();
            DateTimeOffset? loadHour = (f & F.LoadHour) != 0 ? new DateTimeOffset(hour - (VarInt() * _unit), TimeSpan.Zero) : null;
            double? load = (f & F.Load) != 0 ? Double() : null;
            _capacity = (f & F.Capacity) == 0 ? null : (f & F.CapacitySame) != 0 ? _capacity : Double();
            if ((f & F.TargetSame) == 0)
            {
                _target = Double();
            }
            double? raw = (f & (F.RawCount | F.RawDerived)) == F.RawCount ? Double() : null;
            int? demand = (f & F.Demand) != 0 ? (int)VarInt() : null;
            int? window = (f & F.Window) != 0 ? (int)VarInt() : null;
            JobDemand? job = (f & F.JobDemand) != 0 ? new JobDemand(Double(), Double(), Double(), Double(), Double()) : null;
            if ((f & F.RawDerived) != 0)
            {
                raw = DeriveRaw(load, _target, _capacity, job?.NeededRate);
            }
            var clampCount = (int)VarUInt();
            var clamps = explain ? new Clamp[clampCount] : null;
            for (var i = 0; i < clampCount; i++)
            {
                var rule = (ClampRule)_data[_pos++];
                var from = (int)VarInt();
                var to = (int)VarInt();
                var limit = Double();
                if (clamps is not null)
                {
                    clamps[i] = new Clamp(rule, from, to, limit);
                }
            }
            var explainedCount = (f & F.ExplainedCountDiffers) != 0 ? (int)VarInt() : StepCount;
            RiskChoice? risk = (f & F.Risk) != 0 ? new RiskChoice(Double(), Double(), Double(), Double(), Double(), (_data[_pos] & 1) != 0, (_data[_pos++] & 2) != 0) : null;
            string? rule2 = (f & F.WindowRule) != 0 ? _rules[(int)VarUInt()] : null;
            _explanation = !explain ? null : new StepExplanation(
                (StepSource)((sources >> 2) & 3), fallback, loadHour, load, (f & F.Bound) != 0 ? (ForecastBound)((sources >> 6) & 1) : null,
                _capacity, (CapacitySource)((sources >> 4) & 3), _target, raw, demand, window, job, clamps!, explainedCount)
            {
                Risk = risk,
                WindowRule = rule2,
            };
        }

        /// <summary>The current step as the planner made it (read with <c>explain: true</c>).</summary>
        public readonly PlanStep Step() => new(Hour, Start, End, _kind, StepCount, Cpu, Memory, Source, _shortfallFlag, _shortfall, _forecastOnly,
            _windowApplied, _explanation ?? throw new InvalidOperationException("the step was read without its explanation"));

        ulong VarUInt()
        {
            ulong v = 0;
            var shift = 0;
            while (true)
            {
                var b = _data[_pos++];
                v |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80)
                {
                    return v;
                }
                shift += 7;
            }
        }

        long VarInt()
        {
            var z = VarUInt();
            return (long)(z >> 1) ^ -(long)(z & 1);
        }

        double Exact()
        {
            var v = BinaryPrimitives.ReadDoubleLittleEndian(_data[_pos..]);
            _pos += 8;
            return v;
        }

        double Double()
        {
            var tag = VarUInt();
            if ((tag & 1) == 1)
            {
                var z = tag >> 1;
                return (long)(z >> 1) ^ -(long)(z & 1);
            }
            var v = BinaryPrimitives.ReadDoubleLittleEndian(_data[_pos..]);
            _pos += 8;
            return v;
        }
    }

    static bool Same(double a, double b) => BitConverter.DoubleToInt64Bits(a) == BitConverter.DoubleToInt64Bits(b);

    /// <summary>A growable buffer with the few encodings the form uses.</summary>
    sealed class Writer
    {
        [ThreadStatic]
        static Writer? t_writer;

        byte[] _buffer = new byte[4096];
        int _length;

        /// <summary>This thread's writer, emptied (it is not re-entrant: one plan is written at a time per thread).</summary>
        public static Writer ForThread()
        {
            var w = t_writer ??= new Writer();
            w._length = 0;
            return w;
        }

        public byte[] ToArray() => _buffer.AsSpan(0, _length).ToArray();

        void Ensure(int n)
        {
            if (_length + n > _buffer.Length)
            {
                Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + n));
            }
        }

        Span<byte> Take(int n)
        {
            Ensure(n);
            var span = _buffer.AsSpan(_length, n);
            _length += n;
            return span;
        }

        public void Byte(byte b)
        {
            Ensure(1);
            _buffer[_length++] = b;
        }

        /// <summary>Seven bits a byte, low first; room for the longest (10 bytes) is made once rather than per byte.</summary>
        public void VarUInt(ulong v)
        {
            Ensure(10);
            var buffer = _buffer;
            var at = _length;
            while (v >= 0x80)
            {
                buffer[at++] = (byte)(v | 0x80);
                v >>= 7;
            }
            buffer[at++] = (byte)v;
            _length = at;
        }

        public void VarInt(long v) => VarUInt((ulong)((v << 1) ^ (v >> 63)));

        public void Int64(long v) => BinaryPrimitives.WriteInt64LittleEndian(Take(8), v);

        /// <summary>An integral value (a limit, a count) as a tagged varint; anything else (and -0) as its 8 bytes.</summary>
        public void Double(double v)
        {
            if (IsWhole(v))
            {
                var l = (long)v;
                VarUInt((((ulong)((l << 1) ^ (l >> 63))) << 1) | 1);
            }
            else
            {
                Byte(0);
                BinaryPrimitives.WriteDoubleLittleEndian(Take(8), v);
            }
        }

        /// <summary>A double as its 8 bytes, without <see cref="Double"/>'s tag: for a value whose flags say it is not integral.</summary>
        public void Exact(double v) => BinaryPrimitives.WriteDoubleLittleEndian(Take(8), v);

        public void String(string s)
        {
            var length = Encoding.UTF8.GetByteCount(s);
            VarUInt((ulong)length);
            Encoding.UTF8.GetBytes(s, Take(length));
        }
    }
}
