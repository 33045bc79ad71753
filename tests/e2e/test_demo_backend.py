"""End-to-end tests of `cutover demo-backend`: every knob over HTTP/1.1 and h2c, with real clients."""

import hashlib
import json
import os
import socket
import threading
import time

import cutover_e2e as e2e

LINEAGE = "catalog=v812;streams=9f3a0c"
PROTOCOLS = (("1.1", "http1"), ("h2c", "h2c"))  # (curl mode, backend --protocol)


def raw_exchange(host, port, data, timeout=5.0):
    """Sends raw bytes, reads until the server closes; returns what it sent back."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks)


class TestDemoBackend(e2e.CutoverTestCase):
    def setUp(self):
        super().setUp()
        self.require_tools("curl")
        self.backends = {}

    def backend(self, protocol):
        if protocol not in self.backends:
            self.backends[protocol] = self.start_demo_backend(
                "legacy" if protocol == "http1" else "modern", protocol=protocol, lineage=LINEAGE)
        return self.backends[protocol]

    def each_protocol(self):
        """(curl mode, backend) for HTTP/1.1 and h2c."""
        return [(mode, self.backend(proto)) for mode, proto in PROTOCOLS]

    def test_demo_backend_default_json(self):
        for mode, b in self.each_protocol():
            r = self.curl(b.url("/api/checkout?x=1"), http=mode,
                          headers={"x-device-id": "dev-42", "x-request-id": "req-7"})
            self.assertEqual(r.rc, 0, r.stderr)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.http_version, "2" if mode == "h2c" else "1.1")
            self.assertEqual(r.header("content-type"), "application/json")
            self.assertEqual(r.header("x-lineage"), LINEAGE)
            self.assertEqual(r.header("x-backend"), b.name)
            doc = r.json()
            self.assertEqual(doc, {"backend": b.name, "method": "GET", "path": "/api/checkout",
                                   "query": "x=1", "device": "dev-42", "request_id": "req-7"})
            r = self.curl(b.url("/"), http=mode)
            self.assertIsNone(r.json()["device"])
            self.assertIsNone(r.json()["request_id"])

    def test_demo_backend_auto_serves_both(self):
        b = self.start_demo_backend("both", protocol="auto")
        for mode in ("1.1", "h2c"):
            r = self.curl(b.url("/p"), http=mode)
            self.assertEqual((r.rc, r.status, r.json()["backend"]), (0, 200, "both"))
            self.assertEqual(r.http_version, "2" if mode == "h2c" else "1.1")
        self.assertIsNone(r.header("x-lineage"))

    def test_demo_backend_status(self):
        for mode, b in self.each_protocol():
            r = self.curl(b.url("/x?status=503"), http=mode)
            self.assertEqual(r.status, 503)
            self.assertEqual(r.json()["status"], 503)
            r = self.curl(b.url("/x?delay=soon"), http=mode)
            self.assertEqual(r.status, 400)
            self.assertIn("delay", r.json()["error"])

    def test_demo_backend_delay_does_not_block_others(self):
        for mode, b in self.each_protocol():
            slow = {}
            t = threading.Thread(target=lambda: slow.update(
                r=self.curl(b.url("/slow?delay=3s"), http=mode)))
            started = time.monotonic()
            t.start()
            time.sleep(0.1)
            fast = self.curl(b.url("/fast"), http=mode)
            fast_done = time.monotonic() - started
            t.join()
            self.assertEqual(fast.status, 200)
            # Held up, the fast answer would come after the 3 s delay; the
            # margin is for starting curl on a loaded machine.
            self.assertLess(fast_done, 2.4, "a delayed request held up another connection")
            self.assertEqual(slow["r"].status, 200)
            self.assertGreaterEqual(slow["r"].time_starttransfer, 2.95)
            self.assertLess(slow["r"].time_total, 6.0)

    def test_demo_backend_size_and_chunked(self):
        for mode, b in self.each_protocol():
            r = self.curl(b.url("/blob?size=100000"), http=mode)
            self.assertEqual((r.rc, r.status, len(r.body)), (0, 200, 100000))
            self.assertEqual(r.header("content-length"), "100000")
            self.assertEqual(r.body[:8], b"abcdefgh")
            r = self.curl(b.url("/blob?size=64KiB&chunked=1"), http=mode)
            self.assertEqual((r.rc, len(r.body)), (0, 65536))
            self.assertIsNone(r.header("content-length"))
            if mode == "1.1":
                self.assertEqual(r.header("transfer-encoding"), "chunked")

    def test_demo_backend_50mib_bounded_memory(self):
        for mode, b in self.each_protocol():
            before = b.proc.rss_kib()
            r = self.curl(b.url("/big?size=50MiB"), http=mode, timeout=60)
            self.assertEqual((r.rc, len(r.body)), (0, 50 * 1024 * 1024))
            path = os.path.join(self.tmp, "up.bin")
            digest = e2e.write_random_file(path, 50 * 1024 * 1024)
            r = self.curl(b.url("/up?echo=1"), http=mode, method="POST", data_file=path,
                          timeout=60)
            self.assertEqual(r.status, 200, r.stderr)
            self.assertEqual(r.json()["body_sha256"], digest)
            growth = b.proc.peak_rss_kib() - before
            limit = (64 if e2e.sanitized() else 16) * 1024  # measured: ~2 MiB (ASan: ~45 MiB)
            self.assertLess(growth, limit, "50 MiB each way grew the backend by %d KiB" % growth)

    def test_demo_backend_close_mid(self):
        for mode, b in self.each_protocol():
            r = self.curl(b.url("/cut?size=100000&close=mid"), http=mode)
            self.assertNotEqual(r.rc, 0, "curl accepted a body cut in the middle")
            self.assertEqual(r.status, 200)
            self.assertLess(len(r.body), 100000)
            # the backend itself carries on
            self.assertEqual(self.curl(b.url("/after"), http=mode).status, 200)
            r = self.curl(b.url("/none?close=start&delay=100ms"), http=mode)
            self.assertNotEqual(r.rc, 0)
            self.assertEqual((r.status, r.body), (0, b""))
            self.assertGreaterEqual(r.time_total, 0.09)

    def test_demo_backend_drip(self):
        for mode, b in self.each_protocol():
            r = self.curl(b.url("/drip?drip=50&size=1000"), http=mode)
            self.assertEqual((r.rc, len(r.body)), (0, 1000))
            # 10 pieces, 9 pauses of 50 ms, all after the first byte
            self.assertGreaterEqual(r.time_total - r.time_starttransfer, 0.44)

    def test_demo_backend_echo(self):
        path = os.path.join(self.tmp, "body.bin")
        digest = e2e.write_random_file(path, 3 * 1024 * 1024 + 17)
        for mode, b in self.each_protocol():
            r = self.curl(b.url("/echo/me?echo=1"), http=mode, method="PUT", data_file=path,
                          headers={"x-device-id": "d-1", "x-custom": "hello \"world\""})
            self.assertEqual(r.status, 200, r.stderr)
            doc = r.json()
            self.assertEqual(doc["method"], "PUT")
            self.assertEqual(doc["path"], "/echo/me")
            self.assertEqual(doc["body_size"], 3 * 1024 * 1024 + 17)
            self.assertEqual(doc["body_sha256"], digest)
            headers = dict(doc["headers"])
            self.assertEqual(headers["x-custom"], "hello \"world\"")
            self.assertEqual(headers["x-device-id"], "d-1")
            self.assertEqual(doc["authority"], b.address)
            r = self.curl(b.url("/e?echo=1"), http=mode)
            self.assertEqual(r.json()["body_size"], 0)
            self.assertEqual(r.json()["body_sha256"],
                             "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")

    def test_demo_backend_trailers(self):
        b = self.backend("http1")
        out = raw_exchange(b.host, b.port, b"GET /t?chunked=1&trailers=1 HTTP/1.1\r\n"
                           b"Host: x\r\nConnection: close\r\n\r\n")
        self.assertIn(b"transfer-encoding: chunked", out)
        self.assertTrue(out.endswith(b"\r\n0\r\nx-demo-trailer: done\r\n\r\n"), out[-80:])
        self.require_tools("nghttp")
        h2 = self.backend("h2c")
        rc, text, err = e2e.run_nghttp(h2.url("/t?trailers=1&size=100"), args=["-v"])
        self.assertEqual(rc, 0, err)
        self.assertRegex(text, r"recv \(stream_id=\d+\) x-demo-trailer: done")

    def test_demo_backend_pipelining_in_order(self):
        b = self.backend("http1")
        reqs = (b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /two?delay=200ms HTTP/1.1\r\nHost: x\r\n\r\n"
                b"POST /three HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n0\r\n\r\n"
                b"GET /four HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        out = raw_exchange(b.host, b.port, reqs)
        paths = [p.decode() for p in __import__("re").findall(rb'"path":"([^"]*)"', out)]
        self.assertEqual(paths, ["/one", "/two", "/three", "/four"])
        self.assertEqual(out.count(b"HTTP/1.1 200 OK"), 4)
        # a malformed request gets 400 and a closed connection
        out = raw_exchange(b.host, b.port, b"GET / HTTP/1.1\r\nHost x\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 400"), out[:40])

    def test_demo_backend_h2_many_streams_and_windows(self):
        b = self.backend("h2c")
        c = e2e.H2Conn(b.host, b.port)
        self.addCleanup(c.close)
        # 100 concurrent streams, answered on one connection
        sids = [c.request("GET", b.address, "/s%d" % i, headers=[("x-device-id", "d%d" % i)])
                for i in range(100)]
        for i, r in enumerate(c.wait(*sids)):
            self.assertEqual(r.status, 200)
            self.assertEqual(json.loads(bytes(r.body))["device"], "d%d" % i)
        # a 3 MiB upload needs many WINDOW_UPDATEs from the backend
        body = os.urandom(3 * 1024 * 1024)
        r = c.wait(c.request("POST", b.address, "/u?echo=1", body=body))
        self.assertEqual(json.loads(bytes(r.body))["body_sha256"],
                         hashlib.sha256(body).hexdigest())
        # trailers and a reset stream, seen frame by frame
        r = c.wait(c.request("GET", b.address, "/t?trailers=1&size=10"))
        self.assertEqual((bytes(r.body), r.trailers), (b"abcdefghij", [("x-demo-trailer", "done")]))
        r = c.wait(c.request("GET", b.address, "/x?close=mid&size=100"))
        self.assertEqual((r.status, r.reset, len(r.body)), (200, 2, 50))  # INTERNAL_ERROR

    def test_demo_backend_h2_window_exhaustion(self):
        b = self.backend("h2c")
        c = e2e.H2Conn(b.host, b.port, auto_ack=False)
        self.addCleanup(c.close)
        sid = c.request("GET", b.address, "/big?size=1MiB")
        # without WINDOW_UPDATEs the backend stops at the initial 64 KiB window...
        deadline = time.monotonic() + 5
        r = c.responses[sid]
        while len(r.body) < 65535 and time.monotonic() < deadline:
            c.read_once()
        self.assertEqual(len(r.body), 65535)
        c.sock.settimeout(0.3)
        with self.assertRaises(e2e.HarnessError):
            c.read_once()
        c.sock.settimeout(10)
        # ...and resumes when the window opens
        c.conn.increment_flow_control_window(1 << 20)
        c.conn.increment_flow_control_window(1 << 20, stream_id=sid)
        c.flush()
        c.auto_ack = True
        r = c.wait(sid)
        self.assertEqual((r.ended, len(r.body)), (True, 1 << 20))

    def test_demo_backend_h2load_zero_failures(self):
        self.require_tools("h2load")
        b = self.backend("http1")
        r = self.h2load(b.url("/api/checkout"), n=20000, c=8, m=10, h1=True)
        self.assertEqual((r.succeeded, r.failed, r.errored, r.timeout), (20000, 0, 0, 0), r.text)
        self.assertIsNotNone(r.p99_us)
        h2 = self.backend("h2c")
        r = self.h2load(h2.url("/api/checkout"), n=20000, c=8, m=10)
        self.assertEqual((r.succeeded, r.failed, r.errored, r.timeout), (20000, 0, 0, 0), r.text)

    def test_demo_backend_tls_alpn(self):
        certs = self.gen_cert()
        b = self.start_demo_backend("secure", protocol="auto", tls=certs)
        for mode, version in (("2", "2"), ("1.1", "1.1")):
            r = self.curl(b.url("/s?size=1MiB"), http=mode, cacert=certs["ca"])
            self.assertEqual((r.rc, r.status, r.http_version, len(r.body)),
                             (0, 200, version, 1 << 20), r.stderr)
        # h2 only: ALPN picks h2 even when the client prefers HTTP/1.1 too
        h2 = self.start_demo_backend("secure-h2", protocol="h2c", tls=certs)
        r = self.curl(h2.url("/"), http="2", cacert=certs["ca"])
        self.assertEqual((r.status, r.http_version, r.json()["backend"]), (200, "2", "secure-h2"))
        # the certificate is checked by clients: without the CA, curl refuses
        r = self.curl(b.url("/"), http="2")
        self.assertEqual(r.rc, 60)
        # a cleartext request to a TLS listener gets no HTTP answer
        r = self.curl("http://%s/" % b.address, http="1.1")
        self.assertNotEqual(r.rc, 0)
        self.assertEqual(self.curl(b.url("/"), http="2", cacert=certs["ca"]).status, 200)

    def test_demo_backend_stops_on_sigterm(self):
        b = self.start_demo_backend("stopper", protocol="auto", threads=2)
        # a pending delayed response and an open connection must not hold up the stop
        t = threading.Thread(target=lambda: self.curl(b.url("/?delay=10s"), http="h2c"))
        t.start()
        time.sleep(0.2)
        started = time.monotonic()
        b.proc.signal(15)
        status = b.proc.wait_exit(8)
        self.assertEqual(status, 0, b.proc.stderr_text())
        # well before the delayed response (the margin is for a loaded machine
        # and the sanitizers' exit-time leak check)
        self.assertLess(time.monotonic() - started, 5.0)
        t.join()
        self.assertIn("listening on 127.0.0.1:%d" % b.port, b.proc.stderr_text())

    def test_demo_backend_bad_arguments(self):
        self.assertEqual(self.cutover("demo-backend").returncode, 2)
        self.assertEqual(self.cutover("demo-backend", "--name", "x", "--listen", "nope")
                         .returncode, 2)
        self.assertEqual(self.cutover("demo-backend", "--name", "x", "--listen", "127.0.0.1:1",
                                      "--protocol", "h3").returncode, 2)
        self.assertEqual(self.cutover("demo-backend", "--name", "x", "--listen", "127.0.0.1:1",
                                      "--tls-cert", "/nonexistent.pem").returncode, 2)
        r = self.cutover("demo-backend", "--name", "x", "--listen", "127.0.0.1:0",
                         "--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key")
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot use certificate", r.stderr)
        r = self.cutover("demo-backend", "--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--protocol", r.stdout)


class TestHarness(e2e.CutoverTestCase):
    """The harness itself: what every other e2e test relies on."""

    def test_harness_stops_a_process_that_ignores_sigterm(self):
        script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); " \
                 "print('ready', flush=True); time.sleep(60)"
        proc = self.start(["/usr/bin/python3", "-c", script], name="stubborn")
        time.sleep(0.3)
        started = time.monotonic()
        status = proc.stop(grace=0.5)
        self.assertEqual(status, -9)
        self.assertLess(time.monotonic() - started, 3.0)
        self.assertFalse(proc.alive())

    def test_harness_start_failure_shows_stderr(self):
        port = e2e.free_port()
        with self.assertRaises(e2e.HarnessError) as cm:
            self.start(["/bin/sh", "-c", "echo no-such-thing >&2; exit 3"], name="failing",
                       wait_port=port)
        self.assertIn("no-such-thing", str(cm.exception))
        self.assertIn("status 3", str(cm.exception))

    def test_harness_free_ports_differ(self):
        ports = {e2e.free_port() for _ in range(20)}
        self.assertEqual(len(ports), 20)

    def test_harness_yaml_and_templates(self):
        cfg = {"workers": 1, "listeners": [{"name": "h2c", "listen": "127.0.0.1:8080"}],
               "backends": [{"name": "legacy", "hosts": ["127.0.0.1:9001"], "protocol": "http1"}],
               "empty": [], "flag": True, "text": "on", "path": "/api/checkout", "quote": "a: b"}
        text = e2e.to_yaml(cfg)
        try:
            import yaml
        except ImportError:
            self.skipTest("python3-yaml is not installed")
        self.assertEqual(yaml.safe_load(text), cfg)
        path = self.write_config("port: {{port}}\nenv: ${HOME}\n", port=81)
        with open(path) as f:
            self.assertEqual(f.read(), "port: 81\nenv: ${HOME}\n")
        with self.assertRaises(e2e.HarnessError):
            e2e.render_template("{{missing}}", {})

    def test_harness_proxy_config_is_valid(self):
        certs = self.gen_cert()
        legacy = self.start_demo_backend("legacy")
        secure = self.start_demo_backend("secure", protocol="h2c", tls=certs)
        cfg = e2e.proxy_config(e2e.free_port(), {"legacy": legacy, "secure": secure,
                                                 "other": ("127.0.0.1:1", "h2c")},
                               tls_port=e2e.free_port(), certs=certs,
                               state={"dir": os.path.join(self.tmp, "state")})
        self.assertEqual(cfg["backends"]["secure"]["protocol"], "h2")
        path = self.write_config(cfg)
        r = self.cutover("config", "check", path)
        if "not built yet" in r.stderr:
            self.skipTest("cutover config is not built yet")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_harness_percentiles(self):
        values = list(range(1, 101))
        self.assertEqual(e2e.percentile(values, 50), 50)
        self.assertEqual(e2e.percentile(values, 99), 99)
        self.assertEqual(e2e.percentile(values, 100), 100)
        self.assertIsNone(e2e.percentile([], 50))
        self.assertEqual(e2e.parse_duration_us("2.5ms"), 2500.0)
        self.assertEqual(e2e.parse_duration_us("47us"), 47.0)

    def test_harness_wait_for_stderr_and_rss(self):
        b = self.start_demo_backend("watched")
        m = b.proc.wait_for_stderr(r"listening on 127\.0\.0\.1:(\d+)")
        self.assertEqual(int(m.group(1)), b.port)
        rss = b.proc.rss_kib()
        self.assertGreater(rss, 0)
        # The peak is read after the current size: the process may still grow
        # in between, and the peak never falls below any earlier size.
        self.assertGreaterEqual(b.proc.peak_rss_kib(), rss)


if __name__ == "__main__":
    e2e.main()
