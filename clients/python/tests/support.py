"""Test helpers: names, condition polling, and warrend processes of our own."""

import os
import random
import re
import socket
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)  # clients/python
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import logging  # noqa: E402

import warren_client as warren  # noqa: E402,F401  (re-exported to the tests)

# The wrappers log every reconnect and handler failure; the tests provoke
# many on purpose. WARREN_PY_LOG=INFO shows them.
logging.basicConfig(
    level=getattr(logging, os.environ.get("WARREN_PY_LOG", "CRITICAL").upper()),
    format="%(asctime)s %(name)s %(levelname)s %(message)s",
)

ADDRESS = os.environ.get("WARREN_ADDRESS", "127.0.0.1:50051")


def unique(prefix):
    """A name no other test run uses (the backends are shared)."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


def wait_until(predicate, timeout=10.0, interval=0.02, message=None):
    """Polls `predicate` until it is true; fails the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(message or "condition not met within %.1fs" % timeout)
        time.sleep(interval)


class Recorder:
    """Thread-safe list with waiting, for callbacks."""

    def __init__(self):
        self._lock = threading.Lock()
        self.items = []

    def __call__(self, *args):
        with self._lock:
            self.items.append(args[0] if len(args) == 1 else args)

    def snapshot(self):
        with self._lock:
            return list(self.items)

    def wait_for(self, predicate, timeout=10.0, message=None):
        return wait_until(lambda: predicate(self.snapshot()), timeout, message=message)


def free_port():
    """A free loopback port BELOW the kernel's ephemeral range: a test that
    restarts warrend on the same port must not find it taken meanwhile by
    some process's outgoing connection (the machine is shared)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    for _ in range(100):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below %d" % low)


def _drain(pipe):
    pipe.read()
    pipe.close()


class OwnServer:
    """A warrend of the test's own (needs WARREN_WARREND and the backends),
    for tests that stop, freeze and restart the server. By default it joins
    the cluster of $WARREN_ADDRESS (same --root), so both see the same
    elections and config."""

    def __init__(self, root=None, extra_flags=()):
        self.binary = os.environ["WARREN_WARREND"]
        self.root = root or os.environ["WARREN_ROOT"]
        self.extra_flags = list(extra_flags)
        self.port = 0
        self.address = None
        self.process = None
        self._logdir = tempfile.mkdtemp(prefix="warren-py-")

    def start(self, attempts=2):
        """Starts warrend (on the port of the previous start, if any). On a
        busy shared machine a start can fail (e.g. ZooKeeper slow to accept
        the session within --backend_wait): one more try, then fail."""
        if self.port == 0:
            self.port = free_port()
        for attempt in range(attempts):
            if self._start_once():
                return self
        raise RuntimeError("warrend did not start on port %d: %s" % (self.port, self.stderr_tail()))

    def stderr_tail(self):
        with open(os.path.join(self._logdir, "stderr"), "rb") as f:
            return f.read()[-2000:].decode(errors="replace")

    def _start_once(self):
        self.address = None
        log = open(os.path.join(self._logdir, "stderr"), "ab")
        self.process = subprocess.Popen(
            [
                self.binary,
                "--listen=127.0.0.1:%d" % self.port,
                "--zk_connect=%s" % os.environ["WARREN_TEST_ZK"],
                "--amqp_urls=%s" % os.environ["WARREN_TEST_AMQP_URL"],
                "--root=%s" % self.root,
                "--zk_session_timeout=4s",
                "--shutdown_grace=2s",
                "--log_level=warn",
            ]
            + self.extra_flags,
            stdout=subprocess.PIPE,
            stderr=log,
        )
        log.close()
        # The line comes once it serves; EOF means it exited.
        for raw in self.process.stdout:
            match = re.match(rb"warrend is serving on (\S+)", raw)
            if match:
                self.address = match.group(1).decode()
                break
        if self.address is None:
            self.process.kill()
            self.process.wait()
            self.process.stdout.close()
            return False
        # Keep reading stdout so that warrend never blocks on a full pipe.
        threading.Thread(target=_drain, args=(self.process.stdout,), daemon=True).start()
        return True

    def stop(self):
        """SIGTERM: open streams end with UNAVAILABLE, then it exits."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self):
        """SIGKILL: no goodbye to clients, ZooKeeper or the broker (a crash,
        a power cut); the clients find out from their sockets."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def freeze(self):
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self):
        self.process.send_signal(signal.SIGCONT)

    def restart(self):
        """Stops it and starts it again on the same port."""
        self.stop()
        return self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
