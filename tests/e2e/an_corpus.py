"""Generates Avro container files of recorded pairs with known, planted differences.

Used by test_analyze.py (and handy by hand: `python3 an_corpus.py OUTDIR`).
Every count the analyzer should report is computed here, next to the data
that causes it, and returned as EXPECTED.
"""
import datetime
import json
import os
import random
import sys

import avro.datafile
import avro.io
import avro.schema

BASE_US = 1795255200 * 1000000  # 2026-11-21T10:00:00Z

RULES = """\
defaults:
  ignore_headers: [date, server, x-request-id]
  compare_headers: [content-type]
rules:
  - match: { route: catalog }
    ignore: ["$.items[*].updatedAt"]
    sort: [ { path: "$.items", by: id }, { path: "$.tags" } ]
    tolerance: [ { path: "$.price", absolute: 0.01 } ]
    replace: [ { path: "$..requestId", regex: "[0-9a-f-]{36}", with: "<uuid>" } ]
  - match: { path_prefix: /api/search }
    transform:
      primary:
        - { rename: { from: "$.artworkUrl", to: "$.artwork.url" } }
        - { list_to_map: { path: "$.attributes", key: name, value: value } }
"""


def load_schema(source_dir):
    with open(os.path.join(source_dir, "replay", "schemas", "pair.avsc")) as f:
        return avro.schema.parse(f.read())


def uuid(rng):
    h = "%032x" % rng.getrandbits(128)
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def response(status, body, ctype="application/json", lineage=None, error=None, date="x"):
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    return {
        "backend": "b", "host": "127.0.0.1:1", "status": status,
        "headers": [{"name": "content-type", "value": ctype}, {"name": "date", "value": date}],
        "body": body, "body_truncated": False, "body_size": len(body),
        "body_sha256": "", "latency_us": 1000, "error": error,
        "lineage": lineage or {},
    }


def record(cid, t_us, kind, route, path, primary=None, shadows=None, repeat=None):
    when = datetime.datetime.fromtimestamp(t_us // 1000000, tz=datetime.timezone.utc)
    when = when.replace(microsecond=t_us % 1000000)
    return {
        "correlation_id": cid, "time_us": when, "kind": kind, "source": "proxy",
        "route": route, "decision": {"via": "test"}, "device_key": None,
        "request": {"method": "GET", "authority": "svc", "path": path, "query": "",
                    "headers": [], "body": b"", "body_truncated": False, "body_size": 0},
        "primary": primary, "shadows": shadows or [], "primary_repeat": repeat,
    }


def catalog_body(i, rng, ts, shuffle, price_delta=0.0, name="item %d"):
    items = [{"id": k, "v": k * i, "updatedAt": ts + k} for k in range(3)]
    tags = ["a", "b", "c"]
    if shuffle:
        rng.shuffle(items)
        tags = list(reversed(tags))
    return {"id": i, "name": name % i, "generatedAt": ts, "items": items, "tags": tags,
            "price": 10.0 + i + price_delta, "meta": {"requestId": "req " + uuid(rng)}}


def build(source_dir, outdir):
    """Writes part-a.avro and part-b.avro into outdir; returns (paths, expected)."""
    rng = random.Random(7)
    schema = load_schema(source_dir)
    part_a, part_b = [], []
    exp = {"catalog": dict(joined=0, matches=0, mismatches=0, lineage=0),
           "search": dict(joined=0, matches=0, mismatches=0, lineage=0),
           "static": dict(joined=0, matches=0, mismatches=0, lineage=0)}
    fail = {"primary": 0, "shadow": 0}
    planted = set()

    # catalog: PAIR records with a second primary response; timestamp noise everywhere.
    for i in range(100):
        t = BASE_US + i * 3000000
        cid = "cat-%03d" % i
        lin = {"catalog-db": "v1", "prices": "p1"}
        p = response(200, catalog_body(i, rng, 1000 + i, False), lineage=lin, date="d1")
        r = response(200, catalog_body(i, rng, 2000 + i, False), lineage=lin, date="d2")
        s_lin = dict(lin)
        name = "item %d"
        e = exp["catalog"]
        e["joined"] += 1
        if i % 25 == 7:  # lineage drift: the shadow read another catalog snapshot
            s_lin["catalog-db"] = "v2"
            e["lineage"] += 1
        elif i % 10 == 3:  # a planted real difference
            name = "renamed %d"
            e["mismatches"] += 1
            planted.add(cid)
        elif i % 20 == 11:  # shadow fails
            pass
        else:
            e["matches"] += 1
        if i % 20 == 11:
            s = response(503, {"error": "unavailable"}, lineage=s_lin, date="d3")
            e["mismatches"] += 1
            fail["shadow"] += 1
            planted.add(cid)
        else:
            s = response(200, catalog_body(i, rng, 3000 + i, True, 0.004, name),
                         lineage=s_lin, date="d3")
        rec = record(cid, t, "PAIR", "catalog", "/api/catalog/%d" % i, p, [s], r)
        (part_a if i < 50 else part_b).append(rec)
        if i in (60, 61):  # delivered twice (at-least-once recording)
            part_b.append(rec)

    # search: separate PRIMARY and SHADOW records joined by correlation id; the
    # shadow already has the new shape (one-sided transform on the primary).
    pending_shadows = []
    for i in range(60):
        t = BASE_US + i * 2000000
        cid = "srch-%03d" % i
        old = {"q": "q%d" % i, "artworkUrl": "http://img/%d" % i,
               "attributes": [{"name": "color", "value": "red"}, {"name": "size", "value": "L"}],
               "results": 10}
        new = {"q": "q%d" % i, "artwork": {"url": "http://img/%d" % i},
               "attributes": {"size": "L", "color": "red"}, "results": 10}
        e = exp["search"]
        e["joined"] += 1
        pstatus = 200
        if i % 15 == 4:  # primary fails
            pstatus = 500
            old = {"error": "boom"}
            fail["primary"] += 1
        if i % 12 == 6:
            new["results"] = 11
        if i % 15 == 4 or i % 12 == 6:
            e["mismatches"] += 1
            planted.add(cid)
        else:
            e["matches"] += 1
        path = "/api/search/%d" % i
        part_b.append(record(cid, t, "PRIMARY", "search", path, primary=response(pstatus, old)))
        pending_shadows.append(record(cid, t + 500, "SHADOW", "search", path,
                                      shadows=[response(200, new)]))
        if len(pending_shadows) > 3:  # shadows arrive a few records late
            part_b.append(pending_shadows.pop(0))
    part_b.extend(pending_shadows)
    part_b.append(pending_shadows[-1])  # a shadow record delivered twice
    for k in range(3):
        part_b.append(record("srch-lonely-p%d" % k, BASE_US + 200000000, "PRIMARY", "search",
                             "/api/search/x", primary=response(200, {"q": "x"})))
    for k in range(2):
        part_b.append(record("srch-lonely-s%d" % k, BASE_US + 200000000, "SHADOW", "search",
                             "/api/search/y", shadows=[response(200, {"q": "y"})]))

    # static: text bodies compared by lines.
    for i in range(20):
        t = BASE_US + i * 5000000
        cid = "stat-%03d" % i
        body = "line one\nline two %d\nline three\n" % i
        sbody = body if i not in (5, 15) else body.replace("three", "3")
        e = exp["static"]
        e["joined"] += 1
        if i in (5, 15):
            e["mismatches"] += 1
            planted.add(cid)
        else:
            e["matches"] += 1
        part_a.append(record(cid, t, "PAIR", "static", "/static/%d" % i,
                             response(200, body, "text/plain"),
                             [response(200, sbody, "text/plain")]))

    paths = []
    for name, recs in (("part-a.avro", part_a), ("part-b.avro", part_b)):
        path = os.path.join(outdir, name)
        with open(path, "wb") as f:
            w = avro.datafile.DataFileWriter(f, avro.io.DatumWriter(), schema, codec="deflate")
            for rec in recs:
                w.append(rec)
            w.close()
        paths.append(path)

    total = {k: sum(v[k] for v in exp.values()) for k in ("joined", "matches", "mismatches", "lineage")}
    expected = {
        "routes": exp, "total": total, "pass_fail_fail": fail, "planted": planted,
        "records": {"primary": 100 + 2 + 63 + 20, "shadow": 100 + 2 + 62 + 1 + 20},
        "duplicates": 3,
        "unjoined": {"primary": 3, "shadow": 2},
    }
    return paths, expected


if __name__ == "__main__":
    src = os.environ.get("CUTOVER_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "rules.yaml"), "w") as f:
        f.write(RULES)
    p, e = build(src, out)
    e["planted"] = sorted(e["planted"])
    print(json.dumps({"files": p, "expected": e}, indent=1))
