using System.Buffers.Binary;
using Hangfire;
using Dapper;
using Npgsql;
using static Forecaster.Planner.Hours;

namespace Forecaster.Api.Samples;

/// <summary>
/// The hourly rollups of migration 0170: one `sample_hours` row per (series, UTC day) with the day's 24 hourly means,
/// maxima and ignored counts as bytes, recomputed from the samples for the days writers marked stale. This class owns the
/// table: its layout, the marks writers add, and the refresh.
/// </summary>
/// <remarks>
/// Why the refresh is correct with concurrent writers (READ COMMITTED): a writer commits its samples and its marks
/// together, and a refresh commits the rollups it computed and the deletion of the marks it read together. The refresh
/// deletes marks first and reads the samples in a later statement, whose snapshot sees every writer whose mark it
/// deleted (a deleted mark was committed before the deletion); a writer still open then has a mark the deletion could
/// not see, which stays for the next refresh. Refreshes run one at a time (an advisory lock per batch), so two never
/// write the same day from different snapshots.
/// </remarks>
public static class HourlyRollups
{
    public const int HoursPerDay = 24;

    /// <summary>Bytes of `mean` and of `max`: 24 binary64 values.</summary>
    public const int ValuesBytes = HoursPerDay * sizeof(double);

    /// <summary>The UTC midnight starting the day of <paramref name="utc"/>.</summary>
    public static DateTime Day(DateTime utc) => new(utc.Ticks - utc.Ticks % TimeSpan.TicksPerDay, DateTimeKind.Utc);

    /// <summary>
    /// Marks every day from <paramref name="firsts"/>[i] to <paramref name="lasts"/>[i] of series <paramref name="seriesIds"/>[i]
    /// stale, in the writer's transaction: what a write of samples in those ranges must do before it commits. A plain
    /// INSERT (no key to conflict on), so it never waits for another writer.
    /// </summary>
    public static async Task MarkStaleAsync(NpgsqlConnection conn, NpgsqlTransaction? tx, int[] seriesIds, DateTime[] firsts, DateTime[] lasts, CancellationToken ct)
    {
        if (seriesIds.Length == 0)
        {
            return;
        }
        const string mark = """
            INSERT INTO sample_hours_stale (series_id, day)
            SELECT k.id, d
            FROM unnest(@seriesIds, @firsts, @lasts) AS k(id, first_ts, last_ts)
            CROSS JOIN LATERAL generate_series(date_bin('1 day', k.first_ts, timestamptz '2000-01-01 00:00:00+00'), k.last_ts, interval '1 day') AS d
            """;
        await conn.ExecuteAsync(new CommandDefinition(mark, new { seriesIds, firsts, lasts }, tx, cancellationToken: ct, commandTimeout: 0));
    }

    /// <summary>
    /// Recomputes every stale day from the samples, <paramref name="batch"/> days per transaction, until no mark is left
    /// (or another instance holds the refresh; it finishes the work). Days before <paramref name="keepBefore"/> (older than
    /// raw retention keeps samples: their month may have been emptied since) keep the hours their samples no longer show;
    /// younger days are exactly their samples (a day without any loses its row). Returns the days refreshed;
    /// <paramref name="progress"/> hears the running count after each batch.
    /// </summary>
    public static async Task<long> RefreshAsync(NpgsqlDataSource db, DateTimeOffset? keepBefore, CancellationToken ct, int batch = 10_000, Action<long>? progress = null)
    {
        long total = 0;
        while (true)
        {
            var done = await RefreshBatchAsync(db, keepBefore, batch, ct);
            if (done < 0)
            {
                return total;
            }
            total += done;
            progress?.Invoke(total);
            if (done == 0)
            {
                return total;
            }
        }
    }

    /// <summary>One batch in one transaction: the days refreshed, 0 when nothing was stale, -1 when another refresh holds the lock.</summary>
    static async Task<int> RefreshBatchAsync(NpgsqlDataSource db, DateTimeOffset? keepBefore, int batch, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        if (!await conn.ExecuteScalarAsync<bool>(new CommandDefinition("SELECT pg_try_advisory_xact_lock(hashtextextended('forecaster:hourly-rollups', 0))", transaction: tx, cancellationToken: ct)))
        {
            return -1;
        }
        // Every mark up to the batch's last key in key order: both statements walk the index from its start (a semi-join
        // on the keys took a scan of the whole table per batch).
        const string last = """
            SELECT series_id, day FROM (SELECT series_id, day FROM sample_hours_stale ORDER BY series_id, day LIMIT @batch) b
            ORDER BY series_id DESC, day DESC LIMIT 1
            """;
        var end = await conn.QueryFirstOrDefaultAsync<(int SeriesId, DateTime Day)?>(new CommandDefinition(last, new { batch }, tx, cancellationToken: ct));
        if (end is not { } through)
        {
            await tx.CommitAsync(ct);
            return 0;
        }
        const string take = "DELETE FROM sample_hours_stale WHERE (series_id, day) <= (@SeriesId, @Day) RETURNING series_id, day";
        var keys = (await conn.QueryAsync<(int SeriesId, DateTime Day)>(new CommandDefinition(take,
                new { through.SeriesId, Day = DateTime.SpecifyKind(through.Day, DateTimeKind.Utc) }, tx, cancellationToken: ct)))
            .Select(k => (k.SeriesId, Day: DateTime.SpecifyKind(k.Day, DateTimeKind.Utc)))
            .Distinct().OrderBy(k => k.SeriesId).ThenBy(k => k.Day).ToList();
        var ids = keys.Select(k => k.SeriesId).ToArray();
        var days = keys.Select(k => k.Day).ToArray();
        var index = new Dictionary<(int, DateTime), int>(keys.Count);
        for (var i = 0; i < keys.Count; i++)
        {
            index[keys[i]] = i;
        }

        // Consecutive days of a series read as one range (an import's days are all consecutive): one index range scan
        // each, where a scan per day cost PostgreSQL about three times the CPU per block.
        var (rangeIds, rangeFroms, rangeTos) = (new List<int>(), new List<DateTime>(), new List<DateTime>());
        foreach (var (id, day) in keys)
        {
            if (rangeIds.Count > 0 && rangeIds[^1] == id && rangeTos[^1] == day)
            {
                rangeTos[^1] = day.AddDays(1);
                continue;
            }
            rangeIds.Add(id);
            rangeFroms.Add(day);
            rangeTos.Add(day.AddDays(1));
        }

        // A new statement, so a new snapshot: it sees every writer whose marks were just deleted (see the class remarks).
        var computed = new DayAggregates?[keys.Count];
        const string blocks = """
            SELECT s.series_id, s.hour, s.value, s.vals
            FROM unnest(@ids, @froms, @tos) AS k(id, from_day, to_day)
            JOIN samples s ON s.series_id = k.id AND s.hour >= k.from_day AND s.hour < k.to_day
            """;
        await using (var cmd = new NpgsqlCommand(blocks, conn, tx))
        {
            cmd.Parameters.AddWithValue("ids", rangeIds.ToArray());
            cmd.Parameters.AddWithValue("froms", rangeFroms.ToArray());
            cmd.Parameters.AddWithValue("tos", rangeTos.ToArray());
            cmd.CommandTimeout = 0;
            await using var reader = await cmd.ExecuteReaderAsync(System.Data.CommandBehavior.SequentialAccess, ct);
            while (await reader.ReadAsync(ct))
            {
                var id = reader.GetInt32(0);
                var hour = reader.GetFieldValue<DateTime>(1);
                var one = reader.IsDBNull(2) ? double.NaN : reader.GetDouble(2);
                var values = reader.IsDBNull(3) ? null : reader.GetFieldValue<double[]>(3);
                var day = Day(hour);
                var i = index[(id, day)];
                var aggregates = computed[i] ??= DayAggregates.Empty();
                aggregates.SetHour((int)((hour - day) / Hour), values is null ? new ReadOnlySpan<double>(in one) : values);
            }
        }

        if (keepBefore is { } keep && keys.Any(k => k.Day < keep.UtcDateTime))
        {
            // Days older than raw retention: an hour without samples keeps what its rollup says.
            var old = keys.Where(k => k.Day < keep.UtcDateTime).ToList();
            const string stored = """
                SELECT h.series_id, h.day, h.mean, h.max, h.ignored
                FROM unnest(@ids, @days) AS k(id, day) JOIN sample_hours h ON h.series_id = k.id AND h.day = k.day
                """;
            foreach (var row in await conn.QueryAsync<(int SeriesId, DateTime Day, byte[] Mean, byte[] Max, byte[]? Ignored)>(new CommandDefinition(stored,
                new { ids = old.Select(k => k.SeriesId).ToArray(), days = old.Select(k => k.Day).ToArray() }, tx, cancellationToken: ct)))
            {
                var i = index[(row.SeriesId, DateTime.SpecifyKind(row.Day, DateTimeKind.Utc))];
                var kept = DayAggregates.FromStored(row.Mean, row.Max, row.Ignored);
                computed[i] = computed[i] is { } fresh ? kept.OverwrittenBy(fresh) : kept;
            }
        }

        var write = Enumerable.Range(0, keys.Count).Where(i => computed[i] is not null).ToList();
        const string upsert = """
            INSERT INTO sample_hours AS h (series_id, day, mean, max, ignored)
            SELECT * FROM unnest(@ids, @days, @means, @maxima, @ignored)
            ON CONFLICT (series_id, day) DO UPDATE SET mean = EXCLUDED.mean, max = EXCLUDED.max, ignored = EXCLUDED.ignored
            """;
        await conn.ExecuteAsync(new CommandDefinition(upsert, new
        {
            ids = write.Select(i => ids[i]).ToArray(),
            days = write.Select(i => days[i]).ToArray(),
            means = write.Select(i => computed[i]!.MeanBytes()).ToArray(),
            maxima = write.Select(i => computed[i]!.MaxBytes()).ToArray(),
            ignored = write.Select(i => computed[i]!.IgnoredBytes()).ToArray(),
        }, tx, cancellationToken: ct, commandTimeout: 0));
        var empty = Enumerable.Range(0, keys.Count).Where(i => computed[i] is null).ToList();
        if (empty.Count > 0)
        {
            const string remove = "DELETE FROM sample_hours h USING unnest(@ids, @days) AS k(id, day) WHERE h.series_id = k.id AND h.day = k.day";
            await conn.ExecuteAsync(new CommandDefinition(remove,
                new { ids = empty.Select(i => ids[i]).ToArray(), days = empty.Select(i => days[i]).ToArray() }, tx, cancellationToken: ct, commandTimeout: 0));
        }
        await tx.CommitAsync(ct);
        return keys.Count;
    }

    /// <summary>
    /// Writes the hours of one stored rollup row that fall inside [<paramref name="fromTicks"/>, + hours) into
    /// <paramref name="series"/>: its means and maxima as stored (NaN where the hour had no sample), its ignored counts added.
    /// </summary>
    public static void CopyHours(HourlyAggregates series, long fromTicks, DateTime day, ReadOnlySpan<byte> mean, ReadOnlySpan<byte> max, ReadOnlySpan<byte> ignored)
    {
        var first = (int)((day.Ticks - fromTicks) / Hour.Ticks);
        for (var k = 0; k < HoursPerDay; k++)
        {
            var h = first + k;
            if ((uint)h >= (uint)series.Mean.Length)
            {
                continue;
            }
            series.Mean[h] = BinaryPrimitives.ReadDoubleLittleEndian(mean[(k * sizeof(double))..]);
            series.Max[h] = BinaryPrimitives.ReadDoubleLittleEndian(max[(k * sizeof(double))..]);
            if (!ignored.IsEmpty)
            {
                series.Ignored += BinaryPrimitives.ReadInt32LittleEndian(ignored[(k * sizeof(int))..]);
            }
        }
    }

    /// <summary>One day's 24 hours as the refresh computes them: NaN (and no ignored count) where an hour has no block.</summary>
    sealed class DayAggregates
    {
        readonly double[] _mean = new double[HoursPerDay];
        readonly double[] _max = new double[HoursPerDay];
        readonly int[] _ignored = new int[HoursPerDay];
        readonly bool[] _set = new bool[HoursPerDay];

        public static DayAggregates Empty()
        {
            var day = new DayAggregates();
            Array.Fill(day._mean, double.NaN);
            Array.Fill(day._max, double.NaN);
            return day;
        }

        public static DayAggregates FromStored(byte[] mean, byte[] max, byte[]? ignored)
        {
            var day = new DayAggregates();
            for (var k = 0; k < HoursPerDay; k++)
            {
                day._mean[k] = BinaryPrimitives.ReadDoubleLittleEndian(mean.AsSpan(k * sizeof(double)));
                day._max[k] = BinaryPrimitives.ReadDoubleLittleEndian(max.AsSpan(k * sizeof(double)));
                day._ignored[k] = ignored is null ? 0 : BinaryPrimitives.ReadInt32LittleEndian(ignored.AsSpan(k * sizeof(int)));
            }
            return day;
        }

        /// <summary>
        /// Hour <paramref name="k"/> from its block's values, as HourlyHistory.AddHour aggregates them: the mean (summed in the
        /// block's time order) and max of the values within SampleRules.AggregateLimit; the others are counted.
        /// </summary>
        public void SetHour(int k, ReadOnlySpan<double> values)
        {
            var (mean, max, ignored) = HourlyHistory.Aggregate(values);
            _mean[k] = mean;
            _max[k] = max;
            _ignored[k] = ignored;
            _set[k] = true;
        }

        /// <summary>This stored day with the hours <paramref name="fresh"/> computed from samples put over it.</summary>
        public DayAggregates OverwrittenBy(DayAggregates fresh)
        {
            for (var k = 0; k < HoursPerDay; k++)
            {
                if (fresh._set[k])
                {
                    (_mean[k], _max[k], _ignored[k]) = (fresh._mean[k], fresh._max[k], fresh._ignored[k]);
                }
            }
            return this;
        }

        public byte[] MeanBytes() => Bytes(_mean);

        public byte[] MaxBytes() => Bytes(_max);

        public byte[]? IgnoredBytes()
        {
            if (Array.TrueForAll(_ignored, c => c == 0))
            {
                return null;
            }
            var bytes = new byte[HoursPerDay * sizeof(int)];
            for (var k = 0; k < HoursPerDay; k++)
            {
                BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(k * sizeof(int)), _ignored[k]);
            }
            return bytes;
        }

        static byte[] Bytes(double[] values)
        {
            var bytes = new byte[ValuesBytes];
            for (var k = 0; k < HoursPerDay; k++)
            {
                BinaryPrimitives.WriteDoubleLittleEndian(bytes.AsSpan(k * sizeof(double)), values[k]);
            }
            return bytes;
        }
    }
}

/// <summary>
/// The recurring refresh of stale hourly rollups, every five minutes on any instance (one at a time: HourlyRollups'
/// advisory lock), so that training and the planner read rollups rather than samples. Readers are right without it, only
/// slower. Five minutes, not one: a day is recomputed whole (its 24 blocks), so a fleet pushing every minute would have
/// every series' current day recomputed every minute; the marks of five pushes are one recompute.
/// </summary>
public sealed class HourlyRollupRefresh(
    NpgsqlDataSource db, Microsoft.Extensions.Options.IOptions<RetentionOptions> retention, Microsoft.Extensions.Options.IOptions<Training.TrainingOptions> training,
    TimeProvider clock, ILogger<HourlyRollupRefresh> logger)
{
    public const string RecurringId = "hourly-rollups";

    public static void Schedule(IRecurringJobManager manager) =>
        manager.AddOrUpdate<HourlyRollupRefresh>(RecurringId, Jobs.JobQueues.Default, j => j.RunAsync(CancellationToken.None), "*/5 * * * *",
            new RecurringJobOptions { TimeZone = TimeZoneInfo.Utc, MisfireHandling = MisfireHandlingMode.Relaxed });

    [System.ComponentModel.DisplayName("Hourly rollups refresh")]
    [AutomaticRetry(Attempts = 0)]
    public async Task<long> RunAsync(CancellationToken ct)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var days = await RefreshAsync(null, ct);
        if (days > 0)
        {
            logger.LogInformation("Hourly rollups: {Days} stale series-days refreshed in {Seconds:F1} s", days, System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
        return days;
    }

    /// <summary>Every stale day refreshed under the configured retention (see HourlyRollups.RefreshAsync); the running count to <paramref name="progress"/>.</summary>
    public Task<long> RefreshAsync(Action<long>? progress, CancellationToken ct) =>
        HourlyRollups.RefreshAsync(db, SampleRetention.RawKeptFrom(retention.Value.RawDays, training.Value.HistoryDays, clock.GetUtcNow()), ct, progress: progress);
}
