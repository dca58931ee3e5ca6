#!/usr/bin/env bash
# The hourly rollups' refresh after a push (issue 16): N series (default 100,000) with one-point hourly blocks from
# yesterday 00:00 UTC to the last whole hour, written hour by hour across the fleet (as pushes lay them on the heap), and
# their rollups fresh; then ROUNDS times (default 3) a push of one new point per series at the current time through the
# `sample_points` view (each writes its block and its stale mark, as the build under test marks), a CHECKPOINT, and the
# refresh alone: `forecaster import` of a file with only a header (the verb's refresh of every stale day). Each round
# prints the refresh's own line, the verb's CPU seconds (user + system, its start included) and PostgreSQL's (the cluster's
# postmaster and children, bench/lib.sh's pgcpu) around it. Last, the same verb with nothing stale: its start alone.
# FORECASTER_ROOT=<another checkout> measures that checkout's build with this script (e.g. a baseline worktree).
#   [FORECASTER_ROOT=DIR] bench/rollup-refresh.sh [series] [rounds]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
root="${FORECASTER_ROOT:-$here}"
n="${1:-100000}"
rounds="${2:-3}"
work="$(mktemp -d /tmp/forecaster-rollups.XXXXXX)"
chmod 755 "$work"   # as root the cluster runs as `postgres`, which must reach its data here
export FORECASTER_HOME="$work/home"
trap '"$root/forecaster" db stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

"$root/forecaster" migrate >/dev/null
source "$here/bench/lib.sh"
cluster_psql
echo "resource,metric,timestamp,value" > "$work/empty.csv"

# The refresh alone: prints "<label>: <refresh line>; CPU forecaster X s, PostgreSQL Y s".
refresh() {
  local label="$1" before after
  before=$(pgcpu)
  /usr/bin/time -f '%U %S' -o "$work/time" "$root/forecaster" import "$work/empty.csv" > /dev/null 2> "$work/import.err" || { cat "$work/import.err" >&2; exit 1; }
  after=$(pgcpu)
  printf '%s: %s; CPU forecaster %.2f s, PostgreSQL %.2f s\n' "$label" "$(grep 'hourly rollups:' "$work/import.err" | tail -1)" \
    "$(awk '{ print $1 + $2 }' "$work/time")" "$(awk -v a="$after" -v b="$before" 'BEGIN { print a - b }')"
}

echo "seeding $n series, hourly blocks from yesterday 00:00 UTC to the last whole hour ..."
"${psql_cmd[@]}" -v n="$n" <<'SQL'
DO $$ BEGIN PERFORM ensure_sample_partitions(date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '1 day', now() + interval '1 hour'); END $$;
INSERT INTO samples (series_id, hour, value)
SELECT s, h, 50 + 40 * sin(s + extract(epoch FROM h) / 3600 / 24 * 2 * pi()) + random()
FROM generate_series(date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '1 day',
                     date_trunc('hour', now()) - interval '1 hour', interval '1 hour') AS h,
     generate_series(1, :n) AS s
ORDER BY h, s;
-- Every stored day stale as a whole (a mark without hours means that on every build), so that the first refresh computes them.
INSERT INTO sample_hours_stale (series_id, day)
SELECT DISTINCT series_id, date_bin('1 day', hour, timestamptz '2000-01-01 00:00:00+00') FROM samples;
SQL
refresh "seed"
"${psql_cmd[@]}" -c "VACUUM ANALYZE samples, sample_hours, sample_hours_stale" -c CHECKPOINT
"${psql_cmd[@]}" -At -c "SELECT 'today: ' || count(*) / $n || ' hourly blocks per series before the push (hour ' || extract(hour FROM now() AT TIME ZONE 'UTC') || ' UTC), rollup rows ' || (SELECT count(*) FROM sample_hours) FROM samples WHERE hour >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"

for round in $(seq "$rounds"); do
  "${psql_cmd[@]}" -c "INSERT INTO sample_points (series_id, ts, value) SELECT s, now(), 100 * random() FROM generate_series(1, $n) AS s" -c CHECKPOINT
  refresh "push $round, $n points"
done
"${psql_cmd[@]}" -c CHECKPOINT
refresh "nothing stale"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
