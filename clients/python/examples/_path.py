"""Lets the examples run from a checkout: puts clients/python on sys.path
(an installed warren_client needs none of this)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


import threading as _threading

_print_lock = _threading.Lock()


def say(line):
    """Prints one whole line: callbacks print from the wrappers' threads, and
    print() from two threads can interleave."""
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
