#!/usr/bin/env python3
"""e2e: posture checks against the simulated tenant. `glasswatch posture` passes on the lab's
initial state (exit 0, human and JSON); the daemon's periodic check raises nothing while it
passes. The lab then removes a break-glass exclusion from a blocking Conditional Access policy:
a posture_ca_not_excluded alert reaches the file sink within one check interval, exactly once,
and `glasswatch posture --json` exits 1 naming the policy. Fixing it is announced
(posture_fixed). Without Policy.Read.All the command says "cannot check: missing permission"."""
import argparse
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import Daemon, Lab, Workdir, check, graph_config, read_alerts, run, wait_for  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--glasswatch", required=True)
ap.add_argument("--lab", required=True)
a = ap.parse_args()

INTERVAL = 3.0  # [posture] interval in the test config
wd = Workdir()
lab = daemon = None
try:
    lab = Lab(a.lab, wd.path)
    info = lab.info
    alerts_file = os.path.join(wd.path, "alerts.jsonl")
    text = graph_config(lab, os.path.join(wd.path, "state"), alerts_file, poll="5s",
                        extra='kinds = ["interactive"]\n[posture]\ninterval = "%ds"' % INTERVAL)
    check('groups = ["%s"]' % info["bg_group"] in text, "the config watches the lab's break-glass group")
    cfg = wd.file("glasswatch.toml", text)

    r = run([a.glasswatch, "check-config", cfg])
    check(r.returncode == 0 and "posture:  every 3s" in r.stdout and "watch.groups" not in r.stdout,
          "check-config summarises the posture checks (group watched: no warning)")

    def posture(*extra):
        return run([a.glasswatch, "posture", "--config", cfg, *extra], timeout=60)

    r = posture("--json")
    check(r.returncode == 0, f"posture --json passes on the lab's initial state (rc={r.returncode}, {r.stderr.strip()})")
    report = json.loads(r.stdout)
    check(report["ok"] is True and report["summary"]["fail"] == 0, "JSON report: ok, nothing failing")
    checks = {c["check"] for c in report["checks"]}
    check({"account_exists", "account_enabled", "cloud_only", "global_admin_permanent", "group_membership",
           "ca_excludes_accounts"} <= checks, f"every check ran ({sorted(checks)})")
    r = posture()
    check(r.returncode == 0 and r.stdout.startswith("posture: 0 failing"), "human report passes too")

    daemon = Daemon(a.glasswatch, cfg, wd.path)
    check(wait_for(lambda: "posture: 0 failing, 0 cannot be checked" in daemon.log(), 20),
          "the daemon's first posture check passes")
    check(not [x for x in read_alerts(alerts_file) if x["rule"].startswith("posture")], "no posture alert while it passes")

    # The lab removes bg2's exclusion from the blocking policy.
    block = info["ca_policies"]["block_legacy"]
    broke_at = time.time()
    lab.control("POST", "/lab/posture", {"ca": {block: {"conditions": {"users": {"excludeUsers": ["bg1"]}}}}})

    def rule_alerts(rule):
        return [x for x in read_alerts(alerts_file) if x["rule"] == rule]

    got = wait_for(lambda: rule_alerts("posture_ca_not_excluded"), INTERVAL * 2 + 10)
    took = time.time() - broke_at
    check(bool(got), "the removed exclusion is alerted through the file sink")
    # One interval of waiting plus the check itself (~1 s) and the delivery.
    check(took <= INTERVAL + 4.0, f"within one check interval: {took:.1f}s")
    alert = got[0]
    check(alert["subject"]["id"] == block, "the alert names the policy")
    check(info["bg2"] in alert["summary"] and "does not exclude" in alert["summary"], "and what is wrong")
    check(alert["details"]["whatChanged"].startswith("was passing"), "and what changed since the last check")

    r = posture("--json")
    check(r.returncode == 1, f"posture --json exits 1 while a check fails (rc={r.returncode})")
    failing = [c for c in json.loads(r.stdout)["checks"] if c["status"] == "fail"]
    check(any(c["rule"] == "posture_ca_not_excluded" and c["subject"] == block for c in failing),
          "the JSON report names the failing policy")

    time.sleep(INTERVAL * 2 + 1)
    check(len(rule_alerts("posture_ca_not_excluded")) == 1, "a persisting failure alerts once, not every interval")

    lab.control("POST", "/lab/posture", {"reset": True})
    fixed = wait_for(lambda: rule_alerts("posture_fixed"), INTERVAL * 2 + 10)
    check(bool(fixed) and any(x["subject"]["id"] == block for x in fixed), "the fix is announced (posture_fixed)")
    check(posture().returncode == 0, "posture passes again")

    lab.control("POST", "/lab/posture", {"deny": ["Policy.Read.All"]})
    r = posture()
    check(r.returncode == 1, f"a missing permission is not a pass (rc={r.returncode})")
    check("cannot check: missing permission Policy.Read.All" in r.stdout, "human report: cannot check: missing permission")
    r = posture("--json")
    degraded = [c for c in json.loads(r.stdout)["checks"] if c["status"] == "cannot_check"]
    check(degraded and all(c["missingPermission"] == "Policy.Read.All" for c in degraded),
          "JSON report names the missing permission")
    check(wait_for(lambda: rule_alerts("posture_cannot_check"), INTERVAL * 2 + 10), "the daemon reports the degraded check")

    check(daemon.proc.poll() is None, "daemon still running")
    rc = daemon.stop()
    check(rc == 0, f"SIGTERM exits 0 (rc={rc})")
    log = daemon.log()
    secret = open(info["client_secret_file"]).read().strip()
    check(secret not in log and not re.search(re.escape(secret), r.stdout + r.stderr), "the client secret never appears")
finally:
    if daemon:
        daemon.stop()
    if lab:
        lab.stop()
    wd.close()
print("PASS")
