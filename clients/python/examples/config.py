#!/usr/bin/python3
"""config: reads a config value, prints it, and prints it again each time it
changes.

    WARREN_ADDRESS=... examples/config.py [--key app/greeting] [--set VALUE] [--changes N]

With --set it first writes VALUE. Prints "value=<v> version=<n>" (or
"value=<absent>") for the initial state and every change; exits after
--changes changes (0: runs until Ctrl-C / SIGTERM).
"""

import argparse
import os
import signal
import sys
import threading

from _path import say  # (also puts a checkout's warren_client on sys.path)
import warren_client as warren


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key", default=os.environ.get("WARREN_CONFIG_KEY", "app/greeting"))
    parser.add_argument("--set", dest="value")
    parser.add_argument("--changes", type=int, default=0)
    args = parser.parse_args()

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    seen = [0]

    def show(changes):
        for change in changes:
            if change.type == warren.config_watcher.PUT:
                say("value=%s version=%d" % (change.value.decode(errors="replace"), change.version))
            else:
                say("value=<absent> (deleted)")
            seen[0] += 1
            if args.changes and seen[0] > args.changes:  # the first is the initial value
                done.set()

    with warren.connect() as client:
        if args.value is not None:
            entry = client.put_config(args.key, args.value)
            say("wrote %s version=%d" % (args.key, entry.version))
        say("current: %r" % client.get_config(args.key))
        with client.config_watcher(args.key, on_change=show) as watcher:
            watcher.wait_ready(10)
            if watcher.value is None:
                say("value=<absent>")
                seen[0] += 1
            say("watching %r for changes" % args.key)
            done.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
