using System.Buffers.Binary;
using Hangfire;
using Dapper;
using Npgsql;
using static Forecaster.Planner.Hours;

namespace Forecaster.Api.Samples;

/// <summary>
/// The hourly rollups of migration 0170: one `sample_hours` row per (series, UTC day) with the day's 24 hourly means,
/// maxima and ignored counts as bytes, recomputed from the samples for the hours writers marked stale (0210: a mark names
/// a day and the hours a write touched in it). This class owns the table: its layout, the marks writers add, and the refresh.
/// </summary>
/// <remarks>
/// Why the refresh is correct with concurrent writers (READ COMMITTED): a writer commits its samples and its marks
/// together, and a refresh commits the rollups it computed and the deletion of the marks it read together. The refresh
/// deletes marks first and reads the samples in a later statement, whose snapshot sees every writer whose mark it
/// deleted (a deleted mark was committed before the deletion); a writer still open then has a mark the deletion could
/// not see, which stays for the next refresh. Refreshes run one at a time (an advisory lock per batch), so two never
/// write the same day from different snapshots.
/// <para>
/// Why recomputing only the marked hours is enough: outside the hours of its marks a day's rollup row, or its absence,
/// equals the samples. Every write of samples marks the hours it wrote (or, for a deletion, the hours it emptied) in the
/// transaction that writes them, and the refresh replaces the hours of the marks it deleted by what the samples hold in its
/// later snapshot; the other hours of the row are left as the last refresh wrote them (it held the lock, and committed
/// before this one took it, so the row read here is its row). Recomputing more hours than marked is always right (an hour
/// is what the snapshot's samples say), so the marks of a day are taken as the one span from the first marked hour to the
/// last. A mark without hours (before 0210) is the whole day, which needs no stored row.
/// </para>
/// </remarks>
public static class HourlyRollups
{
    public const int HoursPerDay = 24;

    /// <summary>Bytes of `mean` and of `max`: 24 binary64 values.</summary>
    public const int ValuesBytes = HoursPerDay * sizeof(double);

    /// <summary>The UTC midnight starting the day of <paramref name="utc"/>.</summary>
    public static DateTime Day(DateTime utc) => new(utc.Ticks - utc.Ticks % TimeSpan.TicksPerDay, DateTimeKind.Utc);

    /// <summary>The UTC hour of the day (0-23) of <paramref name="utc"/>.</summary>
    static short HourOfDay(DateTime utc) => (short)(utc.Ticks % TimeSpan.TicksPerDay / TimeSpan.TicksPerHour);

    /// <summary>
    /// Marks the hours from <paramref name="firsts"/>[i] to <paramref name="lasts"/>[i] of series <paramref name="seriesIds"/>[i]
    /// stale, in the writer's transaction: what a write of samples in those ranges must do before it commits. One mark per
    /// day: the first from the hour of the first sample, the inner days whole, the last to the hour of the last sample (so an
    /// import of 35 days adds 35 marks, and a push of one point a mark of one hour). A plain INSERT (no key to conflict on),
    /// so it never waits for another writer.
    /// </summary>
    public static async Task MarkStaleAsync(NpgsqlConnection conn, NpgsqlTransaction? tx, int[] seriesIds, DateTime[] firsts, DateTime[] lasts, CancellationToken ct)
    {
        if (seriesIds.Length == 0)
        {
            return;
        }
        const string mark = """
            INSERT INTO sample_hours_stale (series_id, day, first_hour, last_hour)
            SELECT k.id, d.day,
                   CASE WHEN d.day = k.first_day THEN k.first_hour ELSE 0 END,
                   CASE WHEN d.day = k.last_day THEN k.last_hour ELSE 23 END
            FROM unnest(@seriesIds, @firstDays, @firstHours, @lastDays, @lastHours) AS k(id, first_day, first_hour, last_day, last_hour)
            CROSS JOIN LATERAL generate_series(k.first_day, k.last_day, interval '24 hours') AS d(day)
            """;
        await conn.ExecuteAsync(new CommandDefinition(mark, new
        {
            seriesIds,
            firstDays = firsts.Select(Day).ToArray(),
            firstHours = firsts.Select(HourOfDay).ToArray(),
            lastDays = lasts.Select(Day).ToArray(),
            lastHours = lasts.Select(HourOfDay).ToArray(),
        }, tx, cancellationToken: ct, commandTimeout: 0));
    }

    /// <summary>
    /// Recomputes every stale hour from the samples, <paramref name="batch"/> marks per transaction, until no mark is left
    /// (or another instance holds the refresh; it finishes the work). Days before <paramref name="keepBefore"/> (older than
    /// raw retention keeps samples: their month may have been emptied since) keep the hours their samples no longer show;
    /// in younger days a recomputed hour is exactly its samples (a day left without any loses its row). Returns the days
    /// refreshed; <paramref name="progress"/> hears the running count after each batch.
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

    /// <summary>A stale day and the span of its marked hours (first to last, 0-23).</summary>
    readonly record struct StaleDay(int SeriesId, DateTime Day, int First, int Last)
    {
        public bool Whole => First == 0 && Last == HoursPerDay - 1;

        public DateTime From => Day.AddHours(First);

        public DateTime To => Day.AddHours(Last + 1);
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
        // No JIT compilation of this batch's statements: their row estimates put them above jit_above_cost, and compiling
        // cost the backend more than running them (the blocks' read of 10,000 series: 235 ms of JIT on 285 ms of work,
        // bench/README.md, session 10).
        await conn.ExecuteAsync(new CommandDefinition("SET LOCAL jit = off", transaction: tx, cancellationToken: ct));
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
        // A mark without hours (written before 0210) is the whole day.
        const string take = """
            DELETE FROM sample_hours_stale WHERE (series_id, day) <= (@SeriesId, @Day)
            RETURNING series_id, day, coalesce(first_hour, 0)::int AS first_hour, coalesce(last_hour, 23)::int AS last_hour
            """;
        var spans = new Dictionary<(int, DateTime), (int First, int Last)>();
        foreach (var (seriesId, markDay, first, lastHour) in await conn.QueryAsync<(int, DateTime, int, int)>(new CommandDefinition(take,
            new { through.SeriesId, Day = DateTime.SpecifyKind(through.Day, DateTimeKind.Utc) }, tx, cancellationToken: ct)))
        {
            var key = (seriesId, DateTime.SpecifyKind(markDay, DateTimeKind.Utc));
            spans[key] = spans.TryGetValue(key, out var span) ? (Math.Min(span.First, first), Math.Max(span.Last, lastHour)) : (first, lastHour);
        }
        var keys = spans.Select(s => new StaleDay(s.Key.Item1, s.Key.Item2, s.Value.First, s.Value.Last))
            .OrderBy(k => k.SeriesId).ThenBy(k => k.Day).ToList();
        var index = new Dictionary<(int, DateTime), int>(keys.Count);
        for (var i = 0; i < keys.Count; i++)
        {
            index[(keys[i].SeriesId, keys[i].Day)] = i;
        }

        // Consecutive marked hours of a series read as one range (an import's days are all consecutive, its inner days
        // whole): one index range scan each, where a scan per day cost PostgreSQL about three times the CPU per block.
        var (rangeIds, rangeFroms, rangeTos) = (new List<int>(), new List<DateTime>(), new List<DateTime>());
        foreach (var k in keys)
        {
            if (rangeIds.Count > 0 && rangeIds[^1] == k.SeriesId && rangeTos[^1] == k.From)
            {
                rangeTos[^1] = k.To;
                continue;
            }
            rangeIds.Add(k.SeriesId);
            rangeFroms.Add(k.From);
            rangeTos.Add(k.To);
        }

        // A new statement, so a new snapshot: it sees every writer whose marks were just deleted (see the class remarks).
        var computed = new DayAggregates?[keys.Count];
        const string blocks = """
            SELECT s.series_id, s.hour, s.value, s.vals
            FROM unnest(@ids, @froms, @tos) AS k(id, from_hour, to_hour)
            JOIN samples s ON s.series_id = k.id AND s.hour >= k.from_hour AND s.hour < k.to_hour
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

        // The stored rows the recomputed hours go into: of days marked in part (their other hours stay as stored), and of
        // days older than raw retention (an hour without samples keeps what its rollup says).
        var keep = keepBefore?.UtcDateTime;
        var stored = new StoredDay?[keys.Count];
        var partial = keys.Where(k => !k.Whole || k.Day < keep).ToList();
        if (partial.Count > 0)
        {
            // One index probe per day: the LIMIT keeps the subquery a nested loop's inner side. As a plain join the planner
            // took a parallel scan of the month's rollups and two sorts when the month was young (420 ms per 10,000 days
            // against 66-98 ms probing; session 10).
            const string rows = """
                SELECT h.series_id, h.day, h.mean, h.max, h.ignored
                FROM unnest(@ids, @days) AS k(id, day)
                CROSS JOIN LATERAL (SELECT * FROM sample_hours h WHERE h.series_id = k.id AND h.day = k.day LIMIT 1) h
                """;
            foreach (var row in await conn.QueryAsync<(int SeriesId, DateTime Day, byte[] Mean, byte[] Max, byte[]? Ignored)>(new CommandDefinition(rows, new
            {
                ids = partial.Select(k => k.SeriesId).ToArray(),
                days = partial.Select(k => k.Day).ToArray(),
            }, tx, cancellationToken: ct, commandTimeout: 0)))
            {
                stored[index[(row.SeriesId, DateTime.SpecifyKind(row.Day, DateTimeKind.Utc))]] = new StoredDay(row.Mean, row.Max, row.Ignored);
            }
        }

        var (writeIds, writeDays, means, maxima, ignored) = (new List<int>(), new List<DateTime>(), new List<byte[]>(), new List<byte[]>(), new List<byte[]?>());
        var (emptyIds, emptyDays) = (new List<int>(), new List<DateTime>());
        for (var i = 0; i < keys.Count; i++)
        {
            var k = keys[i];
            var day = computed[i];
            if (stored[i] is { } row)
            {
                var kept = DayAggregates.FromStored(row.Mean, row.Max, row.Ignored);
                if (!(k.Day < keep))
                {
                    // The marked hours are what the samples say now: those without a block are empty.
                    kept.Clear(k.First, k.Last);
                }
                day = day is null ? kept : kept.OverwrittenBy(day);
            }
            if (day is null || !day.AnyHour)
            {
                emptyIds.Add(k.SeriesId);
                emptyDays.Add(k.Day);
                continue;
            }
            var (mean, max, counts) = (day.MeanBytes(), day.MaxBytes(), day.IgnoredBytes());
            if (stored[i] is { } same && mean.AsSpan().SequenceEqual(same.Mean) && max.AsSpan().SequenceEqual(same.Max)
                && (counts ?? []).AsSpan().SequenceEqual(same.Ignored ?? []))
            {
                // Unchanged (a pull writing again the points it wrote last time): no new row version.
                continue;
            }
            writeIds.Add(k.SeriesId);
            writeDays.Add(k.Day);
            means.Add(mean);
            maxima.Add(max);
            ignored.Add(counts);
        }
        if (writeIds.Count > 0)
        {
            const string upsert = """
                INSERT INTO sample_hours AS h (series_id, day, mean, max, ignored)
                SELECT * FROM unnest(@ids, @days, @means, @maxima, @ignored)
                ON CONFLICT (series_id, day) DO UPDATE SET mean = EXCLUDED.mean, max = EXCLUDED.max, ignored = EXCLUDED.ignored
                """;
            await conn.ExecuteAsync(new CommandDefinition(upsert, new
            {
                ids = writeIds.ToArray(),
                days = writeDays.ToArray(),
                means = means.ToArray(),
                maxima = maxima.ToArray(),
                ignored = ignored.ToArray(),
            }, tx, cancellationToken: ct, commandTimeout: 0));
        }
        if (emptyIds.Count > 0)
        {
            const string remove = "DELETE FROM sample_hours h USING unnest(@ids, @days) AS k(id, day) WHERE h.series_id = k.id AND h.day = k.day";
            await conn.ExecuteAsync(new CommandDefinition(remove,
                new { ids = emptyIds.ToArray(), days = emptyDays.ToArray() }, tx, cancellationToken: ct, commandTimeout: 0));
        }
        await tx.CommitAsync(ct);
        return keys.Count;
    }

    /// <summary>A rollup row as stored.</summary>
    sealed record StoredDay(byte[] Mean, byte[] Max, byte[]? Ignored);

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
                // A block always yields a mean or an ignored count (an emptied block is deleted, 0140), so an hour with
                // neither had no block.
                day._set[k] = !double.IsNaN(day._mean[k]) || day._ignored[k] > 0;
            }
            return day;
        }

        /// <summary>Hours <paramref name="first"/> to <paramref name="last"/> emptied, as if they had no block.</summary>
        public void Clear(int first, int last)
        {
            for (var k = first; k <= last; k++)
            {
                (_mean[k], _max[k], _ignored[k], _set[k]) = (double.NaN, double.NaN, 0, false);
            }
        }

        /// <summary>Whether any hour has a block (else the day has no row).</summary>
        public bool AnyHour => Array.IndexOf(_set, true) >= 0;

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
                    (_mean[k], _max[k], _ignored[k], _set[k]) = (fresh._mean[k], fresh._max[k], fresh._ignored[k], true);
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
/// slower. Five minutes, not one: a fleet pushing every minute has every series' current hour marked every minute, and
/// each refresh reads and writes the series' rollup row of the day besides that hour's block; the marks of five pushes
/// are one recompute.
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
