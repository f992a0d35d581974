#!/usr/bin/env bash
# Generates, builds and tests the Warren Java client against the live warrend
# in WARREN_ADDRESS (run it under scripts/with-warrend.sh --secure, which also sets
# WARREN_WARREND, WARREN_ROOT, WARREN_TEST_ZK and WARREN_TEST_AMQP_URL for
# the fault tests that start servers of their own, and with --secure the TLS +
# auth warrends of SecurityTest). OutageTest keeps a warrend of its own down
# for WARREN_OUTAGE_SECONDS (default 40), so the suite takes about a minute
# more than that. Exits non-zero on failure.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
: "${WARREN_ADDRESS:?run under scripts/with-warrend.sh (WARREN_ADDRESS is not set)}"
# Start-up matters more than peak speed for these short JVMs.
JAVA_OPTS=(-XX:+UseSerialGC -XX:TieredStopAtLevel=1)

results=()
failed=0
step() { # step NAME COMMAND...: runs it, records ok/FAIL with its time
  local name="$1"; shift
  local t0=$SECONDS
  echo "== $name"
  if "$@"; then
    results+=("ok    $name ($((SECONDS - t0))s)")
  else
    results+=("FAIL  $name ($((SECONDS - t0))s)")
    failed=1
  fi
}

step generate ./generate.sh
step build ./build.sh
if [ $failed -ne 0 ]; then
  printf '%s\n' "${results[@]}"
  exit 1
fi
cp="build/classes:$(./classpath.sh)"
test_cp="build/test-classes:build/classes:$(./classpath.sh --test)"
step "unit and integration tests" java "${JAVA_OPTS[@]}" -cp "$test_cp" io.warren.client.AllTests

# --- The examples, as a user runs them, with assertions on their output.
suffix="$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
out="$(mktemp -d "${TMPDIR:-/tmp}/warren-java-examples.XXXXXX")"
trap 'rm -rf "$out"' EXIT
expect() { # expect FILE TEXT: the output must contain TEXT
  if grep -qF -- "$2" "$1"; then return 0; fi
  echo "expected \"$2\" in the output of ${1##*/}:" >&2
  sed 's/^/    /' "$1" >&2
  return 1
}
example_hello() {
  examples/run.sh hello --queue="java-hello-$suffix" >"$out/hello" 2>&1 || { cat "$out/hello"; return 1; }
  cat "$out/hello"
  expect "$out/hello" "received:  Hello, Zookeeper & RabbitMQ!"
}
example_campaign() {
  examples/run.sh campaign --election="java-example-$suffix" --id=example-candidate \
    --until-elected >"$out/campaign" 2>&1 || { cat "$out/campaign"; return 1; }
  cat "$out/campaign"
  expect "$out/campaign" "elected: I (example-candidate) lead" &&
    expect "$out/campaign" "resigned"
}
example_config() {
  local key="java-example-$suffix/greeting"
  examples/run.sh config --key="$key" --set=first >/dev/null 2>&1 || return 1
  examples/run.sh config --key="$key" --changes=1 >"$out/config" 2>&1 &
  local watcher=$!
  # Wait (with a deadline) until the watcher has its initial state.
  local deadline=$((SECONDS + 60))
  until grep -q "^watching" "$out/config"; do
    if ! kill -0 "$watcher" 2>/dev/null || [ $SECONDS -gt $deadline ]; then
      cat "$out/config"; kill "$watcher" 2>/dev/null; return 1
    fi
    sleep 0.2
  done
  examples/run.sh config --key="$key" --set=second >/dev/null 2>&1 || { kill "$watcher"; return 1; }
  wait "$watcher" || { cat "$out/config"; return 1; }
  cat "$out/config"
  expect "$out/config" "$key = first" && expect "$out/config" "$key = second  (changed"
}
example_lock() {
  local name="java-example-$suffix"
  examples/run.sh lock --lock="$name" --timeout=20 >"$out/lock" 2>&1 || { cat "$out/lock"; return 1; }
  cat "$out/lock"
  expect "$out/lock" "acquired lock \"$name\", fencing token " &&
    expect "$out/lock" "wrote example-locks/$name fenced by the lock" &&
    expect "$out/lock" "released"
}
example_request_reply() {
  examples/run.sh request-reply --queue="java-rpc-$suffix" --text="ping $suffix" >"$out/rr" 2>&1 || { cat "$out/rr"; return 1; }
  cat "$out/rr"
  expect "$out/rr" "reply: PING ${suffix^^}"
}
example_stream_replay() {
  examples/run.sh stream-replay --stream="java-events-$suffix" --count=6 >"$out/sr" 2>&1 || { cat "$out/sr"; return 1; }
  cat "$out/sr"
  expect "$out/sr" "read  event-2 at offset 2" && expect "$out/sr" "stored offset 3" &&
    expect "$out/sr" "resumed event-3 at offset 3" && expect "$out/sr" "resumed event-5 at offset 5" &&
    ! grep -q "resumed event-2" "$out/sr"
}
step "example hello" example_hello
step "example campaign" example_campaign
step "example config" example_config
step "example lock" example_lock
step "example request-reply" example_request_reply
step "example stream-replay" example_stream_replay

echo
echo "== summary (java client)"
printf '  %s\n' "${results[@]}"
exit $failed
