#!/usr/bin/env bash
# Local NotifyHub workers for `make run` / `make stop`.
#
#   deployments/local/workers.sh start N   start workers 0..N-1 (those not running), wait until ready
#   deployments/local/workers.sh stop      SIGTERM every worker, wait for each to finish
#
# Worker i serves HTTP on NOTIFYHUB_WEB_PORT + i and keeps its RocksDB tables in
# RUN_DIR/worker-i (two workers on one host need their own data directory and port).
# They form one consumer group and share the partitions; NOTIFYHUB_TOPIC_PARTITIONS caps
# how many of them get work. The services' addresses come from the environment.
#
# Workers refuse the shipped default secrets, so `start` makes random ones once, in
# RUN_DIR/secrets.env (mode 0600), and every later start reuses them: the admin token
# stays valid and webhook secrets stored under the key stay readable. A secret already
# in the environment wins over the file.
set -euo pipefail

RUN_DIR=${RUN_DIR:-.data}
BASE_PORT=${NOTIFYHUB_WEB_PORT:-8080}
NOTIFYHUB=${NOTIFYHUB:-.venv/bin/notifyhub}
# A worker's web server answers after it joined the group and recovered its tables.
READY_TIMEOUT=${READY_TIMEOUT:-120}
STOP_TIMEOUT=${STOP_TIMEOUT:-60}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

SECRET_NAMES="NOTIFYHUB_ADMIN_TOKEN NOTIFYHUB_WS_TOKEN_SECRET NOTIFYHUB_WEBHOOK_SECRET_KEY"

load_secrets() {
  local file=$RUN_DIR/secrets.env name value
  if [ ! -s "$file" ]; then
    # 32 random bytes as 64 hex characters each; the umask keeps the file the user's own.
    (umask 077 && for name in $SECRET_NAMES; do
      echo "$name=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
    done >"$file.tmp" && mv "$file.tmp" "$file")
    echo "made random secrets in $file (kept for later runs)"
  fi
  while IFS='=' read -r name value; do
    [ -n "$name" ] && [ -z "${!name:-}" ] && export "$name=$value"
  done <"$file"
  return 0
}

start() {
  local count=$1 i
  mkdir -p "$RUN_DIR"
  load_secrets
  # Worker 0 first: on a new deployment it creates the topics, and a worker that joins
  # while they are missing gets none of their partitions until the next rebalance.
  launch 0
  wait_ready 0
  for ((i = 1; i < count; i++)); do launch "$i"; done
  for ((i = 1; i < count; i++)); do wait_ready "$i"; done
}

launch() {
  local i=$1 port=$((BASE_PORT + $1)) pidfile=$RUN_DIR/worker-$1.pid
  if alive "$pidfile"; then echo "worker $i already running (pid $(cat "$pidfile"), port $port)"; return 0; fi
  NOTIFYHUB_WEB_PORT=$port NOTIFYHUB_DATA_DIR=$RUN_DIR/worker-$i \
    nohup "$NOTIFYHUB" worker >"$RUN_DIR/worker-$i.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
}

wait_ready() {
  local i=$1 port=$((BASE_PORT + $1)) pidfile=$RUN_DIR/worker-$1.pid since=$SECONDS
  until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do
    alive "$pidfile" || { echo "worker $i exited; see $RUN_DIR/worker-$i.log" >&2; tail -20 "$RUN_DIR/worker-$i.log" >&2; exit 1; }
    [ $((SECONDS - since)) -lt "$READY_TIMEOUT" ] || { echo "worker $i not ready after ${READY_TIMEOUT}s; see $RUN_DIR/worker-$i.log" >&2; exit 1; }
    sleep 0.2
  done
  echo "worker $i ready on http://127.0.0.1:$port (log $RUN_DIR/worker-$i.log)"
}

stop() {
  local pidfile waited
  for pidfile in "$RUN_DIR"/worker-*.pid; do
    [ -e "$pidfile" ] || continue
    if alive "$pidfile"; then
      # SIGTERM: in-flight sends finish and offsets are committed before it exits.
      kill -TERM "$(cat "$pidfile")"
      waited=0
      while alive "$pidfile" && [ $waited -lt $((STOP_TIMEOUT * 5)) ]; do sleep 0.2; waited=$((waited + 1)); done
      alive "$pidfile" && { echo "$(basename "$pidfile" .pid) ignored SIGTERM; killing it"; kill -KILL "$(cat "$pidfile")"; }
      echo "$(basename "$pidfile" .pid) stopped"
    fi
    rm -f "$pidfile"
  done
}

case ${1:-} in
  start) start "${2:-1}" ;;
  stop) stop ;;
  *) echo "usage: $0 start N|stop" >&2; exit 2 ;;
esac
