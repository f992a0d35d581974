#!/usr/bin/env bash
# The Python client's tests: generates the stubs, byte-compiles the package,
# type-checks it (mypy, when installed), then runs the wrapper tests, the
# examples and the scheduler example against the live warrend in
# WARREN_ADDRESS. Fault tests start warrends of their own
# (WARREN_WARREND, same WARREN_ROOT). Run it through scripts/with-warrend.sh:
#
#   WARREN_TEST_ZK=... WARREN_TEST_AMQP_URL=... \
#     bash scripts/with-warrend.sh --secure -- bash clients/python/test.sh
#
# (from the repository's root).
#
# (--secure: the TLS + auth warrends of tests/test_security.py.)
#
# Uses Debian's /usr/bin/python3 (python3-grpcio, python3-protobuf); set
# WARREN_PYTHON to use another interpreter that has grpcio and protobuf.
# Extra arguments are passed to unittest (e.g. test_election.ElectorTest).
# WARREN_OUTAGE_SECONDS (default 40): how long tests/test_outage.py keeps its
# warrend down.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${WARREN_PYTHON:-/usr/bin/python3}"
started=$SECONDS

missing=()
for var in WARREN_ADDRESS WARREN_WARREND WARREN_ROOT WARREN_TEST_ZK WARREN_TEST_AMQP_URL; do
  [ -n "${!var:-}" ] || missing+=("$var")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "python client tests: ${missing[*]} not set; run through scripts/with-warrend.sh" >&2
  exit 2
fi

echo "== python client: generate"
bash "$here/generate.sh"
echo "== python client: build (byte-compile) with $("$python" --version 2>&1)"
"$python" -c 'import grpc, google.protobuf; print("   grpcio", grpc.__version__, "protobuf", google.protobuf.__version__)'
"$python" -m compileall -q "$here/warren_client" "$here/examples" "$here/tests"
"$python" -c "import sys; sys.path.insert(0, '$here'); import warren_client"
if "$python" -c 'import mypy' 2>/dev/null; then
  echo "== python client: type check (mypy, clients/python/mypy.ini)"
  (cd "$here" && "$python" -m mypy --config-file mypy.ini warren_client)
else
  echo "== python client: type check skipped: no mypy for $python (apt-get install mypy)"
fi

echo "== python client: tests against $WARREN_ADDRESS"
status=0
if [ $# -eq 0 ]; then set -- discover -v; else set -- -v "$@"; fi
(cd "$here/tests" && "$python" -m unittest "$@") || status=$?
elapsed=$((SECONDS - started))
if [ $status -eq 0 ]; then
  echo "== python client: PASSED in ${elapsed}s"
else
  echo "== python client: FAILED (unittest exit $status) after ${elapsed}s" >&2
fi
exit $status
