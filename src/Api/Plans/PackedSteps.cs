using System.Buffers.Binary;
using System.Text;
using Forecaster.Planner;

namespace Forecaster.Api.Plans;

/// <summary>
/// The compact binary form of a plan's steps (issue 16), stored in <c>plan_versions.steps_packed</c> and held as-is by the
/// serving cache: about 30-60 bytes a step instead of about 1 KB of JSON, and no parsing at load. Every number of a
/// <see cref="PlanStep"/> and its <see cref="StepExplanation"/> is kept exactly (doubles bit for bit, times in ticks or
/// whole seconds), so a step read back serializes to the same JSON and the same sentence as the planner's.
/// <para>
/// Layout: format byte, step count, time unit, the first hour (8 bytes), the window-rule strings once, then per step a
/// varint of flags followed by its fields. Values equal to the previous step's (requests, capacity, target) are flagged,
/// not repeated, as is a raw count the other numbers give to the bit; integral doubles (limits) are written as varints.
/// </para>
/// </summary>
public static class PackedSteps
{
    const byte Format = 1;

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
    /// The raw count as the planner computes it from the other numbers (load ÷ target ÷ capacity; a job's needed rate ÷
    /// capacity), or null when one is missing. Where it gives the stored value to the bit, the value is not stored.
    /// </summary>
    static double? DeriveRaw(double? load, double target, double? capacity, JobDemand? job) =>
        capacity is not { } c ? null : job is not null ? job.NeededRate / c : load is { } l ? l / target / c : null;

    /// <summary>The steps in their compact form.</summary>
    public static byte[] Write(IReadOnlyList<PlanStep> steps)
    {
        // One buffer per thread, reused plan after plan: planning writes 100,000 of these in a run, and a fresh buffer (then
        // its copy) per plan was a fifth of what the row builder allocated, all of it work for the collector.
        var w = Writer.ForThread();
        w.Byte(Format);
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
        PlanStep? prev = null;
        for (var i = 0; i < steps.Count; i++)
        {
            var s = steps[i];
            var e = s.Explanation;
            var f = (s.Kind == ResourceKind.Job ? F.Job : 0)
                | (s.CapacityShortfall ? F.CapacityShortfall : 0)
                | (s.ForecastOnly ? F.ForecastOnly : 0)
                | (s.WindowApplied ? F.WindowApplied : 0)
                | (s.Cpu is not null ? F.Cpu : 0)
                | (s.Cpu is { } cpu && prev?.Cpu is { } pc && Same(cpu, pc) ? F.CpuSame : 0)
                | (s.Memory is not null ? F.Memory : 0)
                | (s.Memory is { } mem && prev?.Memory == mem ? F.MemorySame : 0)
                | (e.LoadHour is not null ? F.LoadHour : 0)
                | (e.Load is not null ? F.Load : 0)
                | (e.Bound is not null ? F.Bound : 0)
                | (e.Capacity is not null ? F.Capacity : 0)
                | (e.Capacity is { } cap && prev?.Explanation.Capacity is { } pcap && Same(cap, pcap) ? F.CapacitySame : 0)
                | (prev is not null && Same(e.TargetUtilization, prev.Explanation.TargetUtilization) ? F.TargetSame : 0)
                | (e.RawCount is not null ? F.RawCount : 0)
                | (e.Demand is not null ? F.Demand : 0)
                | (e.Window is not null ? F.Window : 0)
                | (e.Job is not null ? F.JobDemand : 0)
                | (e.Risk is not null ? F.Risk : 0)
                | (e.WindowRule is not null ? F.WindowRule : 0)
                | (e.Count != s.Count ? F.ExplainedCountDiffers : 0)
                | (e.RawCount is { } r && DeriveRaw(e.Load, e.TargetUtilization, e.Capacity, e.Job) is { } d && Same(r, d) ? F.RawDerived : 0);
            w.VarUInt((ulong)f);
            w.VarInt((s.Hour.UtcTicks - (prev?.Hour.UtcTicks ?? steps[0].Hour.UtcTicks)) / unit);
            w.VarInt((s.Hour.UtcTicks - s.Start.UtcTicks) / unit);
            w.VarInt((s.End.UtcTicks - s.Start.UtcTicks) / unit);
            w.VarInt(s.Count);
            w.Byte((byte)((int)s.Source | ((int)e.Source << 2) | ((int)e.CapacitySource << 4) | ((int)(e.Bound ?? 0) << 6)));
            w.Byte((byte)e.Fallback);
            w.VarInt(s.Shortfall);
            if ((f & (F.Cpu | F.CpuSame)) == F.Cpu)
            {
                w.Double(s.Cpu!.Value);
            }
            if ((f & (F.Memory | F.MemorySame)) == F.Memory)
            {
                w.VarInt(s.Memory!.Value);
            }
            if (e.LoadHour is { } loadHour)
            {
                w.VarInt((s.Hour.UtcTicks - loadHour.UtcTicks) / unit);
            }
            if (e.Load is { } load)
            {
                w.Double(load);
            }
            if ((f & (F.Capacity | F.CapacitySame)) == F.Capacity)
            {
                w.Double(e.Capacity!.Value);
            }
            if ((f & F.TargetSame) == 0)
            {
                w.Double(e.TargetUtilization);
            }
            if (e.RawCount is { } raw && (f & F.RawDerived) == 0)
            {
                w.Double(raw);
            }
            if (e.Demand is { } demand)
            {
                w.VarInt(demand);
            }
            if (e.Window is { } window)
            {
                w.VarInt(window);
            }
            if (e.Job is { } job)
            {
                w.Double(job.Rate);
                w.Double(job.Backlog);
                w.Double(job.CatchUpSeconds);
                w.Double(job.RestartSeconds);
                w.Double(job.NeededRate);
            }
            w.VarUInt((ulong)e.Clamps.Count);
            for (var k = 0; k < e.Clamps.Count; k++)
            {
                var c = e.Clamps[k];
                w.Byte((byte)c.Rule);
                w.VarInt(c.From);
                w.VarInt(c.To);
                w.Double(c.Limit);
            }
            if ((f & F.ExplainedCountDiffers) != 0)
            {
                w.VarInt(e.Count);
            }
            if (e.Risk is { } risk)
            {
                w.Double(risk.Fraction);
                w.Double(risk.Quantile);
                w.Double(risk.Point);
                w.Double(risk.QuantileLoad);
                w.Double(risk.Load);
                // Bit 0: the quantile binds; bit 1: it is the model's backtest tail (a byte written before that bit existed reads as the band's).
                w.Byte((byte)((risk.QuantileBinds ? 1 : 0) | (risk.FromBacktest ? 2 : 0)));
            }
            if (e.WindowRule is { } text)
            {
                w.VarUInt((ulong)rules!.IndexOf(text));
            }
            prev = s;
        }
        return w.ToArray();
    }

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
        // Carried from step to step for the "same as the previous" flags.
        double? _capacity;
        double _target;

        public StepReader(ReadOnlySpan<byte> data)
        {
            _data = data;
            _pos = 0;
            if (data.Length == 0 || data[0] != Format)
            {
                throw new InvalidDataException($"packed plan steps of format {(data.Length == 0 ? "(empty)" : data[0])} cannot be read; expected {Format}");
            }
            _pos = 1;
            Count = (int)VarUInt();
            _rules = [];
            _unit = 1;
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
                raw = DeriveRaw(load, _target, _capacity, job);
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
            if (Math.Abs(v) < (1L << 52) && v == Math.Floor(v) && !(v == 0 && double.IsNegative(v)))
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

        public void String(string s)
        {
            var length = Encoding.UTF8.GetByteCount(s);
            VarUInt((ulong)length);
            Encoding.UTF8.GetBytes(s, Take(length));
        }
    }
}
