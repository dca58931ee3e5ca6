#!/usr/bin/env bash
# Issue 7's closing-note tables: `forecaster simulate` on the demo fleet's load (25 series, 35 days ending 2026-01-05,
# generated in-process, 28 training days) and on the real M4 Hourly series treated as load (414 series of 700 or 960 hours,
# i.e. 29-40 days, so 21 training days), with the same policy (bench/simulate-policy.json unless given). Prints both tables
# and the replay speed; the JSON reports go to $out (default /tmp/forecaster-simulate).
#   bench/simulate.sh [policy.json]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
policy="${1:-$root/bench/simulate-policy.json}"
out="${out:-/tmp/forecaster-simulate}"
m4="${M4_HISTORY:-$root/../shared/benchmarks/m4-hourly/history.csv}"
mkdir -p "$out"

echo "== demo fleet (--demo, --train-days 28)"
"$root/forecaster" simulate --demo --policy "$policy" --train-days 28 --output "$out/demo.json"

# Issue 15: how many of the demo replay's short hours are burst onsets that no forecast can see.
echo
echo "== demo fleet: burst onsets against each strategy's short hours (bench/demo-bursts.cs)"
dotnet run "$root/bench/demo-bursts.cs" "$out/demo.json" | tail -n 9

echo
echo "== M4 Hourly as load ($m4, --train-days 21)"
"$root/forecaster" simulate --input "$m4" --policy "$policy" --train-days 21 --output "$out/m4.json"

# A team provisions by policy: on series with shallow daily swings (much of M4) the upper 95% bound over the 70% target
# counts the safety margin twice, and the point forecast with the reactive safety net is the policy that pays there.
echo
echo "== M4 Hourly as load, forecastBound point (bench/simulate-policy-point.json), --train-days 21"
"$root/forecaster" simulate --input "$m4" --policy "$root/bench/simulate-policy-point.json" --train-days 21 --output "$out/m4-point.json"

# Speed, the issue's "35-day replay of 100 series": the first 100 M4 series of 960 hours cut to 840 (35 days), 28 training days.
echo
echo "== speed: 100 series x 35 days (M4 series of 960 hours cut to 840), --train-days 28"
awk -F, 'NR == FNR { if (FNR > 1) c[$1]++; next }
         FNR == 1 { print; next }
         c[$1] == 960 { if ($1 != last) { n++; k = 0; last = $1 } if (n <= 100 && k++ < 840) print }' "$m4" "$m4" > "$out/speed.csv"
time "$root/forecaster" simulate --input "$out/speed.csv" --policy "$policy" --train-days 28 --output "$out/speed.json" | head -1
