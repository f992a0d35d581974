"""Client.txn against the live warrend: all or nothing, the failing check or
op named by its index, and a fence checked with it."""

import unittest

import grpc

from support import ADDRESS, unique, warren
from warren_client import txn


class TxnTest(unittest.TestCase):
    def setUp(self):
        self.client = warren.connect(ADDRESS)
        self.base = unique("py-txn")
        self.a, self.b, self.c = (self.base + "/" + n for n in "abc")

    def tearDown(self):
        self.client.delete_config(self.base, recursive=True)
        self.client.close()

    def state(self):
        return {k: self.client.get_config(k, consistent=True) for k in (self.a, self.b, self.c)}

    def test_applies_every_op_when_every_check_passes(self):
        self.client.put_config(self.a, "1")
        self.client.put_config(self.c, "old")
        entries = self.client.txn(
            [txn.version_is(self.a, 0), txn.missing(self.b), txn.exists(self.c)],
            [txn.put(self.a, "2"), txn.put(self.b, "new", create_only=True), txn.delete(self.c)],
        )
        self.assertEqual([(e.key, e.value, e.version) for e in entries],
                         [(self.a, b"2", 1), (self.b, b"new", 0)])
        self.assertEqual(self.state(), {self.a: b"2", self.b: b"new", self.c: None})

    def test_a_failing_check_at_any_position_changes_nothing(self):
        self.client.put_config(self.a, "1")
        passing = [txn.version_is(self.a, 0), txn.missing(self.b), txn.exists(self.a)]
        failing = [txn.version_is(self.a, 5), txn.exists(self.b), txn.missing(self.a)]
        ops = [txn.put(self.a, "2"), txn.put(self.b, "2"), txn.put(self.c, "2")]
        for i in range(len(passing)):
            checks = list(passing)
            checks[i] = failing[i]
            with self.subTest(failing_check=i):
                with self.assertRaises(warren.TxnFailedError) as caught:
                    self.client.txn(checks, ops)
                self.assertEqual(caught.exception.code, grpc.StatusCode.FAILED_PRECONDITION)
                self.assertEqual((caught.exception.field, caught.exception.index), ("checks", i))
                self.assertEqual(self.state(), {self.a: b"1", self.b: None, self.c: None})

    def test_a_failing_op_changes_nothing(self):
        self.client.put_config(self.b, "1")
        ops = [txn.put(self.a, "2"), txn.put(self.b, "2", create_only=True), txn.delete(self.c)]
        with self.assertRaises(warren.TxnFailedError) as caught:
            self.client.txn([], ops)
        self.assertEqual((caught.exception.field, caught.exception.index), ("ops", 1))
        self.assertEqual(self.state(), {self.a: None, self.b: b"1", self.c: None})
        ops = [txn.put(self.a, "2"), txn.put(self.b, "2", expected_version=7)]
        with self.assertRaises(warren.TxnFailedError) as caught:
            self.client.txn([], ops)
        self.assertEqual((caught.exception.field, caught.exception.index), ("ops", 1))
        self.assertEqual(self.state(), {self.a: None, self.b: b"1", self.c: None})

    def test_bad_requests_are_refused(self):
        cases = {
            "no ops": ([txn.exists(self.a)], []),
            "the same key twice": ([], [txn.put(self.a, "1"), txn.delete(self.a)]),
            "a bad key": ([], [txn.put("bad//key", "1")]),
            "a fence inside an op": ([], [warren.config_pb2.TxnOp(put=warren.config_pb2.PutConfigRequest(
                key=self.a, fence=warren.election_fence(self.base, 1)))]),
            "over the maximum": ([], [txn.put("%s/k%d" % (self.base, i), "1") for i in range(101)]),
        }
        for case, (checks, ops) in cases.items():
            with self.subTest(case=case):
                with self.assertRaises(warren.FatalError) as caught:
                    self.client.txn(checks, ops)
                self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
                self.assertNotIsInstance(caught.exception, warren.TxnFailedError)
        self.assertEqual(self.state(), {self.a: None, self.b: None, self.c: None})

    def test_a_lock_fence_is_checked_with_the_ops(self):
        name = unique("py-txn-lock")
        with self.client.locker() as locker:
            lock = locker.acquire(name, timeout=10)
            self.client.txn([], [txn.put(self.a, "held")], fence=lock.fence())
            lock.release()
            with self.assertRaises(warren.FenceError):
                self.client.txn([], [txn.put(self.a, "late"), txn.put(self.b, "late")],
                                fence=lock.fence())
        self.assertEqual(self.state(), {self.a: b"held", self.b: None, self.c: None})


if __name__ == "__main__":
    unittest.main()
