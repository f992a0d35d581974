#!/usr/bin/python3
"""request_reply: a responder answers requests on a queue, and a caller asks
it through Client.call() (RabbitMQ direct reply-to, handled by warrend).

    WARREN_ADDRESS=127.0.0.1:50051 examples/request_reply.py [--queue squares] [--count 3]

Starts a responder that squares numbers, calls it `--count` times, prints
each reply, then calls a queue nobody answers and reports the timeout.
Exits 0 when every reply was right.
"""

import argparse
import os
import sys

from _path import say  # (also puts a checkout's warren_client on sys.path)
import warren_client as warren


def square(request):
    # Runs on the responder's pool; the reply is published to the request's
    # reply_to with its correlation_id, then the request is acked.
    n = int(request.payload)
    return warren.Reply(str(n * n), content_type="text/plain")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", default="squares-" + os.urandom(3).hex())
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()

    ok = True
    with warren.connect() as client:
        with client.responder(square, queue=args.queue, max_in_flight=4) as responder:
            responder.wait_subscribed(args.timeout)  # the queue exists from here
            say("responder on queue %r" % responder.queue_name)
            for n in range(1, args.count + 1):
                reply = client.call(args.queue, str(n), timeout=args.timeout)
                say("%d squared is %s" % (n, reply.payload.decode()))
                ok = ok and reply.payload == str(n * n).encode()
            responder.stop()
            # The queue is still there, with no responder: the call waits out
            # its timeout. (A queue that does not exist at all would be
            # FAILED_PRECONDITION at once: calls are mandatory.)
            try:
                client.call(args.queue, b"7", timeout=1.0)
                ok = False
            except TimeoutError as error:  # warren.CallTimeoutError
                say("no responder: %s" % error)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
