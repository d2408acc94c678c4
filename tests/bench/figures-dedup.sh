#!/usr/bin/env bash
# The dedup figures of the README (*Deduplication*, "Cost, measured"), best
# run on an otherwise idle machine.  Prints RESULT lines (grep RESULT).
#
#   BUILD=build tests/bench/figures-dedup.sh 2>&1 | tee dedup.out
#
# Environment (relative paths are taken from the repository root):
#   BUILD      a Release build tree with the bench target built (default
#              build; scripts/bench.sh makes one, or
#              cmake --build BUILD --target bench)
#   SHARED     the project's shared/ folder with peers/pil_pipeline.py
#              (default ../shared, as -DVC_SHARED_DIR)
#   PYTHON     the peer's Python, with Pillow, numpy and scipy (default
#              /usr/bin/python3; VC_WITH_BENCH=1 scripts/install-deps.sh)
#   W          a work folder with ~10 GB free for the 100M reduce (default
#              /tmp/bench-dedup; emptied first, removed at the end)
#   SKIP_100M  1: leave out the reduce at 100M signatures (~3.5 min of the
#              total, ~8 GB of temporary files: the keys as text for sort,
#              sort's output and temporaries, the signature files); it is
#              also left out, saying so, when W has under 10 GB free
# Total runtime: about 7 minutes on a 2-core machine (pHash ~0.5 min, chain
# ~1.5 min, reduce 10M ~0.5 min and 100M ~3.5 min, whole run at 1M tiny
# samples ~1.5 min); about 3.5 minutes with SKIP_100M=1.
#
# (a) pHash signatures/s per core, reduced decode vs full decode + luma,
#     over the same 100 pictures 1280x960 as JPEG, PNG and WebP;
# (b) the chain ingest -> filter -> dedup -> write at --threads 1 vs
#     SHARED/peers/pil_pipeline.py on the same 3,000-sample demo shards, and
#     as a fraction of the C decode bound (probe + grey decode at the pHash's
#     scale of the pictures the filters keep), with write's verify as
#     shipped (full) and "header"; beside it the SHA-256 of the kept
#     pictures, which the chain computes twice on top of the decode;
# (c) the dedup reduce at 10M and 100M signatures (memory_mb 64) vs GNU
#     sort -S 64M of the same keys, signatures/s per core and peak RSS
#     (flat memory: the same RSS at 10x the input);
# (d) peak RSS and CPU of a whole run ingest -> dedup -> write over 1M tiny
#     samples (8x8 PNG + 8-word caption) at --threads 2, with and without
#     dedup.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
BUILD=${BUILD:-build}
SHARED=${SHARED:-../shared}
B=$BUILD/tests/bench/bench_dedup
CLI=$BUILD/vlmcurate
W=${W:-/tmp/bench-dedup}
if [ ! -x "$B" ] || [ ! -x "$CLI" ]; then
  echo "build first: cmake --build $BUILD --target bench" >&2; exit 2
fi
echo "# $(date -u) load: $(cut -d' ' -f1-3 /proc/loadavg) commit: $(git rev-parse --short HEAD 2>/dev/null || echo -)"
echo "# flags: $(grep -h -o -- '-O[0-3s]\|-march=[a-z0-9-]*\|-ffp-contract=[a-z]*' \
               "$BUILD/CMakeFiles/vc_core.dir/flags.make" | sort -u | xargs)"
rm -rf "$W"; mkdir -p "$W"
echo "== (a) pHash"; "$B" phash --images 100
echo "== (b) chain"; "$B" chain --samples 3000 --work "$W/chain" --bin "$CLI" \
  --python "${PYTHON:-/usr/bin/python3}" --peer "$SHARED/peers/pil_pipeline.py" 2> "$W/chain.err" \
  || tail -5 "$W/chain.err"
rm -rf "$W/chain"
sizes=10000000
free_kb=$(df -Pk "$W" | awk 'NR == 2 {print $4}')
if [ "${SKIP_100M:-0}" = 1 ]; then echo "== (c) reduce 100000000: left out (SKIP_100M=1)"
elif [ "${free_kb:-0}" -lt 10000000 ]; then
  echo "== (c) reduce 100000000: left out, $W has $((free_kb / 1048576)) GB free (needs 10)"
else sizes="$sizes 100000000"; fi
for n in $sizes; do
  echo "== (c) reduce $n"; "$B" reduce --sigs $n --mem 64 --work "$W/reduce" | tee "$W/red.out"
  awk -v n=$n '/dedup reduce/ {for (i=1;i<=NF;i++) { if ($i=="M") r=$(i-1); if ($i=="RSS") m=$(i+1) }}
               /GNU sort/ {for (i=1;i<=NF;i++) { if ($i=="M") s=$(i-1); if ($i=="RSS") q=$(i+1) }}
               END {printf "RESULT reduce_%d_msigs_per_core=%s reduce_%d_rss_mib=%s sort_%d_mkeys_per_core=%s sort_%d_rss_mib=%s\n", n, r, n, m, n, s, n, q}' "$W/red.out"
  rm -rf "$W/reduce"
done
echo "== (d) whole run, 1M tiny samples"; "$B" run --samples 1000000 --work "$W/run" --bin "$CLI"
rm -rf "$W"
