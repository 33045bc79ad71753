"""End-to-end: the admin API, the dial CLI, reload, metrics and HTTP/2 flood
protection against the real `cutover proxy`."""

import json
import os
import signal
import stat
import subprocess
import time
import urllib.error
import urllib.request

import cutover_e2e as e2e


def read_until_goaway(conn, timeout=10):
    """Reads until a GOAWAY arrived or the connection closed; returns True when
    a GOAWAY arrived. The proxy keeps reading (and discarding) what a closed
    connection's client still sends, so the GOAWAY is not lost to a reset."""
    deadline = time.monotonic() + timeout
    try:
        while conn.goaway is None and time.monotonic() < deadline:
            if not conn.read_once():
                break
    except (e2e.HarnessError, OSError):
        pass
    return conn.goaway is not None


class AdminCase(e2e.CutoverTestCase):
    def setUp(self):
        super().setUp()
        self.legacy = self.start_demo_backend("legacy")
        self.modern = self.start_demo_backend("modern")
        self.port = e2e.free_port()
        self.admin_port = e2e.free_port()
        self.token_file = os.path.join(self.tmp, "run", "admin.token")
        self.cfg = self.config(percent="0%")
        self.config_path = self.write_config(self.cfg)
        self.proxy = self.start_proxy(self.config_path, wait_ports=[self.port, self.admin_port])

    def config(self, percent):
        cfg = e2e.proxy_config(
            self.port, {"legacy": self.legacy, "modern": self.modern},
            routes=[{"name": "checkout", "match": {"path_prefix": "/api/checkout"},
                     "backend": "legacy", "dial": "checkout-v2"},
                    {"name": "other", "backend": "legacy"}],
            admin={"listen": "127.0.0.1:%d" % self.admin_port, "token_file": self.token_file},
            state={"dir": os.path.join(self.tmp, "state")},
            dials={"checkout-v2": {"key": "header:x-device-id", "percent": percent,
                                   "to": "modern", "steps": ["50%", "100%"]}})
        return cfg

    # helpers -----------------------------------------------------------------

    def token(self):
        with open(self.token_file) as f:
            return f.read().strip()

    def api(self, method, path, body=None, token=True, raw=False):
        """Returns (status, parsed JSON or text)."""
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.admin_port, path),
                                     method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
        if token is True:
            req.add_header("Authorization", "Bearer " + self.token())
        elif token:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        return status, (text if raw else json.loads(text))

    def backend_for(self, device):
        r = self.curl("http://127.0.0.1:%d/api/checkout/pay" % self.port,
                      headers={"x-device-id": device})
        self.assertEqual(r.status, 200, r)
        return r.json()["backend"]

    def metrics(self):
        status, text = self.api("GET", "/metrics", raw=True)
        self.assertEqual(status, 200)
        samples = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
        return samples


class TestOpsAdmin(AdminCase):
    def test_token_required(self):
        st = os.stat(self.token_file)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(len(self.token()), 64)
        for token in (None, "wrong", self.token() + "x"):
            status, body = self.api("PUT", "/dials/checkout-v2", {"percent": 100}, token=token)
            self.assertEqual(status, 401)
            self.assertIn("token", body["error"])
        status, body = self.api("GET", "/dials/checkout-v2")
        self.assertEqual(status, 200)
        self.assertEqual(body["percent"], 0)
        self.assertGreaterEqual(self.metrics()["cutover_admin_auth_failures_total"], 3)

    def test_dial_change_applies_at_once_and_survives_restart(self):
        devices = ["device-%d" % i for i in range(20)]
        self.assertEqual({self.backend_for(d) for d in devices}, {"legacy"})
        status, body = self.api("PUT", "/dials/checkout-v2",
                                {"percent": 100, "reason": "e2e ramp"})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["previous_percent"], 0)
        # The very next request of every device takes the new path.
        self.assertEqual({self.backend_for(d) for d in devices}, {"modern"})
        # Restart: the live value was persisted.
        e2e.stop_process(self.proxy)
        self.proxy = self.start_proxy(self.config_path, wait_ports=[self.port, self.admin_port])
        self.assertEqual(self.backend_for("device-1"), "modern")
        self.assertEqual(self.api("GET", "/dials/checkout-v2")[1]["percent"], 100)
        # Step past the last step is a conflict; rollback is immediate.
        status, body = self.api("POST", "/dials/checkout-v2/step")
        self.assertEqual(status, 409, body)
        status, body = self.api("POST", "/dials/checkout-v2/rollback", {"reason": "e2e"})
        self.assertEqual(status, 200, body)
        self.assertEqual({self.backend_for(d) for d in devices}, {"legacy"})
        status, body = self.api("POST", "/dials/checkout-v2/step")
        self.assertEqual((status, body["percent"]), (200, 50))
        # The audit log names who did what.
        with open(os.path.join(self.tmp, "state", "dials.audit.log")) as f:
            audit = f.read()
        self.assertIn("e2e ramp", audit)

    def test_bad_requests_name_the_problem(self):
        cases = [
            ("PUT", "/dials/checkout-v2", {"percent": 101}, 400, "out of range"),
            ("PUT", "/dials/checkout-v2", {"percnet": 5}, 400, "unknown field"),
            ("PUT", "/dials/checkout-v3", {"percent": 5}, 404, "did you mean \"checkout-v2\""),
            ("GET", "/nope", None, 404, "no such endpoint"),
        ]
        for method, path, body, want, text in cases:
            status, got = self.api(method, path, body)
            self.assertEqual(status, want, got)
            self.assertIn(text, got["error"])
        req = urllib.request.Request("http://127.0.0.1:%d/dials/checkout-v2" % self.admin_port,
                                     method="PUT", data=b"{\"percent\": ")
        req.add_header("Authorization", "Bearer " + self.token())
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(req, timeout=10)
        self.assertEqual(cm.exception.code, 400)
        self.assertIn("malformed JSON", json.loads(cm.exception.read())["error"])

    def test_cli(self):
        base = [self.bin, "dial"]
        r = subprocess.run(base + ["set", "checkout-v2", "100%", "-c", self.config_path,
                                   "--reason", "cli"], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("100%", r.stdout)
        self.assertEqual(self.backend_for("device-7"), "modern")
        r = subprocess.run(base + ["get", "checkout-v2", "--admin", "127.0.0.1:%d" % self.admin_port,
                                   "--token-file", self.token_file], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("checkout-v2", r.stdout)
        r = subprocess.run(base + ["set", "checkout-v2", "5", "-c", self.config_path,
                                   "--token-file", os.path.join(self.tmp, "missing")],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        r = subprocess.run(base + ["rollback", "chekout-v2", "-c", self.config_path],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("did you mean", r.stderr)
        self.assertEqual(self.backend_for("device-7"), "modern")

    def test_reload_good_and_broken(self):
        _, before = self.api("GET", "/status")
        # A broken file: rejected with its errors, the old config keeps serving.
        with open(self.config_path, "w") as f:
            f.write("workers: many\nlisteners: 3\n")
        status, body = self.api("POST", "/reload")
        self.assertEqual(status, 400, body)
        self.assertTrue(body["errors"], body)
        self.assertIn("cutover.yaml", body["errors"][0])
        self.assertEqual(self.backend_for("device-1"), "legacy")
        _, after = self.api("GET", "/status")
        self.assertEqual(after["config"]["sha256"], before["config"]["sha256"])
        # SIGHUP with the broken file: logged, still serving.
        self.proxy.signal(signal.SIGHUP)
        self.proxy.wait_for_stderr("config rejected", timeout=10)
        self.assertEqual(self.backend_for("device-1"), "legacy")
        # A good file that turns the dial: applied.
        self.write_config(self.config(percent="100%"))
        status, body = self.api("POST", "/reload")
        self.assertEqual(status, 200, body)
        self.assertEqual(self.backend_for("device-1"), "modern")
        _, after = self.api("GET", "/status")
        self.assertNotEqual(after["config"]["sha256"], before["config"]["sha256"])
        m = self.metrics()
        self.assertEqual(m['cutover_config_reloads_total{result="ok"}'], 1)
        self.assertEqual(m['cutover_config_reloads_total{result="rejected"}'], 2)

    def test_reload_swaps_routes_backends_and_limits(self):
        import threading
        third = self.start_demo_backend("third")
        cfg = self.config(percent="0%")
        cfg["recording"] = {"shadow_timeout": "100ms"}  # old pools go 1.1 s after their last request
        cfg["logging"] = {"level": "info"}
        e2e.stop_process(self.proxy)
        self.proxy = self.start_proxy(self.write_config(cfg),
                                      wait_ports=[self.port, self.admin_port])
        result = {}

        def slow():
            result["r"] = self.curl("http://127.0.0.1:%d/other?delay=1500ms" % self.port)
        t = threading.Thread(target=slow)
        t.start()
        e2e.wait_until(lambda: e2e.tcp_established(self.legacy.port) >= 1,
                       what="the slow request to reach the old backend")
        cfg["backends"]["third"] = {"hosts": [third.address], "protocol": "http1"}
        cfg["routes"][1]["backend"] = "third"
        cfg["limits"] = {"max_headers": 5}
        self.write_config(cfg)
        status, body = self.api("POST", "/reload")
        self.assertEqual(status, 200, body)
        # The very next request uses the new route, backend and limits.
        r = self.curl("http://127.0.0.1:%d/other" % self.port)
        self.assertEqual((r.status, r.json()["backend"]), (200, "third"))
        r = self.curl("http://127.0.0.1:%d/other" % self.port,
                      headers={"x-h%d" % i: "v" for i in range(8)})
        self.assertEqual(r.status, 431)
        # The request in flight finished on the old snapshot and pool.
        t.join(10)
        self.assertEqual((result["r"].status, result["r"].json()["backend"]), (200, "legacy"))
        m = self.metrics()
        self.assertEqual(
            m['cutover_request_duration_seconds_count{route="other",backend="third"}'], 1)
        self.assertEqual(
            m['cutover_request_duration_seconds_count{route="other",backend="legacy"}'], 1)
        self.assertEqual(m['cutover_limit_hits_total{limit="max_headers"}'], 1)
        _, st = self.api("GET", "/status")
        self.assertIn("third", st["upstreams"])
        # A listener change needs a restart: refused, everything stays as is.
        cfg["listeners"][0]["listen"] = "127.0.0.1:%d" % e2e.free_port()
        cfg["routes"][1]["backend"] = "legacy"
        self.write_config(cfg)
        status, body = self.api("POST", "/reload")
        self.assertEqual(status, 400, body)
        self.assertIn("restart", body["errors"][0])
        r = self.curl("http://127.0.0.1:%d/other" % self.port)
        self.assertEqual(r.json()["backend"], "third")
        # Once the old pools and snapshot are gone, reloading back still works.
        self.proxy.wait_for_stderr("config generation 0 ended", timeout=5)
        cfg["listeners"][0]["listen"] = "127.0.0.1:%d" % self.port
        self.write_config(cfg)
        status, body = self.api("POST", "/reload")
        self.assertEqual(status, 200, body)
        r = self.curl("http://127.0.0.1:%d/other" % self.port)
        self.assertEqual((r.status, r.json()["backend"]), (200, "legacy"))

    def test_metrics_count_what_happened(self):
        self.api("PUT", "/dials/checkout-v2", {"percent": 100})
        for i in range(5):
            self.backend_for("d%d" % i)
        r = self.curl("http://127.0.0.1:%d/other?status=503" % self.port)
        self.assertEqual(r.status, 503)
        m = self.metrics()
        new_ok = ('cutover_requests_total{route="checkout",via="dial",decision="checkout-v2",'
                  'arm="new",status_class="2xx"}')
        self.assertEqual(m[new_ok], 5)
        self.assertEqual(m['cutover_requests_total{route="other",via="default",decision="",'
                           'arm="",status_class="5xx"}'], 1)
        self.assertEqual(m['cutover_dial_ratio{dial="checkout-v2"}'], 1)
        self.assertEqual(
            m['cutover_request_duration_seconds_count{route="checkout",backend="modern"}'], 5)
        self.assertEqual(m['cutover_limit_hits_total{limit="rapid_reset"}'], 0)
        status, body = self.api("GET", "/healthz")
        self.assertEqual((status, body["status"]), (200, "ok"))

    def test_client_connections_and_streams_counted(self):
        import socket
        names = ('cutover_client_connections{protocol="http1"}',
                 'cutover_client_connections{protocol="h2c"}',
                 'cutover_client_connections{protocol="h2"}',
                 'cutover_client_connections_total{protocol="http1"}',
                 'cutover_client_connections_total{protocol="h2c"}',
                 'cutover_client_connections_total{protocol="h2"}',
                 'cutover_client_streams')

        def counts():
            m = self.metrics()
            return tuple(m[n] for n in names)
        self.assertEqual(counts(), (0, 0, 0, 0, 0, 0, 0))
        h2c = e2e.H2Conn("127.0.0.1", self.port)
        h1 = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        gone = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        silent = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        try:
            sids = [h2c.request("GET", "x", "/other?delay=1s") for _ in range(3)]
            h1.sendall(b"GET /other?delay=1s HTTP/1.1\r\nHost: x\r\n\r\n")
            gone.sendall(b"GET /other?delay=5s HTTP/1.1\r\nHost: x\r\n\r\n")
            # 3 streams + 2 HTTP/1.1 exchanges in flight; `silent` has no protocol yet
            e2e.wait_until(lambda: counts() == (2, 1, 0, 2, 1, 0, 5), timeout=5,
                           what="the open connections and streams to be counted")
            # A reload while they are open: they are subtracted on the new generation.
            self.write_config(self.config(percent="50%"))
            status, body = self.api("POST", "/reload")
            self.assertEqual(status, 200, body)
            gone.close()  # ends its request before the answer
            silent.close()
            self.assertEqual([h2c.wait(s).status for s in sids], [200, 200, 200])
            data = b""
            while b"backend" not in data:
                chunk = h1.recv(65536)
                self.assertTrue(chunk, data)
                data += chunk
            self.assertTrue(data.startswith(b"HTTP/1.1 200"), data)
            # A malformed request: the proxy answers 400 itself and closes.
            h1.sendall(b"NOT A REQUEST\r\n\r\n")
            data = b""
            while True:
                chunk = h1.recv(65536)
                if not chunk:
                    break
                data += chunk
            self.assertTrue(data.startswith(b"HTTP/1.1 400"), data)
            e2e.wait_until(lambda: counts() == (0, 1, 0, 2, 1, 0, 0), timeout=5,
                           what="the ended connections and streams to be subtracted")
        finally:
            h2c.close()
            for s in (h1, gone, silent):
                s.close()
        e2e.wait_until(lambda: counts() == (0, 0, 0, 2, 1, 0, 0), timeout=5,
                       what="the gauges to return to 0")

    def test_rapid_reset_closed_while_others_served(self):
        import h2.errors
        good = e2e.H2Conn("127.0.0.1", self.port)
        bad = e2e.H2Conn("127.0.0.1", self.port)
        try:
            # Open and cancel streams in a burst, well past the threshold.
            for _ in range(400):
                sid = bad.conn.get_next_available_stream_id()
                bad.conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"),
                                            (":authority", "x"), (":path", "/other?delay=1s")])
                bad.conn.reset_stream(sid)
            try:
                bad.flush()
            except OSError:
                pass  # the proxy may close before everything was written
            self.assertTrue(read_until_goaway(bad), "no GOAWAY after a reset burst")
            self.assertEqual(bad.goaway.error_code, h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
            self.assertIn(b"rapid reset", bad.goaway.additional_data or b"")
            # The well-behaved connection keeps being served.
            sid = good.request("GET", "x", "/other")
            r = good.wait(sid)
            self.assertEqual(r.status, 200)
        finally:
            good.close()
            bad.close()
        self.assertEqual(self.metrics()['cutover_limit_hits_total{limit="rapid_reset"}'], 1)

    def flood_and_expect_goaway(self, send):
        """Runs send(h2conn) on a new connection, checks that the proxy ended
        it with GOAWAY ENHANCE_YOUR_CALM, and returns the GOAWAY event."""
        import h2.errors
        bad = e2e.H2Conn("127.0.0.1", self.port)
        try:
            try:
                send(bad)
            except OSError:
                pass  # the proxy may close before everything was written
            self.assertTrue(read_until_goaway(bad), "no GOAWAY from the proxy")
            self.assertEqual(bad.goaway.error_code, h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
            return bad.goaway
        finally:
            bad.close()

    def test_ping_and_settings_floods(self):
        import h2.errors
        def pings(c):
            for i in range(300):
                c.conn.ping(b"%08d" % i)
            c.flush()
        ev = self.flood_and_expect_goaway(pings)
        self.assertIn(b"PING", ev.additional_data or b"")

        def settings(c):
            for _ in range(100):
                c.conn.update_settings({1: 4096})
            c.flush()
        self.flood_and_expect_goaway(settings)
        m = self.metrics()
        self.assertEqual(m['cutover_limit_hits_total{limit="ping_flood"}'], 1)
        self.assertEqual(m['cutover_limit_hits_total{limit="settings_flood"}'], 1)
        self.assertEqual(self.backend_for("device-1"), "legacy")

    def test_continuation_flood(self):
        import struct

        def frame(ftype, flags, sid, payload):
            return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
                struct.pack(">I", sid) + payload

        def continuations(c):
            # HEADERS without END_HEADERS, then CONTINUATION frames that never end the block.
            block = c.conn.encoder.encode([(":method", "GET"), (":scheme", "http"),
                                           (":authority", "x"), (":path", "/other")])
            data = frame(0x1, 0x0, 1, block)
            for i in range(100):
                data += frame(0x9, 0x0, 1, c.conn.encoder.encode([("x-pad-%d" % i, "v" * 40)]))
            c.sock.sendall(data)
        self.flood_and_expect_goaway(continuations)
        self.assertEqual(self.metrics()['cutover_limit_hits_total{limit="continuation_flood"}'], 1)
        self.assertEqual(self.backend_for("device-1"), "legacy")

    def test_slowloris_closed_while_others_served(self):
        import socket
        cfg = self.config(percent="0%")
        cfg["limits"] = {"header_timeout": "500ms"}
        e2e.stop_process(self.proxy)
        self.proxy = self.start_proxy(self.write_config(cfg),
                                      wait_ports=[self.port, self.admin_port])
        # A request head that never completes (slowloris).
        slow = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            slow.sendall(b"GET /other HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            start = time.monotonic()
            self.assertEqual(self.backend_for("device-1"), "legacy")  # others are served
            try:
                data = slow.recv(4096)
                while data:
                    data = slow.recv(4096)
            except OSError:
                pass
            self.assertLess(time.monotonic() - start, 4.0)
        finally:
            slow.close()
        self.assertEqual(self.metrics()['cutover_limit_hits_total{limit="header_timeout"}'], 1)

    def test_sigterm_drains_in_flight_requests(self):
        import threading
        result = {}

        def slow():
            result["r"] = self.curl("http://127.0.0.1:%d/other?delay=1500ms" % self.port)
        t = threading.Thread(target=slow)
        t.start()
        e2e.wait_until(lambda: e2e.tcp_established(self.legacy.port) >= 1,
                       what="the slow request to reach the backend")
        self.proxy.signal(signal.SIGTERM)
        # While draining, /healthz tells load balancers to go away.
        status, body = None, None
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                status, body = self.api("GET", "/healthz")
            except OSError:
                break
            if status == 503:
                break
            time.sleep(0.05)
        self.assertEqual((status, body and body["status"]), (503, "draining"))
        t.join(timeout=10)
        self.assertEqual(result["r"].status, 200, result["r"])
        self.assertEqual(self.proxy.wait_exit(10), 0)


if __name__ == "__main__":
    e2e.main()
