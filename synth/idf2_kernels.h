/* idf2_kernels: the numeric kernels of the Idefics2 engine, kept apart from
 * the model code (as ggml stands apart from llama.cpp) so that faster ones
 * can replace them without touching the forward pass.
 *
 * Activations are float32, row-major.  Weights are `struct idf2_w` in f32 or
 * bf16, [out, in] row-major (HF nn.Linear), and y = x W^T.  Every
 * reduction accumulates in float32 (8 partial sums, then a fixed-order
 * combine), so results are deterministic for any thread count: threads
 * split output rows, never a dot product.
 *
 * `nt` is the OpenMP thread count of the call (0: OpenMP's default).
 * Kernels never allocate except attention's per-thread score rows and the
 * matmul's per-thread bf16 widening buffer; they report nothing and cannot
 * fail other than by returning false on out-of-memory. */
#ifndef VC_SYNTH_IDF2_KERNELS_H
#define VC_SYNTH_IDF2_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "synth/idf2_weights.h"

/* float32 minimum: the mask value HF adds to masked scores (SPEC §10). */
#define IDF2_MASK_MIN (-3.4028234663852886e38f)

/* y[n, w->rows] = x[n, w->cols] W^T (+ bias[w->rows] when bias != NULL).
 * y must not alias x.  False on out-of-memory (bf16 widening buffers). */
bool idf2_matmul(float *y, const float *x, size_t n, const struct idf2_w *w, const float *bias,
                 int nt);

/* Row-wise LayerNorm over d: (x - mean) / sqrt(var + eps) * w + b, biased
 * variance.  In place allowed (y == x). */
void idf2_layernorm(float *y, const float *x, size_t n, size_t d, const float *w, const float *b,
                    float eps);
/* Row-wise RMSNorm: w * (x / sqrt(mean(x^2) + eps)).  In place allowed. */
void idf2_rmsnorm(float *y, const float *x, size_t n, size_t d, const float *w, float eps);

/* In place, n elements. */
void idf2_gelu_tanh(float *x, size_t n);
void idf2_gelu_erf(float *x, size_t n);
void idf2_silu(float *x, size_t n);
/* SwiGLU's middle: g[i] = act(g[i]) * u[i]; act is an enum idf2_act. */
void idf2_act_mul(float *g, const float *u, size_t n, int act);
/* The gated MLP of every block: y = down(act(gate x) * up x) for n rows.
 * g and u are caller scratch of n * width(gate) floats each; y may be x
 * (x is only read before y is written).  False when a matmul fails. */
bool idf2_swiglu(float *y, const float *x, size_t n, const struct idf2_w *gate,
                 const struct idf2_w *up, const struct idf2_w *down, int act, float *g, float *u,
                 int nt);
/* y[i] += x[i]. */
void idf2_add(float *y, const float *x, size_t n);

/* Numerically safe in-place softmax of one row (max subtracted, float32). */
void idf2_softmax(float *x, size_t n);

/* RoPE tables (SPEC §8.2): cos/sin[pos][dt] for positions pos0 ..
 * pos0+n-1, computed in float32 as HF does.  cos and sin are [n, head_dim]. */
void idf2_rope_table(float *cos_t, float *sin_t, size_t pos0, size_t n, int head_dim, double theta);
/* Applies rotate-half RoPE in place to x[n, n_heads*head_dim] (head h at
 * columns [h*head_dim, (h+1)*head_dim)), row i at table row i. */
void idf2_rope_apply(float *x, size_t n, int n_heads, int head_dim, const float *cos_t,
                     const float *sin_t);

/* Multi-head attention with grouped K/V heads.
 *   q: [n_q, n_heads*hd] rows at stride q_stride floats;
 *   k, v: per kv head g, rows j at k + g*kv_head_stride + j*kv_row_stride
 *         (the same layout for v), j in [0, n_kv);
 *   out: [n_q, n_heads*hd], contiguous.
 * Query head h uses kv head h / (n_heads / n_kv_heads) (repeat_kv).  Scores
 * are (q . k) * scale; with `causal`, query i (at absolute position
 * q_pos0 + i) sees keys j <= q_pos0 + i, and with window > 0 also
 * q_pos0 + i - j < window.  Keys with key_mask[j] == 0 (key_mask may be
 * NULL) get IDF2_MASK_MIN added, as HF does.  False on out-of-memory. */
struct idf2_attn {
    const float *q;
    size_t q_stride;
    const float *k, *v;
    size_t kv_head_stride, kv_row_stride;
    size_t n_q, n_kv;
    int n_heads, n_kv_heads, head_dim;
    float scale;
    bool causal;
    size_t q_pos0;
    size_t window;
    const uint8_t *key_mask;
};
bool idf2_attention(float *out, const struct idf2_attn *a, int nt);

/* Embedding rows ids[0..n) of table (f32 or bf16, [V, d]) into out[n, d]
 * as float32.  Ids must be in range (the caller checks). */
void idf2_embed_rows(float *out, const struct idf2_w *table, const int32_t *ids, size_t n);

#endif
