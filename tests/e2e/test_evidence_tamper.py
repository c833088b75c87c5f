#!/usr/bin/env python3
"""e2e: the sealed evidence chain against a hostile root on copies of a real state database.

A daemon pages through the lab (webhook, PagerDuty, dead-man switch) for a few break-glass
sign-ins, is stopped, copied (the "old backup"), started again for more sign-ins and stopped.
Every page and heartbeat carried the chain's head; the lab's receivers keep them (the anchors).
Then each tamper a root attacker can do with sqlite3 is tried on a fresh copy, and
`glasswatch evidence verify --key-file VERIFICATION_KEY` must exit 1 naming the first bad entry:
delete the last entry, delete every entry, edit an alert, delete a delivery, edit a raw record and
recompute every hash (and re-seal with the key the machine holds), roll back to the old copy
(against anchors taken later). An untampered copy verifies (exit 0). The past epochs' keys are
nowhere on disk. A bundle exported on the VM verifies offline and its tampering is found.

The scheme is re-implemented here from docs/evidence.md (SHA-256, HMAC-SHA-256, HKDF-Expand), an
independent check that the documentation says what the code does."""
import argparse
import glob
import hashlib
import hmac
import json
import os
import shutil
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(__file__))
from common import (Daemon, Lab, Workdir, check, graph_config, pagerduty_sink, run,  # noqa: E402
                    wait_for, watched_alerts, webhook_sink)

ap = argparse.ArgumentParser()
ap.add_argument("--glasswatch", required=True)
ap.add_argument("--lab", required=True)
a = ap.parse_args()
gw = a.glasswatch

CHECK_ID = "7d3e9f10-2b4c-4d5e-8f60-718293a4b5c6"


# ---- the scheme, from docs/evidence.md ----------------------------------------------------------
def hkdf_expand(prk, info):
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()  # 32 bytes: one block


def be64(n):
    return n.to_bytes(8, "big")


def evolve(k, next_epoch):
    return hkdf_expand(k, b"glasswatch evidence v1 evolve" + be64(next_epoch))


def key_at(k0, epoch):
    k = k0
    for e in range(1, epoch + 1):
        k = evolve(k, e)
    return k


def mac(k_e, epoch, hash_hex):
    mk = hkdf_expand(k_e, b"glasswatch evidence v1 seal" + be64(epoch))
    return hmac.new(mk, hash_hex.encode(), hashlib.sha256).hexdigest()


def entry_hash(seq, epoch, kind, recorded_at, ref, body, prev_hash):
    data = b"glasswatch evidence v1,"
    for field in (str(seq), str(epoch), kind, str(recorded_at), ref, body, prev_hash):
        raw = field.encode() if isinstance(field, str) else field
        data += str(len(raw)).encode() + b":" + raw + b","
    return hashlib.sha256(data).hexdigest()


# ---- the run ------------------------------------------------------------------------------------
wd = Workdir()
lab = daemon = None
try:
    lab = Lab(a.lab, wd.path)
    state = os.path.join(wd.path, "state")
    alerts_file = os.path.join(wd.path, "alerts.jsonl")
    base = graph_config(lab, "@STATE@", alerts_file, poll="1s", extra='kinds = ["interactive"]')
    base += webhook_sink(lab, wd) + pagerduty_sink(lab, wd)
    # The periodic evidence head goes to the receiver that names it, and to no other sink.
    base += webhook_sink(lab, wd, name="heads") + """rules = ["evidence_head"]
[sinks.headers]
X-Glasswatch-Sink = "heads"
"""
    base += f"""
[evidence]
head_interval = "1m"

[heartbeat]
url = "{lab.info['sinks']['pagerduty_url'].replace('/v2/enqueue', '/ping/' + CHECK_ID)}"
interval = "1s"
timeout = "3s"
ca_file = "{lab.info['ca_file']}"
"""

    def config_for(state_dir, name):
        return wd.file(name, base.replace("@STATE@", state_dir))

    cfg = config_for(state, "glasswatch.toml")
    r = run([gw, "check-config", cfg])
    check(r.returncode == 0, "config valid " + r.stderr[-300:])

    def raise_signins(users):
        for u in users:
            lab.control("POST", "/lab/signin", {"user": u, "type": "interactive"})

    def delivered(n):
        rec = lab.control("GET", "/lab/sinks")
        return len(watched_alerts(alerts_file)) >= n and len(rec["webhook_ids"]) >= n and \
            len(rec["pagerduty_incidents"]) >= n

    daemon = Daemon(gw, cfg, wd.path, name="daemon-1")
    raise_signins(["bg1", "bg2", "bg1"])
    check(wait_for(lambda: delivered(3), 60), "three sign-ins paged through file, webhook and PagerDuty")
    check(daemon.stop() == 0, "first run stops cleanly")
    log1 = daemon.log()
    daemon = None
    vpath = os.path.join(state, "evidence-verification.key")
    check(os.path.exists(vpath) and "evidence-verification.key" in log1,
          "the first start wrote the verification key to a file and said where")
    vk_text = open(vpath).read()
    vk_line = [ln for ln in vk_text.splitlines() if ln.startswith("gwv1-")][0]
    k0 = bytes.fromhex(vk_line[5:])
    check(vk_line[5:] not in log1, "the verification key never reached the log")
    vk = wd.file("verification.key", vk_text)
    os.unlink(vpath)  # as the operator is told to: the key lives off the machine now
    old = os.path.join(wd.path, "old-state")
    shutil.copytree(state, old)  # an attacker's backup, taken now

    daemon = Daemon(gw, cfg, wd.path, name="daemon-2")
    raise_signins(["bg2", "bg1"])
    check(wait_for(lambda: delivered(5), 60), "two more sign-ins paged")
    # A heartbeat after the last page carries the head that the old copy lacks.
    check(wait_for(lambda: any("evidence_head=" in p.get("body", "") for p in
                               lab.control("GET", "/lab/sinks")["pings"]), 20),
          "the heartbeat carries the evidence head")
    check(daemon.stop() == 0, "second run stops cleanly")
    daemon = None

    rec = lab.control("GET", "/lab/sinks")
    heads = [h["body"].get("evidence_head") for h in rec["webhook"]]
    check(any(heads), f"webhook pages carry the evidence head ({heads[:2]})")
    pd_heads = [e["payload"]["custom_details"].get("evidence_head") for e in rec["pagerduty"]]
    check(any(pd_heads), "PagerDuty pages carry the evidence head in custom_details")
    head_pages = [h for h in rec["webhook"] if h["body"].get("type") == "glasswatch.alert.evidence_head"]
    check(head_pages and all(h["headers"].get("x-glasswatch-sink") == "heads" for h in head_pages)
          and all(h["body"].get("evidence_head") for h in head_pages),
          f"[evidence] head_interval sends the head to the sink that names it only ({len(head_pages)} sent)")
    check(not any(e["payload"].get("class") == "evidence_head" for e in rec["pagerduty"]),
          "the evidence head never pages PagerDuty")
    history = wd.file("receiver-history.json", json.dumps(rec))

    def verify(state_dir, *extra, key=True):
        c = config_for(state_dir, "cfg-" + os.path.basename(state_dir) + ".toml")
        args = [gw, "evidence", "verify", "--config", c, *extra]
        if key:
            args += ["--key-file", vk]
        return run(args)

    def tampered(name, *statements):
        d = os.path.join(wd.path, name)
        shutil.copytree(state, d)
        con = sqlite3.connect(os.path.join(d, "glasswatch.db"))
        for s in statements:
            con.execute(s)
        con.commit()
        con.close()
        return d

    db = sqlite3.connect(os.path.join(state, "glasswatch.db"))
    entries = db.execute("SELECT seq,epoch,kind,recorded_at,ref,body,prev_hash,hash,mac FROM chain ORDER BY seq").fetchall()
    db.close()
    last_seq = entries[-1][0]
    alert_seqs = [e[0] for e in entries if e[2] == "alert"]
    delivery_seqs = [e[0] for e in entries if e[2] == "delivery"]
    paged = set(watched_alerts(alerts_file).values())
    sealed_alerts = {e[4] for e in entries if e[2] == "alert"}
    check(len(paged) == 5 and paged <= sealed_alerts and len(delivery_seqs) >= 10,
          f"the chain holds every alert ({len(paged)} paged, {len(sealed_alerts)} sealed) and "
          f"delivery record ({len(delivery_seqs)})")
    check(entries[-1][2] == "seal", "a clean stop leaves the chain sealed")
    # The code's hashes and seals are the documented ones.
    for seq, epoch, kind, at, ref, body, prev, h, m in entries:
        if entry_hash(seq, epoch, kind, at, ref, body, prev) != h or mac(key_at(k0, epoch), epoch, h) != m:
            check(False, f"entry {seq} hashes and seals as docs/evidence.md says")

    # ---- untampered ----
    r = verify(state, "--anchors", history)
    check(r.returncode == 0 and "intact" in r.stdout and "anchor(s) checked" in r.stdout
          and "seals checked" in r.stdout, "an untampered copy verifies with the key and the anchors: "
          + r.stdout.strip()[:300])
    r = verify(state, key=False)
    check(r.returncode == 0 and "seals NOT checked" in r.stdout, "without the key verify says the seals were not checked")

    # ---- the tampers ----
    def must_fail(d, what, expect_seq=None, expect_text=None, *extra):
        r = verify(d, *extra)
        out = r.stdout.strip()
        ok = r.returncode == 1 and "BROKEN" in out
        if expect_seq is not None:
            ok = ok and f"at entry {expect_seq}:" in out
        if expect_text is not None:
            ok = ok and expect_text in out
        check(ok, f"{what}: exit {r.returncode}: {out[:300]}")

    must_fail(tampered("t-last", f"DELETE FROM chain WHERE seq={last_seq}"),
              "the last entry deleted", last_seq, "truncated")
    must_fail(tampered("t-last3", f"DELETE FROM chain WHERE seq>{last_seq - 3}"),
              "the last three entries deleted", last_seq - 2)
    must_fail(tampered("t-all", "DELETE FROM chain"), "every entry deleted", 1, "every entry was deleted")
    d = tampered("t-alert", "UPDATE alerts SET summary='routine sign-in', severity='info' WHERE rowid=1")
    must_fail(d, "an alert's summary and severity edited", None, "the alerts table was edited")
    exp = run([gw, "evidence", "export", "--config", config_for(d, "cfg-export.toml")])
    check(exp.returncode == 0 and "routine sign-in" not in exp.stdout,
          "export prints the sealed alert, not the forged one")
    must_fail(tampered("t-detail", "UPDATE alerts SET detail='{}' WHERE rowid=2"),
              "an alert's detail edited", None, "detail differs")
    must_fail(tampered("t-outbox", "DELETE FROM outbox WHERE rowid=1"),
              "a delivery row deleted", None, "deleted from the outbox")
    must_fail(tampered("t-delivery", f"DELETE FROM chain WHERE seq={delivery_seqs[0]}"),
              "a delivery record deleted from the chain", delivery_seqs[0], "missing")

    # Edit the raw record of an alert and recompute every hash after it, as the attacker can
    # without the key; then again, re-sealing each entry with the key the machine holds now.
    target = [e[0] for e in entries if e[2] == "alert" and e[4] in paged][1]
    key_file = open(os.path.join(state, "evidence.key")).read()
    current_epoch = int([ln for ln in key_file.splitlines() if ln.startswith("epoch ")][0][6:])
    current_key = bytes.fromhex([ln for ln in key_file.splitlines() if ln.startswith("key ")][0][4:])
    check(current_key == key_at(k0, current_epoch), "the key file holds K_epoch derived from the verification key")

    def recomputed(name, reseal):
        rows = []
        prev = None
        for seq, epoch, kind, at, ref, body, prev_hash, h, m in entries:
            if seq == target:
                b = json.loads(body)
                b["raw"] = b["raw"].replace("bg", "xx")
                body = json.dumps(b)
            if seq >= target:
                prev_hash = prev
                if kind == "seal":  # the seal's body names the head: rewritten to the new one
                    body = json.dumps({"closes_epoch": epoch, "head": prev_hash, "last_seq": seq - 1},
                                      separators=(",", ":"))
                h = entry_hash(seq, epoch, kind, at, ref, body, prev_hash)
                if reseal:
                    m = mac(current_key, epoch, h)
            rows.append((body, prev_hash, h, m, seq))
            prev = h
        return tampered(name, *[
            "UPDATE chain SET body=%s, prev_hash='%s', hash='%s', mac='%s' WHERE seq=%d"
            % ("'" + body.replace("'", "''") + "'", p, h, m, s) for body, p, h, m, s in rows])

    d = recomputed("t-recompute", reseal=False)
    must_fail(d, "a raw record edited and every hash recomputed", target, "seal does not verify")
    r = verify(d, key=False)
    check(r.returncode == 0 and "seals NOT checked" in r.stdout,
          "(without the verification key the recomputed chain looks whole: the key is what proves it)")
    must_fail(recomputed("t-reseal", reseal=True), "the same, re-sealed with the machine's current key", target)

    # Roll back: the old copy, checked against the heads that left the machine later.
    must_fail(old, "the database replaced by an older copy (anchors from the receivers)", None,
              "rolled back", "--anchors", history)
    r = verify(old)
    check(r.returncode == 0, "(the old copy alone is a consistent chain: anchors are what expose it)")

    # ---- no past epoch's key on disk ----
    check(current_epoch >= 3, f"the key evolved with every seal (epoch {current_epoch})")
    leaked = []
    for path in glob.glob(os.path.join(state, "**"), recursive=True):
        if not os.path.isfile(path):
            continue
        blob = open(path, "rb").read()
        for e in range(current_epoch):
            k = key_at(k0, e)
            if k in blob or k.hex().encode() in blob:
                leaked.append((os.path.basename(path), e))
    check(not leaked, f"no key of a closed epoch (0..{current_epoch - 1}) is in any file of the state ({leaked[:3]})")

    # ---- the bundle, verified offline ----
    bundle = os.path.join(wd.path, "bundle.jsonl")
    r = run([gw, "evidence", "export", "--config", cfg, "--bundle", bundle])
    check(r.returncode == 0 and os.path.exists(bundle), "evidence export --bundle writes a bundle")
    r = run([gw, "evidence", "verify", "--bundle", bundle, "--key-file", vk, "--anchors", history])
    check(r.returncode == 0 and "intact" in r.stdout, "the bundle verifies with no state and no config: " + r.stdout.strip()[:200])
    lines = open(bundle).read().splitlines()
    forged = [ln.replace("bg1@", "xx1@") if '"kind":"alert"' in ln else ln for ln in lines]
    open(bundle + ".forged", "w").write("\n".join(forged) + "\n")
    r = run([gw, "evidence", "verify", "--bundle", bundle + ".forged", "--key-file", vk])
    check(r.returncode == 1 and "BROKEN" in r.stdout, "an edited bundle is refused: " + r.stdout.strip()[:200])
    cut = lines[:-3] + lines[-1:]  # the last two entries dropped, the trailer kept
    open(bundle + ".cut", "w").write("\n".join(cut) + "\n")
    r = run([gw, "evidence", "verify", "--bundle", bundle + ".cut", "--key-file", vk])
    check(r.returncode == 1 and "BROKEN" in r.stdout, "a bundle cut short is refused: " + r.stdout.strip()[:200])
    r = run([gw, "evidence", "verify", "--bundle", bundle])
    check(r.returncode == 2 and "--key-file" in r.stderr, "a bundle without the key is a usage error")
    print(f"FIGURE evidence: entries={last_seq} alerts={len(sealed_alerts)} deliveries={len(delivery_seqs)} "
          f"epochs={current_epoch}")
except SystemExit:
    if daemon:
        print(daemon.log()[-3000:])
    raise
finally:
    if daemon:
        daemon.stop()
    if lab:
        lab.stop()
    wd.close()
print("OK")
