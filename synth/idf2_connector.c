/* idf2_connector: modality projection and perceiver resampler.
 *
 * Owns nothing: buffers come from the caller's scratch.  The perceiver
 * re-normalizes the ORIGINAL context in every layer and puts context rows
 * before latent rows in the key/value sequence (SPEC §6.2, pitfall 6). */
#include "idf2_connector.h"

#include <math.h>
#include <string.h>

void idf2_connector_scratch_carve(const struct idf2_model_config *cfg, size_t max_patches,
                                  struct idf2_carve *c, struct idf2_connector_scratch *s)
{
    const struct idf2_perceiver_config *pc = &cfg->perceiver;
    const size_t D = (size_t)pc->hidden_size, nl = (size_t)pc->n_latents;
    const size_t qw = (size_t)pc->n_heads * (size_t)pc->head_dim;
    const size_t kvw = (size_t)pc->n_kv_heads * (size_t)pc->head_dim;
    const size_t It = (size_t)cfg->text.intermediate_size;
    s->max_patches = max_patches;
    s->g = idf2_carve(c, IDF2_ROW_CHUNK, It * sizeof(float));
    s->u = idf2_carve(c, IDF2_ROW_CHUNK, It * sizeof(float));
    s->kvin = idf2_carve(c, max_patches + nl, D * sizeof(float));
    const size_t bl = IDF2_RESAMPLE_IMAGES * nl; /* latent rows of one call */
    s->zn = idf2_carve(c, bl, D * sizeof(float));
    s->q = idf2_carve(c, bl, qw * sizeof(float));
    s->k = idf2_carve(c, max_patches + nl, kvw * sizeof(float));
    s->v = idf2_carve(c, max_patches + nl, kvw * sizeof(float));
    s->att = idf2_carve(c, bl, qw * sizeof(float));
    s->t = idf2_carve(c, bl, D * sizeof(float));
    s->pg = idf2_carve(c, bl, 4 * D * sizeof(float));
    s->pu = idf2_carve(c, bl, 4 * D * sizeof(float));
}

size_t idf2_connector_ws(const struct idf2_ops *ops, const struct idf2_model_config *cfg,
                         const struct idf2_connector_weights *w, size_t max_patches, int nt)
{
    const struct idf2_perceiver_config *pc = &cfg->perceiver;
    const size_t nl = (size_t)pc->n_latents, bl = IDF2_RESAMPLE_IMAGES * nl;
    size_t need = ops->attention_ws(nl, max_patches + nl, pc->n_kv_heads, pc->head_dim, nt);
    idf2_ws_need_mm(&need, ops, IDF2_ROW_CHUNK, &w->mp_gate, nt);
    idf2_ws_need_mm(&need, ops, IDF2_ROW_CHUNK, &w->mp_up, nt);
    idf2_ws_need_mm(&need, ops, IDF2_ROW_CHUNK, &w->mp_down, nt);
    for (int l = 0; l < pc->depth; l++) {
        const struct idf2_perceiver_layer *L = &w->layers[l];
        idf2_ws_need_mm(&need, ops, bl, &L->q, nt);
        idf2_ws_need_mm(&need, ops, max_patches + nl, &L->k, nt);
        idf2_ws_need_mm(&need, ops, max_patches + nl, &L->v, nt);
        idf2_ws_need_mm(&need, ops, bl, &L->o, nt);
        idf2_ws_need_mm(&need, ops, bl, &L->gate, nt);
        idf2_ws_need_mm(&need, ops, bl, &L->up, nt);
        idf2_ws_need_mm(&need, ops, bl, &L->down, nt);
    }
    return need;
}

void idf2_connector_project(const struct idf2_exec *ex, const struct idf2_model_config *cfg,
                            const struct idf2_connector_weights *w,
                            struct idf2_connector_scratch *s, const float *vis, size_t P,
                            float *proj)
{
    const size_t Dv = (size_t)cfg->vision.hidden_size, Dt = (size_t)cfg->text.hidden_size;
    for (size_t i = 0; i < P; i += IDF2_ROW_CHUNK) {
        const size_t r = P - i < IDF2_ROW_CHUNK ? P - i : IDF2_ROW_CHUNK;
        idf2_swiglu(ex, proj + i * Dt, vis + i * Dv, r, &w->mp_gate, &w->mp_up, NULL, &w->mp_down,
                    cfg->text.hidden_act, s->g, s->u);
    }
}

/* One perceiver layer updating the latents z[n * n_lat, Dt] of n images,
 * image i's from its context ctx[i] (P[i] rows of Dt).  Keys and values
 * are per image; the latent-side matmuls take every image's rows at once. */
static void resample_layer(const struct idf2_exec *ex, const struct idf2_perceiver_config *pc,
                           const struct idf2_perceiver_layer *L, struct idf2_connector_scratch *s,
                           const float *const *ctx, const size_t *P, size_t n, float *z)
{
    const struct idf2_ops *o = ex->ops;
    const size_t D = (size_t)pc->hidden_size, nl = (size_t)pc->n_latents, rows = n * nl;
    const size_t hd = (size_t)pc->head_dim, kvw = (size_t)pc->n_kv_heads * hd;
    const size_t qw = (size_t)pc->n_heads * hd;
    const float eps = (float)pc->rms_norm_eps;

    o->rmsnorm(s->zn, z, rows, D, L->latents_norm, eps, ex);
    idf2_mm(ex, s->q, s->zn, rows, &L->q, NULL);
    for (size_t i = 0; i < n; i++) {
        o->rmsnorm(s->kvin, ctx[i], P[i], D, L->context_norm, eps, ex);
        memcpy(s->kvin + P[i] * D, s->zn + i * nl * D, nl * D * sizeof(float));
        idf2_mm(ex, s->k, s->kvin, P[i] + nl, &L->k, NULL);
        idf2_mm(ex, s->v, s->kvin, P[i] + nl, &L->v, NULL);
        const struct idf2_attn a = {
            .q = s->q + i * nl * qw,
            .q_stride = qw,
            .k = s->k,
            .v = s->v,
            .kv_head_stride = hd,
            .kv_row_stride = kvw,
            .n_q = nl,
            .n_kv = P[i] + nl,
            .n_heads = pc->n_heads,
            .n_kv_heads = pc->n_kv_heads,
            .head_dim = (int)hd,
            .scale = (float)(1.0 / sqrt((double)hd)), /* HF divides by sqrt(head_dim) */
        };
        o->attention(s->att + i * nl * qw, &a, ex);
    }
    idf2_mm(ex, s->t, s->att, rows, &L->o, NULL);
    o->add(z, s->t, rows * D, ex);

    o->rmsnorm(s->t, z, rows, D, L->post_attn_norm, eps, ex);
    idf2_swiglu(ex, s->t, s->t, rows, &L->gate, &L->up, NULL, &L->down, pc->hidden_act, s->pg,
                s->pu);
    o->add(z, s->t, rows * D, ex);
}

void idf2_connector_resample(const struct idf2_exec *ex, const struct idf2_model_config *cfg,
                             const struct idf2_connector_weights *w,
                             struct idf2_connector_scratch *s, const float *proj, const size_t *P,
                             size_t n, float *out)
{
    const struct idf2_perceiver_config *pc = &cfg->perceiver;
    const size_t D = (size_t)pc->hidden_size, nl = (size_t)pc->n_latents;
    for (size_t i0 = 0; i0 < n; i0 += IDF2_RESAMPLE_IMAGES) {
        const size_t k = idf2_min_sz(n - i0, IDF2_RESAMPLE_IMAGES);
        const float *ctx[IDF2_RESAMPLE_IMAGES];
        for (size_t i = 0; i < k; i++) {
            ctx[i] = proj;
            proj += P[i0 + i] * D;
        }
        float *z = out + i0 * nl * D;
        for (size_t i = 0; i < k; i++)
            memcpy(z + i * nl * D, w->latents, nl * D * sizeof(float));
        for (int l = 0; l < pc->depth; l++)
            resample_layer(ex, pc, &w->layers[l], s, ctx, P + i0, k, z);
        ex->ops->rmsnorm(z, z, k * nl, D, w->norm, (float)pc->rms_norm_eps, ex);
    }
}
