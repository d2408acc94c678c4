/* idf2_connector: the Idefics2 connector (SPEC §6): the SwiGLU modality
 * projection from vision width to text width, then the perceiver resampler
 * that turns any number of patches into n_lat latents with GQA
 * cross-attention over [context; latents].
 *
 * Works on the real patches of one image only (padding context keys are
 * masked to exactly zero weight by HF, so leaving them out is the same
 * computation).  Allocates its scratch per call. */
#ifndef VC_SYNTH_IDF2_CONNECTOR_H
#define VC_SYNTH_IDF2_CONNECTOR_H

#include <stddef.h>

#include "core/vc_err.h"
#include "synth/idf2_config.h"
#include "synth/idf2_weights.h"

/* proj[P, Dt] = down(act(gate(vis)) * up(vis)) for vis[P, Dv]; act is the
 * TEXT hidden_act (SPEC pitfall 15). */
enum vc_status idf2_connector_project(const struct idf2_model_config *cfg,
                                      const struct idf2_connector_weights *w, const float *vis,
                                      size_t P, float *proj, int nt, struct vc_err *err);

/* out[n_lat, Dt] = perceiver(context = proj[P, Dt]). */
enum vc_status idf2_connector_resample(const struct idf2_model_config *cfg,
                                       const struct idf2_connector_weights *w, const float *proj,
                                       size_t P, float *out, int nt, struct vc_err *err);

#endif
