"""Shared harness for cutover's end-to-end tests (unittest, Debian's /usr/bin/python3).

A test module does:

    import cutover_e2e as e2e

    class TestSomething(e2e.CutoverTestCase):
        def test_x(self):
            legacy = self.start_demo_backend("legacy")
            r = self.curl(legacy.url("/api/checkout"), http="1.1")
            self.assertEqual(r.status, 200)

    if __name__ == "__main__":
        e2e.main()

Every process a test starts is stopped by its PID when the test ends, passes
or fails (SIGTERM, then SIGKILL after a grace period), and again at interpreter
exit for anything left. Each test gets its own temporary directory (self.tmp),
removed after a passing test and kept (its path printed, with the tail of each
process's stderr) after a failing one, or always with CUTOVER_E2E_KEEP=1.

Paths come from the environment, as tests/CMakeLists.txt sets it:
CUTOVER_BIN (the cutover executable) and CUTOVER_SOURCE_DIR (the source tree).
"""

import atexit
import hashlib
import itertools
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

SOURCE_DIR = os.environ.get("CUTOVER_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
CUTOVER_BIN = os.environ.get("CUTOVER_BIN") or os.path.join(SOURCE_DIR, "build", "cutover")
GEN_CERT = os.path.join(SOURCE_DIR, "scripts", "gen-cert.sh")
KEEP = os.environ.get("CUTOVER_E2E_KEEP") == "1"


class HarnessError(Exception):
    """A process did not start, a tool failed, or its output could not be read."""


# ------------------------------------------------------------------ scratch space

_scratch_dir = None
_seq = itertools.count(1)  # next() on a count is atomic: safe from client threads


def scratch_dir():
    """A temp dir for logs and scratch files of helpers called without a test's
    own dir; removed at interpreter exit."""
    global _scratch_dir
    if _scratch_dir is None:
        _scratch_dir = tempfile.mkdtemp(prefix="cutover-e2e-scratch-")
    return _scratch_dir


def _unique(prefix):
    return "%s.%d.%d" % (prefix, os.getpid(), next(_seq))


# --------------------------------------------------------------------------- ports

_handed_out = set()


def _ephemeral_range():
    """The kernel's range for outgoing connections' local ports."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host="127.0.0.1"):
    """Returns a loopback TCP port that is free now. It is picked at random
    below the kernel's ephemeral range: a port from that range (what binding
    to port 0 gives) can be taken by any outgoing connection on the machine
    (other tests' clients, the proxy's upstream connections) before the
    process it is meant for binds it. Ports already handed out by this
    process are never repeated, so several ports picked before starting
    anything do not collide."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    lo, _ = _ephemeral_range()
    first = 10000 if lo > 12000 else 1024
    for _ in range(200):
        port = random.randrange(first, lo) if lo > first + 1000 else 0
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise HarnessError("no free port found")


def port_open(host, port, timeout=0.2):
    """True when host:port accepts a TCP connection."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tcp_established(port):
    """How many ESTABLISHED TCP connections on this machine have local port
    `port`: the connections a server listening there has accepted (read from
    /proc/net/tcp and /proc/net/tcp6)."""
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        n += 1
        except OSError:
            pass
    return n


def wait_until(cond, timeout=10.0, what="condition", interval=0.02):
    """Polls cond() until it is true; raises HarnessError after `timeout`
    seconds (doubled under the sanitizers)."""
    deadline = time.monotonic() + timeout * (2 if sanitized() else 1)
    while True:
        if cond():
            return
        if time.monotonic() >= deadline:
            raise HarnessError("timed out waiting for %s" % what)
        time.sleep(interval)


def scrape_metrics(admin_port, token_file, host="127.0.0.1"):
    """GET /metrics from the admin API (bearer token read from token_file);
    returns {"name{labels}": value} for every sample."""
    import urllib.request
    with open(token_file) as f:
        token = f.read().strip()
    req = urllib.request.Request("http://%s:%d/metrics" % (host, admin_port),
                                 headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def read_json_lines(path, want, timeout=3.0):
    """The JSON lines of `path` (an access log), once there are at least `want` of them or
    `timeout` seconds have passed; a file not there yet counts as empty."""
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                lines = [json.loads(l) for l in f if l.strip()]
        except OSError:
            lines = []
        if len(lines) >= want:
            break
        time.sleep(0.05)
    return lines


# ----------------------------------------------------------------------- processes

_live = {}  # pid -> Proc, for the atexit sweep


class Proc:
    """A started process: its Popen, a name for messages, and log files."""

    def __init__(self, popen, name, argv, stdout_path, stderr_path):
        self.popen = popen
        self.pid = popen.pid
        self.name = name
        self.argv = argv
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path

    def alive(self):
        return self.popen.poll() is None

    @property
    def returncode(self):
        return self.popen.poll()

    def stderr_text(self, tail=None):
        return _read_tail(self.stderr_path, tail)

    def stdout_text(self, tail=None):
        return _read_tail(self.stdout_path, tail)

    def rss_kib(self):
        """The resident set size in KiB (VmRSS), from /proc."""
        return rss_kib(self.pid)

    def peak_rss_kib(self):
        """The peak resident set size in KiB (VmHWM), from /proc."""
        return rss_kib(self.pid, field="VmHWM")

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, grace=3.0):
        """SIGTERM, wait up to `grace` seconds, then SIGKILL. Returns the exit
        status (negative: killed by that signal)."""
        return stop_process(self, grace)

    def wait_for_stderr(self, pattern, timeout=10.0):
        """Waits until a line of the process's stderr matches the regular
        expression `pattern`; returns the match. Raises HarnessError when the
        process exits or the timeout passes first."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.stderr_text())
            if m:
                return m
            if not self.alive():
                raise HarnessError("%s exited (status %s) before printing /%s/; stderr:\n%s"
                                   % (self.name, self.returncode, pattern, self.stderr_text(40)))
            if time.monotonic() > deadline:
                raise HarnessError("%s printed no /%s/ within %.1fs; stderr:\n%s"
                                   % (self.name, pattern, timeout, self.stderr_text(40)))
            time.sleep(0.02)

    def wait_exit(self, timeout):
        """Waits for the process to exit on its own; returns its status or raises
        HarnessError on timeout."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise HarnessError("%s (pid %d) still running after %.1fs" % (self.name, self.pid, timeout))

    def __repr__(self):
        return "<Proc %s pid=%d>" % (self.name, self.pid)


def _read_tail(path, tail):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    if tail:
        text = "\n".join(text.splitlines()[-tail:])
    return text


def rss_kib(pid, field="VmRSS"):
    """Reads `field` (VmRSS, VmHWM...) of /proc/PID/status, in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise HarnessError("no %s for pid %d" % (field, pid))


def start_process(argv, name=None, log_dir=None, env=None, cwd=None, wait_port=None,
                  host="127.0.0.1", timeout=10.0):
    """Starts argv with stdout and stderr going to files in log_dir; when
    wait_port is given (one port or a list), waits until each accepts
    connections. On failure to start (exit, timeout) the process is stopped and
    HarnessError carries its stderr."""
    name = name or os.path.basename(argv[0])
    log_dir = log_dir or scratch_dir()
    base = os.path.join(log_dir, _unique(name))
    out_path, err_path = base + ".stdout", base + ".stderr"
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    # In sanitizer builds, freed memory waits in ASan's quarantine (256 MiB by
    # default), which would hide or fake growth in bounded-memory tests.
    asan = full_env.get("ASAN_OPTIONS", "")
    if "quarantine_size_mb" not in asan:
        full_env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "quarantine_size_mb=16"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        popen = subprocess.Popen([str(a) for a in argv], stdout=out, stderr=err,
                                 stdin=subprocess.DEVNULL, env=full_env, cwd=cwd)
    proc = Proc(popen, name, argv, out_path, err_path)
    _live[proc.pid] = proc
    if wait_port is not None:
        ports = wait_port if isinstance(wait_port, (list, tuple)) else [wait_port]
        try:
            for p in ports:
                wait_for_port(host, p, timeout, proc)
        except HarnessError:
            stop_process(proc, 1.0)
            raise
    return proc


def wait_for_port(host, port, timeout=10.0, proc=None):
    """Waits until host:port accepts connections. If proc exits first, or the
    timeout passes, raises HarnessError with proc's stderr."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        if proc is not None and not proc.alive():
            raise HarnessError("%s exited with status %s before listening on %s:%d; stderr:\n%s"
                               % (proc.name, proc.returncode, host, port, proc.stderr_text(40)))
        time.sleep(0.02)
    detail = ""
    if proc is not None:
        detail = "; stderr of %s:\n%s" % (proc.name, proc.stderr_text(40))
    raise HarnessError("nothing listens on %s:%d after %.1fs%s" % (host, port, timeout, detail))


def stop_process(proc, grace=3.0):
    """Stops proc by its PID: SIGTERM, then SIGKILL after `grace` seconds."""
    popen = proc.popen if isinstance(proc, Proc) else proc
    if popen.poll() is None:
        try:
            popen.send_signal(signal.SIGTERM)
            popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(timeout=5)
        except ProcessLookupError:
            pass
    _live.pop(popen.pid, None)
    return popen.returncode


@atexit.register
def _stop_all():
    for proc in list(_live.values()):
        stop_process(proc, 1.0)
    if _scratch_dir and not KEEP:
        shutil.rmtree(_scratch_dir, ignore_errors=True)


# ------------------------------------------------------------------- YAML configs

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def _yaml_scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return repr(v)
    s = str(v)
    if _PLAIN.match(s) and s.lower() not in _RESERVED:
        return s
    return json.dumps(s)  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(obj, indent=0):
    """Renders dicts, lists and scalars as block-style YAML (keys in the given
    order). Strings that could be misread are double-quoted."""
    pad = "  " * indent
    lines = []
    if isinstance(obj, dict):
        if not obj:
            return pad + "{}\n"
        for k, v in obj.items():
            key = _yaml_scalar(k)
            if isinstance(v, (dict, list)) and v:
                lines.append("%s%s:\n%s" % (pad, key, to_yaml(v, indent + 1)))
            elif isinstance(v, dict):
                lines.append("%s%s: {}\n" % (pad, key))
            elif isinstance(v, list):
                lines.append("%s%s: []\n" % (pad, key))
            else:
                lines.append("%s%s: %s\n" % (pad, key, _yaml_scalar(v)))
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, (dict, list)) and v:
                inner = to_yaml(v, indent + 1)
                # put the first line after the dash
                lines.append("%s- %s" % (pad, inner[len(pad) + 2:]))
            else:
                lines.append("%s- %s\n" % (pad, _yaml_scalar(v) if not isinstance(v, (dict, list))
                                          else ("{}" if isinstance(v, dict) else "[]")))
    else:
        lines.append(pad + _yaml_scalar(obj) + "\n")
    return "".join(lines)


def proxy_config(port, backends, routes=None, tls_port=None, certs=None, workers=1, **extra):
    """A minimal config dict for `cutover proxy` (see docs/config.md), to adjust
    before write_config(): a cleartext listener on 127.0.0.1:port (h2c and
    HTTP/1.1), a TLS listener on tls_port when given (certs: a gen_cert()
    dict), backends {name: DemoBackend or (address, protocol)}, routes (default:
    everything to the first backend), the admin API and recording off, and
    any other top-level keys from **extra."""
    listeners = [{"name": "plain", "listen": "127.0.0.1:%d" % port}]
    if tls_port:
        listeners.append({"name": "tls", "listen": "127.0.0.1:%d" % tls_port,
                          "tls": {"cert": certs["cert"], "key": certs["key"]}})
    groups = {}
    for name, b in backends.items():
        if isinstance(b, DemoBackend):
            groups[name] = {"hosts": [b.address], "protocol": "h2" if b.tls and b.protocol == "h2c"
                            else b.protocol if b.protocol != "auto" else "http1"}
            if b.tls:
                groups[name]["tls"] = {"ca": b.tls["ca"]}
        else:
            address, protocol = b
            groups[name] = {"hosts": [address], "protocol": protocol}
    cfg = {"workers": workers, "listeners": listeners, "backends": groups,
           "routes": routes or [{"name": "default", "backend": next(iter(backends))}],
           "logging": {"level": "warn"}}
    cfg.update(extra)
    return cfg


def render_template(text, values):
    """Replaces every {{name}} in text with str(values[name]); an unknown name
    is an error. ${ENV} and YAML braces are left alone."""
    def sub(m):
        key = m.group(1)
        if key not in values:
            raise HarnessError("template names {{%s}} but no value was given" % key)
        return str(values[key])
    return re.sub(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", sub, text)


# --------------------------------------------------------------------- client tools

_sanitized = {}


def sanitized(path=None):
    """True when the executable (default CUTOVER_BIN) was built with
    AddressSanitizer: memory bounds in tests then allow for its shadow memory
    and quarantine."""
    path = path or CUTOVER_BIN
    if path not in _sanitized:
        try:
            with open(path, "rb") as f:
                _sanitized[path] = b"__asan_init" in f.read()
        except OSError:
            _sanitized[path] = False
    return _sanitized[path]


def have_tool(name):
    return shutil.which(name) is not None


class CurlResult:
    """One curl run: status (0 when none), headers (lower-case name -> list of
    values, of the last response), body (bytes), rc (curl's exit code),
    http_version ("1.1", "2"), time_total and time_starttransfer (seconds),
    stderr text."""

    def __init__(self, rc, info, headers, body, stderr):
        self.rc = rc
        self.info = info
        self.status = int(info.get("http_code") or info.get("response_code") or 0)
        self.http_version = str(info.get("http_version", ""))
        self.time_total = float(info.get("time_total") or 0)
        self.time_starttransfer = float(info.get("time_starttransfer") or 0)
        self.headers = headers
        self.body = body
        self.stderr = stderr

    def header(self, name, default=None):
        v = self.headers.get(name.lower())
        return v[0] if v else default

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<CurlResult rc=%d status=%d http/%s %d bytes>" % (
            self.rc, self.status, self.http_version, len(self.body))


def _parse_header_dump(text):
    """Headers of the last response in a curl -D dump (skips 100 Continue)."""
    blocks = [b for b in re.split(r"\r?\n\r?\n", text) if b.strip()]
    heads = [b for b in blocks if b.lstrip().startswith("HTTP/")]
    out = {}
    if not heads:
        return out
    for line in heads[-1].splitlines()[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            out.setdefault(k.strip().lower(), []).append(v.strip())
    return out


def run_curl(url, http="1.1", method=None, data=None, data_file=None, headers=None,
             cacert=None, timeout=30, extra=(), work_dir=None, resolve=None):
    """Runs curl once. http: "1.1" (--http1.1), "h2c" (--http2-prior-knowledge),
    "2" (--http2, ALPN over TLS). data: bytes sent as the body; data_file: a
    path sent as the body. Returns a CurlResult; never raises on HTTP or
    transfer errors (check .rc and .status)."""
    work_dir = work_dir or scratch_dir()
    tag = _unique("curl")
    body_path = os.path.join(work_dir, tag + ".body")
    head_path = os.path.join(work_dir, tag + ".head")
    argv = ["curl", "-sS", "-o", body_path, "-D", head_path, "-w", "%{json}",
            "--max-time", str(timeout)]
    argv += {"1.1": ["--http1.1"], "h2c": ["--http2-prior-knowledge"], "2": ["--http2"]}[http]
    if method:
        argv += ["-X", method]
    for k, v in (headers or {}).items():
        argv += ["-H", "%s: %s" % (k, v)]
    if cacert:
        argv += ["--cacert", cacert]
    if resolve:
        argv += ["--resolve", resolve]
    stdin = None
    if data is not None:
        argv += ["--data-binary", "@-"]
        stdin = data
    elif data_file is not None:
        argv += ["--data-binary", "@" + data_file]
    argv += list(extra) + [url]
    p = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout + 10)
    try:
        info = json.loads(p.stdout.decode("utf-8", "replace") or "{}")
    except ValueError:
        info = {}
    try:
        with open(head_path, "r", encoding="latin-1") as f:
            hdrs = _parse_header_dump(f.read())
    except OSError:
        hdrs = {}
    try:
        with open(body_path, "rb") as f:
            body = f.read()
    except OSError:
        body = b""
    for path in (head_path, body_path):
        try:
            os.unlink(path)
        except OSError:
            pass
    return CurlResult(p.returncode, info, hdrs, body, p.stderr.decode("utf-8", "replace"))


def run_nghttp(url, args=(), data_file=None, timeout=30):
    """Runs `nghttp -n -s` (discard bodies, print statistics) plus args; returns
    (returncode, stdout text, stderr text)."""
    argv = ["nghttp", "-n", "-s", "-t", str(timeout)] + list(args)
    if data_file:
        argv += ["-d", data_file]
    p = subprocess.run(argv + [url], capture_output=True, timeout=timeout + 10)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


_UNITS_US = {"us": 1.0, "ms": 1000.0, "s": 1e6}


def parse_duration_us(text):
    """"47us" / "2.67ms" / "1.2s" -> microseconds (float)."""
    m = re.match(r"^\s*([0-9.]+)(us|ms|s)\s*$", text)
    if not m:
        raise HarnessError("not an h2load duration: %r" % text)
    return float(m.group(1)) * _UNITS_US[m.group(2)]


class H2loadResult:
    """Numbers from one h2load run: total, started, done, succeeded, failed,
    errored, timeout, status counts (s2xx..s5xx), req_per_s, and request
    times in microseconds: min_us, max_us, mean_us, sd_us, plus p50_us, p90_us,
    p99_us computed from the per-request log (None without one)."""

    def __init__(self, text, durations_us):
        self.text = text
        m = re.search(r"finished in [0-9.]+\w+, ([0-9.]+) req/s", text)
        if not m:
            raise HarnessError("h2load printed no result:\n" + text[-2000:])
        self.req_per_s = float(m.group(1))
        m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                      r"(\d+) failed, (\d+) errored, (\d+) timeout", text)
        (self.total, self.started, self.done, self.succeeded, self.failed, self.errored,
         self.timeout) = (int(x) for x in m.groups())
        m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
        self.s2xx, self.s3xx, self.s4xx, self.s5xx = (int(x) for x in m.groups())
        m = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", text)
        self.min_us, self.max_us, self.mean_us, self.sd_us = (
            parse_duration_us(x) for x in m.groups())
        self.durations_us = sorted(durations_us)
        self.p50_us = percentile(self.durations_us, 50)
        self.p90_us = percentile(self.durations_us, 90)
        self.p99_us = percentile(self.durations_us, 99)

    def __repr__(self):
        return "<H2loadResult %.0f req/s %d/%d ok>" % (self.req_per_s, self.succeeded, self.total)


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list; None when empty."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]


def read_h2load_log(path):
    """Request durations (microseconds) from an h2load --log-file: columns are
    start time, status, duration in microseconds."""
    out = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                out.append(float(parts[2]))
    return out


def run_h2load(url, n=1000, c=4, m=1, t=1, h1=False, extra=(), log_dir=None, timeout=120):
    """Runs h2load and returns an H2loadResult (with percentiles from its
    --log-file). h1=True measures HTTP/1.1 (--h1; m > 1 pipelines)."""
    log_dir = log_dir or scratch_dir()
    log = os.path.join(log_dir, _unique("h2load") + ".log")
    argv = ["h2load", "-n", str(n), "-c", str(c), "-m", str(m), "-t", str(t),
            "--log-file", log]
    if h1:
        argv.append("--h1")
    argv += list(extra) + [url]
    p = subprocess.run(argv, capture_output=True, timeout=timeout)
    text = p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")
    try:
        durations = read_h2load_log(log)
        os.unlink(log)
    except OSError:
        durations = []
    return H2loadResult(text, durations)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_random_file(path, size, seed=b"cutover"):
    """Writes `size` pseudo-random (reproducible) bytes; returns their sha256."""
    h = hashlib.sha256()
    block = hashlib.sha256(seed).digest() * (65536 // 32)
    with open(path, "wb") as f:
        left, i = size, 0
        while left > 0:
            chunk = hashlib.sha256(seed + i.to_bytes(8, "big")).digest() + block[32:]
            chunk = chunk[:left]
            f.write(chunk)
            h.update(chunk)
            left -= len(chunk)
            i += 1
    return h.hexdigest()


# ------------------------------------------------------------ raw HTTP/2 (python3-h2)

class H2Response:
    """What arrived on one stream: status, headers (list of (name, value)
    str pairs), body bytes, trailers, reset (the RST_STREAM error code, or
    None), ended (END_STREAM seen)."""

    def __init__(self):
        self.status = None
        self.headers = []
        self.body = bytearray()
        self.trailers = []
        self.reset = None
        self.ended = False

    def header(self, name, default=None):
        for k, v in self.headers:
            if k == name:
                return v
        return default


class H2Conn:
    """A client HTTP/2 connection over a socket (h2c prior knowledge, or TLS
    with ALPN h2 when ssl_context is given), driven by python3-h2, for tests of
    protocol corner cases. Received DATA is acknowledged (flow control) as it
    is read unless auto_ack=False."""

    def __init__(self, host, port, ssl_context=None, server_hostname=None, timeout=10.0,
                 settings=None, auto_ack=True):
        import h2.config
        import h2.connection
        raw = socket.create_connection((host, port), timeout=timeout)
        if ssl_context is not None:
            raw = ssl_context.wrap_socket(raw, server_hostname=server_hostname or host)
        self.sock = raw
        self.timeout = timeout
        self.auto_ack = auto_ack
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.responses = {}
        self.goaway = None
        self.closed = False
        self.flush()

    @staticmethod
    def tls_context(cafile):
        """A client SSLContext trusting cafile and offering ALPN h2."""
        import ssl
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.set_alpn_protocols(["h2"])
        return ctx

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, method, authority, path, headers=(), body=None, end_stream=True,
                scheme="http"):
        """Sends a request; returns its stream id. With body, sends it as DATA
        (respecting the flow-control window, reading meanwhile)."""
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", scheme), (":authority", authority),
                (":path", path)] + list(headers)
        self.responses[sid] = H2Response()
        self.conn.send_headers(sid, hdrs, end_stream=end_stream and body is None)
        self.flush()
        if body is not None:
            self.send_body(sid, body, end_stream=end_stream)
        return sid

    def send_body(self, sid, body, end_stream=True):
        """Sends body bytes on sid as the peer's window allows."""
        view = memoryview(body)
        while view:
            window = min(self.conn.local_flow_control_window(sid),
                         self.conn.max_outbound_frame_size)
            if window <= 0:
                self.read_once()
                continue
            self.conn.send_data(sid, bytes(view[:window]))
            view = view[window:]
            self.flush()
        if end_stream:
            self.conn.end_stream(sid)
            self.flush()

    def read_once(self):
        """Reads once from the socket and handles the events; False on EOF."""
        import h2.events
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise HarnessError("no HTTP/2 data within %.1fs" % self.timeout)
        if not data:
            self.closed = True
            return False
        for ev in self.conn.receive_data(data):
            r = self.responses.get(getattr(ev, "stream_id", None))
            if isinstance(ev, h2.events.ResponseReceived):
                r.headers = list(ev.headers)
                r.status = int(dict(ev.headers)[":status"])
            elif isinstance(ev, h2.events.DataReceived):
                r.body += ev.data
                if self.auto_ack and ev.flow_controlled_length:
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.TrailersReceived):
                r.trailers = list(ev.headers)
            elif isinstance(ev, h2.events.StreamEnded):
                r.ended = True
            elif isinstance(ev, h2.events.StreamReset):
                if r is not None:
                    r.reset = ev.error_code
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.goaway = ev
        self.flush()
        return True

    def wait(self, *sids):
        """Reads until every stream in sids ended or was reset; returns their
        H2Response objects (one, or a list)."""
        deadline = time.monotonic() + self.timeout
        def done(sid):
            r = self.responses[sid]
            return r.ended or r.reset is not None
        while not all(done(s) for s in sids):
            if time.monotonic() > deadline:
                raise HarnessError("streams %s not finished after %.1fs" % (sids, self.timeout))
            if not self.read_once():
                break
        out = [self.responses[s] for s in sids]
        return out[0] if len(out) == 1 else out

    def close(self):
        try:
            self.conn.close_connection()
            self.flush()
        except Exception:  # the peer may be gone already
            pass
        self.sock.close()


# ------------------------------------------------------------------- the test case

class DemoBackend:
    """A running `cutover demo-backend`: its Proc, name, host, port, protocol,
    and tls (the gen_cert() dict when it serves TLS, else None)."""

    def __init__(self, proc, name, host, port, protocol, tls=None):
        self.proc, self.name, self.host, self.port, self.protocol = proc, name, host, port, protocol
        self.tls = tls

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def url(self, path="/"):
        return "%s://%s:%d%s" % ("https" if self.tls else "http", self.host, self.port, path)


class CutoverTestCase(unittest.TestCase):
    """Base class: a temp dir per test (self.tmp) and every started process
    stopped by PID when the test ends, whatever its outcome."""

    bin = CUTOVER_BIN
    source_dir = SOURCE_DIR

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="cutover-e2e-%s-" % self._testMethodName)
        self.procs = []
        self.addCleanup(self._cleanup)

    def _failed(self):
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        if result is None:
            return False
        for test, _ in list(result.errors) + list(result.failures):
            if test is self:
                return True
        return not getattr(outcome, "success", True)

    def _cleanup(self):
        failed = self._failed()
        for proc in reversed(self.procs):
            stop_process(proc, 3.0)
        if failed:
            for proc in self.procs:
                tail = proc.stderr_text(30)
                if tail:
                    sys.stderr.write("\n--- stderr of %s (pid %d, exit %s):\n%s\n"
                                     % (proc.name, proc.pid, proc.returncode, tail))
        if failed or KEEP:
            sys.stderr.write("kept test directory %s\n" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # processes ---------------------------------------------------------------

    def start(self, argv, name=None, wait_port=None, host="127.0.0.1", timeout=10.0, env=None,
              cwd=None):
        """start_process() whose process this test stops at its end."""
        proc = start_process(argv, name=name, log_dir=self.tmp, env=env, cwd=cwd,
                             wait_port=wait_port, host=host, timeout=timeout)
        self.procs.append(proc)
        return proc

    def cutover(self, *args, timeout=30, input=None):
        """Runs `cutover ARGS...` to completion, in the test's own directory
        (like start_proxy); returns CompletedProcess (text)."""
        return subprocess.run([self.bin] + [str(a) for a in args], capture_output=True,
                              text=True, timeout=timeout, input=input, cwd=self.tmp)

    def start_demo_backend(self, name, protocol="http1", threads=1, lineage=None, port=None,
                           host="127.0.0.1", tls=None):
        """Starts `cutover demo-backend` on a free port and waits until it
        listens. tls: a gen_cert() dict to serve TLS (ALPN http/1.1 for http1,
        h2 for h2c, both for auto)."""
        port = port or free_port(host)
        listen = "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)
        argv = [self.bin, "demo-backend", "--name", name, "--listen", listen,
                "--protocol", protocol, "--threads", str(threads)]
        if lineage:
            argv += ["--lineage", lineage]
        if tls:
            argv += ["--tls-cert", tls["cert"], "--tls-key", tls["key"]]
        proc = self.start(argv, name="demo-" + name, wait_port=port, host=host)
        return DemoBackend(proc, name, host, port, protocol, tls)

    def start_proxy(self, config_path, wait_ports=(), extra=(), timeout=10.0, env=None):
        """Starts `cutover proxy -c CONFIG` and waits for each of wait_ports.
        It runs in the test's own directory: the relative defaults (run/ for
        the dial state and the admin token) must not be shared with the
        proxies of tests running at the same time."""
        return self.start([self.bin, "proxy", "-c", config_path] + list(extra), name="proxy",
                          wait_port=list(wait_ports), timeout=timeout, env=env, cwd=self.tmp)

    # files -------------------------------------------------------------------

    def write_config(self, config, name="cutover.yaml", **values):
        """Writes a config for `cutover proxy` into self.tmp and returns its
        path. config is a dict (rendered as YAML) or a YAML template string
        whose {{name}} placeholders take **values."""
        text = to_yaml(config) if isinstance(config, dict) else render_template(config, values)
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def gen_cert(self, subdir="certs"):
        """Makes a CA and a server certificate for 127.0.0.1/localhost with
        scripts/gen-cert.sh; returns {"ca", "cert", "key"} paths."""
        d = os.path.join(self.tmp, subdir)
        p = subprocess.run([GEN_CERT, d], capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise HarnessError("gen-cert.sh failed:\n" + p.stderr)
        return {"ca": os.path.join(d, "ca.pem"), "cert": os.path.join(d, "cert.pem"),
                "key": os.path.join(d, "key.pem")}

    # clients -----------------------------------------------------------------

    def require_tools(self, *names):
        missing = [n for n in names if not have_tool(n)]
        if missing:
            self.skipTest("not installed: " + ", ".join(missing))

    def curl(self, url, http="1.1", **kw):
        """run_curl() with scratch files in self.tmp."""
        return run_curl(url, http=http, work_dir=self.tmp, **kw)

    def nghttp(self, url, args=(), **kw):
        return run_nghttp(url, args, **kw)

    def h2load(self, url, **kw):
        """run_h2load() with its log in self.tmp."""
        return run_h2load(url, log_dir=self.tmp, **kw)


def main():
    """unittest.main with verbose output, for `python3 tests/e2e/test_x.py`."""
    unittest.main(verbosity=2)
