#!/usr/bin/env bash
# Replay throughput and memory: `glasswatch replay` over a generated noise stream (gen_stream.py,
# NDJSON Event Hub bodies with a few watched matches), read from a file in the page cache.
# Reports MB/s (best of --reps) and the peak RSS; checks that exactly the generator's matches
# were alerted. Timing is reported, not asserted.
#
#   tests/bench/bench_replay.sh GLASSWATCH_BINARY [--size-mb 1100] [--reps 3] [--work DIR]
set -euo pipefail
gw=${1:?usage: bench_replay.sh GLASSWATCH_BINARY [--size-mb N] [--reps N] [--work DIR]}
shift
size_mb=1100 reps=3 work=/tmp/glasswatch-bench
while [[ $# -gt 0 ]]; do
  case $1 in
    --size-mb) size_mb=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    *) echo "bench_replay.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python3}
mkdir -p "$work"
stream="$work/replay-${size_mb}mb-r5e-5.ndjson"
truth="$work/replay-${size_mb}mb-r5e-5.truth.tsv"
watch="$work/replay-watch.txt"
if [[ ! -f "$stream" || ! -f "$truth" ]]; then
  echo "== generating ${size_mb} MB with gen_stream.py"
  "$py" "$here/gen_stream.py" --size-mb "$size_mb" --seed 7 --watchlist "$watch" --watch-count 2 \
    --match-rate 5e-5 --decoy-rate 5e-5 --out "$stream" --truth "$truth"
fi
mapfile -t ids <"$watch"
cfg="$work/replay.toml"
cat >"$cfg" <<TOML
[tenant]
id = "6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b"
[[watch.accounts]]
object_id = "${ids[0]}"
[[watch.accounts]]
object_id = "${ids[1]}"
[state]
directory = "$work/replay-state"
[admin]
listen = ""
[[sinks]]
name = "local"
type = "file"
path = "$work/replay-alerts.jsonl"
TOML
bytes=$(stat -c %s "$stream")
cat "$stream" >/dev/null  # into the page cache: the figure is replay's, not the disk's
best=""
for ((i = 1; i <= reps; i++)); do
  /usr/bin/time -f "%e %M" -o "$work/replay.time" "$gw" replay --config "$cfg" "$stream" \
    >"$work/replay.out" 2>"$work/replay.err"
  read -r secs kib <"$work/replay.time"
  mbs=$("$py" -c "print(round($bytes / 1e6 / max($secs, 0.001)))")
  echo "run $i: $(tail -1 "$work/replay.err")"
  echo "run $i: ${secs} s, ${mbs} MB/s, peak RSS $((kib / 1024)) MiB"
  if [[ -z "$best" || $mbs -gt ${best%% *} ]]; then best="$mbs $((kib / 1024))"; fi
done
want=$(awk -F'\t' 'NR > 1 && $1 == "match"' "$truth" | wc -l)
got=$(wc -l <"$work/replay.out")
echo "replay: $((bytes / 1000000)) MB, best ${best%% *} MB/s, peak RSS ${best##* } MiB, alerts $got of $want expected"
[[ $got -eq $want ]] || { echo "bench_replay.sh: expected $want alerts, got $got" >&2; exit 1; }
