#!/usr/bin/env bash
# Quick start, command 2: runs the whole test suite.
#
# Installs what is missing, builds the plain and the ASan+UBSan trees and the
# unit tests under ThreadSanitizer, starts a test ZooKeeper and RabbitMQ on
# loopback ports of their own, below the ephemeral range (so a developer's servers can keep running),
# runs every test of each tree with ctest, the cluster fault suite once
# (plain tree, its own cluster), then a bounded libFuzzer run of
# each fuzz target (build/fuzz, clang), and stops the servers it started.
# The test RabbitMQ also listens for amqps:// (client certificates required).
# Exit status 0 only if everything passed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$WARREN_ROOT_DIR"

total_start=$SECONDS
bash scripts/install-deps.sh --clients
bash scripts/build.sh plain
bash scripts/build.sh asan
bash scripts/build.sh tsan --target common_test config_test amqp_test amqp_pool_test messaging_test \
  election_test call_book_test delay_queues_test

export WARREN_STACK_DIR="${WARREN_TEST_STACK_DIR:-$WARREN_ROOT_DIR/.stack/test}"
export WARREN_ZK_PORT="${WARREN_TEST_ZK_PORT:-21810}"
export WARREN_AMQP_PORT="${WARREN_TEST_AMQP_PORT:-15673}"
export WARREN_EPMD_PORT="${WARREN_TEST_EPMD_PORT:-14369}"
export WARREN_AMQP_DIST_PORT="${WARREN_TEST_AMQP_DIST_PORT:-15674}"
# amqps:// with client certificates (tests/integration/tls_integration_test).
export WARREN_AMQPS_PORT="${WARREN_TEST_AMQPS_PORT:-15675}"
trap 'bash scripts/stack.sh stop all' EXIT
bash scripts/stack.sh start all

export WARREN_TEST_ZK="127.0.0.1:$WARREN_ZK_PORT"
export WARREN_TEST_AMQP_URL="amqp://guest:guest@127.0.0.1:$WARREN_AMQP_PORT/"
# The broker's certificate names localhost and 127.0.0.1; the CA and client
# certificate are the ones stack.sh made for it.
export WARREN_TEST_AMQPS_URL="amqps://guest:guest@localhost:$WARREN_AMQPS_PORT/"
export WARREN_TEST_AMQPS_CA="$WARREN_STACK_DIR/rabbitmq/tls/ca.crt"
export WARREN_TEST_AMQPS_CERT="$WARREN_STACK_DIR/rabbitmq/tls/client.crt"
export WARREN_TEST_AMQPS_KEY="$WARREN_STACK_DIR/rabbitmq/tls/client.key"
export TMPDIR="${TMPDIR:-$WARREN_STACK_DIR/tmp}"
mkdir -p "$TMPDIR"
# A sanitizer report fails the test that triggered it.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# Leaks inside third-party libraries (tests/lsan.supp) are theirs, not ours.
export LSAN_OPTIONS="suppressions=$WARREN_ROOT_DIR/tests/lsan.supp:print_suppressions=0"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"

status=0
for flavour in plain asan; do
  start=$SECONDS
  log "tests: build/$flavour"
  ctest --test-dir "build/$flavour" -j 2 --output-on-failure --timeout 300 -LE cluster || status=1
  log "tests: build/$flavour took $((SECONDS - start))s"
done

# The cluster fault suite (tests/cluster, label `cluster`): once, in the
# plain tree, alone (it starts its own three-node ZooKeeper ensemble and
# RabbitMQ cluster and three warrend replicas with scripts/cluster.sh, and
# stops them). Verbose: its per-fault table is docs/operations.md's numbers.
# WARREN_CLUSTER_REPEATS / WARREN_CLUSTER_ROLLING_REPEATS lengthen it.
start=$SECONDS
log "tests: cluster fault suite (build/plain, label cluster)"
ctest --test-dir build/plain -L cluster -V --timeout 1200 --no-tests=error || status=1
log "tests: cluster fault suite took $((SECONDS - start))s"
log "tests: build/tsan (unit tests of concurrent code)"
ctest --test-dir build/tsan -j 2 --output-on-failure --timeout 300 \
  -R '^(ValidateName|LogRateLimit|TimerQueue|WorkerPool|StreamRegistry|StreamLifetime|StreamHeartbeat|LeaseProofIsFresh|DurationTest|HeartbeatInterval|ClientQuota|QuotaClient|KeySpace|PathLess|WatchCache|ParseBrokerUrl|AmqpClient|AmqpPool|ValidatePublish|ToOutgoing|ToSubscribeSpec|ElectionTest|CallBook|DelayQueues)' || status=1

# Fuzzing smoke run: each libFuzzer target (tests/fuzz) for a bounded time
# over a copy of its seed corpus (the repository is never written); a crash,
# sanitizer report or broken invariant fails the suite.
start=$SECONDS
log "tests: fuzz smoke run (build/fuzz)"
if bash scripts/build.sh fuzz; then
  for fuzzer in validation_fuzzer subscribe_fuzzer elect_fuzzer lock_fuzzer; do
    work="$(mktemp -d)"
    mkdir "$work/corpus"
    cp "tests/fuzz/corpus/$fuzzer/"* "$work/corpus/"
    if (cd "$work" && "$WARREN_ROOT_DIR/build/fuzz/tests/fuzz/$fuzzer" corpus \
      -max_total_time=24 -timeout=60 -print_final_stats=1 >log 2>&1); then
      log "tests: $fuzzer: $(grep -E '^Done [0-9]+ runs' "$work/log" || echo 'no summary')"
    else
      status=1
      tail -n 60 "$work/log"
      log "tests: $fuzzer FAILED (its input: $(ls "$work" | grep -E '^(crash|leak|timeout|oom)-' || echo none))"
    fi
    rm -rf "$work"
  done
else
  status=1
fi
log "tests: fuzz smoke run took $((SECONDS - start))s"

log "test suite: $([ $status -eq 0 ] && echo PASSED || echo FAILED) in $((SECONDS - total_start))s"
exit $status
