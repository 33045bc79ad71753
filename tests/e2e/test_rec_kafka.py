"""End-to-end: records published through the embedded broker are read back by
kcat and by a Python consumer that decodes the Avro single-object encoding
with replay/schemas/pair.avsc; spill files are standard Avro container files
and `cutover spill drain` publishes them."""
import datetime
import hashlib
import io
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import avro.datafile
import avro.io
import avro.schema
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

CUTOVER_BIN = os.environ.get("CUTOVER_BIN", "build/cutover")
SOURCE_DIR = os.environ.get("CUTOVER_SOURCE_DIR", ".")
EMIT_BIN = os.path.join(os.path.dirname(CUTOVER_BIN), "tests", "rec_emit")
SCHEMA_PATH = os.path.join(SOURCE_DIR, "replay", "schemas", "pair.avsc")
TOPIC = "cutover.pairs"
DRAIN_TOPIC = "drained"
DRAIN_TOPIC2 = "drained-cfg"
PARTITIONS = 3
COUNT = 300
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

# ---- Parsing Canonical Form and CRC-64-AVRO, written from the Avro specification ----

PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def _full(name, ns):
    return name if ("." in name or not ns) else ns + "." + name


def canonical(s, ns="", seen=None):
    seen = set() if seen is None else seen
    if isinstance(s, str):
        return json.dumps(s if s in PRIMITIVES else _full(s, ns))
    if isinstance(s, list):
        return "[" + ",".join(canonical(x, ns, seen) for x in s) + "]"
    t = s["type"]
    if not isinstance(t, str):
        return canonical(t, ns, seen)
    if t in PRIMITIVES:
        return json.dumps(t)
    if t in ("record", "error", "enum", "fixed"):
        name = s["name"]
        full = _full(name, "" if "." in name else s.get("namespace", ns))
        if full in seen:
            return json.dumps(full)
        seen.add(full)
        inner = full.rsplit(".", 1)[0] if "." in full else ""
        out = '{"name":%s,"type":%s' % (json.dumps(full), json.dumps(t))
        if t in ("record", "error"):
            out += ',"fields":[' + ",".join(
                '{"name":%s,"type":%s}' % (json.dumps(f["name"]), canonical(f["type"], inner, seen))
                for f in s["fields"]) + "]"
        elif t == "enum":
            out += ',"symbols":[' + ",".join(json.dumps(x) for x in s["symbols"]) + "]"
        else:
            out += ',"size":%d' % s["size"]
        return out + "}"
    if t == "array":
        return '{"type":"array","items":%s}' % canonical(s["items"], ns, seen)
    if t == "map":
        return '{"type":"map","values":%s}' % canonical(s["values"], ns, seen)
    return canonical(t, ns, seen)


EMPTY64 = 0xC15D213AA4D7A795
TABLE = []
for _i in range(256):
    _fp = _i
    for _ in range(8):
        _fp = (_fp >> 1) ^ (EMPTY64 & -(_fp & 1))
    TABLE.append(_fp)


def rabin64(data):
    fp = EMPTY64
    for b in data:
        fp = (fp >> 8) ^ TABLE[(fp ^ b) & 0xFF]
    return fp


def strip_logical(s):
    """The schema without logicalType attributes (python3-avro 1.11.1 keeps
    {"type":"long"} for an annotated primitive in its canonical form, where
    the specification asks for "long")."""
    if isinstance(s, dict):
        return {k: strip_logical(v) for k, v in s.items() if k != "logicalType"}
    if isinstance(s, list):
        return [strip_logical(x) for x in s]
    return s


def wait_line(proc, prefix, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r, _, _ = select.select([proc.stdout], [], [], 0.2)
        if r:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith(prefix):
                return line.strip()
        if proc.poll() is not None:
            break
    raise AssertionError("no line starting with %r from %s" % (prefix, proc.args))


class RecordingE2E(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(SCHEMA_PATH) as f:
            cls.schema_text = f.read()
        cls.schema_json = json.loads(cls.schema_text)
        cls.schema = avro.schema.parse(cls.schema_text)
        cls.fingerprint = rabin64(canonical(cls.schema_json).encode())
        cls.tmp = tempfile.mkdtemp(prefix="cutover-e2e-rec-")
        cls.emit = subprocess.Popen(
            [EMIT_BIN, "--topic", TOPIC, "--count", str(COUNT), "--partitions", str(PARTITIONS),
             "--extra-topic", DRAIN_TOPIC, "--extra-topic", DRAIN_TOPIC2],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            cls.bootstrap = wait_line(cls.emit, "bootstrap=", 20).split("=", 1)[1]
            cls.emit_result = wait_line(cls.emit, "delivered=", 60)
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        killed = False
        if cls.emit.poll() is None:
            cls.emit.send_signal(signal.SIGTERM)
            try:
                cls.emit.wait(timeout=20)
            except subprocess.TimeoutExpired:
                cls.emit.kill()
                cls.emit.wait()
                killed = True
        err = cls.emit.stderr.read()
        cls.emit.stdout.close()
        cls.emit.stderr.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        # A clean stop: the broker and the sink shut down (and, under the
        # sanitizers, nothing leaked).
        if killed or cls.emit.returncode != 0:
            raise AssertionError("rec_emit exited with %s: %s" % (cls.emit.returncode, err[-2000:]))

    # ---- helpers ----

    def kcat_keys(self, topic):
        out = subprocess.run(
            ["kcat", "-C", "-b", self.bootstrap, "-t", topic, "-e", "-q", "-f", "%k\\n"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        return [k for k in out.stdout.split("\n") if k]

    def consume(self, topic, want, timeout=30):
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "e2e",
                      "enable.auto.commit": False, "enable.partition.eof": False})
        try:
            c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
            msgs = []
            deadline = time.time() + timeout
            while len(msgs) < want and time.time() < deadline:
                m = c.poll(0.2)
                if m is None or m.error():
                    continue
                msgs.append((m.key(), m.value(), m.partition()))
            return msgs
        finally:
            c.close()

    def decode(self, value):
        self.assertEqual(value[:2], b"\xc3\x01", "single-object marker")
        self.assertEqual(int.from_bytes(value[2:10], "little"), self.fingerprint)
        reader = avro.io.DatumReader(self.schema)
        return reader.read(avro.io.BinaryDecoder(io.BytesIO(value[10:])))

    def check_record(self, key, rec):
        i = int(key.decode().split("-")[1])
        self.assertEqual(rec["correlation_id"], key.decode())
        t = rec["time_us"]  # python3-avro applies the timestamp-micros logical type
        if isinstance(t, datetime.datetime):
            t = (t - EPOCH) // datetime.timedelta(microseconds=1)
        self.assertEqual(t, 1700000000000000 + i)
        self.assertEqual(rec["kind"], "PAIR")
        self.assertEqual(rec["source"], "proxy")
        self.assertEqual(rec["route"], "api")
        self.assertEqual(rec["decision"], {"via": "dial", "bucket": str(i % 1000)})
        self.assertEqual(rec["device_key"], "dev-%d" % i)
        req = rec["request"]
        self.assertEqual((req["method"], req["authority"], req["path"], req["query"]),
                         ("GET", "example.com", "/items/%d" % i, "x=1"))
        self.assertEqual(req["headers"], [{"name": "authorization", "value": "<redacted>"},
                                          {"name": "x-trace", "value": "t1"}])
        self.assertEqual(req["body"], b"request-body" if i % 2 else b"")
        self.assertEqual(req["body_size"], 12 if i % 2 else 0)
        self.assertFalse(req["body_truncated"])
        p = rec["primary"]
        body = ('{"id":%d}' % i).encode()
        self.assertEqual((p["backend"], p["host"], p["status"]), ("old", "127.0.0.1:9001", 200))
        self.assertEqual(p["body"], body)
        self.assertEqual(p["body_size"], len(body))
        self.assertEqual(p["body_sha256"], hashlib.sha256(body).hexdigest())
        self.assertEqual(p["latency_us"], 1000 + i)
        self.assertIsNone(p["error"])
        self.assertEqual(p["lineage"], {"catalog": "v812", "streams": "9f3a0c"})
        self.assertEqual(len(rec["shadows"]), 1)
        s = rec["shadows"][0]
        self.assertEqual(s["backend"], "new")
        if i % 10 == 0:
            self.assertEqual((s["status"], s["error"], s["body_size"]), (0, "timeout", 0))
        else:
            full = ('{"id":%d,"extra":"a long shadow body"}' % i).encode()
            self.assertEqual(s["status"], 200)
            self.assertTrue(s["body_truncated"])
            self.assertEqual(s["body"], full[:24])
            self.assertEqual(s["body_size"], len(full))
            self.assertEqual(s["body_sha256"], hashlib.sha256(full).hexdigest())
            self.assertEqual(s["headers"][0], {"name": "set-cookie", "value": "<redacted>"})
            self.assertEqual(s["lineage"], {"catalog": "v813"})
        self.assertIsNone(rec["primary_repeat"])

    # ---- tests ----

    def test_fingerprint_matches_python_avro(self):
        ours = canonical(self.schema_json)
        lib = avro.schema.parse(json.dumps(strip_logical(self.schema_json))).canonical_form
        self.assertEqual(ours, lib)
        self.assertEqual(self.fingerprint, 0x2A31BA373A3065B2)
        self.assertEqual(rabin64(b'"int"'), 0x7275D51A3F395C8F)  # specification test vector

    def test_every_record_once_with_kcat(self):
        self.assertEqual(self.emit_result, "delivered=%d spilled=0 dropped=0" % COUNT)
        keys = self.kcat_keys(TOPIC)
        self.assertEqual(len(keys), COUNT)
        self.assertEqual(sorted(keys), ["e2e-%05d" % i for i in range(COUNT)])

    def test_python_consumer_decodes_records(self):
        msgs = self.consume(TOPIC, COUNT)
        self.assertEqual(len(msgs), COUNT)
        part_of = {}
        for key, value, partition in msgs:
            self.check_record(key, self.decode(value))
            part_of.setdefault(key, set()).add(partition)
        self.assertEqual(len(part_of), COUNT)
        self.assertTrue(all(len(p) == 1 for p in part_of.values()))

    def test_spill_files_and_drain(self):
        n = 120
        spill = os.path.join(self.tmp, "spill")
        os.mkdir(spill)
        out = subprocess.run([EMIT_BIN, "--spill-only", spill, "--count", str(n)],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), "spilled=%d" % n)
        files = sorted(f for f in os.listdir(spill) if f.endswith(".avro"))
        self.assertGreaterEqual(len(files), 2)  # rotated at 16 KiB
        # Standard Avro container files with the deflate codec: python3-avro reads them.
        ids = []
        for f in files:
            with open(os.path.join(spill, f), "rb") as fh:
                r = avro.datafile.DataFileReader(fh, avro.io.DatumReader())
                self.assertEqual(r.get_meta("avro.codec"), b"deflate")
                ids += [rec["correlation_id"] for rec in r]
                r.close()
        self.assertEqual(ids, ["e2e-%05d" % i for i in range(n)])

        ls = subprocess.run([CUTOVER_BIN, "spill", "ls", spill], capture_output=True, text=True,
                            timeout=30)
        self.assertEqual(ls.returncode, 0, ls.stderr)
        self.assertIn("%d files, %d records" % (len(files), n), ls.stdout)
        drain = subprocess.run(
            [CUTOVER_BIN, "spill", "drain", spill, "--brokers", self.bootstrap,
             "--topic", DRAIN_TOPIC], capture_output=True, text=True, timeout=120)
        self.assertEqual(drain.returncode, 0, drain.stderr)
        self.assertIn("drained %d records from %d files; 0 files left" % (n, len(files)),
                      drain.stdout)
        self.assertEqual([f for f in os.listdir(spill) if f.endswith(".avro")], [])
        keys = self.kcat_keys(DRAIN_TOPIC)
        self.assertEqual(sorted(keys), ["e2e-%05d" % i for i in range(n)])
        for key, value, _ in self.consume(DRAIN_TOPIC, n):
            self.check_record(key, self.decode(value))
        # Draining an empty directory again is a no-op.
        again = subprocess.run(
            [CUTOVER_BIN, "spill", "drain", spill, "--brokers", self.bootstrap,
             "--topic", DRAIN_TOPIC], capture_output=True, text=True, timeout=60)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("drained 0 records from 0 files", again.stdout)

    def test_drain_from_config(self):
        n = 25
        spill = os.path.join(self.tmp, "spill-cfg")
        os.mkdir(spill)
        out = subprocess.run([EMIT_BIN, "--spill-only", spill, "--count", str(n)],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        cfg = os.path.join(self.tmp, "cutover.yaml")
        with open(cfg, "w") as f:
            f.write('listeners: [ { name: p, listen: "127.0.0.1:8080" } ]\n'
                    'backends:\n  a: { hosts: ["127.0.0.1:9001"] }\n'
                    'routes: [ { name: r, backend: a } ]\n'
                    'recording:\n'
                    '  kafka:\n'
                    '    brokers: "%s"\n'
                    '    topic: %s\n'
                    '    properties: { message.timeout.ms: "1" }\n'
                    '  spill: { dir: "%s" }\n' % (self.bootstrap, DRAIN_TOPIC2, spill))
        # --property wins over the config's (1 ms would time every record out).
        drain = subprocess.run(
            [CUTOVER_BIN, "spill", "drain", "-c", cfg, "--property", "message.timeout.ms=30000"],
            capture_output=True, text=True, timeout=120)
        self.assertEqual(drain.returncode, 0, drain.stderr)
        self.assertIn("drained %d records" % n, drain.stdout)
        self.assertEqual(sorted(self.kcat_keys(DRAIN_TOPIC2)), ["e2e-%05d" % i for i in range(n)])

    def test_drain_usage(self):
        out = subprocess.run([CUTOVER_BIN, "spill", "drain", self.tmp], capture_output=True,
                             text=True, timeout=30)
        self.assertEqual(out.returncode, 2)
        self.assertIn("--brokers", out.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
