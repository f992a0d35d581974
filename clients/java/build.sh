#!/usr/bin/env bash
# Compiles the Warren Java client with plain javac (no Maven Central here):
#   build/classes           generated stubs + io.warren.client
#   build/warren-client.jar the same, as a jar
#   build/test-classes      the JUnit 4 tests
#   build/examples-classes  the examples
# Run generate.sh first (test.sh does both).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
[ -d build/generated/io/warren/v1 ] || { echo "build.sh: run generate.sh first" >&2; exit 1; }
cp="$(./classpath.sh --compile)"
test_cp="$(./classpath.sh --test)"
# C1 only, serial GC: javac here is short-lived, and on a busy machine this
# cuts the build from over a minute to seconds.
jvm_fast=(-J-XX:TieredStopAtLevel=1 -J-XX:+UseSerialGC)
# Every lint, warnings as errors, for the generated stubs too (protoc's and
# grpc-java's output of Debian 12 compiles clean; the Error Prone annotations
# on the compile class path keep -Xlint:classfile quiet about guava's and
# grpc's class files).
javac_flags=("${jvm_fast[@]}" --release 17 -encoding UTF-8 -Xlint:all -Werror)

rm -rf build/classes build/test-classes build/examples-classes build/warren-client.jar
mkdir -p build/classes build/test-classes build/examples-classes

sources=()
while IFS= read -r f; do sources+=("$f"); done < <(find build/generated src/main/java -name '*.java' | sort)
javac "${javac_flags[@]}" -cp "$cp" -d build/classes "${sources[@]}"
jar "${jvm_fast[@]}" --create --file build/warren-client.jar -C build/classes .

mapfile -t tests < <(find src/test/java -name '*.java' | sort)
if [ ${#tests[@]} -gt 0 ]; then
  javac "${javac_flags[@]}" -cp "build/classes:$test_cp" -d build/test-classes "${tests[@]}"
fi
mapfile -t examples < <(find examples -name '*.java' | sort)
if [ ${#examples[@]} -gt 0 ]; then
  javac "${javac_flags[@]}" -cp "build/classes:$cp" -d build/examples-classes "${examples[@]}"
fi
echo "built build/warren-client.jar ($(find build/classes -name '*.class' | wc -l) classes)"
