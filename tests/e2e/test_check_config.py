#!/usr/bin/env python3
"""e2e: check-config refuses what `run` refuses (the documented order is check-config, then
`systemctl enable --now`: a "valid" config must not fail at start).

Each case is exit 3 with the key and the reason on stderr: a secret file readable by others
(0644), a secret file that does not exist, an `env:` secret whose variable is unset, a typo in a
sink's `rules`. A systemd credential path that exists only under the unit is a note, not an
error. The same configs given to `run` fail the same way. The shipped example config, which
pages nobody and has no dead-man switch, is valid with those two warnings."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from common import Workdir, check, run  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--glasswatch", required=True)
a = ap.parse_args()

BASE = """
[tenant]
id = "3d29e181-4b4e-4710-8621-280aad0bc235"
[[watch.accounts]]
object_id = "0b7e3f1a-5c2d-4e8f-9a6b-1c2d3e4f5a6b"
[[watch.accounts]]
object_id = "5f6e7d8c-9b0a-4c1d-8e2f-3a4b5c6d7e8f"
[state]
directory = "{state}"
[admin]
listen = ""
[[sinks]]
name = "local"
type = "file"
path = "{state}/alerts.jsonl"
[[sinks]]
name = "pd"
type = "pagerduty"
url = "https://127.0.0.1:9/v2/enqueue"
{pd}
"""

wd = Workdir()
try:
    state = os.path.join(wd.path, "state")
    good_key = wd.file("pd-key", "e93facc04764012d7bfb002500d5d1a6\n")
    open_key = os.path.join(wd.path, "pd-key-open")
    with open(open_key, "w") as f:
        f.write("e93facc04764012d7bfb002500d5d1a6\n")
    os.chmod(open_key, 0o644)
    env = {k: v for k, v in os.environ.items() if k not in ("GW_UNSET_SECRET", "CREDENTIALS_DIRECTORY")}

    def cfg(name, pd, extra=""):
        return wd.file(name + ".toml", BASE.format(state=state, pd=pd) + extra)

    ok = run([a.glasswatch, "check-config", cfg("good", f'routing_key_file = "{good_key}"')], env=env)
    check(ok.returncode == 0, "a good config is valid: " + ok.stderr[-200:])
    cases = [
        ("mode-0644 secret file", f'routing_key_file = "{open_key}"', "", "readable by other users"),
        ("missing secret file", f'routing_key_file = "{wd.path}/nope"', "", "No such file"),
        ("unset env secret", 'routing_key = "env:GW_UNSET_SECRET"', "", "GW_UNSET_SECRET is not set"),
        ("typo in a sink's rules", f'routing_key_file = "{good_key}"\nrules = ["breakglass_sigin"]', "",
         'did you mean "breakglass_signin"'),
    ]
    for name, pd, extra, why in cases:
        path = cfg(name.replace(" ", "-"), pd, extra)
        r = run([a.glasswatch, "check-config", path], env=env)
        check(r.returncode == 3 and why in r.stderr and "sinks[1]" in r.stderr,
              f"check-config refuses a {name} (exit {r.returncode}): {r.stderr.strip()[-160:]}")
        r = run([a.glasswatch, "run", "--config", path], env=env, timeout=30)
        check(r.returncode in (3, 4), f"and run refuses it too (exit {r.returncode})")
    example = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "config",
                           "glasswatch.example.toml")
    r = run([a.glasswatch, "check-config", example], env=env)
    check(r.returncode == 0 and "warning: sinks: no paging sink" in r.stdout
          and "warning: heartbeat.url: no dead-man switch" in r.stdout,
          "the shipped example warns: no paging sink, no dead-man switch")
    cred = cfg("credential", 'routing_key_file = "/run/credentials/glasswatch.service/pd-key"')
    r = run([a.glasswatch, "check-config", cred], env=env)
    check(r.returncode == 0 and "systemd credential" in r.stdout,
          "a systemd credential path outside the unit is a note, not an error")

    # URLs that are credentials: read from a file or the environment, checked like any other
    # URL, printed as scheme and host only.
    ping = "https://hc-ping.example.net/3f1c2b7e-9d4a-4c61-8e15-0b2d6f7a9c10"
    hook = "https://hooks.example.net/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXX"
    hook_file = wd.file("hook-url", hook + "\n")
    env_with = dict(env, GW_PING_URL=ping)
    webhook = f"""
[[sinks]]
name = "hook"
type = "webhook"
url_file = "{hook_file}"
signing_secret = "env:GW_PING_URL"
[heartbeat]
url = "env:GW_PING_URL"
"""
    path = cfg("url-secrets", f'routing_key_file = "{good_key}"', webhook)
    r = run([a.glasswatch, "check-config", path], env=env_with)
    check(r.returncode == 0, "URL secrets from a file and the environment are valid: " + r.stderr[-300:])
    check("3f1c2b7e" not in r.stdout + r.stderr and "XXXXXXXX" not in r.stdout + r.stderr,
          "neither secret URL is printed")
    check("https://hooks.example.net/… (URL from file " in r.stdout
          and "heartbeat: https://hc-ping.example.net/… (URL from env GW_PING_URL)" in r.stdout,
          "both are shown redacted with where they come from")
    check("no dead-man switch" not in r.stdout, "a heartbeat URL from the environment counts")
    check("tripwire: source error after" in r.stdout, "the summary shows the tripwire settings")
    r = run([a.glasswatch, "check-config", path], env=env)
    check(r.returncode == 3 and "heartbeat.url" in r.stderr and "GW_PING_URL is not set" in r.stderr,
          f"an unset heartbeat URL variable is exit 3 naming the key: {r.stderr.strip()[-160:]}")
    with open(hook_file, "w") as f:
        f.write("ftp://hooks.example.net/secret-path\n")
    r = run([a.glasswatch, "check-config", path], env=env_with)
    check(r.returncode == 3 and "sinks[2].url" in r.stderr and "secret-path" not in r.stderr,
          f"a bad URL in the file is exit 3 without echoing it: {r.stderr.strip()[-160:]}")
finally:
    wd.close()
print("PASS")
