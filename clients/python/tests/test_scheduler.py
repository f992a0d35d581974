"""The distributed task scheduler example: two dispatchers (one elected) and
two workers (competing consumers), all separate processes; then the leading
dispatcher is stopped and the other takes over. And fencing: a deposed
dispatcher's late publish and counter update are refused, and its task,
redelivered after the new leader's, is dropped by the workers."""

import json
import os
import sys
import unittest

import grpc

from procs import Program
from support import ADDRESS, ROOT, unique, wait_until, warren

sys.path.insert(0, os.path.join(ROOT, "examples", "scheduler"))
import dispatcher  # noqa: E402  (the example's own dispatch step)


def tasks(events):
    return [int(e["task"]) for e in events]


class SchedulerTest(unittest.TestCase):
    def setUp(self):
        self.election = unique("py-sched")
        self.queue = self.election + "-tasks"
        self.programs = []

    def tearDown(self):
        for program in self.programs:
            program.terminate()
        client = warren.connect(ADDRESS)
        try:
            client.config.DeleteConfig(warren.config_pb2.DeleteConfigRequest(
                key=self.election, recursive=True))
        finally:
            client.close()

    def start(self, script, name, *args):
        program = Program("scheduler/" + script, "--name", name, "--queue", self.queue,
                          "--election", self.election,
                          *(["--interval", "0.1"] if script == "dispatcher.py" else []), *args)
        self.programs.append(program)
        return program

    def processed(self, workers):
        return [t for w in workers for t in tasks(w.events("PROCESSED"))]

    def test_one_dispatcher_at_a_time_and_failover(self):
        workers = [self.start("worker.py", "w1"), self.start("worker.py", "w2")]
        for w in workers:
            w.wait_line(r" READY ")  # the queue exists from here on
        d1, d2 = self.start("dispatcher.py", "d1"), self.start("dispatcher.py", "d2")
        wait_until(lambda: len(d1.events("ELECTED")) + len(d2.events("ELECTED")) >= 1, 20)
        leader, follower = (d1, d2) if d1.events("ELECTED") else (d2, d1)

        # Tasks flow to both workers; only the leader dispatches.
        wait_until(lambda: len(self.processed(workers)) >= 15
                   and all(w.events("PROCESSED") for w in workers), 30,
                   message="tasks did not reach both workers")
        self.assertEqual(follower.events("DISPATCH"), [])
        self.assertEqual(follower.events("ELECTED"), [])
        self.assertTrue(follower.events("FOLLOWING"))
        old_token = int(leader.events("ELECTED")[0]["token"])

        # Stop the leader: it finishes its current task and resigns.
        self.assertEqual(leader.terminate(), 0)
        last_by_leader = tasks(leader.events("DISPATCH"))[-1]
        follower.wait_line(r" ELECTED ")
        wait_until(lambda: len(follower.events("DISPATCH")) >= 10, 30,
                   message="the new leader does not dispatch")
        new_token = int(follower.events("ELECTED")[0]["token"])
        self.assertGreater(new_token, old_token)

        # Never two at a time: every task of the new leader was dispatched
        # after the old one's last, and carries the new token.
        old = leader.events("DISPATCH")
        new = follower.events("DISPATCH")
        self.assertLess(float(old[-1]["t"]), float(new[0]["t"]))
        self.assertEqual({e["token"] for e in old}, {str(old_token)})
        self.assertEqual({e["token"] for e in new}, {str(new_token)})
        # The new leader carries on where the old one stopped (at most one
        # task again, the at-least-once window).
        self.assertIn(tasks(new)[0], (last_by_leader, last_by_leader + 1))

        # Stop dispatching; then nothing dispatched is lost.
        self.assertEqual(follower.terminate(), 0)
        dispatched = set(tasks(old)) | set(tasks(follower.events("DISPATCH")))
        self.assertEqual(dispatched, set(range(max(dispatched) + 1)), "a task number was skipped")
        wait_until(lambda: set(self.processed(workers)) >= dispatched, 30,
                   message="dispatched tasks were not processed: %s" % sorted(
                       dispatched - set(self.processed(workers))))
        after_takeover = set(tasks(follower.events("DISPATCH")))
        self.assertTrue(after_takeover <= set(self.processed(workers)))
        for w in workers:
            self.assertEqual(w.terminate(), 0)
        # Which worker did what (shown with -v).
        per_worker = {w.output()[0].split()[0]: len(w.events("PROCESSED")) for w in workers}
        print("\n  tasks dispatched=%d (old leader %d, new leader %d), processed per worker %s, duplicates %d"
              % (len(dispatched), len(old), len(follower.events("DISPATCH")), per_worker,
                 sum(len(w.events("DUPLICATE")) for w in workers)))

        self.assertEqual([e for w in workers for e in w.events("STALE") + w.events("UNFENCED")],
                         [])

    def test_a_deposed_dispatchers_tasks_cannot_be_acted_on(self):
        client = warren.connect(ADDRESS)
        self.addCleanup(client.close)
        publisher = client.publisher()
        counter = self.election + "/next-task"
        # A slow worker takes the first task and keeps it unfinished.
        slow = self.start("worker.py", "slow", "--work", "120")
        slow.wait_line(r" READY ")

        # The test is the first dispatcher, with the example's own step.
        old = client.elector(self.election, candidate_id="old")
        self.assertTrue(old.wait_elected(10))
        old_fence = old.fence()
        self.assertEqual(dispatcher.dispatch_one(
            client, publisher, self.queue, counter, old_fence, "old"), (dispatcher.DISPATCH, 0))
        slow.wait_line(r" START .* task=0 token=%d$" % old_fence.fencing_token)

        # Deposed: it resigns, and the example's dispatcher leads.
        fast = self.start("worker.py", "fast")
        fast.wait_line(r" READY ")
        old.close()
        new = self.start("dispatcher.py", "new")
        new.wait_line(r" ELECTED ")
        new_token = int(new.events("ELECTED")[0]["token"])
        self.assertGreater(new_token, old_fence.fencing_token)
        wait_until(lambda: len(fast.events("PROCESSED")) >= 3, 30,
                   message="the new leader's tasks do not reach the free worker")
        self.assertEqual(new.terminate(), 0)

        # Its late dispatch, with the fence it had: refused at the publish,
        # and a late counter update is refused too.
        next_task = dispatcher.read_counter(client, counter)
        self.assertEqual(dispatcher.dispatch_one(
            client, publisher, self.queue, counter, old_fence, "old"),
            (dispatcher.DEPOSED, next_task))
        with self.assertRaises(warren.FenceError):
            client.put_config(counter, "0", fence=old_fence)
        self.assertEqual(dispatcher.read_counter(client, counter), next_task)

        # The slow worker dies: its unfinished task 0 of the old leader is
        # redelivered, now after the new leader's tasks, and dropped.
        slow.process.kill()
        fast.wait_line(r" STALE .* task=0 token=%d newest=%d$"
                       % (old_fence.fencing_token, new_token))

        # Fence headers cannot be forged, and a task without them is dropped.
        with self.assertRaises(warren.FatalError) as caught:
            publisher.publish(self.queue, json.dumps({"task": next_task}), headers={
                "warren-fence": "election:" + self.election,
                "warren-fencing-token": str(new_token + 1)})
        self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        publisher.publish(self.queue, json.dumps({"task": next_task}), message_id="unfenced")
        fast.wait_line(r" UNFENCED .* task=%d$" % next_task)

        # Acted on: only the new leader's tasks; the late one never arrived.
        acted = fast.events("START")
        self.assertEqual({int(e["token"]) for e in acted}, {new_token})
        self.assertNotIn(0, tasks(acted))
        self.assertNotIn(next_task, tasks(acted))


if __name__ == "__main__":
    unittest.main()
