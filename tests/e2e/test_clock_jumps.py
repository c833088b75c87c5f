#!/usr/bin/env python3
"""e2e fault test: the daemon's wall clock jumps forward and back by an hour and by a day while
the lab keeps raising break-glass sign-ins.

The daemon runs under libfaketime (libfaketimeMT, FAKETIME_TIMESTAMP_FILE re-read on every call,
FAKETIME_DONT_FAKE_MONOTONIC=1): its CLOCK_REALTIME moves by the offset in a file the test
rewrites, its CLOCK_MONOTONIC does not, which is what an NTP step or `date -s` does to a real
VM. The lab (Entra's clock) keeps real time; it runs under libfaketime only to start two days in
the past, so the certificates it makes are valid for a daemon clock set back a day.

Offsets in turn, each held --hold seconds: 0, +1h, 0, -1h, 0, +1d, 0, -1d, 0 (eight jumps).
Watched sign-ins are fed throughout with random ingestion delays (0-3 s). Before the -1d jump
PagerDuty is made to fail so that deliveries wait in retry across the jump, then it recovers.

Asserted, per phase: every sign-in fed so far is alerted at the file sink and PagerDuty within
--catchup seconds (no stall after a jump: Graph window, request pacing, retry schedule), the
lab saw Graph polls and dead-man-switch pings in every phase (steady-clock timers unaffected).
At the end: missed watched events = 0, no alert delivered twice, the retries held across the
-1d jump are delivered within seconds of PagerDuty recovering, and no health alert at all
(the jumps legitimately cause none with these settings: see tests/e2e/FAULTS.md for which ones
a jump can cause elsewhere).

  test_clock_jumps.py --glasswatch build/release/glasswatch --lab build/release/tests/glasswatch-lab
      [--hold S] [--rate R] [--catchup S] [--libfaketime PATH]"""
import argparse
import collections
import glob
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import (Daemon, Lab, Workdir, check, extra_deliveries, fail, file_deliveries, graph_config,  # noqa: E402
                    pagerduty_sink, read_alerts, received, run, wait_for, watched_alerts)

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--glasswatch", required=True)
ap.add_argument("--lab", required=True)
ap.add_argument("--hold", type=float, default=6.0, help="seconds each offset is held")
ap.add_argument("--rate", type=float, default=2.0, help="watched sign-ins per second")
ap.add_argument("--catchup", type=float, default=20.0,
                help="seconds every sign-in fed so far may take to be alerted at the end of a phase")
ap.add_argument("--libfaketime", default="")
ap.add_argument("--phases", default="0,+1h,0,-1h,0,+1d,0,-1d,0",
                help="the clock offsets in turn (libfaketime syntax: +1h, -1d, +90m, 0)")
a = ap.parse_args()

LIB = a.libfaketime or next(iter(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1")), "")
if not LIB or not os.path.exists(LIB):
    fail("libfaketimeMT.so.1 not found (Debian package libfaketime); pass --libfaketime")

PHASES = [(p, "+0" if p == "0" else p) for p in a.phases.split(",")]


def faketime_env(offset_file):
    return dict(os.environ, LD_PRELOAD=LIB, FAKETIME_TIMESTAMP_FILE=offset_file, FAKETIME_NO_CACHE="1",
                FAKETIME_DONT_FAKE_MONOTONIC="1")


def set_offset(path, spec):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(spec + "\n")
    os.replace(tmp, path)  # atomic: libfaketime never reads half a file


class Feeder(threading.Thread):
    def __init__(self, lab, rate):
        super().__init__(daemon=True)
        self.lab, self.rate = lab, rate
        self.ids, self.lock = [], threading.Lock()
        self.stop_flag = threading.Event()
        self.n = 0

    def run(self):
        while not self.stop_flag.is_set():
            self.n += 1
            spec = {"user": "bg1" if self.n % 2 else "bg2", "type": "interactive", "success": self.n % 4 != 0,
                    "error_code": 50126, "delay_s": (self.n * 7 % 31) / 10.0}
            r = self.lab.control("POST", "/lab/signin", spec)
            with self.lock:
                self.ids.append(r["id"])
            self.stop_flag.wait(1.0 / self.rate)

    def fed(self):
        with self.lock:
            return list(self.ids)


wd = Workdir()
lab = daemon = feeder = None
try:
    lab_clock = wd.file("lab-offset", "-2d\n")
    lab_env = faketime_env(lab_clock)
    # Lab runs two days in the past while it makes its PKI, then at real time.
    saved = dict(os.environ)
    os.environ.update(lab_env)
    try:
        lab = Lab(a.lab, wd.path, extra=["--throttle", "0"])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    set_offset(lab_clock, "+0")
    s = lab.info["sinks"]
    state = os.path.join(wd.path, "state")
    alerts_file = os.path.join(wd.path, "alerts.jsonl")
    text = graph_config(lab, state, alerts_file, poll="1s", extra='kinds = ["interactive"]\nmax_requests_per_10s = 20')
    # A window overlap well below the jumps, so a window anchored on the wrong clock shows.
    text = text.replace('\nlookback = "1h"\n', '\nlookback = "5m"\n')
    text += pagerduty_sink(lab, wd) + f"""
[tripwire]
active_use_count = 1000

[heartbeat]
url = "{s['pagerduty_url'].replace('/v2/enqueue', '/ping/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9')}"
interval = "1s"
timeout = "3s"
ca_file = "{lab.info['ca_file']}"
"""
    check('lookback = "5m"' in text, "config: lookback 5m")
    cfg = wd.file("glasswatch.toml", text)
    r = run([a.glasswatch, "check-config", cfg])
    check(r.returncode == 0, "config valid " + r.stderr[-300:])

    clock = wd.file("daemon-offset", "+0\n")
    daemon = Daemon(a.glasswatch, cfg, wd.path, env=faketime_env(clock))
    feeder = Feeder(lab, a.rate)
    feeder.start()

    def alerted():
        """event id -> alert id at the file sink; alert ids PagerDuty received."""
        return watched_alerts(alerts_file), received(lab)[0]

    def all_alerted(ids):
        ev, pd = alerted()
        return all(e in ev and ev[e] in pd for e in ids)

    def counters():
        sinks = lab.control("GET", "/lab/sinks")
        return lab.control("GET", "/lab/stats")["graph_requests"], len(sinks["pings"])

    check(wait_for(lambda: all_alerted(feeder.fed()[:1]) if feeder.fed() else False, 30), "alerting before any jump")
    catchups = []
    held_ids, retry_delivered_s = [], None
    polls_min = pings_min = None
    for name, spec in PHASES:
        if name == "-1d":
            # Deliveries waiting in retry when the clock is set back a day must not wait a day.
            lab.control("POST", "/lab/sink_faults", {"pagerduty": {"status": 503}})
            for u in ("bg1", "bg2", "bg1"):
                held_ids.append(lab.control("POST", "/lab/signin", {"user": u, "success": True,
                                                                    "type": "interactive", "delay_s": 0})["id"])
            check(wait_for(lambda: all(e in alerted()[0] for e in held_ids), 20),
                  "-1d: three alerts committed while PagerDuty fails (waiting in retry)")
            time.sleep(1.5)
        polls0, pings0 = counters()
        set_offset(clock, spec)
        t_jump = time.time()
        if held_ids and retry_delivered_s is None:
            time.sleep(2)
            lab.control("POST", "/lab/sink_faults", {"pagerduty": {}})
            t_heal = time.time()
            ok = wait_for(lambda: all_alerted(held_ids), 90, step=0.2)
            retry_delivered_s = time.time() - t_heal
            check(ok, f"-1d: the retries waiting across the jump are delivered ({retry_delivered_s:.1f}s after recovery)")
        time.sleep(max(0.0, a.hold - (time.time() - t_jump)))
        fed = feeder.fed()
        t0 = time.time()
        ok = wait_for(lambda: all_alerted(fed), a.catchup, step=0.2)
        catchups.append(time.time() - t0)
        polls1, pings1 = counters()
        polls_min = min(polls_min if polls_min is not None else 10 ** 9, polls1 - polls0)
        pings_min = min(pings_min if pings_min is not None else 10 ** 9, pings1 - pings0)
        ev, pd = alerted()
        missing = [e for e in fed if e not in ev or ev[e] not in pd]
        print(f"phase {name:>4}: fed {len(fed)} so far, missing {len(missing)}, catch-up {catchups[-1]:.1f}s, "
              f"graph requests {polls1 - polls0}, pings {pings1 - pings0}", flush=True)
        check(ok, f"phase {name}: every sign-in fed so far is alerted within {a.catchup:.0f}s")
        check(polls1 > polls0 and pings1 > pings0, f"phase {name}: Graph polls and heartbeat pings go on")

    feeder.stop_flag.set()
    feeder.join(timeout=10)
    fed = feeder.fed() + held_ids
    check(wait_for(lambda: all_alerted(fed), 60), "every watched sign-in alerted at the end")
    time.sleep(3)  # anything late (a duplicate) would arrive now
    ev, pd = alerted()
    missed = sum(1 for e in fed if e not in ev or ev[e] not in pd)
    expected = {ev[e] for e in fed if e in ev}
    dup_file = extra_deliveries(file_deliveries(alerts_file), expected)
    dup_pd = extra_deliveries(pd, expected)
    health = collections.Counter(x["rule"] for x in read_alerts(alerts_file) if "event" not in x)
    jump_lines = [l for l in daemon.log().splitlines() if "wall clock jumped" in l]
    rc = daemon.stop()
    print(f"FIGURE clock_jumps: jumps={len(PHASES) - 1} (+-1h +-1d) watched_fed={len(fed)} "
          f"alerted={len(expected & set(pd))} missed={missed} dup_file={dup_file} dup_pagerduty={dup_pd} "
          f"max_catchup_s={max(catchups):.1f} retry_across_-1d_delivered_s={retry_delivered_s if retry_delivered_s is None else round(retry_delivered_s, 1)} "
          f"health_alerts={dict(health)} min_graph_requests_per_phase={polls_min} "
          f"min_pings_per_phase={pings_min} jump_log_lines={len(jump_lines)}")
    check(missed == 0, "missed watched events = 0")
    check(dup_file == 0 and dup_pd == 0, f"no alert delivered twice (file {dup_file}, PagerDuty {dup_pd})")
    check(not health, f"no health alert ({dict(health)})")
    check(rc == 0, f"SIGTERM exits 0 (rc={rc})")
except SystemExit:
    if daemon:
        print("---- daemon log (tail) ----\n" + "\n".join(daemon.log().splitlines()[-40:]))
    raise
finally:
    if feeder:
        feeder.stop_flag.set()
    if daemon:
        daemon.stop()
    if lab:
        lab.stop()
    wd.close()
print("PASS")
