# Sourced by the bench scripts: psql on the embedded cluster of $FORECASTER_HOME (address and password from its
# cluster.json and postmaster.pid), as the array psql_cmd.
cluster_psql() {
  local data
  data=$(python3 -c "import json;print(json.load(open('$FORECASTER_HOME/cluster.json'))['DataDir'])")
  export PGPASSWORD
  PGPASSWORD=$(python3 -c "import json;print(json.load(open('$FORECASTER_HOME/cluster.json'))['Password'])")
  psql_cmd=(psql -X -q -h 127.0.0.1 -p "$(sed -n 4p "$data/postmaster.pid")" -U forecaster -d forecaster -v ON_ERROR_STOP=1)
}

# The synthetic fleet of the training benchmarks: $1 resources × 3 metrics (qps, cpu_cores, replicas) × $2 hourly points
# ending at the last whole hour, written as import CSV to $3. Two trained series per resource (qps, cpu_cores).
fleet_csv() {
  local resources="$1" hours="$2" out="$3" now start
  now=$(date -u +%s); start=$(( (now / 3600 - hours) * 3600 ))
  awk -v resources="$resources" -v hours="$hours" -v start="$start" 'BEGIN {
    srand(42); print "resource,metric,timestamp,value"
    for (r = 0; r < resources; r++) {
      base = 50 + (r % 97) * 20; amp = 0.3 + (r % 7) * 0.08; peak = r % 24; perCore = 100 + (r % 13) * 15
      for (i = 0; i < hours; i++) {
        t = start + i * 3600; h = (i + peak) % 24; dow = int(i / 24) % 7
        load = base * (1 + amp * sin(2 * 3.14159265 * h / 24)) * (dow >= 5 ? 0.8 : 1) * (1 + 0.05 * (rand() - 0.5) * 2)
        rep = int(load / (perCore * 0.7)) + 2
        ts = strftime("%Y-%m-%dT%H:%M:%SZ", t, 1)
        printf "bench-%d,qps,%s,%.3f\nbench-%d,cpu_cores,%s,%.4f\nbench-%d,replicas,%s,%d\n", r, ts, load, r, ts, rep * 0.1 + load / perCore, r, ts, rep
      }
    }
  }' > "$out"
}

# Starts a training run through the service on 127.0.0.1:$1 (API key `bench`) and waits until it has ended; prints the
# run as GET /api/v1/training-runs/{id} returns it (status succeeded or failed) on stdout.
service_training_run() {
  local port="$1" id run status
  id=$(curl -sf -X POST "http://127.0.0.1:$port/api/v1/training-runs" -H 'X-Api-Key: bench' -H 'Content-Type: application/json' -d '{}' \
       | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  # The status by grep, not a python3 per poll: a second's poll must not cost the run's cores more than the service's answer.
  while :; do
    run=$(curl -sf "http://127.0.0.1:$port/api/v1/training-runs/$id")
    status=$(grep -o '"status":"[a-z]*"' <<<"$run" | head -1 | cut -d'"' -f4)
    case "$status" in succeeded|failed) break ;; esac
    sleep 1
  done
  printf '%s\n' "$run"
}

# CPU seconds (user + system) of the embedded cluster of $FORECASTER_HOME: the postmaster with its exited children (its
# cutime and cstime), plus its live processes (backends, WAL writer, checkpointer, autovacuum), each counted once.
pgcpu() {
  local data pm
  data=$(python3 -c "import json;print(json.load(open('$FORECASTER_HOME/cluster.json'))['DataDir'])")
  pm=$(head -n 1 "$data/postmaster.pid")
  { cat "/proc/$pm/stat"; for c in $(cat "/proc/$pm/task/$pm/children"); do cat "/proc/$c/stat" 2>/dev/null || true; done; } |
    awk -v hz="$(getconf CLK_TCK)" -v pm="$pm" '{ t += $14 + $15; if ($1 == pm) t += $16 + $17 } END { printf "%.2f", t / hz }'
}
