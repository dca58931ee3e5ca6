#!/usr/bin/env bash
# Issue 16's scale-out benchmark: the same training run (N series, default 20,000: N/2 resources of bench/train.sh's fleet,
# 35 days hourly) through the service, first with one instance pinned to one core (`taskset -c 0`), then with two instances
# on the same database, pinned to one core each (`-c 0`, `-c 1`), sharing the run's shards through Hangfire. PostgreSQL is
# not pinned (it serves both cases alike). Prints each run's seconds, which instance ran which shards, the load average,
# and the ratio two ÷ one (goal ≤ 0.6).
#   [FORECASTER_ROOT=DIR] [SCALE_OUT_ROUNDS=N] bench/scale-out.sh [series] [shards]
# shards: the service's default (Forecaster:Training:Shards) unless given. FORECASTER_ROOT=<another checkout> measures that
# checkout's build with this script (e.g. a baseline worktree). SCALE_OUT_ROUNDS=N (default 1) times the pair of cases N
# times on the one imported database and prints each round's ratio and their median: this machine's speed drifts between
# runs (one instance took 78.7-91.9 s within an hour), so one pair is one sample. Odd rounds time one instance first,
# even rounds the pair first. Rounds after the first retrain over
# stored models, as SCALE_OUT_WARM's do.
# SCALE_OUT_SETTLE=S (default 90): each timed case's instances are up S seconds before the run starts, as a nightly run
# meets them. A service just started spends its first minute tiering up its own code (JIT), about 3.5 CPU s on the
# core the run needs; a run that starts with it pays that once per instance, in both cases, which says nothing about
# sharing a run (bench/README.md, session 13). SCALE_OUT_SETTLE=0 starts the run as soon as the instances are ready
# (sessions 9-12). The shard processes start with the run either way, as they do at night (they exit after 10 idle minutes).
# SCALE_OUT_LOGS=DIR keeps the instances' logs there (one.log, a.log, b.log: each shard's fitting seconds, and its CPU
# seconds where the shard ran in a child process).
# SCALE_OUT_WARM=1 trains once through an instance of its own (core 0, stopped after) before the timed cases (untimed, then vacuumed), so that both
# timed cases retrain over stored models, as a nightly run does: by default the first case writes into empty tables while
# the second supersedes the first's versions, deletes its forecasts and updates its capacity models and weekly peaks.
# SCALE_OUT_PGSTAT=DIR profiles PostgreSQL in each case (not for timings: the sampler costs CPU of its own): loads
# pg_stat_statements into the cluster (a restart after the import), and writes per case to DIR the statements by total
# time, pg_stat_wal, the tables' row counts and vacuums, and the cluster's CPU seconds per application_name / backend_type
# (bench/pg-sampler.py).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
root="${FORECASTER_ROOT:-$here}"
rounds="${SCALE_OUT_ROUNDS:-1}"
series="${1:-20000}"
shards="${2:-}"
resources=$(( series / 2 ))
work="$(mktemp -d /tmp/forecaster-scale.XXXXXX)"
chmod 755 "$work"   # as root the cluster runs as `postgres`, which must reach its data here
export FORECASTER_HOME="$work/home" Forecaster__Training__ModelsPath="$work/models"
export Forecaster__Training__SchedulerIdleSeconds=1 FORECASTER_API_KEYS=bench
[ -z "$shards" ] || export Forecaster__Training__Shards="$shards"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.2; done; done
  "$root/forecaster" db stop >/dev/null 2>&1 || true
  if [ -n "${SCALE_OUT_LOGS:-}" ]; then mkdir -p "$SCALE_OUT_LOGS" && cp "$work"/*.log "$SCALE_OUT_LOGS"/ 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
source "$here/bench/lib.sh"

echo "generating $resources resources x 3 metrics x $(( 35 * 24 )) hourly points ..."
fleet_csv "$resources" $(( 35 * 24 )) "$work/samples.csv"
# The import starts the embedded cluster unpinned; the services below connect to it.
"$root/forecaster" import "$work/samples.csv" --create-resources | tail -1
rm -f "$work/samples.csv"
"$root/forecaster" db status >/dev/null
# Each timed case starts from a vacuumed, analyzed database: neither pays for autovacuum's pass over what came before it
# (the import's 25 M rows for the first case, the first case's superseded versions and replaced forecasts for the second).
cluster_psql
vacuum() { "${psql_cmd[@]}" -c "VACUUM (ANALYZE)" >/dev/null; }
datadir() { python3 -c "import json;print(json.load(open('$FORECASTER_HOME/cluster.json'))['DataDir'])"; }
case_name=one
if [ -n "${SCALE_OUT_PGSTAT:-}" ]; then
  mkdir -p "$SCALE_OUT_PGSTAT"
  "${psql_cmd[@]}" -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" -c "ALTER SYSTEM SET track_functions = 'all'"
  pg_ctl=$(ls /usr/lib/postgresql/*/bin/pg_ctl | tail -1)
  su postgres -s /bin/sh -c "$pg_ctl restart -D '$(datadir)' -w -m fast" >/dev/null
  cluster_psql
  "${psql_cmd[@]}" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
fi
profile_begin() {
  [ -n "${SCALE_OUT_PGSTAT:-}" ] || return 0
  "${psql_cmd[@]}" -c "SELECT pg_stat_statements_reset(), pg_stat_reset_shared('wal'), pg_stat_reset(), pg_stat_reset_shared('bgwriter')" >/dev/null
  python3 "$here/bench/pg-sampler.py" "$(head -1 "$(datadir)/postmaster.pid")" "${psql_cmd[@]}" > "$SCALE_OUT_PGSTAT/$case_name-cpu.txt" &
  sampler=$!
}
profile_end() {
  [ -n "${SCALE_OUT_PGSTAT:-}" ] || return 0
  kill -TERM "$sampler"; wait "$sampler" || true
  local out="$SCALE_OUT_PGSTAT/$case_name"
  "${psql_cmd[@]}" -P pager=off -c "SELECT calls, round(total_exec_time::numeric, 1) AS ms, round((total_exec_time / calls)::numeric, 3) AS ms_per_call, rows, wal_bytes, shared_blks_hit + shared_blks_read AS blks, left(regexp_replace(query, '\s+', ' ', 'g'), 220) AS query FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 60" > "$out-statements.txt"
  "${psql_cmd[@]}" -P pager=off -c "SELECT sum(calls) AS calls, round(sum(total_exec_time)::numeric) AS ms FROM pg_stat_statements" -c "SELECT * FROM pg_stat_wal" -c "SELECT * FROM pg_stat_bgwriter" -c "SELECT schemaname, relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del, seq_scan, idx_scan, autovacuum_count, autoanalyze_count FROM pg_stat_user_tables WHERE n_tup_ins + n_tup_upd + n_tup_del + seq_scan + coalesce(idx_scan, 0) > 0 ORDER BY n_tup_ins + n_tup_upd + n_tup_del DESC" -c "SELECT funcname, calls, total_time, self_time FROM pg_stat_user_functions ORDER BY total_time DESC LIMIT 20" > "$out-tables.txt"
  echo "  PostgreSQL CPU by process ($case_name):"; cat "$SCALE_OUT_PGSTAT/$case_name-cpu.txt"
}

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Starts `serve` pinned to core $1, logging to $2; echoes "pid port" (started in a subshell: stopped by pid, not waited for).
start() {
  local p; p=$(port)
  taskset -c "$1" "$root/.build/forecaster/forecaster" serve --urls "http://127.0.0.1:$p" > "$2" 2>&1 &
  local pid=$!
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$p/health/ready" >/dev/null 2>&1 && break; sleep 0.5; done
  echo "$pid $p"
}

# CPU seconds (user + system) of process $1 so far, with its exited children's (cutime, cstime) and its live children's:
# a service's shard processes count as the service (their CPU reaches its cutime only once they exit), and PostgreSQL's
# live backends as PostgreSQL, so that its share of the two cores is counted too.
cpu() {
  local total c
  total=$(awk '{print ($14 + $15 + $16 + $17) / 100}' "/proc/$1/stat")
  for c in $(pgrep -P "$1"); do total=$(awk -v t="$total" '{print t + ($14 + $15 + $16 + $17) / 100}' "/proc/$c/stat" 2>/dev/null || echo "$total"); done
  echo "$total"
}

# Waits SCALE_OUT_SETTLE seconds with the instances $@ up and idle; says how much CPU each spent meanwhile.
settle() {
  local s="${SCALE_OUT_SETTLE:-90}" before=() spent=() p i=0
  [ "$s" -gt 0 ] || return 0
  for p in "$@"; do before+=("$(cpu "$p")"); done
  sleep "$s"
  for p in "$@"; do spent+=("$(python3 -c "print('%.1f' % ($(cpu "$p") - ${before[$i]}))")"); i=$((i + 1)); done
  echo "  the instances were up ${s} s before the run (SCALE_OUT_SETTLE); CPU seconds meanwhile, in start order: ${spent[*]}"
}

# One run through the instance on port $1 (instances' pids after it); prints "seconds" after the run's summary line: which
# instance trained how many series, each instance's and PostgreSQL's CPU seconds during the run, and the idle tail (from the
# first instance's last shard ending to the run's end: the time one instance had no shard left while the other still worked).
train() {
  local port="$1" id run before=() after=() pg0 pg1 p
  shift
  for p in "$@"; do before+=("$(cpu "$p")"); done
  profile_begin
  pg0=$(pgcpu)
  run=$(service_training_run "$port")
  for p in "$@"; do after+=("$(cpu "$p")"); done
  pg1=$(pgcpu)
  profile_end >&2
  id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$run")
  echo "$run" | CPU_BEFORE="${before[*]}" CPU_AFTER="${after[*]}" PG_CPU="$pg0 $pg1" python3 -c '
import json, os, sys, collections, datetime
r = json.load(sys.stdin); d = r["progress"]["done"]
shards = r.get("shards") or []
name = lambda s: (s.get("instanceId") or "?").split("/")[0]
by = collections.Counter(name(s) for s in shards)
series = collections.Counter()
last = {}
for s in shards:
    series[name(s)] += s.get("seriesDone") or 0
    if s.get("finishedAt"):
        t = datetime.datetime.fromisoformat(s["finishedAt"].replace("Z", "+00:00"))
        last[name(s)] = max(last.get(name(s), t), t)
cpu = ["%.1f" % (float(a) - float(b)) for b, a in zip(os.environ["CPU_BEFORE"].split(), os.environ["CPU_AFTER"].split())]
pg = [float(x) for x in os.environ["PG_CPU"].split()]
tail = (max(last.values()) - min(last.values())).total_seconds() if len(last) > 1 else 0.0
print("  run %d: %s series=%d seconds=%.1f rate=%.1f/s shards per instance: %s series per instance: %s" % (r["id"], r["status"], d, r["seconds"], d / r["seconds"], dict(by), dict(series)), file=sys.stderr)
print("  CPU seconds per instance (in start order): %s; PostgreSQL: %.1f; idle tail: %.1f s" % (", ".join(cpu), pg[1] - pg[0], tail), file=sys.stderr)
if r["status"] != "succeeded":
    # A failed run is no timing: say why (the run, its shards) and stop.
    print("  run failed: %s" % json.dumps({k: v for k, v in r.items() if "error" in k.lower()}), file=sys.stderr)
    for s in shards:
        if s.get("error") or s.get("status") != "succeeded":
            print("  shard: %s" % json.dumps(s), file=sys.stderr)
    sys.exit(1)
print("%.3f" % r["seconds"])' || return 1
  # Planning follows the run as a job of its own: let it finish, so it never runs inside the next case's timing.
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$port/api/v1/training-runs/$id" | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin).get("planning") else 1)' && break
    sleep 1
  done
}

# The instances of the case (or warm-up run) that ran last (pids), stopped before the next case starts.
stop_instances() {
  [ "${#pids[@]}" -gt 0 ] || return 0
  kill "${pids[@]}"
  for p in "${pids[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.2; done; done
  pids=()
}

"$root/forecaster" --help >/dev/null   # builds once, before anything is timed
if [ -n "${SCALE_OUT_WARM:-}" ]; then
  echo "untimed warm-up run (SCALE_OUT_WARM), one instance, taskset -c 0:"
  read -r pid1 port1 < <(start 0 "$work/warm.log"); pids+=("$pid1")
  case_name=warm
  train "$port1" "$pid1" >/dev/null || { grep -ihE 'fail|exception' "$work/warm.log" | head -20 >&2; exit 1; }
fi
case_one() {
  stop_instances; vacuum
  case_name=one$suffix
  echo "one instance, taskset -c 0:"
  read -r pid1 port1 < <(start 0 "$work/one$suffix.log"); pids+=("$pid1")
  settle "$pid1"
  one=$(train "$port1" "$pid1") || { grep -ihE 'fail|exception' "$work/one$suffix.log" | head -20 >&2; exit 1; }
  echo "  load average: $(cut -d' ' -f1-3 /proc/loadavg)"
}
case_two() {
  stop_instances; vacuum
  case_name=two$suffix
  echo "two instances, taskset -c 0 and -c 1:"
  read -r pid1 port1 < <(start 0 "$work/a$suffix.log"); pids+=("$pid1")
  read -r pid2 port2 < <(start 1 "$work/b$suffix.log"); pids+=("$pid2")
  settle "$pid1" "$pid2"
  two=$(train "$port1" "$pid1" "$pid2") || { grep -ihE 'fail|exception' "$work/a$suffix.log" "$work/b$suffix.log" | head -20 >&2; exit 1; }
  echo "  load average: $(cut -d' ' -f1-3 /proc/loadavg)"
}
# Odd rounds time one instance first, even rounds the pair first, so that a drift of the machine's speed over the rounds
# (this machine's shared cores drift by 10% within minutes) does not favour either case.
ratios=()
for round in $(seq "$rounds"); do
  [ "$rounds" = 1 ] || echo "round $round of $rounds:"
  suffix=""; [ "$round" = 1 ] || suffix="-$round"
  if [ $((round % 2)) = 1 ]; then case_one; case_two; else case_two; case_one; fi
  ratio=$(python3 -c "print('%.3f' % ($two / $one))")
  ratios+=("$ratio")
  python3 -c "print('scale-out: one instance %.1f s, two instances %.1f s, ratio two/one %.2f (goal <= 0.60)' % ($one, $two, $two / $one))"
done
[ "$rounds" = 1 ] || python3 -c "
import statistics, sys
r = [float(x) for x in sys.argv[1:]]
print('scale-out over %d rounds: ratios %s, median %.2f (goal <= 0.60)' % (len(r), ', '.join('%.2f' % x for x in r), statistics.median(r)))" "${ratios[@]}"

if [ "${#pids[@]}" != 2 ]; then
  stop_instances
  read -r pid1 port1 < <(start 0 "$work/a-propagation.log"); pids+=("$pid1")
  read -r pid2 port2 < <(start 1 "$work/b-propagation.log"); pids+=("$pid2")
fi

# The other half of the goal, with two separate processes: a plan published through instance A (a policy change replans
# and publishes it before PUT answers) is served by instance B, which hears it through PostgreSQL's NOTIFY.
version_on() { curl -sf "http://127.0.0.1:$1/api/v1/resources/bench-0/plan/current" | python3 -c 'import json,sys; print(json.load(sys.stdin)["planVersion"])'; }
before=$(version_on "$port2")
start_ns=$(date +%s%N)
curl -sf -o /dev/null -X PUT "http://127.0.0.1:$port1/api/v1/resources/bench-0" -H 'X-Api-Key: bench' -H 'Content-Type: application/json' \
  -d '{"kind":"service","group":"default","loadMetric":"qps","policy":{"minReplicas":3,"maxReplicas":400}}'
published_ns=$(date +%s%N)
for _ in $(seq 1000); do
  now=$(version_on "$port2")
  [ "$now" != "$before" ] && break
  sleep 0.01
done
end_ns=$(date +%s%N)
[ "$now" != "$before" ] || { echo "instance B never served the plan published through A" >&2; exit 1; }
python3 -c "print('plan published through instance A (version $before -> $now): PUT answered in %.0f ms, served by instance B %.0f ms after it answered (goal <= 2000 ms)' % (($published_ns - $start_ns) / 1e6, ($end_ns - $published_ns) / 1e6))"
