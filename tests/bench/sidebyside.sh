#!/usr/bin/env bash
# Side-by-side: llama.cpp's whole model against vlmcurate's whole model
# (the engine's real load path, decode and prefill) and against our matmul
# stack alone, on the same Mistral-7B shapes, alternating in one window,
# with a read-bandwidth probe before every pair, at 1 and 2 threads.
# Prints tokens/s and ratios.
#
# usage: tests/bench/sidebyside.sh LLAMA_SRC VLM_BUILD WORK [ROUNDS]
#   LLAMA_SRC  a llama.cpp source tree (the README's figures: release b4748,
#              commit c392e509), fetched by you: nothing is downloaded here;
#   VLM_BUILD  a vlmcurate build tree with the bench target built
#              (cmake --build VLM_BUILD --target bench_fast bench_engine);
#   WORK       a folder with ~27 GB free (~42 GB with BF16): llama.cpp's
#              build, the GGUF files (F16 written by mk_mistral_gguf.py with
#              random weights, then Q8_0, Q4_0 and, with SIDEBYSIDE_BF16=1,
#              BF16 by llama-quantize); reused when present; with
#              SIDEBYSIDE_CKPT, also WORK/engine-cache (below, ~12 GB);
#   ROUNDS     alternations per test (default 1; best and median are
#              printed: give it several, see below).
# Environment (defaults: the full comparison, about 40 minutes on 2 cores):
#   SIDEBYSIDE_CKPT         a real-size idefics2-8b checkpoint folder (e.g.
#                           bench_mkcheckpoint's, random bf16 weights): our
#                           whole-model line; unset: that line is skipped;
#   SIDEBYSIDE_LLAMA_BUILD  an existing llama.cpp build tree with
#                           bin/llama-bench and bin/llama-quantize (else
#                           WORK/llama-build, built from LLAMA_SRC);
#   SIDEBYSIDE_THREADS      decode thread counts ("1 2");
#   SIDEBYSIDE_PP_THREADS   prefill thread counts ("1 2"; set and empty:
#                           no prefill);
#   SIDEBYSIDE_TG, _PP      decode / prefill tokens (64, 512);
#   SIDEBYSIDE_REPS         llama-bench repetitions (2);
#   SIDEBYSIDE_TYPES        only the pairs of these llama types, e.g.
#                           "Q8_0 Q4_0" (default: all; F16 pairs llama's
#                           F16 with our bf16 on the exact avx512 row);
#   SIDEBYSIDE_PAIRS        extra LLAMA_TYPE:ours pairs, e.g. "F16:bf16x1"
#                           (our activations rounded once to bf16, as
#                           llama.cpp does: the avx512bf16 kernel row, for
#                           the stack and the whole model).
# On a CPU without AVX-512 BF16/VNNI the engine runs its avx2 row: the
# whole-model lines use it, the read probe is `bench_kernels probe` (build
# bench_kernels), and the stack line (bench_fast's AVX-512 kernels) is left
# out.
# Needs /usr/bin/python3 with numpy and sentencepiece (for gguf-py):
# VC_WITH_BENCH=1 scripts/install-deps.sh.  Memory: one model at a time
# (llama-bench, the stack and the engine run one after another); the engine
# at bf16 needs ~16 GiB, quantized ~11 GiB.
#
# What is compared, per pair (llama type against our format):
#  - llama-bench tg TG and pp PP: llama.cpp's whole model;
#  - our whole model: `bench_engine CKPT --sizes 0,...` on the idefics2-8b
#    checkpoint, whose text decoder IS the Mistral-7B shape (32 layers,
#    hidden 4096, 32/8 heads, FFN 14336, untied head; vocabulary 32003
#    against 32000), loaded as `generate` loads it (weights copied into
#    huge pages, --quant q8_0|q4_0 for the quantized pairs) and run through
#    its real decode and prefill: embedding, RMS norms, RoPE, attention over
#    the KV cache, the head, sampling.  The vision tower is loaded but not
#    run (text-only prompts).  The quantized text weights are cached in
#    WORK/engine-cache (links to CKPT's files, so the engine's --cache
#    writes there and never into CKPT; a cache CKPT already holds is linked
#    and read; none is written where it would leave under 3 GB free); the
#    first run of a format pays its quantizing load (about a minute, 2-4 on
#    a busy machine), later runs map and copy it.  Each side loads as its
#    users get it by default: llama-bench maps the GGUF (page cache, 4 KiB
#    pages), the engine copies the weights into huge pages;
#  - our stack: `bench_fast model FMT`, the matmul stack of the same shapes
#    (q, k, v, o, gate, up, down of 32 layers and the 32000-row head once
#    per token; no attention, norms or rotary): the kernel-level figure.
# Ratios: ours_whole / llama (the headline, whole model against whole
# model) and ours_stack / llama (kernels against llama's whole model).
# Pairs: llama F16 (and BF16) against our bf16; Q8_0 against q8_0x16 (the
# engine's layout of --quant q8_0: the same blocks, 16 rows interleaved); Q4_0
# against q4_0x16 (llama-quantize keeps output.weight in Q6_K for Q4_0, our
# head is q4_0x16).  The weights are random in both (GGUF: random signs and
# mantissas at |w| in [2^-6, 2^-5); checkpoint: N(0, 0.02)); no kernel's
# speed depends on the values.
#
# What llama-bench times (examples/llama-bench/llama-bench.cpp at b4748):
# per test, one warm-up (tg: one token decoded; pp: the whole pp run), then
# per repetition the KV cache is cleared and the clock runs over: tg N, N
# single-token llama_decode calls at positions 0..N-1 (BOS first, then
# random ids; logits of that one token each), avg_ts = N / seconds,
# averaged over the repetitions; pp N, the N tokens (BOS + random ids) in
# one llama_decode (n_batch 2048, n_ubatch 512), logits of the last only.
# Our whole model matches it: one process runs rows of a raw text prompt
# (`--prompt-tokens`: exactly N tokens, BOS included): the PP-token prompt
# twice (the first row is the warm-up; the second row's prefill seconds are
# timed: the embedding and one pass over the PP rows in chunks of at most
# 512, logits of the last row), then a 1-token prompt (BOS) whose prefill
# is the decode warm-up, followed by TG decode steps at positions 1..TG,
# timed (decode_tps = TG / their seconds, each step: one row, the head, a
# greedy pick).  So the same work and context lengths as llama's, the
# decode shifted by one position; our KV cache holds f32 (llama's f16): at
# TG + 1 positions under 0.2 % of a step's bytes.  Each row has a new
# context, so the timed prefill first-touches its KV cache and scratch
# (~68k minor faults at 512 rows, well under 1 % of it), where llama's were
# touched by its warm-up.  Without prefill rows a
# 1-token row with one decode step runs first as the warm-up.  The stack:
# 8 decode steps and one PP-row pass, each after one untimed step.
#
# Why decode figures move on this kind of machine, and what the script does
# (measured 2026-12-07 on a 2-vCPU Zen 4 VM, llama.cpp b4748, Q8_0 tg32, 2
# threads, quiet slots):
#  - The memory bandwidth the VM gets moves, seconds and minutes apart; its
#    compute does not.  Six llama-bench runs back to back read 2.53-3.83
#    tokens/s with the GGUF resident, under 0.6 CPU seconds of any other
#    process per run, no steal, no reclaim or compaction (/proc/vmstat
#    pgscan_*, compact_*, thp_* unchanged), while a 1 s read probe between
#    them read 32-62 GB/s (the slowest run right after the slowest probe) and
#    the bf16 compute peak 869-938 GFLOP/s.  Both sides stream every weight
#    per token, so both move with it: two runs minutes apart compare two
#    machines.  So the sides alternate inside each round, every timed run has
#    a 1 s probe right before and after it (printed beside its figure), and
#    the summary gives best and median of each side over the rounds with the
#    ratio of both: run several rounds.
#  - Other processes' CPU time: both threads own both CPUs, so any other
#    runnable task stalls a thread team at its next barrier (a loop busy 20
#    ms in every 100, a fifth of one CPU, cost llama-bench 12-30 % and our
#    engine 28 %).  Each figure's line carries the CPU seconds everything
#    else used meanwhile (others_cpu_s) and the hypervisor's steal (steal_s).
#  - Page-cache residency: the VM runs DAMON (kdamond, physical addresses)
#    with a pageout scheme: file pages no process maps, idle for a minute,
#    are dropped (up to 128 MB/s).  A GGUF leaves the page cache a minute or
#    two after llama-bench exits, and the next run would read it from disk
#    during its load and warm-up (the warm-up decodes one token, so the timed
#    tokens find it resident either way).  The script reads each GGUF right
#    before its llama-bench run and notes its resident share (fincore, %),
#    and drops it from the page cache after llama's runs of that type (dd
#    iflag=nocache), as DAMON would a minute later: left resident, its 7.7 GB
#    cost our engine's copy its huge pages (5.67 of 7.04 GiB).
#  - First touch: the VM is a PVM guest with free-page reporting, so the
#    first pass over freshly mapped weights is slow (about 0.15 s per GiB,
#    README, "The decode step inside the whole model"): both sides time
#    after a warm-up pass.
#  - Not the cause: llama-bench with --mmap 0, its weights in 4 KiB pages or
#    in huge pages (GLIBC_TUNABLES=glibc.malloc.hugetlb=1: 7.3 GB faulted in
#    2 MiB pages), spread as much (2.82-4.63); the script keeps its defaults.
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,44p' "$0" >&2
  exit 2
fi
src=$(cd "$1" && pwd)
vlm=$(cd "$2" && pwd)
mkdir -p "$3"
work=$(cd "$3" && pwd)
rounds=${4:-1}
here=$(cd "$(dirname "$0")" && pwd)
fast=$vlm/tests/bench/bench_fast
kern=$vlm/tests/bench/bench_kernels
engine=$vlm/tests/bench/bench_engine
# Without AVX-512 BF16/VNNI (bench_fast's kernels) the engine runs its avx2
# row: no stack line, the probe from bench_kernels, the whole model on avx2.
x512=0
grep -qw avx512_bf16 /proc/cpuinfo && grep -qw avx512_vnni /proc/cpuinfo && x512=1
if [ $x512 = 1 ]; then
  [ -x "$fast" ] || { echo "sidebyside: build bench_fast first: $fast" >&2; exit 2; }
else
  [ -x "$kern" ] || { echo "sidebyside: build bench_kernels first: $kern" >&2; exit 2; }
  echo "sidebyside: no AVX-512 BF16/VNNI here: the avx2 row, no stack line" >&2
fi
ckpt=${SIDEBYSIDE_CKPT:-}
if [ -n "$ckpt" ]; then
  [ -x "$engine" ] || { echo "sidebyside: build bench_engine first: $engine" >&2; exit 2; }
  [ -f "$ckpt/config.json" ] || { echo "sidebyside: no checkpoint at $ckpt" >&2; exit 2; }
  ckpt=$(cd "$ckpt" && pwd)
  # The engine writes its caches next to the weights: a folder of links
  # to CKPT's files (and to caches CKPT already has) takes them instead.
  cache=$work/engine-cache
  mkdir -p "$cache"
  for f in "$ckpt"/* "$ckpt"/.vlmcurate-*.bin; do
    if [ -e "$f" ] && [ ! -e "$cache/${f##*/}" ] && [ ! -L "$cache/${f##*/}" ]; then
      ln -s "$f" "$cache/${f##*/}"
    fi
  done
fi

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
probe() {
  if [ $x512 = 1 ]; then
    "$fast" probe --threads "$1" --seconds "${2:-3}" | awk '/RESULT/ {print $7}'
  else
    "$kern" probe --threads "$1" | awk -v t="$1" '$1 == "probe" && $2 == t {print $4}'
  fi
}
# FILE: reads it through the page cache (header: this VM pages out file
# pages nobody maps after a minute) and prints its resident share in %.
resident() {
  cat "$1" >/dev/null
  fincore -b -n -o RES "$1" | awk -v size="$(stat -c %s "$1")" '{printf "%.0f", 100 * $1 / size}'
}
# The machine while a command runs: cpu_mark before it, cpu_others after it
# sets `others` to the CPU seconds that everything else used meanwhile (all
# CPUs' busy time in /proc/stat less this shell's children's, which the
# command added) and the steal time the hypervisor reported.  Both run in
# this shell, never in $(...): a subshell would count only its own children.
cpu_now() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $9}' /proc/stat; }
children_cpu() {
  times >"$work/.times"
  awk 'NR == 2 {for (i = 1; i <= 2; i++) {split($i, a, /[ms]/); t += a[1] * 60 + a[2]}; print t}' "$work/.times"
}
cpu_mark() {
  read -r busy0 steal0 < <(cpu_now)
  children_cpu >"$work/.kids0"
}
cpu_others() {
  local busy1 steal1 hz
  read -r busy1 steal1 < <(cpu_now)
  hz=$(getconf CLK_TCK)
  children_cpu >"$work/.kids1"
  others=$(awk -v b="$((busy1 - busy0))" -v s="$((steal1 - steal0))" -v k0="$(cat "$work/.kids0")" \
    -v k1="$(cat "$work/.kids1")" -v hz="$hz" \
    'BEGIN {o = b / hz - (k1 - k0); printf "others_cpu_s=%.1f steal_s=%.1f", o < 0 ? 0 : o, s / hz}')
}
# KEY VALUE CONDITIONS: one measurement (the log keeps its conditions).
declare -A vals
note() {
  local v=${2:-0}
  [ -n "$v" ] || v=0
  vals[$1]="${vals[$1]:-} $v"
  echo "$1 $v${3:+ $3}" | tee -a "$log"
}
best_of() { echo "${vals[$1]:-0}" | tr ' ' '\n' | awk 'NF {if ($1 > m) m = $1} END {printf "%.2f", m}'; }
median_of() {
  echo "${vals[$1]:-0}" | tr ' ' '\n' | awk 'NF' | sort -g |
    awk '{v[NR] = $1} END {printf "%.2f", NR == 0 ? 0 : NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
# KEY PROBE_T CMD...: runs CMD (printing one figure), with a 1 s read probe
# before and after it and the CPU the rest of the machine used meanwhile.
measured() {
  local key=$1 t=$2 p0 p1 v
  shift 2
  p0=$(probe "$t" 1)
  cpu_mark
  v=$("$@")
  cpu_others
  p1=$(probe "$t" 1)
  note "$key" "$v" "probe_gbs=$p0/$p1 $others"
}

# PATTERN WORD: the field after WORD on the lines matching PATTERN (bench_fast's
# RESULT lines carry key=value fields whose number changes between versions).
after_word() { awk "$1"' { for (i = 1; i < NF; i++) if ($i == w) print $(i + 1) }' w="$2"; }
# PATTERN KEY: KEY's value (KEY=value) on the last line matching PATTERN.
key_value() { awk "$1"' { for (i = 1; i <= NF; i++) if (index($i, k) == 1) v = substr($i, length(k) + 1) } END { print v }' k="$2="; }

# Our whole model for our format: the engine's --quant and kernel row (the
# avx512bf16 row rounds activations to bf16 once, as llama.cpp does, and is
# the one bench-engine's figures use; bf16 is the exact avx512 row).
engine_quant() {
  case $1 in bf16 | bf16x1) echo none ;; q8_0x16) echo q8_0 ;; q4_0x16) echo q4_0 ;; *) echo "" ;; esac
}
engine_backend() {
  if [ $x512 = 0 ]; then echo avx2; elif [ "$1" = bf16 ]; then echo avx512; else echo avx512bf16; fi
}
# QUANT: --cache, unless writing that format's cache would leave under
# 3 GB free (then the load quantizes every time, about a minute more).
cache_opt() {
  local need=0 free
  case $1 in q8_0) need=8 ;; q4_0) need=5 ;; esac
  free=$(df -BG --output=avail "$cache" | tail -1 | tr -dc 0-9)
  if [ "$need" -gt 0 ] && [ ! -e "$cache/.vlmcurate-$1.bin" ] && [ "$free" -lt $((need + 3)) ]; then
    echo "sidebyside: ${free} GB free in $cache: $1 quantized at load, no cache written" >&2
    return
  fi
  echo --cache
}
# THREADS QUANT DO_TG DO_PP BACKEND: bench_engine's output, rows as
# llama-bench times them (header comment).
engine_run() {
  local sizes="" prompts="" news=""
  if [ "$4" = 1 ]; then sizes="0,0"; prompts="$pp,$pp"; news="1,1"; else sizes="0"; prompts="1"; news="2"; fi
  if [ "$3" = 1 ]; then sizes="$sizes,0"; prompts="$prompts,1"; news="$news,$((tg + 1))"; fi
  local quant=() c
  [ "$2" != none ] && quant=(--quant "$2")
  c=$(cache_opt "$2")
  "$engine" "$cache" --compute bf16 --backend "$5" --threads "$1" --weights copy ${c:+"$c"} "${quant[@]}" --batch 1 \
    --sizes "$sizes" --prompt-tokens "$prompts" --max-new "$news"
}

# Our whole model: one engine run gives the decode and the prefill figure,
# each noted with the run's conditions.
whole() { # THREADS FORMAT DO_TG DO_PP
  local p0 p1 out q
  q=$(engine_quant "$2")
  p0=$(probe "$1" 1)
  cpu_mark
  out=$(engine_run "$1" "$q" "$3" "$4" "$(engine_backend "$2")" 2>&1) || echo "$out" >&2
  cpu_others
  p1=$(probe "$1" 1)
  echo "$out" | grep -E '^(sidebyside:|load|text weights|kernels|RESULT)' >>"$log" || true
  if [ "$3" = 1 ]; then
    note "whole_$2_tg_t$1" "$(echo "$out" | key_value '/^RESULT engine .* prompt_tokens=1 /' decode_tps)" "probe_gbs=$p0/$p1 $others"
    note "whole_$2_steps_t$1" "$(echo "$out" | key_value '/^RESULT engine .* prompt_tokens=1 /' decode_passes)"
  fi
  [ "$4" = 1 ] && note "whole_$2_pp_t$1" "$(echo "$out" | key_value "/^RESULT engine .* prompt_tokens=$pp /" prefill_tps)" "probe_gbs=$p0/$p1 $others"
  return 0
}

# Rounds alternate the sides: per pair llama.cpp, our stack, our whole model.
for _ in $(seq "$rounds"); do
  for t in $(echo "$threads $pp_threads" | tr ' ' '\n' | sort -un); do
    do_tg=0; do_pp=0
    has "$threads" "$t" && do_tg=1
    has "$pp_threads" "$t" && do_pp=1
    declare -A llama_done=()
    for pair in $pairs; do
      lt=${pair%%:*}; ours=${pair##*:}
      note "probe_t$t" "$(probe "$t")"
      # A llama type paired twice is measured once a round.
      if [ -z "${llama_done[$lt]:-}" ]; then
        gguf=$work/mistral7b-$lt.gguf
        note "resident_$lt" "$(resident "$gguf")"
        [ $do_tg = 1 ] && measured "llama_${lt}_tg_t$t" "$t" llama_ts "$gguf" "$t" 0 "$tg"
        [ $do_pp = 1 ] && measured "llama_${lt}_pp_t$t" "$t" llama_ts "$gguf" "$t" "$pp" 0
        dd if="$gguf" iflag=nocache count=0 status=none
        llama_done[$lt]=1
      fi
      if [ $x512 = 1 ] && { [ "$lt" != BF16 ] || [ "$ours" != bf16 ]; }; then
        out=$("$fast" model "$ours" --threads "$t" --decode $((do_tg * 8)) --prefill $((do_pp * pp)))
        [ $do_tg = 1 ] && note "ours_${ours}_tg_t$t" "$(echo "$out" | after_word '/ decode tok/' tok/s)"
        [ $do_tg = 1 ] && note "ours_${ours}_gbs_t$t" "$(echo "$out" | after_word '/ decode tok/' GB/s)"
        [ $do_pp = 1 ] && note "ours_${ours}_pp_t$t" "$(echo "$out" | after_word '/prefill/' tok/s)"
      fi
      if [ -n "$ckpt" ] && [ -n "$(engine_quant "$ours")" ] && { [ "$lt" != BF16 ] || [ "$ours" != bf16 ]; }; then
        whole "$t" "$ours" $do_tg $do_pp
      fi
    done
  done
done

ratio() { awk "BEGIN{ if ($1 > 0 && $2 > 0) printf \"%.2f\", $1 / $2; else print \"-\" }"; }
# TEST PP_OR_TG THREADS LLAMA_TYPE OURS: a table row and a RESULT line, best
# and median over the rounds of each side.
summary() {
  local kind=$1 t=$3 lt=$4 ours=$5 l lm w wm o g pct extra=""
  l=$(best_of "llama_${lt}_$2_t$t"); lm=$(median_of "llama_${lt}_$2_t$t")
  w=$(best_of "whole_${ours}_$2_t$t"); wm=$(median_of "whole_${ours}_$2_t$t")
  o=$(best_of "ours_${ours}_$2_t$t")
  local label="$kind"
  [ "$2" = tg ] && label="decode $tg"
  local cells="| $label | $t | $lt | $l / $lm | $ours | $w / $wm | $(ratio "$w" "$l") / $(ratio "$wm" "$lm") | $o | $(ratio "$o" "$l") |"
  if [ "$2" = tg ]; then
    g=$(best_of "ours_${ours}_gbs_t$t")
    pct=$(awk "BEGIN{printf \"%.0f\", 100 * $g / $(best_of "probe_t$t")}")
    cells="$cells $g ($pct %) |"
    extra=" read_gbs=$g probe_pct=$pct"
  else
    cells="$cells |"
  fi
  echo "$cells"
  echo "RESULT sidebyside $kind threads=$t llama_$lt=$l llama_${lt}_median=$lm whole_$ours=$w whole_${ours}_median=$wm ratio_whole=$(ratio "$w" "$l") ratio_whole_median=$(ratio "$wm" "$lm") stack_$ours=$o ratio_stack=$(ratio "$o" "$l")$extra rounds=$rounds" >&2
}
{
  echo
  echo "| test | threads | llama.cpp | tok/s best / median | vlmcurate | whole model tok/s best / median | whole / llama best / median | stack tok/s | stack / llama | stack read GB/s (% of probe) |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for t in $(echo "$threads $pp_threads" | tr ' ' '\n' | sort -un); do
    for pair in $pairs; do
      has "$threads" "$t" || break
      summary "decode" tg "$t" "${pair%%:*}" "${pair##*:}"
    done
    for pair in $pairs; do
      has "$pp_threads" "$t" || break
      summary "prefill$pp" pp "$t" "${pair%%:*}" "${pair##*:}"
    done
    echo "| read probe (3 s before each pair) | $t | | | | | | | | $(best_of "probe_t$t") best, $(median_of "probe_t$t") median |"
  done
} | tee -a "$log"
echo "log: $log" >&2
