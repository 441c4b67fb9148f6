#!/usr/bin/env bash
# The native local stack: Apache Kafka (KRaft, one node, from Maven Central's jars),
# PostgreSQL and Redis (from the system's packages), all on loopback.
#
#   deployments/local/stack.sh install   resolve the Kafka jars, install PostgreSQL/Redis if missing
#   deployments/local/stack.sh up        install, then start whatever is not running (idempotent)
#   deployments/local/stack.sh down      stop all three
#   deployments/local/stack.sh discard   stop all three at once, for a stack whose data is deleted next
#   deployments/local/stack.sh stop S    stop one service (kafka, postgres, redis); start S again
#   deployments/local/stack.sh status    one line per service
#   deployments/local/stack.sh env       the environment variables that point NotifyHub at it
#
# Every knob is an environment variable; the defaults are in the block below and
# in docs/configuration.md. Data lives under NOTIFYHUB_STACK_DIR (git-ignored); the jars live
# in NOTIFYHUB_CACHE_DIR, outside the repository, and are never committed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

STACK_DIR=${NOTIFYHUB_STACK_DIR:-$repo/.stack}
CACHE_DIR=${NOTIFYHUB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/notifyhub}
KAFKA_VERSION=${KAFKA_VERSION:-4.4.0}
KAFKA_PORT=${NOTIFYHUB_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${NOTIFYHUB_KAFKA_CONTROLLER_PORT:-9093}
PG_PORT=${NOTIFYHUB_PG_PORT:-5433}
REDIS_PORT=${NOTIFYHUB_REDIS_PORT:-6380}
# yes keeps Redis data across a restart (an append-only file); the fault tests turn it on.
REDIS_APPENDONLY=${NOTIFYHUB_REDIS_APPENDONLY:-no}
PG_USER=notifyhub
PG_PASSWORD=${NOTIFYHUB_PG_PASSWORD:-notifyhub}
PG_DB=notifyhub
# How long each service may take to become ready before `up` gives up.
READY_TIMEOUT=${NOTIFYHUB_STACK_TIMEOUT:-120}

KAFKA_HOME=$CACHE_DIR/kafka-$KAFKA_VERSION
log() { printf 'stack: %s\n' "$*" >&2; }
die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# ---------------------------------------------------------------- install

apt_install() {
  local what=$1; shift
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing $what from the system's packages ($*)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null \
      || die "apt-get could not install $*"
  else
    die "$what is missing; install it with: sudo apt-get install -y $*"
  fi
}

# The browser inbox test drives Debian's Chromium through Playwright (tests only).
install_browser() {
  command -v chromium >/dev/null || apt_install Chromium chromium
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

install_services() {
  [ -n "$(pg_bin)" ] && [ -x "$(pg_bin)/initdb" ] || apt_install PostgreSQL postgresql
  command -v redis-server >/dev/null || apt_install Redis redis-server
  command -v java >/dev/null || die "Java is missing (Kafka needs 17+); install it with: sudo apt-get install -y openjdk-17-jre-headless"
  command -v mvn >/dev/null || die "Maven is missing (it resolves the Kafka jars); install it with: sudo apt-get install -y maven"
}

# The Kafka jars on Maven Central lack a logging binding (the release tarball adds
# one); without it the broker logs nothing, and we wait on its log for readiness.
write_kafka_pom() {
  local logging
  case $KAFKA_VERSION in
    3.*) logging='
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>
    <dependency><groupId>ch.qos.reload4j</groupId><artifactId>reload4j</artifactId><version>1.2.25</version></dependency>' ;;
    *) logging='
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.25.5</version></dependency>' ;;
  esac
  cat >"$KAFKA_HOME/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.notifyhub</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <!-- Maven picks the nearest version, not the highest: pin the SLF4J 1.x API Kafka uses. -->
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>1.7.36</version></dependency>$logging
  </dependencies>
  <build><plugins><plugin>
    <groupId>org.apache.maven.plugins</groupId><artifactId>maven-dependency-plugin</artifactId><version>3.8.1</version>
  </plugin></plugins></build>
</project>
POM
}

install_kafka() {
  [ -f "$KAFKA_HOME/.complete" ] && return 0
  log "resolving Apache Kafka $KAFKA_VERSION from Maven Central into $KAFKA_HOME"
  mkdir -p "$KAFKA_HOME"
  write_kafka_pom
  rm -rf "$KAFKA_HOME/lib"
  (cd "$KAFKA_HOME" && mvn -q -B dependency:copy-dependencies -DoutputDirectory=lib -DincludeScope=runtime) \
    || die "Maven could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION (no access to Maven Central?)"
  ls "$KAFKA_HOME/lib" | grep -q '^kafka_2.13-' || die "Kafka jars missing after Maven ran"
  touch "$KAFKA_HOME/.complete"
}

# ---------------------------------------------------------------- kafka

kafka_up() {
  local dir=$STACK_DIR/kafka
  if pid_alive "$dir/pid"; then log "kafka already running on 127.0.0.1:$KAFKA_PORT"; return 0; fi
  port_open "$KAFKA_PORT" && die "port $KAFKA_PORT is taken by another process (set NOTIFYHUB_KAFKA_PORT)"
  port_open "$KAFKA_CONTROLLER_PORT" && die "port $KAFKA_CONTROLLER_PORT is taken (set NOTIFYHUB_KAFKA_CONTROLLER_PORT)"
  mkdir -p "$dir/data"
  cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
# The defaults (50 partitions) make the first consumer-group join slow on one node.
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# A single local node has nobody else to wait for before the first rebalance.
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
# Allocated on the heap at start-up; the 128 MiB default does not fit a 512 MiB heap.
log.cleaner.dedupe.buffer.size=33554432
PROPS
  case $KAFKA_VERSION in 3.*) sed -i '/^share\.coordinator/d' "$dir/server.properties" ;; esac
  cat >"$dir/log4j2.properties" <<'L4J'
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.console.ref = STDOUT
L4J
  printf 'log4j.rootLogger=INFO, stdout\nlog4j.appender.stdout=org.apache.log4j.ConsoleAppender\nlog4j.appender.stdout.layout=org.apache.log4j.PatternLayout\nlog4j.appender.stdout.layout.ConversionPattern=[%%d] %%p %%m (%%c)%%n\n' >"$dir/log4j.properties"
  local jvm=(-Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
             "-Dkafka.logs.dir=$dir" "-Dlog4j2.configurationFile=$dir/log4j2.properties"
             "-Dlog4j.configuration=file:$dir/log4j.properties")
  if [ ! -f "$dir/data/meta.properties" ]; then
    local cluster_id
    cluster_id=$(java -cp "$KAFKA_HOME/lib/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    java "${jvm[@]}" -cp "$KAFKA_HOME/lib/*" kafka.tools.StorageTool format \
      -t "$cluster_id" -c "$dir/server.properties" --ignore-formatted >"$dir/format.log" 2>&1 \
      || die "formatting Kafka's storage failed; see $dir/format.log"
  fi
  : >"$dir/kafka.log"
  nohup java "${jvm[@]}" -cp "$KAFKA_HOME/lib/*" kafka.Kafka "$dir/server.properties" \
    >>"$dir/kafka.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
  local start=$SECONDS
  until grep -q 'Kafka Server started' "$dir/kafka.log"; do
    pid_alive "$dir/pid" || die "Kafka exited during start-up; see $dir/kafka.log"
    [ $((SECONDS - start)) -lt "$READY_TIMEOUT" ] || die "Kafka not ready after ${READY_TIMEOUT}s; see $dir/kafka.log"
    sleep 0.2
  done
  log "kafka $KAFKA_VERSION ready on 127.0.0.1:$KAFKA_PORT in $((SECONDS - start))s"
}

# ---------------------------------------------------------------- postgres

# PostgreSQL refuses to run as root: as root, run its tools as the postgres user.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

postgres_up() {
  local dir=$STACK_DIR/postgres bin
  bin=$(pg_bin)
  if [ -f "$dir/data/postmaster.pid" ] && as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    log "postgres already running on 127.0.0.1:$PG_PORT"; return 0
  fi
  port_open "$PG_PORT" && die "port $PG_PORT is taken by another process (set NOTIFYHUB_PG_PORT)"
  mkdir -p "$dir/sock"
  [ "$(id -u)" = 0 ] && chown -R postgres: "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    local pwfile=$dir/.pw
    printf '%s\n' "$PG_PASSWORD" >"$pwfile"
    [ "$(id -u)" = 0 ] && chown postgres: "$pwfile"
    as_pg "$bin/initdb" -D "$dir/data" -U "$PG_USER" --pwfile="$pwfile" \
      --auth-local=trust --auth-host=scram-sha-256 -E UTF8 >"$dir/initdb.log" 2>&1 \
      || die "initdb failed; see $dir/initdb.log"
    rm -f "$pwfile"
  fi
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t "$READY_TIMEOUT" \
    -o "-p $PG_PORT -k $dir/sock -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null \
    || die "PostgreSQL did not start; see $dir/postgres.log"
  if ! as_pg "$bin/psql" -h "$dir/sock" -p "$PG_PORT" -U "$PG_USER" -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname='$PG_DB'" | grep -q 1; then
    as_pg "$bin/createdb" -h "$dir/sock" -p "$PG_PORT" -U "$PG_USER" "$PG_DB"
  fi
  log "postgres ready on 127.0.0.1:$PG_PORT"
}

# ---------------------------------------------------------------- redis

redis_up() {
  local dir=$STACK_DIR/redis
  if pid_alive "$dir/redis.pid"; then log "redis already running on 127.0.0.1:$REDIS_PORT"; return 0; fi
  port_open "$REDIS_PORT" && die "port $REDIS_PORT is taken by another process (set NOTIFYHUB_REDIS_PORT)"
  mkdir -p "$dir"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$dir" --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --save "" --appendonly "$REDIS_APPENDONLY" \
    || die "Redis did not start; see $dir/redis.log"
  local start=$SECONDS
  until redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; do
    [ $((SECONDS - start)) -lt "$READY_TIMEOUT" ] || die "Redis not ready after ${READY_TIMEOUT}s; see $dir/redis.log"
    sleep 0.1
  done
  log "redis ready on 127.0.0.1:$REDIS_PORT"
}

# ---------------------------------------------------------------- down / status

stop_pidfile() {
  local name=$1 pidfile=$2 waited=0
  pid_alive "$pidfile" || { rm -f "$pidfile"; return 0; }
  kill -TERM "$(cat "$pidfile")"
  while pid_alive "$pidfile" && [ $waited -lt 300 ]; do sleep 0.1; waited=$((waited + 1)); done
  pid_alive "$pidfile" && { log "$name ignored SIGTERM for 30s; killing it"; kill -KILL "$(cat "$pidfile")"; }
  rm -f "$pidfile"
  log "$name stopped"
}

kafka_down() { stop_pidfile kafka "$STACK_DIR/kafka/pid"; }
redis_down() { stop_pidfile redis "$STACK_DIR/redis/redis.pid"; }
postgres_down() {
  local bin; bin=$(pg_bin)
  if [ -n "$bin" ] && [ -f "$STACK_DIR/postgres/data/postmaster.pid" ]; then
    as_pg "$bin/pg_ctl" -D "$STACK_DIR/postgres/data" -m fast -w stop >/dev/null && log "postgres stopped"
  fi
}

down() { kafka_down; redis_down; postgres_down; }

# A throwaway stack (the tests' own) needs no clean shutdown: its data is deleted next, and
# a clean Kafka shutdown with hundreds of test topics takes up to its 30 s limit.
discard() {
  local pidfile bin
  for pidfile in "$STACK_DIR/kafka/pid" "$STACK_DIR/redis/redis.pid"; do
    pid_alive "$pidfile" && kill -KILL "$(cat "$pidfile")"
    rm -f "$pidfile"
  done
  bin=$(pg_bin)
  if [ -n "$bin" ] && [ -f "$STACK_DIR/postgres/data/postmaster.pid" ]; then
    as_pg "$bin/pg_ctl" -D "$STACK_DIR/postgres/data" -m immediate -w stop >/dev/null || true
  fi
  log "stack discarded"
}

# One service, for fault tests and drills: `stop kafka`, `start postgres`, ...
one_service() {
  local action=$1 service=${2:-}
  case $service in
    kafka|postgres|redis) ;;
    *) echo "usage: $0 $action kafka|postgres|redis" >&2; exit 2 ;;
  esac
  if [ "$action" = start ]; then "${service}_up"; else "${service}_down"; fi
}

status() {
  pid_alive "$STACK_DIR/kafka/pid" && echo "kafka    up   127.0.0.1:$KAFKA_PORT" || echo "kafka    down"
  local bin; bin=$(pg_bin)
  if [ -n "$bin" ] && [ -f "$STACK_DIR/postgres/data/postmaster.pid" ] \
      && as_pg "$bin/pg_ctl" -D "$STACK_DIR/postgres/data" status >/dev/null 2>&1; then
    echo "postgres up   127.0.0.1:$PG_PORT"
  else echo "postgres down"; fi
  pid_alive "$STACK_DIR/redis/redis.pid" && echo "redis    up   127.0.0.1:$REDIS_PORT" || echo "redis    down"
}

print_env() {
  echo "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT"
  echo "DATABASE_URL=postgresql://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"
  echo "REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
}

case ${1:-} in
  install) install_services; install_kafka ;;
  install-browser) install_browser ;;
  up) install_services; install_kafka; mkdir -p "$STACK_DIR"; postgres_up; redis_up; kafka_up ;;
  down) down ;;
  discard) discard ;;
  start|stop) one_service "$1" "${2:-}" ;;
  status) status ;;
  env) print_env ;;
  *) echo "usage: $0 install|install-browser|up|down|discard|start SERVICE|stop SERVICE|status|env" >&2; exit 2 ;;
esac
