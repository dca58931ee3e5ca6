#!/usr/bin/env bash
# Issue 2's ingestion benchmark: N rows (default 5,000,000) through POST /api/v1/samples against psql's \copy of the
# same CSV into an unindexed table on the same server, in one run, alternating, each twice. Prints rates and ratios.
#   bench/ingest.sh [rows]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
rows="${1:-5000000}"
series=1000
per=$(( rows / series ))
work="$(mktemp -d /tmp/forecaster-ingest.XXXXXX)"
chmod 755 "$work"   # as root the cluster runs as `postgres`, which must reach its data here
export FORECASTER_HOME="$work/home" FORECASTER_API_KEYS=bench-key
port=18181
csv="$work/samples.csv"

echo "generating $rows rows ($series series x $per hourly points) ..."
now=$(date -u +%s); start=$(( (now / 3600 - per - 2) * 3600 ))
awk -v series="$series" -v per="$per" -v start="$start" 'BEGIN {
  print "resource,metric,timestamp,value"
  for (s = 0; s < series; s++) for (i = 0; i < per; i++)
    printf "bench-%d,qps,%s,%.3f\n", s, strftime("%Y-%m-%dT%H:%M:%SZ", start + i * 3600, 1), 100 + 50 * sin(i / 3.82) + (s % 7)
}' > "$csv"
ls -lh "$csv" | awk '{print "csv size: " $5}'

"$root/forecaster" serve --urls "http://127.0.0.1:$port" > "$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 120); do curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break; sleep 1; done

source "$root/bench/lib.sh"
cluster_psql

api() {
  local t0 t1
  t0=$(date +%s.%N)
  curl -fsS -X POST --data-binary @"$csv" -H 'Content-Type: text/csv' -H "X-Api-Key: bench-key" \
    "http://127.0.0.1:$port/api/v1/samples?createResources=true" > "$work/api.json"
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'
}
copy() {
  local t0 t1
  "${psql_cmd[@]}" -c "DROP TABLE IF EXISTS copy_bench; CREATE TABLE copy_bench (resource text, metric text, ts timestamptz, value double precision)"
  t0=$(date +%s.%N)
  "${psql_cmd[@]}" -c "\\copy copy_bench FROM '$csv' WITH (FORMAT csv, HEADER true)"
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'
}

# CPU seconds (user + system) of the service, and of PostgreSQL (pgcpu, bench/lib.sh), around each API run: wall time is
# noise on a shared machine.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
c1=$(copy)
f0=$(cpu "$server"); g0=$(pgcpu); a1=$(api); f1=$(cpu "$server"); g1=$(pgcpu)
c2=$(copy)
f2=$(cpu "$server"); g2=$(pgcpu); a2=$(api); f3=$(cpu "$server"); g3=$(pgcpu)
"${psql_cmd[@]}" -c "DROP TABLE copy_bench"
grep -o '"Message":"Imported[^"]*"' "$work/serve.log" || true
stored=$("${psql_cmd[@]}" -t -A -c "SELECT sum(coalesce(cardinality(vals), 1)) FROM samples")
bytes=$("${psql_cmd[@]}" -t -A -c "SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('samples') WHERE isleaf")
awk -v f0="$f0" -v f1="$f1" -v f2="$f2" -v f3="$f3" -v g0="$g0" -v g1="$g1" -v g2="$g2" -v g3="$g3" -v bytes="$bytes" -v stored="$stored" 'BEGIN {
  printf "CPU s, insert: forecaster %.2f, PostgreSQL %.2f; upsert: forecaster %.2f, PostgreSQL %.2f\n", f1 - f0, g1 - g0, f3 - f2, g3 - g2
  printf "storage: %.1f bytes per sample (tables and indexes, before vacuum)\n", bytes / stored
}'
awk -v rows="$rows" -v c1="$c1" -v c2="$c2" -v a1="$a1" -v a2="$a2" -v stored="$stored" 'BEGIN {
  printf "rows stored: %d (second API run upserted over the first)\n", stored
  printf "psql \\copy (unindexed table):  %6.2f s  %6.2f s   -> %9.0f rows/s (median of 2)\n", c1, c2, rows / ((c1 + c2) / 2)
  printf "POST /api/v1/samples (insert): %6.2f s              -> %9.0f rows/s\n", a1, rows / a1
  printf "POST /api/v1/samples (upsert): %6.2f s              -> %9.0f rows/s\n", a2, rows / a2
  printf "ratio API/copy: insert %.2f, upsert %.2f (goal >= 0.50)\n", ((c1 + c2) / 2) / a1, ((c1 + c2) / 2) / a2
}'
