#!/usr/bin/python3
"""worker: processes tasks from the work queue; run as many as you like
(competing consumers: each task goes to one worker at a time).

    WARREN_ADDRESS=... examples/scheduler/worker.py --name w1 [--queue scheduler-tasks]
        [--election scheduler]

Fencing: a task counts only if the dispatcher published it fenced with its
leadership of `--election`: warrend stamped the headers `warren-fence`
(`election:<election>`) and `warren-fencing-token` after checking that the
fence held, and refuses those headers from anyone else, so they cannot be
forged. A task whose token is OLDER than the newest this worker has seen
comes from a deposed dispatcher (e.g. redelivered after the worker that had
it died, once a newer leader's tasks were already flowing): it is dropped
(acked, not processed), so a deposed dispatcher's tasks cannot be acted on
after its successor's. A task without the fence is dropped too. (This
worker keeps the newest token in memory; a real one keeps it where its
effects go, e.g. compared in the same transaction as its writes, so that
it holds across workers and restarts.) Dropping is what fencing means: a
deposed dispatcher's task that must still be done is the new leader's to
dispatch again.

Delivery is at-least-once: a task can come twice (redelivered after a worker
or server failure, or re-dispatched by a new leader around a failover, with
the same message id). This worker skips ids it has already processed; a real
one would keep that record where its effects go (a database unique key, or a
ConfigService create_only key) so that the check holds across workers too.

Output: READY, then per task: START task=<n> token=<t> when it starts on
it, PROCESSED task=<n> token=<t> from=<dispatcher> redelivered=<bool> when
done, or DUPLICATE task=<n>, STALE task=<n> token=<t> newest=<t>, UNFENCED
task=<n>.
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
    parser.add_argument("--election", default="scheduler",
                        help="the dispatchers' election, whose fence tasks must carry")
    parser.add_argument("--work", type=float, default=0.05, help="seconds per task")
    parser.add_argument("--parallel", type=int, default=1, help="tasks at once")
    args = parser.parse_args()
    name = args.name

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    done = set()
    newest = [0]  # the newest fencing token seen
    lock = threading.Lock()
    fence_name = "election:" + args.election

    def handle(delivery):
        task = json.loads(delivery.payload)["task"]
        token = delivery.headers.get("warren-fencing-token")
        if delivery.headers.get("warren-fence") != fence_name or not token:
            say(name, "UNFENCED", task=task)
            return  # ack: drop it
        token = int(token)
        with lock:
            if token < newest[0]:
                say(name, "STALE", task=task, token=token, newest=newest[0])
                return  # ack: a deposed dispatcher's task, dropped
            newest[0] = token
            if delivery.message_id in done:
                say(name, "DUPLICATE", task=task)
                return  # ack: it was done already
        say(name, "START", task=task, token=token)
        time.sleep(args.work)  # the work; raising here would requeue the task
        with lock:
            done.add(delivery.message_id)
        say(name, "PROCESSED", task=task, token=token,
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
