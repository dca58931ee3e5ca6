-- 0007: Prometheus as a history source. PromQL per resource and per group (a template with {{name}} and {{group}}),
-- and the pull state of every (resource, metric) that some source feeds: the effective query, its watermark, a lease so
-- that no two instances pull the same series at once, and the last outcome.
-- Guarded with IF NOT EXISTS: a hand re-run on a database that already has it is harmless.

-- A resource's own sources; they override its group's for the same metric.
CREATE TABLE IF NOT EXISTS resource_sources (
    resource_id integer     NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    metric      text        NOT NULL,
    query       text        NOT NULL,
    server      text        NOT NULL DEFAULT '',   -- '' is the default server
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (resource_id, metric)
);

-- A group's sources: templates resolved for every resource of the group.
CREATE TABLE IF NOT EXISTS group_sources (
    "group"    text        NOT NULL,
    metric     text        NOT NULL,
    query      text        NOT NULL,
    server     text        NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL,
    PRIMARY KEY ("group", metric)
);

-- One row per pulled series, kept in step with the two tables above by the reconciliation statement in
-- src/Api/Sources/SourcePulls.cs. A NULL watermark means the backfill is due; a changed query resets it.
CREATE TABLE IF NOT EXISTS source_pulls (
    resource_id     integer     NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    metric          text        NOT NULL,
    query           text        NOT NULL,
    server          text        NOT NULL,
    origin          text        NOT NULL CHECK (origin IN ('resource', 'group')),
    watermark       timestamptz,
    due_at          timestamptz NOT NULL,
    leased_until    timestamptz,
    leased_by       text,
    last_success_at timestamptz,
    last_error      text,
    last_error_at   timestamptz,
    failures        integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (resource_id, metric)
);
CREATE INDEX IF NOT EXISTS source_pulls_due ON source_pulls (due_at);
