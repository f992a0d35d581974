"""Elector against the live warrend, and against a warrend of our own that is
stopped (stream breaks) or frozen (lease runs out)."""

import time
import unittest

import grpc

from support import ADDRESS, OwnServer, Recorder, unique, wait_until, warren


class ElectorTest(unittest.TestCase):
    def setUp(self):
        self.client = warren.connect(ADDRESS)
        self.election = unique("py-election")
        self.electors = []

    def tearDown(self):
        for elector in self.electors:
            elector.close()
        self.client.close()

    def candidate(self, name, **kwargs):
        events = Recorder()
        elector = self.client.elector(
            self.election,
            candidate_id=name,
            value=name,
            on_elected=lambda leader: events(("elected", leader.fencing_token)),
            on_following=lambda leader: events(
                ("following", leader.candidate_id if leader else None)),
            on_lost=lambda reason: events(("lost", reason)),
            **kwargs,
        )
        self.electors.append(elector)
        return elector, events

    def leaders(self):
        return [e for e in self.electors if e.is_leader]

    def test_exactly_one_elected_and_the_next_takes_over(self):
        candidates = [self.candidate(n) for n in ("a", "b", "c")]
        wait_until(lambda: len(self.leaders()) == 1, 10)
        first = self.leaders()[0]
        first_token = first.fencing_token
        # The others follow the leader, and nobody else ever led.
        for elector, events in candidates:
            if elector is not first:
                events.wait_for(lambda ev: ("following", first.leader.candidate_id) in ev)
                self.assertNotIn("elected", [kind for kind, _ in events.snapshot()])
        self.assertEqual(len(self.leaders()), 1)
        leader_info = self.client.election.GetLeader(
            warren.election_pb2.GetLeaderRequest(election=self.election)).leader
        self.assertEqual(leader_info.fencing_token, first_token)

        first_events = [ev for el, ev in candidates if el is first][0]
        first.close()
        self.assertIn(("lost", warren.LostReason.RESIGNED), first_events.snapshot())
        self.assertFalse(first.is_leader)
        wait_until(lambda: len(self.leaders()) == 1, 10)
        second = self.leaders()[0]
        self.assertIsNot(second, first)
        self.assertGreater(second.fencing_token, first_token)

    def test_proclaim_updates_the_leader_value(self):
        elector, _ = self.candidate("solo")
        self.assertTrue(elector.wait_elected(10))
        elector.proclaim("new-value")
        request = warren.election_pb2.GetLeaderRequest(election=self.election)
        wait_until(lambda: self.client.election.GetLeader(request).leader.value == b"new-value")

    def test_invalid_election_name_stops_the_elector(self):
        elector, _ = self.candidate("x")
        elector.close()
        reported = Recorder()
        bad = warren.Elector(self.client.channel, "bad//name", on_error=reported).start()
        self.electors.append(bad)
        with self.assertRaises(warren.FatalError) as caught:
            bad.wait_elected(10)
        self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIs(bad.error, caught.exception)
        self.assertEqual(reported.snapshot(), [caught.exception])

    def test_proclaim_while_not_leading_raises_not_leader(self):
        leader, _ = self.candidate("first")
        self.assertTrue(leader.wait_elected(10))
        follower, events = self.candidate("second")
        events.wait_for(lambda ev: ("following", "first") in ev)
        with self.assertRaises(warren.NotLeaderError):
            follower.proclaim("mine")


class ElectorFaultTest(unittest.TestCase):
    def test_lost_at_once_when_the_stream_breaks(self):
        with OwnServer() as server:
            client = warren.connect(server.address)
            events = Recorder()
            elector = client.elector(
                unique("py-break"), on_lost=events, recampaign=False)
            self.assertTrue(elector.wait_elected(10))
            server.stop()  # SIGTERM: warrend ends open streams with UNAVAILABLE
            events.wait_for(lambda ev: ev == [warren.LostReason.STREAM_BROKEN], 5)
            self.assertFalse(elector.is_leader)
            self.assertIsNone(elector.fencing_token)
            elector.close()
            client.close()

    def test_lease_expires_when_heartbeats_stop(self):
        interval = 0.3
        with OwnServer() as server:
            client = warren.connect(server.address)
            events = Recorder()
            elector = client.elector(
                unique("py-lease"), on_lost=events, recampaign=False,
                heartbeat_interval=interval)
            self.assertTrue(elector.wait_elected(10))
            # Leadership holds across many intervals while heartbeats flow.
            time.sleep(4 * interval)
            self.assertTrue(elector.is_leader)
            server.freeze()  # SIGSTOP: the stream stays open but goes silent
            frozen_at = time.monotonic()
            try:
                # is_leader turns False within the lease (2 intervals) by
                # itself, whatever the elector's thread is doing ...
                wait_until(lambda: not elector.is_leader, 2 * interval + 0.5)
                self.assertLess(time.monotonic() - frozen_at, 2 * interval + 0.5)
                # ... and on_lost says why.
                events.wait_for(lambda ev: ev == [warren.LostReason.LEASE_EXPIRED], 2)
            finally:
                server.thaw()
            elector.close()
            client.close()


if __name__ == "__main__":
    unittest.main()
