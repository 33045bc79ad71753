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
import threading
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


def load(d):
    with open(os.path.join(d, "summary.json")) as f:
        return json.load(f)


@unittest.skipUnless(os.path.exists(EMIT), "needs tests/rec_emit (recording module)")
class AnalyzeKafkaTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="an-kafka-")
        cls.emit = subprocess.Popen([EMIT, "--topic", TOPIC, "--count", str(COUNT),
                                     "--partitions", "3"], stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True)
        cls.bootstrap = None
        try:
            for _ in range(2):
                line = cls.emit.stdout.readline()
                if line.startswith("bootstrap="):
                    cls.bootstrap = line.strip().split("=", 1)[1]
                if line.startswith("delivered="):
                    assert line.split()[0] == "delivered=%d" % COUNT, line
        except Exception:
            cls.tearDownClass()
            raise
        if cls.bootstrap is None:
            cls.tearDownClass()
            raise AssertionError("rec_emit printed no bootstrap")

    @classmethod
    def tearDownClass(cls):
        if cls.emit.poll() is None:
            cls.emit.send_signal(signal.SIGTERM)
            try:
                cls.emit.wait(timeout=10)
            except subprocess.TimeoutExpired:
                cls.emit.kill()
                cls.emit.wait()
        shutil.rmtree(cls.tmp, ignore_errors=True)

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

    def test_group_members_merge_exactly(self):
        single = os.path.join(self.tmp, "single")
        analyze("--kafka", self.bootstrap, "--topic", TOPIC, "--out", single)
        parts = [os.path.join(self.tmp, "member%d" % i) for i in range(2)]
        errors = []

        def member(d):
            try:
                analyze("--kafka", self.bootstrap, "--topic", TOPIC, "--group", "g1", "--out", d)
            except Exception as e:  # reported by the main thread
                errors.append(e)

        threads = [threading.Thread(target=member, args=(d,)) for d in parts]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        self.assertEqual(errors, [])
        merged = os.path.join(self.tmp, "merged")
        analyze("merge", "--out", merged, *parts)
        self.assertEqual(load(merged), load(single))
        self.check_counts(load(merged))

    def test_unreachable_broker_fails(self):
        p = analyze("--kafka", "127.0.0.1:1", "--topic", TOPIC, "--out",
                    os.path.join(self.tmp, "x"), check=1)
        self.assertIn("topic pairs", p.stderr)


if __name__ == "__main__":
    unittest.main()
