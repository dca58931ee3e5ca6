#!/usr/bin/env bash
# Issue 4's training benchmark: N synthetic series (default 10,000) of 35 days of hourly history loaded into a fresh
# embedded cluster, then `forecaster train` end to end. Each resource has two trained series (qps, cpu_cores) and a
# `replicas` series (read for per-replica usage, not fitted), so N series means N/2 resources. Prints the train summary
# (series/s), the peak resident memory and the CPU seconds of the train process (/usr/bin/time -v). With BENCH_SERVICE=1 the same
# fleet is then trained once more through the service (`serve`, POST /api/v1/training-runs, its background jobs and
# scheduler), printing that run's series/s and the service's peak RSS: what the scheduler costs, if anything.
# After the import it prints the bytes per stored sample (every partition's table and indexes) and, after training, the
# load average (the machine is shared: compare runs of the same minutes only).
#   [BENCH_SERVICE=1] bench/train.sh [series]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
series="${1:-10000}"
resources=$(( series / 2 ))
hours=$(( 35 * 24 ))
work="$(mktemp -d /tmp/forecaster-train.XXXXXX)"
chmod 755 "$work"   # as root the cluster runs as `postgres`, which must reach its data here
export FORECASTER_HOME="$work/home" Forecaster__Training__ModelsPath="$work/models"
trap '"$root/forecaster" db stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
csv="$work/samples.csv"

echo "generating $resources resources x 3 metrics x $hours hourly points ..."
source "$root/bench/lib.sh"
fleet_csv "$resources" "$hours" "$csv"
ls -lh "$csv" | awk '{print "csv size: " $5}'

"$root/forecaster" import "$csv" --create-resources | tail -1
rm -f "$csv"
# Storage (issue 16): bytes per stored sample, table and indexes of every partition (pg_total_relation_size), after the import.
cluster_psql
"${psql_cmd[@]}" -At -F ' ' -c "VACUUM ANALYZE samples" -c "
  SELECT (SELECT sum(coalesce(cardinality(vals), 1)) FROM samples), sum(pg_relation_size(relid)), sum(pg_indexes_size(relid)), sum(pg_total_relation_size(relid))
  FROM pg_partition_tree('samples') WHERE isleaf" |
  awk 'NF == 4 { printf "storage: %d samples, table %.0f MB + indexes %.0f MB = %.0f MB, %.1f bytes per sample\n", $1, $2 / 1048576, $3 / 1048576, $4 / 1048576, $4 / $1 }'
# The hourly rollups training reads (migration 0170, refreshed by the import): their bytes, also per hourly sample.
"${psql_cmd[@]}" -At -F ' ' -c "VACUUM ANALYZE sample_hours" -c "
  SELECT (SELECT count(*) FROM sample_hours), (SELECT sum(coalesce(cardinality(vals), 1)) FROM samples), sum(pg_total_relation_size(relid))
  FROM pg_partition_tree('sample_hours') WHERE isleaf" |
  awk 'NF == 3 { printf "hourly rollups: %d series-days, %.0f MB with indexes, %.1f bytes per hourly sample\n", $1, $3 / 1048576, $3 / $2 }'
# Warm the page cache and statistics the way a nightly run finds them.
"$root/forecaster" db status >/dev/null

/usr/bin/time -v "$root/forecaster" train > "$work/train.out" 2> "$work/train.err" || { cat "$work/train.err" >&2; exit 1; }
grep -E 'run=' "$work/train.err" || true
cat "$work/train.out"
awk -F': ' '/Maximum resident set size/ { printf "peak RSS of train: %.0f MB\n", $2 / 1024 }' "$work/train.err"
# CPU seconds of `train` and its waited-for children (user + system), which a shared machine's wall time hides.
awk -F': ' '/User time/ { u = $2 } /System time/ { s = $2 } END { printf "CPU of train: %.2f s (user %.2f + system %.2f)\n", u + s, u, s }' "$work/train.err"
echo "load average after train: $(cut -d' ' -f1-3 /proc/loadavg)"
# One pack per batch (issue 16); one .json per model version before packs.
echo "model artifacts: $(find "$work/models" -type f \( -name '*.jsonl' -o -name '*.json' \) | wc -l) files, $(du -sh "$work/models" | cut -f1) ($(du -sb --apparent-size "$work/models" | cut -f1) bytes)"

# The train verb plans the fleet after the run; planning alone again, to tell its memory from training's.
/usr/bin/time -v "$root/forecaster" plan > "$work/plan.out" 2> "$work/plan.err" || { cat "$work/plan.err" >&2; exit 1; }
cat "$work/plan.out"
awk -F': ' '/Maximum resident set size/ { printf "peak RSS of plan alone: %.0f MB\n", $2 / 1024 }' "$work/plan.err"

if [ "${BENCH_SERVICE:-0}" = 1 ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  FORECASTER_API_KEYS=bench "$root/forecaster" serve --urls "http://127.0.0.1:$port" > "$work/serve.log" 2>&1 &
  serve=$!
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$port/health/live" >/dev/null 2>&1 && break; sleep 0.5; done
  run=$(service_training_run "$port")
  echo "$run" | python3 -c 'import json, sys; r = json.load(sys.stdin); d = r["progress"]["done"]; print("service run: %s series=%d seconds=%.1f rate=%.1f/s" % (r["status"], d, r["seconds"], d / r["seconds"]))'
  awk '/VmHWM/ { printf "peak RSS of the service: %.0f MB\n", $2 / 1024 }' "/proc/$serve/status"
  kill "$serve"; wait "$serve" || true
fi
