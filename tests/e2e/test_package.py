#!/usr/bin/env python3
"""e2e: the .deb built by CPack holds the daemon and nothing else, installs where the unit and the
README say, declares its shared-library dependencies, never ships an operator config, and the
binary inside it runs. It also carries what Debian policy and an operator expect next to a
daemon: the copyright file, changelog.Debian.gz (its version the package's), the glasswatch(8)
man page (renders without warnings) and the bash completion (completes commands, sub-commands,
options and their values with or without the bash-completion package); every command, sub-command
and option that `glasswatch help` prints must appear in the man page's COMMANDS section and be
offered by the completion, so neither can drift from the binary.

Builds the package with `cpack -G DEB --config <build>/CPackConfig.cmake -B <tmp>` (the same
configuration as `cmake --build <build> --target package`, written to a temporary directory),
inspects it with dpkg-deb -I / -c / -f, unpacks it with dpkg-deb -x and runs the unpacked
binary. It never installs the package (no dpkg -i).
"""
import argparse
import glob
import gzip
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
    "./usr/share/doc/glasswatch/copyright": "-rw-r--r--",
    "./usr/share/doc/glasswatch/changelog.Debian.gz": "-rw-r--r--",
    "./usr/share/man/man8/glasswatch.8.gz": "-rw-r--r--",
    "./usr/share/bash-completion/completions/glasswatch": "-rw-r--r--",
}
MAN_SECTIONS = ["NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "SIGNALS", "EXIT STATUS", "ENVIRONMENT",
                "FILES", "SEE ALSO"]
# Where Debian's bash-completion package keeps its helpers (_init_completion, _filedir), if installed.
BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"


def help_entries(text):
    """(command, sub-command or None, options, {option: values}) for each entry under `commands:`
    in `glasswatch help`. An entry starts two spaces in; its description may go on further in."""
    entries, inside = [], False
    for line in text.splitlines():
        if line.startswith("commands:"):
            inside = True
            continue
        if inside and line and not line.startswith(" "):
            break  # "options:"
        m = re.match(r"^  ([a-z].*)$", line)
        if not inside or not m:
            continue
        usage = re.split(r"\s{2,}", m.group(1))[0]
        words = usage.split()
        sub = words[1] if len(words) > 1 and re.fullmatch(r"[a-z][a-z-]*", words[1]) else None
        options = list(dict.fromkeys(re.findall(r"--[a-z][a-z-]*", usage)))
        values = {o: v.split("|") for o, v in re.findall(r"(--[a-z-]+) ([a-z][a-z-]*(?:\|[a-z][a-z-]*)+)", usage)}
        entries.append((words[0], sub, options, values))
    return entries


def gunzip_packaged(gz, source, dest):
    """Checks that the packaged `gz` was made with gzip -9n from `source` (relative to the source
    tree) and unpacks it to `dest`. The header of -9n: XFL 2 (best compression), no flags (no
    file name), time stamp 0."""
    name = os.path.basename(gz)
    head = open(gz, "rb").read(10)
    check(len(head) == 10 and head[:3] == b"\x1f\x8b\x08" and head[3] == 0 and head[4:8] == bytes(4)
          and head[8] == 2, f"{name} is compressed with gzip -9n")
    with gzip.open(gz, "rb") as f, open(dest, "wb") as out_f:
        out_f.write(f.read())
    check(open(dest, "rb").read() == open(os.path.join(a.source, source), "rb").read(), f"{name} holds {source}")
    return dest


def has_word(text, word):
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


# Calls the completion function as bash does on <TAB>: COMP_WORDS/COMP_CWORD for the words given
# (the last one is being completed), then prints COMPREPLY. $1: a bash-completion script to load
# first, or "" for a bare bash (where _init_completion must not exist); $2: the completion file.
COMPLETE_SH = r"""
if [ -n "$1" ]; then . "$1"; elif declare -F _init_completion >/dev/null; then exit 3; fi
. "$2" || exit 4
shift 2
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
_glasswatch glasswatch "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
[ $? -ne 124 ] || exit 5  # 124 asks bash to load another completion and retry: never ours
printf '%s\n' "${COMPREPLY[@]}"
"""
BASH_ENV = {k: v for k, v in os.environ.items() if k not in ("BASH_ENV", "ENV")}


def complete(completion, line, helpers="", cwd=None):
    """What the completion offers for `line` (a trailing space: a new, empty word)."""
    words = line.split(" ")
    r = run(["bash", "--norc", "--noprofile", "-c", COMPLETE_SH, "bash", helpers, completion] + words,
            cwd=cwd, env=BASH_ENV)
    if r.returncode != 0:
        fail(f"completing {line!r} (helpers {helpers or 'none'}): rc={r.returncode} {r.stderr[-300:]}")
    return sorted(w for w in r.stdout.split("\n") if w)


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
    check(set(files) == set(EXPECTED_FILES),
          "exactly the binary, the unit, the example config, the README, copyright, changelog, man page "
          "and completion")
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

    # ---- copyright, licence and changelog --------------------------------------------------------
    copyright_text = open(os.path.join(root, "usr/share/doc/glasswatch/copyright")).read()
    check(copyright_text == open(os.path.join(a.source, "packaging/debian/copyright")).read(),
          "/usr/share/doc/glasswatch/copyright is packaging/debian/copyright")
    paragraphs = [dict(re.findall(r"^([A-Za-z-]+):[ \t]*(.*)$", p, re.M)) | {"_text": p}
                  for p in re.split(r"\n\s*\n", copyright_text.strip())]
    check(paragraphs[0].get("Format") == "https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
          "copyright is machine-readable (DEP-5 Format: header)")
    files_all = [p for p in paragraphs if p.get("Files") == "*"]
    check(len(files_all) == 1 and files_all[0].get("License") == "Apache-2.0"
          and "The glasswatch authors" in files_all[0].get("Copyright", ""),
          "copyright: Files: * is Apache-2.0, by The glasswatch authors")
    standalone = [p for p in paragraphs if p.get("License") == "Apache-2.0" and "Files" not in p]
    check(len(standalone) == 1 and "/usr/share/common-licenses/Apache-2.0" in standalone[0]["_text"]
          and os.path.exists("/usr/share/common-licenses/Apache-2.0"),
          "copyright: the Apache-2.0 stanza points at /usr/share/common-licenses/Apache-2.0")
    license_text = open(os.path.join(a.source, "LICENSE")).read()
    check("Apache License" in license_text and "Version 2.0, January 2004" in license_text
          and "Copyright 2026 The glasswatch authors" in license_text,
          "LICENSE is the Apache License 2.0, copyright 2026 The glasswatch authors")
    standard = open("/usr/share/common-licenses/Apache-2.0").read().splitlines()
    ours = license_text.splitlines()
    differing = [i for i, (x, y) in enumerate(zip(standard, ours)) if x != y]
    check(len(standard) == len(ours) and len(differing) == 1 and "[name of copyright owner]" in standard[differing[0]],
          "LICENSE is the standard text, only the appendix's copyright line filled in")

    changelog = gunzip_packaged(os.path.join(root, "usr/share/doc/glasswatch/changelog.Debian.gz"),
                                "packaging/debian/changelog", os.path.join(wd.path, "changelog.Debian"))
    first = open(changelog).readline().rstrip("\n")
    m = re.fullmatch(r"glasswatch \(([^)]+)\) unstable; urgency=medium", first)
    check(m is not None and m.group(1) == version, f"changelog's first line names version {version}: {first}")
    r = run(["dpkg-parsechangelog", "-l", changelog])
    parsed = dict(re.findall(r"^(Source|Version|Distribution|Urgency): (.*)$", r.stdout, re.M))
    check(r.returncode == 0 and parsed == {"Source": "glasswatch", "Version": version,
                                            "Distribution": "unstable", "Urgency": "medium"},
          f"dpkg-parsechangelog: {parsed} {r.stderr[-300:]}")

    # ---- man page --------------------------------------------------------------------------------
    man_gz = os.path.join(root, "usr/share/man/man8/glasswatch.8.gz")
    man_src = gunzip_packaged(man_gz, "packaging/man/glasswatch.8", os.path.join(wd.path, "glasswatch.8"))
    man_env = dict(os.environ, LC_ALL="C.UTF-8", MANROFFSEQ="", MANWIDTH="80")
    r = run(["man", "--warnings", "-E", "UTF-8", "-l", man_gz], env=man_env)
    check(r.returncode == 0 and r.stderr == "" and r.stdout.strip(),
          f"man -l renders the packaged page without warnings {r.stderr[-600:]}")
    rendered = re.sub(r".\x08", "", r.stdout).replace("\u2010", "-").replace("\u2212", "-")
    r = run(["groff", "-man", "-ww", "-z", man_src])
    check(r.returncode == 0 and r.stderr == "", f"groff -man -ww -z prints no warning {r.stderr[-600:]}")
    r = run(["lexgrog", man_gz])
    check(r.returncode == 0 and "glasswatch - " in r.stdout, f"lexgrog reads the NAME line: {r.stdout.strip()}")
    sections, name = {}, None
    for line in rendered.splitlines():
        if re.fullmatch(r"[A-Z][A-Z ]*[A-Z]", line):  # section headings start in column 0
            name = line
            sections[name] = []
        elif name:
            sections[name].append(line)
    check(all(sec in sections for sec in MAN_SECTIONS), f"man page sections: {list(sections)}")
    # COMMANDS: one subsection per command (headings three spaces in), whitespace made single.
    subsections = []
    for line in sections["COMMANDS"]:
        if re.match(r"^   \S", line):
            subsections.append([])
        if subsections:
            subsections[-1].append(line)
    subsections = [" ".join(" ".join(sub).split()) for sub in subsections]
    commands_text = " ".join(" ".join(sections["COMMANDS"]).split())

    # ---- bash completion -------------------------------------------------------------------------
    completion = os.path.join(root, "usr/share/bash-completion/completions/glasswatch")
    check(open(completion, "rb").read() == open(os.path.join(a.source, "packaging/completion/glasswatch"), "rb").read(),
          "the completion is packaging/completion/glasswatch")
    r = run(["bash", "-n", completion])
    check(r.returncode == 0 and r.stderr == "", f"the completion parses (bash -n) {r.stderr[-300:]}")
    r = run(["bash", "--norc", "--noprofile", "-c", '. "$1" && complete -p glasswatch', "bash", completion],
            env=BASH_ENV)
    check(r.returncode == 0 and "-F _glasswatch" in r.stdout and r.stderr == "",
          f"sourcing it registers complete -F _glasswatch: {r.stdout.strip()} {r.stderr[-300:]}")
    helper_sets = [""] + ([BASH_COMPLETION] if os.path.exists(BASH_COMPLETION) else [])
    files_dir = os.path.join(wd.path, "cwd")
    os.makedirs(files_dir)
    open(os.path.join(files_dir, "glasswatch-site.toml"), "w").close()
    for helpers in helper_sets:
        how = "with bash-completion" if helpers else "in a bare bash (no bash-completion helpers)"
        got = complete(completion, "glasswatch ou", helpers)
        check(got == ["outbox"], f"{how}: 'glasswatch ou' completes to {got}")
        got = complete(completion, "glasswatch outbox ", helpers)
        check(got == ["list", "retry"], f"{how}: 'glasswatch outbox ' offers {got}")
        for line in ["glasswatch run --config glasswatch-s", "glasswatch check-config glasswatch-s",
                     "glasswatch replay glasswatch-s", "glasswatch replay --send glasswatch-s"]:
            got = complete(completion, line, helpers, cwd=files_dir)
            check(got == ["glasswatch-site.toml"], f"{how}: '{line}' completes the file name: {got}")
    if len(helper_sets) == 1:
        print(f"note: {BASH_COMPLETION} is not installed; the completion was checked in a bare bash only")

    # ---- drift: every command, sub-command and option of `glasswatch help` -----------------------
    r = run([binary, "help"])
    entries = help_entries(r.stdout)
    names = sorted({e[0] for e in entries})
    check(r.returncode == 0 and len(entries) >= 10 and {"run", "outbox", "version", "help"} <= set(names),
          f"`glasswatch help` lists {len(entries)} entries, commands {' '.join(names)}")
    top = complete(completion, "glasswatch ")
    missing = [n for n in names if n not in top]
    check(not missing, f"the completion offers every command of `glasswatch help` (missing: {missing})")
    missing = [n for n in names if not has_word(commands_text, n)]
    check(not missing, f"the man page's COMMANDS section names every command (missing: {missing})")
    for cmd, sub, options, values in entries:
        title = cmd + (" " + sub if sub else "")
        words = title.split()
        if sub:
            check(sub in complete(completion, f"glasswatch {cmd} "), f"the completion offers '{title}'")
        # The man page: the subsection whose heading starts with the command (and sub-command)
        # names each option and each listed value.
        matching = [t for t in subsections if t.split()[:len(words)] == words]
        check(len(matching) == 1, f"the man page has a COMMANDS subsection for '{title}'")
        missing = [w for w in options + [v for vs in values.values() for v in vs] if not has_word(matching[0], w)]
        check(not missing, f"man page, '{title}': every option and value of `glasswatch help` (missing: {missing})")
        if options:
            offered = complete(completion, f"glasswatch {title} --")
            missing = [o for o in options if o not in offered]
            check(not missing, f"completion, '{title} --': offers {offered} (missing: {missing})")
        for option, vs in values.items():
            offered = complete(completion, f"glasswatch {title} {option} ")
            check(sorted(vs) == offered, f"completion, '{title} {option} ': {offered}")
finally:
    wd.close()
