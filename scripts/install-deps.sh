#!/usr/bin/env bash
# Installs everything Warren needs from Debian 12's packages. Idempotent: it
# only asks apt for what is missing, and only refreshes the package lists
# when something is.
#
#   scripts/install-deps.sh            the server, its tests and the local stack
#   scripts/install-deps.sh --clients  also the toolchains of the client libraries
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PACKAGES=(
  # build
  cmake g++ make ccache pkg-config
  # libraries
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libzookeeper-mt-dev librabbitmq-dev libspdlog-dev
  libyaml-cpp-dev libgtest-dev libgmock-dev libssl-dev
  prometheus-cpp-dev
  # servers for the local stack and the tests (openssl: their certificates)
  zookeeper rabbitmq-server libslf4j-java openssl
  # the chart's render check (helm/check.sh), Go in GOPATH mode
  golang-go golang-github-masterminds-sprig-dev
  golang-github-xeipuuv-gojsonschema-dev golang-k8s-sigs-yaml-dev yamllint
  # fuzzing (scripts/build.sh fuzz, tests/fuzz): clang and its libFuzzer runtime
  clang libclang-rt-14-dev
)
if [ "${1:-}" = "--clients" ]; then
  PACKAGES+=(
    # Python: Debian's interpreter and gRPC (PyPI is not reachable), and
    # mypy for clients/python/test.sh's type check
    python3 python3-grpcio python3-protobuf mypy
    # Go, in GOPATH mode against Debian's Go libraries
    golang-go protoc-gen-go protoc-gen-go-grpc golang-google-grpc-dev
    golang-google-protobuf-dev
    # Java, compiled with javac against Debian's jars
    default-jdk-headless libgrpc-java protobuf-compiler-grpc-java-plugin
    libprotobuf-java libperfmark-java junit4 libhamcrest-java
    # TLS: Debian's netty has no JDK ALPN; grpc-java uses OpenSSL through tcnative
    libnetty-tcnative-java libnetty-tcnative-jni
  )
  # Node.js: the machine's own when it has one (its packages come from npm).
  command -v node >/dev/null && command -v npm >/dev/null || PACKAGES+=(nodejs npm)
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  log "dependencies: all ${#PACKAGES[@]} packages present"
  exit 0
fi

log "dependencies: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# The package lists of a fresh machine may be stale or empty.
as_root apt-get update -qq
# Keep Debian's service scripts from starting system-wide servers: Warren
# runs its own, on loopback, under the project folder.
policy_added=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
  as_root chmod +x /usr/sbin/policy-rc.d
  policy_added=1
fi
trap 'if [ $policy_added -eq 1 ]; then as_root rm -f /usr/sbin/policy-rc.d; fi' EXIT
as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
log "dependencies: installed"
