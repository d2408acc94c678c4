#!/usr/bin/env bash
# The executor scale figures of the README (*On a Slurm cluster*, "A billion
# samples, laid out"): the local executor over tiny text samples (one
# caption each, 10,000 per input tar, a caption filter dropping 1 in 7,
# 10,000 per output shard), best run on an otherwise idle machine.
#
#   BUILD=build tests/bench/figures-scale.sh [SIZES...] 2>&1 | tee scale.out
#   COMPACT=1 BUILD=build tests/bench/figures-scale.sh 10000000
#
# SIZES: input sample counts (default 1000000).
# Environment (relative paths are taken from the repository root):
#   BUILD      a Release build tree (default build; scripts/bench.sh makes
#              one, or cmake --build BUILD --target vlmcurate)
#   BIN        the CLI (default BUILD/vlmcurate)
#   GEN        the sample generator (default tests/bench/gen_tiny_wds.py)
#   COMPACT    1: gzip-compressed input tars and zstd shards
#              (gen_tiny_wds.py --compact): ~0.5 GB of disk per million
#              samples instead of ~3.5 GB; what 10M samples need
#   MEMORY_MB  the spec's memory_mb (default: the spec default, 64)
#   DEDUP      1: a dedup stage (its defaults) between the filter and write;
#              its plan step (`vlmcurate task OUT r0-plan 0`) is rerun alone
#              too, and the whole run's peak RSS shows what dedup keeps;
#              exact: the same with the caption MinHash off (exact methods
#              only: ~2 signatures a sample instead of ~20, so 10M samples
#              fit ~8 GB of disk)
#   DEDUP_MB   the dedup stage's own memory_mb (default: its default, 256):
#              what its reduce and plan step may hold
#   DUPS       K: every K-th sample repeats its predecessor's caption
#              (gen_tiny_wds.py --dups K; 2 = every other sample), the
#              duplicates a DEDUP=1 run finds
#   TMPDIR     where the samples and runs go (default /tmp)
# Prints RESULT lines: wall time and peak RSS of the whole run
# (/usr/bin/time -v); peak RSS of PLAN and of FINISH rerun alone on the
# finished run (`vlmcurate task OUT plan 0` / `finish 0` after removing
# their commit); the bytes of the unit manifests, the spills, the plan's
# slices, plan.json and the ledger, per kept record / per input sample.
# Runtime on a 2-core machine: 1M plain ~2 min (generation ~40 s, run ~35 s
# quiet, reruns ~15 s); 10M COMPACT ~10 min.
set -euo pipefail
cd "$(dirname "$0")/../.." || exit 2
BUILD=${BUILD:-build}
bin=${BIN:-$BUILD/vlmcurate}
gen=${GEN:-tests/bench/gen_tiny_wds.py}
[ -x "$bin" ] || { echo "build first: cmake --build $BUILD --target vlmcurate" >&2; exit 2; }
sizes=("$@")
[ $# -gt 0 ] || sizes=(1000000)
compact=()
[ "${COMPACT:-0}" = 1 ] && compact=(--compact)
[ -n "${DUPS:-}" ] && compact+=(--dups "$DUPS")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-scale.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
peak() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
for n in "${sizes[@]}"; do
  d=$tmp/d$n
  python3 "$gen" "$d" "$n" "${compact[@]}"
  if [ -n "${MEMORY_MB:-}" ]; then
    python3 -c "import json, sys; p = sys.argv[1]; s = json.load(open(p)); s['memory_mb'] = int(sys.argv[2]); json.dump(s, open(p, 'w'))" "$d/spec.json" "$MEMORY_MB"
  fi
  if [ "${DEDUP:-0}" != 0 ]; then
    python3 -c "import json, sys; p = sys.argv[1]; s = json.load(open(p)); st = {'stage': 'dedup'}
if sys.argv[2] == 'exact': st['text'] = {'minhash': False}
if sys.argv[3]: st['memory_mb'] = int(sys.argv[3])
s['stages'].insert(-1, st); json.dump(s, open(p, 'w'))" "$d/spec.json" "$DEDUP" "${DEDUP_MB:-}"
  fi
  /usr/bin/time -v "$bin" run "$d/spec.json" --threads 2 --quiet 2>"$d/time.txt" >"$d/run.txt"
  w=$d/out/_work
  kept=$(python3 -c "import json; print(json.load(open('$d/out/run.json'))['totals']['written'])")
  phases=$(python3 -c "import json; t = json.load(open('$d/out/run.json'))['timings']; print(' '.join('%s=%.1f' % kv for kv in t.items()))")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$d/time.txt")
  rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$d/time.txt")
  man=$(cat "$w"/r0-map-*.json | wc -c)
  spill=$(cat "$w"/r*-map-*.bin | wc -c) # the last round's: earlier ones are deleted
  slices=$(wc -c <"$w/plan-slices.bin")
  plan=$(wc -c <"$w/plan.json")
  ledger=$(wc -c <"$d/out/ledger.jsonl")
  work=$(du -sb "$w" | cut -f1)
  if [ "${DEDUP:-0}" != 0 ]; then
    dups=$(python3 -c "import json; print(json.load(open('$d/out/run.json'))['dedup']['duplicates'])")
    rm "$w/r0-plan.json"
    echo "RESULT scale samples=$n dedup_plan_step_alone_peak_rss_kb=$(peak "$bin" task "$d/out" r0-plan 0 --quiet) duplicates=$dups dedup_memory_mb=${DEDUP_MB:-256}"
  fi
  rm "$w/plan.json"
  plan_rss=$(peak "$bin" task "$d/out" plan 0 --quiet)
  rm "$d/out/run.json"
  finish_rss=$(peak "$bin" task "$d/out" finish 0 --quiet)
  echo "RESULT scale samples=$n kept=$kept units=$(ls "$w"/r0-map-*.json | wc -l) wall=$wall peak_rss_kb=$rss ($(( rss * 1024 / n )) B/input sample) $phases"
  echo "RESULT scale samples=$n plan_alone_peak_rss_kb=$plan_rss finish_alone_peak_rss_kb=$finish_rss memory_mb=${MEMORY_MB:-64}"
  echo "RESULT scale samples=$n manifests_bytes=$man ($(( man / n )) B/input sample) spills_bytes=$spill ($(( spill / kept )) B/kept) slices_bytes=$slices ($(( slices / kept )) B/kept) plan_json_bytes=$plan ledger_bytes=$ledger ($(( ledger / n )) B/input sample) work_dir_bytes=$work"
  rm -rf "$d"
done
