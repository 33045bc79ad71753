"""End-to-end tests of HTTP/1.1 pipelining to a backend (`pipeline: N`): the
real binary in front of a scripted HTTP/1.1 backend that answers requests in
order however many arrive at once, with HTTP/2 clients (python3-h2, h2load)
sending bursts of streams."""

import json
import os
import signal
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cutover_e2e as e2e  # noqa: E402

CONFIG = """
workers: 1
admin:
  listen: 127.0.0.1:{{admin_port}}
  token_file: {{token_file}}
listeners:
  - name: plain
    listen: 127.0.0.1:{{port}}
backends:
  pipe:
    hosts: ["{{backend}}"]
    protocol: http1
    pipeline: 8
    max_connections: 64
routes:
  - name: default
    backend: pipe
logging:
  level: warn
"""


class PipelineBackend:
    """An HTTP/1.1 server on a free loopback port. Each connection's thread
    reads what arrives, answers every complete request in order with JSON
    naming its method, path and body length, and notes the methods it found in
    each read (self.reads). With close_every=k it answers the k-th request of a
    connection with `Connection: close` and closes, dropping what came after."""

    def __init__(self, close_every=0):
        self.close_every = close_every
        self.reads = []       # list of lists of methods, one per read that held a request
        self.conns = []       # accepted connections
        self.served = 0
        self.closes = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self):
        self.running = False
        self.sock.close()

    def _accept(self):
        while self.running:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(c.fileno())
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf, n = b"", 0
        with c:
            while True:
                try:
                    data = c.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                methods, out = [], b""
                while True:
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    head = buf[:end].decode("latin-1").split("\r\n")
                    method, path = head[0].split(" ")[:2]
                    length = 0
                    for line in head[1:]:
                        k, _, v = line.partition(":")
                        if k.strip().lower() == "content-length":
                            length = int(v.strip())
                    if len(buf) < end + 4 + length:
                        break
                    buf = buf[end + 4 + length:]
                    methods.append(method)
                    n += 1
                    close = self.close_every and n % self.close_every == 0
                    body = json.dumps({"method": method, "path": path, "length": length}).encode()
                    out += (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                            b"content-length: %d\r\n%s\r\n" %
                            (len(body), b"connection: close\r\n" if close else b"")) + body
                    if close:
                        break
                with self.lock:
                    if methods:
                        self.reads.append(methods)
                    self.served += len(methods)
                if out:
                    c.sendall(out)
                if self.close_every and n % self.close_every == 0 and methods:
                    with self.lock:
                        self.closes += 1
                    return


class PipelineCase(e2e.CutoverTestCase):
    def start_with(self, backend):
        self.backend = backend
        self.addCleanup(backend.stop)
        self.port, self.admin_port = e2e.free_port(), e2e.free_port()
        self.token_file = os.path.join(self.tmp, "admin.token")
        cfg = self.write_config(CONFIG, port=self.port, backend=backend.address,
                                admin_port=self.admin_port, token_file=self.token_file)
        self.proxy = self.start_proxy(cfg, wait_ports=[self.port, self.admin_port])
        self.addCleanup(self.check_clean_exit)

    def check_clean_exit(self):
        if self.proxy.returncode is None:
            self.assertEqual(self.proxy.stop(grace=6.0), 0, self.proxy.stderr_text(40))

    def counter(self, name):
        """A sample of the proxy's /metrics (0 when absent)."""
        return e2e.scrape_metrics(self.admin_port, self.token_file).get(name, 0.0)

    def wait_counter(self, name, at_least, timeout=5.0):
        """Pool counters reach the metrics once a second: waits for name >= at_least."""
        deadline = time.monotonic() + timeout
        while True:
            v = self.counter(name)
            if v >= at_least or time.monotonic() > deadline:
                return v
            time.sleep(0.2)

    def burst(self, paths, method="GET", body_for=None):
        """Sends one stream per path in one write and returns {path: response}."""
        c = e2e.H2Conn("127.0.0.1", self.port)
        self.addCleanup(c.close)
        sids = {}
        for p in paths:
            body = body_for(p) if body_for else None
            m = "POST" if body is not None else method
            sid = c.conn.get_next_available_stream_id()
            c.responses[sid] = e2e.H2Response()
            hdrs = [(":method", m), (":scheme", "http"), (":authority", "pipe.test"),
                    (":path", p)]
            if body is not None:
                hdrs.append(("content-length", str(len(body))))
            c.conn.send_headers(sid, hdrs, end_stream=body is None)
            if body is not None:
                c.conn.send_data(sid, body, end_stream=True)
            sids[p] = sid
        c.flush()
        rs = c.wait(*sids.values())
        rs = rs if isinstance(rs, list) else [rs]
        return dict(zip(sids.keys(), rs))

    def assert_answers(self, out):
        for p, r in out.items():
            self.assertEqual(r.status, 200, (p, r.body))
            doc = json.loads(r.body)
            self.assertEqual(doc["path"], p, "response for %s carried %s" % (p, doc))

    def test_bursts_are_pipelined_in_order(self):
        self.start_with(PipelineBackend())
        self.assert_answers(self.burst(["/warm"]))  # one idle connection to start from
        for round_ in range(3):
            paths = ["/r%d/item/%d" % (round_, i) for i in range(40)]
            self.assert_answers(self.burst(paths))
        with self.backend.lock:
            biggest = max(len(r) for r in self.backend.reads)
            served = self.backend.served
        # several requests arrived in one read, never more than the depth of 8
        self.assertGreater(biggest, 1)
        self.assertLessEqual(biggest, 8)
        self.assertEqual(served, 1 + 3 * 40)
        # what came in one read beyond the first request of each was pipelined
        pipelined = sum(len(r) - 1 for r in self.backend.reads)
        self.assertGreater(pipelined, 0)
        # (a batch split over two reads would make the backend see fewer)
        counted = self.wait_counter('cutover_upstream_pipelined_total{backend="pipe"}', pipelined)
        self.assertGreaterEqual(counted, pipelined)
        self.assertLess(counted, served)
        self.assertEqual(self.wait_counter('cutover_upstream_connects_total{backend="pipe"}',
                                           len(self.backend.conns)), len(self.backend.conns))
        r = e2e.run_h2load("http://127.0.0.1:%d/load" % self.port, n=4000, c=4, m=16,
                           log_dir=self.tmp)
        self.assertEqual((r.succeeded, r.failed, r.errored), (4000, 0, 0), r.text)

    def test_pool_counters_survive_a_reload(self):
        # a reload right after a burst retires the pools that served it; what
        # they counted still reaches /metrics (from the retired generation)
        self.start_with(PipelineBackend())
        self.assert_answers(self.burst(["/warm"]))
        self.assert_answers(self.burst(["/before/%d" % i for i in range(40)]))
        self.proxy.signal(signal.SIGHUP)
        with self.backend.lock:
            pipelined = sum(len(r) - 1 for r in self.backend.reads)
        self.assertGreater(pipelined, 0)
        counted = self.wait_counter('cutover_upstream_pipelined_total{backend="pipe"}', pipelined,
                                    timeout=8)
        self.assertGreaterEqual(counted, pipelined)
        # and the new generation's pools (fresh: warmed up first) count on top
        time.sleep(0.5)  # the workers take the reload at their next loop pass
        self.assert_answers(self.burst(["/warm2"]))
        self.assert_answers(self.burst(["/after/%d" % i for i in range(40)]))
        with self.backend.lock:
            total = sum(len(r) - 1 for r in self.backend.reads)
        self.assertGreater(total, pipelined)
        self.assertGreaterEqual(self.wait_counter(
            'cutover_upstream_pipelined_total{backend="pipe"}', total, timeout=8), total)

    def test_connection_close_mid_pipeline_resends_the_rest(self):
        # every third request on a connection gets `Connection: close`: the
        # requests pipelined behind it are sent again and still answered
        self.start_with(PipelineBackend(close_every=3))
        self.assert_answers(self.burst(["/warm"]))
        for round_ in range(3):
            paths = ["/c%d/item/%d" % (round_, i) for i in range(40)]
            self.assert_answers(self.burst(paths))
        with self.backend.lock:
            closes = self.backend.closes
            self.assertGreater(closes, 5)
            self.assertGreater(max(len(r) for r in self.backend.reads), 1)
        # the requests pipelined behind each close were sent again
        self.assertGreater(self.wait_counter('cutover_upstream_retries_total{backend="pipe"}', 1), 0)
        r = e2e.run_h2load("http://127.0.0.1:%d/load" % self.port, n=3000, c=4, m=16,
                           log_dir=self.tmp)
        self.assertEqual((r.succeeded, r.failed, r.errored), (3000, 0, 0), r.text)

    def test_requests_with_bodies_and_unsafe_methods_are_not_pipelined(self):
        self.start_with(PipelineBackend())
        self.assert_answers(self.burst(["/warm"] + ["/w%d" % i for i in range(20)]))
        paths = ["/g%d" % i for i in range(30)]
        posts = {p for p in paths if int(p[2:]) % 3 == 0}
        out = self.burst(paths, body_for=lambda p: b"x" * 100 if p in posts else None)
        self.assert_answers(out)
        for p in posts:
            doc = json.loads(out[p].body)
            self.assertEqual((doc["method"], doc["length"]), ("POST", 100))
        deletes = self.burst(["/d%d" % i for i in range(10)], method="DELETE")
        self.assert_answers(deletes)
        with self.backend.lock:
            reads = list(self.backend.reads)
        self.assertTrue(any(len(r) > 1 for r in reads), reads)
        for r in reads:
            if "POST" in r or "DELETE" in r:
                self.assertEqual(len(r), 1, "a POST or DELETE arrived pipelined: %s" % r)


if __name__ == "__main__":
    unittest.main()
