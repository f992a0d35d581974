#!/usr/bin/env bash
# The installed C++ client, used from outside the tree (CTest
# client_cpp_install, under scripts/with-warrend.sh for WARREN_ADDRESS):
#
#   install_test.sh BUILD_DIR
#
# installs BUILD_DIR (cmake --install) into a temporary prefix, checks what
# is there (warrend, the warren CLI, the library, headers that include no
# server code, a CMake package that exports no path of this checkout, the
# pkg-config file), builds clients/cpp/examples as a project of its own with
# find_package(WarrenClient) against that prefix and runs the examples
# against the live warrend, then compiles and runs a small program with
# pkg-config's flags alone.
set -euo pipefail

build_dir="$(cd "${1:?usage: install_test.sh BUILD_DIR}" && pwd)"
source_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
: "${WARREN_ADDRESS:?run it under scripts/with-warrend.sh}"
work="$(mktemp -d "${TMPDIR:-/tmp}/cpp-install.XXXXXX")"
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
started=$SECONDS

fail() {
  echo "install_test: FAILED: $*" >&2
  exit 1
}
step() { echo "install_test: [$((SECONDS - started))s] $*"; }

step "cmake --install $build_dir --prefix $prefix"
cmake --install "$build_dir" --prefix "$prefix" >"$work/install.log"

for program in warrend warren; do
  [ -x "$prefix/bin/$program" ] || fail "bin/$program is not installed"
done
libdir="$(dirname "$(find "$prefix" -name libwarren_client.a | head -n 1)")"
[ -f "$libdir/libwarren_client.a" ] || fail "libwarren_client.a is not installed"
[ -f "$libdir/libwarren_proto.a" ] || fail "libwarren_proto.a is not installed"
for header in backoff channel config_watcher elector publisher retry_policy subscriber; do
  [ -f "$prefix/include/warren/client/$header.h" ] || fail "warren/client/$header.h is not installed"
done
for proto in common config election messaging; do
  for suffix in pb.h grpc.pb.h; do
    [ -f "$prefix/include/warren/v1/$proto.$suffix" ] || fail "warren/v1/$proto.$suffix is not installed"
  done
done
if grep -rn '#include "\(server\|tests\|src\)/' "$prefix/include"; then
  fail "an installed header includes a file that is not installed"
fi
package="$libdir/cmake/WarrenClient"
[ -f "$package/WarrenClientConfig.cmake" ] || fail "no CMake package in $package"
if grep -rn -F "$source_dir" "$package"; then
  fail "the CMake package refers to this checkout"
fi
pc="$libdir/pkgconfig/warren-client.pc"
[ -f "$pc" ] || fail "no $pc"

step "examples: configure and build against the installed package"
# ccache (when there is one) keyed relative to this run's directory, so that
# the next run's compiles are hits.
launcher=()
cxx=(g++)
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cxx=(ccache g++)
  export CCACHE_BASEDIR="$work" CCACHE_NOHASHDIR=true
fi
cmake -S "$source_dir/clients/cpp/examples" -B "$work/examples" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" "${launcher[@]}" \
  >"$work/configure.log" || { cat "$work/configure.log"; fail "configure"; }
cmake --build "$work/examples" -j 2 >"$work/build.log" ||
  { cat "$work/build.log"; fail "build"; }

step "examples: run against $WARREN_ADDRESS"
# hello: publish and receive (a fixed, reused durable queue: nothing piles up).
out="$("$work/examples/hello" --queue=cpp-install-test 2>&1)" ||
  { echo "$out"; fail "hello exited with an error"; }
echo "$out" | grep -q '^subscribed to queue cpp-install-test$' || { echo "$out"; fail "hello did not subscribe"; }
echo "$out" | grep -q '^received "Hello, Zookeeper & RabbitMQ!"' || { echo "$out"; fail "hello received nothing"; }
echo "$out" | grep -q '^done$' || { echo "$out"; fail "hello did not finish"; }

# config: a value put with the installed CLI, read by the example.
key="cpp/install-$$-$RANDOM"
"$prefix/bin/warren" --server="$WARREN_ADDRESS" config put "$key" installed >/dev/null ||
  fail "the installed warren CLI could not put $key"
out="$("$work/examples/config" --key="$key" --duration=1s 2>&1)" ||
  { echo "$out"; fail "config exited with an error"; }
echo "$out" | grep -q "^value: $key = installed (version 0)$" || { echo "$out"; fail "config did not print the value"; }

# campaign: the only candidate of a new election leads.
out="$("$work/examples/campaign" --election="cpp-install-$$-$RANDOM" --duration=2s 2>&1)" ||
  { echo "$out"; fail "campaign exited with an error"; }
echo "$out" | grep -q '^elected: ' || { echo "$out"; fail "campaign was not elected"; }

step "pkg-config: compile and run a program with its flags alone"
cat >"$work/tiny.cc" <<'PROGRAM'
#include <cstdio>

#include "warren/client/channel.h"
#include "warren/client/publisher.h"

// Publishes one message that no queue takes: with mandatory on by default
// the broker returns it, and the Publisher says so.
int main() {
  auto channel = warren::client::MakeChannel(warren::client::AddressFromEnv());
  warren::client::Publisher publisher(channel);
  auto id = publisher.PublishToQueue("cpp-install-no-such-queue", "lost");
  std::printf("%s\n", id.status().ToString().c_str());
  return id.status().code() == absl::StatusCode::kFailedPrecondition ? 0 : 1;
}
PROGRAM
export PKG_CONFIG_PATH="$libdir/pkgconfig"
# shellcheck disable=SC2046 # one word per flag
"${cxx[@]}" -std=c++17 -o "$work/tiny" "$work/tiny.cc" $(pkg-config --cflags --libs warren-client) ||
  fail "the pkg-config compile"
"$work/tiny" || fail "the pkg-config program: an unroutable message was not an error"

step "passed"
