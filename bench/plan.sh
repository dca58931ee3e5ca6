#!/usr/bin/env bash
# Issue 5's planning benchmark: N synthetic resources (default 100,000; 80% services, 20% streaming jobs, a third with a
# time window, 10% whose model does not beat seasonal naive) with active models, 48-hour forecasts and weekly peaks
# inserted in bulk, then `forecaster plan` twice (first publication, then steady state: every plan supersedes one), then
# the pure planner in memory (`Forecaster.Bench planner`) in the same run. Prints resources/s and the ratio.
#   bench/plan.sh [resources]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
n="${1:-100000}"
work="$(mktemp -d /tmp/forecaster-plan.XXXXXX)"
chmod 755 "$work"   # as root the cluster runs as `postgres`, which must reach its data here
export FORECASTER_HOME="$work/home"
trap '"$root/forecaster" db stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

"$root/forecaster" migrate >/dev/null
# The embedded cluster's address and password, for psql.
port_pg=$(sed -n 4p "$(python3 -c "import json;print(json.load(open('$FORECASTER_HOME/cluster.json'))['DataDir'])")/postmaster.pid")
export PGPASSWORD=$(python3 -c "import json;print(json.load(open('$FORECASTER_HOME/cluster.json'))['Password'])")
psql_cmd=(psql -X -q -h 127.0.0.1 -p "$port_pg" -U forecaster -d forecaster -v ON_ERROR_STOP=1)

echo "seeding $n resources with models, forecasts ($((n * 48)) rows) and weekly peaks ..."
t0=$(date +%s.%N)
"${psql_cmd[@]}" -v n="$n" <<'SQL'
INSERT INTO resources (name, kind, "group", load_metric, policy, created_at, updated_at)
SELECT 'bench-' || i,
       CASE WHEN i % 5 = 0 THEN 'job' ELSE 'service' END,
       'g' || (i % 20),
       CASE WHEN i % 5 = 0 THEN 'records_in_rate' ELSE 'qps' END,
       CASE WHEN i % 5 = 0
            THEN jsonb_build_object('minReplicas', 1, 'maxReplicas', 720, 'maxParallelism', 720, 'capacityPerSubtask', 500 + i % 5000,
                                    'backlogMetric', 'backlog_records')
            ELSE jsonb_build_object('minReplicas', 1 + i % 4, 'maxReplicas', 300, 'capacityPerReplica', 20 + i % 200,
                                    'maxStepUp', 10, 'maxStepDown', 5, 'scaleDownDelayHours', i % 4)
                 || CASE WHEN i % 3 = 0
                         THEN '{"windows":[{"days":"Mon-Fri","from":"19:00","to":"23:00","timeZone":"Asia/Shanghai","minReplicas":12}]}'::jsonb
                         ELSE '{}'::jsonb END
       END,
       now(), now()
FROM generate_series(1, :n) AS i;
INSERT INTO model_versions (resource_id, metric, status, trained_at, beats_seasonal_naive)
SELECT id, load_metric, 'active', now(), id % 10 <> 0 FROM resources;
INSERT INTO forecasts (resource_id, metric, ts, forecast, lower, upper, model_version_id, generated_at)
SELECT mv.resource_id, mv.metric, h, f, f * 0.8, f * 1.25, mv.id, now()
FROM model_versions mv
CROSS JOIN generate_series(date_trunc('hour', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
                           (date_trunc('hour', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') + interval '47 hours', interval '1 hour') AS h
CROSS JOIN LATERAL (SELECT exp((mv.resource_id % 97) / 11.0) * (1 + 0.6 * sin(extract(epoch FROM h) / 13751.0 + mv.resource_id)) AS f) x;
INSERT INTO weekly_peaks (resource_id, cpu_cores, memory_bytes, window_from, window_to, computed_at)
SELECT id, 0.2 + (id % 30) / 10.0, (256 + id % 1024) * 1048576::bigint, now() - interval '7 days', now(), now() FROM resources;
ANALYZE;
SQL
t1=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" 'BEGIN { printf "seeded in %.1f s\n", b - a }'

plan() {
  local line
  line=$("$root/forecaster" plan 2>"$work/plan.err") || { cat "$work/plan.err" >&2; exit 1; }
  echo "$line"
}
first=$(plan); echo "forecaster plan (first publication): $first"
second=$(plan); echo "forecaster plan (steady state):      $second"
"${psql_cmd[@]}" -t -A -c "SELECT 'stored: ' || count(*) || ' plan versions, ' || pg_size_pretty(pg_total_relation_size('plan_versions')) FROM plan_versions"

echo "pure planner in memory:"
dotnet run -c Release --project "$root/bench/Forecaster.Bench" -- planner "$n" 5 | tee "$work/memory.txt"

rate() { sed -E 's/.*rate=([0-9.]+)\/s.*/\1/' <<<"$1"; }
memory=$(awk '/threads/ { for (i = 1; i <= NF; i++) if ($i == "resources/s") { v = $(i-1); gsub(/,/, "", v); print v } }' "$work/memory.txt" | tail -1)
awk -v e2e="$(rate "$second")" -v mem="$memory" 'BEGIN {
  printf "end to end (steady state) %.0f resources/s vs in memory %.0f resources/s: PostgreSQL path is %.1fx slower\n", e2e, mem, mem / e2e }'
