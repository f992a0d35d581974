#!/usr/bin/env bash
# Starts, stops and reports a local ZooKeeper and RabbitMQ on loopback, with
# their data, logs and pid files under $WARREN_STACK_DIR (default .stack/).
#
#   scripts/stack.sh start|stop|status [zookeeper|rabbitmq|all]
#   scripts/stack.sh ctl rabbitmq <rabbitmqctl arguments>   (our node only)
#
# Ports: WARREN_ZK_PORT (2181), WARREN_AMQP_PORT (5672),
# WARREN_AMQP_DIST_PORT (AMQP port + 20000), WARREN_EPMD_PORT (4369).
# WARREN_AMQPS_PORT (unset: none) adds an amqps:// listener on 127.0.0.1 that
# requires a client certificate (verify_peer, fail_if_no_peer_cert); its CA,
# server and client certificates are made with openssl (scripts/tls-certs.sh)
# under $WARREN_STACK_DIR/rabbitmq/tls and printed by `start`.
# WARREN_AMQP_CHANNEL_MAX (unset: RabbitMQ's 2047) caps the channels of a
# connection, so that tests can fill a connection with a few subscriptions.
# `start` returns when each server really answers (ZooKeeper `ruok` -> imok,
# `rabbitmqctl await_startup`). `stop` stops only processes this script
# started, found by their pid files.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ZK_DIR="$WARREN_STACK_DIR/zookeeper"
ZK_PID="$ZK_DIR/zookeeper.pid"
RMQ_DIR="$WARREN_STACK_DIR/rabbitmq"
RMQ_PID="$RMQ_DIR/rabbitmq.pid"
EPMD_PID="$RMQ_DIR/epmd.pid"
RMQ_TLS_DIR="$RMQ_DIR/tls"
RMQ_BIN=/usr/lib/rabbitmq/bin

zk_ruok() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$WARREN_ZK_PORT && printf ruok >&3 && cat <&3" 2>/dev/null || true
}

zk_start() {
  if pid_alive "$(pid_from_file "$ZK_PID")"; then
    log "zookeeper: already running (pid $(pid_from_file "$ZK_PID"), port $WARREN_ZK_PORT)"
    return 0
  fi
  if [ "$(zk_ruok)" = "imok" ]; then
    die "zookeeper: port $WARREN_ZK_PORT is served by a ZooKeeper this script did not start; choose another WARREN_ZK_PORT"
  fi
  mkdir -p "$ZK_DIR/data" "$ZK_DIR/logs"
  cat >"$ZK_DIR/zoo.cfg" <<CFG
tickTime=${WARREN_ZK_TICK_MS:-1000}
initLimit=10
syncLimit=5
dataDir=$ZK_DIR/data
clientPort=$WARREN_ZK_PORT
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,stat,mntr,wchc,wchs
CFG
  log "zookeeper: starting on 127.0.0.1:$WARREN_ZK_PORT (data in $ZK_DIR)"
  # zkServer.sh execs java in the foreground: $! is the server's own pid.
  # JMX off: it would listen on every interface. jute.maxbuffer: 4 MiB, above
  # warrend's default zk_max_request_bytes (the stock 1048575), so that a
  # developer may raise the pair; tests of the stock limit start their own.
  # Debian's server has no SLF4J binding (it logs nothing); a second -cp
  # (the last one wins) adds slf4j-simple, which logs to console.log.
  local classpath="/etc/zookeeper/conf:/usr/share/java/zookeeper.jar"
  [ -f /usr/share/java/slf4j-simple.jar ] && classpath="$classpath:/usr/share/java/slf4j-simple.jar"
  ZOO_LOG_DIR="$ZK_DIR/logs" JMXDISABLE=true \
    JVMFLAGS="-Xmx256m -Djute.maxbuffer=4194304 -cp $classpath -Dorg.slf4j.simpleLogger.showDateTime=true -Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS" \
    nohup /usr/share/zookeeper/bin/zkServer.sh start-foreground "$ZK_DIR/zoo.cfg" \
    >"$ZK_DIR/logs/console.log" 2>&1 </dev/null &
  echo $! >"$ZK_PID"
  local deadline=$((SECONDS + 90))
  until [ "$(zk_ruok)" = "imok" ]; do
    if ! pid_alive "$(pid_from_file "$ZK_PID")"; then
      tail -20 "$ZK_DIR/logs/console.log" >&2 || true
      die "zookeeper: exited during start-up (log: $ZK_DIR/logs/console.log)"
    fi
    [ $SECONDS -lt $deadline ] || die "zookeeper: not ready after 90s"
    sleep 0.2
  done
  log "zookeeper: ready (pid $(pid_from_file "$ZK_PID"))"
}

zk_stop() {
  local pid
  pid="$(pid_from_file "$ZK_PID" || true)"
  if ! pid_alive "$pid"; then
    rm -f "$ZK_PID"
    return 0
  fi
  log "zookeeper: stopping pid $pid"
  kill -CONT "$pid" 2>/dev/null || true
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 30))
  while pid_alive "$pid"; do
    if [ $SECONDS -ge $deadline ]; then kill -KILL "$pid" 2>/dev/null || true; fi
    sleep 0.1
  done
  rm -f "$ZK_PID"
}

rmq_env() {
  export HOME="$RMQ_DIR"   # the Erlang cookie lives here, not in ~
  export RABBITMQ_NODENAME="warren$WARREN_AMQP_PORT@localhost"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT="$WARREN_AMQP_PORT"
  export RABBITMQ_DIST_PORT="$WARREN_AMQP_DIST_PORT"
  export RABBITMQ_MNESIA_BASE="$RMQ_DIR/mnesia"
  export RABBITMQ_LOG_BASE="$RMQ_DIR/log"
  export RABBITMQ_PID_FILE="$RMQ_PID"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ_DIR/enabled_plugins"
  export RABBITMQ_CONFIG_FILE="$RMQ_DIR/rabbitmq.conf"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$RMQ_DIR/advanced.config"
  export ERL_CRASH_DUMP="$RMQ_DIR/log/erl_crash.dump"
  export ERL_EPMD_ADDRESS=127.0.0.1
  export ERL_EPMD_PORT="$WARREN_EPMD_PORT"
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

rmq_start() {
  rmq_env
  if pid_alive "$(pid_from_file "$RMQ_PID")"; then
    log "rabbitmq: already running (pid $(pid_from_file "$RMQ_PID"), port $WARREN_AMQP_PORT)"
    return 0
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$WARREN_AMQP_PORT") 2>/dev/null; then
    die "rabbitmq: port $WARREN_AMQP_PORT is in use by a process this script did not start; choose another WARREN_AMQP_PORT"
  fi
  if [ -n "${WARREN_AMQPS_PORT:-}" ] && (exec 3<>"/dev/tcp/127.0.0.1/$WARREN_AMQPS_PORT") 2>/dev/null; then
    die "rabbitmq: port $WARREN_AMQPS_PORT is in use by a process this script did not start; choose another WARREN_AMQPS_PORT"
  fi
  mkdir -p "$RMQ_DIR/mnesia" "$RMQ_DIR/log"
  echo '[].' >"$RMQ_DIR/enabled_plugins"
  cat >"$RMQ_DIR/rabbitmq.conf" <<CFG
loopback_users.guest = true
log.console = false
log.file.level = warning
CFG
  if [ -n "${WARREN_AMQP_CHANNEL_MAX:-}" ]; then
    echo "channel_max = $WARREN_AMQP_CHANNEL_MAX" >>"$RMQ_DIR/rabbitmq.conf"
  fi
  if [ -n "${WARREN_AMQPS_PORT:-}" ]; then
    # Made once per stack dir: a restart keeps the certificates that tests
    # and clients already read.
    if [ ! -f "$RMQ_TLS_DIR/client.crt" ]; then
      local certs="$WARREN_ROOT_DIR/scripts/tls-certs.sh"
      bash "$certs" ca "$RMQ_TLS_DIR" ca >/dev/null
      bash "$certs" server "$RMQ_TLS_DIR" server ca >/dev/null
      bash "$certs" client "$RMQ_TLS_DIR" client ca warren-client >/dev/null
    fi
    cat >>"$RMQ_DIR/rabbitmq.conf" <<CFG
listeners.ssl.default = 127.0.0.1:$WARREN_AMQPS_PORT
ssl_options.cacertfile = $RMQ_TLS_DIR/ca.crt
ssl_options.certfile = $RMQ_TLS_DIR/server.crt
ssl_options.keyfile = $RMQ_TLS_DIR/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = true
CFG
  fi
  echo '[].' >"$RMQ_DIR/advanced.config"
  # Our own port mapper on loopback, unless one already serves that port
  # (then it is not ours to stop).
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$WARREN_EPMD_PORT") 2>/dev/null; then
    nohup epmd -address 127.0.0.1 -port "$WARREN_EPMD_PORT" \
      >"$RMQ_DIR/log/epmd.log" 2>&1 </dev/null &
    echo $! >"$EPMD_PID"
    local t=$((SECONDS + 10))
    until (exec 3<>"/dev/tcp/127.0.0.1/$WARREN_EPMD_PORT") 2>/dev/null; do
      [ $SECONDS -lt $t ] || die "epmd: not listening after 10s"
      sleep 0.1
    done
  fi
  log "rabbitmq: starting on 127.0.0.1:$WARREN_AMQP_PORT (data in $RMQ_DIR)"
  # In the foreground, backgrounded: `-detached` loses start-up errors. The
  # node writes its own pid file; the launcher's pid is kept to reap it.
  nohup "$RMQ_BIN/rabbitmq-server" >"$RMQ_DIR/log/console.log" 2>&1 </dev/null &
  echo $! >"$RMQ_DIR/launcher.pid"
  local deadline=$((SECONDS + 120))
  until [ -s "$RMQ_PID" ] && "$RMQ_BIN/rabbitmqctl" -q await_startup --timeout 60 >"$RMQ_DIR/log/await.log" 2>&1; do
    if ! pid_alive "$(pid_from_file "$RMQ_DIR/launcher.pid")"; then
      tail -20 "$RMQ_DIR/log/console.log" >&2 || true
      die "rabbitmq: exited during start-up (log: $RMQ_DIR/log)"
    fi
    if [ $SECONDS -ge $deadline ]; then
      cat "$RMQ_DIR/log/await.log" >&2 || true
      die "rabbitmq: not ready after 120s (log: $RMQ_DIR/log)"
    fi
    sleep 0.5
  done
  log "rabbitmq: ready (pid $(pid_from_file "$RMQ_PID"))"
  if [ -n "${WARREN_AMQPS_PORT:-}" ]; then
    log "rabbitmq: amqps://guest:guest@localhost:$WARREN_AMQPS_PORT/ (client certificate required)"
    log "rabbitmq:   CA $RMQ_TLS_DIR/ca.crt"
    log "rabbitmq:   client certificate $RMQ_TLS_DIR/client.crt, key $RMQ_TLS_DIR/client.key"
  fi
}

rmq_stop() {
  rmq_env
  local pid
  pid="$(pid_from_file "$RMQ_PID" || true)"
  if pid_alive "$pid"; then
    log "rabbitmq: stopping pid $pid"
    kill -CONT "$pid" 2>/dev/null || true
    "$RMQ_BIN/rabbitmqctl" -q stop "$RMQ_PID" >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 60))
    while pid_alive "$pid"; do
      if [ $SECONDS -ge $deadline ]; then kill -KILL "$pid" 2>/dev/null || true; fi
      sleep 0.1
    done
  fi
  rm -f "$RMQ_PID"
  local launcher
  launcher="$(pid_from_file "$RMQ_DIR/launcher.pid" || true)"
  if pid_alive "$launcher"; then kill -TERM "$launcher" 2>/dev/null || true; fi
  rm -f "$RMQ_DIR/launcher.pid"
  local epmd
  epmd="$(pid_from_file "$EPMD_PID" || true)"
  if pid_alive "$epmd"; then
    kill -TERM "$epmd" 2>/dev/null || true
  fi
  rm -f "$EPMD_PID"
}

status_of() {
  local name="$1" pidfile="$2"
  if pid_alive "$(pid_from_file "$pidfile")"; then
    echo "$name: running (pid $(pid_from_file "$pidfile"))"
  else
    echo "$name: stopped"
  fi
}

verb="${1:-}"
which="${2:-all}"
if [ "$verb" = ctl ]; then
  [ "$which" = rabbitmq ] || die "ctl works on rabbitmq only"
  shift 2
  rmq_env
  exec "$RMQ_BIN/rabbitmqctl" "$@"
fi
case "$which" in zookeeper | rabbitmq | all) ;; *) die "unknown server '$which' (zookeeper, rabbitmq or all)" ;; esac
case "$verb" in
  start)
    [[ $which == zookeeper || $which == all ]] && zk_start
    [[ $which == rabbitmq || $which == all ]] && rmq_start
    ;;
  stop)
    [[ $which == rabbitmq || $which == all ]] && rmq_stop
    [[ $which == zookeeper || $which == all ]] && zk_stop
    ;;
  status)
    status_of zookeeper "$ZK_PID"
    status_of rabbitmq "$RMQ_PID"
    ;;
  *)
    echo "usage: $0 start|stop|status [zookeeper|rabbitmq|all]" >&2
    exit 2
    ;;
esac
exit 0
