#!/usr/bin/env bash
# Model retention's cost (branch modelkeep): N resources (default 10,000) as seeded for planning, each with a model version
# per series (its load metric, cpu_cores, memory_bytes) for each of NIGHTS nightly runs (default 8; the newest active, the
# others superseded, parameters and upper tail of a realistic size), a pack per 200 resources and run on disk (written two
# days ago), and plan versions from three `forecaster plan` runs. Then `forecaster prune-models` with the default rules
# (KeepSuperseded 3, KeepDays 3): it removes the versions of the runs four nights old and older, 3 × N × (NIGHTS − 4), and
# their packs; then, after a VACUUM, once more, when nothing is left to remove (the verb's start and a pass that reads
# every remaining version and plan version but deletes nothing).
# Prints each pass's summary line and CPU seconds of the verb and of PostgreSQL.
#   bench/model-retention.sh [resources] [nights]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
n="${1:-10000}"
nights="${2:-8}"
work="$(mktemp -d /tmp/forecaster-retention.XXXXXX)"
chmod 755 "$work"   # as root the cluster runs as `postgres`, which must reach its data here
export FORECASTER_HOME="$work/home"
export Forecaster__Training__ModelsPath="$work/models"
trap '"$root/forecaster" db stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

"$root/forecaster" migrate >/dev/null
source "$root/bench/lib.sh"
cluster_psql

echo "seeding $n resources, $nights nights of model versions (3 series each), their packs and plan versions ..."
"${psql_cmd[@]}" -v n="$n" -f "$root/bench/seed-planned.sql"
"${psql_cmd[@]}" -v nights="$nights" <<'SQL'
-- One run per night, k nights ago (k = 0 is tonight's, whose versions are active).
INSERT INTO training_runs (trigger, status, created_at, started_at, finished_at)
SELECT 'nightly', 'succeeded', now() - k * interval '1 day', now() - k * interval '1 day', now() - k * interval '1 day' + interval '20 minutes'
FROM generate_series(:nights - 1, 0, -1) AS k;
CREATE TEMP TABLE nights AS
SELECT id AS run_id, row_number() OVER (ORDER BY id DESC) - 1 AS k FROM training_runs;
-- Superseded versions, oldest night first (ids grow with time, as training allocates them), then tonight's cpu and memory.
INSERT INTO model_versions (resource_id, metric, run_id, status, algorithm, parameters, train_points, trained_at, horizon, level,
                            backtest_origins, mase, smape, coverage, snaive_mase, beats_seasonal_naive, artifact, artifact_offset,
                            artifact_length, upper_tail)
SELECT r.id, m.metric, n.run_id, CASE WHEN n.k = 0 THEN 'active' ELSE 'superseded' END, 'ssa',
       jsonb_build_object('model', 'ssa', 'notes', jsonb_build_array('window 168, rank 6'),
                          'candidates', (SELECT jsonb_agg(jsonb_build_object('model', c, 'mase', 0.8 + random(), 'smape', 0.1 * random(), 'coverage', 0.95))
                                         FROM unnest(ARRAY['snaive-daily','snaive-weekly','ridge','ssa','ets','theta','lgbm']) c)),
       840, now() - n.k * interval '1 day', 48, 0.95, 6, 0.7, 0.1, 0.94, 1.0, true,
       'packs/run-' || n.run_id || '/shard-0-v' || (r.id / 200) || '.jsonl', (r.id % 200) * 45000 + m.o * 15000, 14700,
       jsonb_build_object('origin', 0, 'stepScale', (SELECT jsonb_agg(round(random()::numeric, 4)) FROM generate_series(1, 48)),
                          'levels', '[0.5,0.8,0.9,0.95,0.99,0.995]'::jsonb, 'quantiles', '[0.1,0.6,1.0,1.3,1.9,2.2]'::jsonb, 'samples', 120)
FROM nights n
CROSS JOIN resources r
CROSS JOIN LATERAL (VALUES (r.load_metric, 0), ('cpu_cores', 1), ('memory_bytes', 2)) AS m(metric, o)
WHERE NOT (n.k = 0 AND m.metric = r.load_metric)
ORDER BY n.k DESC, r.id, m.o;
-- The seeded active load versions are tonight's.
UPDATE model_versions mv SET run_id = (SELECT run_id FROM nights WHERE k = 0),
       artifact = 'packs/run-' || (SELECT run_id FROM nights WHERE k = 0) || '/shard-0-v' || (mv.resource_id / 200) || '.jsonl',
       artifact_offset = (mv.resource_id % 200) * 45000, artifact_length = 14700
WHERE mv.run_id IS NULL;
SELECT 'model versions: ' || count(*) || ' (' || count(*) FILTER (WHERE status = 'superseded') || ' superseded), '
       || pg_size_pretty(pg_total_relation_size('model_versions')) AS seeded FROM model_versions;
SQL
# The packs, written two days ago (past the sweep's grace); 64 KB each, as content does not change what a sweep does.
while read -r pack; do
  [ -n "$pack" ] || continue
  mkdir -p "$work/models/$(dirname "$pack")"
  head -c 65536 /dev/zero > "$work/models/$pack"
done < <("${psql_cmd[@]}" -t -A -c "SELECT DISTINCT artifact FROM model_versions")
find "$work/models" -type f -exec touch -d '2 days ago' {} +
echo "packs on disk: $(find "$work/models" -type f | wc -l)"
for _ in 1 2 3; do "$root/forecaster" plan >/dev/null 2>&1; done
"${psql_cmd[@]}" -c "VACUUM ANALYZE" >/dev/null
"${psql_cmd[@]}" -t -A -c "SELECT 'plan versions: ' || count(*) FROM plan_versions"

prune() {
  local before after line
  before=$(pgcpu)
  line=$(/usr/bin/time -f '%U %S' -o "$work/prune.time" "$root/forecaster" prune-models 2>"$work/prune.err") || { cat "$work/prune.err" >&2; exit 1; }
  after=$(pgcpu)
  echo "$line"
  awk -v b="$before" -v a="$after" -v load="$(cut -d' ' -f1-3 /proc/loadavg)" \
    '{ printf "  CPU s: forecaster %.2f + PostgreSQL %.2f = %.2f (load average %s)\n", $1 + $2, a - b, $1 + $2 + a - b, load }' "$work/prune.time"
}
echo "prune-models (first pass):"; prune
# The deleted rows' VACUUM outside the measurement: autovacuum would otherwise run it during the second pass and count there.
"${psql_cmd[@]}" -c "VACUUM model_versions" >/dev/null
echo "prune-models (nothing left to remove):"; prune
"${psql_cmd[@]}" -t -A -c "SELECT 'left: ' || count(*) || ' model versions, ' || pg_size_pretty(pg_total_relation_size('model_versions')) FROM model_versions"
echo "packs left on disk: $(find "$work/models" -type f | wc -l)"
