-- 0210: stale marks carry the hours a write touched (issue 16). A mark of 0170 named a (series, UTC day), and the refresh
-- recomputed the day whole from its 24 hourly blocks; a fleet pushing every minute (or pulled every five) thus had each
-- series' current day recomputed on every refresh, 24 blocks for the one hour written. Now a mark names the hours
-- `first_hour` to `last_hour` (0-23, UTC) of its day, and the refresh of a day whose marks do not cover it reads the stored
-- rollup row and the blocks of the marked hours only (HourlyRollups.RefreshAsync). What the refresh relies on: outside the
-- hours of its marks, a day's rollup row (or its absence) equals its samples.
--
-- A mark without hours (NULL, NULL) is the whole day: the marks stored before this migration, and those of a writer still
-- running the code before it during an upgrade, stay correct as they are. A write spanning several days still adds one mark
-- per day: its first day from the hour of its first sample, its inner days whole (0-23), its last day to the hour of its
-- last sample.

ALTER TABLE sample_hours_stale
    ADD COLUMN IF NOT EXISTS first_hour smallint,
    ADD COLUMN IF NOT EXISTS last_hour  smallint;
ALTER TABLE sample_hours_stale DROP CONSTRAINT IF EXISTS sample_hours_stale_hours;
ALTER TABLE sample_hours_stale ADD CONSTRAINT sample_hours_stale_hours CHECK (
    (first_hour IS NULL AND last_hour IS NULL) OR (0 <= first_hour AND first_hour <= last_hour AND last_hour <= 23));

-- Points written through the view (0170's trigger) mark the hour of each point.
CREATE OR REPLACE FUNCTION sample_points_mark_stale() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    h smallint;
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        h := extract(hour FROM OLD.ts AT TIME ZONE 'UTC');
        INSERT INTO sample_hours_stale (series_id, day, first_hour, last_hour)
        VALUES (OLD.series_id, date_bin('1 day', OLD.ts, timestamptz '2000-01-01 00:00:00+00'), h, h);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        h := extract(hour FROM NEW.ts AT TIME ZONE 'UTC');
        INSERT INTO sample_hours_stale (series_id, day, first_hour, last_hour)
        VALUES (NEW.series_id, date_bin('1 day', NEW.ts, timestamptz '2000-01-01 00:00:00+00'), h, h);
        RETURN NEW;
    END IF;
    RETURN OLD;
END;
$$;

-- Blocks deleted by any statement mark, per series and day, the hours from the first deleted block to the last.
CREATE OR REPLACE FUNCTION samples_mark_deleted_stale() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sample_hours_stale (series_id, day, first_hour, last_hour)
    SELECT series_id, date_bin('1 day', hour, timestamptz '2000-01-01 00:00:00+00'),
           min(extract(hour FROM hour AT TIME ZONE 'UTC')), max(extract(hour FROM hour AT TIME ZONE 'UTC'))
    FROM deleted_blocks
    GROUP BY 1, 2;
    RETURN NULL;
END;
$$;
