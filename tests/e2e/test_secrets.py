#!/usr/bin/env python3
"""e2e: secrets never leak. Every secret glasswatch holds (Graph client secret, PagerDuty routing
key, Twilio auth token, webhook signing secret) is checked against everything an operator or an
attacker could read: the log at trace level, check-config output, /metrics, /readyz, `status`,
the alert file, `evidence export`, and the error texts of failing sinks and a refused token.
Also: a secret file readable by others is refused (the message names the file, not the content),
and the daemon runs with core dumps off and non-dumpable."""
import argparse
import os
import stat
import subprocess
import sys
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
try:
    lab = Lab(a.lab, wd.path)
    s = lab.info["sinks"]
    canaries = {
        "graph client secret": open(lab.info["client_secret_file"]).read().strip(),
        "pagerduty routing key": s["pagerduty_routing_key"],
        "twilio auth token": s["twilio_auth_token"],
        "webhook secret": s["webhook_secret"],
    }
    # The signing key inside whsec_... is what an HMAC leak would expose: check it too.
    canaries["webhook key"] = s["webhook_secret"].split("_", 1)[1]
    files = {n: wd.file(n.replace(" ", "-"), v + "\n") for n, v in canaries.items() if n != "webhook key"}
    alerts_file = os.path.join(wd.path, "alerts.jsonl")
    admin = "127.0.0.1:%d" % free_port()
    cfg_text = graph_config(lab, os.path.join(wd.path, "state"), alerts_file, poll="1s",
                            extra='kinds = ["interactive"]')
    cfg_text = cfg_text.replace('[admin]\nlisten = ""', f'[admin]\nlisten = "{admin}"')
    cfg_text += f"""
[log]
level = "trace"
[[sinks]]
name = "pd"
type = "pagerduty"
url = "{s['pagerduty_url']}"
routing_key_file = "{files['pagerduty routing key']}"
ca_file = "{lab.info['ca_file']}"
[[sinks]]
name = "sms"
type = "twilio"
api_base = "{s['twilio_url']}"
account_sid = "{s['twilio_account_sid']}"
auth_token_file = "{files['twilio auth token']}"
from = "+15005550006"
to = ["+14155550100"]
ca_file = "{lab.info['ca_file']}"
[[sinks]]
name = "hook"
type = "webhook"
url = "{s['webhook_url']}"
signing_secret_file = "{files['webhook secret']}"
ca_file = "{lab.info['ca_file']}"
"""
    cfg = wd.file("glasswatch.toml", cfg_text)
    seen = {}

    def look(where, text):
        seen[where] = text

    r = subprocess.run([a.glasswatch, "check-config", cfg], capture_output=True, text=True)
    check(r.returncode == 0, "config valid")
    look("check-config", r.stdout + r.stderr)

    daemon = Daemon(a.glasswatch, cfg, wd.path)
    check(wait_for(lambda: "ready" in daemon.log(), 20), "daemon ready")
    limits = open(f"/proc/{daemon.proc.pid}/limits").read()
    core_line = next(l for l in limits.splitlines() if l.startswith("Max core file size"))
    check(core_line.split()[4:6] == ["0", "0"], "core dumps off: " + core_line)

    # Error paths: every sink failing with its own error text, then a refused token.
    lab.control("POST", "/lab/sink_faults", {"pagerduty": {"status": 500}, "twilio": {"status": 503},
                                             "webhook": {"status": 502}})
    lab.control("POST", "/lab/signin", {"user": "bg1", "success": True, "type": "interactive", "delay_s": 0})
    check(wait_for(lambda: "retrying" in daemon.log(), 30), "sink failures logged")
    lab.control("POST", "/lab/faults", {"token": "bad_secret", "token_ttl_s": 2})
    time.sleep(6)
    lab.control("POST", "/lab/reset_faults")
    lab.control("POST", "/lab/sink_faults", {"pagerduty": {}, "twilio": {}, "webhook": {}})
    check(wait_for(lambda: len(lab.control("GET", "/lab/sinks")["pagerduty"]) >= 1, 60), "delivered after recovery")
    look("metrics", http_get(f"http://{admin}/metrics")[1])
    look("readyz", http_get(f"http://{admin}/readyz")[1])
    r = subprocess.run([a.glasswatch, "status", "--config", cfg], capture_output=True, text=True, timeout=30)
    look("status", r.stdout + r.stderr)
    check(daemon.stop() == 0, "SIGTERM exits 0")
    look("log", daemon.log())
    look("alerts", open(alerts_file).read() if os.path.exists(alerts_file) else "")
    r = subprocess.run([a.glasswatch, "evidence", "export", "--config", cfg], capture_output=True, text=True)
    look("evidence export", r.stdout + r.stderr)
    check(len(seen["log"]) > 1000 and "trace" in cfg_text, "a trace-level log was produced (%d bytes)" % len(seen["log"]))

    for where, text in seen.items():
        for name, value in canaries.items():
            check(value not in text, f"{name} not in {where}")

    # A secret file readable by others is refused; the error names the file, not its content.
    leaky = files["pagerduty routing key"]
    os.chmod(leaky, 0o644)
    r = subprocess.run([a.glasswatch, "run", "--config", cfg], capture_output=True, text=True, timeout=30)
    out = r.stdout + r.stderr
    check(r.returncode == 3 and "readable by other users" in out and leaky in out,
          f"a world-readable secret file is refused (rc={r.returncode})")
    check(canaries["pagerduty routing key"] not in out, "the refusal does not print the secret")
    os.chmod(leaky, stat.S_IRUSR | stat.S_IWUSR)
finally:
    if daemon:
        daemon.stop()
    if lab:
        lab.stop()
    wd.close()
print("PASS")
