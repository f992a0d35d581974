#!/usr/bin/env bash
# A ZooKeeper ensemble (zk1 zk2 zk3), a RabbitMQ cluster (rmq1 rmq2 rmq3) and
# warrend replicas (w1..wN) on loopback, for fault tests and for trying Warren
# as it is deployed. Data, logs and pid files under $WARREN_CLUSTER_DIR
# (default .stack/cluster).
#
#   scripts/cluster.sh start                 ensemble + cluster; returns when
#                                            ZooKeeper has 1 leader and 2
#                                            followers and RabbitMQ 3 running
#                                            nodes
#   scripts/cluster.sh stop [NODE]           everything (replicas first), or
#                                            one node, gracefully
#   scripts/cluster.sh status                one line per node:
#                                            NAME STATE PID ADDRESS ROLE
#   scripts/cluster.sh kill|freeze|thaw NODE SIGKILL, SIGSTOP, SIGCONT
#   scripts/cluster.sh restart NODE          (stops it if running,) starts it,
#                                            returns when it is healthy and
#                                            back in its cluster
#   scripts/cluster.sh start-warrend N [FLAG...]   replicas w1..wN; returns
#                                            when each one's health is SERVING,
#                                            prints their addresses, one a line
#   scripts/cluster.sh stop-warrend
#   scripts/cluster.sh wait-healthy [SECONDS]   every node (and replica) up
#   scripts/cluster.sh zk-leader             e.g. "zk2"
#   scripts/cluster.sh zk-connect            127.0.0.1:P1,127.0.0.1:P2,...
#   scripts/cluster.sh amqp-urls             amqp://guest:guest@127.0.0.1:P/,...
#   scripts/cluster.sh warrend-addresses     127.0.0.1:P, one a line
#   scripts/cluster.sh pid NODE              the pid signalled by kill/freeze
#   scripts/cluster.sh ctl rmqN ARGS...      rabbitmqctl against that node
#
# NODE: zk1..zk3, rmq1..rmq3, w1..wN. For a RabbitMQ node the pid is the
# Erlang VM's (beam.smp), not the rabbitmq-server shell that waits for it.
#
# Ports from WARREN_CLUSTER_PORT_BASE (B, default 24000; below the ephemeral
# range and away from the single-node stacks' ports): ZooKeeper client B+1..3,
# quorum B+11..13, election B+21..23; AMQP B+31..33, Erlang distribution
# B+41..43, epmd B+50, rabbitmqctl B+60..79; warrend wK gRPC B+100+K,
# metrics B+200+K.
# Also: WARREN_CLUSTER_ZK_TICK_MS (1000), WARREN_CLUSTER_RMQ_PARTITION_HANDLING
# (unset: RabbitMQ's "ignore"), WARREN_WARREND (the binary, default
# build/plain/server/daemon/warrend), WARREN_CLUSTER_WARREND_FLAGS (extra
# warrend flags, split on spaces; flags after N come after them). Replica K
# gets --listen, --metrics_listen (its health is read there), and the
# ZooKeeper and AMQP lists rotated to start at node K; the default --root.
#
# Only processes this script started are signalled: each one's pid file is
# checked against a marker in the process's environment. Errors are one line
# naming the node, and the exit status is non-zero.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLUSTER_DIR="${WARREN_CLUSTER_DIR:-$WARREN_ROOT_DIR/.stack/cluster}"
BASE="${WARREN_CLUSTER_PORT_BASE:-24000}"
ZK_TICK_MS="${WARREN_CLUSTER_ZK_TICK_MS:-1000}"
RMQ_BIN=/usr/lib/rabbitmq/bin
ZK_NODES=(zk1 zk2 zk3)
RMQ_NODES=(rmq1 rmq2 rmq3)
MAX_REPLICAS=99

[[ $BASE =~ ^[0-9]+$ ]] && [ "$BASE" -ge 1024 ] && [ $((BASE + 200 + MAX_REPLICAS)) -le 65535 ] ||
  die "WARREN_CLUSTER_PORT_BASE=$BASE: need a number from 1024 to $((65535 - 200 - MAX_REPLICAS))"

# Ports inside the kernel's ephemeral range may be taken by any connection.
if read -r eph_low eph_high </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null &&
  [ $((BASE + 200 + MAX_REPLICAS)) -ge "$eph_low" ] && [ "$BASE" -le "$eph_high" ]; then
  log "warning: ports $BASE-$((BASE + 200 + MAX_REPLICAS)) overlap the ephemeral range $eph_low-$eph_high"
fi

EPMD_PORT=$((BASE + 50))
node_num() { echo "${1//[!0-9]/}"; }
zk_port() { echo $((BASE + $(node_num "$1"))); }
zk_quorum_port() { echo $((BASE + 10 + $(node_num "$1"))); }
zk_election_port() { echo $((BASE + 20 + $(node_num "$1"))); }
amqp_port() { echo $((BASE + 30 + $(node_num "$1"))); }
dist_port() { echo $((BASE + 40 + $(node_num "$1"))); }
w_port() { echo $((BASE + 100 + $(node_num "$1"))); }
w_metrics_port() { echo $((BASE + 200 + $(node_num "$1"))); }
rmq_name() { echo "$1@localhost"; }
node_dir() { echo "$CLUSTER_DIR/$1"; }
pid_file() { echo "$CLUSTER_DIR/$1/pid"; }

replica_count() { pid_from_file "$CLUSTER_DIR/warrend.count" 2>/dev/null || echo 0; }

node_kind() {
  case "$1" in
    zk[1-3]) echo zk ;;
    rmq[1-3]) echo rmq ;;
    w[1-9] | w[1-9][0-9])
      [ "$(node_num "$1")" -le "$(replica_count)" ] && echo w && return 0
      die "$1: no such replica (start-warrend started $(replica_count))"
      ;;
    *) die "unknown node '$1' (zk1..zk3, rmq1..rmq3, w1..wN)" ;;
  esac
}

# ours PID NODE: PID is alive and was started by this script as NODE of this
# cluster (a marker in its environment), so a recycled pid is never signalled.
ours() {
  pid_alive "$1" && grep -qzxF "WARREN_CLUSTER_NODE=$CLUSTER_DIR/$2" "/proc/$1/environ" 2>/dev/null
}

# launched PID NODE: waits until the process just forked for NODE has
# exec'd (until then its environment is still this script's, without the
# marker), so that `ours` holds for it from now on.
launched() {
  local t=$((SECONDS + 10))
  while pid_alive "$1" && ! ours "$1" "$2" && [ $SECONDS -lt $t ]; do sleep 0.02; done
}

# node_pid NODE: prints its pid if it runs (frozen or not), else fails.
node_pid() {
  local pid
  pid="$(pid_from_file "$(pid_file "$1")" 2>/dev/null || true)"
  ours "$pid" "$1" && echo "$pid"
}

# gone PID: no thread of the process is left. A JVM's or a VM's main thread
# can be a zombie while other threads still run and hold its sockets, which
# is all that pid_alive sees.
gone() {
  local stat state
  for stat in /proc/"$1"/task/*/stat; do
    state="$(cat "$stat" 2>/dev/null)" || continue
    state="${state##*) }"
    state="${state%% *}"
    [ -z "$state" ] || [ "$state" = Z ] || [ "$state" = X ] || return 1
  done
  return 0
}

# wait_gone PID: until gone (at most 10 s: by then the pid could be reused).
wait_gone() {
  local t=$((SECONDS + 10))
  until gone "$1" || [ $SECONDS -ge $t ]; do sleep 0.05; done
}

frozen() { [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = T ]; }

node_state() {
  local pid
  if ! pid="$(node_pid "$1")"; then
    echo stopped
  elif frozen "$pid"; then
    echo frozen
  else
    echo running
  fi
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# check_free NODE WHAT PORT: dies when something else listens there.
check_free() {
  if port_open "$3"; then
    die "$1: port $3 ($2) is in use by a process this script did not start; set WARREN_CLUSTER_PORT_BASE"
  fi
}

# Collects the errors of background waits: run_parallel FUNCTION ARG...
# runs FUNCTION ARG for each ARG at once; fails with the first error line.
run_parallel() {
  local fn="$1" arg pids=() failed="" i=0
  shift
  mkdir -p "$CLUSTER_DIR/run"
  for arg in "$@"; do
    ("$fn" "$arg") 2>"$CLUSTER_DIR/run/$fn.$arg.err" &
    pids+=($!)
  done
  for arg in "$@"; do
    if ! wait "${pids[$i]}"; then
      [ -n "$failed" ] || failed="$(grep -h 'error: ' "$CLUSTER_DIR/run/$fn.$arg.err" | tail -1 | sed 's/^.*error: //')"
      [ -n "$failed" ] || failed="$arg: $fn failed"
    else
      grep -hv 'error: ' "$CLUSTER_DIR/run/$fn.$arg.err" >&2 || true
    fi
    i=$((i + 1))
  done
  [ -z "$failed" ] || { echo "$failed"; return 1; }
}

# ---------------------------------------------------------------- ZooKeeper

zk_4lw() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && printf '%s' $2 >&3 && cat <&3" 2>/dev/null || true
}

# zk_mode NODE: leader, follower, or nothing when it does not serve.
zk_mode() { zk_4lw "$(zk_port "$1")" srvr | sed -n 's/^Mode: //p'; }

zk_write_config() {
  local node="$1" d n
  d="$(node_dir "$node")"
  mkdir -p "$d/data"
  node_num "$node" >"$d/data/myid"
  {
    cat <<CFG
tickTime=$ZK_TICK_MS
initLimit=10
syncLimit=5
dataDir=$d/data
clientPort=$(zk_port "$node")
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=*
CFG
    for n in "${ZK_NODES[@]}"; do
      echo "server.$(node_num "$n")=127.0.0.1:$(zk_quorum_port "$n"):$(zk_election_port "$n")"
    done
  } >"$d/zoo.cfg"
}

zk_launch() {
  local node="$1" d
  d="$(node_dir "$node")"
  zk_write_config "$node"
  # java directly, not zkServer.sh (which reads /etc/zookeeper): $! is the
  # JVM. No JMX (it is off unless asked for), no admin server; slf4j-simple
  # logs to console.log. jute.maxbuffer: 4 MiB, above warrend's default
  # zk_max_request_bytes (the stock 1048575).
  WARREN_CLUSTER_NODE="$d" nohup java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Djute.maxbuffer=4194304 \
    -Dorg.slf4j.simpleLogger.showDateTime=true -Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS \
    -cp /usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$d/zoo.cfg" \
    >>"$d/console.log" 2>&1 </dev/null 9>&- &
  echo $! >"$(pid_file "$node")"
  launched $! "$node"
}

# zk_await NODE: until it is leader or follower of the ensemble.
zk_await() {
  local node="$1" deadline=$((SECONDS + 60)) mode
  while :; do
    mode="$(zk_mode "$node")"
    [[ $mode == leader || $mode == follower ]] && return 0
    node_pid "$node" >/dev/null || die "$node: exited during start-up (log: $(node_dir "$node")/console.log)"
    [ $SECONDS -lt $deadline ] || die "$node: not in the ensemble after 60s (log: $(node_dir "$node")/console.log)"
    sleep 0.2
  done
}

# zk_ensemble_ok: exactly one leader, every other node a follower.
zk_ensemble_ok() {
  local n leaders=0 followers=0 mode
  for n in "${ZK_NODES[@]}"; do
    mode="$(zk_mode "$n")"
    [ "$mode" = leader ] && leaders=$((leaders + 1))
    [ "$mode" = follower ] && followers=$((followers + 1))
  done
  [ $leaders -eq 1 ] && [ $followers -eq $((${#ZK_NODES[@]} - 1)) ]
}

# ----------------------------------------------------------------- RabbitMQ

rmq_env() {
  local node="$1" d
  d="$(node_dir "$node")"
  export WARREN_CLUSTER_NODE="$d"
  export HOME="$CLUSTER_DIR/rabbitmq-home" # the shared Erlang cookie
  export RABBITMQ_CONF_ENV_FILE="$CLUSTER_DIR/rabbitmq-env.conf" # empty: no /etc/rabbitmq
  RABBITMQ_NODENAME="$(rmq_name "$node")"
  export RABBITMQ_NODENAME
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  RABBITMQ_NODE_PORT="$(amqp_port "$node")"
  export RABBITMQ_NODE_PORT
  RABBITMQ_DIST_PORT="$(dist_port "$node")"
  export RABBITMQ_DIST_PORT
  export RABBITMQ_MNESIA_BASE="$d/mnesia"
  export RABBITMQ_LOG_BASE="$d/log"
  RABBITMQ_PID_FILE="$(pid_file "$node")"
  export RABBITMQ_PID_FILE
  export RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins"
  export RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config"
  export ERL_CRASH_DUMP="$d/log/erl_crash.dump"
  export ERL_EPMD_ADDRESS=127.0.0.1
  export ERL_EPMD_PORT="$EPMD_PORT"
  export RABBITMQ_CTL_DIST_PORT_MIN=$((BASE + 60))
  export RABBITMQ_CTL_DIST_PORT_MAX=$((BASE + 79))
  # No busy-waiting schedulers: three VMs share a small machine.
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1} +sbwt none +sbwtdcpu none +sbwtdio none"
  export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

# ctl NODE ARGS...: rabbitmqctl against that node, in a subshell.
ctl() {
  local node="$1"
  shift
  (rmq_env "$node" && "$RMQ_BIN/rabbitmqctl" -n "$(rmq_name "$node")" "$@")
}

rmq_prepare() {
  local home="$CLUSTER_DIR/rabbitmq-home"
  mkdir -p "$home"
  : >"$CLUSTER_DIR/rabbitmq-env.conf"
  if [ ! -s "$home/.erlang.cookie" ]; then
    (umask 077 && od -An -N20 -tx1 /dev/urandom | tr -d ' \n' >"$home/.erlang.cookie")
    chmod 400 "$home/.erlang.cookie"
  fi
}

epmd_ensure() {
  node_pid epmd >/dev/null && return 0
  check_free epmd epmd "$EPMD_PORT"
  mkdir -p "$CLUSTER_DIR/epmd"
  WARREN_CLUSTER_NODE="$CLUSTER_DIR/epmd" nohup epmd -address 127.0.0.1 -port "$EPMD_PORT" \
    >"$CLUSTER_DIR/epmd/epmd.log" 2>&1 </dev/null 9>&- &
  echo $! >"$(pid_file epmd)"
  launched $! epmd
  local t=$((SECONDS + 10))
  until port_open "$EPMD_PORT"; do
    [ $SECONDS -lt $t ] || die "epmd: not listening on $EPMD_PORT after 10s"
    sleep 0.1
  done
}

rmq_launch() {
  local node="$1" d
  d="$(node_dir "$node")"
  mkdir -p "$d/mnesia" "$d/log"
  echo '[].' >"$d/enabled_plugins"
  echo '[].' >"$d/advanced.config"
  {
    echo "loopback_users.guest = true"
    echo "log.console = false"
    echo "log.file.level = info"
    if [ -n "${WARREN_CLUSTER_RMQ_PARTITION_HANDLING:-}" ]; then
      echo "cluster_partition_handling = $WARREN_CLUSTER_RMQ_PARTITION_HANDLING"
    fi
  } >"$d/rabbitmq.conf"
  rm -f "$(pid_file "$node")"
  # In the foreground, backgrounded: `-detached` loses start-up errors. The
  # rabbitmq-server shell forks the VM and waits for it; the VM writes its
  # own pid to RABBITMQ_PID_FILE, which is what kill/freeze signal.
  (
    rmq_env "$node"
    exec nohup "$RMQ_BIN/rabbitmq-server" >>"$d/log/console.log" 2>&1 </dev/null 9>&-
  ) &
  echo $! >"$d/launcher.pid"
  launched $! "$node"
}

# rmq_await NODE: until the node has booted (in whatever cluster it has).
rmq_await() {
  local node="$1" d deadline=$((SECONDS + 120)) launcher
  d="$(node_dir "$node")"
  launcher="$(pid_from_file "$d/launcher.pid")"
  until [ -s "$(pid_file "$node")" ] && ctl "$node" -q await_startup --timeout 60 >"$d/log/await.log" 2>&1; do
    ours "$launcher" "$node" || die "$node: exited during start-up (log: $d/log)"
    [ $SECONDS -lt $deadline ] || die "$node: not up after 120s (log: $d/log)"
    sleep 0.5
  done
}

# rmq_running_nodes NODE: the cluster's running nodes as NODE sees them,
# short names (rmq1 ...), one a line.
rmq_running_nodes() {
  ctl "$1" -q cluster_status 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' |
    awk '/^Running Nodes/ {on = 1; next} on && /^[A-Z]/ {on = 0} on && /@/ {sub(/@.*/, ""); print}'
}

# rmq_join NODE: on its first start, NODE joins rmq1's cluster. Nodes join
# one at a time (two joining at once can fail to start Mnesia: "badmatch
# ... mnesia_app"), and a failed join is retried from a reset node (its
# data is new anyway).
rmq_join() {
  local node="$1" d attempt
  d="$(node_dir "$node")"
  : >"$d/log/join.log"
  for attempt in 1 2 3; do
    if {
      ctl "$node" stop_app && ctl "$node" reset &&
        ctl "$node" join_cluster "$(rmq_name rmq1)" && ctl "$node" start_app
    } >>"$d/log/join.log" 2>&1; then
      touch "$d/clustered"
      return 0
    fi
    log "rabbitmq: $node: join attempt $attempt failed"
  done
  die "$node: could not join $(rmq_name rmq1) (log: $d/log/join.log)"
}

# amqp_answers NODE: the broker answers an AMQP protocol header (a frozen
# VM's listening socket still accepts connections, but says nothing).
amqp_answers() {
  local got
  got="$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$(amqp_port "$1") && printf 'AMQP\0\0\x09\x01' >&3 && head -c 1 <&3 | od -An -tx1" 2>/dev/null || true)"
  [ "${got// /}" = 01 ]
}

# ------------------------------------------------------------------ warrend

warrend_binary() { echo "${WARREN_WARREND:-$WARREN_ROOT_DIR/build/plain/server/daemon/warrend}"; }

# rotate K ITEM...: the items, starting at the Kth (1-based), comma-joined.
rotate() {
  local k="$1" out=() i n
  shift
  n=$#
  local items=("$@")
  for ((i = 0; i < n; i++)); do out+=("${items[$(((k - 1 + i) % n))]}"); done
  (IFS=, && echo "${out[*]}")
}

zk_hosts() { local n; for n in "${ZK_NODES[@]}"; do echo "127.0.0.1:$(zk_port "$n")"; done; }
amqp_list() { local n; for n in "${RMQ_NODES[@]}"; do echo "amqp://guest:guest@127.0.0.1:$(amqp_port "$n")/"; done; }

w_launch() {
  local node="$1" d flags=() binary
  d="$(node_dir "$node")"
  mapfile -d '' flags <"$d/flags"
  binary="$(cat "$d/binary")"
  check_free "$node" grpc "$(w_port "$node")"
  check_free "$node" metrics "$(w_metrics_port "$node")"
  : >"$d/stdout.log"
  echo "--- $(date '+%F %T') start" >>"$d/stderr.log"
  WARREN_CLUSTER_NODE="$d" nohup "$binary" "${flags[@]}" \
    >"$d/stdout.log" 2>>"$d/stderr.log" </dev/null 9>&- &
  echo $! >"$(pid_file "$node")"
  launched $! "$node"
}

# w_health NODE: SERVING when both backends are up (warren_backend_up, which
# is what its gRPC health check reports), NOT_SERVING, or nothing when its
# metrics endpoint does not answer (not serving yet, stopped or frozen).
w_health() {
  local got
  got="$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$(w_metrics_port "$1") && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && cat <&3" 2>/dev/null || true)"
  [[ $got == "HTTP/1."?" 200"* ]] || return 0
  if [ "$(grep -c '^warren_backend_up{.*} 1' <<<"$got")" -eq 2 ]; then echo SERVING; else echo NOT_SERVING; fi
}

# w_await NODE: until it says it serves (as scripts/with-warrend.sh waits)
# and its health is SERVING.
w_await() {
  local node="$1" d deadline=$((SECONDS + 90)) health=""
  d="$(node_dir "$node")"
  until grep -q '^warrend is serving on ' "$d/stdout.log" 2>/dev/null && health="$(w_health "$node")" && [ "$health" = SERVING ]; do
    node_pid "$node" >/dev/null || die "$node: exited during start-up (log: $d/stderr.log)"
    [ $SECONDS -lt $deadline ] || die "$node: not SERVING after 90s (health ${health:-unknown}; log: $d/stderr.log)"
    sleep 0.1
  done
}

# ------------------------------------------------------------ node control

# signal_wait PID NODE SECONDS: SIGTERM (after SIGCONT), SIGKILL when late.
signal_wait() {
  local pid="$1" node="$2" grace="$3"
  kill -CONT "$pid" 2>/dev/null || true
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + grace))
  while ours "$pid" "$node"; do
    if [ $SECONDS -ge $deadline ]; then kill -KILL "$pid" 2>/dev/null || true; fi
    sleep 0.1
  done
  wait_gone "$pid"
}

# stop_node NODE: graceful; quiet when it does not run.
stop_node() {
  local node="$1" pid d
  d="$(node_dir "$node")"
  if pid="$(node_pid "$node")"; then
    log "$node: stopping pid $pid"
    case "$node" in
      zk*) signal_wait "$pid" "$node" 30 ;;
      rmq*) signal_wait "$pid" "$node" 60 ;; # SIGTERM: RabbitMQ shuts down cleanly
      w*) signal_wait "$pid" "$node" 30 ;;
      epmd) signal_wait "$pid" "$node" 5 ;;
    esac
  fi
  rm -f "$(pid_file "$node")"
  if [[ $node == rmq* ]]; then
    local launcher
    launcher="$(pid_from_file "$d/launcher.pid" 2>/dev/null || true)"
    if ours "$launcher" "$node"; then signal_wait "$launcher" "$node" 10; fi
    rm -f "$d/launcher.pid"
  fi
}

# kill_node NODE: SIGKILL, returns when the process is gone.
kill_node() {
  local node="$1" pid d launcher
  d="$(node_dir "$node")"
  pid="$(node_pid "$node")" || die "$node: not running"
  kill -KILL "$pid"
  while ours "$pid" "$node"; do sleep 0.05; done
  wait_gone "$pid"
  if [[ $node == rmq* ]]; then
    # The rabbitmq-server shell ends with its VM.
    launcher="$(pid_from_file "$d/launcher.pid" 2>/dev/null || true)"
    local t=$((SECONDS + 5))
    while ours "$launcher" "$node" && [ $SECONDS -lt $t ]; do sleep 0.05; done
    if ours "$launcher" "$node"; then kill -KILL "$launcher" 2>/dev/null || true; fi
  fi
  log "$node: killed pid $pid"
}

# start_node NODE: launches a stopped node and waits until it is healthy
# and (RabbitMQ) running in the cluster with the other running nodes.
start_node() {
  local node="$1" kind
  kind="$(node_kind "$node")"
  case "$kind" in
    zk)
      check_free "$node" client "$(zk_port "$node")"
      check_free "$node" quorum "$(zk_quorum_port "$node")"
      check_free "$node" election "$(zk_election_port "$node")"
      zk_launch "$node"
      zk_await "$node"
      log "$node: $(zk_mode "$node") (pid $(node_pid "$node"))"
      ;;
    rmq)
      check_free "$node" amqp "$(amqp_port "$node")"
      check_free "$node" distribution "$(dist_port "$node")"
      rmq_prepare
      epmd_ensure
      rmq_launch "$node"
      rmq_await "$node"
      [ -f "$(node_dir "$node")/clustered" ] || [ "$node" = rmq1 ] || rmq_join "$node"
      local others=() n running
      for n in "${RMQ_NODES[@]}"; do
        [ "$n" != "$node" ] && [ "$(node_state "$n")" = running ] && others+=("$n")
      done
      running=" $(rmq_running_nodes "$node" | tr '\n' ' ')"
      for n in "$node" "${others[@]}"; do
        [[ $running == *" $n "* ]] || die "$node: up but not in the cluster with $n (running nodes:$running)"
      done
      log "$node: running in the cluster (pid $(node_pid "$node"); running nodes:$running)"
      ;;
    w)
      w_launch "$node"
      w_await "$node"
      log "$node: serving on 127.0.0.1:$(w_port "$node") (pid $(node_pid "$node"))"
      ;;
  esac
}

# ---------------------------------------------------------------- commands

all_nodes() {
  local k
  echo "${ZK_NODES[@]}" "${RMQ_NODES[@]}"
  for ((k = 1; k <= $(replica_count); k++)); do echo "w$k"; done
}

cmd_start() {
  [ $# -eq 0 ] || die "start takes no arguments (restart NODE starts one node)"
  local node pid
  for node in $(all_nodes) epmd; do
    if pid="$(node_pid "$node")"; then
      die "$node: already running (pid $pid); scripts/cluster.sh stop first, or restart $node"
    fi
  done
  check_free epmd epmd "$EPMD_PORT"
  for node in "${ZK_NODES[@]}"; do
    check_free "$node" client "$(zk_port "$node")"
    check_free "$node" quorum "$(zk_quorum_port "$node")"
    check_free "$node" election "$(zk_election_port "$node")"
  done
  for node in "${RMQ_NODES[@]}"; do
    check_free "$node" amqp "$(amqp_port "$node")"
    check_free "$node" distribution "$(dist_port "$node")"
  done
  mkdir -p "$CLUSTER_DIR"
  exec 9>"$CLUSTER_DIR/lock"
  flock -n 9 || die "cluster: another cluster.sh start runs on $CLUSTER_DIR"

  local begin=$SECONDS error=""
  log "cluster: starting ZooKeeper on 127.0.0.1:$(zk_port zk1)-$(zk_port zk3), RabbitMQ on 127.0.0.1:$(amqp_port rmq1)-$(amqp_port rmq3) (data in $CLUSTER_DIR)"
  rmq_prepare
  epmd_ensure
  for node in "${ZK_NODES[@]}"; do zk_launch "$node"; done
  for node in "${RMQ_NODES[@]}"; do rmq_launch "$node"; done
  # A failure stops everything started here, then says what failed.
  abort() {
    local n
    for n in "${RMQ_NODES[@]}" "${ZK_NODES[@]}" epmd; do stop_node "$n" 2>/dev/null; done
    die "$1"
  }
  error="$(run_parallel zk_await "${ZK_NODES[@]}")" || abort "$error"
  local t=$((SECONDS + 30))
  until zk_ensemble_ok; do
    [ $SECONDS -lt $t ] || abort "zk1: the ensemble has no leader and 2 followers after 30s (logs: $CLUSTER_DIR/zk*/console.log)"
    sleep 0.2
  done
  log "zookeeper: ensemble up, leader $(cmd_zk_leader) ($((SECONDS - begin))s)"
  error="$(run_parallel rmq_await "${RMQ_NODES[@]}")" || abort "$error"
  log "rabbitmq: 3 nodes up ($((SECONDS - begin))s)"
  local joining=()
  for node in rmq2 rmq3; do [ -f "$(node_dir "$node")/clustered" ] || joining+=("$node"); done
  if [ ${#joining[@]} -gt 0 ]; then
    for node in "${joining[@]}"; do
      error="$(run_parallel rmq_join "$node")" || abort "$error"
    done
    touch "$(node_dir rmq1)/clustered"
    log "rabbitmq: ${joining[*]} joined rmq1 ($((SECONDS - begin))s)"
  fi
  local running
  t=$((SECONDS + 60))
  until [ "$(rmq_running_nodes rmq1 | sort | tr '\n' ' ')" = "rmq1 rmq2 rmq3 " ]; do
    [ $SECONDS -lt $t ] || abort "rmq1: the cluster does not have 3 running nodes after 60s (running: $(rmq_running_nodes rmq1 | tr '\n' ' '))"
    sleep 1
  done
  log "cluster: up in $((SECONDS - begin))s; zk-connect $(cmd_zk_connect); amqp-urls $(cmd_amqp_urls)"
}

cmd_stop() {
  if [ $# -gt 0 ]; then
    node_kind "$1" >/dev/null
    node_pid "$1" >/dev/null || die "$1: not running"
    stop_node "$1"
    return 0
  fi
  cmd_stop_warrend
  local begin=$SECONDS
  run_parallel stop_node "${RMQ_NODES[@]}" >/dev/null || true
  stop_node epmd
  run_parallel stop_node "${ZK_NODES[@]}" >/dev/null || true
  log "cluster: stopped in $((SECONDS - begin))s"
}

cmd_status() {
  local node pid state role address
  for node in $(all_nodes); do
    state="$(node_state "$node")"
    pid="$(node_pid "$node" || echo -)"
    role=-
    case "$node" in
      zk*)
        address="127.0.0.1:$(zk_port "$node")"
        [ "$state" = running ] && role="$(zk_mode "$node")" && role="${role:--}"
        ;;
      rmq*) address="127.0.0.1:$(amqp_port "$node")" ;;
      w*) address="127.0.0.1:$(w_port "$node")" ;;
    esac
    echo "$node $state $pid $address $role"
  done
}

cmd_zk_leader() {
  local node
  for node in "${ZK_NODES[@]}"; do
    [ "$(node_state "$node")" = running ] && [ "$(zk_mode "$node")" = leader ] && { echo "$node"; return 0; }
  done
  die "zk1: no ZooKeeper node says it is the leader"
}

cmd_zk_connect() { zk_hosts | paste -sd, -; }
cmd_amqp_urls() { amqp_list | paste -sd, -; }
cmd_warrend_addresses() {
  local k
  for ((k = 1; k <= $(replica_count); k++)); do echo "127.0.0.1:$(w_port "w$k")"; done
}

cmd_start_warrend() {
  local n="${1:-}"
  [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le $MAX_REPLICAS ] ||
    die "start-warrend N [FLAG...]: N from 1 to $MAX_REPLICAS"
  shift
  local binary extra=() k node pid
  binary="$(warrend_binary)"
  [ -x "$binary" ] || die "w1: no warrend at $binary (scripts/build.sh plain, or set WARREN_WARREND)"
  for ((k = 1; k <= $(replica_count); k++)); do
    if pid="$(node_pid "w$k")"; then die "w$k: already running (pid $pid); stop-warrend first"; fi
  done
  local any=""
  for node in "${ZK_NODES[@]}" "${RMQ_NODES[@]}"; do [ "$(node_state "$node")" = stopped ] || any=1; done
  [ -n "$any" ] || die "zk1: the cluster is not running (scripts/cluster.sh start)"
  for ((k = 1; k <= n; k++)); do
    check_free "w$k" grpc "$(w_port "w$k")"
    check_free "w$k" metrics "$(w_metrics_port "w$k")"
  done
  # shellcheck disable=SC2206 # split on spaces, as documented
  [ -z "${WARREN_CLUSTER_WARREND_FLAGS:-}" ] || extra=(${WARREN_CLUSTER_WARREND_FLAGS})
  extra+=("$@")
  local zk=() amqp=()
  mapfile -t zk < <(zk_hosts)
  mapfile -t amqp < <(amqp_list)
  for ((k = 1; k <= n; k++)); do
    node="w$k"
    mkdir -p "$(node_dir "$node")"
    # Each replica has the lists in another order, so that they spread.
    printf '%s\0' --listen="127.0.0.1:$(w_port "$node")" \
      --metrics_listen="127.0.0.1:$(w_metrics_port "$node")" \
      --zk_connect="$(rotate "$k" "${zk[@]}")" --amqp_urls="$(rotate "$k" "${amqp[@]}")" \
      "${extra[@]}" >"$(node_dir "$node")/flags"
    echo "$binary" >"$(node_dir "$node")/binary"
  done
  echo "$n" >"$CLUSTER_DIR/warrend.count"
  local nodes=() error
  for ((k = 1; k <= n; k++)); do w_launch "w$k"; nodes+=("w$k"); done
  if ! error="$(run_parallel w_await "${nodes[@]}")"; then
    cmd_stop_warrend 2>/dev/null
    die "$error"
  fi
  log "warrend: $n replicas serving"
  cmd_warrend_addresses
}

cmd_stop_warrend() {
  local k nodes=()
  for ((k = 1; k <= $(replica_count); k++)); do nodes+=("w$k"); done
  [ ${#nodes[@]} -eq 0 ] || run_parallel stop_node "${nodes[@]}" >/dev/null || true
  rm -f "$CLUSTER_DIR/warrend.count"
}

cmd_wait_healthy() {
  local limit="${1:-120}" deadline node bad
  [[ $limit =~ ^[0-9]+$ ]] || die "wait-healthy [SECONDS]"
  deadline=$((SECONDS + limit))
  while :; do
    bad=""
    for node in $(all_nodes); do
      [ "$(node_state "$node")" = running ] || { bad="$node: $(node_state "$node")"; break; }
    done
    if [ -z "$bad" ] && ! zk_ensemble_ok; then bad="zk1: the ensemble has no leader and 2 followers"; fi
    if [ -z "$bad" ]; then
      for node in "${RMQ_NODES[@]}"; do amqp_answers "$node" || { bad="$node: does not answer on AMQP"; break; }; done
    fi
    if [ -z "$bad" ] && [ "$(rmq_running_nodes rmq1 | sort | tr '\n' ' ')" != "rmq1 rmq2 rmq3 " ]; then
      bad="rmq1: the cluster does not have 3 running nodes"
    fi
    if [ -z "$bad" ]; then
      for ((k = 1; k <= $(replica_count); k++)); do
        [ "$(w_health "w$k")" = SERVING ] || { bad="w$k: health not SERVING"; break; }
      done
    fi
    [ -n "$bad" ] || return 0
    [ $SECONDS -lt $deadline ] || die "$bad (after ${limit}s)"
    sleep 0.5
  done
}

verb="${1:-}"
[ $# -eq 0 ] || shift
case "$verb" in
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  status) cmd_status ;;
  kill | freeze | thaw | restart | pid)
    [ $# -eq 1 ] || die "usage: $0 $verb NODE"
    node_kind "$1" >/dev/null
    case "$verb" in
      kill) kill_node "$1" ;;
      freeze)
        pid="$(node_pid "$1")" || die "$1: not running"
        kill -STOP "$pid" && log "$1: frozen (pid $pid)"
        ;;
      thaw)
        pid="$(node_pid "$1")" || die "$1: not running"
        kill -CONT "$pid" && log "$1: thawed (pid $pid)"
        ;;
      restart)
        stop_node "$1"
        begin=$SECONDS
        # A node that does not come up is stopped again, then reported.
        if ! error="$(run_parallel start_node "$1")"; then
          stop_node "$1" 2>/dev/null
          die "$error"
        fi
        log "$1: restarted in $((SECONDS - begin))s"
        ;;
      pid) node_pid "$1" || die "$1: not running" ;;
    esac
    ;;
  start-warrend) cmd_start_warrend "$@" ;;
  stop-warrend) cmd_stop_warrend ;;
  wait-healthy) cmd_wait_healthy "$@" ;;
  zk-leader) cmd_zk_leader ;;
  zk-connect) cmd_zk_connect ;;
  amqp-urls) cmd_amqp_urls ;;
  warrend-addresses) cmd_warrend_addresses ;;
  ctl)
    [[ ${1:-} == rmq[1-3] ]] || die "usage: $0 ctl rmqN <rabbitmqctl arguments>"
    node="$1"
    shift
    ctl "$node" "$@"
    ;;
  *)
    echo "usage: $0 start | stop [NODE] | status | kill|freeze|thaw|restart|pid NODE |" \
      "start-warrend N [FLAG...] | stop-warrend | wait-healthy [SECONDS] | zk-leader |" \
      "zk-connect | amqp-urls | warrend-addresses | ctl rmqN ARGS..." >&2
    exit 2
    ;;
esac
