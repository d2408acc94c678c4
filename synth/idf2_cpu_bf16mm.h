/* idf2_cpu_bf16mm: the compute-bound bf16 matmul of the AVX-512 row (more
 * than 16 activation rows: prefill, the vision tower, the connector; and
 * every row count, decode included, from weights packed at load) as an
 * outer product: weights packed (per call, or once
 * at load by idf2_bf16mm_pack) so that one zmm holds 16 output columns'
 * pair of inputs, activation pairs broadcast, so
 * a tile keeps every lane busy and needs no horizontal sum per output.
 *
 * Numerics: bit for bit those of synth/idf2_cpu_avx512.c's streaming tile
 * (what up to 16 rows run): per output, 16 partial sums (slice l takes
 * input pair 2l, 2l+1 of every 32-input chunk, in chunk order, one or two
 * vdpbf16ps per pair), folded in lane_sum's order (l + l+8, then + l+4,
 * + l+2, + l+1), then + bias.  Here slice l of 16 outputs is one zmm and
 * the fold is vertical adds, so output (i, j) is the same chain whatever
 * the row count, the tile or the thread count: the backend's batch
 * invariance holds across both kernels.
 *
 * Compiled with per-function target attributes; call only when
 * idf2_avx512_usable(). */
#ifndef VC_SYNTH_IDF2_CPU_BF16MM_H
#define VC_SYNTH_IDF2_CPU_BF16MM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Workspace bytes for m rows of K inputs at nt threads (two: hi + lo
 * activation terms, the exact format; else one bf16 term); non-decreasing
 * in m, K and nt. */
size_t idf2_bf16mm_ws(size_t m, size_t K, bool two, int nt);
/* y[m][N] (+ bias) = x[m][K] W^T for bf16 row-major W [N, K]; x rows at
 * x_stride floats; ws 64-byte aligned, idf2_bf16mm_ws bytes; nt >= 1.
 * wp: W packed by idf2_bf16mm_pack (then w is not read), or NULL (each
 * thread packs its share of w per call); the same bits either way. */
void idf2_bf16mm(float *y, const float *x, size_t m, size_t x_stride, const uint16_t *w,
                 const void *wp, size_t N, size_t K, bool two, const float *bias, void *ws, int nt);
/* What idf2_bf16mm_ep stores of each output v (bias added): v; SiLU(v) or
 * GELU-tanh(v), the bits of idf2_ops512_act; y + v, the bits of the add
 * after the matmul (a residual); SiLU(y) * v or GELU-tanh(y) * v, the
 * bits of idf2_ops512_act_mul (SwiGLU's middle, y the gate's product).
 * One pass over y instead of two. */
enum idf2_bf16mm_ep {
    IDF2_BF16MM_STORE,
    IDF2_BF16MM_SILU,
    IDF2_BF16MM_GELU_TANH,
    IDF2_BF16MM_ADD,
    IDF2_BF16MM_SILU_MUL,
    IDF2_BF16MM_GELU_TANH_MUL
};
/* idf2_bf16mm with the store ep (idf2_bf16mm is ep IDF2_BF16MM_STORE). */
void idf2_bf16mm_ep(float *y, const float *x, size_t m, size_t x_stride, const uint16_t *w,
                    const void *wp, size_t N, size_t K, bool two, const float *bias,
                    enum idf2_bf16mm_ep ep, void *ws, int nt);

/* Bytes of W [N, K] in the packed layout: N and K padded to 16 columns and
 * 32 inputs, 2 bytes each. */
size_t idf2_bf16mm_packed_bytes(size_t N, size_t K);
/* dst (64-byte aligned, idf2_bf16mm_packed_bytes) = W in the layout the
 * kernel packs per call, for all of K at once: per group of 16 columns,
 * per slice, chunk by chunk; nt threads split the groups. */
void idf2_bf16mm_pack(void *dst, const uint16_t *w, size_t N, size_t K, int nt);

#endif
