#!/usr/bin/env bash
# Runs a command against a warrend of its own.
#
#   scripts/with-warrend.sh [--warrend=PATH] [--FLAG=VALUE ...] -- COMMAND...
#
# Arguments before "--" are warrend flags (added to the ones below), except
# --warrend=PATH, which names the binary.
#
# Starts warrend (default: build/plain/server/daemon/warrend) on a free
# loopback port, against WARREN_TEST_ZK and WARREN_TEST_AMQP_URL (the test
# stack of scripts/test.sh) under a ZooKeeper root of its own, waits until it
# serves, runs COMMAND with
#   WARREN_ADDRESS   host:port of that warrend
#   WARREN_WARREND   the warrend binary (for tests that start more servers)
#   WARREN_ROOT      its ZooKeeper root (a second warrend of the same cluster
#                    must use the same --root)
# and stops it (SIGTERM to its pid, never by name). The exit status is
# COMMAND's; a warrend that did not exit cleanly turns success into failure.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

warrend="$WARREN_ROOT_DIR/build/plain/server/daemon/warrend"
extra_flags=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  case "$1" in
    --warrend=*) warrend="${1#--warrend=}" ;;
    *) extra_flags+=("$1") ;;
  esac
  shift
done
[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || die "usage: with-warrend.sh [--warrend=PATH] [--FLAG=VALUE ...] -- COMMAND..."
[ -x "$warrend" ] || die "no warrend at $warrend (build it: scripts/build.sh plain)"
: "${WARREN_TEST_ZK:?set WARREN_TEST_ZK (scripts/test.sh does)}"
: "${WARREN_TEST_AMQP_URL:?set WARREN_TEST_AMQP_URL (scripts/test.sh does)}"

run_dir="$(mktemp -d "${TMPDIR:-/tmp}/with-warrend.XXXXXX")"
root="/warren-test-$(basename "$run_dir" | tr -cd 'A-Za-z0-9')-$$"
"$warrend" --listen=127.0.0.1:0 --zk_connect="$WARREN_TEST_ZK" \
  --amqp_urls="$WARREN_TEST_AMQP_URL" --root="$root" \
  --zk_session_timeout=4s --shutdown_grace=5s "${extra_flags[@]}" \
  >"$run_dir/stdout" 2>"$run_dir/stderr" &
pid=$!
echo "$pid" >"$run_dir/warrend.pid"

stop_warrend() {
  local status=$?
  local warrend_status=0
  if pid_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" || warrend_status=$?
  fi
  if [ $warrend_status -ne 0 ]; then
    log "warrend exited with status $warrend_status; its log:"
    tail -n 50 "$run_dir/stderr" >&2
    [ $status -eq 0 ] && status=1
  fi
  rm -rf "$run_dir"
  exit $status
}
trap stop_warrend EXIT

address=""
for _ in $(seq 1 600); do
  address="$(sed -n 's/^warrend is serving on \(.*\)$/\1/p' "$run_dir/stdout")"
  [ -n "$address" ] && break
  if ! pid_alive "$pid"; then
    cat "$run_dir/stderr" >&2
    die "warrend exited during start-up"
  fi
  sleep 0.1
done
[ -n "$address" ] || die "warrend did not serve within 60s"

export WARREN_ADDRESS="$address" WARREN_WARREND="$warrend" WARREN_ROOT="$root"
set +e
"$@"
status=$?
set -e
exit $status
