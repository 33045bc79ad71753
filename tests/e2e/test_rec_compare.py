"""End-to-end: recording metrics in /metrics are exact after traffic, and a
route with `compare: live` records only the pairs whose shadow answered
differently, counting matches and mismatches."""
import http.client
import io
import json
import os
import re
import signal
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cutover_e2e as e2e  # noqa: E402

import avro.io  # noqa: E402
import avro.schema  # noqa: E402
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition  # noqa: E402

PARTITIONS = 4
TOPIC = "cutover.pairs"


class RecordingMetricsCase(e2e.CutoverTestCase):
    def config(self, routes):
        return e2e.proxy_config(
            self.port, {"legacy": self.legacy, "modern": self.modern}, routes=routes,
            admin={"listen": "127.0.0.1:%d" % self.admin_port, "token_file": self.token_file},
            recording={"kafka": {"brokers": "embedded", "topic": TOPIC},
                       "spill": {"dir": os.path.join(self.tmp, "spill")}})

    def start_all(self, routes):
        self.legacy = self.start_demo_backend("legacy")
        self.modern = self.start_demo_backend("modern")
        self.port = e2e.free_port()
        self.admin_port = e2e.free_port()
        self.token_file = os.path.join(self.tmp, "run", "admin.token")
        cfg = self.config(routes)
        self.proxy = self.start_proxy(self.write_config(cfg),
                                      wait_ports=[self.port, self.admin_port])
        m = None
        deadline = time.time() + 10
        while time.time() < deadline and not m:
            m = re.search(r"kafka bootstrap: (\S+) \(embedded\)", self.proxy.stdout_text())
            time.sleep(0.05)
        self.assertIsNotNone(m, "no bootstrap line on stdout")
        self.bootstrap = m.group(1)

    def get(self, path, rid):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request("GET", path, headers={"x-request-id": rid})
        r = c.getresponse()
        body = r.read()
        c.close()
        self.assertEqual(r.status, 200)
        self.assertEqual(json.loads(body)["backend"], "legacy")

    def reload(self, method="POST", path="/reload"):
        with open(self.token_file) as f:
            token = f.read().strip()
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.admin_port, path),
                                     method=method, headers={"Authorization": "Bearer " + token})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read().decode())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read().decode())

    def metrics(self):
        return e2e.scrape_metrics(self.admin_port, self.token_file)

    def wait_metrics(self, done, timeout=20):
        """Scrapes until done(samples) holds (recording is asynchronous)."""
        deadline = time.time() + timeout
        while True:
            s = self.metrics()
            if done(s) or time.time() > deadline:
                return s
            time.sleep(0.1)

    def read_ids(self, want, timeout=20):
        with open(os.path.join(e2e.SOURCE_DIR, "replay", "schemas", "pair.avsc")) as f:
            schema = avro.schema.parse(f.read())
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "e2e",
                      "enable.auto.commit": False})
        ids = []
        try:
            c.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
            deadline = time.time() + timeout
            idle_until = None
            while time.time() < deadline:
                m = c.poll(0.2)
                if m is None or m.error():
                    if len(ids) >= want:
                        # keep reading a little: anything extra would be a bug
                        idle_until = idle_until or time.time() + 1.0
                        if time.time() > idle_until:
                            break
                    continue
                v = m.value()
                rec = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(v[10:])))
                ids.append(rec["correlation_id"])
        finally:
            c.close()
        return ids


class TestRecordingMetrics(RecordingMetricsCase):
    def test_exact_counts_after_traffic(self):
        self.start_all([{"name": "api", "backend": "legacy", "record": True,
                     "mirror": ["modern"]}])
        n = 15
        for i in range(n):
            self.get("/items/%d" % i, "m-%03d" % i)
        s = self.wait_metrics(lambda s: s.get("cutover_record_delivered_total") == n)
        self.assertEqual(s["cutover_record_produced_total"], n)
        self.assertEqual(s["cutover_record_delivered_total"], n)
        self.assertEqual(s["cutover_record_failed_total"], 0)
        self.assertEqual(s["cutover_record_spilled_total"], 0)
        for reason in ("spill_full", "queue_full", "io", "encode", "no_spill", "too_large"):
            self.assertEqual(s['cutover_record_dropped_total{reason="%s"}' % reason], 0)
        self.assertEqual(s["cutover_record_queue_depth"], 0)
        self.assertEqual(s["cutover_shadow_sent_total"], n)
        self.assertEqual(s['cutover_shadow_skipped_total{reason="inflight"}'], 0)
        self.assertEqual(s["cutover_shadow_failed_total"], 0)
        self.assertEqual(s["cutover_pairs_recorded_total"], n)
        self.assertEqual(s["cutover_compare_matches_total"], 0)
        self.assertEqual(len(self.read_ids(n)), n)


class TestLiveCompare(RecordingMetricsCase):
    def test_only_mismatches_recorded(self):
        # legacy and modern differ only in "backend" (ignored); an echo=1
        # response also lists the request headers, and the shadow's carry
        # x-cutover-shadow: those pairs differ.
        self.start_all([{"name": "api", "backend": "legacy", "mirror": ["modern"],
                     "compare": "live", "compare_ignore": ["$.backend"]}])
        same, differ = 12, 5
        want = []
        for i in range(same + differ):
            rid = "c-%03d" % i
            if i % 3 == 1 and len(want) < differ:
                self.get("/items/%d?echo=1" % i, rid)
                want.append(rid)
            else:
                self.get("/items/%d" % i, rid)
        self.assertEqual(len(want), differ)
        total = same + differ
        s = self.wait_metrics(lambda s: s.get("cutover_compare_matches_total", 0)
                              + s.get("cutover_compare_mismatches_total", 0) >= total
                              and s.get("cutover_record_delivered_total") == differ)
        self.assertEqual(s["cutover_compare_matches_total"], same)
        self.assertEqual(s["cutover_compare_mismatches_total"], differ)
        for reason in ("queue_full", "no_shadow", "lineage", "error"):
            self.assertEqual(s['cutover_compare_skipped_total{reason="%s"}' % reason], 0)
        self.assertEqual(s["cutover_compare_queue_depth"], 0)
        self.assertEqual(s["cutover_shadow_sent_total"], total)
        self.assertEqual(s["cutover_record_produced_total"], differ)
        self.assertEqual(s["cutover_record_delivered_total"], differ)
        self.assertEqual(sorted(self.read_ids(differ)), sorted(want))


class TestLiveCompareReload(RecordingMetricsCase):
    def counts(self, before, n):
        """Sends n requests and returns (matches, mismatches) they added."""
        for i in range(n):
            self.get("/items/%d" % i, "r-%d-%d" % (before, i))
        want = before + n
        s = self.wait_metrics(lambda s: s.get("cutover_compare_matches_total", 0)
                              + s.get("cutover_compare_mismatches_total", 0) >= want)
        return s["cutover_compare_matches_total"], s["cutover_compare_mismatches_total"]

    def test_reload_applies_compare_settings(self):
        # At start no route compares: mirrored pairs are neither compared nor recorded.
        self.start_all([{"name": "api", "backend": "legacy", "mirror": ["modern"]}])
        for i in range(3):
            self.get("/items/%d" % i, "x-%d" % i)
        s = self.wait_metrics(lambda s: s.get("cutover_shadow_sent_total") == 3)
        self.assertEqual(s["cutover_compare_matches_total"], 0)
        self.assertEqual(s["cutover_compare_mismatches_total"], 0)
        # Reload: the route compares live, ignoring the field that differs.
        live = {"name": "api", "backend": "legacy", "mirror": ["modern"], "compare": "live",
                "compare_ignore": ["$.backend"]}
        self.write_config(self.config([live]))
        status, body = self.reload()
        self.assertEqual(status, 200, body)
        self.assertIn("live comparison", body["applied"])
        self.assertEqual(self.counts(0, 4), (4, 0))
        # SIGHUP with the ignore list gone: the same responses now differ.
        live["compare_ignore"] = []
        sha = self.reload("GET", "/status")[1]["config"]["sha256"]
        self.write_config(self.config([live]))
        self.proxy.signal(signal.SIGHUP)
        deadline = time.time() + 10
        while self.reload("GET", "/status")[1]["config"]["sha256"] == sha:
            self.assertLess(time.time(), deadline, "SIGHUP did not reload")
            time.sleep(0.05)
        self.assertEqual(self.counts(4, 5), (4, 5))
        # A bad ignore path is refused, and the running rules stay.
        live["compare_ignore"] = ["$.items[x"]
        self.write_config(self.config([live]))
        status, body = self.reload()
        self.assertEqual(status, 400, body)
        self.assertIn("compare_ignore", json.dumps(body))
        self.assertEqual(self.counts(9, 2), (4, 7))
        s = self.wait_metrics(lambda s: s.get("cutover_record_delivered_total") == 7)
        self.assertEqual(s["cutover_record_delivered_total"], 7)  # only the mismatches


if __name__ == "__main__":
    e2e.main()
