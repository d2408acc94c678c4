#!/usr/bin/env bash
# The executor scale figures of the README (*On a Slurm cluster*, "A billion
# samples, laid out"): the local executor over 1M and 3M tiny text samples
# (one caption each, 10,000 per input tar, a caption filter dropping 1 in 7,
# 10,000 per output shard), best run on an otherwise idle machine.
#
#   BUILD=build tests/bench/figures-scale.sh [SIZES...] 2>&1 | tee scale.out
#
# SIZES: input sample counts (default 1000000 3000000).
# Environment (relative paths are taken from the repository root):
#   BUILD      a Release build tree (default build; scripts/bench.sh makes
#              one, or cmake --build BUILD --target vlmcurate)
#   BIN        the CLI (default BUILD/vlmcurate)
#   GEN        the sample generator (default tests/bench/gen_tiny_wds.py)
#   TMPDIR     where the samples and runs go (~10 GB free; default /tmp)
# Prints RESULT lines: wall time, peak RSS (/usr/bin/time -v), and the bytes
# of the unit manifests, the spills, the plan's slices, plan.json and the
# ledger, per kept record / per input sample.
# Runtime on a 2-core machine: about 6-7 minutes for 1M + 3M (generation
# ~2.5 min, runs ~4 min).
set -euo pipefail
cd "$(dirname "$0")/../.." || exit 2
BUILD=${BUILD:-build}
bin=${BIN:-$BUILD/vlmcurate}
gen=${GEN:-tests/bench/gen_tiny_wds.py}
[ -x "$bin" ] || { echo "build first: cmake --build $BUILD --target vlmcurate" >&2; exit 2; }
sizes=("$@")
[ $# -gt 0 ] || sizes=(1000000 3000000)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-slurm.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
for n in "${sizes[@]}"; do
  d=$tmp/d$n
  python3 "$gen" "$d" "$n"
  /usr/bin/time -v "$bin" run "$d/spec.json" --threads 2 --quiet 2>"$d/time.txt" >"$d/run.txt"
  w=$d/out/_work
  kept=$(python3 -c "import json; print(json.load(open('$d/out/run.json'))['totals']['written'])")
  phases=$(python3 -c "import json; t = json.load(open('$d/out/run.json'))['timings']; print(' '.join('%s=%.1f' % kv for kv in t.items()))")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$d/time.txt")
  rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$d/time.txt")
  man=$(cat "$w"/r0-map-*.json | wc -c)
  spill=$(cat "$w"/r0-map-*.bin | wc -c)
  slices=$(wc -c <"$w/plan-slices.bin")
  plan=$(wc -c <"$w/plan.json")
  ledger=$(wc -c <"$d/out/ledger.jsonl")
  echo "RESULT slurm-scale samples=$n kept=$kept units=$(ls "$w"/r0-map-*.json | wc -l) wall=$wall peak_rss_kb=$rss $phases"
  echo "RESULT slurm-scale samples=$n manifests_bytes=$man ($(( man / n )) B/input sample) spills_bytes=$spill ($(( spill / kept )) B/kept) slices_bytes=$slices ($(( slices / kept )) B/kept) plan_json_bytes=$plan ledger_bytes=$ledger ($(( ledger / n )) B/input sample)"
  rm -rf "$d"
done
