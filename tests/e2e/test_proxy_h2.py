"""HTTP/2 corner cases against `cutover proxy`, driven frame by frame with the
Python h2 library: many concurrent streams, flow-control window exhaustion and
resumption, trailers both ways, invalid frames, oversized header lists."""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cutover_e2e as e2e  # noqa: E402

try:
    import h2.config
    import h2.connection
    import h2.events
    import h2.settings
    HAVE_H2 = True
except ImportError:  # python3-h2 missing
    HAVE_H2 = False

CONFIG = """
workers: 1
listeners:
  - name: plain
    listen: 127.0.0.1:{{port}}
backends:
  legacy:
    hosts: ["{{legacy}}"]
    protocol: http1
  modern:
    hosts: ["{{modern}}"]
    protocol: h2c
routes:
  - name: h2
    match: { path_prefix: /h2/ }
    backend: modern
  - name: default
    backend: legacy
limits:
  drain_timeout: 2s
  max_concurrent_streams: 128
  max_header_list: 16KiB
"""


class Client:
    """A blocking HTTP/2 client over one socket, collecting events per stream."""

    def __init__(self, port, window=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        if window is not None:
            self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.flush()
        self.streams = {}
        self.closed = False
        self.goaway = None
        self.auto_ack = True

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path, method="GET", body=None, headers=(), trailers=None, end=True):
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", "http"), (":authority", "proxy"),
                (":path", path)] + list(headers)
        self.conn.send_headers(sid, hdrs, end_stream=(body is None and trailers is None and end))
        if body is not None:
            self.conn.send_data(sid, body, end_stream=(trailers is None and end))
        if trailers:
            self.conn.send_headers(sid, trailers, end_stream=True)
        self.streams[sid] = {"headers": None, "data": b"", "trailers": None, "ended": False,
                             "reset": None}
        self.flush()
        return sid

    def pump(self, until, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline and not self.closed:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                break
            if not data:
                self.closed = True
                break
            for ev in self.conn.receive_data(data):
                st = self.streams.get(getattr(ev, "stream_id", None))
                if isinstance(ev, h2.events.ResponseReceived):
                    st["headers"] = dict(ev.headers)
                elif isinstance(ev, h2.events.DataReceived):
                    st["data"] += ev.data
                    if self.auto_ack:
                        self.conn.acknowledge_received_data(ev.flow_controlled_length,
                                                            ev.stream_id)
                    st["unacked"] = st.get("unacked", 0) + (0 if self.auto_ack else
                                                           ev.flow_controlled_length)
                elif isinstance(ev, h2.events.TrailersReceived):
                    st["trailers"] = dict(ev.headers)
                elif isinstance(ev, h2.events.StreamEnded):
                    st["ended"] = True
                elif isinstance(ev, h2.events.StreamReset):
                    if st is not None:
                        st["reset"] = ev.error_code
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    self.goaway = ev.error_code
            self.flush()
        return until()

    def done(self, sid):
        st = self.streams[sid]
        return st["ended"] or st["reset"] is not None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


@unittest.skipUnless(HAVE_H2, "python3-h2 is not installed")
class TestH2CornerCases(e2e.CutoverTestCase):
    def setUp(self):
        super().setUp()
        self.legacy = self.start_demo_backend("legacy")
        self.modern = self.start_demo_backend("modern", protocol="h2c")
        self.port = e2e.free_port()
        cfg = self.write_config(CONFIG, port=self.port, legacy=self.legacy.address,
                                modern=self.modern.address)
        self.proxy = self.start_proxy(cfg, wait_ports=[self.port])
        self.addCleanup(self.check_clean_exit)

    def check_clean_exit(self):
        # SIGTERM drains and exits 0; sanitizer reports (leaks included) would change that
        if self.proxy.returncode is None:
            self.assertEqual(self.proxy.stop(grace=6.0), 0, self.proxy.stderr_text(40))

    def client(self, **kw):
        c = Client(self.port, **kw)
        self.addCleanup(c.close)
        return c

    def test_proxy_h2_many_concurrent_streams(self):
        c = self.client()
        sids = [c.request("/s%d?size=%d" % (i, 1000 + i)) for i in range(100)]
        sids += [c.request("/h2/s%d" % i) for i in range(20)]
        self.assertTrue(c.pump(lambda: all(c.done(s) for s in sids)))
        for i, s in enumerate(sids[:100]):
            self.assertEqual(c.streams[s]["headers"][":status"], "200")
            self.assertEqual(len(c.streams[s]["data"]), 1000 + i)
        for s in sids[100:]:
            self.assertIn(b"modern", c.streams[s]["data"])

    def test_proxy_h2_window_exhaustion_and_resumption(self):
        c = self.client(window=1024)
        c.auto_ack = False
        size = 1 << 20
        sid = c.request("/big?size=%d" % size)
        # with a 1 KiB stream window the proxy may send only that much, then must wait
        c.pump(lambda: len(c.streams[sid]["data"]) >= 1024, timeout=5)
        time.sleep(0.3)
        c.pump(lambda: False, timeout=0.3)
        self.assertEqual(len(c.streams[sid]["data"]), 1024)
        self.assertFalse(c.streams[sid]["ended"])
        # open the window: everything arrives
        c.auto_ack = True
        c.conn.acknowledge_received_data(c.streams[sid]["unacked"], sid)
        c.conn.increment_flow_control_window(size, stream_id=sid)
        c.flush()
        self.assertTrue(c.pump(lambda: c.done(sid), timeout=20))
        self.assertEqual(len(c.streams[sid]["data"]), size)
        self.assertIsNone(c.streams[sid]["reset"])

    def test_proxy_h2_trailers_both_ways(self):
        c = self.client()
        a = c.request("/h2/t?trailers=1")
        b = c.request("/t?trailers=1&chunked=1")
        up = c.request("/h2/up?echo=1", method="POST", body=b"payload",
                       trailers=[("x-checksum", "abc")])
        self.assertTrue(c.pump(lambda: all(c.done(s) for s in (a, b, up))))
        self.assertEqual(c.streams[a]["trailers"], {"x-demo-trailer": "done"})
        self.assertEqual(c.streams[b]["trailers"], {"x-demo-trailer": "done"})
        self.assertEqual(c.streams[up]["headers"][":status"], "200")
        self.assertIn(b'"body_size":7', c.streams[up]["data"])

    def test_proxy_h2_invalid_frames(self):
        c = self.client()
        sid = c.request("/ok")
        self.assertTrue(c.pump(lambda: c.done(sid)))
        # DATA on stream 0 is a connection error: GOAWAY, then the connection closes
        c.sock.sendall(b"\x00\x00\x04\x00\x00\x00\x00\x00\x00abcd")
        c.pump(lambda: c.closed, timeout=5)
        self.assertTrue(c.closed or c.goaway is not None)
        # garbage instead of a preface
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff" * 64)
        data = b""
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
        except socket.timeout:
            self.fail("proxy kept a broken connection open")
        s.close()
        # the proxy keeps serving
        c2 = self.client()
        sid = c2.request("/ok")
        self.assertTrue(c2.pump(lambda: c2.done(sid)))
        self.assertEqual(c2.streams[sid]["headers"][":status"], "200")

    def test_proxy_h2_large_headers(self):
        c = self.client()
        ok = c.request("/ok", headers=[("x-big", "v" * 8000)])
        self.assertTrue(c.pump(lambda: c.done(ok)))
        self.assertEqual(c.streams[ok]["headers"][":status"], "200")
        big = c.request("/too-big", headers=[("x-big-%d" % i, "v" * 4000) for i in range(8)])
        self.assertTrue(c.pump(lambda: c.done(big) or c.closed))
        st = c.streams[big]
        self.assertTrue(st["reset"] is not None or c.closed or
                        (st["headers"] or {}).get(":status") == "431")
        # a fresh connection works
        c2 = self.client()
        sid = c2.request("/after")
        self.assertTrue(c2.pump(lambda: c2.done(sid)))
        self.assertEqual(c2.streams[sid]["headers"][":status"], "200")


if __name__ == "__main__":
    e2e.main()
