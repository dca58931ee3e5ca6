-- 0070: a series' stored forecast as one row of arrays (issue 16). Until now `forecasts` held one row per forecast hour:
-- 48 rows per series, 4.8 million for 100,000 resources, each with its own 24-byte tuple header, index entry, key and
-- copies of the model version and generation time, and planning aggregated them back into arrays per series on every
-- run (the critical path of a 100,000-resource plan). Training writes each series' forecast whole and replaces it whole,
-- so it is stored the way it is written and read: the model version that wrote it, when, the first hour (`start`), the
-- spacing (`step`: hour k is start + k·step, k from 0), and the point forecast and interval bounds as float8 arrays of
-- equal length. At 48 hours a row is about 1.3 KB, under the 2 KB at which PostgreSQL would compress or TOAST it.
-- Applied once by the migration runner inside a transaction; guarded, so a hand re-run is harmless.
CREATE TABLE IF NOT EXISTS series_forecasts (
    resource_id      integer            NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    metric           text               NOT NULL,
    model_version_id bigint             NOT NULL,  -- no foreign key, as before: the training writer checks it by construction
    generated_at     timestamptz        NOT NULL,
    start            timestamptz        NOT NULL,
    step             interval           NOT NULL,
    forecast         double precision[] NOT NULL,
    lower            double precision[] NOT NULL,
    upper            double precision[] NOT NULL,
    PRIMARY KEY (resource_id, metric),
    CHECK (step > interval '0' AND cardinality(forecast) > 0
           AND cardinality(lower) = cardinality(forecast) AND cardinality(upper) = cardinality(forecast))
);

-- The upgrade: every series of the old table becomes one row, hours in time order. Training always wrote an evenly spaced
-- run of hours; a series whose hours are not evenly spaced (only a hand-made one could be) cannot be stored as start and
-- step, so it is left out with a warning, and planning falls back to the observed load for it until the next training run
-- writes it again. The step is taken in seconds (a plain time interval, never a day that a time zone could stretch).
DO $$
DECLARE
    skipped integer;
BEGIN
    IF to_regclass('forecasts') IS NOT NULL THEN
        WITH hours AS (
            SELECT resource_id, metric, ts, forecast, lower, upper, model_version_id, generated_at,
                   extract(epoch FROM ts - lag(ts) OVER w) AS gap
            FROM forecasts
            WINDOW w AS (PARTITION BY resource_id, metric ORDER BY ts)
        )
        INSERT INTO series_forecasts (resource_id, metric, model_version_id, generated_at, start, step, forecast, lower, upper)
        SELECT resource_id, metric,
               (array_agg(model_version_id ORDER BY ts))[1], (array_agg(generated_at ORDER BY ts))[1],
               min(ts), make_interval(secs => coalesce(min(gap), 3600)),
               array_agg(forecast ORDER BY ts), array_agg(lower ORDER BY ts), array_agg(upper ORDER BY ts)
        FROM hours
        GROUP BY resource_id, metric
        HAVING min(gap) IS NOT DISTINCT FROM max(gap)
        ON CONFLICT (resource_id, metric) DO NOTHING;

        SELECT count(*) INTO skipped
        FROM (SELECT 1 FROM forecasts f
              WHERE NOT EXISTS (SELECT 1 FROM series_forecasts s WHERE s.resource_id = f.resource_id AND s.metric = f.metric)
              GROUP BY f.resource_id, f.metric) x;
        IF skipped > 0 THEN
            RAISE WARNING '0070: % stored forecasts whose hours are not evenly spaced were not converted; the next training run writes them again', skipped;
        END IF;

        -- No view of the old shape is kept: every reader reads series_forecasts, and a view would only invite new ones.
        DROP TABLE forecasts;
    END IF;
END $$;
