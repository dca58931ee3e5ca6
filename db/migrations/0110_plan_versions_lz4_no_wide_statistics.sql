-- 0110: cheaper writes and statistics for plan versions (issue 16). Every planning run copies a version per resource.
-- (1) The three per-step arrays are compressed with lz4 instead of pglz where the server has it (PostgreSQL 14+ built
-- with lz4, as Debian's is): a row over the 2 KB threshold compresses them before it is stored, and pglz was the
-- costliest part of the copy's insert. On one cluster the backend CPU of a binary COPY of 100,000 versions was 2.45-2.58 s
-- with lz4 against 2.84-3.20 s with pglz, the table the same size (bench/README.md, branch `planspeed3`). Stored values are
-- recompressed only when written again: older rows stay pglz, which every server reads.
-- (2) No statistics on the wide columns nothing filters or joins by (the documents, arrays and packed steps): ANALYZE
-- sorted 30,000 sampled jsonb documents and arrays for them, and autovacuum analyzes this table after each tenth of growth
-- (after every fleet run while it is small). ANALYZE of 3.1 M versions took 0.42-0.51 CPU s instead of 1.59-1.76.
-- Applied once by the migration runner inside a transaction; every statement is idempotent, so a hand re-run is harmless.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        ALTER TABLE plan_versions
            ALTER COLUMN counts SET COMPRESSION lz4,
            ALTER COLUMN cpu_hours SET COMPRESSION lz4,
            ALTER COLUMN memory_hours SET COMPRESSION lz4;
    END IF;
END $$;

ALTER TABLE plan_versions
    ALTER COLUMN policy SET STATISTICS 0,
    ALTER COLUMN requests SET STATISTICS 0,
    ALTER COLUMN notes SET STATISTICS 0,
    ALTER COLUMN steps SET STATISTICS 0,
    ALTER COLUMN steps_packed SET STATISTICS 0,
    ALTER COLUMN counts SET STATISTICS 0,
    ALTER COLUMN cpu_hours SET STATISTICS 0,
    ALTER COLUMN memory_hours SET STATISTICS 0;
