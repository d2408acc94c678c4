#!/usr/bin/env bash
# Runs every fuzz target under libFuzzer: scripts/fuzz.sh [SECONDS] [TARGET...]
# (SECONDS per target; TARGET without the fuzz_ prefix, e.g. img, wds_read).
# Builds BUILD (default build-fuzz/) with clang, -fsanitize=fuzzer and
# ASan+UBSan, then runs each target (default: all of tests/fuzz/fuzz_*.c)
# for SECONDS (default 60) on all cores but one, starting from its corpus
# in tests/fuzz/corpus/<target>/.  New inputs go to BUILD/fuzz-new/<target>/
# (the committed corpus is only read); a crash leaves its input in
# BUILD/fuzz-crash/ and makes the script fail.  Worth keeping: add a crash
# input (once fixed) to the corpus, where ctest's fuzz-regress replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}; shift || true
build=${BUILD:-build-fuzz}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c | sed 's/^fuzz_//')"); done
fi
# A folder configured earlier with another compiler cannot be switched to
# clang by cmake: say so rather than fail in the middle of the build.
if [ -f "$build/CMakeCache.txt" ] && ! grep -q '^CMAKE_C_COMPILER:.*clang' "$build/CMakeCache.txt"; then
  echo "fuzz.sh: $build was configured with another compiler; remove it or set BUILD=" >&2
  exit 2
fi
cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DVC_LIBFUZZER=ON \
      -DVC_SANITIZE=ON >/dev/null
cmake --build "$build" -j"$(nproc)" --target "${targets[@]/#/fuzz_}" >&2
jobs=$(( $(nproc) > 1 ? $(nproc) - 1 : 1 ))
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
summary=()
mkdir -p "$build/fuzz-crash"
for t in "${targets[@]}"; do
  new="$build/fuzz-new/$t"
  mkdir -p "$new"
  echo "== fuzz_$t: ${secs}s, $jobs jobs"
  if ! "$build/tests/fuzz_$t" -max_total_time="$secs" -fork="$jobs" -ignore_crashes=0 \
       -artifact_prefix="$build/fuzz-crash/$t-" -print_final_stats=1 \
       "$new" "tests/fuzz/corpus/$t" 2>"$build/fuzz-$t.log"; then
    echo "fuzz_$t FAILED: see $build/fuzz-$t.log and $build/fuzz-crash/"; status=1
  fi
  # Fork mode prints a status line per job ("#N: cov: ... crash: 0/0/0 ..."):
  # the last one says how many inputs ran; none means the target never fuzzed.
  last=$(grep -E '^#[0-9]+: cov:' "$build/fuzz-$t.log" | tail -1 || true)
  if [ -z "$last" ]; then
    echo "fuzz_$t FAILED: no input was run, see $build/fuzz-$t.log"; status=1
  fi
  summary+=("fuzz_$t ${last:-nothing run}")
done
echo "== summary (${secs}s per target)"
printf '%s\n' "${summary[@]}"
exit $status
