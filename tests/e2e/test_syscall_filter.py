#!/usr/bin/env python3
"""e2e: the unit's SystemCallFilter= and RestrictAddressFamilies= allow everything the daemon does.

The build machine has no systemd as PID 1, so the sandbox cannot be applied for real. Instead
`glasswatch run` runs under strace through the paths the unit runs: it gets a token from a fake
token endpoint, polls a fake Graph whose interactive sign-in page holds one break-glass sign-in,
commits the alert, delivers it to a file sink and a signed webhook, notifies a test-owned
NOTIFY_SOCKET and drains on SIGTERM. Every system call it made is checked against the filter
computed from the unit's own SystemCallFilter= lines (expanded with `systemd-analyze
syscall-filter`), every socket it opened against RestrictAddressFamilies=. A new library call
that the filter would refuse (EPERM under the unit) fails here first.

Run as root, the daemon is started as `nobody` (setpriv), like the unit's DynamicUser=: SQLite
calls fchown() only when its euid is 0, which never happens under the unit.
"""
import argparse
import http.server
import json
import os
import pwd
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import TENANT, Workdir, check, fail, wait_for  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--glasswatch", required=True)
ap.add_argument("--unit", required=True)
ap.add_argument("--fixtures", required=True)
a = ap.parse_args()
binary = os.path.abspath(a.glasswatch)

# ---- the filter, from the unit -------------------------------------------------------------------
_groups = {}


def expand(name):
    """Syscall names of a `systemd-analyze syscall-filter` group (or a single syscall)."""
    if not name.startswith("@"):
        return {name}
    if name not in _groups:
        out = subprocess.run(["systemd-analyze", "syscall-filter", name], capture_output=True, text=True)
        if out.returncode != 0:
            fail(f"systemd-analyze syscall-filter {name}: {out.stderr.strip()}")
        names = set()
        for line in out.stdout.splitlines()[1:]:
            line = line.strip()
            if line and not line.startswith("#"):
                names |= expand(line)
        _groups[name] = names
    return _groups[name]


allow, deny, families = set(), set(), set()
for line in open(a.unit):
    line = line.strip()
    if line.startswith("SystemCallFilter="):
        v = line.split("=", 1)[1]
        if v.startswith("~"):
            for g in v[1:].split():
                deny |= expand(g)
        else:
            for g in v.split():
                allow |= expand(g)
    elif line.startswith("RestrictAddressFamilies="):
        families |= set(line.split("=", 1)[1].split())
allowed = allow - deny
check(len(allowed) > 200 and deny, f"unit allows {len(allowed)} system calls ({len(deny)} denied)")
check(families == {"AF_INET", "AF_INET6", "AF_UNIX"}, f"unit allows address families {sorted(families)}")


# ---- fakes: token endpoint, Graph (one break-glass sign-in), webhook receiver ------------------
BG1 = "0b7e3f1a-5c2d-4e8f-9a6b-1c2d3e4f5a6b"
signin = json.load(open(os.path.join(a.fixtures, "graph_signins_page.json")))["value"][0]
signin.update(id="6c1f4e2a-0d3b-4a5c-9e8f-7a6b5c4d3e2f", userId=BG1, userPrincipalName="bg1@contoso.example",
              createdDateTime=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 120)))


class Fake(http.server.BaseHTTPRequestHandler):
    hooks = []

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if "/oauth2/" in self.path:
            self.reply(200, {"token_type": "Bearer", "expires_in": 3600, "access_token": "lab-token"})
        else:
            Fake.hooks.append(self.path)
            self.reply(200, {})

    def do_GET(self):
        hit = self.path.startswith("/v1.0/auditLogs/signIns")
        self.reply(200, {"value": [signin] if hit else []})

    def log_message(self, *args):
        pass


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Fake)
threading.Thread(target=srv.serve_forever, daemon=True).start()
# By name, so the resolver path (nsswitch, /etc/hosts) is in the trace too.
base = f"http://localhost:{srv.server_address[1]}"

wd = Workdir()
daemon = None
pid = None
try:
    os.chmod(wd.path, 0o755)
    as_user = []
    owner = None
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        owner = (nobody.pw_uid, nobody.pw_gid)
        as_user = ["setpriv", f"--reuid={owner[0]}", f"--regid={owner[1]}", "--clear-groups", "--"]

    def own(path):
        if owner:
            os.chown(path, *owner)
        return path

    state = os.path.join(wd.path, "state")
    os.mkdir(state, 0o700)
    own(state)
    own(wd.file("whsec", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"))
    own(wd.file("graph-secret", "lab-client-secret\n"))
    alerts = os.path.join(wd.path, "alerts.jsonl")
    open(alerts, "w").close()
    own(alerts)
    cfg = own(wd.file("glasswatch.toml", f"""
[tenant]
id = "{TENANT}"
[[watch.accounts]]
object_id = "{BG1}"
label = "bg-admin-1"
[[watch.accounts]]
object_id = "5f6e7d8c-9b0a-4c1d-8e2f-3a4b5c6d7e8f"
label = "bg-admin-2"
[sources.graph]
enabled = true
authority_host = "{base}"
graph_base_url = "{base}"
client_id = "1a2b3c4d-5e6f-4a70-8b91-a2b3c4d5e6f7"
client_secret_file = "{wd.path}/graph-secret"
poll_interval = "1s"
[posture]
enabled = false
[state]
directory = "{state}"
[admin]
listen = ""
[[sinks]]
name = "local"
type = "file"
path = "{alerts}"
[[sinks]]
name = "hook"
type = "webhook"
url = "{base}/hook"
signing_secret_file = "{wd.path}/whsec"
"""))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WATCHDOG_", "NOTIFY_", "JOURNAL_"))}

    def traced(name, args):
        path = os.path.join(wd.path, name + ".strace")
        return path, ["strace", "-f", "-qq", "-o", path, *as_user, binary, *args]

    nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    npath = os.path.join(wd.path, "notify.sock")
    nsock.bind(npath)
    os.chmod(npath, 0o777)
    nsock.settimeout(20)
    log, cmd = traced("run", ["run", "--config", cfg])
    daemon = subprocess.Popen(cmd, env=dict(env, NOTIFY_SOCKET=npath), stdout=subprocess.DEVNULL,
                              stderr=open(os.path.join(wd.path, "run.log"), "w"))
    try:
        msg = nsock.recv(4096).decode()
    except socket.timeout:
        fail("no READY=1 within 20 s: " + open(os.path.join(wd.path, "run.log")).read()[-600:])
    check("READY=1" in msg, "daemon under strace reports READY=1")
    check(wait_for(lambda: Fake.hooks, 30), "the break-glass sign-in from the fake Graph reached the webhook")
    check(wait_for(lambda: sum('"rule":"breakglass_signin"' in line for line in open(alerts)) == 1, 10),
          "and the file sink")
    time.sleep(2)  # a few more poll cycles
    pid = int(re.search(r"^(\d+)\s+execve\(\"" + re.escape(binary) + r"\".*= 0$",
                        open(log).read(), re.M).group(1))
    os.kill(pid, signal.SIGTERM)
    check(daemon.wait(timeout=30) == 0, "daemon drained and exited 0 on SIGTERM")
    daemon = None
    runlog = open(os.path.join(wd.path, "run.log")).read()
    check("graph" in runlog and "token refused" not in runlog and "stopped cleanly" in runlog,
          "the run polled the fake Graph with a token and stopped cleanly")

    # ---- what the daemon did ---------------------------------------------------------------------
    text = open(log).read()
    start = re.search(r"^\d+\s+execve\(\"" + re.escape(binary) + r"\".*= 0$", text, re.M)
    used, sockets = set(), set()
    for line in text[start.end():].splitlines():  # only glasswatch, not strace's setpriv before it
        m = re.match(r"^\d+\s+([a-z_0-9]+)\(", line)
        if m:
            used.add(m.group(1))
        m = re.match(r"^\d+\s+socket\((AF_[A-Z0-9]+),.*= \d+$", line)
        if m:
            sockets.add(m.group(1))
    check(len(used) > 30, f"the trace holds {len(used)} distinct system calls")
    refused = sorted(used - allowed)
    check(not refused, f"every one passes the unit's filter (refused: {refused})")
    check(sockets <= families, f"sockets {sorted(sockets)} are within the allowed address families")
finally:
    if daemon is not None and daemon.poll() is None:
        if pid:
            os.kill(pid, signal.SIGKILL)  # strace ends with its tracee
        daemon.kill()
        daemon.wait(timeout=10)
    srv.shutdown()
    wd.close()
