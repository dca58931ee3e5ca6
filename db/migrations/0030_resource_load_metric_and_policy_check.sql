-- 0030: one source of truth for a resource's load metric, and a policy validated once.
-- `resources.load_metric` is the load metric: training fits it and the planner plans from it. Before this, the planner read
-- `policy.loadMetric` first, so a policy naming another metric planned from a forecast training never made (a silent
-- fallback). Such a row takes the policy's metric (what its policy asked to plan from; the next training run fits it), and
-- a PUT now refuses a `policy.loadMetric` that differs from `loadMetric`.
-- `policy_problems` holds the outcome of the one validation of the stored policy: '{}' valid, else "field: message" per
-- problem; NULL means not checked yet (rows written before this migration or by hand), which the service and every CLI
-- verb check at start. Safe to re-run: the update only touches rows that still differ, the column is added IF NOT EXISTS.

UPDATE resources
SET load_metric = policy->>'loadMetric'
WHERE jsonb_typeof(policy->'loadMetric') = 'string' AND policy->>'loadMetric' <> load_metric
  AND policy->>'loadMetric' ~ '^[A-Za-z_][A-Za-z0-9_.]{0,63}$';   -- a metric name as SampleRules.CheckMetric accepts it

ALTER TABLE resources ADD COLUMN IF NOT EXISTS policy_problems text[];
