using System.Buffers.Binary;
using Forecaster.Api.Database;

namespace Forecaster.Api.Samples;

/// <summary>
/// How samples are stored (migration 0140): one row of `samples` per (series, UTC hour), its points as two parallel
/// arrays (ts strictly increasing, vals), so that PostgreSQL pays one tuple, one key and their WAL per hour instead of per
/// point; an hour holding one point at the hour itself (hourly data) stores only its `value` (ts and vals NULL), a row of
/// a point row's size that COPY reads without array_recv. What every writer and reader shares: the hour of a point, the binary COPY form of a block, and the SQL that
/// merges point rows staged in a temporary table into blocks.
/// </summary>
public static class SampleBlocks
{
    /// <summary>The direct path's COPY: whole blocks, which fails (unique violation) when a block of the same hour is stored.</summary>
    public const string Copy = "COPY samples (series_id, hour, value, ts, vals) FROM STDIN (FORMAT BINARY)";

    /// <summary>The UTC hour a point belongs to (its block's key).</summary>
    public static long HourTicks(long ticks) => ticks - ticks % TimeSpan.TicksPerHour;

    /// <summary>
    /// Point rows staged in <paramref name="staging"/> (series_id, ts, value[, seq]) merged into blocks in (series, hour)
    /// order, the primary key's, which is the global lock order that keeps concurrent merges from deadlocking. Within a
    /// block a staged point replaces a stored one at the same ts; a retry of stored points writes nothing. With
    /// <paramref name="dedupe"/> the staging may repeat a (series, ts) and the highest seq wins (the last occurrence in a
    /// request); without, the staged rows are distinct. array_agg takes the rows in the subquery's order, (series, hour,
    /// ts), which the grouping keeps (GroupAggregate on that order, or HashAggregate, which feeds rows in input order).
    /// The common upsert rewrites the same points of an hour (a retry, a pull's overlap): when the timestamps are the
    /// stored ones the new values simply replace the stored ones, and the SQL functions of 0140 (an executor call each,
    /// about 15 µs, which made an upsert of 5 M hourly points take 94 s) run only for blocks whose timestamps differ.
    /// Blocks are written in their form (<see cref="IsOnePoint"/>): two one-point forms of an hour hold the same ts, so
    /// the new value replaces the stored one; a merge of anything else holds at least two points (a single point off
    /// the hour is never in the one-point form), so its result is arrays.
    /// </summary>
    public static string Merge(string staging, bool dedupe) => $"""
        INSERT INTO samples AS s (series_id, hour, value, ts, vals)
        SELECT series_id, hour, CASE WHEN one THEN vals[1] END, CASE WHEN NOT one THEN ts END, CASE WHEN NOT one THEN vals END
        FROM (
            SELECT series_id, hour, array_agg(ts) AS ts, array_agg(value) AS vals, count(*) = 1 AND min(ts) = hour AS one
            FROM (
                SELECT {(dedupe ? "DISTINCT ON (series_id, hour, ts)" : "")} series_id, date_bin('1 hour', ts, timestamptz '2000-01-01 00:00:00+00') AS hour, ts, value
                FROM {staging}
                ORDER BY series_id, hour, ts{(dedupe ? ", seq DESC" : "")}
            ) p
            GROUP BY series_id, hour
        ) b
        ORDER BY series_id, hour
        ON CONFLICT (series_id, hour) DO UPDATE SET
            value = CASE WHEN s.ts IS NULL AND EXCLUDED.ts IS NULL THEN EXCLUDED.value END,
            ts = CASE WHEN s.ts IS NULL AND EXCLUDED.ts IS NULL THEN NULL WHEN s.ts = EXCLUDED.ts THEN s.ts
                 ELSE (sample_block_merge(coalesce(s.ts, ARRAY[s.hour]), coalesce(s.vals, ARRAY[s.value]), coalesce(EXCLUDED.ts, ARRAY[EXCLUDED.hour]), coalesce(EXCLUDED.vals, ARRAY[EXCLUDED.value]))).ts END,
            vals = CASE WHEN s.ts IS NULL AND EXCLUDED.ts IS NULL THEN NULL WHEN s.ts = EXCLUDED.ts THEN EXCLUDED.vals
                   ELSE (sample_block_merge(coalesce(s.ts, ARRAY[s.hour]), coalesce(s.vals, ARRAY[s.value]), coalesce(EXCLUDED.ts, ARRAY[EXCLUDED.hour]), coalesce(EXCLUDED.vals, ARRAY[EXCLUDED.value]))).vals END
        WHERE CASE WHEN s.ts IS NULL AND EXCLUDED.ts IS NULL THEN s.value IS DISTINCT FROM EXCLUDED.value
                   WHEN s.ts = EXCLUDED.ts THEN s.vals IS DISTINCT FROM EXCLUDED.vals
                   ELSE sample_block_changes(coalesce(s.ts, ARRAY[s.hour]), coalesce(s.vals, ARRAY[s.value]), coalesce(EXCLUDED.ts, ARRAY[EXCLUDED.hour]), coalesce(EXCLUDED.vals, ARRAY[EXCLUDED.value])) END
        """;

    /// <summary>
    /// The merge of staged rows that each lie at the start of their hour (an hourly push, or its retry): once a repeated
    /// (series, ts) is reduced to its last occurrence (with <paramref name="dedupe"/>, the highest seq wins; without, the
    /// staged rows are distinct and in key order, and a temporary table's scan returns them in the order they were
    /// copied), every row is alone in its hour, a one-point block as it stands, so it goes to the upsert without the
    /// grouping and arrays of <see cref="Merge"/>, as main's row merge did. A stored one-point block of the hour holds the
    /// same ts, so its value is replaced; a stored block of arrays gets the point merged in (the SQL functions of 0140).
    /// A retry of stored points writes nothing.
    /// </summary>
    public static string MergeOnePoints(string staging, bool dedupe) => $"""
        INSERT INTO samples AS s (series_id, hour, value)
        {(dedupe
            ? $"SELECT DISTINCT ON (series_id, ts) series_id, ts, value FROM {staging} ORDER BY series_id, ts, seq DESC"
            : $"SELECT series_id, ts, value FROM {staging}")}
        ON CONFLICT (series_id, hour) DO UPDATE SET
            value = CASE WHEN s.ts IS NULL THEN EXCLUDED.value END,
            ts = CASE WHEN s.ts IS NULL THEN NULL ELSE (sample_block_merge(s.ts, s.vals, ARRAY[EXCLUDED.hour], ARRAY[EXCLUDED.value])).ts END,
            vals = CASE WHEN s.ts IS NULL THEN NULL ELSE (sample_block_merge(s.ts, s.vals, ARRAY[EXCLUDED.hour], ARRAY[EXCLUDED.value])).vals END
        WHERE CASE WHEN s.ts IS NULL THEN s.value IS DISTINCT FROM EXCLUDED.value
                   ELSE sample_block_changes(s.ts, s.vals, ARRAY[EXCLUDED.hour], ARRAY[EXCLUDED.value]) END
        """;

    /// <summary>
    /// One block as a row of <paramref name="copy"/> (a COPY of <see cref="Copy"/>): every writer of blocks (the import's direct
    /// path, the bulk write of pulled history) lays them out with <see cref="WriteRaw"/>, where Npgsql's importer wrote an
    /// hourly point as two generic arrays (a DateTime[] and a double[] allocated, then its array writer), which made the
    /// import's insert of hourly rows ~19% slower than point rows. <paramref name="points"/> are one hour's, strictly increasing in time.
    /// </summary>
    public static void Write(RawBinaryCopy copy, int seriesId, long hourTicks, ReadOnlySpan<(DateTime Ts, double Value)> points) =>
        WriteRaw(copy.Row(RowBytes(points.Length, IsOnePoint(points.Length, points[0].Ts.Ticks, hourTicks))), seriesId, hourTicks, points);

    /// <summary>True when a block of <paramref name="n"/> points whose first is at <paramref name="firstTicks"/> is stored in the one-point form (value alone).</summary>
    public static bool IsOnePoint(int n, long firstTicks, long hourTicks) => n == 1 && firstTicks == hourTicks;

    /// <summary>Bytes of one block row in binary COPY: field count, series, hour, then value and two NULLs (the one-point form) or a NULL and two one-dimensional arrays of n elements.</summary>
    public static int RowBytes(int n, bool onePoint) => 2 + (4 + 4) + (4 + 8) + (onePoint ? (4 + 8) + 4 + 4 : 4 + 2 * (4 + 20 + n * 12));

    /// <summary>
    /// One block laid out in PostgreSQL's binary COPY format (https://www.postgresql.org/docs/current/sql-copy.html) with
    /// array_send's form for the arrays (ndim, has-nulls flag, element type oid, then size and lower bound per dimension,
    /// then length-prefixed elements); a NULL field is the length -1. <paramref name="points"/> are one hour's, strictly
    /// increasing in time; the row has <see cref="RowBytes"/> bytes.
    /// </summary>
    public static void WriteRaw(Span<byte> row, int seriesId, long hourTicks, ReadOnlySpan<(DateTime Ts, double Value)> points)
    {
        const uint TimestampTzOid = 1184, Float8Oid = 701;
        var n = points.Length;
        BinaryPrimitives.WriteInt16BigEndian(row, 5);
        BinaryPrimitives.WriteInt32BigEndian(row[2..], 4);
        BinaryPrimitives.WriteInt32BigEndian(row[6..], seriesId);
        BinaryPrimitives.WriteInt32BigEndian(row[10..], 8);
        BinaryPrimitives.WriteInt64BigEndian(row[14..], (hourTicks - PostgresBinary.EpochTicks) / 10);
        if (IsOnePoint(n, points[0].Ts.Ticks, hourTicks))
        {
            BinaryPrimitives.WriteInt32BigEndian(row[22..], 8);
            BinaryPrimitives.WriteDoubleBigEndian(row[26..], points[0].Value);
            BinaryPrimitives.WriteInt32BigEndian(row[34..], -1);
            BinaryPrimitives.WriteInt32BigEndian(row[38..], -1);
            return;
        }
        BinaryPrimitives.WriteInt32BigEndian(row[22..], -1);
        var at = 26;
        for (var a = 0; a < 2; a++)
        {
            BinaryPrimitives.WriteInt32BigEndian(row[at..], 20 + n * 12);
            BinaryPrimitives.WriteInt32BigEndian(row[(at + 4)..], 1);
            BinaryPrimitives.WriteInt32BigEndian(row[(at + 8)..], 0);
            BinaryPrimitives.WriteUInt32BigEndian(row[(at + 12)..], a == 0 ? TimestampTzOid : Float8Oid);
            BinaryPrimitives.WriteInt32BigEndian(row[(at + 16)..], n);
            BinaryPrimitives.WriteInt32BigEndian(row[(at + 20)..], 1);
            at += 24;
            foreach (var (ts, value) in points)
            {
                BinaryPrimitives.WriteInt32BigEndian(row[at..], 8);
                if (a == 0)
                {
                    // timestamptz: microseconds since 2000-01-01 UTC.
                    BinaryPrimitives.WriteInt64BigEndian(row[(at + 4)..], (ts.Ticks - PostgresBinary.EpochTicks) / 10);
                }
                else
                {
                    BinaryPrimitives.WriteDoubleBigEndian(row[(at + 4)..], value);
                }
                at += 12;
            }
        }
    }
}

/// <summary>
/// The direct path's open blocks: points arriving in any order are gathered per series into the hour in progress, and a
/// block is written to the COPY when its series moves to another hour (or at the end). Points of an hour arriving out of
/// order are put in place, and a repeated ts keeps the last value, as the merge would. A series coming back to an hour
/// already written gives a second block of the same key, so the COPY fails with a unique violation and the write is
/// merged instead, as a stored point did before.
/// </summary>
public sealed class OpenBlocks
{
    sealed class Block
    {
        public long Hour;
        public readonly List<(DateTime Ts, double Value)> Points = [];
    }

    readonly Dictionary<int, Block> _open = [];

    public void Add(RawBinaryCopy copy, int seriesId, DateTime ts, double value)
    {
        var ticks = ts.Ticks;
        var hour = SampleBlocks.HourTicks(ticks);
        ref var slot = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(_open, seriesId, out _);
        slot ??= new Block { Hour = hour };
        var b = slot;
        var points = b.Points;
        if (b.Hour != hour)
        {
            if (points.Count > 0)
            {
                SampleBlocks.Write(copy, seriesId, b.Hour, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(points));
                points.Clear();
            }
            b.Hour = hour;
        }
        var n = points.Count;
        if (n == 0 || ticks > points[n - 1].Ts.Ticks)
        {
            points.Add((ts, value));
            return;
        }
        int lo = 0, hi = n - 1;
        while (lo <= hi)
        {
            var mid = (lo + hi) >> 1;
            var t = points[mid].Ts.Ticks;
            if (t == ticks)
            {
                points[mid] = (ts, value);
                return;
            }
            if (t < ticks)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }
        points.Insert(lo, (ts, value));
    }

    /// <summary>The (series, hour) of every block still open, for the probe of stored blocks before they are written.</summary>
    public (int[] SeriesIds, DateTime[] Hours) Keys()
    {
        var ids = new List<int>(_open.Count);
        var hours = new List<DateTime>(_open.Count);
        foreach (var (seriesId, b) in _open)
        {
            if (b.Points.Count > 0)
            {
                ids.Add(seriesId);
                hours.Add(new DateTime(b.Hour, DateTimeKind.Utc));
            }
        }
        return ([.. ids], [.. hours]);
    }

    /// <summary>Writes every block still open.</summary>
    public void Flush(RawBinaryCopy copy)
    {
        foreach (var (seriesId, b) in _open)
        {
            if (b.Points.Count > 0)
            {
                SampleBlocks.Write(copy, seriesId, b.Hour, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(b.Points));
            }
        }
        _open.Clear();
    }

    /// <summary>Forgets the open blocks (their points are in the spool; the direct path was abandoned).</summary>
    public void Clear() => _open.Clear();
}
