"""Benchmark cutover against the direct backend, nghttpx, nginx and haproxy with h2load.

Run through bench/run.sh BUILD_DIR (see docs/bench.md). Every target is
configured alike: one worker, an h2c frontend (and a TLS h2 frontend), one
HTTP/1.1 keep-alive backend: a single-threaded `cutover demo-backend`
answering a small JSON document. Each process is started on free loopback
ports from a config generated in a temp dir, and stopped by its PID.
"""

import argparse
import datetime
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "e2e"))
import cutover_e2e as e2e  # noqa: E402  (the shared process/port/h2load helpers)

PATH = "/api/checkout"
PROXIES = ("cutover", "cutover-pipelined", "nghttpx", "nginx", "haproxy")
OTHERS = ("nghttpx", "nginx", "haproxy")
# Mirroring: cutover with one shadow and Kafka recording of every pair, nginx with `mirror`.
MIRRORS = ("cutover-mirror", "cutover-mirror-pipelined", "cutover-mirror-shadow-pipelined",
           "nginx-mirror")
# Each cutover mirroring target and the target without mirroring it is compared with.
MIRROR_BASES = (("cutover-mirror", "cutover"), ("cutover-mirror-pipelined", "cutover-pipelined"),
                ("cutover-mirror-shadow-pipelined", "cutover"))
TEMPLATES = {"cutover": "cutover.yaml.in", "cutover-pipelined": "cutover.yaml.in",
             "nghttpx": "nghttpx.conf.in", "nginx": "nginx.conf.in", "haproxy": "haproxy.cfg.in",
             "cutover-mirror": "cutover-mirror.yaml.in",
             "cutover-mirror-pipelined": "cutover-mirror.yaml.in",
             "cutover-mirror-shadow-pipelined": "cutover-mirror.yaml.in",
             "nginx-mirror": "nginx-mirror.conf.in"}
# The `-pipelined` cutover targets turn on HTTP/1.1 pipelining to the backends
# (backend `pipeline:`, docs/upstreams.md); the others keep the default (off).
PIPELINE = 8
# ...and, in cutover-mirror-pipelined, a deeper one to the shadow: nothing waits for its
# answers, so bigger batches cost no client latency and save the worker system calls.
# cutover-mirror-shadow-pipelined pipelines to the shadow only: its primary path is that of
# `cutover`, without pipelining.
SHADOW_PIPELINE = 64


def pipelines(name):
    """(primary, shadow) pipeline depths of a target."""
    if name.endswith("-shadow-pipelined"):
        return 1, SHADOW_PIPELINE
    if name.endswith("-pipelined"):
        return PIPELINE, SHADOW_PIPELINE
    return 1, 1
# The primary's latency with a normal and a 500 ms slow shadow, at a light fixed rate.
SLOW_SHADOW_MS = 500
SLOW_C, SLOW_RPS = 4, 100


class Row:
    """One line of the results table."""

    def __init__(self, name, proto, result=None, note="", cpu=None):
        self.name, self.proto, self.result, self.note = name, proto, result, note
        self.cpu = cpu  # CpuUse of the measured run, or None


CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_tree(root):
    """root and every descendant process (nginx and nghttpx fork their workers)."""
    parent = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in tree:
            continue
        tree.add(pid)
        todo += [c for c, pp in parent.items() if pp == pid]
    return tree


def proc_cpu(pids):
    """(user, system) seconds used so far by these processes (all their threads)."""
    user = system = 0.0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11]) / CLK_TCK
        system += int(fields[12]) / CLK_TCK
    return user, system


def machine_busy():
    """Seconds of CPU time the whole machine has spent not idle so far (all CPUs)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / CLK_TCK


class CpuUse:
    """CPU time of one measured run, per request: the target's user and system time
    and the whole machine's (every process: h2load, backends, broker, the target)."""

    def __init__(self, pids, backend_pids=()):
        self.pids, self.backend_pids = pids, set(backend_pids)
        self.t0, self.b0 = proc_cpu(pids), sum(proc_cpu(self.backend_pids))
        self.m0 = machine_busy()

    def finish(self, requests):
        u1, s1 = proc_cpu(self.pids)
        n = max(requests, 1)
        self.user_us = (u1 - self.t0[0]) * 1e6 / n
        self.sys_us = (s1 - self.t0[1]) * 1e6 / n
        self.backends_us = (sum(proc_cpu(self.backend_pids)) - self.b0) * 1e6 / n
        self.machine_us = (machine_busy() - self.m0) * 1e6 / n
        return self


def fmt_us(us):
    if us is None:
        return "-"
    if us >= 1e6:
        return "%.2fs" % (us / 1e6)
    if us >= 1000:
        return "%.2fms" % (us / 1000)
    return "%.0fus" % us


def tool_version(argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    text = (p.stdout + p.stderr).strip().splitlines()
    return text[0] if text else "?"


class Bench:
    def __init__(self, args):
        self.args = args
        self.bin = os.path.abspath(os.path.join(args.build_dir, "cutover"))
        self.dir = tempfile.mkdtemp(prefix="cutover-bench-")
        self.procs = []
        self.rows = []
        self.direct_rps = None
        self.rps = {}        # (target, protocol) -> req/s
        self.recorded = {}
        self.cpu = {}        # (target, protocol) -> CpuUse   # target -> (delivered, spilled, dropped, requests sent)
        self.shadow_port = None
        self.target = None   # the proxy process under test (its CPU time is reported)
        self.load_before = os.getloadavg()[0]
        self.rounds = {}     # (plain, mirror) -> the mirror/plain ratio of each interleaved round

    # processes -----------------------------------------------------------------

    def start(self, name, argv, ports, cwd=None):
        proc = e2e.start_process(argv, name=name, log_dir=self.dir, wait_port=ports,
                                 timeout=10.0, cwd=cwd)
        self.procs.append(proc)
        return proc

    def stop(self, proc):
        e2e.stop_process(proc, 5.0)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self):
        for proc in reversed(self.procs):
            e2e.stop_process(proc, 5.0)
        self.procs = []

    # measuring -----------------------------------------------------------------

    def h2load(self, url, h1=False, c=None, m=None):
        a = self.args
        c, m = c or a.c, m or a.m
        warm = max(1000, a.n // 10)
        e2e.run_h2load(url, n=warm, c=c, m=m, t=a.t, h1=h1, log_dir=self.dir, timeout=a.timeout)
        pids = proc_tree(self.target.pid) if self.target else set()
        use = CpuUse(pids, [p.pid for p in self.procs if p.name in ("backend", "shadow")])
        r = e2e.run_h2load(url, n=a.n, c=c, m=m, t=a.t, h1=h1, log_dir=self.dir,
                           timeout=a.timeout)
        r.cpu = use.finish(r.total)
        if not pids:
            r.cpu.user_us = r.cpu.sys_us = None
        return r

    def measure(self, name, proto, url, h1=False, c=None, m=None, runner=None):
        try:
            r = runner(url) if runner else self.h2load(url, h1=h1, c=c, m=m)
        except (e2e.HarnessError, subprocess.TimeoutExpired) as exc:
            self.add(Row(name, proto, note="h2load failed: %s" % str(exc).splitlines()[0]))
            return None
        note = ""
        if r.failed or r.errored or r.timeout or r.s2xx != r.total:
            note = "%d failed, %d errored, %d timeout, %d non-2xx" % (
                r.failed, r.errored, r.timeout, r.total - r.s2xx)
        self.add(Row(name, proto, r, note, cpu=getattr(r, "cpu", None)))
        self.rps[(name, proto)] = r.req_per_s
        if getattr(r, "cpu", None):
            self.cpu[(name, proto)] = r.cpu
        return r

    def add(self, row):
        self.rows.append(row)
        print(self.format_row(row, plain=True), flush=True)

    # targets -------------------------------------------------------------------

    def run(self):
        a = self.args
        certs = os.path.join(self.dir, "certs")
        subprocess.run([os.path.join(SOURCE_DIR, "scripts", "gen-cert.sh"), certs], check=True,
                       capture_output=True)
        self.cert = os.path.join(certs, "cert.pem")
        self.key = os.path.join(certs, "key.pem")
        self.pem = os.path.join(certs, "cert-and-key.pem")
        with open(self.pem, "w") as out:
            for p in (self.cert, self.key):
                with open(p) as f:
                    out.write(f.read())

        backend_port = e2e.free_port()
        try:
            self.start("backend", [self.bin, "demo-backend", "--name", "direct", "--listen",
                                   "127.0.0.1:%d" % backend_port, "--protocol", "http1",
                                   "--threads", "1"], [backend_port])
        except e2e.HarnessError as exc:
            print("bench: the demo backend did not start: %s" % exc, file=sys.stderr)
            return 1
        self.backend_port = backend_port
        if "direct" in a.targets:
            r = self.measure("direct backend", "h1", "http://127.0.0.1:%d%s" % (backend_port, PATH),
                             h1=True)
            self.direct_rps = r.req_per_s if r else None
            # The same backend without pipelining, at the concurrency a proxy's
            # backend pool can reach: what the proxies can at most get from it.
            conns = min(a.c * a.m, a.backend_conns)
            self.measure("direct, -m 1", "h1", "http://127.0.0.1:%d%s" % (backend_port, PATH),
                         h1=True, c=conns, m=1)
        for name in PROXIES:
            if name in a.targets:
                self.run_proxy(name)
        if any(t in a.targets for t in MIRRORS + ("slow-shadow",)):
            self.shadow_port = e2e.free_port()
            self.start("shadow", [self.bin, "demo-backend", "--name", "shadow", "--listen",
                                  "127.0.0.1:%d" % self.shadow_port, "--protocol", "http1",
                                  "--threads", "1"], [self.shadow_port])
        for name in MIRRORS:
            if name in a.targets:
                self.run_proxy(name)
        for mirror, plain in MIRROR_BASES:
            if a.rounds > 0 and plain in a.targets and mirror in a.targets:
                self.run_rounds(plain, mirror)
        if "slow-shadow" in a.targets:
            self.run_slow_shadow()
        self.stop_all()
        return 0

    def light_h2load(self, url):
        """A fixed, light load: latency, not throughput, is measured."""
        a = self.args
        n = SLOW_C * SLOW_RPS * (5 if a.n <= 20000 else 15)
        return e2e.run_h2load(url, n=n, c=SLOW_C, m=1, t=1, log_dir=self.dir,
                              extra=["--rps=%d" % SLOW_RPS], timeout=a.timeout)

    def run_slow_shadow(self):
        """cutover mirroring to a normal shadow, then to one 500 ms slower, at the same rate."""
        slow_port = e2e.free_port()
        self.start("slow-shadow", [sys.executable, os.path.join(HERE, "slow_backend.py"),
                                   str(slow_port), str(SLOW_SHADOW_MS)], [slow_port])
        for label, shadow in (("shadow ok", self.shadow_port),
                              ("shadow +500ms", slow_port)):
            port, tls_port = e2e.free_port(), e2e.free_port()
            v = self.values(port, tls_port)
            v["shadow_port"] = shadow
            cfg = self.render("cutover-mirror.yaml.in", v, "cutover-slow.yaml")
            proc = self.start("cutover-slow", [self.bin, "proxy", "-c", cfg], [port, tls_port],
                              cwd=self.dir)
            self.measure("primary, " + label, "h2c", "http://127.0.0.1:%d%s" % (port, PATH),
                         runner=self.light_h2load)
            self.stop(proc)

    def run_rounds(self, plain, mirror):
        """The mirroring ratio again, with both proxies running and their h2load runs taking
        turns (plain, mirror, plain, ...): the host's speed drifts over minutes, and the table's
        two rows are measured minutes apart."""
        a = self.args
        procs, urls = [], []
        try:
            for name in (plain, mirror):
                port, tls_port = e2e.free_port(), e2e.free_port()
                tmpl = TEMPLATES[name]
                cfg = self.render(tmpl, self.values(port, tls_port, *pipelines(name)),
                                  name + "-rounds." + tmpl.split(".")[-2])
                procs.append(self.start(name + "-rounds", [self.bin, "proxy", "-c", cfg],
                                        [port, tls_port], cwd=self.dir))
                urls.append("http://127.0.0.1:%d%s" % (port, PATH))
            for url in urls:  # warm-up
                e2e.run_h2load(url, n=max(1000, a.n // 10), c=a.c, m=a.m, t=a.t,
                               log_dir=self.dir, timeout=a.timeout)
            ratios = []
            for _ in range(a.rounds):
                rps = [e2e.run_h2load(url, n=a.n, c=a.c, m=a.m, t=a.t, log_dir=self.dir,
                                      timeout=a.timeout).req_per_s for url in urls]
                ratios.append(rps[1] / rps[0] if rps[0] else 0.0)
                print("round: %s %.0f req/s, %s %.0f req/s: %.2f x"
                      % (plain, rps[0], mirror, rps[1], ratios[-1]), flush=True)
            self.rounds[(plain, mirror)] = ratios
        except (e2e.HarnessError, subprocess.TimeoutExpired) as exc:
            print("bench: rounds %s / %s failed: %s" % (mirror, plain, str(exc).splitlines()[0]),
                  file=sys.stderr)
        finally:
            for proc in procs:
                self.stop(proc)

    def values(self, port, tls_port, pipeline=1, shadow_pipeline=1):
        return {"port": port, "tls_port": tls_port, "backend_port": self.backend_port,
                "pipeline": pipeline, "shadow_pipeline": shadow_pipeline,
                "shadow_port": self.shadow_port,
                "backend_conns": self.args.backend_conns, "cert": self.cert, "key": self.key,
                "pem": self.pem, "dir": self.dir}

    def render(self, template, values, out_name):
        with open(os.path.join(HERE, template)) as f:
            text = e2e.render_template(f.read(), values)
        path = os.path.join(self.dir, out_name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def run_proxy(self, name):
        exe = {"cutover": self.bin, "nghttpx": "nghttpx", "nginx": "nginx",
               "haproxy": "haproxy"}[name.split("-")[0]]
        if name != "cutover" and not shutil.which(exe):
            self.add(Row(name, "h2c", note="skipped: %s is not installed "
                         "(scripts/deps.sh bench)" % exe))
            return
        port, tls_port = e2e.free_port(), e2e.free_port()
        v = self.values(port, tls_port, *pipelines(name))
        tmpl = TEMPLATES[name]
        cfg = self.render(tmpl, v, name + "." + tmpl.split(".")[-2])
        if exe == self.bin:
            argv = [self.bin, "proxy", "-c", cfg]
        elif exe == "nghttpx":
            argv = ["nghttpx", "--conf=" + cfg]
        elif exe == "nginx":
            argv = ["nginx", "-p", self.dir, "-e", os.path.join(self.dir, name + "-error.log"),
                    "-c", cfg]
        else:
            argv = ["haproxy", "-db", "-f", cfg]
        try:
            proc = self.start(name, argv, [port, tls_port], cwd=self.dir)
        except e2e.HarnessError as exc:
            lines = [l for l in str(exc).splitlines()[1:] if l.strip()]
            why = lines[-1].strip() if lines else str(exc).splitlines()[0]
            self.add(Row(name, "h2c", note="skipped: did not start: %s" % why[:100]))
            return
        self.target = proc
        r = self.measure(name, "h2c", "http://127.0.0.1:%d%s" % (port, PATH))
        if self.args.tls and name not in MIRRORS:
            self.measure(name, "h2+TLS", "https://127.0.0.1:%d%s" % (tls_port, PATH))
        self.target = None
        self.stop(proc)
        if name.startswith("cutover-mirror") and r:
            # the proxy logs what its recorder did when it stops
            m = re.search(r"recording: (\d+) delivered, (\d+) spilled, (\d+) dropped",
                          proc.stderr_text())
            sent = r.total + max(1000, self.args.n // 10)  # the warm-up run is recorded too
            if m:
                self.recorded[name] = tuple(int(x) for x in m.groups()) + (sent,)

    def mirror_summary(self):
        """Ratios of the mirroring rows against their goals (issue: >= 0.6 x cutover, >= 3 x nginx)."""
        lines = []
        for name, plain in MIRROR_BASES:
            cm = self.rps.get((name, "h2c"))
            for base, goal in ((plain, 0.6), ("nginx-mirror", 3.0)):
                b = self.rps.get((base, "h2c"))
                if cm and b:
                    lines.append("%s / %s (h2c): %.2f x (goal >= %.1f x)" % (name, base, cm / b, goal))
            ratios = self.rounds.get((plain, name))
            if ratios:
                lines.append("%s / %s (h2c), %d interleaved rounds: median %.2f x (%s; "
                             "goal >= 0.6 x)" % (name, plain, len(ratios), statistics.median(ratios),
                                                 ", ".join("%.2f" % r for r in ratios)))
            rec = self.recorded.get(name)
            if rec:
                lines.append("%s recorded %d pairs for %d requests: %d delivered to Kafka, "
                             "%d spilled, %d dropped" % (name, rec[0] + rec[1] + rec[2], rec[3],
                                                        rec[0], rec[1], rec[2]))
        c, m = self.cpu.get(("cutover", "h2c")), self.cpu.get(("cutover-mirror", "h2c"))
        if c and m and m.machine_us > 0 and m.user_us is not None:
            lines.append(
                "CPU per request, whole machine: cutover %.1f us (itself %.1f, backend %.1f), "
                "cutover-mirror %.1f us (itself %.1f with the embedded broker, backend + shadow "
                "%.1f): a mirrored request costs %.2f x a plain one, so where the CPUs are the limit the "
                "ratio tends to %.2f x"
                % (c.machine_us, c.user_us + c.sys_us, c.backends_us, m.machine_us,
                   m.user_us + m.sys_us, m.backends_us, m.machine_us / c.machine_us,
                   c.machine_us / m.machine_us))
        ok = [r for r in self.rows if r.name.startswith("primary, ") and r.result]
        if len(ok) == 2:
            a, b = ok[0].result, ok[1].result
            lines.append("primary latency with a %d ms slow shadow vs a normal one: p50 %s vs %s, "
                         "p99 %s vs %s" % (SLOW_SHADOW_MS, fmt_us(b.p50_us), fmt_us(a.p50_us),
                                           fmt_us(b.p99_us), fmt_us(a.p99_us)))
        return lines

    def speed_summary(self):
        """Each cutover target against the best other proxy: req/s ratio (goal >= 1.2 x) and p99."""
        lines = []
        for proto in ("h2c", "h2+TLS"):
            others = [(n, self.rps[(n, proto)]) for n in OTHERS if (n, proto) in self.rps]
            if not others:
                continue
            best, best_rps = max(others, key=lambda x: x[1])
            p99 = {r.name: r.result.p99_us for r in self.rows
                   if r.proto == proto and r.result is not None}
            for name in ("cutover", "cutover-pipelined"):
                rps = self.rps.get((name, proto))
                if not rps:
                    continue
                lines.append("%s / best other proxy (%s, %s): %.2f x in req/s (goal >= 1.2 x); "
                             "p99 %s vs %s" % (name, best, proto, rps / best_rps,
                                               fmt_us(p99.get(name)), fmt_us(p99.get(best))))
        return lines

    def cpu_summary(self):
        """Where each request's CPU time goes, and what that allows at most: with every
        core busy, req/s cannot exceed cores / (CPU time per request). For cutover the
        ceiling is also computed as if its user-space time were zero, i.e. what its
        kernel work (sockets, loopback TCP, wake-ups) and the rest of the machine allow."""
        lines = []
        ncpu = os.cpu_count() or 1
        for proto in ("h2c", "h2+TLS"):
            c = self.cpu.get(("cutover", proto))
            others = [(n, self.rps[(n, proto)]) for n in OTHERS if (n, proto) in self.rps]
            if not c or c.user_us is None or not others or c.machine_us <= 0:
                continue
            best, best_rps = max(others, key=lambda x: x[1])
            rest = c.machine_us - c.user_us - c.sys_us
            ceiling = ncpu * 1e6 / max(c.machine_us - c.user_us, 1e-9)
            need = ncpu * 1e6 / (1.2 * best_rps) - (c.machine_us - c.user_us)
            lines.append(
                "cutover %s: %.1f us/req in user space, %.1f in the kernel, %.1f for the rest of "
                "the machine (backend %.1f, h2load and the rest %.1f); even with zero user-space "
                "time the CPU-bound ceiling is %.0f req/s = %.2f x the best other proxy (%s, "
                "%.0f req/s); 1.2 x it would leave %.1f us/req of user-space time"
                % (proto, c.user_us, c.sys_us, rest, c.backends_us, rest - c.backends_us,
                   ceiling, ceiling / best_rps, best, best_rps, need))
        return lines

    # reporting -----------------------------------------------------------------

    def cells(self, row):
        r = row.result
        if r is None:
            return [row.name, row.proto] + ["-"] * 9 + [row.note]
        ratio = "%.2f x" % (r.req_per_s / self.direct_rps) if self.direct_rps else "-"
        cpu = row.cpu
        usr = "%.1f" % cpu.user_us if cpu and cpu.user_us is not None else "-"
        sys_ = "%.1f" % cpu.sys_us if cpu and cpu.sys_us is not None else "-"
        mach = "%.1f" % cpu.machine_us if cpu else "-"
        return [row.name, row.proto, "%.0f" % r.req_per_s, fmt_us(r.mean_us), fmt_us(r.p50_us),
                fmt_us(r.p99_us), fmt_us(r.max_us), ratio, usr, sys_, mach, row.note]

    HEAD = ["target", "protocol", "req/s", "mean", "p50", "p99", "max", "vs direct",
            "usr us/req", "sys us/req", "all us/req", "note"]
    FMT = "%-31s %-7s %10s %9s %9s %9s %9s %9s %10s %10s %10s  %s"

    def format_row(self, row, plain=False):
        return self.FMT % tuple(self.cells(row))

    def table_text(self):
        lines = [self.FMT % tuple(self.HEAD)]
        lines += [self.format_row(r) for r in self.rows]
        return "\n".join(lines)

    def table_markdown(self):
        lines = ["| " + " | ".join(self.HEAD) + " |",
                 "|" + "|".join(["---"] * 2 + ["---:"] * 9 + ["---"]) + "|"]
        for r in self.rows:
            lines.append("| " + " | ".join(self.cells(r)) + " |")
        return "\n".join(lines)

    def write_markdown(self, path):
        a = self.args
        cpu = "?"
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        cpu = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        versions = [
            tool_version([self.bin, "version"]),
            tool_version(["h2load", "--version"]),
            tool_version(["nghttpx", "--version"]),
            tool_version(["nginx", "-v"]),
            tool_version(["haproxy", "-v"]),
        ]
        text = [
            "# Benchmark results",
            "",
            "Generated by `bench/run.sh` on %s UTC." % datetime.datetime.utcnow().strftime(
                "%Y-%m-%d %H:%M"),
            "",
            "- load: `h2load -n %d -c %d -m %d -t %d` per target (after a warm-up run), "
            "path `%s`" % (a.n, a.c, a.m, a.t, PATH),
            "- machine: %s, %d CPUs, %s %s; load average %.2f before the run, %.2f after"
            % (cpu, os.cpu_count() or 0, platform.system(), platform.release(), self.load_before,
               os.getloadavg()[0]),
            "- backend: `cutover demo-backend`, HTTP/1.1, one thread; the `direct backend` row is "
            "`h2load --h1` against it (pipelined, -m %d: the ratio baseline), `direct, -m 1` the "
            "same without pipelining over %d connections" % (a.m, min(a.c * a.m, a.backend_conns)),
            "- every proxy: one worker, up to %d keep-alive connections to the backend"
            % a.backend_conns,
            "- latencies: mean and max as h2load reports them, p50/p99 from its `--log-file`",
            "- versions: " + "; ".join(versions),
            "",
            self.table_markdown(),
            "",
        ] + ["- " + l for l in self.speed_summary() + self.mirror_summary() + self.cpu_summary()] + [
            "",
            "How to read this table: docs/bench.md.",
            "",
        ]
        with open(path, "w") as f:
            f.write("\n".join(text))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build_dir")
    quick = os.environ.get("BENCH_QUICK") == "1"
    ap.add_argument("-n", type=int, default=int(os.environ.get("BENCH_N",
                                                                20000 if quick else 200000)))
    ap.add_argument("-c", type=int, default=int(os.environ.get("BENCH_C", 32)))
    ap.add_argument("-m", type=int, default=int(os.environ.get("BENCH_M", 10)))
    ap.add_argument("-t", type=int, default=int(os.environ.get("BENCH_T", 1)))
    ap.add_argument("--targets", default=os.environ.get(
        "BENCH_TARGETS", "direct cutover cutover-pipelined nghttpx nginx haproxy cutover-mirror "
        "cutover-mirror-pipelined cutover-mirror-shadow-pipelined nginx-mirror slow-shadow"))
    ap.add_argument("--no-tls", dest="tls", action="store_false",
                    default=os.environ.get("BENCH_TLS", "1") != "0")
    ap.add_argument("--backend-conns", type=int, default=int(os.environ.get("BENCH_BACKEND_CONNS", 0)),
                    help="backend connections per proxy (default c * m: one per stream in flight)")
    ap.add_argument("--out", default=os.environ.get("BENCH_OUT",
                                                    os.path.join(HERE, "results.md")))
    ap.add_argument("--timeout", type=int, default=600, help="seconds per h2load run")
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", 3)),
                    help="interleaved rounds of each mirroring ratio (0: none)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir with configs and logs")
    args = ap.parse_args()
    args.targets = args.targets.replace(",", " ").split()
    if args.backend_conns <= 0:
        args.backend_conns = args.c * args.m
    if not e2e.have_tool("h2load"):
        print("bench: h2load is not installed (scripts/deps.sh bench)", file=sys.stderr)
        return 1
    b = Bench(args)
    e2e.CUTOVER_BIN = b.bin
    print("bench: h2load -n %d -c %d -m %d -t %d; configs and logs in %s"
          % (args.n, args.c, args.m, args.t, b.dir), flush=True)
    print(Bench.FMT % tuple(Bench.HEAD), flush=True)
    try:
        rc = b.run()
        if rc == 0:
            print("\n" + b.table_text())
            for line in b.speed_summary() + b.mirror_summary() + b.cpu_summary():
                print(line)
            b.write_markdown(args.out)
            print("\nbench: wrote %s" % args.out)
    finally:
        b.stop_all()
        if args.keep:
            print("bench: kept %s" % b.dir)
        else:
            shutil.rmtree(b.dir, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
