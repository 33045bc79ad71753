"""End-to-end: the proxy mirrors requests to shadow backends and records every
pair to the embedded Kafka broker; kcat and a Python consumer (python3-avro,
python3-confluent-kafka) read exactly one record per request. A shadow that
is 500 ms slow or down changes nothing for the client; writes are not
mirrored unless listed; a 10 MiB body is mirrored with bounded memory."""
import hashlib
import http.client
import http.server
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cutover_e2e as e2e  # noqa: E402

import avro.io  # noqa: E402
import avro.schema  # noqa: E402
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition  # noqa: E402

FINGERPRINT = 0x2A31BA373A3065B2  # CRC-64-AVRO of pair.avsc's canonical form (docs/recording.md)
PARTITIONS = 4


class SlowHandler(http.server.BaseHTTPRequestHandler):
    """A shadow that answers after 500 ms."""
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        time.sleep(0.5)
        body = b'{"backend":"slow"}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class MirrorRecordingTest(e2e.CutoverTestCase):
    def setUp(self):
        super().setUp()
        self.legacy = self.start_demo_backend("legacy", lineage="catalog=v812;streams=9f3a0c")
        self.modern = self.start_demo_backend("modern", lineage="catalog=v813;streams=9f3a0c")
        self.slow = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowHandler)
        self.slow.daemon_threads = True
        threading.Thread(target=self.slow.serve_forever, daemon=True).start()
        self.addCleanup(self.slow.server_close)
        self.addCleanup(self.slow.shutdown)
        self.port = e2e.free_port()
        down = "127.0.0.1:%d" % e2e.free_port()  # nothing listens there
        cfg = e2e.proxy_config(
            self.port,
            {"legacy": self.legacy, "modern": self.modern,
             "slow": ("127.0.0.1:%d" % self.slow.server_address[1], "http1"),
             "down": (down, "http1")},
            routes=[
                {"name": "upload", "match": {"path_prefix": "/upload"}, "backend": "legacy",
                 "record": True, "mirror": [{"backend": "modern", "methods": ["POST"]}]},
                {"name": "api", "backend": "legacy", "record": True, "dial": "cart",
                 "mirror": ["modern", "slow", {"backend": "down"}]},
            ],
            dials={"cart": {"key": "header:x-device-id", "percent": "0%", "to": "modern"}},
            recording={"kafka": {"brokers": "embedded", "topic": "cutover.pairs"},
                       "lineage_headers": ["x-lineage"],
                       "max_body": "4KiB",
                       "spill": {"dir": os.path.join(self.tmp, "spill")}})
        self.proxy = self.start_proxy(self.write_config(cfg), wait_ports=[self.port])
        deadline = time.time() + 10
        m = None
        while time.time() < deadline and not m:
            m = re.search(r"kafka bootstrap: (\S+) \(embedded\)", self.proxy.stdout_text())
            time.sleep(0.05)
        self.assertIsNotNone(m, "no bootstrap line on stdout")
        self.bootstrap = m.group(1)
        with open(os.path.join(e2e.SOURCE_DIR, "replay", "schemas", "pair.avsc")) as f:
            self.schema = avro.schema.parse(f.read())

    def request(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        t0 = time.monotonic()
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data, time.monotonic() - t0

    def read_records(self, want, timeout=30):
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "e2e",
                      "enable.auto.commit": False})
        try:
            c.assign([TopicPartition("cutover.pairs", p, OFFSET_BEGINNING)
                      for p in range(PARTITIONS)])
            recs = []
            deadline = time.time() + timeout
            while len(recs) < want and time.time() < deadline:
                m = c.poll(0.2)
                if m is None or m.error():
                    continue
                v = m.value()
                self.assertEqual(v[:2], b"\xc3\x01")
                self.assertEqual(int.from_bytes(v[2:10], "little"), FINGERPRINT)
                rec = avro.io.DatumReader(self.schema).read(
                    avro.io.BinaryDecoder(io.BytesIO(v[10:])))
                self.assertEqual(m.key().decode(), rec["correlation_id"])
                recs.append(rec)
            return recs
        finally:
            c.close()

    def kcat_count(self):
        out = subprocess.run(["kcat", "-C", "-b", self.bootstrap, "-t", "cutover.pairs", "-e",
                              "-q", "-f", "%k\\n"], capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        return [k for k in out.stdout.split("\n") if k]

    def test_mirror_and_record(self):
        n = 20
        latencies = []
        for i in range(n):
            status, body, dt = self.request(
                "GET", "/items/%d?x=1" % i,
                headers={"x-request-id": "e2e-%03d" % i, "authorization": "Bearer s3cret",
                         "x-device-id": "dev-%d" % i})
            self.assertEqual(status, 200)
            self.assertEqual(json.loads(body)["backend"], "legacy")
            latencies.append(dt)
        # The 500 ms shadow and the dead one do not delay the client.
        latencies.sort()
        self.assertLess(latencies[len(latencies) // 2], 0.2, latencies)
        self.assertLess(latencies[-1], 0.45, latencies)
        # A write on the api route is recorded but not mirrored (writes are opt-in).
        status, _, _ = self.request("POST", "/items", body=b"{}",
                                    headers={"x-request-id": "e2e-post",
                                             "content-type": "application/json"})
        self.assertEqual(status, 200)

        recs = self.read_records(n + 1)
        by_id = {r["correlation_id"]: r for r in recs}
        self.assertEqual(len(recs), n + 1)
        self.assertEqual(len(by_id), n + 1)
        time.sleep(0.5)
        keys = self.kcat_count()
        self.assertEqual(len(keys), n + 1)  # exactly one record per request
        for i in range(n):
            r = by_id["e2e-%03d" % i]
            self.assertEqual(r["route"], "api")
            self.assertEqual(r["device_key"], "dev-%d" % i)
            self.assertEqual(r["decision"]["via"], "dial")
            self.assertEqual(r["decision"]["name"], "cart")
            self.assertEqual(r["request"]["path"], "/items/%d" % i)
            self.assertEqual(r["request"]["query"], "x=1")
            hdrs = {h["name"]: h["value"] for h in r["request"]["headers"]}
            self.assertEqual(hdrs["authorization"], "<redacted>")
            p = r["primary"]
            self.assertEqual((p["backend"], p["status"]), ("legacy", 200))
            self.assertEqual(p["lineage"], {"catalog": "v812", "streams": "9f3a0c"})
            self.assertEqual(p["body_sha256"], hashlib.sha256(p["body"]).hexdigest())
            shadows = {s["backend"]: s for s in r["shadows"]}
            self.assertEqual(set(shadows), {"modern", "slow", "down"})
            m = shadows["modern"]
            self.assertEqual(m["status"], 200)
            self.assertEqual(json.loads(m["body"])["backend"], "modern")
            self.assertEqual(m["lineage"]["catalog"], "v813")
            self.assertNotEqual(m["body_sha256"], p["body_sha256"])
            s = shadows["slow"]
            self.assertEqual(s["status"], 200)
            self.assertGreaterEqual(s["latency_us"], 500000)
            self.assertIsNone(s["error"])
            d = shadows["down"]
            self.assertEqual((d["status"], d["error"]), (0, "connect"))
        post = by_id["e2e-post"]
        self.assertEqual(post["request"]["method"], "POST")
        self.assertEqual(post["shadows"], [])

    def test_recording_threads_yield_to_workers(self):
        """recording.nice (default 10): the recording, delivery, librdkafka and embedded broker
        threads run at a lower CPU priority than the threads serving clients."""
        def threads():
            out = []
            for tid in os.listdir("/proc/%d/task" % self.proxy.pid):
                try:
                    with open("/proc/%d/task/%s/stat" % (self.proxy.pid, tid)) as f:
                        stat = f.read()
                except FileNotFoundError:
                    continue
                comm = stat[stat.index("(") + 1:stat.rindex(")")]
                fields = stat[stat.rindex(")") + 2:].split()
                out.append((int(tid), comm, int(fields[16])))  # field 19: nice
            return out
        status, _, _ = self.request("GET", "/items/nice", headers={"x-request-id": "nice-1"})
        self.assertEqual(status, 200)
        ts = threads()
        base = next(n for tid, _, n in ts if tid == self.proxy.pid)
        rdk = [(c, n) for _, c, n in ts if c.startswith("rdk:")]
        self.assertTrue(any(c == "rdk:mock" for c, _ in rdk), ts)
        self.assertTrue(any(c.startswith("rdk:broker") for c, _ in rdk), ts)
        for c, n in rdk:
            self.assertEqual(n, min(base + 10, 19), "%s runs at nice %d" % (c, n))
        lowered = [n for _, c, n in ts if n == min(base + 10, 19)]
        normal = [n for _, c, n in ts if n == base]
        # the main thread, the worker and the admin side keep the workers' priority; besides
        # librdkafka's, the recording, delivery-report, spill and comparison threads are lowered
        self.assertGreaterEqual(len(normal), 2, ts)
        self.assertGreaterEqual(len(lowered), len(rdk) + 3, ts)
        self.assertEqual(len(self.read_records(1)), 1)

    def test_large_body_bounded_memory(self):
        size = 10 * 1024 * 1024
        path = os.path.join(self.tmp, "big.bin")
        e2e.write_random_file(path, size)
        with open(path, "rb") as f:
            data = f.read()
        digest = hashlib.sha256(data).hexdigest()
        status, body, _ = self.request("POST", "/upload?echo=1", body=data,
                                       headers={"x-request-id": "e2e-big",
                                                "content-type": "application/octet-stream"})
        self.assertEqual(status, 200)
        recs = self.read_records(1)
        self.assertEqual(len(recs), 1)
        r = recs[0]
        self.assertEqual(r["request"]["body_size"], size)
        self.assertTrue(r["request"]["body_truncated"])
        self.assertEqual(len(r["request"]["body"]), 4096)
        (m,) = r["shadows"]
        self.assertEqual(m["backend"], "modern")
        # The proxy did not hold the body in memory (twice or even once).
        self.assertLess(self.proxy.peak_rss_kib(), (160 if e2e.sanitized() else 80) * 1024)
        if m["error"] == "overflow" and e2e.sanitized():
            # Under the sanitizers the shadow may fall 4 MiB behind the primary;
            # it is then given up by design (the client is paced by the primary only).
            return
        self.assertEqual(m["status"], 200, m["error"])
        echo = json.loads(m["body"])
        # The shadow received the whole body, byte for byte.
        self.assertIn(digest, json.dumps(echo))
        self.assertIn(str(size), json.dumps(echo))


class BrokerOutageTest(e2e.CutoverTestCase):
    """The broker goes down while traffic flows: records spill; after the
    proxy stops, `cutover spill drain` delivers them; nothing is lost."""

    def test_outage_spill_drain(self):
        emit_bin = os.path.join(os.path.dirname(os.path.abspath(e2e.CUTOVER_BIN)), "tests",
                                "rec_emit")
        broker = self.start([emit_bin, "--topic", "cutover.pairs", "--count", "0",
                             "--partitions", str(PARTITIONS)], name="broker")
        deadline = time.time() + 10
        m = None
        while time.time() < deadline and not m:
            m = re.search(r"bootstrap=(\S+)", broker.stdout_text())
            time.sleep(0.05)
        self.assertIsNotNone(m)
        bootstrap = m.group(1)
        legacy = self.start_demo_backend("legacy")
        port = e2e.free_port()
        spill = os.path.join(self.tmp, "spill")
        admin_port = e2e.free_port()
        token_file = os.path.join(self.tmp, "run", "admin.token")
        cfg = e2e.proxy_config(
            port, {"legacy": legacy},
            routes=[{"name": "api", "backend": "legacy", "record": True}],
            recording={"kafka": {"brokers": bootstrap, "topic": "cutover.pairs",
                                 "properties": {"message.timeout.ms": "1000"}},
                       "spill": {"dir": spill}},
            admin={"listen": "127.0.0.1:%d" % admin_port, "token_file": token_file})
        proxy = self.start_proxy(self.write_config(cfg), wait_ports=[port, admin_port])

        def counter(name):
            return e2e.scrape_metrics(admin_port, token_file).get(name, 0.0)

        def send(lo, hi):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            for i in range(lo, hi):
                c.request("GET", "/o/%d" % i, headers={"x-request-id": "out-%03d" % i})
                r = c.getresponse()
                r.read()
                self.assertEqual(r.status, 200)
            c.close()

        send(0, 30)
        e2e.wait_until(lambda: counter("cutover_record_delivered_total") >= 30,
                       what="the first 30 records to be delivered")
        broker.signal(signal.SIGUSR1)
        broker_wait(broker, "broker down")
        send(30, 60)      # the client sees nothing of the outage
        # past message.timeout.ms these 30 records fail and spill (the only
        # ones that can: the first 30 were delivered)
        e2e.wait_until(lambda: counter("cutover_record_spilled_total") >= 30,
                       what="the outage's records to spill")
        broker.signal(signal.SIGUSR2)
        broker_wait(broker, "broker up")
        send(60, 80)
        self.assertEqual(proxy.stop(grace=20), 0)  # SIGTERM: queued records delivered or spilled
        spilled = [f for f in os.listdir(spill) if f.endswith(".avro")]
        self.assertGreater(len(spilled), 0)
        drain = self.cutover("spill", "drain", spill, "--brokers", bootstrap, timeout=120)
        self.assertEqual(drain.returncode, 0, drain.stderr)
        m = re.search(r"drained (\d+) records", drain.stdout)
        self.assertIsNotNone(m, drain.stdout)
        self.assertGreaterEqual(int(m.group(1)), 30)  # at least the outage's records
        self.assertEqual([f for f in os.listdir(spill) if f.endswith(".avro")], [])
        out = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", "cutover.pairs", "-e", "-q",
                              "-f", "%k\\n"], capture_output=True, text=True, timeout=60)
        keys = set(k for k in out.stdout.split("\n") if k)
        # Sent 80, read back 80 distinct correlation ids: zero lost.
        self.assertEqual(keys, {"out-%03d" % i for i in range(80)})


def broker_wait(proc, line, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if line in proc.stdout_text():
            return
        time.sleep(0.05)
    raise AssertionError("broker did not print %r" % line)


if __name__ == "__main__":
    e2e.main()
