#!/usr/bin/env bash
# Bounded libFuzzer run of every harness: builds the fuzz preset if needed, runs each target for
# N seconds over a temporary copy of its seed corpus (tests/fuzz/corpus/<target>, plus the inputs
# of fixed crashes in tests/fuzz/regressions/<target>), and prints per target the executions,
# exec/s, coverage (cov: / ft: at start and end) and the corpus size.
# Exits non-zero if any target crashed, leaked, timed out or ran out of memory; the reproducer is
# kept and its path printed. The checked-in corpus is never modified.
#
#   tests/fuzz/run.sh [--seconds N] [--targets "fuzz_config fuzz_prefilter ..."] [--build-dir DIR]
#                     [--work DIR] [-- libFuzzer flags...]
#
#   --seconds N     per target (default 20: the CI stage)
#   --targets LIST  a subset (default: all six)
#   --build-dir DIR the fuzz preset's build directory (default <repo>/build/fuzz)
#   --work DIR      keep corpora, logs and reproducers here (default: a temp dir, removed on success)
#   -- FLAGS        passed to every target, e.g. -- -rss_limit_mb=4096
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

seconds=20 build="$repo/build/fuzz" work="" extra=()
targets=(fuzz_config fuzz_graph_page fuzz_diagnostic fuzz_prefilter fuzz_http_response fuzz_amqp_body)
while (($#)); do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --targets) read -r -a targets <<<"$2"; shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

# Which dictionaries each target gets (libFuzzer takes one -dict: they are concatenated).
dicts_for() {
  case "$1" in
    fuzz_config) echo "toml.dict" ;;
    fuzz_http_response) echo "http.dict json.dict" ;;
    fuzz_prefilter) echo "json.dict watched.dict" ;;
    *) echo "json.dict watched.dict" ;;
  esac
}

if [[ ! -f "$build/build.ninja" ]]; then
  echo "== configuring the fuzz preset in $build"
  (cd "$repo" && cmake --preset fuzz --no-warn-unused-cli -B "$build" >/dev/null)
fi
echo "== building the harnesses"
if ! out=$(cmake --build "$build" --target fuzzers -j "${FUZZ_BUILD_JOBS:-$(nproc)}" 2>&1); then
  echo "$out"
  exit 1
fi

keep=1
if [[ -z "$work" ]]; then
  work=$(mktemp -d /tmp/glasswatch-fuzz.XXXXXX)
  keep=0
fi
mkdir -p "$work"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

rows=() failed=()
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/$t"
  [[ -x "$bin" ]] || { echo "run.sh: $bin missing" >&2; exit 2; }
  corpus="$work/corpus/$t"
  rm -rf "$corpus" && mkdir -p "$corpus"
  cp -r "$here/corpus/$t/." "$corpus/"
  # Inputs that once crashed a target (RESULTS.md) run first with the seeds, as regression tests.
  if [[ -d "$here/regressions/$t" ]]; then cp -r "$here/regressions/$t/." "$corpus/"; fi
  dict="$work/$t.dict"
  (cd "$here/dict" && cat $(dicts_for "$t")) >"$dict"
  log="$work/$t.log"
  echo "== $t: ${seconds}s over $(ls "$corpus" | wc -l) seeds"
  rc=0
  "$bin" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -dict="$dict" \
    -artifact_prefix="$work/$t-" "${extra[@]}" "$corpus" >"$log" 2>&1 || rc=$?
  final_stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -n1; }
  start=$(grep -m1 -E '^#[0-9]+[[:space:]]+INITED' "$log" | sed -nE 's/.*cov: ([0-9]+) ft: ([0-9]+).*/\1 \2/p')
  end=$(grep -E '^#[0-9]+[[:space:]].* cov: ' "$log" | tail -n1 | sed -nE 's/.*cov: ([0-9]+) ft: ([0-9]+).*/\1 \2/p')
  read -r cov0 ft0 <<<"${start:-? ?}"
  read -r cov1 ft1 <<<"${end:-? ?}"
  files=$(find "$corpus" -type f | wc -l)
  kib=$(( $(du -sb "$corpus" | cut -f1) / 1024 ))
  result=ok
  if ((rc != 0)); then
    result="FAILED (exit $rc)"
    failed+=("$t")
    grep -E 'ERROR: |SUMMARY: |contract broken|ALARM|out-of-memory|Test unit written' "$log" | head -n 8 | sed 's/^/   /'
    echo "   log: $log"
  fi
  rows+=("$(printf '%-20s %10s %8s %11s %13s %12s  %s' "$t" "$(final_stat number_of_executed_units)" \
    "$(final_stat average_exec_per_sec)" "$cov0->$cov1" "$ft0->$ft1" "$files/${kib}KiB" "$result")")
done

echo
echo "libFuzzer, ${seconds}s per target ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-20s %10s %8s %11s %13s %12s  %s\n' target execs exec/s cov ft corpus result
printf '%s\n' "${rows[@]}"
if ((${#failed[@]})); then
  echo "FAILED: ${failed[*]} (reproducers and logs in $work)"
  exit 1
fi
if ((keep)); then echo "corpora and logs kept in $work"; else rm -rf "$work"; fi
