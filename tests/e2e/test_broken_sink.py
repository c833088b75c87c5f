#!/usr/bin/env python3
"""e2e: a paging sink that breaks for good, as an operator meets it with the real binary.

The webhook receiver answers 410 Gone (the endpoint was deleted). Expected:
  * exactly one sink_broken page (through PagerDuty), and no further request to the dead URL
    while more break-glass sign-ins arrive;
  * /readyz 503 naming the sink, `glasswatch status` NOT READY (exit 1), the metric
    glasswatch_sink_broken{sink="hook"} 1;
  * `glasswatch outbox list --sink hook --state failed` shows the refused row, and the rows that
    arrived later wait as pending (kept);
  * a restart with the same configuration neither pages again nor calls the dead URL;
  * once the receiver is back, `glasswatch outbox retry --sink hook` (next to the running
    daemon) delivers every held alert, pages sink_broken_recovered once, and readiness returns.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import (Daemon, Lab, Workdir, check, free_port, graph_config, http_get,  # noqa: E402
                    pagerduty_sink, run, wait_for, webhook_sink)

ap = argparse.ArgumentParser()
ap.add_argument("--glasswatch", required=True)
ap.add_argument("--lab", required=True)
a = ap.parse_args()

wd = Workdir()
lab = daemon = None
try:
    lab = Lab(a.lab, wd.path, extra=["--delay-s", "0"])
    admin = "127.0.0.1:%d" % free_port()
    alerts_file = os.path.join(wd.path, "alerts.jsonl")
    cfg_text = graph_config(lab, os.path.join(wd.path, "state"), alerts_file, poll="1s",
                            extra='kinds = ["interactive"]')
    cfg_text = cfg_text.replace('[admin]\nlisten = ""', f'[admin]\nlisten = "{admin}"')
    # The "in active use" summary is tested elsewhere; here it would blur the per-alert counts.
    cfg = wd.file("glasswatch.toml", cfg_text + pagerduty_sink(lab, wd) + webhook_sink(lab, wd) +
                  "\n[tripwire]\nactive_use_count = 1000\n")
    check(run([a.glasswatch, "check-config", cfg]).returncode == 0, "config valid")

    def sinks():
        return lab.control("GET", "/lab/sinks")

    def hook_requests():
        return [e for e in sinks()["log"] if e["service"] == "webhook"]

    def pages(rule):
        return [e for e in sinks()["pagerduty"] if e["payload"].get("class") == rule]

    def outbox(*args):
        r = run([a.glasswatch, "outbox", *args, "--config", cfg])
        return r.returncode, [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")], r

    lab.control("POST", "/lab/sink_faults", {"webhook": {"status": 410}})
    daemon = Daemon(a.glasswatch, cfg, wd.path)
    ids = [lab.control("POST", "/lab/signin", {"user": "bg1", "type": "interactive"})["id"]]
    check(wait_for(lambda: len(pages("sink_broken")) == 1, 30), "one sink_broken page through PagerDuty")
    for _ in range(3):
        ids.append(lab.control("POST", "/lab/signin", {"user": "bg2", "type": "interactive"})["id"])
        time.sleep(0.5)
    check(wait_for(lambda: len(sinks()["pagerduty_incidents"]) >= 5, 30),
          "later break-glass sign-ins still page through PagerDuty")
    time.sleep(2)
    check(len(hook_requests()) == 1, f"one request to the gone URL, none after it ({len(hook_requests())})")
    check(len(pages("sink_broken")) == 1, "still exactly one sink_broken page")

    status, body = http_get(f"http://{admin}/readyz")
    check(status == 503 and "sink hook broken" in body and "http_410" in body,
          f"/readyz is 503 and names the sink: {body.strip()}")
    _, metrics = http_get(f"http://{admin}/metrics")
    check('glasswatch_sink_broken{sink="hook"} 1' in metrics, "glasswatch_sink_broken{sink=hook} is 1")
    r = run([a.glasswatch, "status", "--config", cfg])
    check(r.returncode == 1 and "NOT READY" in r.stdout, "status: NOT READY, exit 1")

    rc, rows, _ = outbox("list", "--sink", "hook", "--state", "failed", "--json")
    failed = [x for x in rows if "alertId" in x]
    check(rc == 0 and len(failed) == 1 and "HTTP 410" in failed[0]["lastError"],
          "outbox list shows the refused row with the service's answer")
    episodes = [x for x in rows if "episode" in x]
    check(len(episodes) == 1 and episodes[0]["holding"], "outbox list shows the holding episode")
    rc, pending, _ = outbox("list", "--sink", "hook", "--state", "pending", "--json")
    check(len([x for x in pending if "alertId" in x]) == 3, "the later alerts wait for the sink, kept")

    # A restart with the same configuration: no second page, no knock on the dead URL.
    check(daemon.stop() == 0, "SIGTERM exits 0")
    daemon = Daemon(a.glasswatch, cfg, wd.path, name="daemon-restarted")
    check(wait_for(lambda: http_get(f"http://{admin}/readyz")[0] == 503, 20), "restarted: still not ready")
    time.sleep(3)
    check(len(hook_requests()) == 1 and len(pages("sink_broken")) == 1,
          "restarted: no request to the gone URL and no second page")

    # The receiver is back; the operator re-queues next to the running daemon.
    lab.control("POST", "/lab/sink_faults", {"webhook": {}})
    rc, _, r = outbox("retry", "--sink", "hook")
    check(rc == 0 and "re-queued 1 failed row" in r.stdout and "released sink hook" in r.stdout,
          "outbox retry: " + r.stdout.strip())
    check(wait_for(lambda: all(("msg_" + gw) in sinks()["webhook_ids"] for gw in
                               [e["dedup_key"] for e in sinks()["pagerduty"]
                                if e["payload"].get("class") == "breakglass_signin"]), 30),
          "every held alert reached the webhook")
    check(wait_for(lambda: len(pages("sink_broken_recovered")) == 1, 30), "one sink_broken_recovered page")
    check(wait_for(lambda: http_get(f"http://{admin}/readyz")[0] == 200, 20), "/readyz 200 again")
    r = run([a.glasswatch, "evidence", "export", "--config", cfg])
    check(r.returncode == 0 and "outbox_retry" in r.stdout,
          "the operator's re-queue is in the exported evidence")
    r = run([a.glasswatch, "evidence", "verify", "--config", cfg])
    check(r.returncode == 0, "evidence chain intact: " + r.stdout.strip())
    check(daemon.stop() == 0, "SIGTERM exits 0")
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
