using System.Buffers;
using System.Buffers.Binary;
using Npgsql;

namespace Forecaster.Api.Database;

/// <summary>
/// A COPY ... FROM STDIN (FORMAT BINARY) whose rows the caller lays out itself (https://www.postgresql.org/docs/current/sql-copy.html,
/// "Binary Format": the header, rows of length-prefixed big-endian fields, the trailer): Npgsql's importer writes field by
/// field through its generic writers, which cost several times the row itself for the millions of sample rows a bulk write
/// or a backfill sends. Rows go into one buffer, written to the socket synchronously when it fills, because the import
/// lays rows out from spans that cannot cross an await. The COPY fails (a <see cref="PostgresException"/>) in
/// <see cref="CompleteAsync"/>; disposing without completing cancels it.
/// </summary>
public sealed class RawBinaryCopy : IAsyncDisposable
{
    readonly NpgsqlRawCopyStream _stream;
    byte[] _buffer = ArrayPool<byte>.Shared.Rent(1 << 16);
    int _used;
    bool _done;

    RawBinaryCopy(NpgsqlRawCopyStream stream)
    {
        _stream = stream;
        Signature.CopyTo(_buffer);
        // Flags, then the length of the header extension: both zero.
        BinaryPrimitives.WriteInt64BigEndian(_buffer.AsSpan(11), 0);
        _used = 19;
    }

    /// <summary>"PGCOPY\n\377\r\n\0": a UTF-8 literal would encode \377 as two bytes.</summary>
    static ReadOnlySpan<byte> Signature => [(byte)'P', (byte)'G', (byte)'C', (byte)'O', (byte)'P', (byte)'Y', (byte)'\n', 0xFF, (byte)'\r', (byte)'\n', 0];

    /// <summary>Starts <paramref name="copy"/> (a COPY ... FROM STDIN (FORMAT BINARY) statement) and writes the header.</summary>
    public static async Task<RawBinaryCopy> BeginAsync(NpgsqlConnection conn, string copy, CancellationToken ct)
    {
        var stream = await conn.BeginRawBinaryCopyAsync(copy, ct);
        // A bulk load may stream for many minutes; the request's own limits bound it.
        stream.WriteTimeout = (int)TimeSpan.FromHours(1).TotalMilliseconds;
        return new RawBinaryCopy(stream);
    }

    /// <summary>The next row's <paramref name="size"/> bytes, for the caller to lay out whole (field count first).</summary>
    public Span<byte> Row(int size)
    {
        if (_used + size > _buffer.Length)
        {
            _stream.Write(_buffer, 0, _used);
            _used = 0;
            if (size > _buffer.Length)
            {
                ArrayPool<byte>.Shared.Return(_buffer);
                _buffer = ArrayPool<byte>.Shared.Rent(size);
            }
        }
        var row = _buffer.AsSpan(_used, size);
        _used += size;
        return row;
    }

    /// <summary>Writes the trailer and ends the COPY; throws the server's error (a <see cref="PostgresException"/>) when it failed.</summary>
    public async Task CompleteAsync(CancellationToken ct)
    {
        if (_used + 2 > _buffer.Length)
        {
            await _stream.WriteAsync(_buffer.AsMemory(0, _used), ct);
            _used = 0;
        }
        BinaryPrimitives.WriteInt16BigEndian(_buffer.AsSpan(_used), -1);
        await _stream.WriteAsync(_buffer.AsMemory(0, _used + 2), ct);
        _used = 0;
        _done = true;
        // Disposing the raw stream sends CopyDone and reads the outcome.
        await _stream.DisposeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        if (!_done)
        {
            _done = true;
            try
            {
                await _stream.CancelAsync();
                await _stream.DisposeAsync();
            }
            catch (NpgsqlException)
            {
                // Cancelled on purpose (or the connection is being discarded): the caller rolls back.
            }
        }
        if (_buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = [];
        }
    }
}
