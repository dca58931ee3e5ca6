#!/usr/bin/env bash
# Issue 5's planning benchmark: N synthetic resources (default 100,000; 80% services, 20% streaming jobs, a third with a
# time window, 10% whose model does not beat seasonal naive) with active models, 48-hour forecasts and weekly peaks
# inserted in bulk, then `forecaster plan` twice (first publication, then steady state: every plan supersedes one), then
# the pure planner in memory (`Forecaster.Bench planner`) in the same run. Prints resources/s and the ratio.
# FORECASTER_ROOT=<another checkout> measures that checkout's build with this script (e.g. a baseline worktree).
#   [FORECASTER_ROOT=DIR] bench/plan.sh [resources]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
root="${FORECASTER_ROOT:-$here}"
n="${1:-100000}"
work="$(mktemp -d /tmp/forecaster-plan.XXXXXX)"
chmod 755 "$work"   # as root the cluster runs as `postgres`, which must reach its data here
export FORECASTER_HOME="$work/home"
trap '"$root/forecaster" db stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

"$root/forecaster" migrate >/dev/null
source "$here/bench/lib.sh"
cluster_psql

echo "seeding $n resources with models, 48-hour forecasts (one row of arrays each) and weekly peaks ..."
t0=$(date +%s.%N)
"${psql_cmd[@]}" -v n="$n" -f "$here/bench/seed-planned.sql"
t1=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" 'BEGIN { printf "seeded in %.1f s\n", b - a }'

# Forecast storage per series (heap, TOAST and indexes of whichever table holds the forecasts: series_forecasts since
# migration 0070, one row of arrays per series; forecasts before it, one row per hour).
"${psql_cmd[@]}" -t -A -c "SELECT 'forecast storage: ' || round(pg_total_relation_size(t)::numeric / $n) || ' bytes per series (' || t || ')'
  FROM (SELECT coalesce(to_regclass('series_forecasts'), to_regclass('forecasts')) AS t) x"

plan() {
  local line before after
  before=$(pgcpu)
  line=$(/usr/bin/time -f '%U %S' -o "$work/plan.time" "$root/forecaster" plan 2>"$work/plan.err") || { cat "$work/plan.err" >&2; exit 1; }
  after=$(pgcpu)
  # Where the time went (reading inputs, planning, publishing), from the run's own log line.
  grep -o 'reading [0-9.]* s, planning [0-9.]* s, publishing [0-9.]* s' "$work/plan.err" >&2 || true
  # CPU seconds: the forecaster process (user + system) and PostgreSQL, and the load average after the run.
  awk -v b="$before" -v a="$after" -v load="$(cut -d' ' -f1-3 /proc/loadavg)" '{ printf "CPU s: forecaster %.2f + PostgreSQL %.2f = %.2f (load average %s)\n", $1 + $2, a - b, $1 + $2 + a - b, load }' "$work/plan.time" >&2
  echo "$line"
}
first=$(plan); echo "forecaster plan (first publication): $first"
second=$(plan); echo "forecaster plan (steady state):      $second"
"${psql_cmd[@]}" -t -A -c "SELECT 'stored: ' || count(*) || ' plan versions, ' || pg_size_pretty(pg_total_relation_size('plan_versions')) FROM plan_versions"
# The packed steps' share of a row (PackedSteps; issue 16), and the TOAST table that rows over toast_tuple_target go to.
"${psql_cmd[@]}" -t -A -c "SELECT 'steps_packed: ' || round(avg(octet_length(steps_packed))) || ' bytes a plan on average, max ' || max(octet_length(steps_packed))
    || '; TOAST ' || pg_size_pretty(pg_total_relation_size((SELECT reltoastrelid FROM pg_class WHERE oid = 'plan_versions'::regclass))) FROM plan_versions"

echo "pure planner in memory:"
dotnet run -c Release --project "$root/bench/Forecaster.Bench" -- planner "$n" 5 | tee "$work/memory.txt"

rate() { sed -E 's/.*rate=([0-9.]+)\/s.*/\1/' <<<"$1"; }
memory=$(awk '/threads/ { for (i = 1; i <= NF; i++) if ($i == "resources/s") { v = $(i-1); gsub(/,/, "", v); print v } }' "$work/memory.txt" | tail -1)
awk -v e2e="$(rate "$second")" -v mem="$memory" 'BEGIN {
  printf "end to end (steady state) %.0f resources/s vs in memory %.0f resources/s: PostgreSQL path is %.1fx slower\n", e2e, mem, mem / e2e }'
