"""End-to-end: `cutover analyze --kafka` reads pairs recorded through the embedded broker.

The broker and the records come from tests/support/rec_emit (the recording
module's helper): pair i ("e2e-%05d") has a primary with lineage
catalog=v812; its shadow times out when i % 10 == 0 (no lineage), else it
answers with lineage catalog=v813. So every answered pair is
lineage-discarded and every timed-out one is a mismatch.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

BIN = os.environ.get("CUTOVER_BIN", "cutover")
EMIT = os.path.join(os.path.dirname(BIN), "tests", "rec_emit")
TOPIC = "pairs"
COUNT = 200


def analyze(*args, check=0):
    p = subprocess.run([BIN, "analyze"] + list(args) + ["--quiet"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=90)
    if check is not None and p.returncode != check:
        raise AssertionError("exit %d (want %d)\n%s" % (p.returncode, check, p.stderr))
    return p


def read(path):
    with open(path) as f:
        return f.read()


def load(d):
    with open(os.path.join(d, "summary.json")) as f:
        return json.load(f)


def start_emit(cls, topic, count, *extra):
    """Starts rec_emit (the embedded broker with `count` pairs in `topic`) for a test class."""
    cls.tmp = tempfile.mkdtemp(prefix="an-kafka-")
    cls.emit = subprocess.Popen([EMIT, "--topic", topic, "--count", str(count)] + list(extra),
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    cls.bootstrap = None
    try:
        for _ in range(2):
            line = cls.emit.stdout.readline()
            if line.startswith("bootstrap="):
                cls.bootstrap = line.strip().split("=", 1)[1]
            if line.startswith("delivered="):
                assert line.split()[0] == "delivered=%d" % count, line
    except Exception:
        stop_emit(cls)
        raise
    if cls.bootstrap is None:
        stop_emit(cls)
        raise AssertionError("rec_emit printed no bootstrap")


def stop_emit(cls):
    if cls.emit.poll() is None:
        cls.emit.send_signal(signal.SIGTERM)
        try:
            cls.emit.wait(timeout=10)
        except subprocess.TimeoutExpired:
            cls.emit.kill()
            cls.emit.wait()
    shutil.rmtree(cls.tmp, ignore_errors=True)


@unittest.skipUnless(os.path.exists(EMIT), "needs tests/rec_emit (recording module)")
class AnalyzeKafkaTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        start_emit(cls, TOPIC, COUNT, "--partitions", "3")

    @classmethod
    def tearDownClass(cls):
        stop_emit(cls)

    def check_counts(self, s):
        self.assertEqual(s["records"], {"primary": COUNT, "shadow": COUNT})
        self.assertEqual(s["joined"], COUNT)
        self.assertEqual(s["lineage_discarded"], COUNT - COUNT // 10)
        self.assertEqual(s["lineage"], {"catalog": COUNT - COUNT // 10})
        self.assertEqual(s["mismatches"], COUNT // 10)
        self.assertEqual(s["matches"], 0)
        self.assertEqual(s["pass_fail"]["shadow"]["fail"], COUNT // 10)

    def test_assign_all_partitions(self):
        out = os.path.join(self.tmp, "assign")
        analyze("--kafka", self.bootstrap, "--topic", TOPIC, "--out", out)
        self.check_counts(load(out))

    def test_from_latest_and_until(self):
        out = os.path.join(self.tmp, "latest")
        analyze("--kafka", self.bootstrap, "--topic", TOPIC, "--from", "latest", "--out", out)
        self.assertEqual(load(out)["records"], {"primary": 0, "shadow": 0})
        out = os.path.join(self.tmp, "until")
        analyze("--kafka", self.bootstrap, "--topic", TOPIC, "--until", "2001-01-01T00:00:00Z",
                "--out", out)
        self.assertEqual(load(out)["joined"], 0)
        out = os.path.join(self.tmp, "fromtime")
        analyze("--kafka", self.bootstrap, "--topic", TOPIC, "--from", "2001-01-01T00:00:00Z",
                "--out", out)
        self.check_counts(load(out))
        out = os.path.join(self.tmp, "future")
        analyze("--kafka", self.bootstrap, "--topic", TOPIC, "--from", "2099-01-01T00:00:00Z",
                "--out", out)
        self.assertEqual(load(out)["joined"], 0)

    def test_group_commits_and_merge(self):
        # Members of one group run one after the other: the first reads every
        # partition and commits; the second starts at the committed offsets and
        # reads nothing. Their partial summaries merge to the single-process one.
        single = os.path.join(self.tmp, "single")
        analyze("--kafka", self.bootstrap, "--topic", TOPIC, "--out", single)
        parts = [os.path.join(self.tmp, "member%d" % i) for i in range(2)]
        for d in parts:
            # (a short session: the mock broker lets a closed member's session run out)
            analyze("--kafka", self.bootstrap, "--topic", TOPIC, "--group", "g1", "--out", d,
                    "--property", "session.timeout.ms=3000",
                    "--property", "heartbeat.interval.ms=500")
        self.check_counts(load(parts[0]))
        self.assertEqual(load(parts[1])["records"], {"primary": 0, "shadow": 0})
        merged = os.path.join(self.tmp, "merged")
        analyze("merge", "--out", merged, *parts)
        self.assertEqual(load(merged), load(single))

    def test_group_members_split_and_merge(self):
        # Two members started together split the partitions between them.
        # The exact merge holds when every record was read by exactly one
        # member. run_members makes both join the first generation; should a
        # rebalance still come after reading started, the mock coordinator
        # refuses commits and records may be read twice (the at-least-once
        # case of docs/analyzer.md), and the member says so on stderr. Only
        # then is the scenario run again, with a fresh group; any other
        # difference fails at once.
        single = os.path.join(self.tmp, "single2")
        analyze("--kafka", self.bootstrap, "--topic", TOPIC, "--out", single)
        refused = []
        for attempt in range(5):
            parts, errs = self.run_members("g2-%d" % attempt, "split%d-" % attempt)
            merged = os.path.join(self.tmp, "merged2-%d" % attempt)
            analyze("merge", "--out", merged, *parts)
            if load(merged) == load(single):
                return
            refusal = [e for e in errs if "offset commit failed" in e]
            if not refusal:
                self.assertEqual(load(merged), load(single), "\n".join(errs))
            # At least once: nothing is lost (some records may be read twice).
            m = load(merged)
            self.assertGreaterEqual(m["joined"] + m["duplicates"], COUNT)
            self.assertGreaterEqual(m["records"]["primary"], COUNT)
            refused.append(refusal)
        self.fail("every attempt had a refused commit:\n%s" % refused)

    def broker(self, sig, line):
        self.emit.send_signal(sig)
        got = self.emit.stdout.readline().strip()
        self.assertEqual(got, line)

    def run_members(self, group, prefix):
        """Runs two group members at once; returns their output dirs and stderr texts.

        "At once" is made reliable: the members start while the broker is
        down, and it comes back once both are retrying their connection
        (seen in librdkafka's broker debug log), so both join within the
        coordinator's initial rebalance delay even on a loaded machine."""
        parts = [os.path.join(self.tmp, "%s%d" % (prefix, i)) for i in range(2)]
        logs = [d + ".stderr" for d in parts]
        procs = []
        try:
            self.broker(signal.SIGUSR1, "broker down")
            try:
                for d, log in zip(parts, logs):
                    with open(log, "w") as f:
                        procs.append(subprocess.Popen(
                            [BIN, "analyze", "--kafka", self.bootstrap, "--topic", TOPIC,
                             "--group", group, "--out", d, "--quiet",
                             "--property", "session.timeout.ms=3000",
                             "--property", "heartbeat.interval.ms=500",
                             "--property", "reconnect.backoff.max.ms=100",
                             "--property", "debug=broker", "--property", "log_level=7"],
                            stdout=subprocess.DEVNULL, stderr=f))
                deadline = time.monotonic() + 60
                while not all("|FAIL|" in read(log) for log in logs):
                    for p in procs:
                        self.assertIsNone(p.poll(), "a member exited while the broker was down")
                    self.assertLess(time.monotonic(), deadline, "members never tried the broker")
                    time.sleep(0.05)
            finally:
                self.broker(signal.SIGUSR2, "broker up")
            for p, log in zip(procs, logs):
                p.wait(timeout=90)
                self.assertEqual(p.returncode, 0, read(log)[-4000:])
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        return parts, [read(log) for log in logs]

    def test_unreachable_broker_fails(self):
        p = analyze("--kafka", "127.0.0.1:1", "--topic", TOPIC, "--out",
                    os.path.join(self.tmp, "x"), check=1)
        self.assertIn("topic pairs", p.stderr)


# A broker of its own, and a class name that sorts after AnalyzeKafkaTest:
# the consumer-group tests there are sensitive to other traffic and timing.
@unittest.skipUnless(os.path.exists(EMIT), "needs tests/rec_emit (recording module)")
class AnalyzeKafkaTestSkipped(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        start_emit(cls, "one", 1, "--extra-topic", "junk")

    @classmethod
    def tearDownClass(cls):
        stop_emit(cls)

    def test_skipped_messages_are_named(self):
        # Messages that are not Pair records are counted, and the first few are
        # named by partition and offset with the reason.
        from confluent_kafka import Producer
        prod = Producer({"bootstrap.servers": self.bootstrap})
        values = (b"hello, this is not an Avro record", b"\xc3\x01" + b"\x00" * 8 + b"\x02",
                  b"\xc3\x01")
        for value in values:
            prod.produce("junk", value=value, partition=0)
        self.assertEqual(prod.flush(15), 0)
        p = analyze("--kafka", self.bootstrap, "--topic", "junk", "--out",
                    os.path.join(self.tmp, "junk"))
        self.assertIn("skipped 3 message(s)", p.stderr)
        self.assertIn("topic junk partition 0 offset 0: not an Avro single-object record",
                      p.stderr)
        self.assertIn("offset 1: written with another schema", p.stderr)
        self.assertIn("offset 2: too short", p.stderr)


if __name__ == "__main__":
    unittest.main()
