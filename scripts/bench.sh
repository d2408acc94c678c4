#!/usr/bin/env bash
# Benchmarks: builds the optimised tree (BUILD, default build/) with the
# bench target and runs the benches, each printing its table and ratios:
#   bench_img       probe / decode / raw libjpeg-turbo / resize / encode
#   bench_kernels   the engine's matmul and attention kernels (GFLOP/s)
#   bench_filters   the filter stage on demo data; text filters in MB/s
#   bench_dedup     pHash with scaled vs full decode; the dedup reduce vs GNU
#                   sort and its peak RSS (DEDUP_SIGS signatures, default 10M)
#   bench_pipeline  ingest -> reshard -> write on demo data vs cat, GNU tar
#                   and decoding alone (SAMPLES demo samples, default 3000)
#   bench_urls      the urls source's downloader vs curl --parallel against
#                   a loopback server at concurrency 16/64/256; peak RSS of
#                   1,000 concurrent transfers
# The engine benches need a real-size checkpoint (~17 GB): with CKPT=DIR,
# bench_load and bench_engine run on DIR, written first by
# bench_mkcheckpoint when DIR has no config.json.
# BENCH="img pipeline" runs only those.  Not a test: the numbers depend on
# the machine and on what else runs on it.
# The README's quiet-machine figures come from tests/bench/figures-engine.sh,
# figures-caption.sh, figures-dedup.sh and figures-scale.sh (minutes each;
# their headers list what they need, e.g. CKPT): run them directly, or here,
# after the build, by naming them: BENCH="figures-dedup figures-scale".
# The build is the one the tool ships as: Release, -O3 -DNDEBUG
# -march=native -ffp-contract=fast, the engine -ffp-contract=off (README,
# "How the tool is built").
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
work=$build/bench-work
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-Release} >/dev/null
cmake --build "$build" -j"$(nproc)" --target bench >&2
mkdir -p "$work"
echo "== $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "== build: $(grep -E '^CMAKE_BUILD_TYPE:' "$build/CMakeCache.txt" | cut -d= -f2)," \
     "$(grep -E '^CMAKE_C_COMPILER:' "$build/CMakeCache.txt" | cut -d= -f2)," \
     "flags: $(grep -h -o -- '-O[0-3s]\|-march=[a-z0-9-]*\|-ffp-contract=[a-z]*' \
               "$build/CMakeFiles/vc_core.dir/flags.make" | sort -u | xargs)"

wanted() { [ -z "${BENCH:-}" ] || [[ " $BENCH " == *" $1 "* ]]; }
bench() {
  local name=$1; shift
  wanted "$name" || return 0
  echo; echo "== bench_$name $*"
  "$build/tests/bench/bench_$name" "$@"
}

bench img
bench kernels --threads "$(nproc)"
bench filters "${SAMPLES:-3000}" "$work/filters"
bench dedup phash --images 200
bench dedup reduce --sigs "${DEDUP_SIGS:-10000000}" --mem 64 --work "$work/dedup"
bench pipeline --samples "${SAMPLES:-3000}" --threads "$(nproc)" --work "$work/pipeline"
mkdir -p "$work/urls"
bench urls --urls "${URLS:-4000}" --work "$work/urls"
if [ -n "${CKPT:-}" ]; then
  if [ ! -f "$CKPT/config.json" ] && wanted mkcheckpoint; then
    bench mkcheckpoint "$CKPT" --dtype bf16
  fi
  bench load "$CKPT" --compute bf16
  bench engine "$CKPT" --threads "$(nproc)"
fi
for fig in engine caption dedup scale; do
  if [ -n "${BENCH:-}" ] && wanted "figures-$fig"; then
    echo; echo "== figures-$fig"
    BUILD=$build "tests/bench/figures-$fig.sh"
  fi
done
