-- 0170: hourly rollups, what training and the planner's fallbacks read (issue 16). One row per (series, UTC day) holds
-- the day's 24 hourly means and maxima as bytes, so that a 35-day history is 35 rows where it was 840 blocks: PostgreSQL
-- pays per row and per field it sends (an array's elements are sent one by one), and on 2.52 M hourly blocks reading the
-- rollups instead cost its backend about a seventh of the CPU (bench/README.md, session 9). The rollups also outlive raw
-- samples: `Forecaster:Retention:HourlyDays` keeps them longer than `RawDays` keeps the samples.
--
-- Layout (src/Api/Samples/HourlyRollups.cs writes and reads it): `mean` and `max` are 24 IEEE 754 binary64 values each,
-- little-endian, hour 0 first, NaN where the hour holds no sample within the aggregate limit; `ignored` is 24 little-endian
-- int32 counts of the samples left out of the hour (beyond the limit, or not numbers), NULL when there are none.
--
-- Writers do not compute rollups: every write of samples adds a row to `sample_hours_stale` for each (series, day) it may
-- have changed, in its own transaction (a plain INSERT: no key, so writers never wait on each other for it), and the
-- refresh (HourlyRollups.RefreshAsync, a recurring job and the end of `forecaster import`) recomputes those days from
-- the samples and deletes their marks in one transaction. Readers take a stale day from the samples and every other day
-- from its rollup, in one statement, so they see the same hours whether or not the refresh has run.

CREATE TABLE IF NOT EXISTS sample_hours (
    series_id integer     NOT NULL,
    day       timestamptz NOT NULL,
    mean      bytea       NOT NULL,
    max       bytea       NOT NULL,
    ignored   bytea,
    PRIMARY KEY (series_id, day)
) PARTITION BY RANGE (day);

-- Duplicates allowed on purpose (see above); the refresh deletes every mark of a day it recomputes.
CREATE TABLE IF NOT EXISTS sample_hours_stale (
    series_id integer     NOT NULL,
    day       timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS sample_hours_stale_key ON sample_hours_stale (series_id, day);

-- Each month's partition of `samples` (0001) now comes with the same month of `sample_hours`, so every writer that
-- ensures its samples' partitions has the rollups' too.
CREATE OR REPLACE FUNCTION ensure_sample_partitions(from_ts timestamptz, to_ts timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    m       timestamptz := date_trunc('month', from_ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    created integer := 0;
    parent  text;
    part    text;
BEGIN
    WHILE m <= to_ts LOOP
        FOREACH parent IN ARRAY ARRAY['samples', 'sample_hours'] LOOP
            part := parent || '_' || to_char(m AT TIME ZONE 'UTC', 'YYYYMM');
            IF to_regclass(part) IS NULL THEN
                BEGIN
                    EXECUTE format(
                        'CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                        part, parent, m, (m AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC');
                    IF parent = 'samples' THEN
                        created := created + 1;
                    END IF;
                EXCEPTION WHEN duplicate_table THEN
                    NULL;
                END;
            END IF;
        END LOOP;
        m := (m AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC';
    END LOOP;
    RETURN created;
END;
$$;

-- Drops the partitions of `sample_hours` wholly before `cutoff` (the rollups' retention), and the stale marks of those
-- days. A month's rollups are only dropped, never emptied: a late sample of it recreates the partition through
-- ensure_sample_partitions.
CREATE OR REPLACE FUNCTION drop_sample_hour_partitions_before(cutoff timestamptz)
RETURNS TABLE (partition text, upper_bound timestamptz, action text) LANGUAGE plpgsql AS $$
DECLARE
    part  record;
    upper timestamptz;
BEGIN
    FOR part IN
        SELECT c.oid::regclass::text AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'sample_hours'::regclass
        ORDER BY 1
    LOOP
        upper := substring(part.bound FROM 'TO \(''([^'']+)''\)')::timestamptz;
        CONTINUE WHEN upper IS NULL OR upper > cutoff;
        EXECUTE format('DROP TABLE %s', part.name);
        DELETE FROM sample_hours_stale WHERE day < upper;
        partition := part.name;
        upper_bound := upper;
        action := 'dropped';
        RETURN NEXT;
    END LOOP;
END;
$$;

-- Points written through the view (ad-hoc SQL, tests) mark their days: a second INSTEAD OF trigger, after 0140's
-- (triggers on one event fire in name order), so the merge itself stays 0140's.
CREATE OR REPLACE FUNCTION sample_points_mark_stale() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        INSERT INTO sample_hours_stale VALUES (OLD.series_id, date_bin('1 day', OLD.ts, timestamptz '2000-01-01 00:00:00+00'));
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO sample_hours_stale VALUES (NEW.series_id, date_bin('1 day', NEW.ts, timestamptz '2000-01-01 00:00:00+00'));
        RETURN NEW;
    END IF;
    RETURN OLD;
END;
$$;
DROP TRIGGER IF EXISTS sample_points_zz_mark_stale ON sample_points;
CREATE TRIGGER sample_points_zz_mark_stale INSTEAD OF INSERT OR UPDATE OR DELETE ON sample_points
    FOR EACH ROW EXECUTE FUNCTION sample_points_mark_stale();

-- Blocks deleted by any statement (a resource's deletion, ad-hoc SQL) mark their days, so that no rollup keeps hours
-- whose samples are gone. Inserts and updates are marked by their writers (SampleImport), which know their days without
-- a transition table's copy of every row. Dropping or emptying partitions (retention) fires nothing: the rollups are
-- meant to outlive those samples.
CREATE OR REPLACE FUNCTION samples_mark_deleted_stale() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sample_hours_stale
    SELECT DISTINCT series_id, date_bin('1 day', hour, timestamptz '2000-01-01 00:00:00+00') FROM deleted_blocks;
    RETURN NULL;
END;
$$;
DROP TRIGGER IF EXISTS samples_mark_deleted_stale ON samples;
CREATE TRIGGER samples_mark_deleted_stale AFTER DELETE ON samples REFERENCING OLD TABLE AS deleted_blocks
    FOR EACH STATEMENT EXECUTE FUNCTION samples_mark_deleted_stale();

-- Upgrade: every month already stored gets its rollup partition, and every stored day is marked stale, so the first
-- refresh computes them (readers take them from the samples until then).
DO $$
DECLARE
    part  record;
    lower timestamptz;
BEGIN
    FOR part IN
        SELECT pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'samples'::regclass
    LOOP
        lower := substring(part.bound FROM 'FROM \(''([^'']+)''\)')::timestamptz;
        CONTINUE WHEN lower IS NULL;
        PERFORM ensure_sample_partitions(lower, lower);
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM sample_hours) AND NOT EXISTS (SELECT 1 FROM sample_hours_stale) THEN
        INSERT INTO sample_hours_stale
        SELECT DISTINCT series_id, date_bin('1 day', hour, timestamptz '2000-01-01 00:00:00+00') FROM samples;
    END IF;
END;
$$;
