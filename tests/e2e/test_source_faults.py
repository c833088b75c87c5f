#!/usr/bin/env python3
"""e2e: hostile input against the real binary, both sources at once; the daemon's own memory,
metrics and log lines (the component tests measure the rest, tests/component/SOURCE_FAULTS.md).

  Graph      a 50 MB page (50 records of 1 MiB, within the 64 MiB limit): read, the break-glass
             sign-in on it alerted; the daemon's peak RSS is printed (FIGURE)
             an @odata.nextLink to another host: refused on every poll, one log line,
             glasswatch_source_rejected_total{source="graph",reason="next_link_off_host"}
  Event Hub  a 50 MB message (max_message_size 2 MiB): refused unread, an unparsed_candidate
             alert, {reason="message_too_large"}; 60 malformed bodies that mention bg1:
             glasswatch_records_malformed_total / glasswatch_bodies_malformed_total, one log line;
             a break-glass sign-in published after all of it is still alerted"""
import argparse
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import (Daemon, Lab, Workdir, check, free_port, graph_config, http_get,  # noqa: E402
                    read_alerts, wait_for)

ap = argparse.ArgumentParser()
ap.add_argument("--glasswatch", required=True)
ap.add_argument("--lab", required=True)
a = ap.parse_args()

BG1 = "0b7e3f1a-5c2d-4e8f-9a6b-1c2d3e4f5a6b"


def metric(body, name, **labels):
    """Value of one sample of the Prometheus text, or None."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pat = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" ([0-9.e+]+)$"
    for line in body.splitlines():
        m = re.match(pat, line)
        if m:
            return float(m.group(1))
    return None


def reset_peak_rss(pid):
    """Resets VmHWM (Linux clear_refs 5), so the next peak is the next phase's alone."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    return -1


wd = Workdir()
lab = daemon = None
try:
    lab = Lab(a.lab, wd.path, extra=["--delay-s", "0"])
    eh = lab.info["eventhub"]
    alerts_file = os.path.join(wd.path, "alerts.jsonl")
    admin = "127.0.0.1:%d" % free_port()
    cfg_text = graph_config(lab, os.path.join(wd.path, "state"), alerts_file, poll="1s",
                            extra='kinds = ["interactive"]\nfull_stream = true')
    cfg_text = cfg_text.replace('[admin]\nlisten = ""', f'[admin]\nlisten = "{admin}"')
    cfg_text = cfg_text.replace("[state]", f"""[sources.eventhub]
enabled = true
connection_string_file = "{eh['connection_string_file']}"
host = "127.0.0.1:{eh['amqps_port']}"
ca_file = "{lab.info['ca_file']}"
start_lookback = "1h"
credit = 20
[state]""")
    cfg = wd.file("glasswatch.toml", cfg_text)
    daemon = Daemon(a.glasswatch, cfg, wd.path)

    def event_alerts():
        return {(x["event"]["id"], x["rule"]) for x in read_alerts(alerts_file) if "event" in x}

    def rules():
        return [x["rule"] for x in read_alerts(alerts_file)]

    def metrics():
        status, body = http_get(f"http://{admin}/metrics")  # 0 while not listening yet
        return body if status == 200 else ""

    check(wait_for(lambda: metrics() != "", 20), "/metrics answers")
    baseline = peak_rss_mib(daemon.proc.pid)

    # ---- Graph: a 50 MB page ------------------------------------------------------------------
    lab.control("POST", "/lab/faults", {"record_padding_bytes": 1 << 20})
    t0 = time.time()
    for _ in range(49):
        lab.control("POST", "/lab/signin", {"user": "admin", "delay_s": 3})
    big = lab.control("POST", "/lab/signin", {"user": "bg1", "delay_s": 3, "created_offset_s": -300})
    # The lab also streams every event to its Event Hub (no padding there): wait for Graph's page.
    check(wait_for(lambda: (metric(metrics(), "glasswatch_source_records_total", source="graph") or 0) >= 50, 60),
          "the 50 MB Graph page (50 records) is read whole")
    check((metric(metrics(), "glasswatch_bytes_total") or 0) > 50e6, "50 MB went through the pipeline")
    check((big["id"], "breakglass_signin") in event_alerts(), "the break-glass sign-in on it is alerted")
    peak = peak_rss_mib(daemon.proc.pid)
    print(f"FIGURE e2e graph 50 MB page: alerted_after_s={time.time() - t0 - 3:.1f} "
          f"daemon_peak_rss_mib={peak} baseline_mib={baseline}")
    lab.control("POST", "/lab/faults", {"record_padding_bytes": 0})

    # ---- Graph: off-host nextLink -------------------------------------------------------------
    lab.control("POST", "/lab/faults", {"page_size": 1, "next_link_host": "evil.example"})
    check(wait_for(lambda: (metric(metrics(), "glasswatch_source_rejected_total", source="graph",
                                   reason="next_link_off_host") or 0) >= 3, 30),
          "off-host nextLinks refused on every poll and counted")
    lab.control("POST", "/lab/reset_faults", {})

    # ---- Event Hub: oversized and malformed messages ------------------------------------------
    def publish(body, partition=0):
        lab.control("POST", "/lab/eventhub/faults", {"publish": {"body": body, "partition": partition}})

    reset_peak_rss(daemon.proc.pid)
    rss0 = peak_rss_mib(daemon.proc.pid)
    big_record = {"category": "SignInLogs", "properties": {"id": "huge", "userId": BG1,
                                                           "createdDateTime": "2025-11-03T14:22:07Z"}}
    lab.control("POST", "/lab/eventhub/publish_padded",
                {"body": json.dumps({"records": [big_record]}), "bytes": 50 << 20, "partition": 0})
    for i in range(60):
        bad = ('{"records":[{"category":"SignInLogs","properties":{"id":"bad-%d","userId":"%s",'
               '"createdDateTime":12345}}]}' % (i, BG1))
        publish(bad if i % 2 == 0 else bad[:-20], partition=i % 2)  # wrong type / truncated
    after = lab.control("POST", "/lab/signin", {"user": "bg2", "delay_s": 0})
    check(wait_for(lambda: (after["id"], "breakglass_signin") in event_alerts(), 60),
          "a break-glass sign-in after the hostile messages is alerted")
    m = metrics()
    too_large = metric(m, "glasswatch_source_rejected_total", source="eventhub", reason="message_too_large")
    malformed = metric(m, "glasswatch_records_malformed_total") or 0
    bodies = metric(m, "glasswatch_bodies_malformed_total") or 0
    check(too_large == 1, f"the 50 MB message is refused and counted ({too_large})")
    check(malformed + bodies >= 60, f"malformed messages counted ({malformed} records, {bodies} bodies)")
    check("unparsed_candidate" in rules(), "an unreadable message naming bg1 fails closed")
    log = daemon.log()
    n_off = log.count("refused an @odata.nextLink to another host")
    n_big = log.count("larger than max_message_size")
    n_bad = len(re.findall(r"eventhub .*malformed input\(s\)", log))
    check(n_off == 1, f"the off-host refusal is logged once ({n_off})")
    check(n_big == 1, f"the oversized message is logged once ({n_big})")
    check(n_bad == 1, f"60 malformed messages are one log line ({n_bad})")
    print(f"FIGURE e2e eventhub hostile: message_too_large={too_large:.0f} records_malformed={malformed:.0f} "
          f"bodies_malformed={bodies:.0f} log_lines={n_big}+{n_bad} daemon_peak_rss_mib={peak_rss_mib(daemon.proc.pid)} "
          f"(before the 50 MB message: {rss0})")
    check(daemon.proc.poll() is None, "daemon still running")
    rc = daemon.stop()
    check(rc == 0, f"SIGTERM exits 0 (rc={rc})")
finally:
    if daemon:
        daemon.stop()
    if lab:
        lab.stop()
    wd.close()
print("PASS")
