#!/usr/bin/env bash
# A one-host Spark standalone cluster for development and CI: a master and
# one worker on loopback (random free ports), from the `pyspark` package on
# PyPI (it ships Spark's jars and bin/ scripts) installed in a venv under
# $PADDOCK_SPARK_DIR, readable by every user (the e2e tests spark-submit as
# SSH test users). Needs Java 17 (scripts/deps.sh java) and, the first time,
# PyPI (the venv is kept, so later starts are offline).
#
#   scripts/dev-spark.sh start   install if needed, start, wait until the worker is ALIVE
#   scripts/dev-spark.sh stop    stop what start started
#
# As on a real head node, spark-submit is on the PATH (a wrapper in
# /usr/local/bin, removed by stop) and conf/spark-defaults.conf names the
# master, so a target attached with only an address and a login works
# (the SDK's HDInsightCompute sample).
#   scripts/dev-spark.sh env     print the cluster's settings (also in $PADDOCK_SPARK_DIR/env)
set -euo pipefail
BASE=${PADDOCK_SPARK_DIR:-/var/tmp/paddock-spark}
PYSPARK_VERSION=3.5.3
PIDS=$BASE/run/pids

stop_all() {
  [ -f "$PIDS" ] || return 0
  while read -r pid; do kill "$pid" 2>/dev/null || true; done < "$PIDS"
  for _ in $(seq 50); do
    alive=0; while read -r pid; do kill -0 "$pid" 2>/dev/null && alive=1; done < "$PIDS"
    [ $alive = 0 ] && break; sleep 0.2
  done
  while read -r pid; do kill -9 "$pid" 2>/dev/null || true; done < "$PIDS"
  rm -f "$PIDS" "$BASE/env"
  if grep -qs "^# paddock dev-spark" /usr/local/bin/spark-submit; then rm -f /usr/local/bin/spark-submit; fi
}

case "${1:-start}" in
  stop) stop_all; exit 0 ;;
  env) cat "$BASE/env"; exit 0 ;;
  start) ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac

command -v java >/dev/null || bash "$(dirname "$0")/deps.sh" java
mkdir -p "$BASE/run" "$BASE/work" "$BASE/logs"
chmod 755 "$BASE"
stop_all

# The venv: the system's python3 (the test users cannot reach a python
# under /root), pyspark pinned; reused while its version matches.
py=/usr/bin/python3
[ -x $py ] || py=$(command -v python3)
venv=$BASE/venv
if ! "$venv/bin/python" -c "import pyspark, sys; sys.exit(pyspark.__version__ != '$PYSPARK_VERSION')" 2>/dev/null; then
  rm -rf "$venv"
  $py -m venv "$venv"
  "$venv/bin/pip" install -q "pyspark==$PYSPARK_VERSION"
fi
SPARK_HOME=$("$venv/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
chmod -R a+rX "$BASE"
# What every spark-submit on this host uses: the venv's python for the
# driver and executors (so pyspark imports), and Java.
java_home=$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")
mkdir -p "$SPARK_HOME/conf"
cat > "$SPARK_HOME/conf/spark-env.sh" <<ENV
export PYSPARK_PYTHON=$venv/bin/python
export JAVA_HOME=$java_home
export SPARK_LOCAL_IP=127.0.0.1
ENV
chmod 644 "$SPARK_HOME/conf/spark-env.sh"

free_port() { "$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port); ui=$(free_port); wui=$(free_port)
export SPARK_HOME JAVA_HOME=$java_home SPARK_LOCAL_IP=127.0.0.1 SPARK_LOG_DIR=$BASE/logs
# Small daemons: the machine is shared with other tests.
export SPARK_DAEMON_MEMORY=256m
setsid nohup "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.master.Master \
  --host 127.0.0.1 --port "$port" --webui-port "$ui" > "$BASE/logs/master.log" 2>&1 < /dev/null &
echo $! >> "$PIDS"
master=spark://127.0.0.1:$port
setsid nohup "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.worker.Worker \
  --host 127.0.0.1 --webui-port "$wui" --cores 2 --memory 2g --work-dir "$BASE/work" "$master" \
  > "$BASE/logs/worker.log" 2>&1 < /dev/null &
echo $! >> "$PIDS"

# Ready when the master's status JSON lists one ALIVE worker.
for _ in $(seq 120); do
  if "$venv/bin/python" - "http://127.0.0.1:$ui/json/" <<'PY' 2>/dev/null
import json, sys, urllib.request
m = json.load(urllib.request.urlopen(sys.argv[1], timeout=2))
sys.exit(0 if m["status"] == "ALIVE" and m["aliveworkers"] >= 1 else 1)
PY
  then
    # What a head node has: spark-submit on the PATH and the master in
    # spark-defaults.conf (small executors: the machine is shared).
    printf 'spark.master %s\nspark.executor.memory 512m\n' "$master" > "$SPARK_HOME/conf/spark-defaults.conf"
    chmod 644 "$SPARK_HOME/conf/spark-defaults.conf"
    if [ -w /usr/local/bin ] && ! [ -e /usr/local/bin/spark-submit ]; then
      printf '#!/bin/sh\n# paddock dev-spark (scripts/dev-spark.sh stop removes it)\nexec %s "$@"\n' "$SPARK_HOME/bin/spark-submit" > /usr/local/bin/spark-submit
      chmod 755 /usr/local/bin/spark-submit
    fi
    cat > "$BASE/env" <<ENV
SPARK_HOME=$SPARK_HOME
SPARK_MASTER=$master
SPARK_MASTER_UI=http://127.0.0.1:$ui
ENV
    chmod 644 "$BASE/env"
    echo "dev-spark: master $master (UI http://127.0.0.1:$ui), one worker, SPARK_HOME=$SPARK_HOME"
    exit 0
  fi
  sleep 0.5
done
echo "dev-spark: the master or worker did not come up; logs:" >&2
tail -n 20 "$BASE/logs/master.log" "$BASE/logs/worker.log" >&2
stop_all
exit 1
