#!/usr/bin/env python3
"""e2e fault test: the SQLite state file damaged between two runs.

A real state database is built with `glasswatch replay --send` (hundreds of alerts, outbox rows
and evidence rows; WAL checkpointed on close). Copies of it are then damaged four ways:

  middle     --pages random pages in the middle of the file overwritten with random bytes
  truncated  the file cut to half its length
  empty      the file cut to 0 bytes (glasswatch creates its file complete and renames it into
             place, so an empty file is damage, not a fresh start)
  header     the 100-byte SQLite header replaced with random bytes

For each: `glasswatch run` must refuse to start (exit 4) within seconds, naming the file and
saying what to do; the file must stay byte for byte what it was (never reset, never replaced,
no checkpoint written into it); `glasswatch evidence verify` must fail clearly (exit 4) too.
The undamaged copy is the control: it verifies and the daemon starts on it.

  test_state_corrupt.py --glasswatch build/release/glasswatch [--seed N] [--rounds N]
--rounds repeats the random damage with new seeds (the long run uses 50)."""
import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import TENANT, Workdir, check, run, signin_record  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--glasswatch", required=True)
ap.add_argument("--seed", type=int, default=4242)
ap.add_argument("--rounds", type=int, default=1, help="random-damage rounds (each with a new seed)")
ap.add_argument("--pages", type=int, default=1, help="pages overwritten by the 'middle' damage")
a = ap.parse_args()

BG1 = "0b7e3f1a-5c2d-4e8f-9a6b-1c2d3e4f5a6b"
EXIT_STORE = 4


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def damage(path, how, rng):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        if how == "middle":
            page = 4096
            pages = size // page
            for _ in range(a.pages):
                p = rng.randrange(max(2, pages // 4), max(3, pages * 3 // 4))
                f.seek(p * page)
                f.write(rng.randbytes(page))
        elif how == "truncated":
            f.truncate(size // 2)
        elif how == "empty":
            f.truncate(0)
        elif how == "header":
            f.seek(0)
            f.write(rng.randbytes(100))
        else:
            raise ValueError(how)


wd = Workdir()
results = {}
try:
    rng = random.Random(a.seed)
    state = os.path.join(wd.path, "state")
    alerts_file = os.path.join(wd.path, "alerts.jsonl")
    cfg = wd.file("glasswatch.toml", f"""
[tenant]
id = "{TENANT}"
name = "contoso"
[[watch.accounts]]
object_id = "{BG1}"
label = "bg-admin-1"
[state]
directory = "{state}"
[admin]
listen = ""
[[sinks]]
name = "audit-file"
type = "file"
path = "{alerts_file}"
""")
    bodies = []
    for b in range(60):
        recs = [signin_record(rng, BG1, "bg1@contoso.onmicrosoft.com") for _ in range(5)]
        bodies.append(json.dumps({"records": recs}, separators=(",", ":")))
    inp = wd.file("stream.ndjson", "\n".join(bodies) + "\n")
    r = run([a.glasswatch, "replay", "--config", cfg, "--send", inp])
    check(r.returncode == 0, f"replay --send builds the state ({r.stderr[-300:]})")
    db = os.path.join(state, "glasswatch.db")
    check(not os.path.exists(db + "-wal") or os.path.getsize(db + "-wal") == 0,
          "the WAL was checkpointed into the file on close")
    size = os.path.getsize(db)
    check(size >= 64 * 1024, f"the state file has many pages ({size} bytes)")
    pristine = os.path.join(wd.path, "pristine.db")
    shutil.copy2(db, pristine)
    r = run([a.glasswatch, "evidence", "verify", "--config", cfg])
    check(r.returncode == 0 and "300 alert(s)" in r.stdout, "control: the undamaged file verifies: " + r.stdout.strip())

    def start_daemon():
        """`glasswatch run`: (exit code or None if still running after 15 s, stderr)."""
        log = os.path.join(wd.path, "daemon.log")
        p = subprocess.Popen([a.glasswatch, "run", "--config", cfg], stdout=subprocess.DEVNULL,
                             stderr=open(log, "w"))
        try:
            rc = p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            rc = None
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=20)
        return rc, open(log).read()

    for rnd in range(a.rounds):
        for how in ("middle", "truncated", "empty", "header"):
            for f in os.listdir(state):
                os.unlink(os.path.join(state, f))
            shutil.copy2(pristine, db)
            damage(db, how, random.Random(a.seed * 1000 + rnd * 10 + len(how)))
            before, listing = sha(db), sorted(os.listdir(state))
            t0 = time.time()
            rc, log = start_daemon()
            took = time.time() - t0
            first = next((l for l in log.splitlines() if "state store" in l), log.strip()[-400:])
            if rnd == 0:
                print(f"{how}: {first}")
            check(rc == EXIT_STORE, f"{how}: the daemon refuses to start (exit {rc}, {took:.1f}s)")
            check(db in log, f"{how}: the error names the file")
            check(("move it" in log and "aside" in log and "backup" in log) or "restore" in log,
                  f"{how}: the error says what to do")
            check(os.path.exists(db) and sha(db) == before, f"{how}: the file is untouched (never reset)")
            check(not [f for f in os.listdir(state) if f.startswith("glasswatch.db") and f not in listing
                       and not f.endswith(("-wal", "-shm"))], f"{how}: no replacement file was created")
            r = run([a.glasswatch, "evidence", "verify", "--config", cfg])
            check(r.returncode == EXIT_STORE and db in r.stderr,
                  f"{how}: evidence verify fails clearly (exit {r.returncode}): {r.stderr.strip()[:160]}")
            check(sha(db) == before, f"{how}: evidence verify left the file untouched")
            results[how] = results.get(how, 0) + 1

    # Control: the undamaged file is accepted and the daemon runs on it.
    for f in os.listdir(state):
        os.unlink(os.path.join(state, f))
    shutil.copy2(pristine, db)
    rc, log = start_daemon()
    check(rc is None, f"control: the daemon runs on the undamaged copy ({log[-300:]})")
    print("FIGURE state_corrupt: " + " ".join(f"{k}_refused={v}/{a.rounds}" for k, v in results.items())
          + " silently_reset=0 file_changed=0")
finally:
    wd.close()
print("PASS")
