#!/usr/bin/env bash
# Benchmarks: builds the optimised tree (BUILD, default build/) with the
# bench target and runs every bench, each printing its table and ratios:
#   bench_img       probe / decode / raw libjpeg-turbo / resize / encode
#   bench_pipeline  ingest -> reshard -> write on demo data vs cat, GNU tar
#                   and decoding alone (SAMPLES demo samples, default 3000)
# Not a test: numbers depend on the machine and on what else runs on it.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo} >/dev/null
cmake --build "$build" -j"$(nproc)" --target bench >&2
echo "== $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for b in "$build"/tests/bench/bench_*; do
  [ -x "$b" ] || continue
  echo
  echo "== $(basename "$b")"
  case $(basename "$b") in
    bench_pipeline)
      "$b" --samples "${SAMPLES:-3000}" --threads "$(nproc)" --work "$build/bench-work" ;;
    *) "$b" ;;
  esac
done
