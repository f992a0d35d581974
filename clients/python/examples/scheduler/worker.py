#!/usr/bin/python3
"""worker: processes tasks from the work queue; run as many as you like
(competing consumers: each task goes to one worker at a time).

    WARREN_ADDRESS=... examples/scheduler/worker.py --name w1 [--queue scheduler-tasks]

Delivery is at-least-once: a task can come twice (redelivered after a worker
or server failure, or re-dispatched by a new leader around a failover, with
the same message id). This worker skips ids it has already processed; a real
one would keep that record where its effects go (a database unique key, or a
ConfigService create_only key) so that the check holds across workers too.

Output: READY, then one line per task: PROCESSED task=<n> token=<t>
from=<dispatcher> redelivered=<bool>, or DUPLICATE task=<n>.
"""

import argparse
import json
import os
import signal
import sys
import threading
import time

import _path  # noqa: F401  (puts a checkout's warren_client on sys.path)
import warren_client as warren


_print_lock = threading.Lock()


def say(name, event, **fields):
    """One whole line per event (callbacks print from other threads)."""
    extra = " ".join("%s=%s" % kv for kv in fields.items())
    with _print_lock:
        sys.stdout.write("%s %s t=%.6f %s\n" % (name, event, time.time(), extra))
        sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="worker-%d" % os.getpid())
    parser.add_argument("--queue", default="scheduler-tasks")
    parser.add_argument("--work", type=float, default=0.05, help="seconds per task")
    parser.add_argument("--parallel", type=int, default=1, help="tasks at once")
    args = parser.parse_args()
    name = args.name

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    done = set()
    lock = threading.Lock()

    def handle(delivery):
        task = json.loads(delivery.payload)["task"]
        with lock:
            if delivery.message_id in done:
                say(name, "DUPLICATE", task=task)
                return  # ack: it was done already
        time.sleep(args.work)  # the work; raising here would requeue the task
        with lock:
            done.add(delivery.message_id)
        say(name, "PROCESSED", task=task,
            token=delivery.headers.get("fencing-token", "?"),
            **{"from": delivery.headers.get("dispatcher", "?")},
            redelivered=delivery.redelivered)

    with warren.connect() as client:
        # max_in_flight=1 (the default here): the broker hands a worker its
        # next task only when it finished the last, so tasks spread evenly.
        with client.subscriber(handle, queue=args.queue, max_in_flight=args.parallel) as sub:
            sub.wait_subscribed(timeout=30)
            say(name, "READY", queue=sub.queue_name)
            stop.wait()
    say(name, "STOPPED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
