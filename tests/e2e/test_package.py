#!/usr/bin/env python3
"""e2e: the .deb built by CPack holds the daemon and nothing else, installs where the unit and the
README say, declares its shared-library dependencies, never ships an operator config, and the
binary inside it runs.

Builds the package with `cpack -G DEB --config <build>/CPackConfig.cmake -B <tmp>` (the same
configuration as `cmake --build <build> --target package`, written to a temporary directory),
inspects it with dpkg-deb -I / -c / -f, unpacks it with dpkg-deb -x and runs the unpacked
binary. It never installs the package (no dpkg -i).
"""
import argparse
import glob
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from common import Workdir, check, fail, run  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--build-dir", required=True)
ap.add_argument("--source", required=True)
ap.add_argument("--glasswatch", required=True)
a = ap.parse_args()

EXPECTED_FILES = {
    "./usr/bin/glasswatch": "-rwxr-xr-x",
    "./lib/systemd/system/glasswatch.service": "-rw-r--r--",
    "./etc/glasswatch/glasswatch.toml.example": "-rw-r--r--",
    "./usr/share/doc/glasswatch/README.md": "-rw-r--r--",
}

wd = Workdir()
try:
    out = os.path.join(wd.path, "out")
    r = run(["cpack", "-G", "DEB", "--config", os.path.join(a.build_dir, "CPackConfig.cmake"), "-B", out],
            timeout=600)
    check(r.returncode == 0, f"cpack -G DEB succeeds (rc={r.returncode}) {r.stderr[-600:]}")
    debs = glob.glob(os.path.join(out, "*.deb"))
    check(len(debs) == 1, f"exactly one package: {[os.path.basename(d) for d in debs]}")
    deb = debs[0]

    # ---- control fields ------------------------------------------------------------------------
    r = run([a.glasswatch, "version"])
    m = re.search(r"(\d+\.\d+\.\d+)", r.stdout + r.stderr)
    check(r.returncode == 0 and m is not None, f"built binary reports its version: {r.stdout.strip()}")
    version = m.group(1)
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    check(os.path.basename(deb) == f"glasswatch_{version}_{arch}.deb", f"file name {os.path.basename(deb)}")

    r = run(["dpkg-deb", "-I", deb])
    check(r.returncode == 0, "dpkg-deb -I reads the package")
    info = r.stdout

    def field(name):
        mm = re.search(rf"^ {name}: (.*)$", info, re.M)
        return mm.group(1).strip() if mm else None

    check(field("Package") == "glasswatch", "Package: glasswatch")
    check(field("Version") == version, f"Version: {field('Version')} (the project version)")
    check(field("Architecture") == arch, f"Architecture: {arch}")
    check(field("Section") == "admin", "Section: admin")
    check(bool(field("Maintainer")), f"Maintainer: {field('Maintainer')}")
    check(bool(field("Description")), f"Description: {field('Description')}")
    depends = field("Depends") or ""
    dep_names = {d.strip().split()[0].split(":")[0] for d in depends.split(",") if d.strip()}
    print(f"Depends: {depends}")
    for lib in ["libc6", "libstdc++6", "libssl3", "libsqlite3-0", "libsystemd0"]:
        check(lib in dep_names, f"Depends names {lib}")

    # Every shared library the binary links directly (DT_NEEDED) belongs to a package named in
    # Depends; ldd resolves the names to paths (it also lists indirect ones, which are skipped).
    r = run(["readelf", "-d", a.glasswatch])
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", r.stdout)
    check(r.returncode == 0 and needed, f"binary needs {len(needed)} shared libraries")
    r = run(["ldd", a.glasswatch])
    resolved = dict(re.findall(r"^\s*(\S+) => (/\S+)", r.stdout, re.M))
    missing = [n for n in needed if n not in resolved]
    check(r.returncode == 0 and not missing, f"ldd resolves every needed library (missing: {missing})")
    libs = [resolved[n] for n in needed]
    for lib in libs:
        owners = set()
        real = os.path.realpath(lib)
        candidates = {lib, real}
        for c in list(candidates):
            if c.startswith("/usr/lib/"):
                candidates.add(c[len("/usr"):])
            elif c.startswith("/lib/"):
                candidates.add("/usr" + c)
        for c in candidates:
            q = run(["dpkg", "-S", c])
            if q.returncode == 0:
                owners |= {x.split(":")[0].strip() for x in q.stdout.split(": ")[0].split(",")}
        if not owners:
            fail(f"no Debian package owns {lib}")
        # shlibs may name a virtual package (libspdlog1.10 Provides libspdlog1.10-fmt9).
        names = set(owners)
        for o in owners:
            q = run(["dpkg-query", "-W", "-f=${Provides}", o])
            names |= {p.strip().split()[0].split(":")[0] for p in q.stdout.split(",") if p.strip()}
        check(names & dep_names, f"{os.path.basename(lib)} comes from {sorted(names)}, in Depends")

    # ---- maintainer scripts and conffiles ------------------------------------------------------
    ctrl = os.path.join(wd.path, "control")
    r = run(["dpkg-deb", "-e", deb, ctrl])
    check(r.returncode == 0, "dpkg-deb -e extracts the control area")
    conffiles = open(os.path.join(ctrl, "conffiles")).read().split()
    check(conffiles == ["/etc/glasswatch/glasswatch.toml.example"], f"conffiles: {conffiles}")
    for script in ["postinst", "prerm", "postrm"]:
        path = os.path.join(ctrl, script)
        check(os.access(path, os.X_OK), f"{script} is executable")
        check(run(["sh", "-n", path]).returncode == 0, f"{script} parses (sh -n)")
    postinst = open(os.path.join(ctrl, "postinst")).read()
    code = "\n".join(l for l in postinst.splitlines() if not l.lstrip().startswith("#"))
    check(not re.search(r"systemctl\s+(enable|start|restart)\b|deb-systemd", code),
          "postinst never enables or starts the service (only daemon-reload / try-restart on upgrade)")

    # ---- contents ------------------------------------------------------------------------------
    r = run(["dpkg-deb", "-c", deb])
    check(r.returncode == 0, "dpkg-deb -c lists the contents")
    files = {}
    for line in r.stdout.splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and not parts[0].startswith("d"):
            files[parts[5]] = (parts[0], parts[1])
    print("contents: " + ", ".join(sorted(files)))
    check(set(files) == set(EXPECTED_FILES), "exactly the binary, the unit, the example config and the README")
    for path, mode in EXPECTED_FILES.items():
        check(files[path] == (mode, "root/root"), f"{path} {files[path][0]} {files[path][1]}")
    check("./etc/glasswatch/glasswatch.toml" not in files, "no glasswatch.toml: an operator's config is never shipped")

    # ---- unpack and run --------------------------------------------------------------------------
    root = os.path.join(wd.path, "root")
    r = run(["dpkg-deb", "-x", deb, root])
    check(r.returncode == 0, "dpkg-deb -x unpacks the package")
    for rel, src in [("lib/systemd/system/glasswatch.service", "systemd/glasswatch.service"),
                     ("etc/glasswatch/glasswatch.toml.example", "config/glasswatch.example.toml"),
                     ("usr/share/doc/glasswatch/README.md", "README.md")]:
        same = open(os.path.join(root, rel), "rb").read() == open(os.path.join(a.source, src), "rb").read()
        check(same, f"/{rel} is {src} from the source tree")
    binary = os.path.join(root, "usr/bin/glasswatch")
    r = run(["file", "-b", binary])
    check(", stripped" in r.stdout, "the packaged binary is stripped (debug info stays out of the package)")
    r = run([binary, "version"])
    check(r.returncode == 0 and version in r.stdout + r.stderr, f"unpacked binary runs: {r.stdout.strip()}")
    example = os.path.join(root, "etc/glasswatch/glasswatch.toml.example")
    r = run([binary, "check-config", example])
    check(r.returncode == 0 and "valid" in r.stdout,
          f"unpacked binary accepts the packaged example config (rc={r.returncode}) {r.stderr[-300:]}")
    unit = open(os.path.join(root, "lib/systemd/system/glasswatch.service")).read()
    check("ExecStart=/usr/bin/glasswatch run --config /etc/glasswatch/glasswatch.toml" in unit,
          "the unit starts the packaged binary with /etc/glasswatch/glasswatch.toml")
finally:
    wd.close()
