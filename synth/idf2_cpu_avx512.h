/* idf2_cpu_avx512: the AVX-512 (BF16 + VNNI) kernels of the CPU backend:
 * matmul over bf16 and ggml-block (Q8_0, Q4_0) weights, and flash-style
 * attention for the vision tower.
 *
 * Compiled with per-function target attributes, so the library builds
 * and runs anywhere; call only when idf2_avx512_usable() says the CPU has
 * AVX-512 F/BW/VL/BF16/VNNI.
 *
 * Numerics (batch invariance): output (m, n) of a matmul is a fixed chain
 * of operations on x's row m and w's row n; it does not depend on m, on the
 * other rows or on the thread count.  bf16: activations are split once per
 * call into bf16 hi + lo terms (16 mantissa bits), two vdpbf16ps per input
 * pair accumulate in float32; bf16x1 rounds them once (one vdpbf16ps).
 * Q8_0/Q4_0 run in synth/idf2_cpu_q8.c (its header gives their numerics). */
#ifndef VC_SYNTH_IDF2_CPU_AVX512_H
#define VC_SYNTH_IDF2_CPU_AVX512_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "synth/idf2_backend.h"

/* The backend row "avx512" (synth/idf2_backend.h): matmul for bf16, Q8_0
 * and Q4_0 and non-causal attention; the rest is inherited. */
extern const struct idf2_ops idf2_avx512_ops;
/* The row "avx512bf16": avx512 with bf16 activations in bf16 matmuls
 * (IDF2_MM_BF16X1); not exact to float32 (synth/idf2_backend.h). */
extern const struct idf2_ops idf2_avx512bf16_ops;

bool idf2_avx512_usable(void);

/* Weight layouts: bf16 row-major [N, K]; Q8_0 / Q4_0 rows of ceil(K/32)
 * ggml blocks (a half scale, then 32 int8 or 16 bytes of nibbles; the last
 * block zero-filled past K). */
enum idf2_mm_fmt {
    IDF2_MM_BF16,
    IDF2_MM_Q8_0,
    IDF2_MM_Q4_0,
    IDF2_MM_BF16X1, /* bf16 weights, activations rounded once to bf16 */
};

/* Workspace bytes of idf2_avx512_mm for m rows of K inputs at nt threads;
 * non-decreasing in m, K and nt. */
size_t idf2_avx512_mm_ws(size_t m, size_t K, enum idf2_mm_fmt f, int nt);
/* y[m][N] (+ bias) = x[m][K] W^T; x rows at x_stride floats.  ws: 64-byte
 * aligned, idf2_avx512_mm_ws bytes.  nt: OpenMP threads (>= 1). */
void idf2_avx512_mm(float *y, const float *x, size_t m, size_t x_stride, const void *w, size_t N,
                    size_t K, enum idf2_mm_fmt f, const float *bias, void *ws, int nt);

/* Non-causal attention with grouped K/V heads and an optional key mask,
 * tiled so that memory is O(n) (online softmax over blocks of 32 keys; no
 * n_q x n_kv score matrix):
 *   q: [n_q, n_heads * hd] at row stride q_stride floats (head h at
 *   columns h*hd); k, v: kv head g's row j at g*kv_head_stride +
 *   j*kv_row_stride; query head h uses kv head h / (n_heads / n_kv_heads);
 *   out: [n_q, n_heads * hd] contiguous; key_mask[j] == 0 removes key j
 *   (NULL: all keys); hd <= 128.
 * Float32 throughout (scores, exp, sums); a masked key gets probability 0,
 * as HF's additive float32-minimum mask gives whenever a row has an
 * unmasked key.  ws: idf2_avx512_attn_ws bytes (K transposed and V copied, O(n_kv),
 * plus per-thread tiles).  Each query row's result depends only on its own
 * q row, k, v and the mask (not on threads or the other queries). */
size_t idf2_avx512_attn_ws(size_t n_kv, int n_kv_heads, int hd, int nt);
void idf2_avx512_attention(float *out, const float *q, size_t q_stride, size_t n_q, const float *k,
                           const float *v, size_t kv_head_stride, size_t kv_row_stride, size_t n_kv,
                           int n_heads, int n_kv_heads, int hd, float scale,
                           const uint8_t *key_mask, void *ws, int nt);

#endif
