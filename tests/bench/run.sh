#!/usr/bin/env bash
# Runs every core benchmark figure and prints one table of ratios (all measured in this run, on
# this machine): core vs read()+memchr and memchr in memory, core vs an nlohmann_json DOM
# baseline, the worst case (every record a candidate) vs that baseline, and throughput / RSS at
# 1, 10, 100 and 1000 watched GUIDs. Exits non-zero if any count check fails (a missed match or
# an alert on a decoy); throughput targets are reported, not enforced.
#
#   tests/bench/run.sh [--size-mb N | --quick] [--bench BINARY] [--work DIR] [--reps N]
#                      [--seed N] [--match-rate R] [--nlohmann-mb N]
#
#   --size-mb N      stream size (default 1000; must fit in memory: bench_core loads it whole)
#   --quick          20 MB, for trying the script
#   --bench BINARY   bench_core (default: build/release/tests/bench/bench_core, built if missing)
#   --work DIR       where the stream is generated and kept for reuse (default /tmp/glasswatch-bench)
#   --reps N         repetitions per figure, the median is reported (default 3)
#   --match-rate R   generator match rate = decoy rate (default 1e-4; 2e-3 with --quick)
#   --backlog-mb N   Event Hub backlog for the daemon's catch-up figure (default 2000; 20 with
#                    --quick); --no-daemon skips the daemon figures (bench_daemon.py)
#
# The workload comes from the generator next to this script, tests/bench/gen_stream.py.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || (cd "$here/../.." && pwd))
py=$(command -v /usr/bin/python3 || command -v python3)

size_mb=1000 bench="" work=/tmp/glasswatch-bench reps=3 seed=1 rate="" nlohmann_mb=50
backlog_mb=2000 daemon=1 quick=0
while (($#)); do
  case "$1" in
    --size-mb) size_mb=$2; shift 2 ;;
    --quick) size_mb=20; backlog_mb=20; quick=1; shift ;;
    --backlog-mb) backlog_mb=$2; shift 2 ;;
    --no-daemon) daemon=0; shift ;;
    --bench) bench=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --match-rate) rate=$2; shift 2 ;;
    --nlohmann-mb) nlohmann_mb=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [[ -z "$rate" ]]; then
  rate=$("$py" -c "import sys; print('1e-4' if float(sys.argv[1]) >= 200 else '2e-3')" "$size_mb")
fi

gen="$here/gen_stream.py"

if [[ -z "$bench" ]]; then
  bench="$repo/build/release/tests/bench/bench_core"
  if [[ ! -x "$bench" ]]; then
    echo "== building bench_core (release preset)"
    (cd "$repo" && cmake --preset release >/dev/null && cmake --build --preset release --target bench_core -j 2)
  fi
fi
[[ -x "$bench" ]] || { echo "run.sh: $bench is not an executable" >&2; exit 2; }

# ---- workload (kept and reused while the generator arguments are the same)
mkdir -p "$work"
stream="$work/stream-${size_mb}mb-s${seed}.ndjson"
truth="${stream%.ndjson}.truth.tsv"
watch="$work/watch-s${seed}.txt"
gen_args=(--size-mb "$size_mb" --seed "$seed" --watchlist "$watch" --watch-count 10
          --match-rate "$rate" --decoy-rate "$rate" --out "$stream" --truth "$truth")
stamp="$stream.args"
if [[ ! -f "$stream" || ! -f "$truth" || ! -f "$watch" || "$(cat "$stamp" 2>/dev/null)" != "$(sha256sum "$gen" | cut -c1-16) ${gen_args[*]}" ]]; then
  echo "== generating ${size_mb} MB with $gen"
  rm -f "$stream" "$truth" "$stamp"
  "$py" "$gen" "${gen_args[@]}" --stats 2>&1
  echo "$(sha256sum "$gen" | cut -c1-16) ${gen_args[*]}" >"$stamp"
else
  echo "== reusing $stream"
fi

# ---- the runs: one process for the main figures, one per watchlist size (separate max RSS)
load_start=$(cut -d' ' -f1 /proc/loadavg)
common=(--input "$stream" --watchlist "$watch" --truth "$truth" --reps "$reps" --json)
echo "== bench_core --mode all"
rc=0
nice -n 0 "$bench" "${common[@]}" --mode all --nlohmann-mb "$nlohmann_mb" >"$work/all.log" 2>&1 || rc=1
for n in 1 10 100 1000; do
  echo "== bench_core --mode pipeline --watch-count $n"
  nice -n 0 "$bench" "${common[@]}" --mode pipeline --watch-count "$n" >"$work/scale$n.log" 2>&1 || rc=1
done
load_end=$(cut -d' ' -f1 /proc/loadavg)

# ---- the table
"$py" - "$work" "$stream" "$bench" "$load_start" "$load_end" "$size_mb" "$seed" "$rate" "$reps" <<'PY' || rc=1
import json, os, platform, sys, time
work, stream, bench, l0, l1, size_mb, seed, rate, reps = sys.argv[1:10]

def load(name):
    p = os.path.join(work, name + ".log")
    lines = [l for l in open(p) if l.startswith("JSON ")]
    if not lines:
        print(open(p).read())
        raise SystemExit("bench_core produced no result in " + p)
    return json.loads(lines[-1][5:])

a = load("all")
scale = {n: load("scale%d" % n) for n in (1, 10, 100, 1000)}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
rd, mem, core, worst, dom = (a["read_memchr_mbps"], a["memchr_mbps"], a["core_mbps"], a["worst_mbps"],
                             a["nlohmann_mbps"])
ok = lambda c: "met" if c else "NOT MET"

print()
print("glasswatch core benchmark, %s" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
print("machine : %s, %d cores (shared), load average %s at start, %s at end" % (cpu, os.cpu_count(), l0, l1))
print("input   : %.1f MB generated stream (%d Event Hub bodies, %d records; gen_stream.py --seed %s, match/decoy rate %s),"
      % (a["input_bytes"] / 1e6, a["bodies"], a["worst_records"], seed, rate))
print("          read fully into memory before timing; one thread; median of %s repetitions; MB = 1e6 bytes" % reps)
print()
print("%-58s %9s  %s" % ("figure", "MB/s", "ratio (target)"))
print("%-58s %9.0f  %s" % ("read()+memchr over the file, 1 MiB reads (page cache)", rd, "1.000 (reference)"))
print("%-58s %9.0f  %.3f of read()+memchr" % ("memchr over the same bytes in memory", mem, mem / rd))
print("%-58s %9.0f  %.3f of read()+memchr (>= 0.40: %s)" % ("core: prefilter + confirm + normalize on hits",
      core, core / rd, ok(core / rd >= 0.40)))
print("%-58s %9s  %.3f of memchr in memory" % ("", "", core / mem))
print("%-58s %9s  %.1fx nlohmann DOM (>= 20x: %s)" % ("", "", core / dom, ok(core / dom >= 20)))
print("%-58s %9.0f  %.1fx nlohmann DOM (>= 10x: %s)" % ("core, worst case: a watched GUID in every record",
      worst, worst / dom, ok(worst / dom >= 10)))
print("%-58s %9s  %.3f of read()+memchr; %d of %d records were candidates" % ("", "", worst / rd,
      a["worst_candidate_records"], a["worst_records"]))
print("%-58s %9.1f  %.4f of read()+memchr" % ("nlohmann_json DOM per body + field walk (first %.0f MB)"
      % (a["nlohmann_bytes"] / 1e6), dom, dom / rd))
print()
print("per-body latency of the core (bodies of 1-50 records): p50 %.1f us, p99 %.1f us"
      % (a["core_p50_body_us"], a["core_p99_body_us"]))
print("thread CPU time / wall time (below 100%%: another process took the core): read()+memchr %.0f%%, "
      "core %.0f%%, worst case %.0f%%, nlohmann %.0f%%" % (100 * a["read_memchr_cpu_share"],
      100 * a["core_cpu_share"], 100 * a["worst_cpu_share"], 100 * a["nlohmann_cpu_share"]))
print()
print("scaling (one process per row, same stream; RSS from getrusage ru_maxrss, input buffer included)")
print("%8s %10s %10s %6s %12s %14s %12s" % ("watched", "core MB/s", "core/read", "cpu", "max RSS MiB",
      "core RSS MiB*", "matches"))
for n, s in scale.items():
    print("%8d %10.0f %10.3f %5.0f%% %12.1f %14.1f %12s" % (n, s["core_mbps"], s["core_mbps"] / s["read_memchr_mbps"],
          100 * s["core_cpu_share"], s["max_rss_kib"] / 1024, s["core_rss_above_input_kib"] / 1024,
          "%d/%d%s" % (s["found"], s["expected"], "" if s["counts_ok"] else " FAIL")))
print("* peak RSS added after the input was loaded: pipeline, watchlist tables, findings")
print()
runs = [("main", a)] + [("scale%d" % n, s) for n, s in scale.items()]
bad = [name for name, r in runs if not r["counts_ok"]]
print("counts: core found %d of %d truth matches, %d missed, %d false alerts (%d decoys in the stream); "
      "worst case %d missed, %d false alerts; nlohmann baseline %d matches in its prefix"
      % (a["found"], a["expected"], a["missed"], a["false_alerts"], a["decoys"], a["worst_missed"],
         a["worst_false_alerts"], a["nlohmann_matches"]))
print("count check: %s" % ("OK" if not bad else "FAILED in " + ", ".join(bad)))
json.dump({"main": a, "scaling": scale}, open(os.path.join(work, "results.json"), "w"), indent=1)
print("logs and results.json in %s" % work)
sys.exit(1 if bad else 0)
PY
# ---- the daemon figures: footprint, catch-up over AMQP, alert latency (real binaries + lab)
if ((daemon)); then
  bin="$(dirname "$bench")/../.."
  if [[ ! -x "$bin/glasswatch" || ! -x "$bin/tests/glasswatch-lab" ]]; then
    echo "== building glasswatch and glasswatch-lab (release preset)"
    (cd "$repo" && cmake --build --preset release --target glasswatch glasswatch-lab -j 2)
  fi
  echo
  echo "== bench_daemon.py (backlog ${backlog_mb} MB)"
  extra=()
  ((quick)) && extra=(--quick)
  "$py" "$here/bench_daemon.py" \
    --glasswatch "$bin/glasswatch" --lab "$bin/tests/glasswatch-lab" --backlog-mb "$backlog_mb" \
    --work "$work" --json "$work/daemon.json" "${extra[@]}" || rc=1
fi
exit $rc
