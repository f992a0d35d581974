#!/usr/bin/env bash
# Quick start, command 1: runs Warren.
#
# Installs what is missing (Debian packages), builds warrend, starts a local
# ZooKeeper and RabbitMQ on loopback unless external ones are configured
# (WARREN_ZK_CONNECT, WARREN_AMQP_URLS), and serves on 127.0.0.1:50051 until
# Ctrl-C. Arguments are passed to warrend (e.g. --listen=127.0.0.1:6000).
# The servers it started are stopped when it ends.
#
#   scripts/run.sh --cluster [--replicas N] [warrend flags]
#
# runs Warren as it is deployed instead: a 3-node ZooKeeper ensemble, a
# 3-node RabbitMQ cluster and N warrend replicas (default 2) on loopback
# (scripts/cluster.sh, its ports and WARREN_CLUSTER_* settings), prints the
# replicas' addresses, and stops all of it on Ctrl-C.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cluster=0
replicas=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --cluster) cluster=1 ;;
    --replicas=*) replicas="${1#--replicas=}" ;;
    --replicas)
      [ $# -ge 2 ] || die "--replicas needs a number"
      replicas="$2"
      shift
      ;;
    *) args+=("$1") ;;
  esac
  shift
done
[ -z "$replicas" ] || [ $cluster -eq 1 ] || die "--replicas goes with --cluster"

bash "$WARREN_ROOT_DIR/scripts/install-deps.sh"
bash "$WARREN_ROOT_DIR/scripts/build.sh" plain --target warrend

if [ $cluster -eq 1 ]; then
  cluster_started=0
  waiter=""
  stop_cluster() {
    [ -z "$waiter" ] || kill "$waiter" 2>/dev/null || true
    [ $cluster_started -eq 0 ] || bash "$WARREN_ROOT_DIR/scripts/cluster.sh" stop || true
  }
  trap stop_cluster EXIT
  trap 'exit 130' INT TERM
  # Fails in one line, touching nothing, when a cluster already runs there.
  bash "$WARREN_ROOT_DIR/scripts/cluster.sh" start
  cluster_started=1
  bash "$WARREN_ROOT_DIR/scripts/cluster.sh" start-warrend "${replicas:-2}" ${args[@]+"${args[@]}"}
  log "ZooKeeper $(bash "$WARREN_ROOT_DIR/scripts/cluster.sh" zk-connect)"
  log "RabbitMQ $(bash "$WARREN_ROOT_DIR/scripts/cluster.sh" amqp-urls)"
  log "scripts/cluster.sh status|kill|freeze|thaw|restart NODE works on it; Ctrl-C stops it all"
  sleep infinity &
  waiter=$!
  wait "$waiter" || true
  exit 0
fi

export WARREN_STACK_DIR="${WARREN_STACK_DIR:-$WARREN_ROOT_DIR/.stack/dev}"
started=()
stop_stack() {
  for server in "${started[@]}"; do
    bash "$WARREN_ROOT_DIR/scripts/stack.sh" stop "$server" || true
  done
}
trap stop_stack EXIT

if [ -z "${WARREN_ZK_CONNECT:-}" ]; then
  bash "$WARREN_ROOT_DIR/scripts/stack.sh" start zookeeper
  started+=(zookeeper)
  export WARREN_ZK_CONNECT="127.0.0.1:$WARREN_ZK_PORT"
fi
if [ -z "${WARREN_AMQP_URLS:-}" ]; then
  bash "$WARREN_ROOT_DIR/scripts/stack.sh" start rabbitmq
  started+=(rabbitmq)
  export WARREN_AMQP_URLS="amqp://guest:guest@127.0.0.1:$WARREN_AMQP_PORT/"
fi

log "starting warrend (ZooKeeper $WARREN_ZK_CONNECT); Ctrl-C stops it"
# Not exec: the trap above must run to stop the servers afterwards.
"$WARREN_ROOT_DIR/build/plain/server/daemon/warrend" ${args[@]+"${args[@]}"} &
warrend_pid=$!
trap 'kill -TERM $warrend_pid 2>/dev/null || true' INT TERM
wait $warrend_pid || true
wait $warrend_pid 2>/dev/null || true
