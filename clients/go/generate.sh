#!/usr/bin/env bash
# Generates the Go stubs of warren.v1 into build/gopath (ignored by git).
#
# The protos declare go_package "github.com/warren/warren/gen/go/warren/v1",
# so the stubs are written into the GOPATH at exactly that import path
# (protoc-gen-go's default paths=import), and the wrapper imports them as
# warrenv1 "github.com/warren/warren/gen/go/warren/v1". No network needed:
# protoc, protoc-gen-go and protoc-gen-go-grpc come from Debian.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
protos="$(cd "$here/../../protos" && pwd)"
gopath="$here/build/gopath"
out="$gopath/src"
gen="$out/github.com/warren/warren/gen/go/warren/v1"

# Start from an empty folder so that a proto removed upstream leaves no stale
# stub behind (idempotent: same inputs, same files).
rm -rf "$gen"
mkdir -p "$out"
# The well-known types (google/protobuf/*.proto) are resolved from
# /usr/include; their Go code is google.golang.org/protobuf/types/known/...
# from /usr/share/gocode, so nothing is generated for them.
# require_unimplemented_servers=false: servers written against these stubs
# need not embed UnimplementedXServer (only the client side is used here).
protoc -I"$protos" -I/usr/include \
  --go_out="$out" \
  --go-grpc_out="$out" --go-grpc_opt=require_unimplemented_servers=false \
  "$protos"/warren/v1/*.proto

# The wrapper's own import path, github.com/warren/warren/clients/go, points
# back at this folder, so that GOPATH-mode builds find it without copying.
link="$out/github.com/warren/warren/clients/go"
mkdir -p "$(dirname "$link")"
ln -sfn "$here" "$link"
echo "generated $(ls "$gen" | wc -l) Go files into ${gen#$here/}"
