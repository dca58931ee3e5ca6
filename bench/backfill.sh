#!/usr/bin/env bash
# Issue 11's backfill benchmark: R resources (1,000) x 3 metrics x D days (35) of history in a local Prometheus (blocks
# made with promtool), backfilled by Forecaster's pull round (query_range in chunks of at most 11,000 points, parsed,
# written through the samples upsert, watermark recorded) against the very same query_range requests sent raw with
# curl at the same concurrency, in the same run (raw before and after, averaged). Prints series/s, points/s and ratios.
#   bench/backfill.sh [resources] [days] [step_seconds]      (defaults 1000 35 300)
# The measured round runs on a warmed-up service, as the puller does in a long-running one: two rounds first backfill 100
# other resources (300 series, groups `warm0` and `warm1`, in two rounds), reported apart, and the measured round starts
# once the service is idle.
# A 60-series warm-up left most of the tiered JIT's work (each hot method compiled again with its profile after 30 more
# calls) to the measured round: 2.3-2.4 of Forecaster's 3.8-4.4 CPU seconds there were the JIT's thread; the CPU line
# shows that share. BENCH_COLD=1 measures the first round of a fresh process instead (all its JIT compilation counts).
# A step of 60 s (the service's default) makes 151 million points at the full size: more than this shared machine's
# disk and time allow, hence 300 s by default; pass 60 for the real thing on a bigger box.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
resources="${1:-1000}"
days="${2:-35}"
step="${3:-300}"
metrics=(qps cpu_cores memory_bytes)
concurrency=8
warm=100
cold="${BENCH_COLD:-0}"
command -v prometheus >/dev/null && command -v promtool >/dev/null || { echo "needs Debian's prometheus (apt-get install prometheus)" >&2; exit 1; }
work="$(mktemp -d /tmp/forecaster-backfill.XXXXXX)"
chmod 755 "$work"   # as root the cluster runs as `postgres`, which must reach its data here
export FORECASTER_HOME="$work/home" FORECASTER_API_KEYS=bench-key
port=18191
pport=18192
server=""; prom=""; step_pid=""
# Whatever ends the run (success, a failed step, Ctrl-C, kill): the service, Prometheus, a generating step still running,
# the embedded cluster, then the whole work directory (OpenMetrics text, TSDB blocks, cluster, logs).
cleanup() {
  trap - EXIT INT TERM HUP
  [ -n "$step_pid" ] && { kill -- "-$step_pid" 2>/dev/null; wait "$step_pid" 2>/dev/null || true; }
  [ -n "$server" ] && { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; }
  [ -n "$prom" ] && { kill "$prom" 2>/dev/null; wait "$prom" 2>/dev/null || true; }
  "$root/forecaster" db stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
# A signal ends the script through its EXIT trap (bash alone would die without running it on TERM).
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
# Runs a long step in the background, in a process group of its own (job control on for that moment), and waits for it:
# a signal interrupts the wait at once (a foreground child would be waited for first), and cleanup stops the step with
# every process it started (xargs and its promtools).
long_step() { set -m; "$@" & step_pid=$!; set +m; wait "$step_pid"; step_pid=""; }
seconds_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

now=$(date -u +%s)
end=$(( now / step * step ))
first=$(( end - days * 86400 - 3600 ))
series=$(( resources * ${#metrics[@]} ))
echo "generating $series series x $(( (end - first) / step + 1 )) points (every ${step}s over ${days} days + 1 h) ..."
# promtool parses its whole input once per block it writes, keeping that block's samples: blocks of 18 h (what
# --max-block-duration=24h gives) meant 48 passes over the text (90 series: 128 s against 15 s, load ~22). Blocks
# of 486 h (20.25 days, as Prometheus' own compactor makes them for a retention of 200 days or more; promtool rounds the
# flag down to its ladder 2 h x 3^k) are 3 for 35 days, and the text is written as one file per block window, so that
# each file is parsed once, two promtools at a time, into blocks that do not overlap (overlapping blocks would set
# Prometheus compacting them during the run).
block=$(( 486 * 3600 ))
t0=$(date +%s.%N)
long_step awk -v n="$resources" -v w="$warm" -v first="$first" -v end="$end" -v step="$step" -v block="$block" -v out="$work/history" 'BEGIN {
  split("qps cpu_cores memory_bytes", m, " "); level["qps"] = 200; level["cpu_cores"] = 4; level["memory_bytes"] = 2e9
  for (r = 0; r < n + w; r++) for (k = 1; k <= 3; k++) {
    name = r < n ? "bench-" r : "warm-" (r - n)
    l = level[m[k]] * (1 + (r % 17) / 10)
    for (t = first; t <= end; t += step)
      printf "bench_load{resource=\"%s\",metric=\"%s\"} %.6g %d\n", name, m[k], l * (1 + 0.4 * sin(6.283185307 * t / 86400) + 0.15 * sin(6.283185307 * t / 604800)), t > (out "." int(t / block) ".om")
  }
  for (b = int(first / block); b <= int(end / block); b++) { f = out "." b ".om"; print "# EOF" > f; close(f) } }'
echo "openmetrics text: $(du -ch "$work"/history.*.om | tail -1 | cut -f1) in $(ls "$work"/history.*.om | wc -l) files in $(seconds_since "$t0") s"
t0=$(date +%s.%N)
long_step sh -c 'ls "$1"/history.*.om | xargs -P 2 -I{} sh -c "promtool tsdb create-blocks-from openmetrics --max-block-duration=486h {} {}.tsdb > /dev/null"' - "$work"
mkdir "$work/tsdb"
mv "$work"/history.*.om.tsdb/* "$work/tsdb/"
rm -rf "$work"/history.*
echo "TSDB blocks: $(ls "$work/tsdb" | wc -l) ($(du -sh "$work/tsdb" | cut -f1)) in $(seconds_since "$t0") s"
printf 'global:\n  scrape_interval: 1m\n' > "$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" --web.listen-address="127.0.0.1:$pport" \
  --storage.tsdb.retention.time=100y --log.level=warn > "$work/prometheus.log" 2>&1 &
prom=$!
for _ in $(seq 300); do curl -fs "http://127.0.0.1:$pport/-/ready" >/dev/null 2>&1 && break; sleep 0.2; done

export Forecaster__Prometheus__Url="http://127.0.0.1:$pport" Forecaster__Prometheus__StepSeconds="$step" \
  Forecaster__Prometheus__BackfillDays="$days" Forecaster__Prometheus__BatchSources="$series" \
  Forecaster__Prometheus__MaxConcurrency="$concurrency"
serve() {
  Forecaster__Prometheus__Puller="$1" "$root/forecaster" serve --urls "http://127.0.0.1:$port" > "$work/serve-$1.log" 2>&1 &
  server=$!
  for _ in $(seq 180); do curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break; sleep 1; done
}
stop() { kill "$server"; wait "$server" 2>/dev/null || true; server=""; }

# The fleet first, then the group's templates: that one PUT creates every source at once and wakes the puller, whose
# round (all sources: BatchSources = their count) is what is measured, on a warmed-up service.
serve true
seq 0 $(( resources - 1 )) | xargs -P 4 -I{} curl -fsS -o /dev/null -X PUT "http://127.0.0.1:$port/api/v1/resources/bench-{}" \
  -H 'X-Api-Key: bench-key' -H 'Content-Type: application/json' -d '{"kind":"service","group":"bench","loadMetric":"qps","policy":{"minReplicas":1,"maxReplicas":20}}'
# Two warm-up groups of half the warm resources each, pulled in two rounds (see the warm-up below).
for half in 0 1; do
  seq $(( half * warm / 2 )) $(( (half + 1) * warm / 2 - 1 )) | xargs -P 4 -I{} curl -fsS -o /dev/null -X PUT "http://127.0.0.1:$port/api/v1/resources/warm-{}" \
    -H 'X-Api-Key: bench-key' -H 'Content-Type: application/json' -d '{"kind":"service","group":"warm'"$half"'","loadMetric":"qps","policy":{"minReplicas":1,"maxReplicas":20}}'
done
stop

# The same requests Forecaster sends: query_range from floor(now - days) to floor(now), chunks of <= 11,000 points,
# gzip accepted as Forecaster's client accepts it; GET with the query URL-encoded (Forecaster POSTs the same as a form).
raw() {
  local t0 t1 now to from chunk q
  now=$(date -u +%s); to=$(( now / step * step )); from=$(( to - days * 86400 )); chunk=$(( step * 10999 ))
  for r in $(seq 0 $(( resources - 1 ))); do for m in "${metrics[@]}"; do
    q="bench_load%7Bresource%3D%22bench-$r%22%2Cmetric%3D%22$m%22%7D"
    for (( s = from; s <= to; s += chunk + step )); do e=$(( s + chunk < to ? s + chunk : to ))
      echo "http://127.0.0.1:$pport/api/v1/query_range?query=$q&start=$s&end=$e&step=$step"; done; done; done > "$work/requests"
  t0=$(date +%s.%N)
  xargs -P "$concurrency" -n 64 curl -fsS ${1---compressed} < "$work/requests" > /dev/null
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'
}
# CPU seconds (user + system) a process has used so far, to say where a phase's work went on this shared machine.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
# CPU seconds of a process's threads named $2 (".NET Tiered Com": the JIT's tiering thread, ".NET Server GC" and ".NET BGC":
# the collector's): the part of Forecaster's CPU that is the runtime's, not the backfill's own work.
threadcpu() {
  local t
  for t in /proc/$1/task/*; do
    # shellcheck disable=SC2254  # $2 is a pattern
    case "$(cat "$t/comm" 2>/dev/null)" in $2) sed 's/.*) //' "$t/stat" 2>/dev/null || true ;; esac
  done | awk -v hz="$(getconf CLK_TCK)" '{ s += $12 + $13 } END { printf "%.2f", s / hz }'
}
# PostgreSQL's processes by role, "role cpu" a line: each live child by its title (backends by the title's database
# part), the postmaster itself, and its exited children (autovacuum workers, closed backends) as one line.
pgroles() {
  local data pm c
  data=$(python3 -c "import json;print(json.load(open('$FORECASTER_HOME/cluster.json'))['DataDir'])")
  pm=$(head -n 1 "$data/postmaster.pid")
  awk -v hz="$(getconf CLK_TCK)" '{ printf "postmaster %.2f\nexited %.2f\n", ($14 + $15) / hz, ($16 + $17) / hz }' "/proc/$pm/stat"
  for c in $(cat "/proc/$pm/task/$pm/children"); do
    # A child may exit between the listing and the reading (pipefail would end the script).
    { tr '\0' ' ' < "/proc/$c/cmdline" && echo && sed 's/.*) //' "/proc/$c/stat" || true; } 2>/dev/null |
      awk -v hz="$(getconf CLK_TCK)" -v pid="$c" 'NR == 1 { sub(/^postgres: /, ""); r = ($0 ~ /127\.0\.0\.1/) ? "backends" : ($0 ~ /autovacuum worker/ ? "autovacuum-workers" : $0); gsub(/ +$/, "", r); gsub(/ /, "-", r) }
        NR == 2 { printf "%s %.2f %s\n", r, ($12 + $13) / hz, pid }'
  done
}
# The CPU each role used between two pgroles snapshots (a process absent from the first counts whole).
pgsplit() {
  awk 'NR == FNR { before[$1 ($3 == "" ? "" : "/" $3)] = $2; next }
    { k = $1 ($3 == "" ? "" : "/" $3); d[$1] += $2 - (k in before ? before[k] : 0) }
    END { for (r in d) if (d[r] >= 0.05) printf "%s %.1f, ", r, d[r] }' "$1" "$2" | sed 's/, $//'
}
requests_per_series=$(( ( days * 86400 / step ) / 11000 + 1 ))
p0=$(cpu "$prom"); r1=$(raw); p1=$(cpu "$prom")
sources() { echo '{"sources":{"qps":"bench_load{resource=\"{{name}}\",metric=\"qps\"}","cpu_cores":"bench_load{resource=\"{{name}}\",metric=\"cpu_cores\"}","memory_bytes":"bench_load{resource=\"{{name}}\",metric=\"memory_bytes\"}"}}'; }
# Waits for the n-th pull round that stored something, and prints its log line.
round() {
  for _ in $(seq 3600); do [ "$(grep -c '"Message":"Pulled [1-9][0-9]* sources in' "$work/serve-true.log")" -ge "$1" ] && break; sleep 1; done
  grep -o '"Message":"Pulled [1-9][0-9]* sources[^"]*"' "$work/serve-true.log" | sed -n "$1p"
}
serve true
rounds=1
if [ "$cold" != 1 ]; then
  # Two rounds, each followed by an idle wait: the runtime starts counting calls for its optimised recompilation only
  # once no new method has been compiled for a while, so the second round is what brings the hot paths to their
  # final code.
  for half in 0 1; do
    curl -fsS -X PUT "http://127.0.0.1:$port/api/v1/groups/warm$half/sources" -H 'X-Api-Key: bench-key' -H 'Content-Type: application/json' -d "$(sources)" > /dev/null
    echo "warm-up $((half + 1)): $(round $rounds)"
    rounds=$((rounds + 1))
    # Idle: under 0.05 CPU seconds in a second, three seconds running (at most a minute).
    quiet=0
    for _ in $(seq 60); do
      a=$(cpu "$server"); sleep 1; b=$(cpu "$server")
      if awk -v a="$a" -v b="$b" 'BEGIN { exit !(b - a < 0.05) }'; then quiet=$((quiet + 1)); [ "$quiet" -ge 3 ] && break; else quiet=0; fi
    done
  done
fi
pgroles > "$work/pg0"
f0=$(cpu "$server"); p2=$(cpu "$prom"); g0=$(pgcpu); j0=$(threadcpu "$server" '.NET Tiered Com*'); c0=$(threadcpu "$server" '.NET [SB][eG]*')
curl -fsS -X PUT "http://127.0.0.1:$port/api/v1/groups/bench/sources" -H 'X-Api-Key: bench-key' -H 'Content-Type: application/json' -d "$(sources)" > /dev/null
line=$(round "$rounds")
f1=$(cpu "$server"); p3=$(cpu "$prom"); g1=$(pgcpu); pgroles > "$work/pg1"; split=$(pgsplit "$work/pg0" "$work/pg1"); j1=$(threadcpu "$server" '.NET Tiered Com*'); c1=$(threadcpu "$server" '.NET [SB][eG]*')
stop
r2=$(raw)
# The same requests once more without compression, for Prometheus' CPU alone: gzip (or deflate) is most of what it
# spends on these answers (300 series: 0.6 against 5.6-6.3 CPU seconds), so the raw rate above is bound by it.
p4=$(cpu "$prom"); r3=$(raw ""); p5=$(cpu "$prom")
echo "$line"
# Batches whose straight COPY into `samples` met another writer or a stored row and went through the merge instead.
echo "batches merged instead of copied: $(grep -c 'fell back to the merge' "$work/serve-true.log" || true); first reasons: $(grep -o 'fell back to the merge ([^)]*' "$work/serve-true.log" | sort | uniq -c | head -3 | tr '\n' ';')"
seconds=$(echo "$line" | sed -E 's/.* in ([0-9.]+)s.*/\1/')
serve false
cluster_psql
stored=$("${psql_cmd[@]}" -t -A -c "SELECT sum(coalesce(cardinality(sa.vals), 1)) FROM samples sa JOIN series s ON s.id = sa.series_id JOIN resources r ON r.id = s.resource_id WHERE r.\"group\" = 'bench'")
# Storage: every group's points (the warm-up groups' too) against the size of every partition, tables and indexes.
storage=$("${psql_cmd[@]}" -t -A -c "SELECT (SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('samples') WHERE isleaf) / (SELECT sum(coalesce(cardinality(vals), 1)) FROM samples)::float8")
done_series=$("${psql_cmd[@]}" -t -A -c "SELECT count(*) FROM source_pulls p JOIN resources r ON r.id = p.resource_id WHERE r.\"group\" = 'bench' AND p.watermark IS NOT NULL")
stop
awk -v p0="$p0" -v p1="$p1" -v p2="$p2" -v p3="$p3" -v f0="$f0" -v f1="$f1" -v g0="$g0" -v g1="$g1" -v j="$(awk -v a="$j0" -v b="$j1" 'BEGIN { print b - a }')" -v gc="$(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }')" -v pgs="$split" -v series="$series" -v done_series="$done_series" -v points="$stored" -v storage="$storage" -v f="$seconds" -v r1="$r1" -v r2="$r2" -v r3="$r3" -v p4="$p4" -v p5="$p5" -v rps="$requests_per_series" -v c="$concurrency" 'BEGIN {
  raw = (r1 + r2) / 2
  printf "series backfilled: %d of %d; points stored: %d; query_range requests per series: %d; concurrency %d\n", done_series, series, points, rps, c
  printf "raw curl query_range:   %7.2f s  %7.2f s  -> %7.1f series/s  %10.0f points/s (mean of 2)\n", r1, r2, series / raw, points / raw
  printf "Forecaster backfill:    %7.2f s            -> %7.1f series/s  %10.0f points/s (query, parse, upsert, watermark)\n", f, series / f, points / f
  printf "ratio Forecaster/raw: %.2f (goal >= 0.50)\n", raw / f
  printf "storage: %.1f bytes per sample (tables and indexes of every partition, before vacuum)\n", storage
  printf "PostgreSQL during the backfill by process: %s\n", pgs
  printf "the same requests uncompressed: %.2f s, prometheus %.1f CPU seconds\n", r3, p5 - p4
  printf "CPU seconds: prometheus %.1f for the first raw run, %.1f during the backfill; forecaster %.1f (of which JIT tiering %.1f, GC threads %.1f) and PostgreSQL %.1f during the backfill\n", p1 - p0, p3 - p2, f1 - f0, j, gc, g1 - g0
}'
