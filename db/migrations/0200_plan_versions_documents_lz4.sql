-- 0200: plan versions' documents compressed with lz4 too (issue 16). A version's row is over the 2.6 KB toast target before
-- compression in about half of the runs' plans; after the three per-step arrays (lz4 since 0110) the toaster compresses the
-- next widest compressible columns, the requests and policy documents, which were still pglz: pglz_compress was about
-- 1.5% of PostgreSQL's CPU in a 100,000-resource `forecaster plan` (bench/README.md, branch `planio`). The stored
-- documents are the same; only newly written values use lz4 (older rows stay pglz, which every server reads). Applied once
-- by the migration runner inside a transaction; idempotent, so a hand re-run is harmless.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        ALTER TABLE plan_versions
            ALTER COLUMN policy SET COMPRESSION lz4,
            ALTER COLUMN requests SET COMPRESSION lz4,
            ALTER COLUMN notes SET COMPRESSION lz4;
    END IF;
END $$;
