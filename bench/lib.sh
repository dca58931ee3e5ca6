# Sourced by the bench scripts: psql on the embedded cluster of $FORECASTER_HOME (address and password from its
# cluster.json and postmaster.pid), as the array psql_cmd.
cluster_psql() {
  local data
  data=$(python3 -c "import json;print(json.load(open('$FORECASTER_HOME/cluster.json'))['DataDir'])")
  export PGPASSWORD
  PGPASSWORD=$(python3 -c "import json;print(json.load(open('$FORECASTER_HOME/cluster.json'))['Password'])")
  psql_cmd=(psql -X -q -h 127.0.0.1 -p "$(sed -n 4p "$data/postmaster.pid")" -U forecaster -d forecaster -v ON_ERROR_STOP=1)
}
