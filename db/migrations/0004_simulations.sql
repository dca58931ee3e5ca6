-- 0004: simulations (issue 7): one row per `POST /api/v1/simulations`, holding the request (resource names or inline series,
-- the policy, train-days), the progress while it runs and the JSON report when it is done, so a report survives a restart.
-- Applied once by the migration runner inside a transaction; guarded with IF NOT EXISTS, so a hand re-run is harmless.
CREATE TABLE IF NOT EXISTS simulations (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    status       text        NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    request      jsonb       NOT NULL,
    fits_total   integer     NOT NULL DEFAULT 0,   -- nightly fits to replay (series × days)
    fits_done    integer     NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL,
    started_at   timestamptz,
    finished_at  timestamptz,
    error        text,
    report       json                              -- json, not jsonb: keeps the report's key order (strategies, series)
);
-- The queue's restart recovery reads the unfinished ones.
CREATE INDEX IF NOT EXISTS simulations_unfinished ON simulations (id) WHERE status IN ('queued', 'running');
