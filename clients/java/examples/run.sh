#!/usr/bin/env bash
# Runs an example: examples/run.sh hello|campaign|config|lock|request-reply|stream-replay [--flag=value ...]
# (build first: ./generate.sh && ./build.sh). Server: WARREN_ADDRESS.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "${1:-}" in
  hello) main=io.warren.examples.HelloExample ;;
  campaign) main=io.warren.examples.CampaignExample ;;
  config) main=io.warren.examples.ConfigExample ;;
  lock) main=io.warren.examples.LockExample ;;
  request-reply) main=io.warren.examples.RequestReplyExample ;;
  stream-replay) main=io.warren.examples.StreamReplayExample ;;
  *) echo "usage: examples/run.sh hello|campaign|config|lock|request-reply|stream-replay [--flag=value ...]" >&2; exit 2 ;;
esac
shift
exec java -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
  -cp "$here/build/examples-classes:$here/build/classes:$("$here/classpath.sh")" "$main" "$@"
