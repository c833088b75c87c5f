#!/usr/bin/env python3
"""e2e fault test: the state directory refuses writes.

  readonly-start   the state directory is read-only when the daemon starts: empty (nothing to
                   create the database in) and holding a good database. `glasswatch run` must
                   exit 4 at once with an error naming the path and saying what to do, and leave
                   an existing file untouched. Real read-only: as root a read-only bind mount in
                   a private mount namespace (unshare -m); otherwise chmod 0555.
  commit-failure   the store refuses commits while the daemon runs (GLASSWATCH_TEST_STORE_FULL_FILE:
                   every commit fails as on a full disk or a file system remounted read-only;
                   both reach the daemon as a failed commit). --alerts watched sign-ins are
                   raised meanwhile. Asserted: store_unwritable reaches PagerDuty directly (the
                   outbox lives in the failing store), nothing is committed while it fails, and
                   after recovery every sign-in is alerted (lost = 0, duplicates counted).
  disk-full        (root with mount namespaces only) the same with a real ENOSPC: the state
                   directory is a small tmpfs inside the daemon's mount namespace and the test
                   fills it with a file, then deletes the file.

Not tested, and why: making the directory read-only *while the daemon runs* for real. Linux
refuses to remount a file system read-only while a process holds a file on it open for writing
("mount point is busy"), and the daemon always holds its database open; a kernel that forces
errors=remount-ro after an I/O error needs a failing block device. The commit-failure round is
that case as the daemon sees it (every write fails).

  test_state_faults.py --glasswatch build/release/glasswatch --lab build/release/tests/glasswatch-lab
      [--alerts N] [--outage S]"""
import argparse
import collections
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import (Daemon, Lab, Workdir, check, extra_deliveries, file_deliveries, graph_config,  # noqa: E402
                    pagerduty_sink, read_alerts, wait_for, watched_alerts)

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--glasswatch", required=True)
ap.add_argument("--lab", required=True)
ap.add_argument("--alerts", type=int, default=20, help="watched sign-ins raised while the store fails")
ap.add_argument("--outage", type=float, default=12.0, help="seconds the store fails")
a = ap.parse_args()

EXIT_STORE = 4
IS_ROOT = os.geteuid() == 0


def namespaces_work():
    if not IS_ROOT or not shutil.which("unshare") or not shutil.which("nsenter"):
        return False
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        "mount -t tmpfs -o size=1m tmpfs /mnt && true"], capture_output=True)
    return r.returncode == 0


NS = namespaces_work()
print(f"root={IS_ROOT} mount namespaces={'yes' if NS else 'no'}")


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def make_config(lab, wd, state, alerts_file):
    text = graph_config(lab, state, alerts_file, poll="1s", extra='kinds = ["interactive"]')
    return wd.file("glasswatch.toml", text + pagerduty_sink(lab, wd) + "\n[tripwire]\nactive_use_count = 1000\n")


def run_daemon_ro(cfg, state, timeout=15):
    """Starts `glasswatch run` on a read-only `state`; (exit code or None, stderr)."""
    if NS:
        cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c",
               'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && exec "$2" run --config "$3"',
               "sh", state, a.glasswatch, cfg]
    else:
        cmd = [a.glasswatch, "run", "--config", cfg]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = p.communicate(timeout=timeout)
        return p.returncode, err
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=20)
        return None, err


def round_readonly_start():
    if not IS_ROOT:
        print("readonly-start: chmod 0555 (not root)")
    elif not NS:
        print("readonly-start: SKIPPED (root without mount namespaces: permissions do not bind root)")
        return
    wd = Workdir()
    lab = None
    try:
        lab = Lab(a.lab, wd.path)
        state = os.path.join(wd.path, "state")
        os.makedirs(state)
        cfg = make_config(lab, wd, state, os.path.join(wd.path, "alerts.jsonl"))
        if not IS_ROOT:
            os.chmod(state, 0o555)
        rc, err = run_daemon_ro(cfg, state)
        print("readonly-start (empty): " + next((l for l in err.splitlines() if "state" in l), err[-300:]))
        check(rc == EXIT_STORE, f"read-only empty state directory: exit {rc} (4 expected)")
        check(state in err and "not writable" in err and "make it writable" in err.lower(),
              "the error names the directory and says what to do")
        check(os.listdir(state) == [], "nothing was created")
        if not IS_ROOT:
            os.chmod(state, 0o755)

        # A good database, then the directory turns read-only.
        d = Daemon(a.glasswatch, cfg, wd.path, name="daemon-rw")
        check(wait_for(lambda: os.path.exists(os.path.join(state, "glasswatch.db")), 20), "a database was created")
        time.sleep(2)
        check(d.stop() == 0, "the daemon stops cleanly")
        db = os.path.join(state, "glasswatch.db")
        before = sha(db)
        if not IS_ROOT:
            os.chmod(db, 0o444)
            os.chmod(state, 0o555)
        rc, err = run_daemon_ro(cfg, state)
        print("readonly-start (database): " + next((l for l in err.splitlines() if "state" in l), err[-300:]))
        check(rc == EXIT_STORE, f"read-only state directory with a database: exit {rc} (4 expected)")
        check(state in err and "not writable" in err, "the error names the path and says it is not writable")
        check(sha(db) == before, "the database is untouched")
        if not IS_ROOT:
            os.chmod(state, 0o755)
            os.chmod(db, 0o644)
        print("FIGURE state_readonly_start: empty_dir=exit4 with_database=exit4 "
              f"method={'ro-bind-mount' if IS_ROOT else 'chmod'}")
    finally:
        if lab:
            lab.stop()
        wd.close()


def pd_received(lab):
    return lab.control("GET", "/lab/sinks")["pagerduty_incidents"]


def round_commit_failure(real_disk_full):
    name = "disk-full" if real_disk_full else "commit-failure"
    wd = Workdir()
    lab = daemon = None
    try:
        lab = Lab(a.lab, wd.path, extra=["--throttle", "0"])
        state = os.path.join(wd.path, "state")
        os.makedirs(state)
        alerts_file = os.path.join(wd.path, "alerts.jsonl")
        cfg = make_config(lab, wd, state, alerts_file)
        flag = os.path.join(wd.path, "store-fails")
        filler = os.path.join(state, "filler")
        if real_disk_full:
            # The daemon's own mount namespace with a 4 MiB tmpfs as the state directory.
            log = open(os.path.join(wd.path, "daemon.log"), "w")
            proc = subprocess.Popen(
                ["unshare", "-m", "--propagation", "private", "sh", "-c",
                 'mount -t tmpfs -o size=4m tmpfs "$1" && exec "$2" run --config "$3"',
                 "sh", state, a.glasswatch, cfg], stdout=subprocess.DEVNULL, stderr=log)
            daemon = Daemon.__new__(Daemon)
            daemon.proc, daemon.log_path = proc, log.name

            def in_ns(*cmd):
                return subprocess.run(["nsenter", "-t", str(proc.pid), "-m", *cmd], capture_output=True, text=True)

            check(wait_for(lambda: in_ns("test", "-e", os.path.join(state, "glasswatch.db")).returncode == 0, 20),
                  f"{name}: the daemon runs on a tmpfs state directory")

            def fail_store():
                in_ns("dd", "if=/dev/zero", "of=" + filler, "bs=64k")  # until ENOSPC

            def heal_store():
                in_ns("rm", "-f", filler)
        else:
            daemon = Daemon(a.glasswatch, cfg, wd.path, env=dict(os.environ, GLASSWATCH_TEST_STORE_FULL_FILE=flag))

            def fail_store():
                open(flag, "w").close()

            def heal_store():
                os.unlink(flag)

        def rules():
            return collections.Counter(x["rule"] for x in read_alerts(alerts_file))

        # Running and alerting before the fault.
        first = lab.control("POST", "/lab/signin", {"user": "bg1", "success": True, "type": "interactive", "delay_s": 0})
        check(wait_for(lambda: first["id"] in watched_alerts(alerts_file), 30),
              f"{name}: alerting before the fault")
        fail_store()
        t_fail = time.time()
        fed = []
        for i in range(a.alerts):
            fed.append(lab.control("POST", "/lab/signin", {"user": "bg2" if i % 2 else "bg1", "success": i % 3 != 0,
                                                          "error_code": 50126, "type": "interactive",
                                                          "delay_s": 0})["id"])
            time.sleep(a.outage * 0.6 / a.alerts)
        check(wait_for(lambda: rules()["store_unwritable"] >= 1, 30),
              f"{name}: store_unwritable reached the sinks directly ({time.time() - t_fail:.1f}s)")
        pd = pd_received(lab)
        direct = [k for k in pd if k not in set(watched_alerts(alerts_file).values())]
        check(len(direct) >= 1, f"{name}: PagerDuty got the store_unwritable page")
        time.sleep(max(0.0, a.outage - (time.time() - t_fail)))
        committed = [e for e in watched_alerts(alerts_file) if e in set(fed)]
        print(f"{name}: {len(committed)} of {len(fed)} sign-ins alerted while the store failed")
        if not real_disk_full:
            check(not committed, f"{name}: nothing was committed while the store failed")
        heal_store()
        t_heal = time.time()

        def complete():
            ev = watched_alerts(alerts_file)
            return all(e in ev for e in fed) and {ev[e] for e in fed} <= set(pd_received(lab))

        ok = wait_for(complete, 90, step=0.3)
        took = time.time() - t_heal
        ev = watched_alerts(alerts_file)
        pd = pd_received(lab)
        expected = {ev[e] for e in fed if e in ev}
        lost = len(fed) - len(expected & set(pd))
        dup_file = extra_deliveries(file_deliveries(alerts_file), expected)
        dup_pd = extra_deliveries(pd, expected)
        check(wait_for(lambda: rules()["store_unwritable_recovered"] >= 1, 30), f"{name}: store_unwritable_recovered")
        health = {k: v for k, v in rules().items() if k.startswith("store")}
        print(f"FIGURE state_{name.replace('-', '_')}: fed_during_fault={len(fed)} outage_s={a.outage:.0f} "
              f"lost={lost} dup_file={dup_file} dup_pagerduty={dup_pd} health={dict(health)} "
              f"recovery_to_all_alerted_s={took:.1f}")
        check(ok and lost == 0, f"{name}: every sign-in raised during the fault is alerted after it (lost = {lost})")
        rc = daemon.stop()
        check(rc == 0, f"{name}: SIGTERM exits 0 (rc={rc})")
    except SystemExit:
        if daemon:
            print("---- daemon log (tail) ----\n" + "\n".join(daemon.log().splitlines()[-30:]))
        raise
    finally:
        if daemon:
            daemon.stop()
        if lab:
            lab.stop()
        wd.close()


round_readonly_start()
round_commit_failure(real_disk_full=False)
if NS:
    round_commit_failure(real_disk_full=True)
else:
    print("disk-full (real ENOSPC): SKIPPED (needs root and mount namespaces)")
print("PASS")
