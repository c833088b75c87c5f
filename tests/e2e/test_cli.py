#!/usr/bin/env python3
"""e2e: the command line fits an operator's habits.

* `glasswatch <command> --help` and `glasswatch help <command>` print that command's help, not the
  whole overview; exit 0.
* Every flag value is validated before anything happens: a bad or missing value is exit 2 naming
  the flag (`test-alert --wait abc` used to send the test pages and then exit 1; `run --config`
  without a value said "unexpected argument").
* `--account` takes an object id, a UPN or a label (`evidence export --account <UPN>` used to
  return nothing with exit 0); an account that is not watched is exit 2 listing the watched ones.
* Dates: `--since 2025-11-01` (YYYY-MM-DD, UTC) is accepted next to full ISO-8601 times."""
import argparse
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(__file__))
from common import TENANT, Workdir, check, run, signin_record  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--glasswatch", required=True)
a = ap.parse_args()
gw = a.glasswatch

BG1 = "0b7e3f1a-5c2d-4e8f-9a6b-1c2d3e4f5a6b"
COMMANDS = ["run", "check-config", "replay", "test-alert", "evidence", "drill", "outbox", "status",
            "posture", "version"]

wd = Workdir()
try:
    alerts_file = os.path.join(wd.path, "alerts.jsonl")
    cfg = wd.file("glasswatch.toml", f"""
[tenant]
id = "{TENANT}"
[[watch.accounts]]
object_id = "{BG1}"
upn = "bg1@contoso.onmicrosoft.com"
label = "bg-admin-1"
[[watch.accounts]]
object_id = "5f6e7d8c-9b0a-4c1d-8e2f-3a4b5c6d7e8f"
label = "bg-admin-2"
[state]
directory = "{wd.path}/state"
[admin]
listen = ""
[[sinks]]
name = "local"
type = "file"
path = "{alerts_file}"
""")
    overview = run([gw, "help"]).stdout

    # ---- per-command help ---------------------------------------------------------------------
    for cmd in COMMANDS:
        r = run([gw, cmd, "--help"])
        check(r.returncode == 0 and r.stdout.startswith(f"usage: glasswatch {cmd}") and r.stdout != overview,
              f"`glasswatch {cmd} --help` prints that command's help")
        r2 = run([gw, "help", cmd])
        check(r2.returncode == 0 and r2.stdout == r.stdout, f"`glasswatch help {cmd}` prints the same")
    r = run([gw, "help", "nosuch"])
    check(r.returncode == 2, "help for an unknown command is exit 2")

    # ---- flag values are validated first ------------------------------------------------------
    bad = [
        (["test-alert", "--config", cfg, "--wait", "abc"], "--wait"),
        (["test-alert", "--config", cfg, "--wait", "-5"], "--wait"),
        (["test-alert", "--config", cfg, "--wait"], "--wait needs a value"),
        (["run", "--config"], "--config needs a value"),
        (["posture", "--config", cfg, "--timeout", "0"], "--timeout"),
        (["outbox", "list", "--config", cfg, "--limit", "0"], "--limit"),
        (["outbox", "list", "--config", cfg, "--state", "done"], "--state: expected one of pending"),
        (["drill", "start", "--config", cfg, "--account", "bg-admin-1", "--for", "2d"], "--for"),
        (["drill", "report", "--config", cfg, "--since", "yesterday"], "--since"),
        (["evidence", "export", "--config", cfg, "--since", "2025-13-45"], "--since"),
        (["replay", "--config", cfg, "--format", "csv", "-"], "--format"),
        (["replay", "--config", cfg, "--sned", "-"], "unknown option '--sned'"),
        (["check-config", cfg, "extra"], "unexpected argument 'extra'"),
        (["status", "--json"], "unknown option '--json'"),
    ]
    for argv, why in bad:
        r = run([gw] + argv)
        check(r.returncode == 2 and why in r.stderr and f"glasswatch {argv[0]} --help" in r.stderr,
              f"{' '.join(x if x != cfg else 'CFG' for x in argv)}: exit 2 naming {why!r} ({r.stderr.strip()[:120]})")
    check(not os.path.exists(alerts_file), "no test page went out for a refused flag")

    r = run([gw, "test-alert", "--config", cfg, "--wait=5"])
    check(r.returncode == 0 and os.path.exists(alerts_file), f"--wait=5 (the = form) works: {r.stderr[-200:]}")

    # ---- --account by id, UPN or label; dates --------------------------------------------------
    rng = random.Random(5)
    rec = signin_record(rng, BG1, "bg1@contoso.onmicrosoft.com", when="2025-11-03T14:22:07.44+00:00")
    inp = wd.file("touch.json", json.dumps({"records": [rec]}) + "\n")
    r = run([gw, "replay", "--config", cfg, "--send", inp])
    check(r.returncode == 0, f"replay --send stores the touch: {r.stderr[-200:]}")
    for who in [BG1, BG1.upper(), "bg1@contoso.onmicrosoft.com", "BG1@Contoso.onmicrosoft.com", "bg-admin-1"]:
        r = run([gw, "evidence", "export", "--config", cfg, "--account", who, "--since", "2025-11-01"])
        rows = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
        check(r.returncode == 0 and len(rows) >= 1, f"evidence export --account {who} --since 2025-11-01: {len(rows)} row(s)")
    r = run([gw, "evidence", "export", "--config", cfg, "--account", "bg-admin-2"])
    check(r.returncode == 0 and r.stdout.strip() == "", "another watched account: nothing, exit 0")
    r = run([gw, "evidence", "export", "--config", cfg, "--account", "nobody@contoso.example"])
    check(r.returncode == 2 and "not a watched account" in r.stderr and "bg-admin-1" in r.stderr,
          f"an account that is not watched: exit 2 listing the watched ones ({r.stderr.strip()[:140]})")
    r = run([gw, "evidence", "export", "--config", cfg, "--since", "2099-01-01"])
    check(r.returncode == 0 and r.stdout.strip() == "", "--since a future date: nothing")
    r = run([gw, "drill", "start", "--config", cfg, "--account", "bg-admin-2", "--for", "10m"])
    check(r.returncode == 0 and "bg-admin-2" in r.stdout, f"drill start --account LABEL: {r.stdout.strip()[:100]}")
    r = run([gw, "drill", "start", "--config", cfg, "--account", "nobody"])
    check(r.returncode == 2 and "not a watched account" in r.stderr, "drill start for an unwatched account: exit 2")
    r = run([gw, "drill", "report", "--config", cfg, "--since", "2025-01-01", "--json"])
    check(r.returncode == 0 and "bg-admin-2" in r.stdout, "drill report --since YYYY-MM-DD lists it")
finally:
    wd.close()
print("PASS")
