/* idf2_cpu_avx2mm: the "avx2" row's float32 and bf16 matmul (AVX2 + FMA,
 * synth/idf2_cpu_avx2.c lists it): an outer product of up to 6 activation
 * rows by 16 weight rows on weight panels, packed once at load
 * (idf2_avx2mm_pack) or per call into the workspace.
 *
 * Panel layout: weight rows 16g .. 16g+15 are panel g (rows past the
 * matrix zero), panels back to back, each K steps of 16 weights in turn.
 * A float32 step is the 16 rows' weights at k in row order; a bf16 step is
 * 8 dwords, dword j holding row j's bf16 in its low half and row j + 8's in
 * its high half, so that a shift and a mask give the two 8-row halves as
 * float32 in order.
 *
 * Numerics: bf16 weights are widened exactly; output (i, j) is summed over
 * K in blocks of IDF2_AVX2MM_KC inputs, each block one FMA chain over k in
 * order started from zero, the block sums added in order, then the bias:
 * the same for any row count, tile shape, thread count and layout (batch
 * invariance), within float32 accumulation error of the reference. */
#ifndef VC_SYNTH_IDF2_CPU_AVX2MM_H
#define VC_SYNTH_IDF2_CPU_AVX2MM_H

#include <stddef.h>

#include "synth/idf2_backend.h"

/* Inputs per block of a dot product: a panel's block (8 KiB bf16, 16 KiB
 * float32) and 6 activation rows' (6 KiB) stay in L1 while the block's
 * chain runs; 256 steps keep a chain's rounding error small. */
#define IDF2_AVX2MM_KC 256

/* The matmul entry for F32 and BF16 weights. */
void idf2_avx2mm_matmul(float *y, const float *x, size_t n, const struct idf2_w *w,
                        const float *bias, const struct idf2_exec *ex);
/* Workspace of that matmul (per-call packing of weights not packed at
 * load), the same for every n. */
size_t idf2_avx2mm_ws(const struct idf2_w *w, int nt);
/* Bytes of w in the panel layout; 0 for formats other than F32 and BF16. */
size_t idf2_avx2mm_pack_bytes(const struct idf2_w *w);
void idf2_avx2mm_pack(void *dst, const struct idf2_w *w, int nt);

#endif
