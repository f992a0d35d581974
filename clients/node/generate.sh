#!/usr/bin/env bash
# Prepares the Node.js client: installs its pinned dependencies (from
# package-lock.json) and generates what the wrapper loads at run time.
#
#   generated/protos/  warren/v1/*.proto from protos/, plus the well-known types
#                      they import (google/protobuf/*.proto from /usr/include),
#                      so the package works without the repository around it.
#                      @grpc/proto-loader compiles them when the client starts.
#   generated/types/   TypeScript declarations of every message and of the raw
#                      service clients (proto-loader-gen-types), for editors and
#                      TypeScript users of the raw stubs.
#
# Idempotent and quick; the only network access is `npm ci` when node_modules
# is missing or older than the lockfile.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
protos="$repo/protos"
wkt="${WARREN_WKT_INCLUDE:-/usr/include}"
cd "$here"

if [ ! -d node_modules/@grpc/grpc-js ] || [ ! -d node_modules/@grpc/proto-loader ] ||
   [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # --ignore-scripts: protobufjs' postinstall only prints version hints.
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
fi

[ -f "$wkt/google/protobuf/timestamp.proto" ] ||
  { echo "generate.sh: no google/protobuf/*.proto under $wkt (apt-get install libprotobuf-dev)" >&2; exit 1; }

out="$here/generated"
tmp="$(mktemp -d "$here/.generated.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp" # mktemp makes it 0700
mkdir -p "$tmp/protos/warren/v1" "$tmp/protos/google/protobuf"
cp "$protos"/warren/v1/*.proto "$tmp/protos/warren/v1/"
# Every well-known type any warren proto imports.
for wk in $(sed -n 's|^import "google/protobuf/\(.*\)";|\1|p' "$protos"/warren/v1/*.proto | sort -u); do
  cp "$wkt/google/protobuf/$wk" "$tmp/protos/google/protobuf/"
done

node node_modules/@grpc/proto-loader/build/bin/proto-loader-gen-types.js \
  --longs=String --enums=String --defaults --oneofs --includeComments \
  --grpcLib=@grpc/grpc-js -I "$tmp/protos" -O "$tmp/types" \
  warren/v1/common.proto warren/v1/config.proto warren/v1/election.proto \
  warren/v1/lock.proto warren/v1/messaging.proto >/dev/null

# Swap in the new output at once, so a failed run leaves the old one intact.
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "generate.sh: generated/protos and generated/types are up to date"
