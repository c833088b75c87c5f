#!/usr/bin/env python3
"""e2e: restarts do not page through the dead-man switch; the state stays private and is one daemon's.

A Healthchecks-style provider pages on "/fail". glasswatch used to send it on every start,
before its first poll had completed. Here the daemon is started three times on the same state;
each time the lab's Graph refuses the first request (503), so the first good poll comes a couple
of seconds after the start. Expected: no "/fail" ping at all, a "/start" ping per start
(start_ping = true), and a healthy ping within the start grace of each start. Started with umask
022, the state directory is 0700 and its files 0600 (raw sign-ins, IPs and UPNs)."""
import argparse
import os
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import Daemon, Lab, Workdir, check, graph_config, run, wait_for  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--glasswatch", required=True)
ap.add_argument("--lab", required=True)
a = ap.parse_args()

CHECK_ID = "3f1c2b7e-9d4a-4c61-8e15-0b2d6f7a9c10"
GRACE_S = 15  # the third start meets the lab's per-client throttle (429 + Retry-After): ~7 s

os.umask(0o022)  # a shell's usual umask, outside systemd
wd = Workdir()
lab = daemon = None
try:
    lab = Lab(a.lab, wd.path)
    s = lab.info["sinks"]
    alerts_file = os.path.join(wd.path, "alerts.jsonl")
    cfg_text = graph_config(lab, os.path.join(wd.path, "state"), alerts_file, poll="1s",
                            extra='kinds = ["interactive"]')
    cfg_text += f"""
[heartbeat]
url = "{s['pagerduty_url'].replace('/v2/enqueue', '/ping/' + CHECK_ID)}"
interval = "1s"
timeout = "3s"
ca_file = "{lab.info['ca_file']}"
start_grace = "{GRACE_S}s"
start_ping = true
"""
    cfg = wd.file("glasswatch.toml", cfg_text)
    r = run([a.glasswatch, "check-config", cfg])
    check(r.returncode == 0, "config valid " + r.stderr[-300:])

    def pings(since_us):
        return [p for p in lab.control("GET", "/lab/sinks")["pings"] if p["at_us"] >= since_us]

    for start in range(3):
        lab.control("POST", "/lab/faults", {"graph_status": 503, "graph_status_count": 1})
        t0 = int(time.time() * 1e6)
        daemon = Daemon(a.glasswatch, cfg, wd.path, name=f"daemon-start-{start}")
        healthy = wait_for(lambda: [p for p in pings(t0) if not p["fail"] and not p["check"].endswith("/start")],
                           GRACE_S + 5)
        check(bool(healthy), f"start {start + 1}: a healthy ping within the grace")
        first = min(p["at_us"] for p in healthy)
        check(first - t0 <= GRACE_S * 1e6, f"start {start + 1}: first healthy ping {(first - t0) / 1e6:.1f} s after the start")
        check(any(p["check"].endswith("/start") for p in pings(t0)), f"start {start + 1}: one /start ping")
        rc = daemon.stop()
        check(rc == 0, f"start {start + 1}: SIGTERM exits 0")
        daemon = None
    # One daemon per state directory: a second `run` on the same state exits 4 naming the first.
    daemon = Daemon(a.glasswatch, cfg, wd.path, name="daemon-first")
    time.sleep(1.5)  # started and holding the lock
    second = run([a.glasswatch, "run", "--config", cfg], timeout=30)
    check(second.returncode == 4 and f"pid {daemon.proc.pid}" in second.stderr,
          f"a second run on the same state exits 4 naming pid {daemon.proc.pid}: "
          + second.stderr.strip()[-200:])
    check(daemon.stop() == 0, "the first daemon still stops cleanly")
    daemon = None
    all_pings = lab.control("GET", "/lab/sinks")["pings"]
    fails = [p for p in all_pings if p["fail"]]
    print(f"FIGURE restart_quiet: starts=3 pings={len(all_pings)} fail_pings={len(fails)}")
    check(not fails, f"no /fail ping over three starts ({len(fails)})")
    state = os.path.join(wd.path, "state")
    mode = stat.S_IMODE(os.stat(state).st_mode)
    check(mode == 0o700, f"state directory is private under umask 022 ({oct(mode)})")
    for name in sorted(os.listdir(state)):
        m = stat.S_IMODE(os.stat(os.path.join(state, name)).st_mode)
        check(m & 0o077 == 0, f"{name} is private under umask 022 ({oct(m)})")
except SystemExit:
    if daemon:
        print("---- daemon log (tail) ----\n" + "\n".join(daemon.log().splitlines()[-30:]))
    raise
finally:
    if daemon:
        daemon.stop()
    if lab:
        lab.stop()
    wd.close()
print("PASS")
