-- 0180: retention of model versions (issue 16, branch modelkeep). Nightly training adds a version per series and a pack of
-- artifacts per batch, and nothing removed them. The retention job (Forecaster:ModelRetention) deletes versions that nothing
-- keeps; what it removed is remembered here per resource, so that a request for such a version's artifact can say it was
-- removed by retention (410) rather than that it never existed. One row per resource, updated in place: it does not grow
-- with the versions removed. Safe to re-run (IF NOT EXISTS).
CREATE TABLE IF NOT EXISTS model_versions_removed (
    resource_id     integer     PRIMARY KEY REFERENCES resources (id) ON DELETE CASCADE,
    from_version    bigint      NOT NULL,   -- the lowest version id of this resource that retention removed
    through_version bigint      NOT NULL,   -- the highest
    versions        bigint      NOT NULL,   -- how many versions of this resource retention removed, in all
    removed_at      timestamptz NOT NULL    -- the last time it removed one
);
