using System.Buffers.Binary;
using System.Text;

namespace Forecaster.Api.Database;

/// <summary>What PostgreSQL's binary forms share where Forecaster writes or reads them itself (binary COPY rows, array_send).</summary>
public static class PostgresBinary
{
    /// <summary>A timestamptz in binary form is int64 microseconds since 2000-01-01 00:00 UTC (src/include/datatype/timestamp.h).</summary>
    public static readonly long EpochTicks = new DateTime(2000, 1, 1, 0, 0, 0, DateTimeKind.Utc).Ticks;

    // Element type oids (src/include/catalog/pg_type.dat): array_recv refuses an array whose element type is not the column's.
    const int Int4Oid = 23, Int8Oid = 20, Float8Oid = 701, TextOid = 25;

    /// <summary>An int4[] in binary form, for a binary COPY field written as its bytes (see <see cref="Array{T}"/>).</summary>
    public static byte[] Int4Array(ReadOnlySpan<int> values) =>
        Array(values, Int4Oid, 4, static (span, v) => BinaryPrimitives.WriteInt32BigEndian(span, v));

    /// <summary>An int8[] in binary form.</summary>
    public static byte[] Int8Array(ReadOnlySpan<long> values) =>
        Array(values, Int8Oid, 8, static (span, v) => BinaryPrimitives.WriteInt64BigEndian(span, v));

    /// <summary>A float8[] in binary form.</summary>
    public static byte[] Float8Array(ReadOnlySpan<double> values) =>
        Array(values, Float8Oid, 8, static (span, v) => BinaryPrimitives.WriteDoubleBigEndian(span, v));

    /// <summary>
    /// A text[] in binary form (laid out as <see cref="Array{T}"/> writes it, each element its UTF-8 bytes: textsend): a plan's
    /// notes, mostly none, where Npgsql's generic array writer bound a converter per row.
    /// </summary>
    public static byte[] TextArray(IReadOnlyList<string> values)
    {
        if (values.Count == 0)
        {
            return Empty(TextOid);
        }
        var length = 20;
        for (var i = 0; i < values.Count; i++)
        {
            length += 4 + Encoding.UTF8.GetByteCount(values[i]);
        }
        var bytes = new byte[length];
        var span = bytes.AsSpan();
        WriteHeader(span, TextOid, values.Count);
        for (int i = 0, at = 20; i < values.Count; i++)
        {
            var n = Encoding.UTF8.GetBytes(values[i], span[(at + 4)..]);
            BinaryPrimitives.WriteInt32BigEndian(span[at..], n);
            at += 4 + n;
        }
        return bytes;
    }

    delegate void WriteElement<T>(Span<byte> span, T value);

    /// <summary>
    /// A one-dimensional array without nulls as array_recv reads it (src/backend/utils/adt/arrayfuncs.c): int32 dimensions,
    /// int32 has-nulls flag, element type oid, per dimension int32 length and lower bound (1), then per element an int32 byte
    /// length and the element's binary form; every number big-endian. Planning writes three such arrays per plan version:
    /// encoded here they cost a loop, where Npgsql's generic array writer cost more than the rest of the row.
    /// </summary>
    static byte[] Array<T>(ReadOnlySpan<T> values, int elementOid, int elementSize, WriteElement<T> write)
    {
        if (values.IsEmpty)
        {
            return Empty(elementOid);
        }
        var bytes = new byte[20 + (values.Length * (4 + elementSize))];
        var span = bytes.AsSpan();
        WriteHeader(span, elementOid, values.Length);
        for (int i = 0, at = 20; i < values.Length; i++, at += 4 + elementSize)
        {
            BinaryPrimitives.WriteInt32BigEndian(span[at..], elementSize);
            write(span[(at + 4)..], values[i]);
        }
        return bytes;
    }

    /// <summary>
    /// The values of a float8[] in binary form (array_send), laid out as <see cref="Array{T}"/> writes it, each element the
    /// IEEE 754 double (float8send). One dimension and no nulls expected.
    /// </summary>
    public static double[] Float8Elements(ReadOnlySpan<byte> data)
    {
        var dimensions = BinaryPrimitives.ReadInt32BigEndian(data);
        if (dimensions == 0)
        {
            return [];
        }
        if (dimensions != 1 || BinaryPrimitives.ReadInt32BigEndian(data[4..]) != 0)
        {
            throw new InvalidDataException("expected a one-dimensional array without nulls");
        }
        var count = BinaryPrimitives.ReadInt32BigEndian(data[12..]);
        var elements = data[20..];
        if (elements.Length != count * 12)
        {
            throw new InvalidDataException($"expected {count} elements of 8 bytes");
        }
        var values = new double[count];
        for (var i = 0; i < count; i++)
        {
            values[i] = BinaryPrimitives.ReadDoubleBigEndian(elements[((i * 12) + 4)..]);
        }
        return values;
    }

    /// <summary>An empty array: no dimensions, no nulls, the element type.</summary>
    static byte[] Empty(int elementOid)
    {
        var empty = new byte[12];
        BinaryPrimitives.WriteInt32BigEndian(empty.AsSpan(8), elementOid);
        return empty;
    }

    /// <summary>The 20-byte header of a one-dimensional array without nulls of <paramref name="count"/> elements, lower bound 1.</summary>
    static void WriteHeader(Span<byte> span, int elementOid, int count)
    {
        BinaryPrimitives.WriteInt32BigEndian(span, 1);
        BinaryPrimitives.WriteInt32BigEndian(span[4..], 0);
        BinaryPrimitives.WriteInt32BigEndian(span[8..], elementOid);
        BinaryPrimitives.WriteInt32BigEndian(span[12..], count);
        BinaryPrimitives.WriteInt32BigEndian(span[16..], 1);
    }
}
