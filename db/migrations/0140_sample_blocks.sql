-- 0140: samples stored as blocks, one row per (series, UTC hour) holding that hour's points as two parallel arrays
-- (issue 11's backfill, issue 16's bytes per sample). One row per point cost a heap tuple, a primary-key entry and
-- ~108 bytes of WAL each: a 35-day backfill at step 300 is 30 M of them, and PostgreSQL's CPU for them was the
-- largest part of the round (bench/README.md, session 5). A block holds 12 points at step 300 and 60 at step 60
-- behind one tuple and one key.
--
-- The table keeps its name, its partitions (monthly, now on `hour`, so a block lies wholly inside its month as its
-- points did) and the functions of 0001 and 0020, which only name the table: partitions stay `samples_YYYYMM` and
-- retention still drops whole months. Semantics are the rows' semantics: a (series, ts) is stored at most once
-- (`ts` strictly increasing inside a block, every ts inside [hour, hour + 1 h)), and an upsert of a point overwrites it.
-- `sample_points` shows the points as rows (series_id, ts, value) for ad-hoc SQL and tests.
--
-- Upgrade: existing rows are grouped into blocks inside this migration's transaction (a temporary table in between,
-- so the intermediate copy writes no WAL); guarded so that a database already converted is left alone.

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'samples'::regclass AND attname = 'hour' AND NOT attisdropped) THEN
        RETURN;
    END IF;

    CREATE TEMP TABLE samples_as_blocks ON COMMIT DROP AS
    SELECT series_id, hour, array_agg(ts ORDER BY ts) AS ts, array_agg(value ORDER BY ts) AS vals
    FROM (SELECT series_id, date_bin('1 hour', ts, timestamptz '2000-01-01 00:00:00+00') AS hour, ts, value FROM samples) p
    GROUP BY series_id, hour;

    DROP TABLE samples;

    -- ts and vals: the hour's points in increasing time, as many of each. No foreign key, as before (0001).
    CREATE TABLE samples (
        series_id integer            NOT NULL,
        hour      timestamptz        NOT NULL,
        ts        timestamptz[]      NOT NULL,
        vals      double precision[] NOT NULL,
        PRIMARY KEY (series_id, hour)
    ) PARTITION BY RANGE (hour);

    PERFORM ensure_sample_partitions(min(hour), max(hour)) FROM samples_as_blocks HAVING count(*) > 0;
    INSERT INTO samples (series_id, hour, ts, vals)
    SELECT series_id, hour, ts, vals FROM samples_as_blocks ORDER BY series_id, hour;
END;
$$;

-- A block's points with new ones merged in: a new point replaces a stored one at the same ts (an upsert), the result
-- in increasing time. Used by every merge (ON CONFLICT ... DO UPDATE) and by the points view's triggers.
CREATE OR REPLACE FUNCTION sample_block_merge(old_ts timestamptz[], old_vals double precision[], new_ts timestamptz[], new_vals double precision[],
    OUT ts timestamptz[], OUT vals double precision[])
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_agg(t ORDER BY t), array_agg(v ORDER BY t)
    FROM (
        SELECT DISTINCT ON (t) t, v
        FROM (
            SELECT n.t, n.v, 1 AS newer FROM unnest(new_ts, new_vals) AS n(t, v)
            UNION ALL
            SELECT o.t, o.v, 0 FROM unnest(old_ts, old_vals) AS o(t, v)
        ) x
        ORDER BY t, newer DESC
    ) y
$$;

-- True when merging the new points would change the block: a retry of stored points writes nothing, as the rows'
-- `WHERE samples.value IS DISTINCT FROM EXCLUDED.value` did. Identical arrays, the common retry, answer first.
CREATE OR REPLACE FUNCTION sample_block_changes(old_ts timestamptz[], old_vals double precision[], new_ts timestamptz[], new_vals double precision[])
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT NOT (old_ts = new_ts AND old_vals = new_vals) AND EXISTS (
        SELECT 1 FROM unnest(new_ts, new_vals) AS n(t, v)
        WHERE NOT EXISTS (SELECT 1 FROM unnest(old_ts, old_vals) AS o(t, v) WHERE o.t = n.t AND o.v IS NOT DISTINCT FROM n.v))
$$;

-- The stored points as rows. Readers that care for speed bound `hour` as well (the key); this view is for ad-hoc SQL,
-- the benchmarks' counts and tests. Its triggers write single points through the same merge as the service.
CREATE OR REPLACE VIEW sample_points AS
SELECT b.series_id, p.ts, p.value
FROM samples b CROSS JOIN LATERAL unnest(b.ts, b.vals) AS p(ts, value);

CREATE OR REPLACE FUNCTION sample_points_write() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    h timestamptz;
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        h := date_bin('1 hour', OLD.ts, timestamptz '2000-01-01 00:00:00+00');
        UPDATE samples b SET ts = k.ts, vals = k.vals
        FROM (SELECT array_agg(p.t ORDER BY p.t) AS ts, array_agg(p.v ORDER BY p.t) AS vals
              FROM samples s CROSS JOIN LATERAL unnest(s.ts, s.vals) AS p(t, v)
              WHERE s.series_id = OLD.series_id AND s.hour = h AND p.t <> OLD.ts) k
        WHERE b.series_id = OLD.series_id AND b.hour = h AND k.ts IS NOT NULL;
        DELETE FROM samples b WHERE b.series_id = OLD.series_id AND b.hour = h AND b.ts = ARRAY[OLD.ts];
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
    END IF;
    h := date_bin('1 hour', NEW.ts, timestamptz '2000-01-01 00:00:00+00');
    PERFORM ensure_sample_partitions(h, h);
    INSERT INTO samples AS s (series_id, hour, ts, vals) VALUES (NEW.series_id, h, ARRAY[NEW.ts], ARRAY[NEW.value])
    ON CONFLICT (series_id, hour) DO UPDATE SET (ts, vals) = (SELECT m.ts, m.vals FROM sample_block_merge(s.ts, s.vals, EXCLUDED.ts, EXCLUDED.vals) m);
    RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS sample_points_write ON sample_points;
CREATE TRIGGER sample_points_write INSTEAD OF INSERT OR UPDATE OR DELETE ON sample_points FOR EACH ROW EXECUTE FUNCTION sample_points_write();
