#!/usr/bin/env bash
# Prints the class path of the Warren Java client, built from the jars that
# Debian 12 installs in /usr/share/java (JAVA_LIB_DIR overrides the folder).
#
#   classpath.sh            the runtime class path (dependencies only)
#   classpath.sh --compile  plus Error Prone's annotations, for javac only
#   classpath.sh --test     plus those, JUnit 4 and Hamcrest
#
# Each jar comes from a Debian package, named beside it so that a fresh
# machine knows what to install (scripts/install-deps.sh).
set -euo pipefail
lib="${JAVA_LIB_DIR:-/usr/share/java}"
jars=(
  grpc-api grpc-context grpc-core grpc-stub grpc-protobuf grpc-protobuf-lite
  grpc-netty                           # libgrpc-java
  protobuf                             # libprotobuf-java
  guava                                # libguava-java (bundles failureaccess)
  netty-common netty-buffer netty-resolver netty-transport netty-codec
  netty-codec-http netty-codec-http2 netty-handler
  netty-handler-proxy netty-codec-socks  # libnetty-java
  netty-tcnative                       # libnetty-tcnative-java (+ -jni): TLS,
                                       # as Debian's netty has no JDK ALPN
  perfmark-api                         # libperfmark-java: grpc-core calls it on
                                       # every RPC, but libgrpc-java does not
                                       # depend on it
)
case "${1:-}" in
  --compile|--test)
    # guava's and grpc's classes carry Error Prone annotations (@DoNotMock,
    # @DoNotCall) whose class files javac -Xlint:classfile wants to read; not
    # needed at run time. liberror-prone-java (a dependency of libguava-java).
    jars+=(error_prone_annotations) ;;&
  --test)
    jars+=(junit4 hamcrest) ;;         # junit4, libhamcrest-java
esac
cp=""
for jar in "${jars[@]}"; do
  [ -f "$lib/$jar.jar" ] || { echo "classpath.sh: missing $lib/$jar.jar" >&2; exit 1; }
  cp="${cp:+$cp:}$lib/$jar.jar"
done
echo "$cp"
