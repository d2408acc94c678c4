#!/usr/bin/env bash
# The engine figures of the README (*The Idefics2 engine*, "Figures"), best
# run on an otherwise idle machine.  Prints RESULT lines (grep RESULT).
#
#   BUILD=build CKPT=/path/to/idefics2-8b LLAMA_SRC=/path/to/llama.cpp \
#     SBS_WORK=/path/to/sbs tests/bench/figures-engine.sh 2>&1 | tee engine.out
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
#   LLAMA_SRC  a llama.cpp source tree for the side-by-side (the README's
#              figures: release b4748); without it part 2 is skipped
#   LLAMA_BUILD  optional: an existing llama.cpp build tree of LLAMA_SRC
#              (else built under SBS_WORK)
#   SBS_WORK   the side-by-side's work folder, ~27 GB free: llama.cpp's
#              build and the GGUF files, reused when present (default
#              BUILD/sidebyside)
# Total runtime: about 12 minutes on a 2-core machine (the engine part ~6
# min, the side-by-side ~6 min, not counting llama.cpp's build and the GGUF
# files on a first run); much of it is reading ~45 GB of weights that need
# not all fit in the page cache.
#
# 1. bench_engine on CKPT, 2 threads, kernels avx512bf16 unless stated:
#    378 px caption of 30 tokens at batch 1 and 16 (vision seconds,
#    captions/hour, batch-16 decode step / batch-1 step); 980 px as one
#    4900-patch vision pass and with image splitting (vision seconds, 5
#    passes); the 378 px vision pass and
#    prefill at 1 thread (thread scaling); the exact avx512 row at 378 px
#    batch 1 for the exact-vs-fast ratio.
# 2. tests/bench/sidebyside.sh: llama.cpp against bench_fast's Mistral-7B
#    matmul stack, alternating, with a read-bandwidth probe, all at 2
#    threads: decode of 16 tokens, prefill of 128 tokens, llama-bench 1
#    repetition.  Pairs: F16 vs our bf16 (exact hi+lo activations) and
#    bf16x1 (activations rounded once, as llama.cpp; the avx512bf16 row),
#    Q8_0 vs q8_0, Q4_0 vs q4_0.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
BUILD=${BUILD:-build}
B=$BUILD/tests/bench
for p in bench_fast bench_engine bench_mkcheckpoint; do
  [ -x "$B/$p" ] || { echo "build first: cmake --build $BUILD --target bench" >&2; exit 2; }
done
[ -n "${CKPT:-}" ] || { echo "set CKPT to a real-size idefics2-8b checkpoint folder" >&2; exit 2; }
run() { if [ -n "${CKPT_LOCK:-}" ]; then flock "$CKPT_LOCK" "$@"; else "$@"; fi; }
if [ ! -f "$CKPT/config.json" ]; then
  run "$B/bench_mkcheckpoint" "$CKPT" --dtype bf16 || exit 1
fi
echo "# $(date -u) load: $(cut -d' ' -f1-3 /proc/loadavg) commit: $(git rev-parse --short HEAD 2>/dev/null || echo -)"

# ---- 1. the engine on the real-size checkpoint (about 5 minutes) ----
E="$B/bench_engine $CKPT --compute bf16"
# The first request of a process maps the weights in (page faults): every
# figure below is taken from a later row (field() reads the last match).
t2=$(run $E --backend avx512bf16 --threads 2 --sizes 378 --batch 1,1,16 --max-new 30 | tee -a /dev/stderr)
t1=$(run $E --backend avx512bf16 --threads 1 --sizes 378 --batch 1,1 --max-new 2 | tee -a /dev/stderr)
run $E --backend avx512bf16 --threads 2 --sizes 980 --batch 1 --max-new 1 | tee -a /dev/stderr |
  awk '/^RESULT/ {for (i = 1; i <= NF; i++) if ($i ~ /^vision_s=/) print "RESULT engine vision_980px_one_pass_s " substr($i, 10)}'
run $E --backend avx512bf16 --threads 2 --sizes 980 --split --batch 1 --max-new 2 | tee -a /dev/stderr |
  awk '/^RESULT/ {for (i = 1; i <= NF; i++) if ($i ~ /^vision_s=/) print "RESULT engine vision_980px_split_s " substr($i, 10)}'
ex=$(run $E --backend avx512 --threads 2 --sizes 378 --batch 1,1 --max-new 2 | tee -a /dev/stderr)

# ---- 2. side by side (about 6 minutes; add 1 thread with SIDEBYSIDE_THREADS="1 2": +4) ----
if [ -n "${LLAMA_SRC:-}" ]; then
  SIDEBYSIDE_LLAMA_BUILD=${LLAMA_BUILD:-} SIDEBYSIDE_THREADS="2" SIDEBYSIDE_PP_THREADS="2" \
  SIDEBYSIDE_TG=16 SIDEBYSIDE_PP=128 SIDEBYSIDE_REPS=1 SIDEBYSIDE_PAIRS="F16:bf16x1" \
    tests/bench/sidebyside.sh "$LLAMA_SRC" "$BUILD" "${SBS_WORK:-$BUILD/sidebyside}" 1
else
  echo "# side by side skipped: set LLAMA_SRC (and SBS_WORK)"
fi

field() { # TEXT BATCH KEY: KEY's value on the last RESULT row of that batch size
  echo "$1" | awk -v b="batch=$2" -v k="$3=" '/^RESULT/ && index($0, " " b " ") {
    for (i = 1; i <= NF; i++) if (index($i, k) == 1) v = substr($i, length(k) + 1) } END { print v }'
}
ratio() { awk "BEGIN{ if ($2 > 0) printf \"%.2f\", $1 / $2; else print \"-\" }"; }
echo "RESULT engine vision_378px_s $(field "$t2" 1 vision_s) (target <= 1.5)"
echo "RESULT engine prefill_tps_378px_prompt $(field "$t2" 1 prefill_tps)"
echo "RESULT engine captions_per_hour_378px_batch16 $(field "$t2" 16 captions_per_hour) (target >= 1500)"
echo "RESULT engine decode_step_ms_batch1 $(field "$t2" 1 step_ms) batch16 $(field "$t2" 16 step_ms)"
echo "RESULT engine decode_step_batch16_over_batch1 $(ratio "$(field "$t2" 16 step_ms)" "$(field "$t2" 1 step_ms)") (target <= 1.5)"
echo "RESULT engine thread_scaling_vision_1to2 $(ratio "$(field "$t1" 1 vision_s)" "$(field "$t2" 1 vision_s)") (target >= 1.8)"
echo "RESULT engine thread_scaling_prefill_1to2 $(ratio "$(field "$t2" 1 prefill_tps)" "$(field "$t1" 1 prefill_tps)") (target >= 1.8)"
echo "RESULT engine fast_over_exact_vision_378px $(ratio "$(field "$ex" 1 vision_s)" "$(field "$t2" 1 vision_s)")"
echo "RESULT engine fast_over_exact_prefill $(ratio "$(field "$t2" 1 prefill_tps)" "$(field "$ex" 1 prefill_tps)")"
echo "# done $(date -u)"
