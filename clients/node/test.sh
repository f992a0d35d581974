#!/usr/bin/env bash
# Tests the Node.js client end to end: generate.sh (npm ci from the lockfile +
# protos), a syntax check of every source file, then the unit tests (fakes)
# and the integration tests (wrapper + examples) against the live warrend in
# WARREN_ADDRESS. The restart/freeze tests start private warrends, so they
# also need WARREN_WARREND, WARREN_ROOT, WARREN_TEST_ZK and
# WARREN_TEST_AMQP_URL: run it through scripts/with-warrend.sh, e.g.
#
#   cd /work/main && WARREN_TEST_ZK=127.0.0.1:21810 \
#     WARREN_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:15673/ \
#     bash scripts/with-warrend.sh --secure -- bash clients/node/test.sh
#
# Without WARREN_ADDRESS but with WARREN_TEST_ZK set, it does that itself.
# test/integration/outage.test.js keeps a warrend of its own down for
# WARREN_OUTAGE_SECONDS (default 40) and needs about that plus 5 s.
# Exits non-zero on any failure and ends with "node: N passed, N failed".
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if [ -z "${WARREN_ADDRESS:-}" ]; then
  if [ -n "${WARREN_TEST_ZK:-}" ] && [ -n "${WARREN_TEST_AMQP_URL:-}" ]; then
    exec bash "$repo/scripts/with-warrend.sh" --secure -- bash "$here/test.sh" "$@"
  fi
  echo "test.sh: set WARREN_ADDRESS (or WARREN_TEST_ZK and WARREN_TEST_AMQP_URL); see the header of this file" >&2
  exit 2
fi
for v in WARREN_WARREND WARREN_ROOT WARREN_TEST_ZK WARREN_TEST_AMQP_URL; do
  [ -n "${!v:-}" ] || { echo "test.sh: $v is not set (run through scripts/with-warrend.sh)" >&2; exit 2; }
done

cd "$here"
now_ms() { date +%s%3N; }
secs() { local d=$(( $(now_ms) - $1 )); printf '%d.%d' $((d / 1000)) $((d % 1000 / 100)); }
started=$(now_ms)

echo "== generate"
t=$(now_ms)
bash generate.sh
echo "   ($(secs "$t") s)"

echo "== build (plain ESM, nothing to compile: load the package and check the examples parse)"
t=$(now_ms)
node -e "import('@warren/client').then((m) => { new m.Warren('127.0.0.1:1').close(); })"
for f in examples/*.js; do node --check "$f"; done
echo "   ($(secs "$t") s)"

echo "== tests against warrend at $WARREN_ADDRESS"
tap="$(mktemp "${TMPDIR:-/tmp}/warren-node-tap.XXXXXX")"
trap 'rm -f "$tap"' EXIT
set +e
node --test --test-timeout=120000 \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$tap" \
  test/unit/ test/integration/
status=$?
set -e
pass=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$tap" | tail -1)
fail=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$tap" | tail -1)
cancelled=$(sed -n 's/^# cancelled \([0-9]*\)$/\1/p' "$tap" | tail -1)
fail=$(( ${fail:-0} + ${cancelled:-0} ))
echo
echo "== summary: ${pass:-0} tests passed, $fail failed, in $(secs "$started") s (test runner exit $status)"
echo "node: ${pass:-0} passed, $fail failed"
if [ "$status" -ne 0 ] || [ "$fail" -ne 0 ] || [ "${pass:-0}" -eq 0 ]; then exit 1; fi
