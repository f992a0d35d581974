#!/usr/bin/env bash
# Runs a command against a warrend of its own.
#
#   scripts/with-warrend.sh [--warrend=PATH] [--secure] [--FLAG=VALUE ...] -- COMMAND...
#
# Arguments before "--" are warrend flags (added to the ones below), except
# --warrend=PATH, which names the binary, and --secure (below).
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
#
# --secure also starts, in parallel and in the same cluster, two warrends
# with TLS (certificates from scripts/tls-certs.sh) and authentication on
# (a tokens file and a policy file), for the clients' TLS and token tests:
#   WARREN_TEST_TLS_ADDRESS   TLS, tls_client_auth=request (a client
#                             certificate is optional)
#   WARREN_TEST_MTLS_ADDRESS  mutual TLS, tls_client_auth=require
#   WARREN_TEST_TLS_CA        the CA of the server (and client) certificates
#   WARREN_TEST_TLS_CERT/_KEY a client certificate, principal
#                             "CN=warren-test-client"
#   WARREN_TEST_TOKEN         a bearer token of principal "client-test"
# Both principals may do everything; no credentials: UNAUTHENTICATED.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

warrend="$WARREN_ROOT_DIR/build/plain/server/daemon/warrend"
extra_flags=()
secure=0
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  case "$1" in
    --warrend=*) warrend="${1#--warrend=}" ;;
    --secure) secure=1 ;;
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
pids=()

# start_warrend NAME FLAG...: starts one in the background, its output in
# $run_dir/NAME.{stdout,stderr}.
start_warrend() {
  local name="$1"
  shift
  "$warrend" --listen=127.0.0.1:0 --zk_connect="$WARREN_TEST_ZK" \
    --amqp_urls="$WARREN_TEST_AMQP_URL" --root="$root" \
    --zk_session_timeout=4s --shutdown_grace=5s "$@" \
    >"$run_dir/$name.stdout" 2>"$run_dir/$name.stderr" &
  pids+=($!)
  echo "$!" >"$run_dir/$name.pid"
}

stop_warrend() {
  local status=$?
  local pid warrend_status
  # All at once: each drains its streams for up to shutdown_grace.
  for pid in "${pids[@]}"; do
    pid_alive "$pid" && kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    warrend_status=0
    wait "$pid" || warrend_status=$?
    if [ $warrend_status -ne 0 ]; then
      log "warrend (pid $pid) exited with status $warrend_status; its log:"
      tail -n 50 "$(grep -l -x "$pid" "$run_dir"/*.pid | sed 's/\.pid$/.stderr/')" >&2
      [ $status -eq 0 ] && status=1
    fi
  done
  rm -rf "$run_dir"
  exit $status
}
trap stop_warrend EXIT

# serving_address NAME: waits until that warrend serves and prints its address.
serving_address() {
  local name="$1" pid address=""
  pid="$(cat "$run_dir/$name.pid")"
  for _ in $(seq 1 600); do
    address="$(sed -n 's/^warrend is serving on \(.*\)$/\1/p' "$run_dir/$name.stdout")"
    [ -n "$address" ] && break
    if ! pid_alive "$pid"; then
      cat "$run_dir/$name.stderr" >&2
      die "warrend ($name) exited during start-up"
    fi
    sleep 0.1
  done
  [ -n "$address" ] || die "warrend ($name) did not serve within 60s"
  echo "$address"
}

start_warrend plain "${extra_flags[@]}"
if [ $secure -eq 1 ]; then
  pki="$run_dir/pki"
  certs="$WARREN_ROOT_DIR/scripts/tls-certs.sh"
  bash "$certs" ca "$pki" ca >/dev/null
  bash "$certs" server "$pki" server ca >/dev/null
  bash "$certs" client "$pki" client ca warren-test-client >/dev/null
  token="client-test-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
  (umask 077 && printf 'tokens:\n  - {principal: client-test, token: %s}\n' "$token" >"$pki/tokens.yaml")
  all='{publish: ["**"], subscribe: ["**"], campaign: ["**"], observe: ["**"], config_read: ["**"], config_write: ["**"]}'
  printf 'principals:\n  client-test: %s\n  "CN=warren-test-client": %s\n' "$all" "$all" >"$pki/policy.yaml"
  secure_flags=(--tls_cert_file="$pki/server.crt" --tls_key_file="$pki/server.key"
    --tls_client_ca_file="$pki/ca.crt" --auth_tokens_file="$pki/tokens.yaml"
    --auth_policy_file="$pki/policy.yaml")
  start_warrend tls "${secure_flags[@]}" --tls_client_auth=request
  start_warrend mtls "${secure_flags[@]}" --tls_client_auth=require
  WARREN_TEST_TLS_ADDRESS="$(serving_address tls)"
  WARREN_TEST_MTLS_ADDRESS="$(serving_address mtls)"
  export WARREN_TEST_TLS_ADDRESS WARREN_TEST_MTLS_ADDRESS
  export WARREN_TEST_TLS_CA="$pki/ca.crt" WARREN_TEST_TLS_CERT="$pki/client.crt" \
    WARREN_TEST_TLS_KEY="$pki/client.key" WARREN_TEST_TOKEN="$token"
fi
address="$(serving_address plain)"

export WARREN_ADDRESS="$address" WARREN_WARREND="$warrend" WARREN_ROOT="$root"
set +e
"$@"
status=$?
set -e
exit $status
