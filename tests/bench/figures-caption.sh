#!/usr/bin/env bash
# The caption-stage figures of the README (*Model stages*), best run on an
# otherwise idle machine.  Prints RESULT lines (grep RESULT).
#
#   BUILD=build CKPT=/path/to/idefics2-8b tests/bench/figures-caption.sh 2>&1 | tee caption.out
#
# Environment (relative paths are taken from the repository root):
#   BUILD      a Release build tree with the bench target built (default
#              build; scripts/bench.sh makes one, or
#              cmake --build BUILD --target bench)
#   CKPT       a real-size idefics2-8b checkpoint folder (required; ~17 GB,
#              bf16, mmapped), written first by bench_mkcheckpoint (random
#              weights) when it has no config.json
#   CKPT_LOCK  optional: a file to flock(1) around every use of CKPT, when
#              other jobs share it
#   SHARED     the project's shared/ folder with fixtures/idefics2-tiny
#              (default ../shared, as -DVC_SHARED_DIR)
# Work files go under ${TMPDIR:-/tmp}/bench-caption-PID, removed at the end.
# Total runtime: about 8 minutes on a 2-core machine, nearly all of it the
# real-size checkpoint (a 378 px caption costs it about 45 s of CPU (vision,
# prefill) at 2 threads; a page read by the engine with image splitting,
# five 980 px-class images, minutes).
#
# 1. The tiny fixture (seconds): captions through the caption stage vs one
#    direct idf2_ctx_generate call over the same 32 images (378 px, 16 new
#    tokens) at batch 1 and 16, best of 3, outputs compared token for token;
#    Tesseract vs engine pages/s on 2 pages of the shared-mime-info spec.
#    With a model this small the stage's fixed costs (shard read, the
#    fsynced cache line per caption, spill, commit) dominate: the overhead
#    figure that matters is the next one.
# 2. CKPT, 2 threads, 8 new tokens, one untimed warm-up request, 1
#    repetition: batch 1 over 1 image, batch 16 over 4 images (all four
#    decoded together in one call; 16 images would take ~6 min per path
#    on 2 cores); the 5 % overhead target applies.
# 3. Engine OCR pages/s on CKPT: 1 page, 2 new tokens, cut off after 200 s
#    (then no RESULT line).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
BUILD=${BUILD:-build}
SHARED=${SHARED:-../shared}
B=$BUILD/tests/bench/bench_caption
if [ ! -x "$B" ] || [ ! -x "$BUILD/tests/bench/bench_mkcheckpoint" ]; then
  echo "build first: cmake --build $BUILD --target bench" >&2; exit 2
fi
[ -n "${CKPT:-}" ] || { echo "set CKPT to a real-size idefics2-8b checkpoint folder" >&2; exit 2; }
run() { if [ -n "${CKPT_LOCK:-}" ]; then flock "$CKPT_LOCK" "$@"; else "$@"; fi; }
if [ ! -f "$CKPT/config.json" ]; then
  run "$BUILD/tests/bench/bench_mkcheckpoint" "$CKPT" --dtype bf16 || exit 1
fi
echo "# $(date -u) load: $(cut -d' ' -f1-3 /proc/loadavg) commit: $(git rev-parse --short HEAD 2>/dev/null || echo -)"
W=${TMPDIR:-/tmp}/bench-caption-$$
only() { grep -v '^\(map\|plan\|write\|finish\|global\)' ; }

# ---- 1. tiny fixture (about 20 s) ----
"$B" --model "$SHARED/fixtures/idefics2-tiny" --images 32 --batches 1,16 --max-new 16 \
  --reps 3 --threads 2 --pages 2 --work "$W/tiny" 2>&1 | only | sed 's/^RESULT /RESULT tiny /'

# ---- 2. real-size checkpoint, captions (about 5 minutes) ----
run "$B" --model "$CKPT" --compute bf16 --images 1 --batches 1 --max-new 8 --reps 1 \
  --threads 2 --no-ocr --work "$W/b1" 2>&1 | only | sed 's/^RESULT /RESULT 8b /'
run "$B" --model "$CKPT" --compute bf16 --images 4 --batches 16 --max-new 8 --reps 1 \
  --threads 2 --no-ocr --work "$W/b16" 2>&1 | only | sed 's/^RESULT /RESULT 8b /'

# ---- 3. real-size checkpoint, OCR (at most 200 s) ----
run timeout 200 "$B" --model "$CKPT" --compute bf16 --images 1 --batches "" --pages 1 \
  --ocr-max-new 2 --threads 2 --work "$W/ocr" 2>&1 | only | sed 's/^RESULT /RESULT 8b /'
rm -rf "$W"
