#!/usr/bin/python3
"""stream_replay: publishes to a RabbitMQ stream queue, replays it from the
first message, then resumes from a stored offset as a restarted consumer
would.

    WARREN_ADDRESS=127.0.0.1:50051 examples/stream_replay.py [--queue events] [--count 5]

A stream keeps its messages after they are acked: every subscriber reads it
from an offset of its own. The subscriber itself resumes after a broken
stream at the offset after the last one handled; across restarts, store
`delivery.stream_offset` and start at `offset=stored + 1`.
"""

import argparse
import os
import sys
import threading

from _path import say  # (also puts a checkout's warren_client on sys.path)
import warren_client as warren

STREAM = warren.queue_options(queue_type="stream", max_age=24 * 3600)


def read(client, queue, count, offset, timeout):
    """Reads `count` messages from `offset`; returns [(offset, payload)]."""
    got = []
    done = threading.Event()

    def handle(delivery):
        got.append((delivery.stream_offset, delivery.payload.decode()))
        if len(got) == count:
            done.set()

    # max_in_flight=1: handled in stream order.
    with client.subscriber(handle, queue=queue, queue_options=STREAM, offset=offset,
                           max_in_flight=1):
        if not done.wait(timeout):
            raise SystemExit("timed out; read %d of %d" % (len(got), count))
    return got


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", default="events-" + os.urandom(3).hex())
    parser.add_argument("--count", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args()

    with warren.connect() as client:
        # Subscribing declares the stream; "next" reads only what comes later.
        with client.subscriber(lambda d: None, queue=args.queue, queue_options=STREAM) as sub:
            sub.wait_subscribed(args.timeout)
        publisher = client.publisher()
        for i in range(args.count):
            publisher.publish(args.queue, "event %d" % i)
        say("published %d events to stream %r" % (args.count, args.queue))

        first = read(client, args.queue, args.count, "first", args.timeout)
        for offset, payload in first:
            say("replay: offset=%d %s" % (offset, payload))
        again = read(client, args.queue, args.count, "first", args.timeout)
        say("second replay is the same: %s" % (again == first))

        stored = first[1][0]  # as if offset of the second event had been stored
        rest = read(client, args.queue, args.count - 2, stored + 1, args.timeout)
        for offset, payload in rest:
            say("resumed after %d: offset=%d %s" % (stored, offset, payload))
        ok = again == first and rest == first[2:]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
