#!/usr/bin/env bash
# Runs the benchmark with one command, from a fresh checkout:
#
#   bench/run.sh [--quick] [--name=NAME] [warren-bench flags...]
#
# Installs what is missing (scripts/install-deps.sh), builds warren-bench and
# warrend in build/bench (RelWithDebInfo), starts its own ZooKeeper and
# RabbitMQ on loopback (ports below; data under .stack/bench), starts warrend
# on a free port, runs warren-bench, and writes
# bench/results/NAME/{report.md,results.json,plot.svg,machine.txt}
# (NAME defaults to <date>-quick or <date>-full). It stops only what it
# started. Ports: WARREN_ZK_PORT (21820), WARREN_AMQP_PORT (15683),
# WARREN_AMQP_DIST_PORT (15684), WARREN_EPMD_PORT (14379).
# WARREN_BENCH_NOTE adds a line to the machine description (e.g. "busy").
set -euo pipefail
# Our ports, set before lib.sh would default them to the standard ones.
export WARREN_ZK_PORT="${WARREN_ZK_PORT:-21820}"
export WARREN_AMQP_PORT="${WARREN_AMQP_PORT:-15683}"
export WARREN_AMQP_DIST_PORT="${WARREN_AMQP_DIST_PORT:-15684}"
export WARREN_EPMD_PORT="${WARREN_EPMD_PORT:-14379}"
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
export WARREN_STACK_DIR="${WARREN_BENCH_STACK_DIR:-$WARREN_ROOT_DIR/.stack/bench}"
BENCH_DIR="$WARREN_ROOT_DIR/bench"

quick=0
name=""
window=256
args=()
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1; args+=("$arg") ;;
    --name=*) name="${arg#--name=}" ;;
    --window=*) window="${arg#--window=}"; args+=("$arg") ;;
    *) args+=("$arg") ;;
  esac
done
[ -n "$name" ] || name="$(date +%Y-%m-%d)-$([ $quick -eq 1 ] && echo quick || echo full)"
out="$BENCH_DIR/results/$name"
mkdir -p "$out"

bash "$WARREN_ROOT_DIR/scripts/install-deps.sh"
build="${WARREN_BENCH_BUILD_DIR:-$WARREN_ROOT_DIR/build/bench}"
cmake -S "$WARREN_ROOT_DIR" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
start=$SECONDS
cmake --build "$build" -j "$(nproc)" --target warren-bench warrend
log "build/bench: built in $((SECONDS - start))s"

STACK="$WARREN_ROOT_DIR/scripts/stack.sh"
ZK_PID_FILE="$WARREN_STACK_DIR/zookeeper/zookeeper.pid"
RMQ_PID_FILE="$WARREN_STACK_DIR/rabbitmq/rabbitmq.pid"

# Stop on exit only what this script started.
started=()
warrend_pid=""
cleanup() {
  if [ -n "$warrend_pid" ] && pid_alive "$warrend_pid"; then
    kill -TERM "$warrend_pid" 2>/dev/null || true
    for _ in $(seq 1 150); do pid_alive "$warrend_pid" || break; sleep 0.1; done
    pid_alive "$warrend_pid" && kill -KILL "$warrend_pid" 2>/dev/null || true
  fi
  for server in "${started[@]}"; do bash "$STACK" stop "$server" || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for server in zookeeper rabbitmq; do
  pidfile="$ZK_PID_FILE"
  [ "$server" = rabbitmq ] && pidfile="$RMQ_PID_FILE"
  if pid_alive "$(pid_from_file "$pidfile")"; then
    log "$server: already running in $WARREN_STACK_DIR; using it (not stopped afterwards)"
  else
    bash "$STACK" start "$server"
    started+=("$server")
  fi
done

mkdir -p "$WARREN_STACK_DIR/warrend"
wout="$WARREN_STACK_DIR/warrend/stdout"
: >"$wout"
# The server's default publish window (512) caps a PublishStream; make room
# for a larger W.
publish_window=$((window > 512 ? window : 512))
"$build/server/daemon/warrend" --listen=127.0.0.1:0 \
  --zk_connect="127.0.0.1:$WARREN_ZK_PORT" \
  --amqp_urls="amqp://guest:guest@127.0.0.1:$WARREN_AMQP_PORT/" \
  --root=/warren-bench --log_level=warn --publish_window="$publish_window" \
  >"$wout" 2>"$WARREN_STACK_DIR/warrend/stderr" </dev/null &
warrend_pid=$!
address=""
for _ in $(seq 1 600); do
  address="$(sed -n 's/^warrend is serving on \(.*\)$/\1/p' "$wout" | head -1)"
  [ -n "$address" ] && break
  pid_alive "$warrend_pid" || { cat "$WARREN_STACK_DIR/warrend/stderr" >&2; die "warrend exited"; }
  sleep 0.1
done
[ -n "$address" ] || die "warrend did not report its address within 60s"
log "warrend: serving on $address (pid $warrend_pid)"

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores online"
  echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "os: $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
  echo "rabbitmq-server $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null), zookeeper $(dpkg-query -W -f='${Version}' zookeeper 2>/dev/null), librabbitmq $(dpkg-query -W -f='${Version}' librabbitmq-dev 2>/dev/null), libzookeeper-mt $(dpkg-query -W -f='${Version}' libzookeeper-mt-dev 2>/dev/null), gRPC $(dpkg-query -W -f='${Version}' libgrpc++-dev 2>/dev/null)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "everything on one machine: load generator, warrend, RabbitMQ, ZooKeeper (loopback)"
  [ -n "${WARREN_BENCH_NOTE:-}" ] && echo "note: $WARREN_BENCH_NOTE"
} >"$out/machine.txt"

"$build/bench/warren-bench" \
  --warren="$address" \
  --amqp_url="amqp://guest:guest@127.0.0.1:$WARREN_AMQP_PORT/" \
  --zk="127.0.0.1:$WARREN_ZK_PORT" \
  --warrend_pid="$warrend_pid" \
  --rabbitmq_pid="$(pid_from_file "$RMQ_PID_FILE" || echo 0)" \
  --zookeeper_pid="$(pid_from_file "$ZK_PID_FILE" || echo 0)" \
  --out="$out" --label="$name" --machine_file="$out/machine.txt" \
  ${args[@]+"${args[@]}"}
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/machine.txt"
/usr/bin/python3 "$BENCH_DIR/plot.py" "$out/results.json" "$out/plot.svg"
log "results: $out/report.md (plot.svg, results.json)"
