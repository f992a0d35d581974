#!/usr/bin/python3
"""dispatcher: publishes numbered tasks to a durable work queue, but only
while it leads an election, so that any number of dispatchers can run and
exactly one dispatches at a time.

    WARREN_ADDRESS=... examples/scheduler/dispatcher.py --name d1 [--election scheduler]
        [--queue scheduler-tasks] [--interval 0.2]

Each task:
- has a deterministic message id, `task-<n>`: a task published twice (see
  below) is recognisable, and workers de-duplicate by it;
- carries the leader's fencing token in the header `fencing-token` (and its
  name in `dispatcher`), so a consumer can tell tasks of a newer leader from
  those of an older one and reject a stale leader's writes downstream;
- is numbered by a counter in ConfigService (`<election>/next-task`), advanced
  with compare-and-set after the publish was confirmed. A new leader carries
  on where the old one stopped.

At-least-once, on purpose: if a leader dies (or loses its lease) after a
task's publish was confirmed but before the counter moved, its successor
publishes the same task number again, with the same id. Nothing is lost and
a duplicate is recognisable; workers must de-duplicate by message id. The
publish is `mandatory` (the Publisher's default): with no queue to take it
(no worker ever declared it), it fails and is retried instead of vanishing.

Output, one line per event (with wall-clock time `t=`): ELECTED, FOLLOWING,
LOST, DISPATCH task=<n> token=<t>, FENCED, RESIGNED.
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
    """(next task number, version or None when the key does not exist)."""
    try:
        entry = client.config.GetConfig(
            warren.config_pb2.GetConfigRequest(key=key, consistent=True)).entry
    except grpc.RpcError as error:  # the raw stub's error: same rule as the wrappers'
        if error.code() == grpc.StatusCode.NOT_FOUND:
            return 0, None
        raise warren.errors.from_unary_error(error) from error
    return int(entry.value or b"0"), entry.version


def advance_counter(client, key, number, version):
    """Sets the counter to number+1 iff nobody moved it since we read it."""
    if version is None:
        client.put_config(key, str(number + 1), create_only=True)
    else:
        client.put_config(key, str(number + 1), expected_version=version)


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
                number, version = read_counter(client, counter_key)
                # fencing_token checks the lease: never publish on a stale belief.
                token = elector.fencing_token
                if token is None or stop.is_set():
                    continue
                try:
                    publisher.publish(
                        args.queue,
                        json.dumps({"task": number, "created_by": name}),
                        message_id="task-%d" % number,
                        headers={"fencing-token": str(token), "dispatcher": name},
                        content_type="application/json",
                    )
                except warren.FatalError as error:
                    if error.code != grpc.StatusCode.FAILED_PRECONDITION:
                        raise
                    say(name, "UNROUTABLE", task=number)  # no queue yet: retry
                    stop.wait(args.interval)
                    continue
                say(name, "DISPATCH", task=number, token=token)
                try:
                    advance_counter(client, counter_key, number, version)
                except warren.FatalError as error:
                    if error.code not in (grpc.StatusCode.FAILED_PRECONDITION,
                                          grpc.StatusCode.ALREADY_EXISTS):
                        raise
                    # Someone else moved the counter: we are not (or no
                    # longer) the only dispatcher. Re-read and go on.
                    say(name, "FENCED", task=number)
            except warren.WarrenError as error:
                # UNAVAILABLE after the publisher's own retries, etc.: the
                # counter was not advanced, so the task is tried again.
                say(name, "ERROR", code=error.code.name)
            stop.wait(args.interval)
        elector.close()
        say(name, "RESIGNED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
