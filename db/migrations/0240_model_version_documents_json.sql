-- 0240: a model version's parameters and upper tail as json, not jsonb (issue 16). Training writes one version per series
-- per run and nothing queries inside either document: the API never reads `parameters` (operators may, with the same
-- operators: json has -> and ->>), and planning reads `upper_tail` whole, as text. jsonb parsed every number of both
-- documents into a numeric on the way in (about 90 per row) and rendered them back on the way out; json only checks the
-- syntax and keeps the text. Inserting 20,000 versions cost PostgreSQL 0.79 s against 1.14 s (bench/README.md, session 13),
-- and the planner's read of 20,000 upper tails no longer renders them.
-- Applied once by the migration runner inside a transaction; idempotent (only a jsonb column is converted). The type change
-- rewrites the table and resets the columns' compression (PostgreSQL 15 drops 0190's lz4), so 0190's settings are set again
-- after it; its statistics targets survived on 15 and are set again for servers where they may not.
DO $$
BEGIN
    IF (SELECT atttypid FROM pg_attribute WHERE attrelid = 'model_versions'::regclass AND attname = 'parameters') = 'jsonb'::regtype THEN
        ALTER TABLE model_versions ALTER COLUMN parameters TYPE json USING parameters::json;
    END IF;
    IF (SELECT atttypid FROM pg_attribute WHERE attrelid = 'model_versions'::regclass AND attname = 'upper_tail') = 'jsonb'::regtype THEN
        ALTER TABLE model_versions ALTER COLUMN upper_tail TYPE json USING upper_tail::json;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        ALTER TABLE model_versions
            ALTER COLUMN parameters SET COMPRESSION lz4,
            ALTER COLUMN upper_tail SET COMPRESSION lz4;
    END IF;
END $$;

ALTER TABLE model_versions
    ALTER COLUMN parameters SET STATISTICS 0,
    ALTER COLUMN upper_tail SET STATISTICS 0;
