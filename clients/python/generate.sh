#!/usr/bin/env bash
# Generates the Python stubs of warren.v1 into warren_client/_gen/ (git-ignored:
# stubs are build output). Needs protoc and grpc_python_plugin (Debian:
# protobuf-compiler, protobuf-compiler-grpc); no network.
#
# The generated modules import each other as `warren.v1.x_pb2` (their proto
# package), so warren_client/__init__.py puts _gen/ on sys.path. The
# well-known types (google/protobuf/*.proto) are only an include path: the
# protobuf runtime already ships google.protobuf.timestamp_pb2 & co., and
# generating our own copies would shadow them.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
protos="$(cd "$here/../../protos" && pwd)"
out="$here/warren_client/_gen"
wkt_include="${WARREN_PROTO_INCLUDE:-/usr/include}"

plugin="$(command -v grpc_python_plugin || true)"
[ -n "$plugin" ] || { echo "generate.sh: grpc_python_plugin not found (apt-get install protobuf-compiler-grpc)" >&2; exit 1; }
command -v protoc >/dev/null || { echo "generate.sh: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }
[ -f "$wkt_include/google/protobuf/timestamp.proto" ] || { echo "generate.sh: no google/protobuf/*.proto under $wkt_include (set WARREN_PROTO_INCLUDE)" >&2; exit 1; }

# Generate into a fresh temporary folder and swap it in, so a failed run
# never leaves a half-written _gen/ behind.
tmp="$(mktemp -d "$here/.gen.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
(cd "$protos" && protoc -I. -I"$wkt_include" \
  --plugin=protoc-gen-grpc_python="$plugin" \
  --python_out="$tmp" --grpc_python_out="$tmp" \
  warren/v1/*.proto)
# Regular packages (not namespace packages), so that `warren` can never be
# picked up half from here and half from somewhere else on sys.path.
touch "$tmp/warren/__init__.py" "$tmp/warren/v1/__init__.py"
mkdir -p "$(dirname "$out")"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "generated $(ls "$out"/warren/v1/*.py | wc -l) modules into ${out#$here/}"
