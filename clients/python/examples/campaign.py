#!/usr/bin/python3
"""campaign: campaigns in an election and prints every leadership event.

    WARREN_ADDRESS=... examples/campaign.py [--election demo] [--id me] [--duration 0]

Lines printed (for scripts and tests): "elected token=T", "following
leader=ID", "following leader=none", "lost reason=R", "leader is ID".
Runs until --duration seconds passed (0: until Ctrl-C / SIGTERM), then
resigns.
"""

import argparse
import os
import signal
import socket
import sys
import threading

from _path import say  # (also puts a checkout's warren_client on sys.path)
import warren_client as warren


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--election", default=os.environ.get("WARREN_ELECTION", "demo"))
    parser.add_argument("--id", default="", help="candidate id (default: generated)")
    parser.add_argument("--value", default=socket.gethostname())
    parser.add_argument("--duration", type=float, default=0.0)
    args = parser.parse_args()

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())

    with warren.connect() as client:
        elector = client.elector(
            args.election,
            candidate_id=args.id,
            value=args.value,
            on_elected=lambda leader: say(
                "elected token=%d (candidate %s)" % (leader.fencing_token, leader.candidate_id)),
            on_following=lambda leader: say(
                "following leader=%s" % (leader.candidate_id if leader else "none")),
            on_lost=lambda reason: say("lost reason=%s" % reason.name),
        )
        say("campaigning in %r at %s" % (args.election, client.address))
        with elector:
            done.wait(args.duration or None)
            leader = elector.leader
            say("leader is %s" % (leader.candidate_id if leader else "unknown"))
        say("resigned")
    return 0


if __name__ == "__main__":
    sys.exit(main())
