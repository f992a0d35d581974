#!/usr/bin/env bash
# Generates the Java message classes and gRPC stubs (package io.warren.v1)
# from protos/warren/v1/*.proto into build/generated/ (gitignored).
#
# Needs: protoc (protobuf-compiler) and the grpc-java plugin
# (protobuf-compiler-grpc-java-plugin, /usr/bin/grpc_java_plugin). The
# google/protobuf well-known types come from /usr/include (libprotobuf-dev);
# their Java classes are in protobuf.jar, so they are not generated here.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
protos="$(cd "$here/../../protos" && pwd)"
out="$here/build/generated"
plugin="${GRPC_JAVA_PLUGIN:-/usr/bin/grpc_java_plugin}"
[ -x "$plugin" ] || { echo "generate.sh: no grpc-java plugin at $plugin (apt install protobuf-compiler-grpc-java-plugin)" >&2; exit 1; }

# Regenerate from scratch so that a removed .proto leaves no stale class.
rm -rf "$out"
mkdir -p "$out"
protoc -I"$protos" -I/usr/include \
  --java_out="$out" \
  --plugin=protoc-gen-grpc-java="$plugin" --grpc-java_out="$out" \
  "$protos"/warren/v1/*.proto
# The grpc-java plugin of Debian 12 (1.41) annotates stubs with
# @javax.annotation.Generated, which Java 11+ no longer ships. The annotation is
# source-retention only, so dropping it changes nothing at run time and saves a
# compile-time dependency on a javax.annotation jar.
find "$out" -name '*Grpc.java' -exec perl -0pi -e 's/\@javax\.annotation\.Generated\(.*?\)\n//s' {} +
echo "generated $(find "$out" -name '*.java' | wc -l) Java files in ${out#$here/}"
