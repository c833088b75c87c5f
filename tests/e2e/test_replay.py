#!/usr/bin/env python3
"""e2e: `glasswatch replay` over thousands of ordinary records with a few break-glass touches
among them prints exactly the expected alerts (and nothing for decoys)."""
import argparse
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(__file__))
from common import TENANT, Workdir, audit_record, check, guid, run, signin_record  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--glasswatch", required=True)
ap.add_argument("--source", required=True)
a = ap.parse_args()

rng = random.Random(1123)
BG1 = "0b7e3f1a-5c2d-4e8f-9a6b-1c2d3e4f5a6b"
BG2 = "5f6e7d8c-9b0a-4c1d-8e2f-3a4b5c6d7e8f"
wd = Workdir()
try:
    state = os.path.join(wd.path, "state")
    alerts_file = os.path.join(wd.path, "alerts.jsonl")
    cfg = wd.file("glasswatch.toml", f"""
[tenant]
id = "{TENANT}"
name = "contoso"
[[watch.accounts]]
object_id = "{BG1}"
label = "bg-admin-1"
[[watch.accounts]]
object_id = "{BG2}"
upn = "bg2@contoso.onmicrosoft.com"
label = "bg-admin-2"
[state]
directory = "{state}"
[[sinks]]
name = "audit-file"
type = "file"
path = "{alerts_file}"
""")
    users = [(guid(rng), "user%d@contoso.example" % i) for i in range(500)]
    bodies, expected = [], {}
    n_records = 0
    for b in range(400):
        recs = []
        for _ in range(rng.randint(5, 20)):
            u = rng.choice(users)
            cat = rng.choice(["SignInLogs", "NonInteractiveUserSignInLogs", "NonInteractiveUserSignInLogs"])
            recs.append(signin_record(rng, u[0], u[1], cat))
            n_records += 1
        if b == 57:  # successful interactive sign-in, id in upper case
            r = signin_record(rng, BG1.upper(), "bg1@contoso.onmicrosoft.com")
            recs.insert(3, r)
            expected[(r["properties"]["id"], "breakglass_signin")] = "bg-admin-1"
        if b == 211:  # failed non-interactive sign-in, hyphens escaped by the serializer
            r = signin_record(rng, "@@BG2@@", "bg2@contoso.onmicrosoft.com", "NonInteractiveUserSignInLogs", error=50126)
            recs.append(r)
            expected[(r["properties"]["id"], "breakglass_signin")] = "bg-admin-2"
        if b == 300:  # an admin resets the break-glass password
            r = audit_record(rng, users[0][0], BG1, "Reset user password")
            recs.append(r)
            expected[(r["properties"]["id"], "breakglass_audit_target")] = "bg-admin-1"
        if b == 350:  # decoys: watched ids in fields that must not match
            d1 = signin_record(rng, users[1][0], users[1][1])
            d1["properties"]["appliedConditionalAccessPolicies"][0]["id"] = BG1
            d2 = audit_record(rng, users[2][0], users[3][0], extra_details=[{"key": "oid", "value": BG2}])
            recs += [d1, d2]
        body = json.dumps({"records": recs}, separators=(",", ":"))
        body = body.replace("@@BG2@@", BG2.replace("-", "\\u002d"))
        bodies.append(body)
    inp = wd.file("stream.ndjson", "\n".join(bodies) + "\n")
    check(n_records > 4000, f"{n_records} ordinary records generated")

    r = run([a.glasswatch, "replay", "--config", cfg, inp])
    check(r.returncode == 0, f"replay exits 0 (rc={r.returncode}, stderr={r.stderr[-500:]})")
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
    got = {(l["event"]["id"], l["rule"]): l["subject"]["label"] for l in lines}
    check(got == expected, f"exactly the expected alerts: got {sorted(got.items())}")
    for l in lines:
        check(l["severity"] == "critical", f"{l['rule']} is critical")
        check(l["tenant"]["id"] == TENANT, "alert names the tenant")
    signin = next(l for l in lines if l["event"]["result"]["errorCode"] == 50126)
    check(signin["event"]["signInType"] == "non-interactive", "failed non-interactive sign-in is labelled")
    check("replay:" in r.stderr and "alert(s)" in r.stderr, "replay prints a summary on stderr")
    check(not os.path.exists(alerts_file), "replay without --send sends nothing")

    # --send: through the durable store and the file sink, once; a second run adds nothing.
    r = run([a.glasswatch, "replay", "--config", cfg, "--send", inp])
    check(r.returncode == 0, f"replay --send exits 0 ({r.stderr[-300:]})")
    sent = [json.loads(l) for l in open(alerts_file)]
    check(len(sent) == len(expected), f"{len(sent)} alerts written to the file sink")
    check(all(len(s["sms"]) <= 160 for s in sent), "SMS texts fit one segment")
    r = run([a.glasswatch, "replay", "--config", cfg, "--send", inp])
    check(r.returncode == 0 and "already known" in r.stderr, "replaying again is recognised")
    check(len(open(alerts_file).readlines()) == len(expected), "the same events never page twice")

    # Evidence: the chain verifies, the export carries raw records + alerts + deliveries, and a
    # tampered row is found.
    r = run([a.glasswatch, "evidence", "verify", "--config", cfg])
    check(r.returncode == 0 and f"{len(expected)} alert(s)" in r.stdout, f"evidence chain intact: {r.stdout.strip()}")
    r = run([a.glasswatch, "evidence", "export", "--config", cfg, "--since", "2000-01-01T00:00:00Z"])
    rows = [json.loads(l) for l in r.stdout.splitlines()]
    check(r.returncode == 0 and len(rows) == len(expected), f"evidence export has {len(rows)} rows")
    check(all(x["deliveries"][0]["state"] == "confirmed" for x in rows), "export shows each delivery confirmed")
    check({x["raw"]["properties"]["id"] for x in rows} == {k[0] for k in expected}, "export carries the raw records")
    r = run([a.glasswatch, "evidence", "export", "--config", cfg, "--account", BG2])
    check(len(r.stdout.splitlines()) == 1, "export --account filters by watched account")
    import sqlite3
    con = sqlite3.connect(os.path.join(state, "glasswatch.db"))
    con.execute("UPDATE chain SET body = '{}' WHERE seq = 2")
    con.commit()
    con.close()
    r = run([a.glasswatch, "evidence", "verify", "--config", cfg])
    check(r.returncode == 1 and "entry 2" in r.stdout, f"a tampered entry is reported: {r.stdout.strip()}")

    # Bad input: exit codes.
    r = run([a.glasswatch, "replay", "--config", cfg, "/nonexistent"])
    check(r.returncode == 1, "missing input file is a runtime failure (1)")
    r = run([a.glasswatch, "replay", "--bogus"])
    check(r.returncode == 2, "unknown option is a usage error (2)")
    bad = wd.file("bad.toml", "[tenant]\nid = \"not-a-guid\"\n")
    r = run([a.glasswatch, "check-config", bad])
    check(r.returncode == 3 and "tenant.id" in r.stderr and ":2:" in r.stderr, f"invalid config names key and line: {r.stderr.strip()}")
    r = run([a.glasswatch, "check-config", cfg])
    check(r.returncode == 0 and "2 account(s)" in r.stdout, "check-config summarises the watchlist")
    r = run([a.glasswatch, "--help"])
    check(r.returncode == 0 and "exit codes" in r.stdout, "--help documents the exit codes")
    r = run([a.glasswatch, "version"])
    check(r.returncode == 0 and r.stdout.startswith("glasswatch "), "version")
finally:
    wd.close()
print("PASS")
