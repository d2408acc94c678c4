/* idf2_connector: modality projection and perceiver resampler.
 *
 * Owns only per-call scratch.  The perceiver re-normalizes the ORIGINAL
 * context in every layer and puts context rows before latent rows in the
 * key/value sequence (SPEC §6.2, pitfall 6).  Sizes: P real patches (at
 * most N*N of the vision table) and the config's widths, all range-checked
 * by idf2_config; products go through vc_malloc_array. */
#include "idf2_connector.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/vc_mem.h"
#include "synth/idf2_kernels.h"

static enum vc_status oom(struct vc_err *err, const char *what)
{
    return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "connector: %s", what);
}

enum vc_status idf2_connector_project(const struct idf2_model_config *cfg,
                                      const struct idf2_connector_weights *w, const float *vis,
                                      size_t P, float *proj, int nt, struct vc_err *err)
{
    const size_t I = (size_t)cfg->text.intermediate_size;
    float *g = vc_malloc_array(P, I * sizeof(float));
    float *u = vc_malloc_array(P, I * sizeof(float));
    bool ok = g && u &&
              idf2_swiglu(proj, vis, P, &w->mp_gate, &w->mp_up, &w->mp_down,
                          (int)cfg->text.hidden_act, g, u, nt);
    free(g);
    free(u);
    return ok ? VC_OK : oom(err, "modality projection scratch");
}

struct rs_scratch {
    float *kvin;  /* (P + n_lat, Dt): normalized context then normalized latents */
    float *q;     /* (n_lat, Hp*dp) */
    float *k, *v; /* (P + n_lat, Kp*dp) */
    float *att;   /* (n_lat, Hp*dp) */
    float *t;     /* (n_lat, Dt) */
    float *g, *u; /* (n_lat, 4*Dt) */
};

static void rs_free(struct rs_scratch *s)
{
    free(s->kvin);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->att);
    free(s->t);
    free(s->g);
    free(s->u);
}

/* One perceiver layer updating z[n_lat, Dt] from the context proj[P, Dt]. */
static bool resample_layer(const struct idf2_perceiver_config *pc,
                           const struct idf2_perceiver_layer *L, const float *proj, size_t P,
                           float *z, struct rs_scratch *s, int nt)
{
    const size_t D = (size_t)pc->hidden_size, nl = (size_t)pc->n_latents;
    const size_t hd = (size_t)pc->head_dim, kvw = (size_t)pc->n_kv_heads * hd;
    const float eps = (float)pc->rms_norm_eps;

    idf2_rmsnorm(s->kvin, proj, P, D, L->context_norm, eps);
    float *zn = s->kvin + P * D;
    idf2_rmsnorm(zn, z, nl, D, L->latents_norm, eps);
    if (!idf2_matmul(s->q, zn, nl, &L->q, NULL, nt) ||
        !idf2_matmul(s->k, s->kvin, P + nl, &L->k, NULL, nt) ||
        !idf2_matmul(s->v, s->kvin, P + nl, &L->v, NULL, nt))
        return false;
    struct idf2_attn a = {
        .q = s->q,
        .q_stride = (size_t)pc->n_heads * hd,
        .k = s->k,
        .v = s->v,
        .kv_head_stride = hd,
        .kv_row_stride = kvw,
        .n_q = nl,
        .n_kv = P + nl,
        .n_heads = pc->n_heads,
        .n_kv_heads = pc->n_kv_heads,
        .head_dim = (int)hd,
        .scale = (float)(1.0 / sqrt((double)hd)), /* HF divides by sqrt(head_dim) */
    };
    if (!idf2_attention(s->att, &a, nt) || !idf2_matmul(s->t, s->att, nl, &L->o, NULL, nt))
        return false;
    idf2_add(z, s->t, nl * D);

    idf2_rmsnorm(s->t, z, nl, D, L->post_attn_norm, eps);
    if (!idf2_swiglu(s->t, s->t, nl, &L->gate, &L->up, &L->down, (int)pc->hidden_act, s->g, s->u,
                     nt))
        return false;
    idf2_add(z, s->t, nl * D);
    return true;
}

enum vc_status idf2_connector_resample(const struct idf2_model_config *cfg,
                                       const struct idf2_connector_weights *w, const float *proj,
                                       size_t P, float *out, int nt, struct vc_err *err)
{
    const struct idf2_perceiver_config *pc = &cfg->perceiver;
    const size_t D = (size_t)pc->hidden_size, nl = (size_t)pc->n_latents;
    const size_t qw = (size_t)pc->n_heads * (size_t)pc->head_dim;
    const size_t kvw = (size_t)pc->n_kv_heads * (size_t)pc->head_dim;
    size_t n_kv;
    if (!vc_add_ok(P, nl, &n_kv))
        return oom(err, "context length");
    struct rs_scratch s = {
        .kvin = vc_malloc_array(n_kv, D * sizeof(float)),
        .q = vc_malloc_array(nl, qw * sizeof(float)),
        .k = vc_malloc_array(n_kv, kvw * sizeof(float)),
        .v = vc_malloc_array(n_kv, kvw * sizeof(float)),
        .att = vc_malloc_array(nl, qw * sizeof(float)),
        .t = vc_malloc_array(nl, D * sizeof(float)),
        .g = vc_malloc_array(nl, 4 * D * sizeof(float)),
        .u = vc_malloc_array(nl, 4 * D * sizeof(float)),
    };
    bool ok = s.kvin && s.q && s.k && s.v && s.att && s.t && s.g && s.u;
    if (ok)
        memcpy(out, w->latents, nl * D * sizeof(float));
    for (int l = 0; ok && l < pc->depth; l++)
        ok = resample_layer(pc, &w->layers[l], proj, P, out, &s, nt);
    if (ok)
        idf2_rmsnorm(out, out, nl, D, w->norm, (float)pc->rms_norm_eps);
    rs_free(&s);
    return ok ? VC_OK : oom(err, "perceiver scratch");
}
