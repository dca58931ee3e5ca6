-- 0006: background work moves from Quartz.NET to Hangfire (issue 14). Drops Quartz's qrtz_* tables (Hangfire keeps its
-- own tables in the `hangfire` schema, created and upgraded by Hangfire.PostgreSql at start), and gives simulations the
-- instance running them, how often a worker started them and their Hangfire job (a row without one is enqueued at start).
-- Applied once by the migration runner inside a transaction; every statement is guarded (IF EXISTS / IF NOT EXISTS), so a
-- hand re-run is harmless.
DROP TABLE IF EXISTS qrtz_fired_triggers, qrtz_paused_trigger_grps, qrtz_scheduler_state, qrtz_locks, qrtz_simple_triggers,
    qrtz_simprop_triggers, qrtz_cron_triggers, qrtz_blob_triggers, qrtz_triggers, qrtz_job_details, qrtz_calendars CASCADE;

ALTER TABLE simulations ADD COLUMN IF NOT EXISTS instance_id text;   -- the instance holding its lease while it runs
ALTER TABLE simulations ADD COLUMN IF NOT EXISTS job_id text;        -- Hangfire's job id ('recovering' while being given one)
ALTER TABLE simulations ADD COLUMN IF NOT EXISTS starts integer NOT NULL DEFAULT 0;   -- times a worker started it (1 unless interrupted)
