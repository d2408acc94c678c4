/* idf2_text: the Mistral decoder of Idefics2 (SPEC §8): RMSNorm, rotate-half
 * RoPE, grouped-query causal attention with the sliding window, SwiGLU, the
 * final norm and lm_head, over a KV cache preallocated per sequence.
 *
 * Inputs are embeddings, so the caller merges image features (SPEC §7)
 * before the prompt pass.  The cache is float32, (layers, kv_heads, cap,
 * head_dim) for K and for V: 256 KiB per token for Mistral-7B. */
#ifndef VC_SYNTH_IDF2_TEXT_H
#define VC_SYNTH_IDF2_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/vc_err.h"
#include "synth/idf2_config.h"
#include "synth/idf2_weights.h"

struct idf2_kv {
    float *k, *v; /* owned: (layers, kv_heads, cap, head_dim) each */
    size_t cap;   /* positions allocated */
    size_t len;   /* positions filled: the next token's position */
    int layers, kv_heads, head_dim;
};

/* Allocates a cache for `cap` positions.  VC_EFATAL out_of_memory. */
enum vc_status idf2_kv_init(struct idf2_kv *kv, const struct idf2_text_config *cfg, size_t cap,
                            struct vc_err *err);
void idf2_kv_release(struct idf2_kv *kv);

/* out[n, Dt] = embed_tokens[ids]; VC_EUSAGE when an id is outside the
 * vocabulary. */
enum vc_status idf2_text_embed(const struct idf2_text_config *cfg,
                               const struct idf2_text_weights *w, const int32_t *ids, size_t n,
                               float *out, struct vc_err *err);

/* Runs n tokens at positions kv->len .. kv->len+n-1 through the decoder,
 * appending their keys and values to the cache.  x[n, Dt] holds the input
 * embeddings and is overwritten (it becomes scratch).  logits receives
 * [n, V] with all_logits, else [1, V] for the last token.  VC_EUSAGE when
 * the cache is full, VC_EFATAL out_of_memory. */
enum vc_status idf2_text_forward(const struct idf2_text_config *cfg,
                                 const struct idf2_text_weights *w, struct idf2_kv *kv, float *x,
                                 size_t n, float *logits, bool all_logits, int nt,
                                 struct vc_err *err);

#endif
