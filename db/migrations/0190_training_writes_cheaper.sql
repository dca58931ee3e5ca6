-- 0190: what a training run costs PostgreSQL (issue 16, branch `pgpair`). Measured with pg_stat_statements during
-- bench/scale-out.sh (bench/README.md, session 10): besides the history read, the run's biggest statements are its copies
-- into model_versions and the lookups of its own versions.
-- (1) A shard's next batch skips the resources this run already wrote (NOT EXISTS on run_id and resource_id), and a run's
-- page (GET /api/v1/training-runs/{id}, polled while it trains) lists its failed versions. Both went through the index on
-- run_id alone, visiting every version the run had written so far: each batch and each poll cost more as the run grew. The
-- run's index now carries the resource too, and the failures have a partial index of their own (no entry for a version
-- that did not fail, so it costs the copy nothing).
-- (2) A version's parameters and upper tail are compressed with lz4 instead of pglz where the server has it (as 0110 did for
-- plan versions): a row over the 2 KB threshold compresses its largest values before it is stored. And no statistics on
-- those two documents, which nothing filters by, nor on the forecasts' arrays: autovacuum analyzes both tables after each
-- run while they are young, sorting the sampled documents and arrays for nothing.
-- Applied once by the migration runner inside a transaction; every statement is idempotent.
CREATE INDEX IF NOT EXISTS model_versions_by_run_resource ON model_versions (run_id, resource_id);
DROP INDEX IF EXISTS model_versions_by_run;
CREATE INDEX IF NOT EXISTS model_versions_failed_by_run ON model_versions (run_id) WHERE status = 'failed';

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        ALTER TABLE model_versions
            ALTER COLUMN parameters SET COMPRESSION lz4,
            ALTER COLUMN upper_tail SET COMPRESSION lz4;
    END IF;
END $$;

ALTER TABLE model_versions
    ALTER COLUMN parameters SET STATISTICS 0,
    ALTER COLUMN upper_tail SET STATISTICS 0;
ALTER TABLE series_forecasts
    ALTER COLUMN forecast SET STATISTICS 0,
    ALTER COLUMN lower SET STATISTICS 0,
    ALTER COLUMN upper SET STATISTICS 0;
