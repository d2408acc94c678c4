/* idf2_text: the Mistral decoder over a preallocated KV cache.
 *
 * Owns the cache buffers (struct idf2_kv) and per-call scratch.  Never
 * grows the cache: a sequence longer than its cap is an error, so the
 * memory of a request is known when it starts.  Query head h reads kv head
 * h / (Ht / Kt) (SPEC pitfall 7); RoPE pairs j with j + dt/2 (pitfall 8). */
#include "idf2_text.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/vc_mem.h"
#include "synth/idf2_kernels.h"

static enum vc_status oom(struct vc_err *err, const char *what)
{
    return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "text: %s", what);
}

enum vc_status idf2_kv_init(struct idf2_kv *kv, const struct idf2_text_config *cfg, size_t cap,
                            struct vc_err *err)
{
    memset(kv, 0, sizeof *kv);
    size_t per_pos = (size_t)cfg->num_hidden_layers * (size_t)cfg->num_key_value_heads *
                     (size_t)cfg->head_dim,
           n;
    if (!vc_mul_ok(per_pos, cap, &n))
        return oom(err, "KV cache size");
    kv->k = vc_malloc_array(n, sizeof(float));
    kv->v = vc_malloc_array(n, sizeof(float));
    if (!kv->k || !kv->v) {
        idf2_kv_release(kv);
        return oom(err, "KV cache");
    }
    kv->cap = cap;
    kv->layers = cfg->num_hidden_layers;
    kv->kv_heads = cfg->num_key_value_heads;
    kv->head_dim = cfg->head_dim;
    return VC_OK;
}

void idf2_kv_release(struct idf2_kv *kv)
{
    free(kv->k);
    free(kv->v);
    memset(kv, 0, sizeof *kv);
}

enum vc_status idf2_text_embed(const struct idf2_text_config *cfg,
                               const struct idf2_text_weights *w, const int32_t *ids, size_t n,
                               float *out, struct vc_err *err)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= cfg->vocab_size)
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint,
                              "token id %d is outside the model's vocabulary of %d", (int)ids[i],
                              cfg->vocab_size);
    idf2_embed_rows(out, &w->embed, ids, n);
    return VC_OK;
}

struct tx_scratch {
    float *h, *q, *k, *v, *att, *g, *u, *cos_t, *sin_t;
};

static void tx_free(struct tx_scratch *s)
{
    free(s->h);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->att);
    free(s->g);
    free(s->u);
    free(s->cos_t);
    free(s->sin_t);
}

/* Copies this step's k or v rows (n, Kt*dt) into the cache of layer l. */
static void kv_store(const struct idf2_kv *kv, float *cache, int l, const float *src, size_t n)
{
    const size_t hd = (size_t)kv->head_dim;
    for (int g = 0; g < kv->kv_heads; g++) {
        float *dst =
            cache + (((size_t)l * (size_t)kv->kv_heads + (size_t)g) * kv->cap + kv->len) * hd;
        for (size_t i = 0; i < n; i++)
            memcpy(dst + i * hd, src + (i * (size_t)kv->kv_heads + (size_t)g) * hd,
                   hd * sizeof(float));
    }
}

static bool text_layer(const struct idf2_text_config *cfg, const struct idf2_text_layer *L,
                       struct idf2_kv *kv, int l, float *x, size_t n, struct tx_scratch *s, int nt)
{
    const size_t D = (size_t)cfg->hidden_size;
    const int hd = cfg->head_dim;
    const float eps = (float)cfg->rms_norm_eps;

    idf2_rmsnorm(s->h, x, n, D, L->attn_norm, eps);
    if (!idf2_matmul(s->q, s->h, n, &L->q, NULL, nt) ||
        !idf2_matmul(s->k, s->h, n, &L->k, NULL, nt) ||
        !idf2_matmul(s->v, s->h, n, &L->v, NULL, nt))
        return false;
    idf2_rope_apply(s->q, n, cfg->num_attention_heads, hd, s->cos_t, s->sin_t);
    idf2_rope_apply(s->k, n, cfg->num_key_value_heads, hd, s->cos_t, s->sin_t);
    kv_store(kv, kv->k, l, s->k, n);
    kv_store(kv, kv->v, l, s->v, n);
    const size_t layer_off = (size_t)l * (size_t)kv->kv_heads * kv->cap * (size_t)hd;
    struct idf2_attn a = {
        .q = s->q,
        .q_stride = (size_t)cfg->num_attention_heads * (size_t)hd,
        .k = kv->k + layer_off,
        .v = kv->v + layer_off,
        .kv_head_stride = kv->cap * (size_t)hd,
        .kv_row_stride = (size_t)hd,
        .n_q = n,
        .n_kv = kv->len + n,
        .n_heads = cfg->num_attention_heads,
        .n_kv_heads = cfg->num_key_value_heads,
        .head_dim = hd,
        .scale = (float)(1.0 / sqrt((double)hd)), /* HF divides by sqrt(head_dim) */
        .causal = true,
        .q_pos0 = kv->len,
        .window = (size_t)cfg->sliding_window,
    };
    if (!idf2_attention(s->att, &a, nt) || !idf2_matmul(s->h, s->att, n, &L->o, NULL, nt))
        return false;
    idf2_add(x, s->h, n * D);

    idf2_rmsnorm(s->h, x, n, D, L->mlp_norm, eps);
    if (!idf2_swiglu(s->h, s->h, n, &L->gate, &L->up, &L->down, (int)cfg->hidden_act, s->g, s->u,
                     nt))
        return false;
    idf2_add(x, s->h, n * D);
    return true;
}

enum vc_status idf2_text_forward(const struct idf2_text_config *cfg,
                                 const struct idf2_text_weights *w, struct idf2_kv *kv, float *x,
                                 size_t n, float *logits, bool all_logits, int nt,
                                 struct vc_err *err)
{
    if (n == 0)
        return VC_OK;
    if (n > kv->cap - kv->len)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "text: %zu tokens do not fit the %zu-position cache (%zu used)", n,
                          kv->cap, kv->len);
    const size_t D = (size_t)cfg->hidden_size, I = (size_t)cfg->intermediate_size;
    const size_t hd = (size_t)cfg->head_dim;
    const size_t qw = (size_t)cfg->num_attention_heads * hd,
                 kvw = (size_t)cfg->num_key_value_heads * hd;
    struct tx_scratch s = {
        .h = vc_malloc_array(n, D * sizeof(float)),
        .q = vc_malloc_array(n, qw * sizeof(float)),
        .k = vc_malloc_array(n, kvw * sizeof(float)),
        .v = vc_malloc_array(n, kvw * sizeof(float)),
        .att = vc_malloc_array(n, qw * sizeof(float)),
        .g = vc_malloc_array(n, I * sizeof(float)),
        .u = vc_malloc_array(n, I * sizeof(float)),
        .cos_t = vc_malloc_array(n, hd * sizeof(float)),
        .sin_t = vc_malloc_array(n, hd * sizeof(float)),
    };
    bool ok = s.h && s.q && s.k && s.v && s.att && s.g && s.u && s.cos_t && s.sin_t;
    if (ok)
        idf2_rope_table(s.cos_t, s.sin_t, kv->len, n, cfg->head_dim, cfg->rope_theta);
    for (int l = 0; ok && l < cfg->num_hidden_layers; l++)
        ok = text_layer(cfg, &w->layers[l], kv, l, x, n, &s, nt);
    if (ok) {
        kv->len += n;
        const size_t first = all_logits ? 0 : n - 1, rows = n - first;
        idf2_rmsnorm(s.h, x + first * D, rows, D, w->norm, (float)cfg->rms_norm_eps);
        ok = idf2_matmul(logits, s.h, rows, &w->lm_head, NULL, nt);
    }
    tx_free(&s);
    return ok ? VC_OK : oom(err, "decoder scratch");
}
