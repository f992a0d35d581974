# Shared settings of the dev-stack scripts. Sourced, not run.
# Every path and port can be overridden from the environment, so that a test
# stack can run beside servers a developer already has.

WARREN_ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WARREN_STACK_DIR="${WARREN_STACK_DIR:-$WARREN_ROOT_DIR/.stack}"
WARREN_ZK_PORT="${WARREN_ZK_PORT:-2181}"
WARREN_AMQP_PORT="${WARREN_AMQP_PORT:-5672}"
# Erlang distribution and port mapper ports of our RabbitMQ node.
if [ $((WARREN_AMQP_PORT + 20000)) -le 65535 ]; then
  WARREN_AMQP_DIST_PORT="${WARREN_AMQP_DIST_PORT:-$((WARREN_AMQP_PORT + 20000))}"
else
  WARREN_AMQP_DIST_PORT="${WARREN_AMQP_DIST_PORT:-$((WARREN_AMQP_PORT - 20000))}"
fi
WARREN_EPMD_PORT="${WARREN_EPMD_PORT:-4369}"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# True when the pid is a live process (a zombie is not live).
pid_alive() {
  local pid="$1"
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  local state
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)"
  [ -n "$state" ] && [ "$state" != "Z" ] && [ "$state" != "X" ]
}

pid_from_file() { [ -f "$1" ] && tr -d '[:space:]' <"$1"; }

# Runs a command as root: directly, or through sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}
