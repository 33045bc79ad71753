"""End-to-end tests of `cutover proxy` with real clients (curl, nghttp, h2load)
and real demo backends: protocols, TLS, routing, headers, streaming, failures,
graceful stop."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cutover_e2e as e2e  # noqa: E402

CONFIG = """
workers: 2
listeners:
  - name: plain
    listen: 127.0.0.1:{{port}}
  - name: tls
    listen: 127.0.0.1:{{tls_port}}
    tls: { cert: {{cert}}, key: {{key}} }
backends:
  legacy:
    hosts: ["{{legacy}}"]
    protocol: http1
    timeout: {{timeout}}
  modern:
    hosts: ["{{modern}}"]
    protocol: h2c
    timeout: {{timeout}}
dials:
  checkout-v2:
    key: "header:x-device-id"
    percent: {{percent}}
    to: modern
routes:
  - name: checkout
    match: { path_prefix: /api/checkout }
    backend: legacy
    dial: checkout-v2
    decision_header: true
  - name: only-post
    match: { path: /exact, methods: [POST] }
    backend: modern
  - name: default
    backend: legacy
limits:
  drain_timeout: 2s
logging:
  access_log: {{access_log}}
"""


class ProxyCase(e2e.CutoverTestCase):
    def start_all(self, percent="30%", timeout="2s", legacy_down=False):
        self.legacy_port = e2e.free_port()
        if not legacy_down:
            self.legacy = self.start_demo_backend("legacy", port=self.legacy_port)
        self.modern = self.start_demo_backend("modern", protocol="h2c")
        self.certs = self.gen_cert()
        self.port, self.tls_port = e2e.free_port(), e2e.free_port()
        self.access_log = os.path.join(self.tmp, "access.log")
        cfg = self.write_config(CONFIG, port=self.port, tls_port=self.tls_port,
                                cert=self.certs["cert"], key=self.certs["key"],
                                legacy="127.0.0.1:%d" % self.legacy_port,
                                modern=self.modern.address, percent=percent,
                                timeout=timeout, access_log=self.access_log)
        self.cfg_path = cfg
        self.proxy = self.start_proxy(cfg, wait_ports=[self.port, self.tls_port])
        self.addCleanup(self.check_clean_exit)
        self.base = "http://127.0.0.1:%d" % self.port
        self.tls_base = "https://localhost:%d" % self.tls_port

    def check_clean_exit(self):
        # SIGTERM drains and exits 0; sanitizer reports (leaks included) would change that
        if self.proxy.returncode is None:
            self.assertEqual(self.proxy.stop(grace=6.0), 0, self.proxy.stderr_text(40))

    def access_lines(self, want, timeout=3.0):
        return e2e.read_json_lines(self.access_log, want, timeout)


class TestProtocols(ProxyCase):
    def test_proxy_curl_every_protocol(self):
        self.require_tools("curl")
        self.start_all()
        cases = [(self.base, "h2c", "2"), (self.base, "1.1", "1.1"),
                 (self.tls_base, "2", "2"), (self.tls_base, "1.1", "1.1")]
        for base, http, version in cases:
            r = self.curl(base + "/hello?echo=1", http=http, cacert=self.certs["ca"],
                          headers={"x-request-id": "rid-" + http})
            self.assertEqual(r.rc, 0, r.stderr)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.http_version, version)
            echo = r.json()
            hdrs = {k.lower(): v for k, v in echo["headers"]}
            self.assertEqual(hdrs["x-request-id"], "rid-" + http)  # kept
            self.assertEqual(hdrs["x-forwarded-for"], "127.0.0.1")
            self.assertEqual(hdrs["x-forwarded-proto"], "https" if base == self.tls_base else "http")
            self.assertIn("cutover", hdrs["via"])
        # a generated request id is a UUIDv4, and each request gets its own
        ids = set()
        for _ in range(3):
            r = self.curl(self.base + "/x?echo=1", http="h2c")
            hdrs = {k.lower(): v for k, v in r.json()["headers"]}
            self.assertRegex(hdrs["x-request-id"],
                             r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
            ids.add(hdrs["x-request-id"])
        self.assertEqual(len(ids), 3)
        # route by method and exact path
        r = self.curl(self.base + "/exact", http="1.1", method="POST", data=b"x")
        self.assertEqual(r.json()["backend"], "modern")
        r = self.curl(self.base + "/exact", http="1.1")
        self.assertEqual(r.json()["backend"], "legacy")
        # the access log has one JSON line per request with the documented fields
        lines = self.access_lines(9)
        self.assertGreaterEqual(len(lines), 9)
        for k in ("time", "request_id", "route", "decision", "upstream", "status", "bytes_in",
                  "bytes_out", "latency_ms"):
            self.assertIn(k, lines[0])
        self.assertIn("rid-h2c", [l["request_id"] for l in lines])

    def test_proxy_nghttp_and_h2load(self):
        self.require_tools("nghttp", "h2load")
        self.start_all()
        rc, out, err = self.nghttp(self.base + "/api/checkout/a", args=["-m", "20"])
        self.assertEqual(rc, 0, err)
        res = self.h2load(self.base + "/api/checkout", n=20000, c=16, m=10)
        self.assertEqual(res.failed, 0)
        self.assertEqual(res.errored, 0)
        self.assertEqual(res.succeeded, 20000)
        res = self.h2load(self.tls_base + "/", n=2000, c=4, m=10)
        self.assertEqual(res.succeeded, 2000)
        res = self.h2load(self.base + "/", n=5000, c=8, m=4, h1=True)  # pipelined HTTP/1.1
        self.assertEqual(res.succeeded, 5000)


class TestRouting(ProxyCase):
    def test_proxy_dial_matches_bucketing(self):
        self.require_tools("curl")
        self.start_all(percent="30%")
        devices = ["device-%d" % i for i in range(40)]
        p = self.cutover("dial", "bucket", "--salt", "checkout-v2", *devices)
        self.assertEqual(p.returncode, 0, p.stderr)
        bucket = dict(line.split("\t") for line in p.stdout.splitlines())
        got_new = 0
        for d in devices:
            want = "modern" if int(bucket[d]) < 300000 else "legacy"
            for http in ("h2c", "1.1"):  # a new connection each time: the device keeps its path
                r = self.curl(self.base + "/api/checkout/pay", http=http,
                              headers={"x-device-id": d})
                self.assertEqual(r.status, 200)
                self.assertEqual(r.json()["backend"], want, d)
                dec = r.header("x-cutover-decision")
                self.assertIn("dial=checkout-v2", dec)
                self.assertIn("bucket=%s" % bucket[d], dec)
            got_new += want == "modern"
        self.assertGreater(got_new, 3)
        self.assertLess(got_new, 25)
        # no key: the route's backend, and no decision header on routes without it
        r = self.curl(self.base + "/api/checkout/pay", http="h2c")
        self.assertEqual(r.json()["backend"], "legacy")
        r = self.curl(self.base + "/other", http="h2c", headers={"x-device-id": devices[0]})
        self.assertIsNone(r.header("x-cutover-decision"))


def http1_exchange(port, payload, want_responses, timeout=10):
    """Sends raw bytes on one connection, reads until `want_responses` complete
    responses were parsed (content-length or chunked) or the peer closed."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(payload)
    buf = b""
    responses = []
    while len(responses) < want_responses:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
        while True:
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                break
            head = buf[:head_end].decode("latin-1")
            lines = head.split("\r\n")
            hdrs = {}
            for l in lines[1:]:
                k, v = l.split(":", 1)
                hdrs[k.strip().lower()] = v.strip()
            rest = buf[head_end + 4:]
            if "content-length" in hdrs:
                n = int(hdrs["content-length"])
                if len(rest) < n:
                    break
                body, buf = rest[:n], rest[n:]
            elif hdrs.get("transfer-encoding") == "chunked":
                body, pos, done = b"", 0, False
                while True:
                    e = rest.find(b"\r\n", pos)
                    if e < 0:
                        break
                    size = int(rest[pos:e].split(b";")[0], 16)
                    if size == 0:
                        t = rest.find(b"\r\n\r\n", e)
                        if t < 0 and rest[e + 2:e + 4] != b"\r\n":
                            break
                        end = (e + 4) if rest[e + 2:e + 4] == b"\r\n" else t + 4
                        buf, done = rest[end:], True
                        break
                    if len(rest) < e + 2 + size + 2:
                        break
                    body += rest[e + 2:e + 2 + size]
                    pos = e + 2 + size + 2
                if not done:
                    break
            else:
                break
            responses.append((lines[0], hdrs, body))
    s.close()
    return responses


class TestHttp1(ProxyCase):
    def test_proxy_pipelining_chunked_continue(self):
        self.start_all()
        payload = (b"GET /one?echo=1 HTTP/1.1\r\nHost: a\r\n\r\n"
                   b"POST /two?echo=1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                   b"GET /three?size=100000&chunked=1 HTTP/1.1\r\nHost: a\r\n\r\n"
                   b"GET /four?echo=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        rs = http1_exchange(self.port, payload, 4)
        self.assertEqual(len(rs), 4)
        self.assertEqual([r[0] for r in rs], ["HTTP/1.1 200 OK"] * 4)
        self.assertEqual(json.loads(rs[0][2])["path"], "/one")
        two = json.loads(rs[1][2])
        self.assertEqual(two["path"], "/two")
        self.assertEqual(two["body_size"], 11)
        self.assertEqual(len(rs[2][2]), 100000)
        self.assertEqual(json.loads(rs[3][2])["path"], "/four")
        self.assertEqual(rs[3][1].get("connection"), "close")
        # Expect: 100-continue gets an interim response before the final one
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(b"POST /c?echo=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        self.assertTrue(s.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n"))
        s.sendall(b"abcd")
        data = b""
        while b"body_size" not in data:
            data += s.recv(65536)
        self.assertIn(b'"body_size":4', data)
        s.close()
        # HTTP/1.0: no chunked encoding; the connection closes after the body
        rs = http1_exchange(self.port, b"GET /old?size=1000&chunked=1 HTTP/1.0\r\n\r\n", 1)
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(b"GET /old?size=1000&chunked=1 HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            c = s.recv(65536)
            if not c:
                break
            data += c
        s.close()
        self.assertTrue(data.startswith(b"HTTP/1.0 200"))
        self.assertNotIn(b"chunked", data.lower())
        self.assertEqual(len(data.split(b"\r\n\r\n", 1)[1]), 1000)
        # a malformed request gets 400 and a closed connection
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost a\r\n\r\n")
        data = s.recv(65536)
        self.assertTrue(data.startswith(b"HTTP/1.1 400"), data)
        s.close()


class TestFailures(ProxyCase):
    def test_proxy_backend_down_slow_and_closing(self):
        self.require_tools("curl")
        self.start_all(timeout="500ms", legacy_down=True)
        for http in ("h2c", "1.1"):
            r = self.curl(self.base + "/x", http=http)
            self.assertEqual(r.status, 502)
            self.assertIn(b"connect", r.body)
        # slow: the first byte comes after the backend timeout -> 504, quickly
        t0 = time.monotonic()
        r = self.curl(self.base + "/exact?delay=3s", http="h2c", method="POST", data=b"x")
        self.assertEqual(r.status, 504)
        self.assertIn(b"timeout", r.body)
        self.assertLess(time.monotonic() - t0, 2.5)
        # closing mid-response: the client sees a broken transfer, never a hang
        r = self.curl(self.base + "/exact?size=1MiB&close=mid", http="h2c", method="POST",
                      data=b"x", timeout=10)
        self.assertNotEqual(r.rc, 0)
        self.assertLess(r.time_total, 5)
        # the proxy still serves
        r = self.curl(self.base + "/exact?echo=1", http="h2c", method="POST", data=b"x")
        self.assertEqual(r.status, 200)


class TestStreaming(ProxyCase):
    def test_proxy_50mib_each_way_bounded_memory(self):
        self.require_tools("curl")
        self.start_all()
        path = os.path.join(self.tmp, "big.bin")
        size = 50 * 1024 * 1024
        digest = e2e.write_random_file(path, size)
        for base, http in ((self.base, "h2c"), (self.base, "1.1"), (self.tls_base, "2")):
            r = self.curl(base + "/exact?echo=1", http=http, method="POST", data_file=path,
                          cacert=self.certs["ca"], timeout=60)
            self.assertEqual(r.status, 200, r.stderr)
            echo = r.json()
            self.assertEqual(echo["body_size"], size)
            self.assertEqual(echo["body_sha256"], digest)
            r = self.curl(base + "/down?size=50MiB", http=http, cacert=self.certs["ca"],
                          timeout=60)
            self.assertEqual(r.status, 200)
            self.assertEqual(len(r.body), size)
        peak_mib = self.proxy.peak_rss_kib() / 1024
        limit = 200 if e2e.sanitized() else 48
        self.assertLess(peak_mib, limit, "proxy peak RSS %.1f MiB" % peak_mib)


class TestLifecycle(ProxyCase):
    def test_proxy_sigterm_finishes_in_flight(self):
        self.require_tools("curl")
        self.start_all()
        results = {}

        def slow():
            results["r"] = self.curl(self.base + "/slow?delay=700ms", http="h2c")

        t = threading.Thread(target=slow)
        t.start()
        # in flight: the proxy has connected to the legacy backend for it
        e2e.wait_until(lambda: e2e.tcp_established(self.legacy_port) >= 1,
                       what="the slow request to reach the backend")
        self.proxy.signal(signal.SIGTERM)
        t.join(10)
        self.assertEqual(results["r"].status, 200)
        self.assertEqual(self.proxy.wait_exit(10), 0)
        self.assertFalse(e2e.port_open("127.0.0.1", self.port))

    def test_proxy_refuses_a_port_in_use(self):
        self.start_all()
        p = self.cutover("proxy", "-c", self.cfg_path, timeout=10)
        self.assertEqual(p.returncode, 1)
        self.assertIn("in use", p.stderr)
        self.assertTrue(self.proxy.alive())

    def test_proxy_rejects_bad_config(self):
        path = self.write_config("listeners: 5\n")
        p = self.cutover("proxy", "-c", path)
        self.assertEqual(p.returncode, 1)
        self.assertIn("listeners", p.stderr)
        p = self.cutover("proxy")
        self.assertEqual(p.returncode, 2)


if __name__ == "__main__":
    e2e.main()
