/* idf2_connector: the Idefics2 connector (SPEC §6): the SwiGLU modality
 * projection from vision width to text width, then the perceiver resampler
 * that turns any number of patches into n_lat latents with GQA
 * cross-attention over [context; latents].
 *
 * Works on the real patches of each image only (padding context keys are
 * masked to exactly zero weight by HF, so leaving them out is the same
 * computation).  Buffers come from the caller's scratch.  The resampler
 * takes several images (a split image's crops, the images of the requests
 * admitted together) at once: each image's
 * latents attend to its own context only, and the matmuls on the latent
 * side (q, o and the MLP, whose weights are about 1.2 GB at idefics2-8b's
 * width) run over every image's rows in one call, so those weights are
 * read and packed once per call, not once per image; every operation is
 * row-wise and batch invariant, so each image's latents are bit for bit
 * those of resampling it alone. */
#ifndef VC_SYNTH_IDF2_CONNECTOR_H
#define VC_SYNTH_IDF2_CONNECTOR_H

#include <stddef.h>

#include "core/vc_err.h"
#include "synth/idf2_backend.h"
#include "synth/idf2_config.h"
#include "synth/idf2_weights.h"

/* Images whose latents share one pass through the resampler's matmuls: a
 * vision pass of 378 px images (6, from several requests) or a split
 * image's crops (4); about 11 MB of scratch per image at idefics2-8b. */
#define IDF2_RESAMPLE_IMAGES 8

/* The buffers of the connector, for images of up to max_patches. */
struct idf2_connector_scratch {
    size_t max_patches;
    float *g, *u;   /* (IDF2_ROW_CHUNK, It) modality projection */
    float *kvin;    /* (max_patches + n_lat, Dt): normalized context, then latents */
    float *zn;      /* (IDF2_RESAMPLE_IMAGES * n_lat, Dt): normalized latents */
    float *q;       /* (IDF2_RESAMPLE_IMAGES * n_lat, Hp*dp) */
    float *k, *v;   /* (max_patches + n_lat, Kp*dp): one image's */
    float *att;     /* (IDF2_RESAMPLE_IMAGES * n_lat, Hp*dp) */
    float *t;       /* (IDF2_RESAMPLE_IMAGES * n_lat, Dt) */
    float *pg, *pu; /* (IDF2_RESAMPLE_IMAGES * n_lat, 4*Dt) perceiver MLP */
};
void idf2_connector_scratch_carve(const struct idf2_model_config *cfg, size_t max_patches,
                                  struct idf2_carve *c, struct idf2_connector_scratch *s);
size_t idf2_connector_ws(const struct idf2_ops *ops, const struct idf2_model_config *cfg,
                         const struct idf2_connector_weights *w, size_t max_patches, int nt);

/* proj[P, Dt] = down(act(gate(vis)) * up(vis)) for vis[P, Dv]; act is the
 * TEXT hidden_act (SPEC pitfall 15). */
void idf2_connector_project(const struct idf2_exec *ex, const struct idf2_model_config *cfg,
                            const struct idf2_connector_weights *w,
                            struct idf2_connector_scratch *s, const float *vis, size_t P,
                            float *proj);

/* The latents of n images: out[i * n_lat .. (i + 1) * n_lat, Dt] =
 * perceiver(context = image i's P[i] rows of proj, which holds the images'
 * rows one after another); each P[i] <= s->max_patches. */
void idf2_connector_resample(const struct idf2_exec *ex, const struct idf2_model_config *cfg,
                             const struct idf2_connector_weights *w,
                             struct idf2_connector_scratch *s, const float *proj, const size_t *P,
                             size_t n, float *out);

#endif
