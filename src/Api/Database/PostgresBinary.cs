namespace Forecaster.Api.Database;

/// <summary>What PostgreSQL's binary forms share where Forecaster writes or reads them itself (binary COPY rows, array_send).</summary>
public static class PostgresBinary
{
    /// <summary>A timestamptz in binary form is int64 microseconds since 2000-01-01 00:00 UTC (src/include/datatype/timestamp.h).</summary>
    public static readonly long EpochTicks = new DateTime(2000, 1, 1, 0, 0, 0, DateTimeKind.Utc).Ticks;
}
