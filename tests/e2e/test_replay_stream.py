#!/usr/bin/env python3
"""e2e: `glasswatch replay` streams: memory does not grow with the input.

1. 1 GiB of NDJSON diagnostic bodies (ordinary sign-ins, three break-glass sign-ins at the
   start, the middle and the end) is piped into `replay -`: exactly the three alerts are printed,
   and the process's peak RSS stays under 64 MiB (it used to hold the whole input, twice).
2. One pretty-printed Graph page of 200 MB, far beyond what replay holds whole, with one
   break-glass sign-in deep inside it: cut into pages of its own records, the alert is found,
   RSS again under 64 MiB.
The speed is a benchmark figure (tests/bench/bench_replay.sh), not checked here."""
import argparse
import json
import os
import random
import resource
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(__file__))
from common import TENANT, Workdir, check, guid, signin_record  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--glasswatch", required=True)
ap.add_argument("--gib", type=float, default=1.0)
# 0: do not check RSS (a sanitizer build: ASan's quarantine and shadow memory are not replay's).
ap.add_argument("--rss-limit-mib", type=float, default=64)
a = ap.parse_args()

BG1 = "0b7e3f1a-5c2d-4e8f-9a6b-1c2d3e4f5a6b"
LIMIT_MIB = a.rss_limit_mib
rng = random.Random(4242)


def replay(cfg, feed, fmt=None):
    """Runs replay on stdin fed by `feed(write)`; returns (rc, stdout lines, stderr, peak RSS MiB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    cmd = [a.glasswatch, "replay", "--config", cfg] + (["--format", fmt] if fmt else []) + ["-"]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = [], []
    t1 = threading.Thread(target=lambda: out.append(p.stdout.read()))
    t2 = threading.Thread(target=lambda: err.append(p.stderr.read()))
    t1.start()
    t2.start()
    try:
        feed(p.stdin.write)
    finally:
        p.stdin.close()
    rc = p.wait(timeout=600)
    t1.join()
    t2.join()
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest single child so far: grows only if this one was larger.
    rss_mib = max(peak, before) / 1024.0
    lines = [l for l in out[0].decode().splitlines() if l.strip()]
    return rc, lines, err[0].decode(), rss_mib


wd = Workdir()
try:
    cfg = wd.file("glasswatch.toml", f"""
[tenant]
id = "{TENANT}"
[[watch.accounts]]
object_id = "{BG1}"
upn = "bg1@contoso.onmicrosoft.com"
[[watch.accounts]]
object_id = "5f6e7d8c-9b0a-4c1d-8e2f-3a4b5c6d7e8f"
[state]
directory = "{wd.path}/state"
[admin]
listen = ""
[[sinks]]
name = "local"
type = "file"
path = "{wd.path}/alerts.jsonl"
""")

    # ---- 1 GiB of NDJSON bodies ---------------------------------------------------------------
    # A block of ~1 MiB of ordinary bodies, written again and again (fresh ids are not needed
    # for memory; the watched ones are unique).
    bodies = []
    size = 0
    while size < 1 << 20:
        recs = [signin_record(rng, guid(rng), "user%d@contoso.example" % rng.randrange(10**6))
                for _ in range(rng.randrange(5, 40))]
        line = json.dumps({"records": recs}, separators=(",", ":")) + "\n"
        bodies.append(line)
        size += len(line)
    block = "".join(bodies).encode()
    repeats = max(1, int(a.gib * (1 << 30) / len(block)))
    watched = [signin_record(rng, BG1, "bg1@contoso.onmicrosoft.com") for _ in range(3)]
    where = {0: watched[0], repeats // 2: watched[1], repeats - 1: watched[2]}

    def feed_ndjson(write):
        for i in range(repeats):
            write(block)
            if i in where:
                write((json.dumps({"records": [where[i]]}) + "\n").encode())

    rc, lines, err, rss = replay(cfg, feed_ndjson)
    total = repeats * len(block)
    print(f"FIGURE replay_stream_ndjson: input_mib={total / 2**20:.0f} peak_rss_mib={rss:.1f}")
    check(rc == 0, f"replay of {total / 2**30:.2f} GiB exits 0: {err[-300:]}")
    ids = sorted(json.loads(l)["event"]["id"] for l in lines)
    want = sorted(w["properties"]["id"] for w in watched)
    check(ids == want, f"exactly the three break-glass sign-ins are alerted ({len(ids)})")
    if LIMIT_MIB:
        check(rss <= LIMIT_MIB, f"peak RSS {rss:.1f} MiB <= {LIMIT_MIB} MiB for {total / 2**30:.2f} GiB of input")

    # ---- one 200 MB Graph page ------------------------------------------------------------------
    graph_rec = {"id": None, "createdDateTime": "2025-11-03T14:22:07Z", "userDisplayName": "U",
                 "userPrincipalName": "u@contoso.example", "userId": None, "appId": guid(rng),
                 "ipAddress": "203.0.113.9", "status": {"errorCode": 0}, "isInteractive": True,
                 "appliedConditionalAccessPolicies": [{"id": guid(rng), "result": "notApplied"}]}
    target_mb = 200
    per = len(json.dumps(graph_rec, indent=2)) + 40
    count = target_mb * 10**6 // per
    bg_id = guid(rng)

    def feed_page(write):
        write(b'{\n  "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#auditLogs/signIns",\n  "value": [\n')
        chunk = []
        for i in range(count):
            r = dict(graph_rec)
            r["id"] = bg_id if i == count * 2 // 3 else "rec-%d" % i
            r["userId"] = BG1 if i == count * 2 // 3 else "ac1b1732-bf51-4dd1-9fcc-801cbaa9c790"
            chunk.append(json.dumps(r, indent=2))
            if len(chunk) == 2000:
                write((",\n".join(chunk) + (",\n" if i + 1 < count else "")).encode())
                chunk = []
        if chunk:
            write(",\n".join(chunk).encode())
        write(b'\n  ]\n}\n')

    rc, lines, err, rss = replay(cfg, feed_page, fmt="graph-signins")
    print(f"FIGURE replay_stream_page: input_mb={target_mb} peak_rss_mib={rss:.1f}")
    check(rc == 0, f"replay of one {target_mb} MB page exits 0: {err[-300:]}")
    check([json.loads(l)["event"]["id"] for l in lines] == [bg_id],
          "the break-glass sign-in deep inside the page is alerted, once")
    check("read in batches of records" in err, "the log says the page was cut")
    if LIMIT_MIB:
        check(rss <= LIMIT_MIB, f"peak RSS {rss:.1f} MiB <= {LIMIT_MIB} MiB for one {target_mb} MB page")
finally:
    wd.close()
print("PASS")
