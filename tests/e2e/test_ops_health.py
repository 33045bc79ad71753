"""End-to-end: active health checks and outlier ejection send a dial's traffic
back to the old path when the new backend is unhealthy or dies."""

import os
import time

import cutover_e2e as e2e
from test_ops_admin import AdminCase


class TestOpsHealth(AdminCase):
    def setUp(self):
        e2e.CutoverTestCase.setUp(self)
        self.legacy = self.start_demo_backend("legacy")
        self.modern = self.start_demo_backend("modern")
        self.port = e2e.free_port()
        self.admin_port = e2e.free_port()
        self.token_file = os.path.join(self.tmp, "run", "admin.token")

    def start_with(self, modern_health=None):
        cfg = self.config(percent="100%")
        cfg["backends"]["modern"]["outlier"] = {"consecutive_connect_failures": 2,
                                                "base_ejection": "30s"}
        if modern_health:
            cfg["backends"]["modern"]["health"] = modern_health
        self.config_path = self.write_config(cfg)
        self.proxy = self.start_proxy(self.config_path, wait_ports=[self.port, self.admin_port])

    def get(self, device):
        return self.curl("http://127.0.0.1:%d/api/checkout/pay" % self.port,
                         headers={"x-device-id": device})

    def test_unhealthy_new_backend_sends_traffic_back(self):
        # The demo backend answers its health path with 503 when asked to.
        self.start_with(modern_health={"path": "/healthz?status=503", "interval": "200ms",
                                  "timeout": "150ms"})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            m = self.metrics()
            if m.get('cutover_upstream_healthy{backend="modern",host="%s"}'
                     % self.modern.address) == 0:
                break
            time.sleep(0.1)
        # The worker (one) picks verdicts up on its once-a-second tick, which a
        # loaded machine may delay: wait until it has, then every request must
        # go to legacy.
        e2e.wait_until(lambda: self.get("device-0").json()["backend"] == "legacy",
                       interval=0.1, what="the worker to see modern unhealthy")
        for i in range(10):
            r = self.get("device-%d" % i)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["backend"], "legacy")
        m = self.metrics()
        self.assertGreaterEqual(m['cutover_health_checks_total{backend="modern",result="fail"}'], 1)
        self.assertGreaterEqual(m['cutover_upstream_failovers_total{backend="modern"}'], 10)
        self.proxy.wait_for_stderr("backend modern has no usable host", timeout=5)
        _, status = self.api("GET", "/status")
        modern = status["upstreams"]["modern"]
        self.assertTrue(modern["checked"])
        self.assertEqual(modern["hosts"], [{"host": self.modern.address, "healthy": False}])
        self.assertEqual(status["upstreams"]["legacy"]["hosts"][0]["healthy"], True)

    def test_dead_backend_is_ejected_and_traffic_recovers(self):
        self.start_with()
        self.assertEqual(self.get("device-1").json()["backend"], "modern")
        e2e.stop_process(self.modern.proc)
        # Failures until the next tick sees the connect failures and ejects the host.
        recovered = False
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = self.get("device-1")
            if r.status == 200 and r.json()["backend"] == "legacy":
                recovered = True
                break
            time.sleep(0.1)
        self.assertTrue(recovered, "traffic did not fail over to legacy")
        for i in range(5):
            r = self.get("device-%d" % i)
            self.assertEqual((r.status, r.json()["backend"]), (200, "legacy"))
        m = self.metrics()
        self.assertGreaterEqual(m['cutover_upstream_ejections_total{backend="modern"}'], 1)
        self.assertGreaterEqual(m['cutover_upstream_failovers_total{backend="modern"}'], 5)
        self.proxy.wait_for_stderr("backend modern host", timeout=5)


if __name__ == "__main__":
    e2e.main()
