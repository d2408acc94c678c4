/* idf2_cpu_ops512: the avx512 backend rows' operations other than matmul
 * (synth/idf2_cpu_avx512.c holds the matmuls and the row tables):
 *
 *  - flash-style non-causal attention with grouped K/V heads and an
 *    optional key mask, tiled so that memory is O(n) (an online softmax over
 *    blocks of keys; no n_q x n_kv score matrix), in float32 for the exact
 *    "avx512" row and with bf16 dot products (q k^T and P V as vdpbf16ps,
 *    the softmax in float32) for the approximate "avx512bf16" row; causal
 *    or windowed attention goes to the vec row;
 *  - LayerNorm and RMSNorm (the reference's double sums, vectorised);
 *  - SiLU and GELU-tanh (x * sigmoid in zmm), other activations inherited.
 *
 * Compiled with per-function target attributes; call only when
 * idf2_avx512_usable() says the CPU has AVX-512 F/BW/VL/BF16/VNNI.  Each
 * operation splits whole rows over the threads and computes every row by
 * the same code, so results do not depend on the thread count or on the
 * other rows (synth/idf2_backend.h's batch invariance). */
#ifndef VC_SYNTH_IDF2_CPU_OPS512_H
#define VC_SYNTH_IDF2_CPU_OPS512_H

#include <stddef.h>
#include <stdint.h>

#include "synth/idf2_backend.h"

/* Non-causal attention on raw pointers (bench_fast times it):
 *   q: [n_q, n_heads * hd] at row stride q_stride floats (head h at
 *   columns h*hd); k, v: kv head g's row j at g*kv_head_stride +
 *   j*kv_row_stride; query head h uses kv head h / (n_heads / n_kv_heads);
 *   out: [n_q, n_heads * hd] contiguous; key_mask[j] == 0 removes key j
 *   (NULL: all keys); hd <= 128.
 * A masked key gets probability 0, as HF's additive float32-minimum mask
 * gives whenever a row has an unmasked key.  ws: the *_ws bytes (K and V
 * rearranged, O(n_kv), plus per-thread tiles).  Each query row's result
 * depends only on its own q row, k, v and the mask.
 * idf2_avx512_attention: float32 throughout.
 * idf2_avx512_attention_bf16: k, v and the probabilities rounded once to
 * bf16 (round to nearest even), q * scale as bf16 hi + lo terms, for the
 * two products, which accumulate in float32; max, exp and sums in float32
 * (about 1e-3 of the largest |v| off the float32 result). */
size_t idf2_avx512_attn_ws(size_t n_kv, int n_kv_heads, int hd, int nt);
void idf2_avx512_attention(float *out, const float *q, size_t q_stride, size_t n_q, const float *k,
                           const float *v, size_t kv_head_stride, size_t kv_row_stride, size_t n_kv,
                           int n_heads, int n_kv_heads, int hd, float scale,
                           const uint8_t *key_mask, void *ws, int nt);
size_t idf2_avx512_attn_bf16_ws(size_t n_kv, int n_kv_heads, int hd, int nt);
void idf2_avx512_attention_bf16(float *out, const float *q, size_t q_stride, size_t n_q,
                                const float *k, const float *v, size_t kv_head_stride,
                                size_t kv_row_stride, size_t n_kv, int n_heads, int n_kv_heads,
                                int hd, float scale, const uint8_t *key_mask, void *ws, int nt);

/* The row entries (struct idf2_ops). */
void idf2_ops512_attention(float *out, const struct idf2_attn *a, const struct idf2_exec *ex);
size_t idf2_ops512_attention_ws(size_t n_q, size_t n_kv, int n_kv_heads, int head_dim, int nt);
void idf2_ops512_attention_bf16(float *out, const struct idf2_attn *a, const struct idf2_exec *ex);
size_t idf2_ops512_attention_bf16_ws(size_t n_q, size_t n_kv, int n_kv_heads, int head_dim, int nt);
void idf2_ops512_layernorm(float *y, const float *x, size_t n, size_t d, const float *w,
                           const float *b, float eps, const struct idf2_exec *ex);
void idf2_ops512_rmsnorm(float *y, const float *x, size_t n, size_t d, const float *w, float eps,
                         const struct idf2_exec *ex);
void idf2_ops512_act(float *x, size_t n, enum idf2_act act, const struct idf2_exec *ex);
void idf2_ops512_act_mul(float *g, const float *u, size_t n, enum idf2_act act,
                         const struct idf2_exec *ex);

#endif
