#!/usr/bin/env bash
# Builds the Go client and tests it against the warrend in WARREN_ADDRESS:
# generate the stubs, gofmt, go vet, build the examples, run the wrapper's
# tests (unit + integration, some starting warrends of their own from
# WARREN_WARREND), then run the examples with assertions on their output.
#
#   scripts/with-warrend.sh --secure -- bash clients/go/test.sh
#
# GOPATH mode (GO111MODULE=off), no network: grpc-go, protobuf and x/net come
# from Debian's /usr/share/gocode; the stubs and the build cache live under
# build/ (ignored). WARREN_GO_RACE=1 runs the tests under the race detector
# (its first build takes minutes); WARREN_OUTAGE_SECONDS (default 40) is how
# long the outage test keeps its own warrend down.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${WARREN_ADDRESS:?set WARREN_ADDRESS (run through scripts/with-warrend.sh)}"
export GO111MODULE=off GOFLAGS= GOPROXY=off \
  GOPATH="$here/build/gopath:/usr/share/gocode" GOCACHE="$here/build/gocache"
pkg=github.com/warren/warren/clients/go
examples=("$pkg/examples/hello" "$pkg/examples/campaign" "$pkg/examples/config" "$pkg/examples/lock"
  "$pkg/examples/rpc" "$pkg/examples/replay")
bin="$here/build/bin"
logs="$(mktemp -d "${TMPDIR:-/tmp}/warren-go-test.XXXXXX")"
trap 'rm -rf "$logs"' EXIT
suffix="$$-$RANDOM"

results=()
failed=0
start_all=$SECONDS
step() {  # step NAME COMMAND...: runs it, records PASS/FAIL and its time
  local name="$1" t=$SECONDS
  shift
  echo "== $name"
  if "$@"; then
    results+=("PASS  $name ($((SECONDS - t))s)")
  else
    results+=("FAIL  $name ($((SECONDS - t))s)")
    failed=1
  fi
}
fail() { echo "FAIL: $*" >&2; return 1; }
# wait_for FILE PATTERN SECONDS: polls until FILE has a line matching PATTERN.
wait_for() {
  local deadline=$((SECONDS + $3))
  until grep -q -- "$2" "$1" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "--- $1:"; cat "$1"; fail "no '$2' within $3s"; return 1; }
    sleep 0.1
  done
}

gofmt_clean() {
  local out
  out="$(cd "$here" && gofmt -l warren examples)"
  [ -z "$out" ] || fail "not gofmt-clean: $out"
}
build() { mkdir -p "$bin" && go build -o "$bin/" "${examples[@]}"; }
unit_and_integration() {
  local race=()
  [ "${WARREN_GO_RACE:-0}" = 1 ] && race=(-race)
  go test -count=1 -v -timeout 240s "${race[@]}" "$pkg/warren" >"$logs/gotest" 2>&1
  local status=$?
  grep -E '^(--- |\s+\S+_test\.go:|PASS|FAIL|ok|panic)' "$logs/gotest"
  [ $status -eq 0 ] || { tail -n 40 "$logs/gotest"; return 1; }
}

example_hello() {
  local out="$logs/hello"
  timeout 60 "$bin/hello" -queue "go-hello-$suffix" >"$out" 2>&1 || { cat "$out"; fail "hello exited non-zero"; return 1; }
  cat "$out"
  grep -q '^received: Hello, Zookeeper & RabbitMQ! (message id ' "$out" || fail "hello did not receive its message" || return 1
  local sent got
  sent="$(sed -n 's/^published: .*(message id \(.*\))$/\1/p' "$out")"
  got="$(sed -n 's/^received: Hello, Zookeeper & RabbitMQ! (message id \(.*\))$/\1/p' "$out")"
  [ -n "$sent" ] && [ "$sent" = "$got" ] || fail "sent id '$sent', received '$got'"
}

example_campaign() {
  local election="go-campaign-$suffix" a="$logs/campaign-a" b="$logs/campaign-b" pa pb
  timeout 60 "$bin/campaign" -election "$election" -value one -lead-for 1s >"$a" 2>&1 & pa=$!
  timeout 60 "$bin/campaign" -election "$election" -value two -lead-for 1s >"$b" 2>&1 & pb=$!
  local sa=0 sb=0
  wait $pa || sa=$?
  wait $pb || sb=$?
  sed 's/^/[one] /' "$a"; sed 's/^/[two] /' "$b"
  [ $sa -eq 0 ] && [ $sb -eq 0 ] || fail "campaign exited with $sa and $sb" || return 1
  # Each leads once, one after the other: tokens grow, and the second
  # followed the first before taking over.
  local ea eb ta tb
  ea="$(grep -c '^leader: me ' "$a")"; eb="$(grep -c '^leader: me ' "$b")"
  [ "$ea" = 1 ] && [ "$eb" = 1 ] || fail "elected $ea and $eb times, want once each" || return 1
  ta="$(sed -n 's/^leader: me .*fencing token \([0-9]*\)$/\1/p' "$a")"
  tb="$(sed -n 's/^leader: me .*fencing token \([0-9]*\)$/\1/p' "$b")"
  [ "$ta" != "$tb" ] || fail "both led with fencing token $ta" || return 1
  local second="$a" first_value=two
  [ "$ta" -lt "$tb" ] && { second="$b"; first_value=one; }
  grep -q "^leader: $first_value\$" "$second" || fail "the second leader never followed the first ($first_value)"
}

example_config() {
  local key="go-config-$suffix/greeting" out="$logs/config" pid status=0
  timeout 60 "$bin/config" -key "$key" -changes 2 >"$out" 2>&1 & pid=$!
  if ! { wait_for "$out" "is not set" 20 &&
          "$bin/config" -key "$key" -set "hello" &&
          wait_for "$out" "changed: $key = \"hello\"" 20 &&
          "$bin/config" -key "$key" -set "hello again"; }; then
    kill "$pid" 2>/dev/null; wait "$pid"
    return 1
  fi
  wait $pid || status=$?
  cat "$out"
  [ $status -eq 0 ] || fail "config exited with $status" || return 1
  grep -q "changed: $key = \"hello again\" (version 1)" "$out" || fail "the second change was not printed"
}

example_lock() {
  local lock="go-lock-$suffix" a="$logs/lock-a" b="$logs/lock-b" pa pb
  timeout 60 "$bin/lock" -lock "$lock" -value one -hold 2s >"$a" 2>&1 & pa=$!
  timeout 60 "$bin/lock" -lock "$lock" -value two -hold 2s >"$b" 2>&1 & pb=$!
  local sa=0 sb=0
  wait $pa || sa=$?
  wait $pb || sb=$?
  sed 's/^/[one] /' "$a"; sed 's/^/[two] /' "$b"
  [ $sa -eq 0 ] && [ $sb -eq 0 ] || fail "lock exited with $sa and $sb" || return 1
  # Both held it and released it, one after the other: the second waited,
  # and its token is the larger one.
  grep -q '^released$' "$a" && grep -q '^released$' "$b" || fail "not both released" || return 1
  local ta tb waited
  ta="$(sed -n 's/^acquired .*fencing token \([0-9]*\)$/\1/p' "$a")"
  tb="$(sed -n 's/^acquired .*fencing token \([0-9]*\)$/\1/p' "$b")"
  [ -n "$ta" ] && [ -n "$tb" ] && [ "$ta" != "$tb" ] || fail "tokens '$ta' and '$tb'" || return 1
  waited="$b"
  [ "$ta" -gt "$tb" ] && waited="$a"
  grep -q '^waiting: 0 ahead, 1 holding$' "$waited" || fail "the second holder did not wait for the first"
  # Try-once on a lock someone holds fails at once.
  timeout 60 "$bin/lock" -lock "$lock" -hold 3s >"$a" 2>&1 & pa=$!
  wait_for "$a" '^acquired ' 20 || { kill "$pa"; wait "$pa"; return 1; }
  local status=0
  timeout 60 "$bin/lock" -lock "$lock" -try-once >"$b" 2>&1 || status=$?
  wait $pa
  cat "$b"
  [ $status -ne 0 ] && grep -q '^not acquired: ' "$b" || fail "try-once on a held lock: exit $status"
}

example_rpc() {
  local queue="go-rpc-$suffix" served="$logs/rpc-serve" out="$logs/rpc" pid status=0
  timeout 60 "$bin/rpc" -queue "$queue" -serve >"$served" 2>&1 & pid=$!
  if ! wait_for "$served" "^serving requests on $queue\$" 20; then
    kill "$pid" 2>/dev/null; wait "$pid"
    return 1
  fi
  timeout 30 "$bin/rpc" -queue "$queue" -call "hello, responder" >"$out" 2>&1 || status=$?
  kill -TERM "$pid" 2>/dev/null
  wait "$pid"
  sed 's/^/[serve] /' "$served"; cat "$out"
  [ $status -eq 0 ] || fail "rpc -call exited with $status" || return 1
  grep -q '^reply: HELLO, RESPONDER$' "$out" || fail "no upper-cased reply" || return 1
  # Nobody serves now: the call times out with its own message.
  status=0
  timeout 30 "$bin/rpc" -queue "$queue" -call "anyone?" -timeout 1s >"$out" 2>&1 || status=$?
  cat "$out"
  [ $status -ne 0 ] && grep -q '^no reply within 1s' "$out" || fail "a call without a responder: exit $status"
}

example_replay() {
  local stream="go-replay-$suffix" out="$logs/replay"
  timeout 60 "$bin/replay" -stream "$stream" -publish 5 >"$out" 2>&1 || { cat "$out"; fail "replay -publish failed"; return 1; }
  cat "$out"
  timeout 60 "$bin/replay" -stream "$stream" -from first -count 3 >"$out" 2>&1 || { cat "$out"; fail "replay -from first failed"; return 1; }
  cat "$out"
  [ "$(grep -c '^offset [0-9]*: message [0-2]$' "$out")" = 3 ] || fail "the first three messages were not replayed" || return 1
  local next
  next="$(sed -n 's/^continue with -from \([0-9]*\)$/\1/p' "$out")"
  [ -n "$next" ] || fail "no offset to continue from" || return 1
  timeout 60 "$bin/replay" -stream "$stream" -from "$next" -count 2 >"$out" 2>&1 || { cat "$out"; fail "replay -from $next failed"; return 1; }
  cat "$out"
  [ "$(grep -c '^offset ' "$out")" = 2 ] && grep -q '^offset [0-9]*: message 3$' "$out" &&
    grep -q '^offset [0-9]*: message 4$' "$out" || fail "resuming at $next did not give messages 3 and 4"
}

step "generate stubs" bash "$here/generate.sh"
step "gofmt" gofmt_clean
step "go vet" go vet "$pkg/warren" "${examples[@]}"
step "build examples" build
step "go test (unit + integration)" unit_and_integration
step "example hello" example_hello
step "example campaign" example_campaign
step "example config" example_config
step "example lock" example_lock
step "example rpc" example_rpc
step "example replay" example_replay

echo
echo "== Go client summary ($((SECONDS - start_all))s, against $WARREN_ADDRESS)"
printf '%s\n' "${results[@]}"
[ $failed -eq 0 ] && echo "ALL PASSED" || echo "FAILED"
exit $failed
