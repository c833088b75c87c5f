#!/usr/bin/env python3
"""bench_graph: what polling Microsoft Graph costs as the tenant grows.

The lab's simulated tenant writes ordinary sign-ins (30 % interactive, 60 % non-interactive, 7 %
service principal, 3 % managed identity) and audits in the background at --rates sign-ins per
second; the daemon polls it with the shipped defaults (every stream allowed, server-side filter,
5 requests per 10 s, 1 h lookback) while a break-glass sign-in is made visible every few
seconds. Per rate it reports, over the measuring window after a warm-up:

  requests per poll cycle   Graph requests / completed cycles (daemon metrics)
  cycle duration            window / cycles
  alert latency             visible in the lab -> written by the file sink (p50, p99, max)

Targets (issue 16): requests per cycle independent of the rate (within one page), a cycle
shorter than the poll interval, p99 latency <= poll interval + 5 s. Timing is reported, not
asserted; the exit status is non-zero only when an alert is missing or duplicated.

  bench_graph.py --glasswatch BIN --lab BIN [--rates 10,1000] [--window-s 90] [--poll-s 10]
"""
import argparse
import json
import os
import re
import statistics
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "e2e"))
from common import Daemon, Lab, Workdir, fail, free_port, graph_config, http_get, read_alerts  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--glasswatch", required=True)
ap.add_argument("--lab", required=True)
ap.add_argument("--rates", default="10,1000")
ap.add_argument("--window-s", type=float, default=90)
ap.add_argument("--warmup-s", type=float, default=20)
ap.add_argument("--poll-s", type=int, default=10)
ap.add_argument("--touch-every-s", type=float, default=4)
ap.add_argument("--quick", action="store_true", help="smoke: rates 10,200, 25 s windows")
ap.add_argument("--json", help="write the figures here as JSON")
a = ap.parse_args()
if a.quick:
    a.rates, a.window_s, a.warmup_s = "10,200", 25, 8


def metric(body, name, source="graph"):
    m = re.search(rf'^{name}\{{source="{source}"\}} (\S+)$', body, re.M)
    return float(m.group(1)) if m else None


def run_rate(rate):
    wd = Workdir()
    lab = daemon = None
    try:
        lab = Lab(a.lab, wd.path, extra=["--rate", str(rate)])
        alerts_file = os.path.join(wd.path, "alerts.jsonl")
        port = free_port()
        cfg_text = graph_config(lab, os.path.join(wd.path, "state"), alerts_file, poll=f"{a.poll_s}s")
        cfg_text = cfg_text.replace('[admin]\nlisten = ""', f'[admin]\nlisten = "127.0.0.1:{port}"')
        cfg = wd.file("glasswatch.toml", cfg_text)
        daemon = Daemon(a.glasswatch, cfg, wd.path)

        def scrape():
            st, body = http_get(f"http://127.0.0.1:{port}/metrics")
            return body if st == 200 else ""

        deadline = time.time() + 30
        while metric(scrape(), "glasswatch_source_polls_total") in (None, 0.0):
            if time.time() > deadline:
                fail(f"rate {rate}: the daemon never completed a poll")
            time.sleep(0.5)
        time.sleep(a.warmup_s)
        b0 = scrape()
        t0 = time.time()
        touches, seen = {}, {}
        next_touch = t0

        def look():  # when each alert line first appears in the file sink
            now = time.time()
            for x in read_alerts(alerts_file):
                eid = x.get("event", {}).get("id")
                if eid in touches and eid not in seen:
                    seen[eid] = now

        while time.time() - t0 < a.window_s:
            if time.time() >= next_touch:
                r = lab.control("POST", "/lab/signin", {"user": "bg1", "success": True,
                                                       "type": "interactive", "delay_s": 0})
                touches[r["id"]] = time.time()
                next_touch += a.touch_every_s
            look()
            time.sleep(0.05)
        b1 = scrape()
        t1 = time.time()
        polls = metric(b1, "glasswatch_source_polls_total") - metric(b0, "glasswatch_source_polls_total")
        reqs = metric(b1, "glasswatch_source_requests_total") - metric(b0, "glasswatch_source_requests_total")
        # The last touches: wait for them too.
        deadline = time.time() + a.poll_s * 3 + 30
        while time.time() < deadline and len(seen) < len(touches):
            look()
            time.sleep(0.05)
        missing = [i for i in touches if i not in seen]
        ids = [x["event"]["id"] for x in read_alerts(alerts_file) if "event" in x]
        dups = len(ids) - len(set(ids))
        lat = sorted(seen[i] - touches[i] for i in seen)
        st = lab.control("GET", "/lab/stats")
        out = {
            "rate_per_s": rate,
            "window_s": round(t1 - t0, 1),
            "cycles": polls,
            "requests": reqs,
            "requests_per_cycle": round(reqs / polls, 2) if polls else None,
            "cycle_s": round((t1 - t0) / polls, 2) if polls else None,
            "latency_p50_s": round(statistics.median(lat), 2) if lat else None,
            "latency_p99_s": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2) if lat else None,
            "latency_max_s": round(lat[-1], 2) if lat else None,
            "touches": len(touches),
            "missing": len(missing),
            "duplicates": dups,
            "lab_max_requests_in_10s": st.get("max_in_10s"),
            "lab_throttled": st.get("throttled"),
            "lab_records_served": st.get("served_total"),
        }
        return out
    finally:
        if daemon:
            daemon.stop()
        if lab:
            lab.stop()
        wd.close()


results = []
for rate in [float(r) for r in a.rates.split(",")]:
    r = run_rate(rate)
    results.append(r)
    print("rate %6.0f/s: %5.2f requests/cycle over %3.0f cycles, cycle %5.2f s, latency p50 %5.2f s "
          "p99 %5.2f s max %5.2f s, %d touches, %d missing, %d duplicates, max %s requests in 10 s, "
          "%s throttled, %s records served"
          % (r["rate_per_s"], r["requests_per_cycle"] or 0, r["cycles"], r["cycle_s"] or 0,
             r["latency_p50_s"] or 0, r["latency_p99_s"] or 0, r["latency_max_s"] or 0, r["touches"],
             r["missing"], r["duplicates"], r["lab_max_requests_in_10s"], r["lab_throttled"],
             r["lab_records_served"]), flush=True)
if a.json:
    with open(a.json, "w") as f:
        json.dump(results, f, indent=2)
bad = [r for r in results if r["missing"] or r["duplicates"]]
if bad:
    fail(f"missing or duplicated alerts: {bad}")
print("PASS")
