"""The examples, run as programs against the live warrend."""

import unittest

from procs import Program
from support import ADDRESS, unique, warren


class ExamplesTest(unittest.TestCase):
    def test_hello_receives_what_it_published(self):
        queue = unique("py-hello")
        hello = Program("hello.py", "--queue", queue, "--count", "3")
        self.assertEqual(hello.wait(60), 0, "\n".join(hello.output()))
        out = hello.output()
        published = sorted(l.split("(message id ")[1] for l in out if l.startswith("published"))
        received = sorted(l.split("(message id ")[1] for l in out if l.startswith("received"))
        self.assertEqual(len(published), 3)
        self.assertEqual(received, published)
        self.assertIn("all 3 message(s) received", out)

    def test_hello_default_text(self):
        hello = Program("hello.py", "--queue", unique("py-hello"))
        self.assertEqual(hello.wait(60), 0, "\n".join(hello.output()))
        self.assertTrue(any(l.startswith("received 'Hello, Zookeeper & RabbitMQ!'")
                            for l in hello.output()), hello.output())

    def test_request_reply_answers_every_call_and_times_out_without_responder(self):
        program = Program("request_reply.py", "--queue", unique("py-squares"), "--count", "3")
        self.assertEqual(program.wait(60), 0, "\n".join(program.output()))
        out = program.output()
        self.assertEqual([l for l in out if "squared" in l],
                         ["1 squared is 1", "2 squared is 4", "3 squared is 9"])
        self.assertTrue(any(l.startswith("no responder: DEADLINE_EXCEEDED") for l in out), out)

    def test_stream_replay_replays_and_resumes(self):
        program = Program("stream_replay.py", "--queue", unique("py-events"), "--count", "4")
        self.assertEqual(program.wait(60), 0, "\n".join(program.output()))
        out = program.output()
        self.assertEqual(len([l for l in out if l.startswith("replay: ")]), 4)
        self.assertIn("second replay is the same: True", out)
        resumed = [l for l in out if l.startswith("resumed after ")]
        self.assertEqual([l.split()[-2:] for l in resumed], [["event", "2"], ["event", "3"]])

    def test_campaign_exactly_one_elected(self):
        election = unique("py-campaign")
        a = Program("campaign.py", "--election", election, "--id", "a")
        a.wait_line(r"^elected token=\d+")
        b = Program("campaign.py", "--election", election, "--id", "b")
        b.wait_line(r"^following leader=a$")
        self.assertFalse(any(l.startswith("elected") for l in b.output()))
        self.assertEqual(a.terminate(), 0)
        self.assertIn("lost reason=RESIGNED", a.output())
        b.wait_line(r"^elected token=\d+")
        token = lambda p: int([l for l in p.output() if l.startswith("elected")][0].split()[1][6:])
        self.assertGreater(token(b), token(a))
        self.assertEqual(b.terminate(), 0)

    def test_config_prints_value_and_changes(self):
        key = unique("py-example") + "/greeting"
        client = warren.connect(ADDRESS)
        try:
            watch = Program("config.py", "--key", key, "--set", "first", "--changes", "2")
            watch.wait_line(r"^watching ")
            watch.wait_line(r"^value=first version=0$")
            client.put_config(key, "second")
            watch.wait_line(r"^value=second version=1$")
            client.put_config(key, "third")
            self.assertEqual(watch.wait(20), 0)
            self.assertIn("value=third version=2", watch.output())
        finally:
            client.config.DeleteConfig(warren.config_pb2.DeleteConfigRequest(
                key=key.split("/")[0], recursive=True))
            client.close()


if __name__ == "__main__":
    unittest.main()
