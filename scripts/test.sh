#!/usr/bin/env bash
# The whole test suite: installs missing Debian packages, builds the
# ASan+UBSan tree, the clang tree (compile only) and the optimised tree,
# runs the sanitizer pass over the fast suites, then every suite on the
# optimised build.  The last line is
# ctest's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
BUILD_TYPE=Debug scripts/build.sh build-asan -DVC_SANITIZE=ON
(cd build-asan && ctest -j"$(nproc)" --output-on-failure -L 'unit|golden|fuzz-regress|e2e' \
   -LE slow >asan-ctest.log 2>&1) || { cat build-asan/asan-ctest.log; echo "ASan+UBSan suite failed"; exit 1; }
grep -E 'tests passed|tests failed' build-asan/asan-ctest.log | sed 's/^/asan+ubsan: /'
# clang must build the whole tree warning-free too (-Werror): compile and
# link only, the suites run on the gcc trees (scripts/fuzz.sh runs the
# fuzz targets under clang's libFuzzer).  The benchmarks are outside `all`,
# so both compilers build the `bench` target explicitly: nothing runs them
# in CI, and they must not rot unnoticed.
CC=clang scripts/build.sh build-clang
cmake --build build-clang -j"$(nproc)" --target bench >&2
echo "clang: every target and benchmark builds with -Werror"
scripts/build.sh build
cmake --build build -j"$(nproc)" --target bench >&2
cd build && ctest -j"$(nproc)" --output-on-failure
