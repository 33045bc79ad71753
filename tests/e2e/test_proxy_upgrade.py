"""End-to-end tests of the HTTP/1.1 `Upgrade: h2c` switch on cleartext listeners
(curl --http2, nghttp -u, python3-h2) and of lingering closes after HTTP/1.1
error answers (the client still receives the error while it is sending)."""

import base64
import http.server
import json
import os
import socket
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cutover_e2e as e2e  # noqa: E402
from test_proxy_http import http1_exchange  # noqa: E402

CONFIG = """
workers: 1
listeners:
  - name: plain
    listen: 127.0.0.1:{{port}}
  - name: tls
    listen: 127.0.0.1:{{tls_port}}
    tls: { cert: {{cert}}, key: {{key}} }
  - name: noupgrade
    listen: 127.0.0.1:{{noupgrade_port}}
    h2c_upgrade: false
backends:
  legacy:
    hosts: ["{{legacy}}"]
    protocol: http1
  modern:
    hosts: ["{{modern}}"]
    protocol: h2c
  shadow:
    hosts: ["{{shadow}}"]
    protocol: http1
dials:
  checkout-v2:
    key: "header:x-device-id"
    percent: 100%
    to: modern
routes:
  - name: checkout
    match: { path_prefix: /api/checkout }
    backend: legacy
    dial: checkout-v2
    decision_header: true
    mirror: [shadow]
  - name: default
    backend: legacy
    mirror: [shadow]
limits:
  drain_timeout: 2s
  max_request_body: 1000
  max_header_list: 4KiB
logging:
  access_log: {{access_log}}
"""

UPGRADE_HEADERS = {"Connection": "Upgrade, HTTP2-Settings", "Upgrade": "h2c"}


def settings_b64(pairs):
    raw = b"".join(struct.pack(">HI", k, v) for k, v in pairs)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def upgrade_request(path, settings, extra=""):
    return ("GET %s HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            "Upgrade: h2c\r\nHTTP2-Settings: %s\r\n%s\r\n" % (path, settings, extra)).encode()


def read_until_closed(s, limit=10.0):
    """Reads until EOF; returns (bytes, how it ended: "eof" or "reset", seconds)."""
    data = b""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return data, "reset", time.monotonic() - t0
        if not chunk:
            return data, "eof", time.monotonic() - t0
        data += chunk
    return data, "open", time.monotonic() - t0


class ShadowHandler(http.server.BaseHTTPRequestHandler):
    """A shadow backend that notes each request's path and request id."""
    protocol_version = "HTTP/1.1"
    seen = None  # list, set per server

    def do_GET(self):
        self.server.seen.append((self.path, self.headers.get("x-request-id")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


class UpgradeCase(e2e.CutoverTestCase):
    def setUp(self):
        super().setUp()
        self.shadow = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ShadowHandler)
        self.shadow.daemon_threads = True
        self.shadow.seen = []
        threading.Thread(target=self.shadow.serve_forever, daemon=True).start()
        self.addCleanup(self.shadow.server_close)
        self.addCleanup(self.shadow.shutdown)
        self.legacy = self.start_demo_backend("legacy")
        self.modern = self.start_demo_backend("modern", protocol="h2c")
        self.certs = self.gen_cert()
        self.port, self.tls_port = e2e.free_port(), e2e.free_port()
        self.noupgrade_port = e2e.free_port()
        self.access_log = os.path.join(self.tmp, "access.log")
        cfg = self.write_config(CONFIG, port=self.port, tls_port=self.tls_port,
                                cert=self.certs["cert"], key=self.certs["key"],
                                legacy=self.legacy.address, modern=self.modern.address,
                                shadow="127.0.0.1:%d" % self.shadow.server_address[1],
                                access_log=self.access_log, noupgrade_port=self.noupgrade_port)
        self.proxy = self.start_proxy(cfg, wait_ports=[self.port, self.tls_port,
                                                       self.noupgrade_port])
        self.addCleanup(self.check_clean_exit)
        self.base = "http://127.0.0.1:%d" % self.port

    def check_clean_exit(self):
        # SIGTERM drains and exits 0; sanitizer reports (leaks included) would change that
        if self.proxy.returncode is None:
            self.assertEqual(self.proxy.stop(grace=6.0), 0, self.proxy.stderr_text(40))

    def shadowed(self, path, timeout=5.0):
        """The request id the shadow backend saw for `path` (None if it never came)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p, rid in list(self.shadow.seen):
                if p == path:
                    return rid
            time.sleep(0.05)
        return None

    def access_lines(self, want, timeout=3.0):
        return e2e.read_json_lines(self.access_log, want, timeout)


class TestH2cUpgrade(UpgradeCase):
    def test_upgrade_curl_and_nghttp(self):
        self.require_tools("curl", "nghttp")
        # curl --http2 on http:// asks for the upgrade; the response comes over HTTP/2
        r = self.curl(self.base + "/api/checkout/pay?echo=1", http="2",
                      headers={"x-request-id": "rid-upgrade", "x-device-id": "dev-1"})
        self.assertEqual(r.rc, 0, r.stderr)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.http_version, "2")
        echo = r.json()
        self.assertEqual(echo["backend"], "modern")  # routed by the dial (100%)
        self.assertIn("dial=checkout-v2", r.header("x-cutover-decision"))
        hdrs = {k.lower(): v for k, v in echo["headers"]}
        self.assertEqual(hdrs["x-request-id"], "rid-upgrade")
        self.assertEqual(hdrs["x-forwarded-for"], "127.0.0.1")
        for hop in ("upgrade", "http2-settings", "connection"):
            self.assertNotIn(hop, hdrs)
        # a request with a body is not upgraded: served over HTTP/1.1
        r = self.curl(self.base + "/post?echo=1", http="2", method="POST", data=b"hello")
        self.assertEqual(r.rc, 0, r.stderr)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.http_version, "1.1")
        self.assertEqual(r.json()["body_size"], 5)
        # TLS listeners ignore h2c (ALPN is the way to HTTP/2 there)
        r = self.curl("https://localhost:%d/tls?echo=1" % self.tls_port, http="1.1",
                      cacert=self.certs["ca"],
                      headers=dict(UPGRADE_HEADERS, **{"HTTP2-Settings": "AAMAAABkAAQAAP__"}))
        self.assertEqual(r.rc, 0, r.stderr)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.http_version, "1.1")
        # nghttp's upgrade mode
        p = e2e.subprocess.run(["nghttp", "-u", "-v", "-t", "10", self.base + "/nghttp?echo=1"],
                               capture_output=True, timeout=20)
        out = p.stdout.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 0, out + p.stderr.decode("utf-8", "replace"))
        self.assertIn("HTTP Upgrade success", out)
        self.assertIn(":status: 200", out)
        self.assertIn('"path":"/nghttp"', out)
        # with a body nghttp upgrades with `OPTIONS *` first, then sends the POST as stream 3
        body = os.path.join(self.tmp, "body")
        with open(body, "wb") as f:
            f.write(b"hello")
        p = e2e.subprocess.run(["nghttp", "-u", "-v", "-t", "10", "-d", body,
                                self.base + "/upload?echo=1"], capture_output=True, timeout=20)
        out = p.stdout.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 0, out + p.stderr.decode("utf-8", "replace"))
        self.assertIn("HTTP Upgrade success", out)
        self.assertIn('"body_size":5', out)
        # the access log names the upgraded requests' protocol and request id
        lines = self.access_lines(6)
        by_path = {l["path"]: l for l in lines}
        self.assertEqual(by_path["/api/checkout/pay?echo=1"]["proto"], "h2")
        self.assertEqual(by_path["/api/checkout/pay?echo=1"]["request_id"], "rid-upgrade")
        self.assertEqual(by_path["/api/checkout/pay?echo=1"]["route"], "checkout")
        self.assertEqual(by_path["/post?echo=1"]["proto"], "http/1.1")
        self.assertEqual(by_path["/nghttp?echo=1"]["proto"], "h2")
        self.assertEqual(by_path["/nghttp?echo=1"]["status"], 200)
        self.assertEqual(by_path["/upload?echo=1"]["proto"], "h2")
        self.assertEqual(by_path["/upload?echo=1"]["bytes_in"], 5)
        # mirrored like any request
        self.assertEqual(self.shadowed("/api/checkout/pay?echo=1"), "rid-upgrade")
        self.assertIsNotNone(self.shadowed("/nghttp?echo=1"))

    def test_upgrade_python_h2_pipelined(self):
        import h2.config
        import h2.connection
        import h2.events
        conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8"))
        settings = conn.initiate_upgrade_connection().decode()
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.addCleanup(s.close)
        # everything at once: the upgrade request, the preface, and stream 3
        conn.send_headers(3, [(":method", "GET"), (":scheme", "http"), (":authority", "a"),
                              (":path", "/second?echo=1")], end_stream=True)
        s.sendall(upgrade_request("/first?echo=1", settings,
                                  "x-request-id: rid-first\r\n") + conn.data_to_send())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            self.assertTrue(chunk, buf)
            buf += chunk
        head, rest = buf.split(b"\r\n\r\n", 1)
        self.assertTrue(head.startswith(b"HTTP/1.1 101 Switching Protocols"), head)
        self.assertIn(b"upgrade: h2c", head.lower())
        bodies, status, ended = {}, {}, set()
        data = rest
        deadline = time.monotonic() + 10
        while len(ended) < 2 and time.monotonic() < deadline:
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived):
                    status[ev.stream_id] = int(dict(ev.headers)[":status"])
                elif isinstance(ev, h2.events.DataReceived):
                    bodies[ev.stream_id] = bodies.get(ev.stream_id, b"") + ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    ended.add(ev.stream_id)
            out = conn.data_to_send()
            if out:
                s.sendall(out)
            if len(ended) < 2:
                data = s.recv(65536)
                self.assertTrue(data, "closed before both responses")
        self.assertEqual(status, {1: 200, 3: 200})
        one, three = json.loads(bodies[1]), json.loads(bodies[3])
        self.assertEqual(one["path"], "/first")
        self.assertEqual(three["path"], "/second")
        self.assertEqual({k.lower(): v for k, v in one["headers"]}["x-request-id"], "rid-first")
        # the connection goes on as HTTP/2
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", "a"),
                                (":path", "/third?echo=1")], end_stream=True)
        s.sendall(conn.data_to_send())
        done = False
        while not done:
            data = s.recv(65536)
            self.assertTrue(data)
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                    done = True
        lines = self.access_lines(3)
        self.assertEqual(sorted(l["path"] for l in lines),
                         ["/first?echo=1", "/second?echo=1", "/third?echo=1"])
        self.assertTrue(all(l["proto"] == "h2" for l in lines), lines)
        self.assertEqual(self.shadowed("/first?echo=1"), "rid-first")
        self.assertIsNotNone(self.shadowed("/second?echo=1"))

    def test_upgrade_malformed_settings(self):
        cases = [
            ("!!!", "not base64url"),
            (base64.urlsafe_b64encode(b"\x00\x03\x00").decode().rstrip("="),
             "not a whole number of settings"),
            (settings_b64([(2, 2)]), "out of range"),      # ENABLE_PUSH = 2
            (settings_b64([(5, 100)]), "out of range"),    # MAX_FRAME_SIZE < 16384
        ]
        for value, why in cases:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            # the HTTP/2 preface follows at once, as from a client that does not wait
            s.sendall(upgrade_request("/bad", value) + b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            data, how, _ = read_until_closed(s)
            s.close()
            self.assertTrue(data.startswith(b"HTTP/1.1 400 Bad Request\r\n"), data)
            body = data.split(b"\r\n\r\n", 1)[1].decode()
            self.assertIn("malformed HTTP2-Settings header", body)
            self.assertIn(why, body)
            self.assertEqual(how, "eof")
        # two HTTP2-Settings fields are malformed too
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(upgrade_request("/bad", "", "HTTP2-Settings: AAMAAABk\r\n"))
        data, _, _ = read_until_closed(s)
        s.close()
        self.assertIn(b"sent more than once", data)
        # without HTTP2-Settings the upgrade is not done: an ordinary HTTP/1.1 answer
        rs = http1_exchange(self.port, b"GET /plain?echo=1 HTTP/1.1\r\nHost: a\r\n"
                            b"Connection: Upgrade\r\nUpgrade: h2c\r\n\r\n", 1)
        self.assertEqual(rs[0][0], "HTTP/1.1 200 OK")

    def test_listener_without_h2c_upgrade(self):
        self.require_tools("curl")
        base = "http://127.0.0.1:%d" % self.noupgrade_port
        # the same request that upgrades on the default listener stays HTTP/1.1 here
        r = self.curl(base + "/plain?echo=1", http="2")
        self.assertEqual(r.rc, 0, r.stderr)
        self.assertEqual((r.status, r.http_version), (200, "1.1"))
        hdrs = {k.lower() for k, _ in r.json()["headers"]}
        for hop in ("upgrade", "http2-settings"):
            self.assertNotIn(hop, hdrs)
        r = self.curl(self.base + "/plain?echo=1", http="2")
        self.assertEqual((r.status, r.http_version), (200, "2"))
        # prior knowledge still works on it
        r = self.curl(base + "/pk?echo=1", http="h2c")
        self.assertEqual((r.status, r.http_version), (200, "2"))

    def test_other_upgrades_stay_http1(self):
        # websocket (or any other token) is not tunnelled: the request goes to
        # the backend without Upgrade/Connection and the connection stays HTTP/1.1
        payload = (b"GET /ws?echo=1 HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                   b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                   b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
                   b"GET /after?echo=1 HTTP/1.1\r\nHost: a\r\n\r\n")
        rs = http1_exchange(self.port, payload, 2)
        self.assertEqual([r[0] for r in rs], ["HTTP/1.1 200 OK"] * 2)
        ws = json.loads(rs[0][2])
        self.assertEqual(ws["path"], "/ws")
        self.assertNotIn("upgrade", {k.lower() for k, _ in ws["headers"]})
        self.assertEqual(json.loads(rs[1][2])["path"], "/after")


class TestLingeringClose(UpgradeCase):
    def send_and_read(self, head, extra):
        """Sends head, then `extra` bytes with a blocking sendall (as a client
        that writes its whole request before reading), then reads the answer."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        try:
            s.sendall(head)
            s.sendall(extra)
            data, how, _ = read_until_closed(s)
        finally:
            s.close()
        return data, how

    def test_error_answer_survives_unread_input(self):
        mib = b"x" * (1 << 20)
        # 413: the body is over limits.max_request_body; the client goes on sending it
        data, how = self.send_and_read(
            b"POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 2097152\r\n\r\n", mib + mib)
        self.assertTrue(data.startswith(b"HTTP/1.1 413 Content Too Large\r\n"), data[:200])
        self.assertIn(b"request body too large\n", data)
        self.assertEqual(how, "eof")
        # 431: a head over limits.max_header_list, then more bytes
        data, how = self.send_and_read(
            b"GET / HTTP/1.1\r\nHost: a\r\nx-big: " + b"y" * 8000 + b"\r\n", mib)
        self.assertTrue(data.startswith(b"HTTP/1.1 431 "), data[:200])
        self.assertIn(b"request head too large\n", data)
        # 400: an invalid request followed by a megabyte of garbage
        data, how = self.send_and_read(b"GET / HTTP/1.1\r\nHost a\r\n\r\n", mib)
        self.assertTrue(data.startswith(b"HTTP/1.1 400 Bad Request\r\n"), data[:200])
        self.assertTrue(data.endswith(b"\n"), data)
        # a chunked body over the limit: 413 while a megabyte is still coming
        data, how = self.send_and_read(
            b"POST /chunks HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            (b"10000\r\n" + b"z" * 0x10000 + b"\r\n") * 16)
        self.assertTrue(data.startswith(b"HTTP/1.1 413 "), data[:200])

    def test_lingering_is_bounded(self):
        # After its answer the proxy shuts its write side (the client reads
        # EOF) but keeps reading: bytes sent then are discarded, not reset.
        # A client that then neither sends nor closes is closed after about
        # PX_LINGER_MS (1 s): from then on what it sends is answered with a
        # reset, so the second of two sends fails.
        def still_read(s):
            try:
                s.sendall(b"z")
                time.sleep(0.2)
                s.sendall(b"z")
                return True
            except (BrokenPipeError, ConnectionResetError):
                return False
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost a\r\n\r\n")
        data, how, _ = read_until_closed(s)
        self.assertTrue(data.startswith(b"HTTP/1.1 400"), data)
        self.assertEqual(how, "eof")
        time.sleep(0.2)
        self.assertTrue(still_read(s), "closed without lingering")
        time.sleep(2.5 if not e2e.sanitized() else 4.0)
        self.assertFalse(still_read(s), "still lingering after its bound")
        s.close()
        # a client that never stops sending is cut off too (time or byte bound)
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost a\r\n\r\n")
        t0 = time.monotonic()
        chunk = b"g" * 65536
        cut = False
        while time.monotonic() - t0 < 10:
            try:
                s.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                cut = True
                break
            time.sleep(0.01)
        s.close()
        self.assertTrue(cut, "the lingering connection was never closed")
        self.assertLess(time.monotonic() - t0, 6.0)
        # the proxy still serves
        rs = http1_exchange(self.port, b"GET /ok?echo=1 HTTP/1.1\r\nHost: a\r\n\r\n", 1)
        self.assertEqual(rs[0][0], "HTTP/1.1 200 OK")


if __name__ == "__main__":
    e2e.main()
