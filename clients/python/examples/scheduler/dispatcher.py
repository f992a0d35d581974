#!/usr/bin/python3
"""dispatcher: publishes numbered tasks to a durable work queue, but only
while it leads an election, so that any number of dispatchers can run and
exactly one dispatches at a time — and a deposed one's late tasks cannot be
acted on.

    WARREN_ADDRESS=... examples/scheduler/dispatcher.py --name d1 [--election scheduler]
        [--queue scheduler-tasks] [--interval 0.2]

Each task:
- has a deterministic message id, `task-<n>`: a task published twice (see
  below) is recognisable, and workers de-duplicate by it;
- is published FENCED with the leadership (Elector.fence()): warrend
  publishes it only if this dispatcher still leads just before the publish,
  and stamps the headers `warren-fence` (`election:<election>`) and
  `warren-fencing-token`, which nobody can set by hand. Workers drop tasks
  whose token is older than the newest they have seen;
- is numbered by a counter in ConfigService (`<election>/next-task`),
  advanced after the publish was confirmed by a FENCED put: warrend writes
  it only while this dispatcher leads, checked atomically with the write.
  A new leader carries on where the old one stopped.

A dispatcher that was deposed while it believed it led (its lease not yet
run out, a pause at the wrong moment) has its late publish and its late
counter update refused (FenceError): it prints DEPOSED, and nothing of it
reaches a worker or the counter.

At-least-once, on purpose: if a leader dies (or loses its lease) after a
task's publish was confirmed but before the counter moved, its successor
publishes the same task number again, with the same id. Nothing is lost and
a duplicate is recognisable; workers must de-duplicate by message id. The
publish is `mandatory` (the Publisher's default): with no queue to take it
(no worker ever declared it), it fails and is retried instead of vanishing.

Output, one line per event (with wall-clock time `t=`): ELECTED, FOLLOWING,
LOST, DISPATCH task=<n> token=<t>, DEPOSED task=<n>, UNROUTABLE, RESIGNED.
"""

import argparse
import json
import os
import signal
import sys
import threading
import time

import grpc

import _path  # noqa: F401  (puts a checkout's warren_client on sys.path)
import warren_client as warren


_print_lock = threading.Lock()


def say(name, event, **fields):
    """One whole line per event (callbacks print from other threads)."""
    extra = " ".join("%s=%s" % kv for kv in fields.items())
    with _print_lock:
        sys.stdout.write("%s %s t=%.6f %s\n" % (name, event, time.time(), extra))
        sys.stdout.flush()


def read_counter(client, key):
    """The next task number (0 when the counter does not exist yet)."""
    value = client.get_config(key, consistent=True)
    return int(value or b"0")


DISPATCH, DEPOSED, UNROUTABLE = "DISPATCH", "DEPOSED", "UNROUTABLE"


def dispatch_one(client, publisher, queue, counter_key, fence, name):
    """Dispatches the next task under `fence` (this dispatcher's leadership):
    publishes it, then advances the counter, both fenced. Returns (outcome,
    task number): DISPATCH; DEPOSED when the fence no longer held (nothing
    published, or the counter not advanced); UNROUTABLE when no queue takes
    the task yet. Raises WarrenError for anything else (e.g. UNAVAILABLE
    after the publisher's retries): the counter did not move, so the task
    is tried again."""
    number = read_counter(client, counter_key)
    try:
        publisher.publish(
            queue,
            json.dumps({"task": number, "created_by": name}),
            message_id="task-%d" % number,
            headers={"dispatcher": name},
            content_type="application/json",
            fence=fence,
        )
    except warren.FenceError:
        return DEPOSED, number
    except warren.FatalError as error:
        if error.code != grpc.StatusCode.FAILED_PRECONDITION:
            raise
        return UNROUTABLE, number
    try:
        # No compare-and-set needed: only the current leader can write.
        client.put_config(counter_key, str(number + 1), fence=fence)
    except warren.FenceError:
        return DEPOSED, number
    return DISPATCH, number


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="dispatcher-%d" % os.getpid())
    parser.add_argument("--election", default="scheduler")
    parser.add_argument("--queue", default="scheduler-tasks")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between tasks")
    parser.add_argument("--heartbeat", type=float, default=1.0, help="lease heartbeat interval")
    args = parser.parse_args()
    name = args.name
    counter_key = args.election + "/next-task"

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    with warren.connect() as client:
        publisher = client.publisher()
        elector = client.elector(
            args.election,
            candidate_id=name,
            value=name,
            heartbeat_interval=args.heartbeat,
            on_elected=lambda leader: say(name, "ELECTED", token=leader.fencing_token),
            on_following=lambda leader: say(
                name, "FOLLOWING", leader=leader.candidate_id if leader else "none"),
            on_lost=lambda reason: say(name, "LOST", reason=reason.name),
        )
        say(name, "STARTED", election=args.election, queue=args.queue)
        while not stop.is_set():
            if not elector.wait_elected(timeout=0.5):
                continue
            try:
                # The fence is the lease-checked leadership: never dispatch
                # on a stale belief, and if the belief goes stale on the
                # way, warrend refuses.
                fence = elector.fence()
            except warren.NotLeaderError:
                continue
            if stop.is_set():
                break
            try:
                outcome, number = dispatch_one(
                    client, publisher, args.queue, counter_key, fence, name)
            except warren.WarrenError as error:
                say(name, "ERROR", code=error.code.name)
            else:
                if outcome == DISPATCH:
                    say(name, DISPATCH, task=number, token=fence.fencing_token)
                else:
                    say(name, outcome, task=number)
            stop.wait(args.interval)
        elector.close()
        say(name, "RESIGNED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
