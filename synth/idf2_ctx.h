/* idf2_ctx: what an inference context (struct idf2_ctx, synth/idefics2.h)
 * holds.  Private to synth/: the generation module runs requests on it.
 * Owns one arena, allocated at creation through the backend row and carved
 * into every buffer a forward pass or a decode step touches, so nothing is
 * allocated per token. */
#ifndef VC_SYNTH_IDF2_CTX_H
#define VC_SYNTH_IDF2_CTX_H

#include "synth/idefics2.h"
#include "synth/idf2_backend.h"
#include "synth/idf2_connector.h"
#include "synth/idf2_model.h"
#include "synth/idf2_text.h"
#include "synth/idf2_vision.h"

struct idf2_ctx {
    const struct idf2_model *m;
    struct idf2_exec ex; /* the model's row, the threads, the op workspace */
    size_t n_slots, n_ctx, max_rows, max_patches;
    void *arena;
    size_t arena_bytes;
    struct idf2_vision_scratch vs;
    struct idf2_connector_scratch cs;
    struct idf2_text_scratch ts;
    float *vis, *proj;          /* (max_patches, Dv) and (max_patches, Dt): one image */
    float *x;                   /* (max_rows, Dt): a pass's input rows */
    float *logits;              /* (max_rows, V): a pass's logits */
    float *work;                /* (V): the logits being sampled */
    void *keys;                 /* V sort keys of the top-p sampler */
    int32_t *seq;               /* (n_slots, n_ctx): each slot's prompt and generated ids */
    struct idf2_kv *kv;         /* [n_slots] over the arena */
    struct idf2_text_seg *segs; /* [n_slots] a pass's segments */
    size_t *seg_slot;           /* [n_slots] the slot of each segment */
    struct idf2_ctx_stats stats;
    idf2_done_fn on_done; /* idf2_ctx_on_done */
    void *on_done_arg;
};

/* Bytes of one sort key of the sampler (idf2_generate.c owns the type). */
#define IDF2_SORTKEY_BYTES 8

#endif
