"""Locker against the live warrend (mutex, semaphore, waits, fences), and
against a warrend of our own that is stopped (stream breaks) or frozen
(lease runs out)."""

import threading
import time
import unittest

import grpc

from support import ADDRESS, OwnServer, Recorder, unique, wait_until, warren


class Overlap:
    """Counts holders inside a critical section; remembers the most at once."""

    def __init__(self):
        self._lock = threading.Lock()
        self.now = 0
        self.most = 0

    def __enter__(self):
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *exc):
        with self._lock:
            self.now -= 1


class LockerTest(unittest.TestCase):
    def setUp(self):
        self.client = warren.connect(ADDRESS)
        self.name = unique("py-lock")
        self.lockers = []

    def tearDown(self):
        for locker in self.lockers:
            locker.close()
        self.client.delete_config(self.name, recursive=True)
        self.client.close()

    def locker(self, **kwargs):
        locker = self.client.locker(**kwargs)
        self.lockers.append(locker)
        return locker

    def get_lock(self):
        return self.client.lock.GetLock(warren.lock_pb2.GetLockRequest(name=self.name))

    def test_acquire_and_release(self):
        with self.locker(holder_id="me").acquire(self.name, value="working", timeout=10) as lock:
            self.assertTrue(lock.held)
            self.assertGreater(lock.fencing_token, 0)
            self.assertEqual(lock.holder.holder_id, "me")
            seen = self.get_lock()
            self.assertEqual([(h.holder_id, h.value, h.fencing_token) for h in seen.holders],
                             [("me", b"working", lock.fencing_token)])
            self.assertEqual((seen.waiting, seen.limit), (0, 1))
        self.assertFalse(lock.held)
        self.assertFalse(lock.lost.is_set())  # a release is not a loss
        # The node is gone at once, not after a session timeout.
        self.assertEqual(list(self.get_lock().holders), [])

    def test_mutex_excludes_and_counts_exactly(self):
        # Each of 8 clients increments a config counter WITHOUT a
        # compare-and-set while holding the mutex: only mutual exclusion
        # keeps the count exact.
        counter = self.name + "/counter"
        self.client.put_config(counter, "0")
        inside, tokens, failures = Overlap(), Recorder(), Recorder()

        def work(locker):
            try:
                for _ in range(3):
                    with locker.acquire(self.name, timeout=60) as lock:
                        with inside:
                            tokens(lock.fencing_token)
                            value = int(self.client.get_config(counter, consistent=True))
                            self.client.put_config(counter, str(value + 1))
            except Exception as error:  # reported below, not lost in a thread
                failures(error)

        threads = [threading.Thread(target=work, args=(self.locker(),)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(failures.snapshot(), [])
        self.assertEqual(self.client.get_config(counter, consistent=True), b"24")
        self.assertEqual(inside.most, 1)
        # Every acquisition has its own token, growing in acquisition order.
        self.assertEqual(tokens.snapshot(), sorted(set(tokens.snapshot())))

    def test_semaphore_admits_at_most_its_limit_and_everyone_in_the_end(self):
        inside, acquired, failures = Overlap(), Recorder(), Recorder()
        all_waiting = threading.Event()

        def work(i):
            try:
                with self.locker().acquire(self.name, limit=3, timeout=60) as lock:
                    with inside:
                        acquired(i)
                        # Hold until everyone asked, so that the limit is tried.
                        all_waiting.wait(30)
                        self.assertTrue(lock.held)
            except Exception as error:
                failures(error)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        wait_until(lambda: self.get_lock().waiting == 5, 30,
                   message="5 waiters expected behind 3 holders")
        self.assertEqual(len(self.get_lock().holders), 3)
        self.assertEqual(self.get_lock().limit, 3)
        all_waiting.set()
        for t in threads:
            t.join(60)
        self.assertEqual(failures.snapshot(), [])
        self.assertEqual(sorted(acquired.snapshot()), list(range(8)))
        self.assertEqual(inside.most, 3)

    def test_another_limit_is_refused(self):
        with self.locker().acquire(self.name, limit=3, timeout=10):
            with self.assertRaises(warren.FatalError) as caught:
                self.locker().acquire(self.name, limit=2, timeout=10)
            self.assertEqual(caught.exception.code, grpc.StatusCode.FAILED_PRECONDITION)
            self.assertIn("limit", caught.exception.details)
            # 0 and 1 are the same for a mutex; 3 is what this lock has.
            with self.locker().acquire(self.name, limit=3, timeout=10):
                pass
            self.assertEqual(self.get_lock().waiting, 0)

    def test_try_once_and_timeout_leave_nothing_behind(self):
        queued = Recorder()
        with self.locker().acquire(self.name, timeout=10):
            other = self.locker()
            self.assertIsNone(other.try_acquire(self.name))
            started = time.monotonic()
            with self.assertRaises(warren.LockTimeoutError):
                other.acquire(self.name, timeout=1.0, on_queued=lambda p, h: queued((p, len(h))))
            waited = time.monotonic() - started
            self.assertGreaterEqual(waited, 0.9)
            self.assertLess(waited, 5.0)
            self.assertEqual(queued.snapshot()[0], (0, 1))  # first in line, behind 1 holder
            seen = self.get_lock()
            self.assertEqual((len(seen.holders), seen.waiting), (1, 0))
        # Free again: try-once gets it.
        lock = self.locker().try_acquire(self.name)
        self.assertIsNotNone(lock)
        lock.release()

    def test_waiter_gets_the_lock_when_the_holder_releases(self):
        first = self.locker().acquire(self.name, timeout=10)
        got = []
        waiter = threading.Thread(
            target=lambda: got.append(self.locker().acquire(self.name, timeout=30)))
        waiter.start()
        wait_until(lambda: self.get_lock().waiting == 1, 10)
        self.assertEqual(got, [])
        first.release()
        waiter.join(30)
        self.assertEqual(len(got), 1)
        self.assertTrue(got[0].held)
        self.assertGreater(got[0].fencing_token, first.fencing_token)
        got[0].release()

    def test_a_locks_fence_holds_exactly_while_it_is_held(self):
        key = self.name + "/owner"
        publisher = self.client.publisher()
        lock = self.locker().acquire(self.name, timeout=10)
        self.client.put_config(key, "first", fence=lock.fence())
        self.assertEqual(lock.fence().lock, self.name)
        lock.release()
        with self.assertRaises(warren.FenceError) as caught:
            publisher.publish(unique("py-nobody"), b"late", fence=lock.fence())
        self.assertEqual(caught.exception.code, grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("lock:" + self.name, caught.exception.details)
        with self.assertRaises(warren.FenceError):
            self.client.put_config(key, "late", fence=lock.fence())
        self.assertEqual(self.client.get_config(key, consistent=True), b"first")

    def test_bad_name_is_refused(self):
        with self.assertRaises(warren.FatalError) as caught:
            self.locker().acquire("bad//name", timeout=5)
        self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)


class LockerFaultTest(unittest.TestCase):
    def test_lost_at_once_when_the_stream_breaks_and_never_reacquired(self):
        name = unique("py-lock-break")
        with OwnServer() as server:
            own = warren.connect(server.address)
            main = warren.connect(ADDRESS)
            lost = Recorder()
            try:
                lock = own.locker().acquire(name, timeout=10, on_lost=lost)
                server.stop()  # SIGTERM: warrend ends open streams with UNAVAILABLE
                self.assertTrue(lock.lost.wait(5))
                self.assertEqual(lost.snapshot(), [warren.LostReason.STREAM_BROKEN])
                self.assertFalse(lock.held)
                server.start()
                # Nobody holds it: the client did not take it again.
                request = warren.lock_pb2.GetLockRequest(name=name)
                wait_until(lambda: not main.lock.GetLock(request).holders, 10)
                time.sleep(1.0)  # a re-acquire, if any, would show up by now
                self.assertEqual(list(main.lock.GetLock(request).holders), [])
            finally:
                own.close()
                main.close()

    def test_lease_expires_when_heartbeats_stop(self):
        interval = 0.3
        name = unique("py-lock-lease")
        with OwnServer() as server:
            own = warren.connect(server.address)
            lost = Recorder()
            lock = own.locker(heartbeat_interval=interval).acquire(
                name, timeout=10, on_lost=lost)
            self.assertAlmostEqual(lock.heartbeat_interval, interval, delta=0.01)
            time.sleep(4 * interval)  # held across many intervals while heartbeats flow
            self.assertTrue(lock.held)
            server.freeze()  # SIGSTOP: the stream stays open but goes silent
            frozen_at = time.monotonic()
            try:
                wait_until(lambda: not lock.held, 2 * interval + 0.5)
                self.assertLess(time.monotonic() - frozen_at, 2 * interval + 0.5)
                self.assertTrue(lock.lost.wait(2))
                self.assertEqual(lost.snapshot(), [warren.LostReason.LEASE_EXPIRED])
            finally:
                server.thaw()
            lock.release()
            own.close()


if __name__ == "__main__":
    unittest.main()
