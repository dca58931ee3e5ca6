using System.Buffers.Binary;
using Forecaster.Api.Database;
using NpgsqlTypes;
using Npgsql;

namespace Forecaster.Api.Samples;

/// <summary>
/// How samples are stored (migration 0080): one row of `samples` per (series, UTC hour), its points as two parallel
/// arrays (ts strictly increasing, vals), so that PostgreSQL pays one tuple, one key and their WAL per hour instead of per
/// point. What every writer and reader shares: the hour of a point, the binary COPY form of a block, and the SQL that
/// merges point rows staged in a temporary table into blocks.
/// </summary>
public static class SampleBlocks
{
    /// <summary>The direct path's COPY: whole blocks, which fails (unique violation) when a block of the same hour is stored.</summary>
    public const string Copy = "COPY samples (series_id, hour, ts, vals) FROM STDIN (FORMAT BINARY)";

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
    /// stored ones the new values simply replace the stored ones, and the SQL functions of 0080 (an executor call each,
    /// about 15 µs, which made an upsert of 5 M hourly points take 94 s) run only for blocks whose timestamps differ.
    /// </summary>
    public static string Merge(string staging, bool dedupe) => $"""
        INSERT INTO samples AS s (series_id, hour, ts, vals)
        SELECT series_id, hour, array_agg(ts), array_agg(value)
        FROM (
            SELECT {(dedupe ? "DISTINCT ON (series_id, hour, ts)" : "")} series_id, date_bin('1 hour', ts, timestamptz '2000-01-01 00:00:00+00') AS hour, ts, value
            FROM {staging}
            ORDER BY series_id, hour, ts{(dedupe ? ", seq DESC" : "")}
        ) p
        GROUP BY series_id, hour
        ORDER BY series_id, hour
        ON CONFLICT (series_id, hour) DO UPDATE SET
            ts = CASE WHEN s.ts = EXCLUDED.ts THEN s.ts ELSE (sample_block_merge(s.ts, s.vals, EXCLUDED.ts, EXCLUDED.vals)).ts END,
            vals = CASE WHEN s.ts = EXCLUDED.ts THEN EXCLUDED.vals ELSE (sample_block_merge(s.ts, s.vals, EXCLUDED.ts, EXCLUDED.vals)).vals END
        WHERE CASE WHEN s.ts = EXCLUDED.ts THEN s.vals IS DISTINCT FROM EXCLUDED.vals ELSE sample_block_changes(s.ts, s.vals, EXCLUDED.ts, EXCLUDED.vals) END
        """;

    /// <summary>One block as a binary COPY row through Npgsql's importer.</summary>
    public static void Write(NpgsqlBinaryImporter copy, int seriesId, long hourTicks, List<long> ticks, List<double> values)
    {
        var ts = new DateTime[ticks.Count];
        for (var i = 0; i < ts.Length; i++)
        {
            ts[i] = new DateTime(ticks[i], DateTimeKind.Utc);
        }
        copy.StartRow();
        copy.Write(seriesId, NpgsqlDbType.Integer);
        copy.Write(new DateTime(hourTicks, DateTimeKind.Utc), NpgsqlDbType.TimestampTz);
        copy.Write(ts, NpgsqlDbType.Array | NpgsqlDbType.TimestampTz);
        copy.Write(values.ToArray(), NpgsqlDbType.Array | NpgsqlDbType.Double);
    }

    /// <summary>Bytes of one block row in binary COPY: field count, series, hour, and two one-dimensional arrays of n elements.</summary>
    public static int RowBytes(int n) => 2 + (4 + 4) + (4 + 8) + 2 * (4 + 20 + n * 12);

    /// <summary>
    /// One block laid out in PostgreSQL's binary COPY format (https://www.postgresql.org/docs/current/sql-copy.html) with
    /// array_send's form for the arrays (ndim, has-nulls flag, element type oid, then size and lower bound per dimension,
    /// then length-prefixed elements). <paramref name="points"/> are one hour's, strictly increasing in time.
    /// </summary>
    public static void WriteRaw(Span<byte> row, int seriesId, long hourTicks, ReadOnlySpan<(DateTime Ts, double Value)> points)
    {
        const uint TimestampTzOid = 1184, Float8Oid = 701;
        var n = points.Length;
        BinaryPrimitives.WriteInt16BigEndian(row, 4);
        BinaryPrimitives.WriteInt32BigEndian(row[2..], 4);
        BinaryPrimitives.WriteInt32BigEndian(row[6..], seriesId);
        BinaryPrimitives.WriteInt32BigEndian(row[10..], 8);
        BinaryPrimitives.WriteInt64BigEndian(row[14..], (hourTicks - PostgresBinary.EpochTicks) / 10);
        var at = 22;
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
        public readonly List<long> Ticks = [];
        public readonly List<double> Values = [];
    }

    readonly Dictionary<int, Block> _open = [];

    public void Add(NpgsqlBinaryImporter copy, int seriesId, DateTime ts, double value)
    {
        var ticks = ts.Ticks;
        var hour = SampleBlocks.HourTicks(ticks);
        if (!_open.TryGetValue(seriesId, out var b))
        {
            b = new Block { Hour = hour };
            _open.Add(seriesId, b);
        }
        else if (b.Hour != hour)
        {
            if (b.Ticks.Count > 0)
            {
                SampleBlocks.Write(copy, seriesId, b.Hour, b.Ticks, b.Values);
                b.Ticks.Clear();
                b.Values.Clear();
            }
            b.Hour = hour;
        }
        var n = b.Ticks.Count;
        if (n == 0 || ticks > b.Ticks[n - 1])
        {
            b.Ticks.Add(ticks);
            b.Values.Add(value);
            return;
        }
        var i = b.Ticks.BinarySearch(ticks);
        if (i >= 0)
        {
            b.Values[i] = value;
        }
        else
        {
            b.Ticks.Insert(~i, ticks);
            b.Values.Insert(~i, value);
        }
    }

    /// <summary>Writes every block still open.</summary>
    public void Flush(NpgsqlBinaryImporter copy)
    {
        foreach (var (seriesId, b) in _open)
        {
            if (b.Ticks.Count > 0)
            {
                SampleBlocks.Write(copy, seriesId, b.Hour, b.Ticks, b.Values);
            }
        }
        _open.Clear();
    }

    /// <summary>Forgets the open blocks (their points are in the spool; the direct path was abandoned).</summary>
    public void Clear() => _open.Clear();
}
