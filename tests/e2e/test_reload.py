#!/usr/bin/env python3
"""e2e: SIGHUP reloads the configuration in place; a refused file keeps the running one.

The daemon starts watching only bg-admin-1. A sign-in of bg-admin-2 raises nothing. The file
is changed to watch both and SIGHUP is sent with a bg-admin-1 sign-in in flight: the daemon is
still the same process, the in-flight sign-in is alerted (nothing lost in the switch), and a
bg-admin-2 sign-in after the reload is alerted. Then an invalid file (a typo in a sink's rules,
an unset env secret) is loaded: the daemon keeps running on the previous configuration (a
bg-admin-2 sign-in is still alerted), raises one config_reload_failed warning alert and shows it
in its metrics; fixing the file and sending SIGHUP again raises the recovery. SIGTERM exits 0.
Before all that, /healthz answers with 64 idle connections open to the admin port."""
import argparse
import os
import re
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import (Daemon, Lab, Workdir, check, free_port, graph_config, http_get,  # noqa: E402
                    read_alerts, wait_for)

ap = argparse.ArgumentParser()
ap.add_argument("--glasswatch", required=True)
ap.add_argument("--lab", required=True)
a = ap.parse_args()

BG2_BLOCK = '''[[watch.accounts]]
object_id = "5f6e7d8c-9b0a-4c1d-8e2f-3a4b5c6d7e8f"
upn = "bg2@contoso.onmicrosoft.com"
label = "bg-admin-2"
'''

wd = Workdir()
lab = daemon = None
try:
    lab = Lab(a.lab, wd.path)
    alerts_file = os.path.join(wd.path, "alerts.jsonl")
    port = free_port()
    both = graph_config(lab, os.path.join(wd.path, "state"), alerts_file, poll="1s",
                        extra='kinds = ["interactive"]')
    both = both.replace('[admin]\nlisten = ""', f'[admin]\nlisten = "127.0.0.1:{port}"')
    check(BG2_BLOCK in both, "the lab config names bg-admin-2 (test precondition)")
    only_bg1 = both.replace(BG2_BLOCK, "")
    cfg = wd.file("glasswatch.toml", only_bg1)
    daemon = Daemon(a.glasswatch, cfg, wd.path)
    pid = daemon.proc.pid

    def metrics():
        st, body = http_get(f"http://127.0.0.1:{port}/metrics")
        return body if st == 200 else ""

    def metric(name, labels=""):
        m = re.search(rf"^{re.escape(name + labels)} (\S+)$", metrics(), re.M)
        return float(m.group(1)) if m else None

    def alerted(event_id):
        return any(x.get("event", {}).get("id") == event_id for x in read_alerts(alerts_file))

    def rules():
        return [x["rule"] for x in read_alerts(alerts_file)]

    def signin(user):
        return lab.control("POST", "/lab/signin", {"user": user, "success": True, "type": "interactive",
                                                   "delay_s": 0})["id"]

    check(wait_for(lambda: metric("glasswatch_ready") == 1.0, 20), "daemon ready")
    # Any local user can open connections to the admin port: 64 idle ones must not blind the probes.
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(64)]
    st, body = http_get(f"http://127.0.0.1:{port}/healthz")
    check(st == 200 and body == "ok\n", f"/healthz answers with 64 idle connections open ({st})")
    for c in idle:
        c.close()
    ignored = signin("bg2")
    first = signin("bg1")
    check(wait_for(lambda: alerted(first), 15), "bg-admin-1 watched: alerted")
    check(not alerted(ignored), "bg-admin-2 not watched yet: nothing raised")

    # ---- a valid reload, with a sign-in in flight ---------------------------------------------
    with open(cfg, "w") as f:
        f.write(both)
    in_flight = signin("bg1")
    daemon.proc.send_signal(signal.SIGHUP)
    check(wait_for(lambda: metric("glasswatch_config_reloads_total", '{result="success"}') == 1.0, 20),
          "reload counted as a success")
    check(daemon.proc.poll() is None and daemon.proc.pid == pid, "SIGHUP: the same process still runs")
    check(wait_for(lambda: alerted(in_flight), 15), "the sign-in in flight during the switch is alerted")
    after = signin("bg2")
    check(wait_for(lambda: alerted(after), 15), "bg-admin-2 watched after the reload: alerted")
    check("reload applied: 1 -> 2 account(s)" in daemon.log(), "the log says what the reload changed")

    # ---- refused reloads ------------------------------------------------------------------------
    broken = both.replace('type = "file"', 'type = "file"\nrules = ["breakglass_sigin"]')
    with open(cfg, "w") as f:
        f.write(broken)
    daemon.proc.send_signal(signal.SIGHUP)
    check(wait_for(lambda: metric("glasswatch_config_reloads_total", '{result="failure"}') == 1.0, 20),
          "invalid file: reload counted as a failure")
    check(metric("glasswatch_config_last_reload_successful") == 0.0, "last_reload_successful is 0")
    check(wait_for(lambda: "config_reload_failed" in rules(), 15), "one config_reload_failed warning alert")
    warn = next(x for x in read_alerts(alerts_file) if x["rule"] == "config_reload_failed")
    check(warn["severity"] == "warning" and "breakglass_sigin" in warn["summary"],
          f"the alert says why: {warn['summary'][:160]}")
    check(daemon.proc.poll() is None, "still running after an invalid file")
    still = signin("bg2")
    check(wait_for(lambda: alerted(still), 15), "still running on the previous configuration (bg-admin-2 watched)")

    # An unset env: secret is refused the same way (what run refuses, reload refuses), and a
    # second refusal in the same episode raises no second page.
    unset = both.replace(f'client_secret_file = "{lab.info["client_secret_file"]}"',
                         'client_secret = "env:GLASSWATCH_TEST_UNSET_SECRET"')
    check(unset != both, "test precondition: the config reads the client secret from a file")
    with open(cfg, "w") as f:
        f.write(unset)
    daemon.proc.send_signal(signal.SIGHUP)
    check(wait_for(lambda: metric("glasswatch_config_reloads_total", '{result="failure"}') == 2.0, 20),
          "unset env secret: reload refused")
    time.sleep(2)
    check(rules().count("config_reload_failed") == 1, "one warning alert per episode of refusals")
    check("GLASSWATCH_TEST_UNSET_SECRET" in daemon.log(), "the log names the unset variable")

    with open(cfg, "w") as f:
        f.write(both)
    daemon.proc.send_signal(signal.SIGHUP)
    check(wait_for(lambda: metric("glasswatch_config_reloads_total", '{result="success"}') == 2.0, 20),
          "fixed file: reload applied")
    check(wait_for(lambda: "config_reload_failed_recovered" in rules(), 15), "recovery alert after the fix")
    check(metric("glasswatch_config_last_reload_successful") == 1.0, "last_reload_successful is 1 again")
    last = signin("bg1")
    check(wait_for(lambda: alerted(last), 15), "alerting after the second switch")

    ids = [x["event"]["id"] for x in read_alerts(alerts_file) if "event" in x]
    check(len(ids) == len(set(ids)), f"no alert written twice over four reloads ({len(ids)} alerts)")
    check(daemon.stop() == 0, "SIGTERM after reloads exits 0")
    daemon = None
except SystemExit:
    if daemon:
        print("---- daemon log (tail) ----\n" + "\n".join(daemon.log().splitlines()[-40:]))
    raise
finally:
    if daemon:
        daemon.stop()
    if lab:
        lab.stop()
    wd.close()
print("PASS")
