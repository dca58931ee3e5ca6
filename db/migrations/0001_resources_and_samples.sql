-- 0001: resources, their series (resource + metric) and load samples.
-- Applied once by the migration runner inside a transaction; guarded with IF NOT EXISTS so a
-- hand re-run on a database that already has it is harmless.

CREATE TABLE IF NOT EXISTS resources (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text        NOT NULL UNIQUE,
    kind        text        NOT NULL CHECK (kind IN ('service', 'job')),
    "group"     text        NOT NULL DEFAULT '',
    load_metric text        NOT NULL,
    policy      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS resources_group_kind ON resources ("group", kind, name);

-- One row per (resource, metric): samples reference it by a 4-byte id, which keeps the sample
-- rows and their primary-key index small (the bulk path writes millions of them).
CREATE TABLE IF NOT EXISTS series (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    resource_id integer NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    metric      text    NOT NULL,
    UNIQUE (resource_id, metric)
);

-- The primary key (series, ts) is the issue's (resource, metric, timestamp) through `series`, and
-- also serves "all samples of one series in a time range". No foreign key: a per-row check
-- would halve bulk ingestion; deleting a resource deletes its samples explicitly.
CREATE TABLE IF NOT EXISTS samples (
    series_id integer          NOT NULL,
    ts        timestamptz      NOT NULL,
    value     double precision NOT NULL,
    PRIMARY KEY (series_id, ts)
) PARTITION BY RANGE (ts);

-- Creates the monthly partitions covering [from_ts, to_ts]; idempotent and safe to call
-- concurrently (a lost race on CREATE is ignored).
CREATE OR REPLACE FUNCTION ensure_sample_partitions(from_ts timestamptz, to_ts timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    m       timestamptz := date_trunc('month', from_ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    created integer := 0;
    part    text;
BEGIN
    WHILE m <= to_ts LOOP
        part := 'samples_' || to_char(m AT TIME ZONE 'UTC', 'YYYYMM');
        IF to_regclass(part) IS NULL THEN
            BEGIN
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF samples FOR VALUES FROM (%L) TO (%L)',
                    part, m, (m AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC');
                created := created + 1;
            EXCEPTION WHEN duplicate_table THEN
                NULL;
            END;
        END IF;
        m := (m AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC';
    END LOOP;
    RETURN created;
END;
$$;
