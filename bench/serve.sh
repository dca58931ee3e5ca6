#!/usr/bin/env bash
# Issue 6's and 16's serving benchmark: the empty service's RSS first, then N planned resources (default 10,000; seeded
# as in bench/plan.sh, then `forecaster plan`), `forecaster serve` with the rate limiter disabled (it would answer 429 to
# a benchmark by design) and the time until it is ready with every plan loaded, then wrk on loopback (2 threads, 64
# connections, in the same run): GET plan/current of random resources, and /health/live as the baseline (also through
# the same Lua path), alternated in ROUNDS rounds (default 3) of seconds/2 each (so 3 x 3 x 15 s at the default 30).
# Prints each round, then medians over the rounds: requests/s and p50/p99 of each, the median of the rounds' ratios and
# p50 differences (each round against the live run beside it), the batch endpoint's time for one page (median of 7 calls), the
# service's RSS and what each planned resource adds to it above the empty service. For each wrk run it also prints the
# service's CPU seconds and allocated bytes per request served (from its /metrics before and after the run): with wrk
# sharing the cores, these say what a request costs the service, which requests/s alone do not.
#   bench/serve.sh [resources] [seconds]
# FORECASTER_ROOT=<another checkout> measures that checkout's build with this script (e.g. a baseline worktree).
set -euo pipefail
root="${FORECASTER_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}"
n="${1:-10000}"
secs="${2:-30}"
port=18080
base="http://127.0.0.1:$port"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
work="$(mktemp -d /tmp/forecaster-serve.XXXXXX)"
chmod 755 "$work"   # as root the cluster runs as `postgres`, which must reach its data here
export FORECASTER_HOME="$work/home"
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  "$root/forecaster" db stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

"$root/forecaster" migrate >/dev/null
source "$root/bench/lib.sh"
cluster_psql

rss_of() { awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$(pgrep -P "$1" -n forecaster 2>/dev/null || echo "$1")/status" 2>/dev/null || echo "?"; }
# Starts the service (no rate limit: the point is the serving path's speed; no request logging beyond warnings) with its
# log in $1 and prints "$2 after S s" once it is ready; its pid is left in $server.
start_service() {
  Forecaster__RateLimit__Enabled=false Logging__LogLevel__Default=Warning \
    "$root/forecaster" serve --urls "$base" >"$work/$1" 2>&1 &
  server=$!
  local t0
  t0=$(date +%s.%N)
  until curl -sf "$base/health/ready" >/dev/null 2>&1; do
    kill -0 "$server" 2>/dev/null || { cat "$work/$1" >&2; exit 1; }
    sleep 0.2
  done
  awk -v a="$t0" -v b="$(date +%s.%N)" -v what="$2" 'BEGIN { printf "%s after %.1f s\n", what, b - a }'
}

# The empty service first (no resources), warmed up the same way: what each planned resource adds is measured above it.
start_service serve-empty.log "empty service ready"
wrk -t2 -c64 -d5s "$base/health/live" >/dev/null
empty_mb=$(rss_of "$server")
kill "$server"; wait "$server" 2>/dev/null || true
server=""
echo "empty service RSS $empty_mb MB"

echo "seeding $n resources with models, 48-hour forecasts and weekly peaks, then planning them ..."
"${psql_cmd[@]}" -v n="$n" -f "$root/bench/seed-planned.sql"
echo "forecaster plan: $("$root/forecaster" plan 2>/dev/null)"

start_service serve.log "serve ready (plans loaded)"
curl -s "$base/health/ready"; echo

cat >"$work/current.lua" <<'LUA'
-- Random resources, so no answer is served from one hot entry only. The requests are built once in init (n random
-- names per thread) and request() only hands the next one out: building each in Lua cost wrk CPU the server then lacked.
local reqs, i = {}, 0
function init(args)
  local n = tonumber(args[1]); math.randomseed(os.time() + math.floor(os.clock() * 1e6))
  for k = 1, n do reqs[k] = wrk.format("GET", "/api/v1/resources/bench-" .. math.random(1, n) .. "/plan/current") end
end
function request() i = i % #reqs + 1; return reqs[i] end
LUA
# The service's process CPU seconds and bytes allocated so far, as its /metrics reports them.
counters() { curl -s "$base/metrics" | awk '/^process_cpu_seconds_total / { c = $2 } /^system_runtime_dotnet_gc_heap_total_allocated / { a = $2 } END { print c, a }'; }
bench() {
  local before after out
  before=$(counters)
  out=$(wrk -t2 -c64 -d"${run_secs}s" --latency "$@")
  after=$(counters)
  printf '%s\n' "$out"
  awk -v b="$before" -v a="$after" -v n="$(awk '/requests in/ { print $1 }' <<<"$out")" 'BEGIN {
    split(b, x, " "); split(a, y, " ")
    printf "service: %.2f CPU s for %d requests = %.1f us per request; %.0f bytes allocated per request\n", y[1] - x[1], n, (y[1] - x[1]) * 1e6 / n, (y[2] - x[2]) / n }'
}
cat >"$work/every.lua" <<'LUA'
-- Every resource in turn (wrk's two threads start half the fleet apart), so each one's answer has been rendered once.
local threads, reqs, i = 0, {}, 0
function setup(thread) thread:set("first", threads); threads = threads + 1 end
function init(args)
  local n = tonumber(args[1])
  for k = 1, n do reqs[k] = wrk.format("GET", "/api/v1/resources/bench-" .. ((k - 1 + first * math.floor(n / 2)) % n + 1) .. "/plan/current") end
end
function request() i = i % #reqs + 1; return reqs[i] end
LUA
# Warm-up (JIT tiers, connection pools, first GCs) so neither measured run pays it, not reported. First every resource once:
# an answer is rendered on its first request in an hour and then served as stored bytes, and executors poll each resource
# every 15-30 s, so a rendering serves some 120 polls. Random picks alone (5 s) left about a fifth of 100,000 answers
# unrendered, and the timed run then measured those first renderings (session 8: 63-67 against 42 us per request). 20 s:
# a first rendering costs about ten times a stored answer, and each thread must get through its half of the fleet.
echo "warm-up, every resource in turn: $(wrk -t2 -c64 -d20s -s "$work/every.lua" "$base" -- "$n" | awk '/requests in/ { print $1 }') requests for $n resources"
wrk -t2 -c64 -d5s -s "$work/current.lua" "$base" -- "$n" >/dev/null
wrk -t2 -c64 -d5s "$base/health/live" >/dev/null
# The same probe through a Lua request() like plan/current's: wrk shares the 2 cores, and calling into Lua for each
# request costs it CPU the server then lacks, so this isolates the server's share of the difference.
cat >"$work/live.lua" <<'LUA'
local req
function init(args) req = wrk.format("GET", "/health/live") end
function request() return req end
LUA
# Rounds: one 20 s run per endpoint compared runs minutes apart on a machine whose speed drifts (live alone cost 38-46 us
# per request from one run to the next), so the three are alternated in short runs, each round's ratio taken against the
# live runs beside it, and the medians over the rounds reported. The order flips every round so neither endpoint always
# runs first after the other.
rounds="${ROUNDS:-3}"
run_secs=$(( secs / 2 > 2 ? secs / 2 : 2 ))
for r in $(seq 1 "$rounds"); do
  order=(current live live-lua)
  [ $(( r % 2 )) -eq 0 ] && order=(live-lua live current)
  for what in "${order[@]}"; do
    case "$what" in
      current) echo "== round $r: wrk plan/current (random of $n), $run_secs s =="; bench -s "$work/current.lua" "$base" -- "$n" >"$work/$what-$r.txt" ;;
      live) echo "== round $r: wrk /health/live, $run_secs s =="; bench "$base/health/live" >"$work/$what-$r.txt" ;;
      live-lua) echo "== round $r: wrk /health/live through Lua, $run_secs s =="; bench -s "$work/live.lua" "$base" >"$work/$what-$r.txt" ;;
    esac
    cat "$work/$what-$r.txt"
  done
done

rps() { awk '/^Requests\/sec:/ { print $2 }' "$1"; }
us() { awk '/^service:/ { print $9 }' "$1"; }
bytes() { awk '/^service:/ { print $13 }' "$1"; }
pct() { awk -v p="$2" '$1 == p { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } print v }' "$1"; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# Each round on one line: the rates, the service's CPU per request, and that round's own ratio and p50 difference.
for r in $(seq 1 "$rounds"); do
  c="$work/current-$r.txt"; l="$work/live-$r.txt"; ll="$work/live-lua-$r.txt"
  awk -v r="$r" -v c="$(rps "$c")" -v l="$(rps "$l")" -v ll="$(rps "$ll")" -v c50="$(pct "$c" 50%)" -v l50="$(pct "$l" 50%)" \
      -v cu="$(us "$c")" -v lu="$(us "$l")" -v llu="$(us "$ll")" 'BEGIN {
    printf "round %d: plan/current %.0f req/s (%s us), live %.0f req/s (%s us), live through Lua %.0f req/s (%s us): ratio %.2f (through Lua %.2f), p50 difference %.2f ms\n", r, c, cu, l, lu, ll, llu, c / l, c / ll, c50 - l50 }'
done >"$work/rounds.txt"
of() { # of WHAT FUNCTION [ARG]: the median over the rounds of FUNCTION applied to WHAT's run
  for r in $(seq 1 "$rounds"); do "$2" "$work/$1-$r.txt" ${3:+"$3"}; done | median
}
ratio_of() { # the median over the rounds of plan/current's rate over WHAT's in the same round
  for r in $(seq 1 "$rounds"); do awk -v c="$(rps "$work/current-$r.txt")" -v l="$(rps "$work/$1-$r.txt")" 'BEGIN { print c / l }'; done | median
}
p50_diff=$(for r in $(seq 1 "$rounds"); do awk -v c="$(pct "$work/current-$r.txt" 50%)" -v l="$(pct "$work/live-$r.txt" 50%)" 'BEGIN { print c - l }'; done | median)

# One page holds at most Forecaster:Serving:MaxBatch (10,000) resources: above that, the first page.
page=$(( n < 10000 ? n : 10000 ))
echo "== batch GET /api/v1/plans/current (first $page of $n) =="
times=()
for i in 1 2 3 4 5 6 7; do
  line=$(curl -s -o /dev/null -w '%{time_total} %{size_download} %{http_code}' "$base/api/v1/plans/current?limit=$page")
  echo "call $i: ${line% *} s, $(awk '{ print $2 }' <<<"$line") bytes, HTTP ${line##* }"
  times+=("$(awk '{ print $1 }' <<<"$line")")
done
batch_ms=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { printf "%.1f", a[int((NR + 1) / 2)] * 1000 }')
rss_mb=$(rss_of "$server")

echo
cat "$work/rounds.txt"
awk -v rounds="$rounds" -v run="$run_secs" \
    -v c="$(of current rps)" -v l="$(of live rps)" -v ll="$(of live-lua rps)" \
    -v c50="$(of current pct 50%)" -v c99="$(of current pct 99%)" -v l50="$(of live pct 50%)" -v l99="$(of live pct 99%)" \
    -v ll50="$(of live-lua pct 50%)" -v ll99="$(of live-lua pct 99%)" \
    -v cu="$(of current us)" -v cb="$(of current bytes)" -v lu="$(of live us)" -v lb="$(of live bytes)" -v llu="$(of live-lua us)" -v llb="$(of live-lua bytes)" \
    -v ratio="$(ratio_of live)" -v ratio_lua="$(ratio_of live-lua)" -v d50="$p50_diff" \
    -v b="$batch_ms" -v n="$n" -v page="$page" -v rss="$rss_mb" -v empty="$empty_mb" 'BEGIN {
  printf "\nmedians of %d rounds of %d s per endpoint (ratio and p50 difference: medians over the rounds, each against the live run of the same round):\n", rounds, run
  printf "plan/current: %.0f req/s, p50 %.2f ms, p99 %.2f ms\n", c, c50, c99
  printf "/health/live: %.0f req/s, p50 %.2f ms, p99 %.2f ms\n", l, l50, l99
  printf "/health/live through Lua: %.0f req/s, p50 %.2f ms, p99 %.2f ms\n", ll, ll50, ll99
  printf "service per request (CPU, allocated): plan/current %.1f us, %.0f B; live %.1f us, %.0f B; live through Lua %.1f us, %.0f B\n", cu, cb, lu, lb, llu, llb
  printf "ratio plan/current / live: %.2f (through Lua: %.2f; goal >= 0.80); p50 difference %.2f ms (goal <= 0.2 ms)\n", ratio, ratio_lua, d50
  printf "batch, %d resources: median %.1f ms (goal < 100 ms); service RSS %s MB\n", page, b, rss
  printf "above the empty service (%s MB): %.1f KB per planned resource (goal <= 4 KB)\n", empty, (rss - empty) * 1024 / n }'
