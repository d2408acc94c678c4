/* idf2_weights: the weight view of an Idefics2 checkpoint.  Maps the Hugging
 * Face tensor names (SPEC §1.2) onto per-layer structs, checks every
 * tensor's dtype and shape against the config (a mismatch is an error that
 * names the tensor), and converts at load to the requested compute dtype:
 *
 *   compute BF16: BF16 tensors stay mmapped (zero copy); F32/F16 tensors are
 *                 converted into owned buffers tensor by tensor, and the
 *                 source pages are dropped as we go, so the float32
 *                 idefics2-8b (34 GB) loads into ~17 GB;
 *   compute F32:  F32 tensors stay mmapped; BF16/F16 are widened exactly
 *                 (the golden tests' mode).
 *
 * Matrices are `struct idf2_w` (synth/idf2_backend.h) in the format of that
 * compute dtype.  Vectors (norm
 * weights, biases), the position-embedding table and the perceiver latents
 * are small and always float32.
 *
 * Optional cache: with IDF2_CACHE_USE, a BF16 load of a checkpoint that
 * needed conversion writes `<dir>/.vlmcurate-bf16.safetensors` (atomically,
 * only when the folder is writable; failure to write is not an error) and
 * later loads map it instead when it is newer than every source file.
 *
 * All data pointers are borrowed from the struct idf2_weights and valid
 * until idf2_weights_free.  This module never computes anything. */
#ifndef VC_SYNTH_IDF2_WEIGHTS_H
#define VC_SYNTH_IDF2_WEIGHTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/vc_err.h"
#include "synth/idf2_backend.h"
#include "synth/idf2_config.h"
#include "synth/safetensors.h"

struct idf2_vision_layer {
    const float *ln1_w, *ln1_b;         /* [Dv] layer_norm1 */
    struct idf2_w q, k, v, o;           /* [Dv, Dv] */
    const float *q_b, *k_b, *v_b, *o_b; /* [Dv] */
    const float *ln2_w, *ln2_b;         /* [Dv] layer_norm2 */
    struct idf2_w fc1;                  /* [Iv, Dv] */
    const float *fc1_b;                 /* [Iv] */
    struct idf2_w fc2;                  /* [Dv, Iv] */
    const float *fc2_b;                 /* [Dv] */
};

struct idf2_vision_weights {
    struct idf2_w patch;  /* [Dv, C*p*p]: conv weight [Dv, C, p, p] flattened (c, ky, kx) */
    const float *patch_b; /* [Dv] */
    const float *pos;     /* [N*N, Dv] position_embedding */
    struct idf2_vision_layer *layers;   /* [vision.num_hidden_layers] */
    const float *post_ln_w, *post_ln_b; /* [Dv] */
};

struct idf2_perceiver_layer {
    const float *latents_norm;   /* [Dt] input_latents_norm */
    const float *context_norm;   /* [Dt] input_context_norm */
    struct idf2_w q;             /* [Hp*dp, Dt] */
    struct idf2_w k, v;          /* [Kp*dp, Dt] */
    struct idf2_w o;             /* [Dt, Hp*dp] */
    const float *post_attn_norm; /* [Dt] post_attention_layernorm */
    struct idf2_w gate, up;      /* [4*Dt, Dt] */
    struct idf2_w down;          /* [Dt, 4*Dt] */
};

struct idf2_connector_weights {
    struct idf2_w mp_gate, mp_up;        /* [It, Dv] modality_projection */
    struct idf2_w mp_down;               /* [Dt, It] */
    const float *latents;                /* [n_lat, Dt] */
    struct idf2_perceiver_layer *layers; /* [perceiver.depth] */
    const float *norm;                   /* [Dt] */
};

struct idf2_text_layer {
    const float *attn_norm; /* [Dt] input_layernorm */
    struct idf2_w q;        /* [Ht*dt, Dt] */
    struct idf2_w k, v;     /* [Kt*dt, Dt] */
    struct idf2_w o;        /* [Dt, Ht*dt] */
    const float *mlp_norm;  /* [Dt] post_attention_layernorm */
    struct idf2_w gate, up; /* [It, Dt] */
    struct idf2_w down;     /* [Dt, It] */
};

struct idf2_text_weights {
    struct idf2_w embed;            /* [V, Dt] embed_tokens */
    struct idf2_text_layer *layers; /* [text.num_hidden_layers] */
    const float *norm;              /* [Dt] */
    struct idf2_w lm_head;          /* [V, Dt]; = embed when tied and absent */
};

struct idf2_weights_store; /* private: mappings and owned buffers */

struct idf2_weights {
    enum st_dtype compute; /* ST_F32 or ST_BF16 */
    struct idf2_vision_weights vision;
    struct idf2_connector_weights connector;
    struct idf2_text_weights text;
    /* What the load did, for reports. */
    size_t bytes_mapped; /* tensor bytes used in place from the mmap */
    size_t bytes_owned;  /* bytes of converted copies */
    int from_cache;      /* 1 when the bf16 cache was used */
    int cache_written;   /* 1 when this load wrote the cache */
    struct idf2_weights_store *store;
};

enum idf2_cache_mode {
    IDF2_CACHE_OFF = 0, /* never read or write the cache */
    IDF2_CACHE_USE,     /* read when fresh, write after a converting bf16 load */
};

struct idf2_weights_opts {
    enum st_dtype compute; /* ST_F32 or ST_BF16 */
    enum idf2_cache_mode cache;
};

/* Opens the safetensors of `dir` (single file or index + shards), checks
 * every tensor the model needs against `cfg`, converts as described above.
 * Tensors the model does not use are ignored.  Owned: idf2_weights_free.
 * Errors: VC_EUSAGE bad_checkpoint naming the tensor (missing, wrong
 * dtype, wrong shape), the safetensors errors, VC_EUSAGE out_of_memory when
 * the converted copies would not fit in this machine's RAM (checked before
 * converting anything), VC_EFATAL out_of_memory. */
enum vc_status idf2_weights_load(const char *dir, const struct idf2_model_config *cfg,
                                 const struct idf2_weights_opts *opts, struct idf2_weights **out,
                                 struct vc_err *err);
void idf2_weights_free(struct idf2_weights *w);

/* Same, over an already open tensor set (tests; no cache).  `set` must
 * outlive the weights. */
enum vc_status idf2_weights_from_set(const struct st_set *set, const struct idf2_model_config *cfg,
                                     enum st_dtype compute, struct idf2_weights **out,
                                     struct vc_err *err);

/* The text decoder's matrices in order (q, k, v, o, gate, up, down of each
 * layer, then the LM head) into out (NULL: count only); returns their
 * number.  What decode streams at every step. */
size_t idf2_weights_text_mats(struct idf2_weights *w, const struct idf2_model_config *cfg,
                              struct idf2_w **out);
/* The vision tower's and connector's matrices (patch embedding; q, k, v,
 * o, fc1, fc2 of each vision layer; the modality projection; q, k, v, o,
 * gate, up, down of each perceiver layer) into out (NULL: count only);
 * returns their number.  What every image pass reads at prefill-sized row
 * counts. */
size_t idf2_weights_image_mats(struct idf2_weights *w, const struct idf2_model_config *cfg,
                               struct idf2_w **out);
/* Whether p is the start of one of w's owned (converted, anonymous)
 * buffers rather than a place in a mapped file. */
bool idf2_weights_owns(const struct idf2_weights *w, const void *p);

/* Peak resident set size of this process so far, in bytes (getrusage). */
size_t idf2_peak_rss_bytes(void);
/* Current resident set size in bytes (/proc/self/statm); 0 if unknown. */
size_t idf2_rss_bytes(void);

#endif
