#!/usr/bin/env python3
"""e2e: the daemon as its own tripwire, against the lab.

  silence        Graph works but the tenant is quiet      -> source_silent, then _recovered
  token refused  the token endpoint says "secret expired" -> token_failure (with the class), then
                 _recovered; /readyz 503 and `glasswatch status` exit 1 while it fires
  Graph 503      for longer than the threshold            -> source_error, then _recovered
  disk full      commits fail (injected ENOSPC hook)      -> store_unwritable sent directly, no
                 alert lost: the break-glass sign-in raised meanwhile is alerted once it recovers
  heartbeat      pings the dead-man switch while healthy; "/fail" while the only paging sink is
                 failing; back to healthy after it recovers
  drill          `drill start` while the daemon runs -> the alert says DRILL; `drill report`
                 shows sign-in time, seen time, per-sink accepted/confirmed
  admin          /healthz, /readyz, /metrics"""
import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import (Daemon, Lab, Workdir, check, free_port, graph_config, http_get, read_alerts,  # noqa: E402
                    wait_for)

ap = argparse.ArgumentParser()
ap.add_argument("--glasswatch", required=True)
ap.add_argument("--lab", required=True)
a = ap.parse_args()




wd = Workdir()
lab = daemon = None
feeding = threading.Event()
stop_feeding = threading.Event()
try:
    lab = Lab(a.lab, wd.path, extra=["--token-ttl", "3"])
    s = lab.info["sinks"]
    alerts_file = os.path.join(wd.path, "alerts.jsonl")
    full_flag = os.path.join(wd.path, "disk-full")
    admin = "127.0.0.1:%d" % free_port()
    rk = wd.file("pd-key", s["pagerduty_routing_key"] + "\n")
    extra = 'kinds = ["interactive"]\nfull_stream = true'
    cfg_text = graph_config(lab, os.path.join(wd.path, "state"), alerts_file, poll="1s", extra=extra)
    cfg_text = cfg_text.replace('[admin]\nlisten = ""', f'[admin]\nlisten = "{admin}"')
    cfg_text += f"""
[[sinks]]
name = "pd"
type = "pagerduty"
url = "{s['pagerduty_url']}"
routing_key_file = "{rk}"
ca_file = "{lab.info['ca_file']}"
request_timeout = "3s"

[tripwire]
source_error_threshold = "3s"
silence_threshold = "6s"
active_use_count = 50
drill_max_age = "15s"

[heartbeat]
url = "{s['pagerduty_url'].replace('/v2/enqueue', '/ping/7c9e6679-7425-40de-944b-e07fc1f90ae7')}"
interval = "1s"
timeout = "3s"
ca_file = "{lab.info['ca_file']}"
"""
    cfg = wd.file("glasswatch.toml", cfg_text)
    r = subprocess.run([a.glasswatch, "check-config", cfg], capture_output=True, text=True)
    check(r.returncode == 0, "config valid: " + r.stderr[-300:])

    def feeder():
        while not stop_feeding.is_set():
            if feeding.is_set():
                lab.control("POST", "/lab/signin", {"user": "user", "success": True, "type": "interactive", "delay_s": 0})
            time.sleep(1.0)

    threading.Thread(target=feeder, daemon=True).start()
    env = dict(os.environ, GLASSWATCH_TEST_STORE_FULL_FILE=full_flag)
    daemon_started = time.time()
    daemon = Daemon(a.glasswatch, cfg, wd.path, env=env)

    def rules():
        return [x["rule"] for x in read_alerts(alerts_file)]

    def alert(rule):
        return next((x for x in read_alerts(alerts_file) if x["rule"] == rule), None)

    # ---- admin endpoints ---------------------------------------------------------------------
    check(wait_for(lambda: http_get(f"http://{admin}/healthz")[0] == 200 if os.path.exists(os.path.join(wd.path, "state")) else False, 20),
          "/healthz answers 200")

    # ---- silence -------------------------------------------------------------------------------
    t0 = time.time()
    check(wait_for(lambda: "source_silent" in rules(), 25), "a quiet tenant raises source_silent")
    print("silence alert after %.1fs (threshold 6s)" % (time.time() - t0))
    check("no sign-in or audit record" in alert("source_silent")["summary"], "silence alert says what is missing")
    feeding.set()
    check(wait_for(lambda: "source_silent_recovered" in rules(), 20), "events again -> source_silent_recovered")

    status, body = http_get(f"http://{admin}/metrics")
    check(status == 200 and 'glasswatch_alerts_total{rule="source_silent"} 1' in body, "/metrics counts alerts by rule")
    check('glasswatch_source_last_success_timestamp_seconds{source="graph"}' in body, "/metrics has the last good poll")
    check("glasswatch_token_expiry_timestamp_seconds" in body and "glasswatch_outbox_depth" in body, "/metrics has token expiry and outbox depth")
    check(re.search(r'^glasswatch_build_info\{version="\d+\.\d+\.\d+"\} 1$', body, re.M) is not None,
          "/metrics has glasswatch_build_info{version}")
    for name in ["process_start_time_seconds", "process_resident_memory_bytes", "process_open_fds",
                 "process_max_fds", "process_cpu_seconds_total"]:
        m = re.search(rf"^{name} (\S+)$", body, re.M)
        check(m is not None and float(m.group(1)) > 0, f"/metrics has {name} ({m.group(1) if m else None})")
    started = float(re.search(r"^process_start_time_seconds (\S+)$", body, re.M).group(1))
    check(abs(started - daemon_started) < 5, f"process start time is the daemon's ({started - daemon_started:+.2f} s)")
    for cond in ["store/unwritable", "graph/error", "graph/silent", "graph/lag"]:
        check(re.search(rf'^glasswatch_tripwire_firing\{{condition="{cond}"\}} [01]$', body, re.M) is not None,
              f"glasswatch_tripwire_firing lists {cond} (0 or 1) before it ever fires")
    check('glasswatch_source_lag_seconds{source="graph"}' not in body,
          "Graph's lag is not known: no sample (not a false 0)")
    check(wait_for(lambda: json.loads(json.dumps(lab.control("GET", "/lab/sinks")))["pings"], 10), "heartbeat pings the dead-man switch")

    # ---- token refused -------------------------------------------------------------------------
    lab.control("POST", "/lab/faults", {"token": "expired_secret"})
    t0 = time.time()
    check(wait_for(lambda: "token_failure" in rules(), 30), "refused token -> token_failure alert")
    print("token_failure after %.1fs (threshold 3s)" % (time.time() - t0))
    check("expired_credential" in alert("token_failure")["summary"], "the alert names the AADSTS class (expired credential)")
    st, why = http_get(f"http://{admin}/readyz")
    check(st == 503 and "graph/error" in why, f"/readyz 503 while the tripwire fires ({st})")
    r = subprocess.run([a.glasswatch, "status", "--config", cfg], capture_output=True, text=True, timeout=30)
    check(r.returncode == 1 and "NOT READY" in r.stdout and "FIRING: condition=\"graph/error\"" in r.stdout,
          "glasswatch status reports NOT READY and the firing tripwire:\n" + r.stdout)
    lab.control("POST", "/lab/reset_faults")
    check(wait_for(lambda: "token_failure_recovered" in rules(), 40), "token accepted again -> token_failure_recovered")

    # ---- Graph 503 -----------------------------------------------------------------------------
    lab.control("POST", "/lab/faults", {"graph_status": 503})
    check(wait_for(lambda: "source_error" in rules(), 30), "Graph 503 beyond the threshold -> source_error")
    lab.control("POST", "/lab/reset_faults")
    check(wait_for(lambda: "source_error_recovered" in rules(), 60), "Graph back -> source_error_recovered")
    check(wait_for(lambda: http_get(f"http://{admin}/readyz")[0] == 200, 20), "/readyz 200 again")

    # ---- disk full -----------------------------------------------------------------------------
    open(full_flag, "w").close()
    bg = lab.control("POST", "/lab/signin", {"user": "bg1", "success": True, "type": "interactive", "delay_s": 0})
    check(wait_for(lambda: "store_unwritable" in rules(), 30), "disk full -> store_unwritable sent directly to the sinks")
    time.sleep(3)
    bg_alerts = lambda: [x for x in read_alerts(alerts_file) if x.get("event", {}).get("id") == bg["id"]]  # noqa: E731
    check(not bg_alerts(), "nothing is committed while the disk is full")
    os.unlink(full_flag)
    check(wait_for(lambda: len(bg_alerts()) == 1, 60), "after recovery the break-glass sign-in is alerted (no loss)")
    check(wait_for(lambda: "store_unwritable_recovered" in rules(), 20), "store_unwritable_recovered announced")

    # ---- heartbeat follows the alert path ------------------------------------------------------
    def pings():
        return lab.control("GET", "/lab/sinks")["pings"]

    check(wait_for(lambda: not pings()[-1]["fail"], 20), "healthy pings before the sink fails")
    before = len(pings())
    lab.control("POST", "/lab/sink_faults", {"pagerduty": {"status": 503}})
    lab.control("POST", "/lab/signin", {"user": "bg2", "success": False, "error_code": 50126, "type": "interactive", "delay_s": 0})
    check(wait_for(lambda: any(p["fail"] for p in pings()[before:]), 30), "a failing sink turns the heartbeat into /fail")
    n_fail = len(pings())
    time.sleep(3)
    later = pings()[n_fail:]
    if not (later and all(p["fail"] for p in later)):
        print("pings:", pings())
        print("\n".join(l for l in daemon.log().splitlines() if "sink pd" in l or "heartbeat" in l)[-3000:])
    check(later and all(p["fail"] for p in later), f"no healthy ping while the sink fails ({len(later)} /fail pings)")
    lab.control("POST", "/lab/sink_faults", {"pagerduty": {}})
    n = len(pings())
    check(wait_for(lambda: any(not p["fail"] for p in pings()[n:]), 60), "the heartbeat resumes after the sink recovers")

    # ---- drill ---------------------------------------------------------------------------------
    r = subprocess.run([a.glasswatch, "drill", "start", "--config", cfg, "--account", lab.info["bg1_upn"],
                        "--for", "10m", "--note", "Q4 drill"], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0 and "declared" in r.stdout, "drill start while the daemon runs: " + r.stdout + r.stderr)
    d = lab.control("POST", "/lab/signin", {"user": "bg1", "success": True, "type": "interactive", "delay_s": 0})
    drill_alert = lambda: next((x for x in read_alerts(alerts_file) if x.get("event", {}).get("id") == d["id"]), None)  # noqa: E731
    check(wait_for(drill_alert, 30), "the drill sign-in is alerted")
    da = drill_alert()
    check(da["drill"] is True and da["sms"].startswith("DRILL") and "[DRILL]" in da["summary"], "the alert is labelled DRILL")
    check(wait_for(lambda: lab.control("GET", "/lab/sinks")["pagerduty_incidents"].get(da["alertId"]), 30), "PagerDuty got the drill alert")
    time.sleep(1.5)
    r = subprocess.run([a.glasswatch, "drill", "report", "--config", cfg], capture_output=True, text=True, timeout=30)
    print(r.stdout)
    check(r.returncode == 0 and "Q4 drill" in r.stdout and "glasswatch saw it at" in r.stdout
          and "sink pd" in r.stdout and "drill passed" in r.stdout, "drill report shows the timings")
    r = subprocess.run([a.glasswatch, "drill", "report", "--config", cfg, "--json"], capture_output=True, text=True, timeout=30)
    rep = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    sinks = {x["sink"]: x for x in rep[0]["alerts"][0]["sinks"]}
    check(rep[0]["result"] == "alert delivered" and sinks["pd"]["acceptedAt"] != "-", "drill report --json has per-sink acceptance")

    # bg2 never had a drill: with drill_max_age = 15s it is overdue by now.
    check(wait_for(lambda: any(x["rule"] == "drill_overdue" and "bg-admin-2" in x["summary"]
                               for x in read_alerts(alerts_file)), 30), "drill_overdue for the account never drilled")

    rc = daemon.stop()
    check(rc == 0, f"SIGTERM exits 0 (rc={rc})")
    log = daemon.log()
    check(s["pagerduty_routing_key"] not in log, "the routing key never appears in the log")
finally:
    stop_feeding.set()
    if daemon:
        daemon.stop()
    if lab:
        lab.stop()
    wd.close()
print("PASS")
