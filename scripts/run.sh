#!/usr/bin/env bash
# Quick start, command 1: runs Warren.
#
# Installs what is missing (Debian packages), builds warrend, starts a local
# ZooKeeper and RabbitMQ on loopback unless external ones are configured
# (WARREN_ZK_CONNECT, WARREN_AMQP_URLS), and serves on 127.0.0.1:50051 until
# Ctrl-C. Arguments are passed to warrend (e.g. --listen=127.0.0.1:6000).
# The servers it started are stopped when it ends.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bash "$WARREN_ROOT_DIR/scripts/install-deps.sh"
bash "$WARREN_ROOT_DIR/scripts/build.sh" plain --target warrend

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
"$WARREN_ROOT_DIR/build/plain/server/daemon/warrend" "$@" &
warrend_pid=$!
trap 'kill -TERM $warrend_pid 2>/dev/null || true' INT TERM
wait $warrend_pid || true
wait $warrend_pid 2>/dev/null || true
