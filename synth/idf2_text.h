/* idf2_text: the Mistral decoder of Idefics2 (SPEC §8): RMSNorm, rotate-half
 * RoPE, grouped-query causal attention with the sliding window, SwiGLU, the
 * final norm and lm_head, over KV caches the caller owns.
 *
 * One forward pass runs several sequences at once ("segments": ragged
 * prompts being prefilled and single tokens being decoded, each with its
 * own cache): every weight matrix is read once for all their rows, while
 * attention runs per segment over that segment's cache.  By the backend's
 * batch invariance a sequence's results do not depend on the other
 * segments of the pass.
 *
 * Inputs are embeddings, so the caller merges image features (SPEC §7)
 * before the prompt pass.  A cache is float32, (layers, kv_heads, cap,
 * head_dim) for K and for V: 256 KiB per position for Mistral-7B. */
#ifndef VC_SYNTH_IDF2_TEXT_H
#define VC_SYNTH_IDF2_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/vc_err.h"
#include "synth/idf2_backend.h"
#include "synth/idf2_config.h"
#include "synth/idf2_weights.h"

/* One sequence's cache, over memory the caller owns. */
struct idf2_kv {
    float *k, *v; /* idf2_kv_floats(cfg, cap) each */
    size_t cap;   /* positions */
    size_t len;   /* positions filled: the next token's position */
};
/* Floats of K (or V) for `cap` positions; 0 on overflow. */
size_t idf2_kv_floats(const struct idf2_text_config *cfg, size_t cap);

/* RoPE tables (SPEC §8.2), cos/sin[pos][head_dim] for positions
 * [0, n_pos), computed in float32 as HF does.  Owned: idf2_rope_release. */
struct idf2_rope {
    float *cos_t, *sin_t;
    size_t n_pos;
};
enum vc_status idf2_rope_init(struct idf2_rope *r, const struct idf2_text_config *cfg, size_t n_pos,
                              struct vc_err *err);
void idf2_rope_release(struct idf2_rope *r);

/* The buffers of one forward pass of up to max_rows rows. */
struct idf2_text_scratch {
    size_t max_rows;
    float *h, *q, *k, *v, *att; /* (max_rows, width) */
    /* (max_rows, max(2 It, qw + 2 kvw)): the MLP's gate and up (side by
     * side per row from one matmul, or one after another), and before it a
     * pass's q|k|v rows from one matmul, split into q, k and v. */
    float *gu;
    bool apart;   /* a matmul per matrix even where stacked ones do (benchmarks compare) */
    int32_t *pos; /* (max_rows) */
};
void idf2_text_scratch_carve(const struct idf2_text_config *cfg, size_t max_rows,
                             struct idf2_carve *c, struct idf2_text_scratch *s);
size_t idf2_text_ws(const struct idf2_ops *ops, const struct idf2_text_config *cfg,
                    const struct idf2_text_weights *w, size_t max_rows, size_t max_ctx, int nt);

/* out[n, Dt] = embed_tokens[ids]; VC_EUSAGE when an id is outside the
 * vocabulary. */
enum vc_status idf2_text_embed(const struct idf2_exec *ex, const struct idf2_text_config *cfg,
                               const struct idf2_text_weights *w, const int32_t *ids, size_t n,
                               float *out, struct vc_err *err);

/* One sequence's share of a forward pass: n rows appended to kv at
 * positions kv->len .., and logits for its last n_logits rows (0..n). */
struct idf2_text_seg {
    struct idf2_kv *kv;
    size_t n, n_logits;
};

/* Runs the rows of x[sum n, Dt] (segment after segment) through the
 * decoder, appending keys and values to each segment's cache and advancing
 * its len.  x is overwritten (it becomes scratch).  logits receives, in
 * segment order, each segment's n_logits rows of V floats.  No two
 * segments may share a cache.
 * VC_EUSAGE when the rows exceed s->max_rows or a cache/the RoPE table is
 * full (nothing is then appended anywhere). */
enum vc_status idf2_text_forward(const struct idf2_exec *ex, const struct idf2_text_config *cfg,
                                 const struct idf2_text_weights *w, const struct idf2_rope *rope,
                                 struct idf2_text_scratch *s, const struct idf2_text_seg *segs,
                                 size_t n_seg, float *x, float *logits, struct vc_err *err);

/* Only the weight matmuls of a pass of R rows (each layer's q, k, v, o,
 * gate, up and down, stacked as a pass stacks them, with the MLP's
 * activation, then lm_head on every row) over the scratch's
 * buffers, whatever they hold: the floor under a pass's time that
 * bench_engine compares a decode step with, in the same process. */
void idf2_text_matmuls(const struct idf2_exec *ex, const struct idf2_text_weights *w, int n_layers,
                       struct idf2_text_scratch *s, size_t R, float *logits);

#endif
