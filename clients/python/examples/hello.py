#!/usr/bin/python3
"""hello: publishes "Hello, Zookeeper & RabbitMQ!" to a durable queue and
receives it back.

    WARREN_ADDRESS=127.0.0.1:50051 examples/hello.py [--queue test_queue] [--count 1]

Prints one line per message received and exits 0 once every message it sent
came back (1 on timeout).
"""

import argparse
import os
import sys
import threading

from _path import say  # (also puts a checkout's warren_client on sys.path)
import warren_client as warren


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", default=os.environ.get("WARREN_QUEUE", "test_queue"))
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args()

    text = "Hello, Zookeeper & RabbitMQ!"
    expected = {}
    got = [0]
    received = threading.Event()
    lock = threading.Lock()

    def handle(delivery):
        with lock:
            if expected.pop(delivery.message_id, None) is None:
                return  # not ours (an old message left in the queue): ack it
            say("received %r (message id %s)" % (delivery.payload.decode(), delivery.message_id))
            got[0] += 1
            # Counted, not "nothing expected now": the messages sent so far
            # can all be back before the next one is even registered.
            if got[0] == args.count:
                received.set()

    with warren.connect() as client:
        # Subscribing declares the queue (durable) when it is missing, so the
        # publish below has somewhere to go.
        with client.subscriber(handle, queue=args.queue, max_in_flight=4) as sub:
            sub.wait_subscribed(timeout=args.timeout)
            say("subscribed to queue %r at %s" % (sub.queue_name, client.address))
            publisher = client.publisher()
            for i in range(args.count):
                payload = text if args.count == 1 else "%s #%d" % (text, i)
                with lock:
                    # Register before publishing: the delivery can arrive first.
                    message_id = "hello-%d-%s" % (i, os.urandom(4).hex())
                    expected[message_id] = payload
                publisher.publish(args.queue, payload, message_id=message_id,
                                  content_type="text/plain")
                say("published %r (message id %s)" % (payload, message_id))
            ok = received.wait(args.timeout)
    if not ok:
        print("timed out; never received: %s" % sorted(expected), file=sys.stderr)
        return 1
    print("all %d message(s) received" % args.count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
