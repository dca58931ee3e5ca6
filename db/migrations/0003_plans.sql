-- 0003: scale plans (issue 5): one row per plan version with its 48 hourly steps as jsonb, the resources that could not be
-- planned and why, and group quotas for the capacity view. Applied once by the migration runner inside a transaction;
-- every statement is guarded with IF NOT EXISTS, so a hand re-run on a database that already has them is harmless.

-- A plan version is one row, steps included: publishing it (insert active, supersede the previous one, NOTIFY plans) is one
-- statement pair in one transaction, so a reader sees the whole plan or none of it. `steps` is the JSON array of
-- Forecaster.Planner.PlanStep (camelCase; see PlanJson in src/Api/Plans), readable back into PlanStep as it is.
CREATE TABLE IF NOT EXISTS plan_versions (
    id                    bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    resource_id           integer     NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    status                text        NOT NULL CHECK (status IN ('active', 'superseded')),
    kind                  text        NOT NULL CHECK (kind IN ('service', 'job')),
    mode                  text        NOT NULL CHECK (mode IN ('scale', 'forecastOnly')),
    trigger               text        NOT NULL CHECK (trigger IN ('training', 'policy', 'cli')),
    training_run_id       bigint      REFERENCES training_runs (id) ON DELETE SET NULL,
    generated_at          timestamptz NOT NULL,
    horizon_start         timestamptz NOT NULL,
    horizon_hours         integer     NOT NULL,
    lead_minutes          integer     NOT NULL,
    -- What the plan was made from: the load forecast's model version and when it was generated (null: no forecast),
    -- and the capacity model (null: the policy states capacity, or none is known).
    model_version_id      bigint,
    forecast_generated_at timestamptz,
    capacity_model        text,
    -- The policy as it was when planned, so a plan can be explained after the policy changed.
    policy                jsonb       NOT NULL,
    requests              jsonb       NOT NULL,
    notes                 text[]      NOT NULL DEFAULT '{}',
    steps                 jsonb       NOT NULL,
    -- Planned count × request per step, hour by hour from horizon_start (0 where a request is unknown): the capacity view
    -- sums these arrays instead of opening every plan's steps. requests_known is false when cpu or memory is unknown.
    cpu_hours             double precision[] NOT NULL,
    memory_hours          bigint[]    NOT NULL,
    requests_known        boolean     NOT NULL,
    superseded_at         timestamptz
);
-- At most one active (served) plan per resource; the serving side loads `WHERE status = 'active'`.
CREATE UNIQUE INDEX IF NOT EXISTS plan_versions_one_active ON plan_versions (resource_id) WHERE status = 'active';
CREATE INDEX IF NOT EXISTS plan_versions_by_resource ON plan_versions (resource_id, id DESC);
-- The retention purge deletes superseded versions generated more than Forecaster:Planning:RetentionDays ago.
CREATE INDEX IF NOT EXISTS plan_versions_superseded ON plan_versions (generated_at) WHERE status = 'superseded';

-- The last planning attempt that could not produce a plan, per resource, with what is missing; removed when a plan is
-- published. The previous active plan (if any) stays served meanwhile.
CREATE TABLE IF NOT EXISTS plan_problems (
    resource_id integer     PRIMARY KEY REFERENCES resources (id) ON DELETE CASCADE,
    checked_at  timestamptz NOT NULL,
    missing     text[]      NOT NULL
);

-- Quota of a resource group (the resources' "group") for GET /api/v1/capacity; either side may be absent.
CREATE TABLE IF NOT EXISTS group_quotas (
    "group"      text             PRIMARY KEY,
    cpu_cores    double precision CHECK (cpu_cores >= 0),
    memory_bytes bigint           CHECK (memory_bytes >= 0),
    updated_at   timestamptz      NOT NULL
);
