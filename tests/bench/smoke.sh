#!/usr/bin/env bash
# CI regression guard for the benchmarks. Not a timed test: it only checks that bench_core still
# builds, runs every mode (and the scaling path) and counts correctly on a small generated stream
# with dozens of matches (lower, UPPER and \u002d-escaped) and decoys.
#
#   tests/bench/smoke.sh BENCH_BINARY
#
# The stream comes from the workload generator next to this script (gen_stream.py).
set -euo pipefail
bench=${1:?usage: smoke.sh BENCH_BINARY}
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python3}
gen="$here/gen_stream.py"
[[ -x "$bench" ]] || { echo "smoke.sh: $bench is not an executable" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$py" "$gen" --size-mb 5 --seed 11 --watchlist "$work/watch.txt" --watch-count 10 \
  --match-rate 0.03 --decoy-rate 0.03 --upper-frac 0.3 --escape-frac 0.3 \
  --out "$work/stream.ndjson" --truth "$work/truth.tsv" 2>/dev/null

fail=0
run() {  # run NAME ARGS...: bench_core must exit 0 and its JSON line must satisfy the checks
  local name=$1; shift
  if ! "$bench" --input "$work/stream.ndjson" --watchlist "$work/watch.txt" --truth "$work/truth.tsv" \
      --reps 1 --json "$@" >"$work/$name.out" 2>&1; then
    echo "FAIL $name: bench_core exited non-zero"; cat "$work/$name.out"; fail=1; return
  fi
  "$py" - "$work/$name.out" "$work/truth.tsv" "$name" <<'PY' || { cat "$work/$name.out"; fail=1; }
import json, sys
out, truth, name = sys.argv[1:4]
j = json.loads([l for l in open(out) if l.startswith("JSON ")][-1][5:])
rows = [l.rstrip("\n").split("\t") for l in open(truth)][1:]
watch = [l.strip() for l in open(truth.replace("truth.tsv", "watch.txt")) if l.strip()]
wc = int(j["watch_count"])
active = set(watch[:wc])
want = sum(1 for r in rows if r[0] == "match" and r[5] in active)
variants = {r[4] for r in rows if r[0] == "match"}
decoys = sum(1 for r in rows if r[0] == "decoy")
problems = []
if not j["counts_ok"]:
    problems.append("counts_ok is false")
if name == "all":
    # The generator must have produced enough of every kind for the check to mean something.
    if want < 20 or decoys < 20 or variants != {"lower", "upper", "escaped"}:
        problems.append("workload too thin: %d matches, %d decoys, variants %s" % (want, decoys, sorted(variants)))
if "core_mbps" in j:
    if (j["expected"], j["found"], j["missed"], j["false_alerts"]) != (want, want, 0, 0):
        problems.append("core: expected %s found %s missed %s false %s, truth says %d"
                        % (j["expected"], j["found"], j["missed"], j["false_alerts"], want))
    for k in ("core_mbps", "read_memchr_mbps", "memchr_mbps"):
        if not j.get(k, 0) > 0:
            problems.append(k + " missing")
if "worst_mbps" in j:
    if j["worst_missed"] or j["worst_false_alerts"]:
        problems.append("worst case: missed %s false %s" % (j["worst_missed"], j["worst_false_alerts"]))
    if j["worst_candidate_records"] != j["worst_records"] or j["worst_records"] == 0:
        problems.append("worst case: only %s of %s records were candidates" % (j["worst_candidate_records"], j["worst_records"]))
if "nlohmann_mbps" in j:
    if j["nlohmann_matches"] != want:
        problems.append("nlohmann baseline found %s matches, truth says %d" % (j["nlohmann_matches"], want))
if problems:
    print("FAIL %s: %s" % (name, "; ".join(problems)))
    sys.exit(1)
print("ok   %-10s %3d matches, %d decoys, watch %d" % (name, want, decoys, wc))
PY
}

run all --mode all --nlohmann-mb 10
for n in 1 10 100 1000; do run "scale$n" --mode pipeline --watch-count "$n"; done

exit $fail
