"""Shared helpers for the end-to-end tests: they drive the real glasswatch binary."""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import uuid

TENANT = "3d29e181-4b4e-4710-8621-280aad0bc235"


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)
    print("ok: " + msg)


class Workdir:
    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="glasswatch-e2e-")

    def file(self, name, text, mode=0o600):
        p = os.path.join(self.path, name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    def close(self):
        shutil.rmtree(self.path, ignore_errors=True)


def guid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=kw.pop("timeout", 120), **kw)


def signin_record(rng, user_id, upn, category="SignInLogs", error=0, when="2025-11-03T14:22:07.4403211+00:00"):
    props = {
        "id": guid(rng), "createdDateTime": when, "userDisplayName": "User", "userPrincipalName": upn,
        "userId": user_id, "appId": guid(rng), "appDisplayName": "Azure Portal", "ipAddress": "203.0.113.%d" % rng.randrange(1, 250),
        "status": {"errorCode": error} if error == 0 else {"errorCode": error, "failureReason": "Invalid username or password."},
        "clientAppUsed": "Browser", "userAgent": "Mozilla/5.0", "correlationId": guid(rng),
        "conditionalAccessStatus": "notApplied",
        "appliedConditionalAccessPolicies": [{"id": guid(rng), "displayName": "Require MFA", "result": "notApplied"}],
        "isInteractive": category == "SignInLogs", "location": {"city": "Oslo", "countryOrRegion": "NO"},
    }
    return {"time": when.replace("+00:00", "Z"), "resourceId": "/tenants/%s/providers/Microsoft.aadiam" % TENANT,
            "operationName": "Sign-in activity", "category": category, "tenantId": TENANT,
            "resultType": str(error), "Level": 4, "properties": props}


def audit_record(rng, actor_id, target_id, activity="Update user", when="2025-11-03T14:25:00+00:00", extra_details=None):
    corr = guid(rng)
    props = {
        "id": "Directory_%s_X_%d" % (corr, rng.getrandbits(30)), "category": "UserManagement", "correlationId": corr,
        "result": "success", "activityDisplayName": activity, "activityDateTime": when, "loggedByService": "Core Directory",
        "operationType": "Update", "initiatedBy": {"user": {"id": actor_id, "userPrincipalName": "admin@contoso.example"}},
        "targetResources": [{"id": target_id, "type": "User", "modifiedProperties": []}],
        "additionalDetails": extra_details or [],
    }
    return {"time": when.replace("+00:00", "Z"), "category": "AuditLogs", "tenantId": TENANT, "Level": 4,
            "operationName": activity, "properties": props}


class Lab:
    """Runs glasswatch-lab (the simulated tenant) and talks to its control API."""

    def __init__(self, binary, workdir, scenario="quiet", extra=(), start_timeout=20):
        import time
        self.dir = os.path.join(workdir, "lab")
        os.makedirs(self.dir, exist_ok=True)
        self.proc = subprocess.Popen([binary, "--dir", self.dir, "--scenario", scenario, *extra],
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(workdir, "lab.log"), "w"))
        deadline = time.time() + start_timeout
        path = os.path.join(self.dir, "lab.json")
        while not os.path.exists(path):
            if self.proc.poll() is not None or time.time() > deadline:
                fail("glasswatch-lab did not start (see lab.log)")
            time.sleep(0.05)
        with open(path) as f:
            self.info = json.load(f)

    def control(self, method, path, body=None):
        import urllib.request
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.info["control_url"] + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read().decode()
            return json.loads(text) if text else {}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Daemon:
    """Runs `glasswatch run` and collects its stderr."""

    def __init__(self, binary, config, workdir, name="daemon", env=None):
        self.log_path = os.path.join(workdir, name + ".log")
        self.proc = subprocess.Popen([binary, "run", "--config", config], stdout=subprocess.DEVNULL,
                                     stderr=open(self.log_path, "w"), env=env)

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self, timeout=20):
        import signal
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return -9
        return self.proc.returncode


def read_alerts(path, torn=None):
    """The JSON lines of a file sink. A line that does not parse is an error, unless `torn` (a
    list) is given: tests that kill -9 the daemon mid-append collect such fragments there (the
    daemon writes the whole alert again on its own line after the restart)."""
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            if not line.endswith("\n"):
                break  # the last line, still being appended: it is read whole next time
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                if torn is None:
                    raise
                torn.append(line)
    return out


def wait_for(pred, timeout, step=0.1):
    import time
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def graph_config(lab, state, alerts_file, poll="2s", auth="secret", extra=""):
    i = lab.info
    if auth == "secret":
        cred = f'client_secret_file = "{i["client_secret_file"]}"'
    else:
        cred = f'certificate_file = "{i["client_certificate_file"]}"\nprivate_key_file = "{i["client_key_file"]}"'
    # The lab's break-glass group: posture checks count a CA exclusion through it only when it is watched.
    groups = f'[watch]\ngroups = ["{i["bg_group"]}"]' if "bg_group" in i else ""
    return f"""
[tenant]
id = "{i['tenant_id']}"
name = "contoso-lab"
{groups}
[[watch.accounts]]
object_id = "0b7e3f1a-5c2d-4e8f-9a6b-1c2d3e4f5a6b"
upn = "bg1@contoso.onmicrosoft.com"
label = "bg-admin-1"
[[watch.accounts]]
object_id = "5f6e7d8c-9b0a-4c1d-8e2f-3a4b5c6d7e8f"
upn = "bg2@contoso.onmicrosoft.com"
label = "bg-admin-2"
[sources.graph]
enabled = true
authority_host = "{i['authority_url']}"
graph_base_url = "{i['graph_url']}"
client_id = "{i['client_id']}"
{cred}
ca_file = "{i['ca_file']}"
poll_interval = "{poll}"
lookback = "1h"
initial_lookback = "1h"
{extra}
[state]
directory = "{state}"
[admin]
listen = ""
[[sinks]]
name = "pager-file"
type = "file"
path = "{alerts_file}"
"""


def free_port():
    """A loopback TCP port nobody listens on right now (for the daemon's admin endpoint)."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(url):
    """(status, body) of a plain GET; HTTP errors are answers too. (0, reason) when nothing
    answered (not listening yet, refused, timed out), so a wait can poll a starting daemon."""
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, OSError) as e:
        return 0, str(getattr(e, "reason", e))


def pagerduty_sink(lab, wd, name="pd"):
    """A [[sinks]] entry for the lab's PagerDuty receiver (routing key in a 0600 file)."""
    s = lab.info["sinks"]
    key = wd.file(name + "-key", s["pagerduty_routing_key"] + "\n")
    return f"""
[[sinks]]
name = "{name}"
type = "pagerduty"
url = "{s['pagerduty_url']}"
routing_key_file = "{key}"
ca_file = "{lab.info['ca_file']}"
request_timeout = "3s"
"""


def webhook_sink(lab, wd, name="hook"):
    """A [[sinks]] entry for the lab's Standard Webhooks receiver (signing secret in a 0600 file)."""
    s = lab.info["sinks"]
    secret = wd.file(name + "-secret", s["webhook_secret"] + "\n")
    return f"""
[[sinks]]
name = "{name}"
type = "webhook"
url = "{s['webhook_url']}"
signing_secret_file = "{secret}"
ca_file = "{lab.info['ca_file']}"
request_timeout = "3s"
"""


def watched_alerts(alerts_file, torn=None):
    """event id -> alert id of the alerts a file sink wrote for watched events (health alerts
    carry no "event")."""
    return {x["event"]["id"]: x["alertId"] for x in read_alerts(alerts_file, torn) if "event" in x}


def received(lab):
    """What the lab's receivers accepted: (PagerDuty dedup_key -> triggers, webhook alert id ->
    deliveries, requests rejected as malformed)."""
    rec = lab.control("GET", "/lab/sinks")
    hooks = {k[4:] if k.startswith("msg_") else k: n for k, n in rec["webhook_ids"].items()}
    return rec["pagerduty_incidents"], hooks, rec["rejected"]


def extra_deliveries(counts, alert_ids):
    """Deliveries beyond one per alert over `alert_ids`: the duplicates at-least-once let through."""
    return sum(counts.get(i, 1) - 1 for i in alert_ids)


def file_deliveries(alerts_file, torn=None):
    """alert id -> how many times a file sink wrote it (watched-event alerts only)."""
    import collections
    return collections.Counter(x["alertId"] for x in read_alerts(alerts_file, torn) if "event" in x)
