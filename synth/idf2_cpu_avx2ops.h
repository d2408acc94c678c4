/* idf2_cpu_avx2ops: the "avx2" row's operations other than matmul
 * (the matmuls are idf2_cpu_avx2mm.c and idf2_cpu_avx2q.c; synth/idf2_cpu_avx2.c holds the
 * row's table):
 *
 *  - flash-style attention in float32 with grouped K/V heads, causal,
 *    windowed or key-masked, in AVX2 + FMA: an online softmax over spans
 *    of keys, so memory is O(n_kv) (K transposed and V copied once per
 *    call, plus a small tile per thread), never an n_q x n_kv score matrix;
 *  - LayerNorm and RMSNorm: the reference's double sums in 4-lane ymm;
 *  - SiLU and GELU-tanh as x * sigmoid in ymm (other activations are
 *    inherited from "vec").
 *
 * Compiled with per-function target attributes; call only when
 * idf2_avx2_usable() says the CPU has AVX2 and FMA.  Every query row (and
 * every element) is computed by the same code in a fixed order whatever
 * the split over threads or the other rows of the call: results do not
 * depend on the thread count or the batch shape (synth/idf2_backend.h). */
#ifndef VC_SYNTH_IDF2_CPU_AVX2OPS_H
#define VC_SYNTH_IDF2_CPU_AVX2OPS_H

#include <stddef.h>

#include "synth/idf2_backend.h"

/* The row entries (struct idf2_ops's contracts).  Attention: a query row's
 * score for key j is one FMA chain over the head's dimensions in order,
 * its output a sum over spans of AV_SPAN keys counted from key 0, so the
 * row's result depends only on its own q row, the keys it may see and
 * their values; a masked key gets probability 0 (HF's float32-minimum mask
 * whenever a row has an unmasked key; a row with none gets zeros). */
void idf2_avx2ops_attention(float *out, const struct idf2_attn *a, const struct idf2_exec *ex);
size_t idf2_avx2ops_attention_ws(size_t n_q, size_t n_kv, int n_kv_heads, int head_dim, int nt);
void idf2_avx2ops_layernorm(float *y, const float *x, size_t n, size_t d, const float *w,
                            const float *b, float eps, const struct idf2_exec *ex);
void idf2_avx2ops_rmsnorm(float *y, const float *x, size_t n, size_t d, const float *w, float eps,
                          const struct idf2_exec *ex);
void idf2_avx2ops_act(float *x, size_t n, enum idf2_act act, const struct idf2_exec *ex);
void idf2_avx2ops_act_mul(float *g, const float *u, size_t n, enum idf2_act act,
                          const struct idf2_exec *ex);

#endif
