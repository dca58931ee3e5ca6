-- 0140: samples stored as blocks, one row per (series, UTC hour) holding that hour's points as two parallel arrays
-- (issue 11's backfill, issue 16's bytes per sample), or, for an hour holding one point at the hour itself (hourly data),
-- that point's value alone. One row per point cost a heap tuple, a primary-key entry and
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
-- The one-point form: a block whose only point is at `hour` stores `value` and leaves `ts` and `vals` NULL. A block of one
-- point written as two one-element arrays cost 142 bytes against a point row's 92 (two array headers of ~24 bytes each)
-- and two array_recv calls in COPY; the one-point row is a point row's size (a 24-byte header with the null bitmap,
-- series_id, hour, value: 48 bytes) and COPY reads a float8 and two NULLs. Exactly one form per row: `value` is set
-- if and only if `ts` and `vals` are NULL, and every writer keeps it so (a block of one point at its hour is always
-- written in the one-point form). Readers take both forms as unnest(coalesce(ts, ARRAY[hour]), coalesce(vals, ARRAY[value])).
--
-- Upgrade: existing rows are grouped into blocks inside this migration's transaction (a temporary table in between,
-- so the intermediate copy writes no WAL); guarded so that a database already converted is left alone.

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'samples'::regclass AND attname = 'hour' AND NOT attisdropped) THEN
        RETURN;
    END IF;

    -- Hours of one point at the hour itself take the one-point form.
    CREATE TEMP TABLE samples_as_blocks ON COMMIT DROP AS
    SELECT series_id, hour, CASE WHEN one THEN vals[1] END AS value, CASE WHEN NOT one THEN ts END AS ts, CASE WHEN NOT one THEN vals END AS vals
    FROM (
        SELECT series_id, hour, array_agg(ts ORDER BY ts) AS ts, array_agg(value ORDER BY ts) AS vals, count(*) = 1 AND min(ts) = hour AS one
        FROM (SELECT series_id, date_bin('1 hour', ts, timestamptz '2000-01-01 00:00:00+00') AS hour, ts, value FROM samples) p
        GROUP BY series_id, hour
    ) b;

    DROP TABLE samples;

    -- ts and vals: the hour's points in increasing time, as many of each; or value alone (the one-point form). No
    -- foreign key, as before (0001). No CHECK of the forms either: it would be evaluated for every row of every
    -- write (hourly pushes are a row per point), and the writers are the service's own (SampleBlocks).
    CREATE TABLE samples (
        series_id integer            NOT NULL,
        hour      timestamptz        NOT NULL,
        value     double precision,
        ts        timestamptz[],
        vals      double precision[],
        PRIMARY KEY (series_id, hour)
    ) PARTITION BY RANGE (hour);

    PERFORM ensure_sample_partitions(min(hour), max(hour)) FROM samples_as_blocks HAVING count(*) > 0;
    INSERT INTO samples (series_id, hour, value, ts, vals)
    SELECT series_id, hour, value, ts, vals FROM samples_as_blocks ORDER BY series_id, hour;
END;
$$;

-- A block's points with new ones merged in: a new point replaces a stored one at the same ts (an upsert), the result
-- in increasing time. Used by every merge (ON CONFLICT ... DO UPDATE) and by the points view's triggers, on the points
-- of either form (coalesce(ts, ARRAY[hour]), coalesce(vals, ARRAY[value])).
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
FROM samples b CROSS JOIN LATERAL unnest(coalesce(b.ts, ARRAY[b.hour]), coalesce(b.vals, ARRAY[b.value])) AS p(ts, value);

-- A block's points (increasing time) in the form they are stored in: the one-point form when they are one point at the
-- hour itself, the arrays otherwise.
CREATE OR REPLACE FUNCTION sample_block_form(block_hour timestamptz, block_ts timestamptz[], block_vals double precision[],
    OUT value double precision, OUT ts timestamptz[], OUT vals double precision[])
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN one THEN $3[1] END, CASE WHEN NOT one THEN $2 END, CASE WHEN NOT one THEN $3 END
    FROM (SELECT cardinality($2) = 1 AND $2[1] = $1 AS one) x
$$;

CREATE OR REPLACE FUNCTION sample_points_write() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    h timestamptz;
    kt timestamptz[];
    kv double precision[];
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        h := date_bin('1 hour', OLD.ts, timestamptz '2000-01-01 00:00:00+00');
        SELECT array_agg(p.t ORDER BY p.t), array_agg(p.v ORDER BY p.t) INTO kt, kv
        FROM samples s CROSS JOIN LATERAL unnest(coalesce(s.ts, ARRAY[s.hour]), coalesce(s.vals, ARRAY[s.value])) AS p(t, v)
        WHERE s.series_id = OLD.series_id AND s.hour = h AND p.t <> OLD.ts;
        IF kt IS NULL THEN
            DELETE FROM samples b WHERE b.series_id = OLD.series_id AND b.hour = h;
        ELSE
            UPDATE samples b SET (value, ts, vals) = (SELECT f.value, f.ts, f.vals FROM sample_block_form(h, kt, kv) f)
            WHERE b.series_id = OLD.series_id AND b.hour = h;
        END IF;
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
    END IF;
    h := date_bin('1 hour', NEW.ts, timestamptz '2000-01-01 00:00:00+00');
    PERFORM ensure_sample_partitions(h, h);
    INSERT INTO samples AS s (series_id, hour, value, ts, vals)
    SELECT NEW.series_id, h, f.value, f.ts, f.vals FROM sample_block_form(h, ARRAY[NEW.ts], ARRAY[NEW.value]) f
    ON CONFLICT (series_id, hour) DO UPDATE SET (value, ts, vals) = (
        SELECT f.value, f.ts, f.vals
        FROM sample_block_merge(coalesce(s.ts, ARRAY[s.hour]), coalesce(s.vals, ARRAY[s.value]), ARRAY[NEW.ts], ARRAY[NEW.value]) m
        CROSS JOIN LATERAL sample_block_form(s.hour, m.ts, m.vals) f);
    RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS sample_points_write ON sample_points;
CREATE TRIGGER sample_points_write INSTEAD OF INSERT OR UPDATE OR DELETE ON sample_points FOR EACH ROW EXECUTE FUNCTION sample_points_write();
