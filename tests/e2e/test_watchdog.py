#!/usr/bin/env python3
"""e2e: `glasswatch run` speaks the sd_notify protocol the way the unit (Type=notify,
NotifyAccess=main, WatchdogSec=) expects, measured on a notify socket this test owns.

Run 1 (watchdog on): READY=1 arrives; WATCHDOG=1 pings arrive at about half of WATCHDOG_USEC,
every one from the main pid (NotifyAccess=main drops anything else); once the wedge file exists
the main loop hangs and the pings stop for longer than three intervals while the process is
still alive - exactly what makes systemd kill and restart it. Then SIGKILL.
Run 2 (watchdog not requested): READY=1, no WATCHDOG=1 at all, SIGTERM -> STOPPING=1 and exit 0.

sd_watchdog_enabled() only honours WATCHDOG_USEC when WATCHDOG_PID equals the caller's pid, and
the pid is only known after fork: a shell sets WATCHDOG_PID=$$ and then execs the daemon, which
keeps that pid.
"""
import argparse
import os
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import TENANT, Workdir, check, fail, run  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--glasswatch", required=True)
ap.add_argument("--interval", type=float, default=1.0, help="WATCHDOG_USEC in seconds")
a = ap.parse_args()
INTERVAL = a.interval


class NotifySocket:
    """An AF_UNIX datagram socket standing in for systemd's notify socket. Every datagram is
    kept with its arrival time and the sender's pid (SCM_CREDENTIALS)."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.messages = []  # (monotonic time, sender pid, set of KEY=VALUE lines)

    def poll(self, timeout):
        """Collects datagrams for up to `timeout` seconds; returns the ones received."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return got
            self.sock.settimeout(left)
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except socket.timeout:
                return got
            pid = None
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", payload[:12])[0]
            m = (time.monotonic(), pid, set(data.decode().split("\n")))
            self.messages.append(m)
            got.append(m)

    def wait_for(self, line, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.poll(min(0.2, max(0.0, deadline - time.monotonic()))):
                if line in m[2]:
                    return m
        return None

    def close(self):
        self.sock.close()


def start(cfg, notify_path, env_extra, log_path, watchdog):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WATCHDOG_", "NOTIFY_", "JOURNAL_"))}
    env.update(env_extra)
    env["NOTIFY_SOCKET"] = notify_path
    if watchdog:
        env["WATCHDOG_USEC"] = str(int(INTERVAL * 1_000_000))
        # $$ is the shell's pid, which exec hands on to glasswatch.
        cmd = ["/bin/sh", "-c", 'WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$0" run --config "$1"',
               a.glasswatch, cfg]
    else:
        cmd = [a.glasswatch, "run", "--config", cfg]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(log_path, "w"))


def pings(msgs):
    return [m for m in msgs if "WATCHDOG=1" in m[2]]


wd = Workdir()
procs = []
try:
    state = os.path.join(wd.path, "state")
    cfg = wd.file("glasswatch.toml", f"""
[tenant]
id = "{TENANT}"
name = "contoso"
[[watch.accounts]]
object_id = "0b7e3f1a-5c2d-4e8f-9a6b-1c2d3e4f5a6b"
label = "bg-admin-1"
[[watch.accounts]]
object_id = "5f6e7d8c-9b0a-4c1d-8e2f-3a4b5c6d7e8f"
label = "bg-admin-2"
[state]
directory = "{state}"
[admin]
listen = ""
[[sinks]]
name = "local"
type = "file"
path = "{os.path.join(wd.path, "alerts.jsonl")}"
""")
    r = run([a.glasswatch, "check-config", cfg])
    check(r.returncode == 0 and "(none)" in r.stdout, "the source-less config is valid (check-config exits 0)")

    # ---- run 1: watchdog requested, then the main loop wedges ----------------------------------
    ns = NotifySocket(os.path.join(wd.path, "notify1.sock"))
    wedge = os.path.join(wd.path, "wedge")
    log1 = os.path.join(wd.path, "daemon1.log")
    p = start(cfg, ns.path, {"GLASSWATCH_TEST_WEDGE_FILE": wedge}, log1, watchdog=True)
    procs.append(p)
    ready = ns.wait_for("READY=1", 20)
    if not ready:
        fail(f"no READY=1 within 20 s (rc={p.poll()}): {open(log1).read()[-800:]}")
    check(ready[1] == p.pid, f"READY=1 comes from the main pid {p.pid} (sender {ready[1]})")

    ns.poll(4 * INTERVAL)
    got = pings(ns.messages)
    check(len(got) >= 6, f"{len(got)} WATCHDOG=1 pings in the first ~{4 * INTERVAL:.0f} s (expected ~8)")
    check(all(m[1] == p.pid for m in got), "every ping comes from the main pid")
    gaps = [b[0] - a_[0] for a_, b in zip(got, got[1:])]
    check(max(gaps) < INTERVAL, f"pings every {min(gaps):.2f}..{max(gaps):.2f} s, within the "
          f"{INTERVAL:.1f} s watchdog interval (pinged at half of it)")
    check(p.poll() is None, "daemon still running")

    # Wedge the loop: the hook fires right after the next ping, so at most one more arrives.
    open(wedge, "w").close()
    t_wedge = time.monotonic()
    ns.poll(1.5 * INTERVAL)
    late = [m for m in pings(ns.messages) if m[0] > t_wedge]
    check(len(late) <= 1, f"{len(late)} ping(s) after the wedge file appeared (at most the one in flight)")
    last_ping = pings(ns.messages)[-1][0]
    silence_wait = 3 * INTERVAL + 0.5
    ns.poll(silence_wait)
    after = [m for m in pings(ns.messages) if m[0] > last_ping]
    silent_for = time.monotonic() - last_ping
    check(not after, f"no ping for {silent_for:.1f} s (> 3 x {INTERVAL:.1f} s) once the loop is wedged")
    check(silent_for > 3 * INTERVAL, "silence measured past three intervals")
    check(p.poll() is None, "the wedged daemon is still alive: only the watchdog can catch it")
    check("test hook: wedging the main loop" in open(log1).read(), "daemon logged the wedge")
    p.kill()
    p.wait(timeout=10)
    ns.close()

    # ---- run 2: no watchdog requested; SIGTERM drains and says STOPPING=1 ---------------------
    ns = NotifySocket(os.path.join(wd.path, "notify2.sock"))
    log2 = os.path.join(wd.path, "daemon2.log")
    p = start(cfg, ns.path, {}, log2, watchdog=False)
    procs.append(p)
    ready = ns.wait_for("READY=1", 20)
    if not ready:
        fail(f"no READY=1 within 20 s (run 2, rc={p.poll()}): {open(log2).read()[-800:]}")
    ns.poll(2 * INTERVAL)
    check(not pings(ns.messages), "no WATCHDOG=1 when the watchdog was not requested")
    p.send_signal(signal.SIGTERM)
    stopping = ns.wait_for("STOPPING=1", 15)
    check(stopping is not None, "SIGTERM -> STOPPING=1")
    check(stopping[1] == p.pid, "STOPPING=1 comes from the main pid")
    try:
        rc = p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        fail("daemon did not exit within 20 s of SIGTERM")
    check(rc == 0, f"exit code 0 after SIGTERM (rc={rc})")
    check("stopped cleanly" in open(log2).read(), "daemon logged a clean stop")
    ns.close()
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
    wd.close()
