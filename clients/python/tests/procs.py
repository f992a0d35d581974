"""Example programs run as separate processes, their output lines collected."""

import os
import re
import signal
import subprocess
import sys
import threading

from support import ROOT, wait_until

PYTHON = sys.executable  # the interpreter running the tests: /usr/bin/python3


class Program:
    """Runs `examples/<script> args...` and collects its stdout lines."""

    def __init__(self, script, *args, env=None):
        self.lines = []
        self._lock = threading.Lock()
        self.process = subprocess.Popen(
            [PYTHON, os.path.join(ROOT, "examples", script)] + list(args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, **(env or {})),
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))
        self.process.stdout.close()

    def output(self):
        with self._lock:
            return list(self.lines)

    def events(self, kind):
        """The parsed `NAME KIND t=... k=v ...` lines of one kind, as dicts."""
        found = []
        for line in self.output():
            parts = line.split()
            if len(parts) >= 2 and parts[1] == kind:
                found.append(dict(p.split("=", 1) for p in parts[2:] if "=" in p))
        return found

    def wait_line(self, pattern, timeout=20.0):
        regex = re.compile(pattern)
        return wait_until(
            lambda: any(regex.search(l) for l in self.output()), timeout,
            message="no line matching %r in:\n%s" % (pattern, "\n".join(self.output())))

    def terminate(self, timeout=20.0):
        """SIGTERM and wait; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(5)
        return code

    def wait(self, timeout=60.0):
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code
