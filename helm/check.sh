#!/usr/bin/env bash
# The chart's CI check, without Helm and without a cluster (neither exists
# here). Offline, a few seconds once Go's build cache is warm.
#
#   1. render-check: renders helm/warren with a Helm-compatible engine
#      (Go text/template + sprig + Helm's extra functions, GOPATH mode
#      against Debian's Go packages), validates every value set against
#      values.schema.json, parses every rendered document, asserts the
#      chart's structure, runs yamllint, and hands every rendered
#      configuration to the real warrend when it is built.
#   2. deploy/healthcheck (the helm test client in the image) compiles.
#   3. image-deps: deploy/Dockerfile installs what scripts/install-deps.sh
#      installs and what warrend links.
#
# WARREND=<path> names the warrend binary (default build/plain's; skipped
# with a notice when absent). Exit status non-zero on any failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
start=$SECONDS

export GO111MODULE=off
export GOPATH="$here/.gopath:/usr/share/gocode"
export GOCACHE="${GOCACHE:-$here/.cache/go-build}"
export CGO_ENABLED=0
mkdir -p "$here/.gopath" "$here/.cache" "$here/.out"

warrend="${WARREND:-$root/build/plain/server/daemon/warrend}"
# Absolute: the render check runs in another directory.
[ -e "$warrend" ] && warrend="$(realpath "$warrend")"
warrend_arg=()
if [ -x "$warrend" ]; then
  warrend_arg=(-warrend "$warrend")
else
  echo "check.sh: $warrend not built: rendered configurations are not run through warrend" >&2
fi

echo "== render-check"
(cd "$here/render-check" && go build -o "$here/.out/render-check" .)
(cd "$here/render-check" && "$here/.out/render-check" \
  -chart "$here/warren" \
  -options "$root/server/daemon/options.cc" \
  -cmakelists "$root/CMakeLists.txt" \
  -failcases "$here/render-check/testdata/fail" \
  -out "$here/.out/rendered" \
  -yamllint-config "$here/render-check/yamllint.yaml" \
  "${warrend_arg[@]}")

echo "== deploy/healthcheck"
(cd "$root/deploy/healthcheck" && go build -o "$here/.out/warren-healthcheck" .)
echo "warren-healthcheck builds"

echo "== image-deps"
WARREND="$warrend" bash "$here/image-deps.sh"

echo "check.sh: all checks passed in $((SECONDS - start))s"
