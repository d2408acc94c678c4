/* idf2_connector: the Idefics2 connector (SPEC §6): the SwiGLU modality
 * projection from vision width to text width, then the perceiver resampler
 * that turns any number of patches into n_lat latents with GQA
 * cross-attention over [context; latents].
 *
 * Works on the real patches of one image only (padding context keys are
 * masked to exactly zero weight by HF, so leaving them out is the same
 * computation).  Buffers come from the caller's scratch. */
#ifndef VC_SYNTH_IDF2_CONNECTOR_H
#define VC_SYNTH_IDF2_CONNECTOR_H

#include <stddef.h>

#include "core/vc_err.h"
#include "synth/idf2_backend.h"
#include "synth/idf2_config.h"
#include "synth/idf2_weights.h"

/* The buffers of one image's connector pass, for up to max_patches. */
struct idf2_connector_scratch {
    size_t max_patches;
    float *g, *u;   /* (IDF2_ROW_CHUNK, It) modality projection */
    float *kvin;    /* (max_patches + n_lat, Dt): normalized context, then latents */
    float *q;       /* (n_lat, Hp*dp) */
    float *k, *v;   /* (max_patches + n_lat, Kp*dp) */
    float *att;     /* (n_lat, Hp*dp) */
    float *t;       /* (n_lat, Dt) */
    float *pg, *pu; /* (n_lat, 4*Dt) perceiver MLP */
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

/* out[n_lat, Dt] = perceiver(context = proj[P, Dt]); P <= s->max_patches. */
void idf2_connector_resample(const struct idf2_exec *ex, const struct idf2_model_config *cfg,
                             const struct idf2_connector_weights *w,
                             struct idf2_connector_scratch *s, const float *proj, size_t P,
                             float *out);

#endif
