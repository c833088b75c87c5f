#!/usr/bin/env python3
"""The layout rules of daemon/ (daemon/core/README.md, daemon/io/README.md), checked.

  - three layers: core includes no io or app header; io includes no app header;
  - inside core and io, a room includes only the rooms its README allows (the rooms are layered);
  - no include cycle between files;
  - no folder of more than 30 files, no source file of more than 900 lines.

Usage: check_layout.py [--root REPO]. Prints every violation; exit 1 when there is one.
"""
import argparse
import os
import re
import sys

# Each room and the rooms it may include (its own always allowed). Keep in step with the READMEs.
CORE = {
    "core/base": [],
    "core/config": ["core/base"],
    "core/detection": ["core/base", "core/config"],
    "core/protocol": ["core/base", "core/config", "core/detection"],
    "core/alerting": ["core/base", "core/config", "core/detection", "core/protocol"],
    "core/evidence": ["core/base", "core/config", "core/detection", "core/protocol",
                      "core/alerting"],
}
ALL_CORE = list(CORE)
IO = {
    "io/base": [],
    "io/net": [],
    "io/store": ["io/base"],
    "io/delivery": ["io/base", "io/net", "io/store"],
    "io/sources": ["io/base", "io/net", "io/store", "io/delivery"],
    "io/ops": ["io/base", "io/net", "io/store", "io/delivery", "io/sources"],
}
ALLOWED = {room: deps for room, deps in CORE.items()}
ALLOWED.update({room: ALL_CORE + deps for room, deps in IO.items()})
ALLOWED["app"] = ALL_CORE + list(IO)

MAX_FILES_PER_FOLDER = 30
MAX_LINES_PER_FILE = 900
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def room_of(path):
    parts = path.split("/")
    return "app" if parts[0] == "app" else "/".join(parts[:2])


def check(daemon):
    problems = []
    graph = {}
    for dirpath, _, files in os.walk(daemon):
        rel_dir = os.path.relpath(dirpath, daemon)
        if len(files) > MAX_FILES_PER_FOLDER:
            problems.append(f"daemon/{rel_dir}: {len(files)} files (at most {MAX_FILES_PER_FOLDER})")
        for name in files:
            if not name.endswith((".cpp", ".hpp")):
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), daemon)
            text = open(os.path.join(dirpath, name), encoding="utf-8").read()
            lines = text.count("\n")
            if lines > MAX_LINES_PER_FILE:
                problems.append(f"daemon/{rel}: {lines} lines (at most {MAX_LINES_PER_FILE})")
            room = room_of(rel)
            if room not in ALLOWED:
                problems.append(f"daemon/{rel}: in no known room ({room}); add it to check_layout.py")
                continue
            graph[rel] = []
            for inc in INCLUDE.findall(text):
                if not os.path.exists(os.path.join(daemon, inc)):
                    continue  # a system or third-party header
                graph[rel].append(inc)
                target = room_of(inc)
                if target != room and target not in ALLOWED[room]:
                    problems.append(f"daemon/{rel}: includes {inc} ({room} may not include {target})")
    # Include cycles, file by file (iterative DFS, colours: 1 on the stack, 2 done).
    colour = {}
    for start in sorted(graph):
        if colour.get(start):
            continue
        stack = [(start, iter(graph.get(start, [])))]
        path = [start]
        colour[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = 2
                stack.pop()
                path.pop()
            elif colour.get(child) == 1:
                cycle = path[path.index(child):] + [child]
                problems.append("include cycle: " + " -> ".join(cycle))
            elif not colour.get(child):
                colour[child] = 1
                stack.append((child, iter(graph.get(child, []))))
                path.append(child)
    return problems, graph


def self_test():
    """The checker catches what it is for: an arrow back up, a forbidden room, a cycle, size."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        files = {
            "core/base/a.hpp": '#include "core/base/b.hpp"\n',
            "core/base/b.hpp": '#include "core/base/a.hpp"\n',        # cycle
            "core/config/c.hpp": '#include "io/net/d.hpp"\n',         # core -> io
            "io/net/d.hpp": '#include "io/store/e.hpp"\n',            # net may not include store
            "io/store/e.hpp": "\n" * (MAX_LINES_PER_FILE + 1),         # too long
        }
        for rel, text in files.items():
            os.makedirs(os.path.join(tmp, os.path.dirname(rel)), exist_ok=True)
            open(os.path.join(tmp, rel), "w").write(text)
        problems, _ = check(tmp)
        expected = ["include cycle", "core/config may not include io/net",
                    "io/net may not include io/store", "e.hpp: 901 lines"]
        missing = [e for e in expected if not any(e in p for p in problems)]
        if missing:
            print("self-test: the checker missed:", missing, "in", problems)
            return False
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(__file__), "..", ".."))
    args = ap.parse_args()
    if not self_test():
        return 1
    problems, graph = check(os.path.join(os.path.abspath(args.root), "daemon"))
    for p in problems:
        print(p)
    rooms = sorted({room_of(f) for f in graph})
    print(f"{len(graph)} files in {len(rooms)} rooms, {sum(len(v) for v in graph.values())} "
          f"project includes: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
