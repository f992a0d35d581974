"""Fenced config writes and publishes against the live warrend: allowed while
the leadership holds, refused (FenceError, nothing written or published)
once it ended; the fence headers are the server's and cannot be forged."""

import queue
import unittest

import grpc

from support import ADDRESS, unique, warren


class FenceTest(unittest.TestCase):
    def setUp(self):
        self.client = warren.connect(ADDRESS)
        self.publisher = self.client.publisher()
        self.name = unique("py-fence")
        self.key = self.name + "/owner"
        self.elector = self.client.elector(self.name)
        self.assertTrue(self.elector.wait_elected(10))
        self.deliveries = queue.Queue()
        self.subscriber = self.client.subscriber(self.deliveries.put, queue=self.name)
        self.assertTrue(self.subscriber.wait_subscribed(10))

    def tearDown(self):
        self.subscriber.stop()
        self.elector.close()
        self.client.delete_config(self.name, recursive=True)
        self.client.close()

    def next_delivery(self):
        return self.deliveries.get(timeout=10)

    def test_fenced_publish_carries_the_fence_in_its_headers(self):
        fence = self.elector.fence()
        self.assertEqual((fence.election, fence.fencing_token),
                         (self.name, self.elector.fencing_token))
        self.publisher.publish(self.name, b"task", headers={"app": "x"}, fence=fence)
        delivery = self.next_delivery()
        self.assertEqual(dict(delivery.headers), {
            "app": "x",
            "warren-fence": "election:" + self.name,
            "warren-fencing-token": str(fence.fencing_token),
        })

    def test_after_resigning_fenced_config_writes_are_refused(self):
        fence = self.elector.fence()
        self.client.put_config(self.key, "mine", fence=fence)
        self.elector.close()  # resigns: the fence no longer holds
        with self.assertRaises(warren.NotLeaderError):
            self.elector.fence()
        with self.assertRaises(warren.FenceError) as caught:
            self.client.put_config(self.key, "late", fence=fence)
        self.assertEqual(caught.exception.code, grpc.StatusCode.FAILED_PRECONDITION)
        self.assertTrue(caught.exception.details.startswith(
            "fence: election:%s token %d" % (self.name, fence.fencing_token)),
            caught.exception.details)
        with self.assertRaises(warren.FenceError):
            self.client.delete_config(self.key, fence=fence)
        with self.assertRaises(warren.FenceError):
            self.client.txn([], [warren.txn.put(self.key, "late")], fence=fence)
        self.assertEqual(self.client.get_config(self.key, consistent=True), b"mine")

    def test_after_resigning_a_fenced_publish_is_refused(self):
        fence = self.elector.fence()
        self.publisher.publish(self.name, b"mine", fence=fence)
        self.assertEqual(self.next_delivery().payload, b"mine")
        self.elector.close()
        with self.assertRaises(warren.FenceError) as caught:
            self.publisher.publish(self.name, b"late", fence=fence)
        self.assertTrue(caught.exception.details.startswith(
            "fence: election:%s token %d" % (self.name, fence.fencing_token)),
            caught.exception.details)
        # Nothing of the refused publish reaches the queue: the next
        # delivery is the marker published after it.
        self.publisher.publish(self.name, b"marker")
        self.assertEqual(self.next_delivery().payload, b"marker")
        self.assertTrue(self.deliveries.empty())

    def test_a_new_leaders_fence_holds_and_the_old_one_does_not(self):
        old = self.elector.fence()
        successor = self.client.elector(self.name)
        try:
            self.elector.close()
            self.assertTrue(successor.wait_elected(10))
            new = successor.fence()
            self.assertGreater(new.fencing_token, old.fencing_token)
            self.client.put_config(self.key, "new", fence=new)
            with self.assertRaises(warren.FenceError) as caught:
                self.client.put_config(self.key, "old", fence=old)
            self.assertIn("token %d" % old.fencing_token, caught.exception.details)
            self.assertEqual(self.client.get_config(self.key, consistent=True), b"new")
        finally:
            successor.close()

    def test_a_fence_of_an_election_that_does_not_exist_does_not_hold(self):
        fence = warren.election_fence(unique("py-no-such-election"), 12345)
        with self.assertRaises(warren.FenceError):
            self.publisher.publish(self.name, b"x", fence=fence)
        with self.assertRaises(warren.FenceError):
            self.client.put_config(self.key, "x", fence=fence)
        self.assertIsNone(self.client.get_config(self.key, consistent=True))

    def test_fence_headers_cannot_be_forged(self):
        for header in ("warren-fence", "warren-fencing-token"):
            with self.subTest(header=header):
                with self.assertRaises(warren.FatalError) as caught:
                    self.publisher.publish(self.name, b"forged", headers={header: "1"})
                self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
                self.assertIn("headers", caught.exception.details)

    def test_malformed_fences_are_refused(self):
        with self.assertRaises(ValueError):
            warren.lock_fence(self.name, 0)
        no_owner = warren.common_pb2.Fence(fencing_token=3)
        no_token = warren.common_pb2.Fence(election=self.name)
        for fence in (no_owner, no_token):
            for write in (lambda f: self.publisher.publish(self.name, b"x", fence=f),
                          lambda f: self.client.put_config(self.key, "x", fence=f)):
                with self.assertRaises(warren.FatalError) as caught:
                    write(fence)
                self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
                self.assertIn("fence", caught.exception.details)


if __name__ == "__main__":
    unittest.main()
