#!/usr/bin/env python3
"""e2e fault test: kill -9 the daemon over and over while the lab keeps raising break-glass
sign-ins, then let it run to quiescence and count what reached the receivers.

Each cycle starts `glasswatch run` on the same state directory and ends it with SIGKILL:
  * even cycles: after a random delay (--min-delay..--max-delay seconds after start), wherever
    the daemon happens to be (start-up, token, poll, commit, delivery);
  * odd cycles: at a named failpoint (daemon/io/base/failpoint.hpp), in rotation: before_outbox_commit,
    mid_checkpoint, after_outbox_commit, before_sink_send, after_sink_ack, after_sms_intent (an
    SMS recipient marked unsure, the POST about to leave), each at a random nth arrival; if the
    point is not reached within --failpoint-wait seconds it is a plain kill.
Meanwhile a feeder posts watched sign-ins (bg1/bg2, success or failure, random ingestion delay)
to the lab. At the end the feeder stops and one daemon runs without faults until every fed
sign-in is alerted at every sink, then stops with SIGTERM (exit 0).

Asserted: lost = 0 (every fed sign-in's alert reached the file sink, PagerDuty and the webhook),
every restart accepted the state (no "corrupt" refusal after any kill), the evidence chain
verifies, SIGTERM exits 0, and no SMS was sent twice (Twilio has no idempotency key: an SMS
whose request may have left is looked up in the message list before it is sent again, and the
mark that says so is stored before the request leaves). Reported: duplicates (deliveries beyond
one per alert per sink), duplicates per kill, SMS duplicates per kill. PagerDuty and webhooks are
idempotent by alert id, so a duplicate there costs nothing; the figure shows how often
at-least-once shows through.

CI runs 200 cycles (about 4-5 minutes). The long run (tests/e2e/FAULTS.md):
  test_crash_cycles.py --glasswatch build/release/glasswatch \\
      --lab build/release/tests/glasswatch-lab --cycles 2000
"""
import argparse
import collections
import os
import random
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import (Daemon, Lab, Workdir, check, extra_deliveries, fail, file_deliveries, graph_config,  # noqa: E402
                    pagerduty_sink, received, run, wait_for, watched_alerts, webhook_sink)

FAILPOINTS = ["before_outbox_commit", "mid_checkpoint", "after_outbox_commit", "before_sink_send",
              "after_sink_ack", "after_sms_intent"]

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--glasswatch", required=True)
ap.add_argument("--lab", required=True)
ap.add_argument("--cycles", type=int, default=200, help="kill -9 cycles (CI 200, long run 2000)")
ap.add_argument("--min-delay", type=float, default=0.05, help="earliest random kill after start (s)")
ap.add_argument("--max-delay", type=float, default=1.5, help="latest random kill after start (s)")
ap.add_argument("--failpoint-wait", type=float, default=3.0,
                help="how long a failpoint cycle waits for its point before a plain kill (s)")
ap.add_argument("--rate", type=float, default=3.0, help="watched sign-ins fed per second")
ap.add_argument("--seed", type=int, default=20251103)
ap.add_argument("--drain-timeout", type=float, default=180.0)
a = ap.parse_args()

rng = random.Random(a.seed)


def sms_sink(lab, wd):
    """One number, grouped in 2 s windows: the feed (3 a second) outruns Twilio's 1 SMS per second
    per number, as a real burst would."""
    s = lab.info["sinks"]
    tok = wd.file("twilio-token", s["twilio_auth_token"] + "\n")
    return f"""
[[sinks]]
name = "sms"
type = "twilio"
api_base = "{s['twilio_url']}"
account_sid = "{s['twilio_account_sid']}"
auth_token_file = "{tok}"
from = "+15005550006"
to = ["+14155550100"]
burst_window = "2s"
ca_file = "{lab.info['ca_file']}"
request_timeout = "3s"
"""


def sinks_config(lab, wd):
    return (pagerduty_sink(lab, wd) + webhook_sink(lab, wd) + sms_sink(lab, wd) +
            "\n[tripwire]\nactive_use_count = 1000\n")


def sms_pending(glasswatch, cfg):
    """Rows the SMS sink has not had accepted yet (read next to the running daemon)."""
    r = run([glasswatch, "outbox", "list", "--sink", "sms", "--state", "pending", "--json",
             "--config", cfg])
    return sum(1 for line in r.stdout.splitlines() if '"alertId"' in line) if r.returncode == 0 else -1


class Feeder(threading.Thread):
    """Posts watched sign-ins to the lab at `rate` per second until stopped."""

    def __init__(self, lab, rate, seed):
        super().__init__(daemon=True)
        self.lab, self.rate, self.rng = lab, rate, random.Random(seed)
        self.ids = []
        self.stop_flag = threading.Event()
        self.errors = 0

    def run(self):
        while not self.stop_flag.is_set():
            spec = {"user": self.rng.choice(["bg1", "bg2"]), "type": "interactive",
                    "success": self.rng.random() < 0.7, "delay_s": round(self.rng.uniform(0, 2), 2)}
            if not spec["success"]:
                spec["error_code"] = 50126
            try:
                self.ids.append(self.lab.control("POST", "/lab/signin", spec)["id"])
            except Exception:  # noqa: BLE001  (the lab is never down here; count and go on)
                self.errors += 1
            self.stop_flag.wait(1.0 / self.rate)

    def stop(self):
        self.stop_flag.set()
        self.join(timeout=10)


wd = Workdir()
lab = daemon = feeder = None
t_start = time.time()
try:
    lab = Lab(a.lab, wd.path, extra=["--throttle", "0", "--delay-s", "0"])
    state = os.path.join(wd.path, "state")
    alerts_file = os.path.join(wd.path, "alerts.jsonl")
    cfg_text = graph_config(lab, state, alerts_file, poll="1s",
                            extra='kinds = ["interactive"]\nmax_requests_per_10s = 100')
    cfg = wd.file("glasswatch.toml", cfg_text + sinks_config(lab, wd))
    r = run([a.glasswatch, "check-config", cfg])
    check(r.returncode == 0, "config valid " + r.stderr[-300:])

    feeder = Feeder(lab, a.rate, a.seed + 1)
    feeder.start()

    kinds = collections.Counter()   # how each cycle ended
    fired = collections.Counter()   # failpoint cycles where the point was reached
    for cycle in range(a.cycles):
        env = dict(os.environ)
        point = None
        if cycle % 2 == 1:
            point = FAILPOINTS[(cycle // 2) % len(FAILPOINTS)]
            env["GLASSWATCH_FAILPOINT"] = f"{point}:{rng.randint(1, 3)}"
        daemon = Daemon(a.glasswatch, cfg, wd.path, name="daemon-cycle", env=env)
        if point:
            try:
                daemon.proc.wait(timeout=a.failpoint_wait)
            except subprocess.TimeoutExpired:
                pass
        else:
            time.sleep(rng.uniform(a.min_delay, a.max_delay))
        rc = daemon.proc.poll()
        if rc is None:
            daemon.proc.send_signal(signal.SIGKILL)
            rc = daemon.proc.wait(timeout=10)
            kinds["random" if not point else "failpoint_not_reached"] += 1
        elif rc == -signal.SIGKILL and point:
            fired[point] += 1
            kinds["failpoint"] += 1
        else:
            print("---- daemon log ----\n" + daemon.log()[-4000:])
            fail(f"cycle {cycle}: the daemon exited by itself with {rc} (a refused state file?)")
        if (cycle + 1) % 50 == 0:
            print(f"{cycle + 1} cycles, {len(feeder.ids)} sign-ins fed, {time.time() - t_start:.0f}s",
                  flush=True)

    feeder.stop()
    fed = list(feeder.ids)
    check(feeder.errors == 0, f"the lab took every sign-in ({feeder.errors} errors)")
    kills = a.cycles
    t_drain = time.time()
    daemon = Daemon(a.glasswatch, cfg, wd.path, name="daemon-final")

    def complete():
        alerts = watched_alerts(alerts_file, [])
        if not all(e in alerts for e in fed):
            return False
        pd, hooks, _ = received(lab)
        ids = {alerts[e] for e in fed}
        return ids <= set(pd) and ids <= set(hooks)

    ok = wait_for(complete, a.drain_timeout, step=0.5)
    sms_drained = wait_for(lambda: sms_pending(a.glasswatch, cfg) == 0, a.drain_timeout, step=1.0)
    drain_s = time.time() - t_drain
    texts = collections.Counter(m["body"] for m in lab.control("GET", "/lab/sinks")["twilio"])
    dup_sms = sum(n - 1 for n in texts.values())
    torn = []
    alerts = watched_alerts(alerts_file, torn)
    pd, hooks, rejected = received(lab)
    expected = {alerts[e] for e in fed if e in alerts}
    lost_file = sum(1 for e in fed if e not in alerts)
    lost_pd = len(expected - set(pd)) + lost_file
    lost_hook = len(expected - set(hooks)) + lost_file
    dup_file = extra_deliveries(file_deliveries(alerts_file, []), expected)
    dup_pd = extra_deliveries(pd, expected)
    dup_hook = extra_deliveries(hooks, expected)
    dups = dup_file + dup_pd + dup_hook
    rc = daemon.stop()
    r = run([a.glasswatch, "evidence", "verify", "--config", cfg])
    fired_text = ",".join(f"{p}={fired[p]}" for p in FAILPOINTS)
    print(f"FIGURE crash_cycles: cycles={a.cycles} kills={kills} random={kinds['random']} "
          f"failpoint_fired={kinds['failpoint']} failpoint_not_reached={kinds['failpoint_not_reached']} "
          f"({fired_text}) watched_fed={len(fed)} alerted_pagerduty={len(expected & set(pd))} "
          f"alerted_webhook={len(expected & set(hooks))} lost={max(lost_pd, lost_hook)} "
          f"dup_file={dup_file} dup_pagerduty={dup_pd} dup_webhook={dup_hook} "
          f"dup_per_kill={dups / max(kills, 1):.3f} sms_messages={sum(texts.values())} dup_sms={dup_sms} "
          f"dup_sms_per_kill={dup_sms / max(kills, 1):.3f} "
          f"torn_file_lines={len(torn)} drain_s={drain_s:.1f} total_s={time.time() - t_start:.0f}")
    check(ok and lost_pd == 0 and lost_hook == 0,
          f"lost = 0 ({len(fed)} fed; missing at file {lost_file}, PagerDuty {lost_pd}, webhook {lost_hook})")
    # A kill mid-append leaves at most one fragment per kill, on its own line (the file sink starts
    # a new line after a fragment), and the alert is written again in full.
    check(len(torn) <= kills, f"torn file-sink lines stay isolated ({len(torn)} fragments, {kills} kills)")
    check(rejected == 0, f"no receiver rejected a request ({rejected})")
    check(sms_drained, "every alert's SMS was accepted by Twilio")
    check(dup_sms == 0, f"no SMS sent twice ({dup_sms} duplicates over {kills} kills)")
    check(r.returncode == 0 and "intact" in r.stdout, "evidence chain intact after every kill: " + r.stdout.strip())
    check(rc == 0, f"the last daemon stops on SIGTERM with 0 (rc={rc})")
    check(kinds["failpoint"] > 0, "failpoint kills happened")
except SystemExit:
    if daemon:
        print("---- daemon log (tail) ----\n" + "\n".join(daemon.log().splitlines()[-40:]))
    raise
finally:
    if feeder:
        feeder.stop()
    if daemon:
        daemon.stop()
    if lab:
        lab.stop()
    wd.close()
print("PASS")
