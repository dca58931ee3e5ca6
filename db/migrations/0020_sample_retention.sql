-- 0020: retention of raw samples by whole partitions (issue 16). `samples` is already range-partitioned by month on ts
-- (0001), with the partition column in its primary key, so no data moves: this adds the function the retention job calls.
-- Safe to re-run (CREATE OR REPLACE).

-- Empties or drops the partitions of `samples` that lie wholly before `cutoff` (upper bound <= cutoff), never one that holds
-- a sample at or after it. A partition also wholly before `keep_from` (older than any sample ingestion still accepts) is
-- dropped; a younger one is truncated and kept, so that a late sample of its month, still accepted, has a partition to go
-- to and no instance's cache of existing partitions goes stale. TRUNCATE frees the space at once, like DROP, without the
-- per-row work and bloat of DELETE. A DEFAULT partition (no upper bound) is never touched. Returns what it did.
CREATE OR REPLACE FUNCTION drop_sample_partitions_before(cutoff timestamptz, keep_from timestamptz)
RETURNS TABLE (partition text, upper_bound timestamptz, action text) LANGUAGE plpgsql AS $$
DECLARE
    part  record;
    upper timestamptz;
    empty boolean;
BEGIN
    FOR part IN
        SELECT c.oid::regclass::text AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'samples'::regclass
        ORDER BY 1
    LOOP
        -- The bound reads FOR VALUES FROM ('...') TO ('...'), with the time zone's offset; MAXVALUE and DEFAULT give null.
        upper := substring(part.bound FROM 'TO \(''([^'']+)''\)')::timestamptz;
        CONTINUE WHEN upper IS NULL OR upper > cutoff;
        partition := part.name;
        upper_bound := upper;
        IF upper <= keep_from THEN
            EXECUTE format('DROP TABLE %s', part.name);
            action := 'dropped';
            RETURN NEXT;
        ELSE
            EXECUTE format('SELECT NOT EXISTS (SELECT 1 FROM %s)', part.name) INTO empty;
            IF NOT empty THEN
                EXECUTE format('TRUNCATE TABLE %s', part.name);
                action := 'emptied';
                RETURN NEXT;
            END IF;
        END IF;
    END LOOP;
END;
$$;
