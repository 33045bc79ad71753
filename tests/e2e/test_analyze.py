"""End-to-end tests of `cutover analyze` over a generated corpus with planted differences."""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import an_corpus  # noqa: E402

import avro.datafile  # noqa: E402
import avro.io  # noqa: E402

BIN = os.environ.get("CUTOVER_BIN", "cutover")
SRC = os.environ.get("CUTOVER_SOURCE_DIR",
                     os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def run(*args, check=None):
    p = subprocess.run([BIN, "analyze"] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=120)
    if check is not None and p.returncode != check:
        raise AssertionError("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s"
                             % (p.returncode, check, p.stdout, p.stderr))
    return p


def load(path):
    with open(path) as f:
        return json.load(f)


def png_is_blank(path):
    """True when every pixel row of the PNG decodes to the same bytes."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    width = 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width = struct.unpack(">I", chunk[:4])[0]
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + n
    raw = zlib.decompress(idat)
    # Distinct byte values across the image: a blank page has a handful.
    return len(set(raw[::7])) < 16 or width == 0


class AnalyzeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="an-e2e-")
        cls.rules = os.path.join(cls.tmp, "rules.yaml")
        with open(cls.rules, "w") as f:
            f.write(an_corpus.RULES)
        cls.files, cls.exp = an_corpus.build(SRC, cls.tmp)
        cls.out = os.path.join(cls.tmp, "all")
        cls.result = run("--rules", cls.rules, "--input", *cls.files, "--out", cls.out, check=0)
        cls.summary = load(os.path.join(cls.out, "summary.json"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_exact_counts(self):
        s, e = self.summary, self.exp
        self.assertEqual(s["records"], e["records"])
        self.assertEqual(s["unjoined"], e["unjoined"])
        self.assertEqual(s["duplicates"], e["duplicates"])
        self.assertEqual(s["joined"], e["total"]["joined"])
        self.assertEqual(s["matches"], e["total"]["matches"])
        self.assertEqual(s["mismatches"], e["total"]["mismatches"])
        self.assertEqual(s["lineage_discarded"], e["total"]["lineage"])
        self.assertEqual(s["lineage"], {"catalog-db": e["total"]["lineage"]})
        self.assertAlmostEqual(s["match_rate"], e["total"]["matches"] /
                               (e["total"]["matches"] + e["total"]["mismatches"]))
        self.assertEqual(s["pass_fail"]["primary"]["fail"], e["pass_fail_fail"]["primary"])
        self.assertEqual(s["pass_fail"]["shadow"]["fail"], e["pass_fail_fail"]["shadow"])
        for route, want in e["routes"].items():
            got = s["routes"][route]
            self.assertEqual((got["joined"], got["matches"], got["mismatches"],
                              got["lineage_discarded"]),
                             (want["joined"], want["matches"], want["mismatches"], want["lineage"]),
                             route)
        self.assertEqual(s["status_matrix"]["200"]["503"], 5)
        self.assertEqual(s["status_matrix"]["500"]["200"], 4)
        self.assertEqual(sum(t["matches"] + t["mismatches"] for t in s["timeline"]),
                         e["total"]["matches"] + e["total"]["mismatches"])

    def test_fields_and_noise(self):
        fields = self.summary["fields"]
        counts = [f["count"] for f in fields]
        self.assertEqual(counts, sorted(counts, reverse=True))
        top = fields[0]
        self.assertEqual((top["route"], top["field"], top["count"]), ("catalog", "$.name", 15))
        self.assertEqual(top["examples"], ["cat-003", "cat-011", "cat-013", "cat-023", "cat-031"])
        names = {(f["route"], f["field"]) for f in fields}
        self.assertIn(("search", "$.results"), names)
        self.assertIn(("static", "body.line[*]"), names)
        # Normalized away: sorting, tolerance, regex replace, ignore, transforms.
        for gone in ("$.tags[*]", "$.price", "$.meta.requestId", "$.items[*].updatedAt",
                     "$.items[*].id", "$.artworkUrl", "$.attributes[*]", "header.date"):
            self.assertNotIn(("search", gone), names)
            if gone != "$.price":
                self.assertNotIn(("catalog", gone), names)
        # $.price differs within tolerance everywhere; only the 5xx bodies lack it.
        price = next(f for f in fields if f["route"] == "catalog" and f["field"] == "$.price")
        self.assertEqual(price["count"], self.exp["pass_fail_fail"]["shadow"])
        noise = self.summary["noise"]
        self.assertEqual(noise["rule"], {"relative": 0.2, "absolute": 0.03})
        self.assertEqual([(n["route"], n["field"]) for n in noise["fields"]],
                         [("catalog", "$.generatedAt")])

    def test_mismatch_files(self):
        with open(os.path.join(self.out, "mismatches.jsonl")) as f:
            lines = [json.loads(line) for line in f]
        self.assertEqual({m["correlation_id"] for m in lines}, self.exp["planted"])
        m = next(x for x in lines if x["correlation_id"] == "cat-003")
        self.assertIn("$.name", m["fields"])
        d = next(x for x in m["diff"] if x["path"] == "$.name")
        self.assertEqual((d["primary"], d["shadow"]), ("item 3", "renamed 3"))
        self.assertIn("generatedAt", m["primary"]["body"])
        self.assertEqual(m["shadow"]["normalized"]["tags"], ["a", "b", "c"])
        with open(os.path.join(self.out, "mismatches.avro"), "rb") as f:
            recs = list(avro.datafile.DataFileReader(f, avro.io.DatumReader()))
        self.assertEqual(len(recs), len(lines))
        r = next(x for x in recs if x["correlation_id"] == "cat-011")
        self.assertEqual((r["primary_status"], r["shadow_status"]), (200, 503))
        self.assertIn(b"unavailable", r["shadow_body"])
        self.assertIn("status", r["fields"])
        with open(os.path.join(self.out, "noise.jsonl")) as f:
            noise_only = [json.loads(line) for line in f]
        self.assertTrue(all(x["fields"] == ["$.generatedAt"] for x in noise_only))
        self.assertEqual(len(noise_only), self.exp["routes"]["catalog"]["matches"])
        self.assertIn("catalog", self.result.stdout)
        self.assertIn("TOTAL", self.result.stdout)

    def test_directory_input(self):
        d = os.path.join(self.tmp, "dir-in")
        os.makedirs(d, exist_ok=True)
        for path in self.files:
            shutil.copy(path, d)
        with open(os.path.join(d, "ignored.txt"), "w") as f:
            f.write("not a record file")
        out = os.path.join(self.tmp, "dir-out")
        run("--rules", self.rules, "--input", d, "--out", out, "--quiet", check=0)
        self.assertEqual(load(os.path.join(out, "summary.json")), self.summary)

    def test_min_match_rate_exit_status(self):
        out = os.path.join(self.tmp, "gate")
        p = run("--rules", self.rules, "--input", *self.files, "--out", out,
                "--min-match-rate", "90%", "--quiet", check=3)
        self.assertIn("below --min-match-rate", p.stderr)
        run("--rules", self.rules, "--input", *self.files, "--out", out,
            "--min-match-rate", "0.8", "--quiet", check=0)

    def test_merge_equals_single_process(self):
        parts = []
        for i, path in enumerate(self.files):
            d = os.path.join(self.tmp, "part%d" % i)
            run("--rules", self.rules, "--input", path, "--out", d, "--quiet", check=0)
            parts.append(d)
        merged = os.path.join(self.tmp, "merged")
        run("merge", "--out", merged, "--quiet", *parts, check=0)
        self.assertEqual(load(os.path.join(merged, "summary.json")), self.summary)
        with open(os.path.join(merged, "mismatches.jsonl")) as f:
            ids = {json.loads(line)["correlation_id"] for line in f}
        self.assertEqual(ids, self.exp["planted"])

    def test_join_windows(self):
        # One hour covers the whole corpus: the same result as the default count window.
        out = os.path.join(self.tmp, "hour")
        run("--rules", self.rules, "--input", *self.files, "--out", out, "--join-window", "1h",
            "--quiet", check=0)
        self.assertEqual(load(os.path.join(out, "summary.json")), self.summary)
        # 1 ms: the one-sided search records (2 s apart) never meet their partner.
        out = os.path.join(self.tmp, "ms")
        run("--rules", self.rules, "--input", *self.files, "--out", out, "--join-window", "1ms",
            "--quiet", check=0)
        s = load(os.path.join(out, "summary.json"))
        self.assertEqual(s["routes"]["search"]["joined"], 0)
        # (so the shadow record delivered twice is given up twice, never a duplicate)
        self.assertEqual(s["unjoined"], {"primary": 63, "shadow": 63})
        self.assertEqual(s["records"], self.exp["records"])
        # A count window of 2 gives up the records whose partner comes 4 records later.
        out = os.path.join(self.tmp, "count")
        run("--rules", self.rules, "--input", *self.files, "--out", out, "--join-window", "2",
            "--quiet", check=0)
        s = load(os.path.join(out, "summary.json"))
        self.assertLess(s["routes"]["search"]["joined"], 60)
        self.assertEqual(s["routes"]["search"]["joined"] + s["unjoined"]["primary"], 63)

    def test_malformed_rules(self):
        bad = os.path.join(self.tmp, "bad.yaml")
        with open(bad, "w") as f:
            f.write("rules:\n  - match: { route: a }\n    sort: [ { path: \"$.a\", bye: id } ]\n")
        p = run("--rules", bad, "--input", self.files[0], "--out", os.path.join(self.tmp, "x"),
                check=1)
        self.assertIn(bad + ":3:28: rules[0].sort[0].bye: unknown key", p.stderr)
        p = subprocess.run([BIN, "analyze", "check-rules", self.rules], stdout=subprocess.PIPE,
                           text=True)
        self.assertEqual(p.returncode, 0)

    def test_usage_errors(self):
        run("--out", os.path.join(self.tmp, "u"), check=2)
        run("--input", self.files[0], check=2)
        run("--input", self.files[0], "--out", os.path.join(self.tmp, "u"), "--join-window",
            "soon", check=2)
        p = run("--input", os.path.join(self.tmp, "missing.avro"), "--out",
                os.path.join(self.tmp, "u"), check=1)
        self.assertIn("missing.avro", p.stderr)
        garbage = os.path.join(self.tmp, "garbage.avro")
        with open(garbage, "wb") as f:
            f.write(b"not avro at all")
        p = run("--input", garbage, "--out", os.path.join(self.tmp, "u"), check=1)
        self.assertIn("not an Avro container file", p.stderr)

    def test_html_report_in_chromium(self):
        chromium = shutil.which("chromium")
        if chromium is None:
            self.skipTest("chromium is not installed (scripts/deps.sh test)")
        report = os.path.join(self.out, "report.html")
        shot = os.path.join(self.tmp, "report.png")
        flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--user-data-dir=" + os.path.join(self.tmp, "chromium")]
        url = "file://" + report
        subprocess.run(flags + ["--screenshot=" + shot, "--window-size=1280,2000", url],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        self.assertTrue(os.path.exists(shot), "no screenshot")
        self.assertFalse(png_is_blank(shot), "blank screenshot")
        dom = subprocess.run(flags + ["--dump-dom", url], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, timeout=120).stdout
        for chart in ("chart-route-rate", "chart-fields", "chart-status", "chart-timeline",
                      "mismatch-list"):
            self.assertIn('id="%s"' % chart, dom)
        self.assertEqual(dom.count('<details class="mismatch"'), self.summary["mismatches"])
        self.assertIn("<td><code>$.name</code></td>", dom)  # the open diff table
        self.assertIn("cat-003", dom)
        self.assertNotIn("http://", dom.replace("http://www.w3.org/2000/svg", "")
                         .replace("http://img/", ""))


if __name__ == "__main__":
    unittest.main()
