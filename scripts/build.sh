#!/usr/bin/env bash
# Configures and builds one flavour of the tree under build/<flavour>:
#   plain  RelWithDebInfo
#   asan   AddressSanitizer + UndefinedBehaviorSanitizer
#   tsan   ThreadSanitizer
#   fuzz   clang, libFuzzer + ASan + UBSan: only the fuzz targets (tests/fuzz)
# Extra arguments are passed to `cmake --build` (e.g. --target warrend).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

flavour="${1:-plain}"
shift || true
case "$flavour" in
  plain) flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  asan) flags=(-DCMAKE_BUILD_TYPE=Debug -DWARREN_ASAN=ON) ;;
  tsan) flags=(-DCMAKE_BUILD_TYPE=Debug -DWARREN_TSAN=ON) ;;
  fuzz)
    flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DWARREN_FUZZ=ON
      -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++)
    # The fuzz targets and what they link, not the whole tree.
    [ $# -gt 0 ] || set -- --target warren_fuzzers
    ;;
  *) die "unknown build flavour '$flavour' (plain, asan, tsan, fuzz)" ;;
esac
dir="$WARREN_ROOT_DIR/build/$flavour"
# ccache keys on relative paths below the checkout, and not on the build
# directory (which it would with -g), so that another clone or worktree of
# the same sources reuses the cache. The price: a cached object's debug info
# names the directory of the checkout that compiled it first.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$WARREN_ROOT_DIR}"
export CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-true}"
# Configure every time (a few seconds): a tree configured before a target
# existed would not know how to build it.
cmake -S "$WARREN_ROOT_DIR" -B "$dir" "${flags[@]}" >/dev/null
start=$SECONDS
cmake --build "$dir" -j "$(nproc)" "$@"
log "build/$flavour: built in $((SECONDS - start))s"
