#!/usr/bin/env bash
# Issue 13's concurrent-writer benchmark: 8 and 32 writers upserting samples (JSON and CSV, 25 rows per request in a
# shuffled order) for N seconds each (default 60) on overlapping keys and on disjoint keys, in one run against one
# service (rate limiter off). Prints writes/s, errors and latency per case and overlapping/disjoint ratios.
#   bench/writers.sh [seconds] [writer counts, e.g. 8,32]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-60}"
counts="${2:-8,32}"
work="$(mktemp -d /tmp/forecaster-writers.XXXXXX)"
chmod 755 "$work"   # as root the cluster runs as `postgres`, which must reach its data here
export FORECASTER_HOME="$work/home" FORECASTER_API_KEYS=bench-key Forecaster__RateLimit__Enabled=false
port="${WRITERS_PORT:-18183}"

dotnet build "$root/bench/Forecaster.Bench" -c Release -nologo -clp:ErrorsOnly -v:q >&2
"$root/forecaster" serve --urls "http://127.0.0.1:$port" > "$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; "$root/forecaster" db stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
for _ in $(seq 180); do curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break; sleep 1; done

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) before the run"
rc=0
dotnet run -c Release --no-build --project "$root/bench/Forecaster.Bench" -- writers "http://127.0.0.1:$port" bench-key "$seconds" "$counts" || rc=$?
echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "server-side retries after deadlock/serialization failures: $(grep -o 'retries: [1-9][0-9]*' "$work/serve.log" | wc -l) requests (CSV path, as logged)"
exit "$rc"
