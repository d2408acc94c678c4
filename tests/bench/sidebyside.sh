#!/usr/bin/env bash
# Side-by-side: llama.cpp against vlmcurate's AVX-512 kernels on the same
# Mistral-7B shapes, alternating in one window, with a read-bandwidth probe
# before every pair, at 1 and 2 threads.  Prints tokens/s and ratios.
#
# usage: tests/bench/sidebyside.sh LLAMA_SRC VLM_BUILD WORK [ROUNDS]
#   LLAMA_SRC  a llama.cpp source tree (the README's figures: release b4748,
#              commit c392e509), fetched by you: nothing is downloaded here;
#   VLM_BUILD  a vlmcurate build tree with the bench target built
#              (cmake --build VLM_BUILD --target bench_fast);
#   WORK       a folder with ~27 GB free (~42 GB with BF16): llama.cpp's
#              build, the GGUF files (F16 written by mk_mistral_gguf.py with
#              random weights, then Q8_0, Q4_0 and, with SIDEBYSIDE_BF16=1,
#              BF16 by llama-quantize); reused when present.
#   ROUNDS     alternations per test (default 1).
# Environment (defaults: the full comparison, about 30 minutes on 2 cores):
#   SIDEBYSIDE_LLAMA_BUILD  an existing llama.cpp build tree with
#                           bin/llama-bench and bin/llama-quantize (else
#                           WORK/llama-build, built from LLAMA_SRC);
#   SIDEBYSIDE_THREADS      decode thread counts ("1 2");
#   SIDEBYSIDE_PP_THREADS   prefill thread counts ("1 2"; set and empty:
#                           no prefill);
#   SIDEBYSIDE_TG, _PP      decode / prefill tokens (64, 512);
#   SIDEBYSIDE_REPS         llama-bench repetitions (2);
#   SIDEBYSIDE_TYPES        only the pairs of these llama types, e.g.
#                           "Q8_0 Q4_0" (default: all);
#   SIDEBYSIDE_PAIRS        extra LLAMA_TYPE:ours pairs, e.g. "F16:bf16x1"
#                           (our activations rounded once to bf16, as
#                           llama.cpp does; the avx512bf16 kernel row).
# Needs /usr/bin/python3 with numpy and sentencepiece (for gguf-py):
# VC_WITH_BENCH=1 scripts/install-deps.sh.
#
# What is compared: llama-bench tg64 (decode, batch 1) and pp512 (prefill)
# against `bench_fast model FMT`, the matmul stack of the same shapes with
# our kernels (32 layers of q, k, v, o, gate, up, down, and the 32000-row
# head once per token; attention, norms and rotary are not run: under 1 %
# of the work at these lengths, but llama.cpp's figures include them).
# Pairs: llama F16 (and BF16) against our bf16; Q8_0 against q8_0x16 (the
# engine's layout of --quant q8_0: the same blocks, 16 rows interleaved); Q4_0
# against q4_0x16 (llama-quantize keeps output.weight in Q6_K for Q4_0).
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,30p' "$0" >&2
  exit 2
fi
src=$(cd "$1" && pwd)
vlm=$(cd "$2" && pwd)
mkdir -p "$3"
work=$(cd "$3" && pwd)
rounds=${4:-1}
here=$(cd "$(dirname "$0")" && pwd)
fast=$vlm/tests/bench/bench_fast
[ -x "$fast" ] || { echo "sidebyside: build bench_fast first: $fast" >&2; exit 2; }

lb=${SIDEBYSIDE_LLAMA_BUILD:-$work/llama-build}
threads=${SIDEBYSIDE_THREADS:-1 2}
pp_threads=${SIDEBYSIDE_PP_THREADS-1 2}
tg=${SIDEBYSIDE_TG:-64}
pp=${SIDEBYSIDE_PP:-512}
reps=${SIDEBYSIDE_REPS:-2}
if [ ! -x "$lb/bin/llama-bench" ] || [ ! -x "$lb/bin/llama-quantize" ]; then
  echo "building llama.cpp from $src in $lb" >&2
  cmake -S "$src" -B "$lb" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=ON \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF >"$work/llama-cmake.log"
  cmake --build "$lb" -j"$(nproc)" --target llama-bench llama-quantize >"$work/llama-build.log"
fi

f16=$work/mistral7b-F16.gguf
if [ ! -s "$f16" ]; then
  echo "writing $f16" >&2
  /usr/bin/python3 "$here/mk_mistral_gguf.py" "$src" "$f16.tmp" f16
  mv "$f16.tmp" "$f16"
fi
has() { case " $1 " in *" $2 "*) return 0 ;; esac; return 1; }
types="Q8_0 Q4_0"
pairs="F16:bf16 Q8_0:q8_0x16 Q4_0:q4_0x16"
if [ "${SIDEBYSIDE_BF16:-0}" = 1 ]; then
  types="BF16 $types"
  pairs="F16:bf16 BF16:bf16 Q8_0:q8_0x16 Q4_0:q4_0x16"
fi
if [ -n "${SIDEBYSIDE_TYPES:-}" ]; then
  keep=""
  for pair in $pairs; do has "$SIDEBYSIDE_TYPES" "${pair%%:*}" && keep="$keep $pair"; done
  pairs=$keep
  types=$(for t in $types; do if has "$SIDEBYSIDE_TYPES" "$t"; then echo "$t"; fi; done)
fi
pairs="$pairs ${SIDEBYSIDE_PAIRS:-}"
for t in $types; do
  out=$work/mistral7b-$t.gguf
  if [ ! -s "$out" ]; then
    "$lb/bin/llama-quantize" "$f16" "$out.tmp" "$t" "$(nproc)" >"$work/quantize-$t.log" 2>&1
    mv "$out.tmp" "$out"
  fi
done

log=$work/sidebyside-$(date -u +%Y%m%dT%H%M%SZ).log
echo "# $(date -u) $(uname -n) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$log"

# llama-bench: one test, prints avg tokens/s.
llama_ts() { # FILE THREADS P N
  "$lb/bin/llama-bench" -m "$1" -t "$2" -p "$3" -n "$4" -r "$reps" -o csv 2>/dev/null |
    /usr/bin/python3 -c 'import csv,sys; r=list(csv.DictReader(sys.stdin)); print(r[-1]["avg_ts"])'
}
probe() { "$fast" probe --threads "$1" --seconds 3 | awk '/RESULT/ {print $7}'; }

# PATTERN WORD: the field after WORD on the lines matching PATTERN (bench_fast's
# RESULT lines carry key=value fields whose number changes between versions).
after_word() { awk "$1"' { for (i = 1; i < NF; i++) if ($i == w) print $(i + 1) }' w="$2"; }

declare -A best
note() { # KEY VALUE: keeps the best of the rounds
  local k=$1 v=$2
  if [ -z "${best[$k]:-}" ] || awk "BEGIN{exit !($v > ${best[$k]})}"; then best[$k]=$v; fi
  echo "$k $v" | tee -a "$log"
}

for r in $(seq "$rounds"); do
  for t in $(echo "$threads $pp_threads" | tr ' ' '\n' | sort -un); do
    do_tg=0; do_pp=0
    has "$threads" "$t" && do_tg=1
    has "$pp_threads" "$t" && do_pp=1
    for pair in $pairs; do
      lt=${pair%%:*}; ours=${pair##*:}
      note "probe_t$t" "$(probe "$t")"
      # A llama type paired twice is measured once.
      if [ -z "${best[llama_${lt}_done_t$t]:-}" ] || [ "$rounds" -gt 1 ]; then
        [ $do_tg = 1 ] && note "llama_${lt}_tg_t$t" "$(llama_ts "$work/mistral7b-$lt.gguf" "$t" 0 "$tg")"
        [ $do_pp = 1 ] && note "llama_${lt}_pp_t$t" "$(llama_ts "$work/mistral7b-$lt.gguf" "$t" "$pp" 0)"
        best[llama_${lt}_done_t$t]=1
      fi
      if [ "$lt" != BF16 ] || [ "$ours" != bf16 ]; then
        out=$("$fast" model "$ours" --threads "$t" --decode $((do_tg * 8)) --prefill $((do_pp * pp)))
        [ $do_tg = 1 ] && note "ours_${ours}_tg_t$t" "$(echo "$out" | after_word '/ decode tok/' tok/s)"
        [ $do_tg = 1 ] && note "ours_${ours}_gbs_t$t" "$(echo "$out" | after_word '/ decode tok/' GB/s)"
        [ $do_pp = 1 ] && note "ours_${ours}_pp_t$t" "$(echo "$out" | after_word '/prefill/' tok/s)"
      fi
    done
  done
done

ratio() { awk "BEGIN{ if ($2 > 0) printf \"%.2f\", $1 / $2; else print \"-\" }"; }
{
  echo
  echo "| test | threads | llama.cpp | tok/s | vlmcurate | tok/s | ratio | our read GB/s (% of probe) |"
  echo "|---|---|---|---|---|---|---|---|"
  for t in $(echo "$threads $pp_threads" | tr ' ' '\n' | sort -un); do
    for pair in $pairs; do
      has "$threads" "$t" || break
      lt=${pair%%:*}; ours=${pair##*:}
      l=${best[llama_${lt}_tg_t$t]:-0}; o=${best[ours_${ours}_tg_t$t]:-0}; g=${best[ours_${ours}_gbs_t$t]:-0}
      pct=$(awk "BEGIN{printf \"%.0f\", 100 * $g / ${best[probe_t$t]}}")
      echo "| decode $tg | $t | $lt | $l | $ours | $o | $(ratio "$o" "$l") | $g ($pct %) |"
      echo "RESULT sidebyside decode threads=$t llama_$lt=$l ours_$ours=$o ratio=$(ratio "$o" "$l") read_gbs=$g probe_pct=$pct" >&2
    done
    for pair in $pairs; do
      has "$pp_threads" "$t" || break
      lt=${pair%%:*}; ours=${pair##*:}
      l=${best[llama_${lt}_pp_t$t]:-0}; o=${best[ours_${ours}_pp_t$t]:-0}
      echo "| prefill $pp | $t | $lt | $l | $ours | $o | $(ratio "$o" "$l") | |"
      echo "RESULT sidebyside prefill$pp threads=$t llama_$lt=$l ours_$ours=$o ratio=$(ratio "$o" "$l")" >&2
    done
    echo "| read probe | $t | | | | | | ${best[probe_t$t]} |"
  done
} | tee -a "$log"
echo "log: $log" >&2
