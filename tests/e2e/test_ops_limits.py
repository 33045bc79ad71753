"""End-to-end: every protection of the proxy fires and is counted in
cutover_limit_hits_total, against the real `cutover proxy`."""

import socket
import struct
import time

import cutover_e2e as e2e
from test_ops_admin import AdminCase


def frame(ftype, flags, sid, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid) + payload


class LimitsCase(AdminCase):
    """AdminCase with tight, configurable limits."""

    LIMITS = {"max_concurrent_streams": 2, "max_headers": 10, "max_header_list": "4KiB",
              "max_request_body": "1KiB", "h2_floods": {"zero_window_stall": "1s"}}

    def config(self, percent):
        cfg = super().config(percent)
        cfg["limits"] = dict(self.LIMITS)
        return cfg

    def raw_h1(self, data):
        """Sends raw HTTP/1.1 bytes; returns the status code of the answer."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        try:
            s.sendall(data)
            got = b""
            while b"\r\n" not in got:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            return int(got.split(b" ", 2)[1])
        finally:
            s.close()


class TestOpsLimits(LimitsCase):
    def test_every_limit_is_counted(self):
        hits = 'cutover_limit_hits_total{limit="%s"}'
        m = self.metrics()
        for name in ("max_headers", "max_header_list_bytes", "max_request_body_bytes",
                     "max_concurrent_streams"):
            self.assertEqual(m[hits % name], 0, name)
        # HTTP/1.1: too many header fields, a head too large, a body too large.
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(20))
        self.assertEqual(self.raw_h1(b"GET /other HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n"), 431)
        big = b"X-Big: " + b"a" * 8000 + b"\r\n"
        self.assertEqual(self.raw_h1(b"GET /other HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n"), 431)
        self.assertEqual(self.raw_h1(b"POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\n"
                                     b"\r\n" + b"b" * 4000), 413)
        # HTTP/2: a body too large, then more streams than allowed at once.
        c = e2e.H2Conn("127.0.0.1", self.port)
        try:
            sid = c.request("POST", "x", "/other", body=b"c" * 3000)
            r = c.wait(sid)
            self.assertTrue(r.status == 413 or r.reset is not None, r)
        finally:
            c.close()
        # A raw connection opens four streams at once (limit 2).
        import hpack
        enc = hpack.Encoder()
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        try:
            data = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(0x4, 0, 0, b"")
            for i in range(4):
                block = enc.encode([(":method", "GET"), (":scheme", "http"), (":authority", "x"),
                                    (":path", "/other?delay=1s")])
                data += frame(0x1, 0x5, 1 + 2 * i, block)
            s.sendall(data)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if self.metrics()[hits % "max_concurrent_streams"] >= 2:
                    break
                time.sleep(0.05)
        finally:
            s.close()
        m = self.metrics()
        self.assertEqual(m[hits % "max_headers"], 1)
        self.assertEqual(m[hits % "max_header_list_bytes"], 1)
        self.assertEqual(m[hits % "max_request_body_bytes"], 2)
        self.assertEqual(m[hits % "max_concurrent_streams"], 2)

    def test_zero_window_stall_closed_while_others_served(self):
        # A client that never opens its window while a large response is pending.
        bad = e2e.H2Conn("127.0.0.1", self.port, auto_ack=False, timeout=2)
        good = e2e.H2Conn("127.0.0.1", self.port)
        try:
            sid = bad.request("GET", "x", "/other?size=1048576")
            start = time.monotonic()
            closed = False
            while time.monotonic() - start < 8:
                # the well-behaved connection keeps being served meanwhile
                r = good.wait(good.request("GET", "x", "/other"))
                self.assertEqual(r.status, 200)
                try:
                    if not bad.read_once():
                        closed = True
                        break
                except e2e.HarnessError:
                    continue
                except OSError:
                    closed = True
                    break
            self.assertTrue(closed, "the stalled connection stayed open")
            self.assertLess(len(bad.responses[sid].body), 1048576)
            self.assertLess(time.monotonic() - start, 5)
            r = good.wait(good.request("GET", "x", "/other"))
            self.assertEqual(r.status, 200)
        finally:
            good.close()
            bad.close()
        self.assertEqual(self.metrics()['cutover_limit_hits_total{limit="zero_window_stall"}'], 1)


if __name__ == "__main__":
    e2e.main()
