/* idf2_text: the Mistral decoder over caller-owned KV caches.
 *
 * Owns the RoPE tables (struct idf2_rope) and nothing else: scratch and
 * caches are the caller's.  Never grows a cache: a sequence longer than its
 * cap is an error, so the memory of a request is known when it starts.
 * Query head h reads kv head h / (Ht / Kt) (SPEC pitfall 7); RoPE pairs j
 * with j + dt/2 (pitfall 8). */
#include "idf2_text.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/vc_mem.h"

size_t idf2_kv_floats(const struct idf2_text_config *cfg, size_t cap)
{
    size_t n;
    const size_t per_pos =
        (size_t)cfg->num_hidden_layers * (size_t)cfg->num_key_value_heads * (size_t)cfg->head_dim;
    return vc_mul_ok(per_pos, cap, &n) ? n : 0;
}

enum vc_status idf2_rope_init(struct idf2_rope *r, const struct idf2_text_config *cfg, size_t n_pos,
                              struct vc_err *err)
{
    const size_t hd = (size_t)cfg->head_dim, half = hd / 2;
    r->cos_t = vc_malloc_array(n_pos, hd * sizeof(float));
    r->sin_t = vc_malloc_array(n_pos, hd * sizeof(float));
    r->n_pos = n_pos;
    if (!r->cos_t || !r->sin_t) {
        idf2_rope_release(r);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "text: RoPE tables");
    }
    for (size_t i = 0; i < n_pos; i++) {
        const float p = (float)i;
        for (size_t j = 0; j < half; j++) {
            /* HF: 1.0 / base ** (arange(0, dim, 2).float() / dim), float32. */
            const float inv =
                1.0f / powf((float)cfg->rope_theta, (float)(2 * j) / (float)cfg->head_dim);
            const float a = p * inv;
            r->cos_t[i * hd + j] = r->cos_t[i * hd + j + half] = cosf(a);
            r->sin_t[i * hd + j] = r->sin_t[i * hd + j + half] = sinf(a);
        }
    }
    return VC_OK;
}

void idf2_rope_release(struct idf2_rope *r)
{
    free(r->cos_t);
    free(r->sin_t);
    memset(r, 0, sizeof *r);
}

void idf2_text_scratch_carve(const struct idf2_text_config *cfg, size_t max_rows,
                             struct idf2_carve *c, struct idf2_text_scratch *s)
{
    const size_t D = (size_t)cfg->hidden_size, hd = (size_t)cfg->head_dim;
    const size_t qw = (size_t)cfg->num_attention_heads * hd,
                 kvw = (size_t)cfg->num_key_value_heads * hd;
    s->max_rows = max_rows;
    s->h = idf2_carve(c, max_rows, D * sizeof(float));
    s->q = idf2_carve(c, max_rows, qw * sizeof(float));
    s->k = idf2_carve(c, max_rows, kvw * sizeof(float));
    s->v = idf2_carve(c, max_rows, kvw * sizeof(float));
    s->att = idf2_carve(c, max_rows, qw * sizeof(float));
    const size_t I2 = 2 * (size_t)cfg->intermediate_size;
    s->gu = idf2_carve(c, max_rows, (I2 > qw + 2 * kvw ? I2 : qw + 2 * kvw) * sizeof(float));
    s->pos = idf2_carve(c, max_rows, sizeof(int32_t));
}

/* Workspace of one thread's single-row attention over up to cap keys. */
static size_t row_attn_ws(const struct idf2_ops *ops, const struct idf2_text_config *cfg,
                          size_t cap)
{
    return idf2_align64(ops->attention_ws(1, cap, cfg->num_key_value_heads, cfg->head_dim, 1));
}

static bool stack_qkv(const struct idf2_ops *ops, const struct idf2_text_layer *L,
                      struct idf2_w *qkv)
{
    const struct idf2_w *parts[] = { &L->q, &L->k, &L->v };
    return idf2_w_stack(ops, parts, 3, qkv);
}

static bool stack_gate_up(const struct idf2_ops *ops, const struct idf2_text_layer *L,
                          struct idf2_w *gate_up)
{
    const struct idf2_w *parts[] = { &L->gate, &L->up };
    return idf2_w_stack(ops, parts, 2, gate_up);
}

/* s->q, s->k, s->v of R rows of s->h: from one matmul where the layer's
 * weights stack (then split, a few hundred KiB per 16 rows against
 * reading 100 MiB of weights), else from three.  One call instead of
 * three: one ramp and tail, and the small k and v no longer split 1,024
 * columns over the threads on their own. */
static void qkv_mm(const struct idf2_exec *ex, const struct idf2_text_layer *L,
                   struct idf2_text_scratch *s, size_t R)
{
    struct idf2_w qkv;
    if (s->apart || !stack_qkv(ex->ops, L, &qkv)) {
        idf2_mm(ex, s->q, s->h, R, &L->q, NULL);
        idf2_mm(ex, s->k, s->h, R, &L->k, NULL);
        idf2_mm(ex, s->v, s->h, R, &L->v, NULL);
        return;
    }
    const size_t qw = (size_t)L->q.rows, kvw = (size_t)L->k.rows, width = (size_t)qkv.rows;
    idf2_mm(ex, s->gu, s->h, R, &qkv, NULL);
    for (size_t i = 0; i < R; i++) {
        const float *row = s->gu + i * width;
        memcpy(s->q + i * qw, row, qw * sizeof(float));
        memcpy(s->k + i * kvw, row + qw, kvw * sizeof(float));
        memcpy(s->v + i * kvw, row + qw + kvw, kvw * sizeof(float));
    }
}

/* The layer's MLP over R rows of s->h, in place. */
static void mlp(const struct idf2_exec *ex, const struct idf2_text_layer *L, enum idf2_act act,
                struct idf2_text_scratch *s, size_t R)
{
    struct idf2_w gate_up;
    const bool one = !s->apart && stack_gate_up(ex->ops, L, &gate_up);
    idf2_swiglu(ex, s->h, s->h, R, &L->gate, &L->up, one ? &gate_up : NULL, &L->down, act, s->gu,
                s->gu + R * (size_t)L->gate.rows);
}

size_t idf2_text_ws(const struct idf2_ops *ops, const struct idf2_text_config *cfg,
                    const struct idf2_text_weights *w, size_t max_rows, size_t max_ctx, int nt)
{
    size_t need = ops->attention_ws(max_rows, max_ctx, cfg->num_key_value_heads, cfg->head_dim, nt);
    const size_t rows_ws = (size_t)nt * row_attn_ws(ops, cfg, max_ctx);
    need = rows_ws > need ? rows_ws : need;
    for (int l = 0; l < cfg->num_hidden_layers; l++) {
        const struct idf2_text_layer *L = &w->layers[l];
        struct idf2_w qkv, gate_up;
        if (stack_qkv(ops, L, &qkv))
            idf2_ws_need_mm(&need, ops, max_rows, &qkv, nt);
        if (stack_gate_up(ops, L, &gate_up))
            idf2_ws_need_mm(&need, ops, max_rows, &gate_up, nt);
        idf2_ws_need_mm(&need, ops, max_rows, &L->q, nt);
        idf2_ws_need_mm(&need, ops, max_rows, &L->k, nt);
        idf2_ws_need_mm(&need, ops, max_rows, &L->v, nt);
        idf2_ws_need_mm(&need, ops, max_rows, &L->o, nt);
        idf2_ws_need_mm(&need, ops, max_rows, &L->gate, nt);
        idf2_ws_need_mm(&need, ops, max_rows, &L->up, nt);
        idf2_ws_need_mm(&need, ops, max_rows, &L->down, nt);
    }
    idf2_ws_need_mm(&need, ops, max_rows, &w->lm_head, nt);
    return need;
}

enum vc_status idf2_text_embed(const struct idf2_exec *ex, const struct idf2_text_config *cfg,
                               const struct idf2_text_weights *w, const int32_t *ids, size_t n,
                               float *out, struct vc_err *err)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= cfg->vocab_size)
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint,
                              "token id %d is outside the model's vocabulary of %d", (int)ids[i],
                              cfg->vocab_size);
    ex->ops->embed_rows(out, &w->embed, ids, n, ex);
    return VC_OK;
}

/* Copies rows [r0, r0+n) of this pass's k or v (rows of Kt*dt) into the
 * cache of layer l at the sequence's next positions. */
static void kv_store(const struct idf2_text_config *cfg, const struct idf2_kv *kv, float *cache,
                     int l, const float *src, size_t n)
{
    const size_t hd = (size_t)cfg->head_dim, kvh = (size_t)cfg->num_key_value_heads;
    for (size_t g = 0; g < kvh; g++) {
        float *dst = cache + (((size_t)l * kvh + g) * kv->cap + kv->len) * hd;
        for (size_t i = 0; i < n; i++)
            memcpy(dst + i * hd, src + (i * kvh + g) * hd, hd * sizeof(float));
    }
}

/* Attention of n rows of one segment at layer l over its cache (the rows'
 * keys and values already stored). */
static struct idf2_attn seg_attn(const struct idf2_text_config *cfg, const struct idf2_kv *kv,
                                 int l, const float *q, size_t n)
{
    const size_t hd = (size_t)cfg->head_dim;
    const size_t layer_off = (size_t)l * (size_t)cfg->num_key_value_heads * kv->cap * hd;
    return (struct idf2_attn){
        .q = q,
        .q_stride = (size_t)cfg->num_attention_heads * hd,
        .k = kv->k + layer_off,
        .v = kv->v + layer_off,
        .kv_head_stride = kv->cap * hd,
        .kv_row_stride = hd,
        .n_q = n,
        .n_kv = kv->len + n,
        .n_heads = cfg->num_attention_heads,
        .n_kv_heads = cfg->num_key_value_heads,
        .head_dim = cfg->head_dim,
        .scale = (float)(1.0 / sqrt((double)hd)), /* HF divides by sqrt(head_dim) */
        .causal = true,
        .q_pos0 = kv->len,
        .window = (size_t)cfg->sliding_window,
    };
}

/* The single-row segments of a pass (the decoding sequences of a batch),
 * several at once: each thread takes whole segments in turn and runs their
 * attention on one thread over its own slice of the workspace.  One team
 * for them all instead of one (or none: below the backend's threshold a
 * call runs on one thread) per segment; a row's result does not depend on
 * the thread count, so the bits are those of a call per segment. */
static void attend_rows(const struct idf2_exec *ex, const struct idf2_text_config *cfg,
                        const struct idf2_text_scratch *s, const struct idf2_text_seg *segs,
                        size_t n_seg, size_t n_one, int l)
{
    const size_t qw = (size_t)cfg->num_attention_heads * (size_t)cfg->head_dim;
    size_t cap = 0;
    for (size_t i = 0; i < n_seg; i++)
        cap = segs[i].kv->cap > cap ? segs[i].kv->cap : cap;
    const size_t per = row_attn_ws(ex->ops, cfg, cap);
    size_t next = 0;
#pragma omp parallel num_threads(ex->nt)
    {
        const struct idf2_exec one = {
            .ops = ex->ops,
            .nt = 1,
            .ws = (char *)ex->ws + (size_t)omp_get_thread_num() * per,
            .ws_bytes = per,
        };
        for (size_t ka, kb; idf2_take(&next, n_one, 1, &ka, &kb);) {
            /* Single-row segment number ka and its row. */
            size_t i = 0, r0 = 0;
            for (size_t seen = 0; segs[i].n != 1 || seen++ < ka; r0 += segs[i++].n)
                ;
            const struct idf2_attn a = seg_attn(cfg, segs[i].kv, l, s->q + r0 * qw, 1);
            ex->ops->attention(s->att + r0 * qw, &a, &one);
        }
    }
}

static void text_layer(const struct idf2_exec *ex, const struct idf2_text_config *cfg,
                       const struct idf2_text_layer *L, const struct idf2_rope *rope,
                       struct idf2_text_scratch *s, const struct idf2_text_seg *segs, size_t n_seg,
                       int l, float *x, size_t R)
{
    const struct idf2_ops *o = ex->ops;
    const size_t D = (size_t)cfg->hidden_size, hd = (size_t)cfg->head_dim;
    const size_t qw = (size_t)cfg->num_attention_heads * hd,
                 kvw = (size_t)cfg->num_key_value_heads * hd;
    const float eps = (float)cfg->rms_norm_eps;

    o->rmsnorm(s->h, x, R, D, L->attn_norm, eps, ex);
    qkv_mm(ex, L, s, R);
    o->rope(s->q, R, qw, cfg->num_attention_heads, cfg->head_dim, rope->cos_t, rope->sin_t, s->pos,
            ex);
    o->rope(s->k, R, kvw, cfg->num_key_value_heads, cfg->head_dim, rope->cos_t, rope->sin_t, s->pos,
            ex);
    size_t n_one = 0;
    for (size_t i = 0, r0 = 0; i < n_seg; r0 += segs[i++].n) {
        kv_store(cfg, segs[i].kv, segs[i].kv->k, l, s->k + r0 * kvw, segs[i].n);
        kv_store(cfg, segs[i].kv, segs[i].kv->v, l, s->v + r0 * kvw, segs[i].n);
        n_one += segs[i].n == 1;
    }
    for (size_t i = 0, r0 = 0; i < n_seg; r0 += segs[i++].n)
        if (segs[i].n > 1 || n_one == 1) {
            const struct idf2_attn a = seg_attn(cfg, segs[i].kv, l, s->q + r0 * qw, segs[i].n);
            o->attention(s->att + r0 * qw, &a, ex);
        }
    if (n_one > 1)
        attend_rows(ex, cfg, s, segs, n_seg, n_one, l);
    idf2_mm(ex, s->h, s->att, R, &L->o, NULL);
    o->add(x, s->h, R * D, ex);

    o->rmsnorm(s->h, x, R, D, L->mlp_norm, eps, ex);
    mlp(ex, L, cfg->hidden_act, s, R);
    o->add(x, s->h, R * D, ex);
}

enum vc_status idf2_text_forward(const struct idf2_exec *ex, const struct idf2_text_config *cfg,
                                 const struct idf2_text_weights *w, const struct idf2_rope *rope,
                                 struct idf2_text_scratch *s, const struct idf2_text_seg *segs,
                                 size_t n_seg, float *x, float *logits, struct vc_err *err)
{
    const size_t D = (size_t)cfg->hidden_size;
    size_t R = 0;
    for (size_t i = 0; i < n_seg; i++) {
        const struct idf2_kv *kv = segs[i].kv;
        if (segs[i].n_logits > segs[i].n || segs[i].n > kv->cap - kv->len ||
            kv->len + segs[i].n > rope->n_pos)
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                              "text: %zu tokens do not fit the %zu-position cache (%zu used)",
                              segs[i].n, kv->cap < rope->n_pos ? kv->cap : rope->n_pos, kv->len);
        for (size_t t = 0; t < segs[i].n && R + t < s->max_rows; t++)
            s->pos[R + t] = (int32_t)(kv->len + t);
        R += segs[i].n;
    }
    if (R > s->max_rows)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "text: %zu rows in one pass (the context's limit is %zu)", R,
                          s->max_rows);
    if (R == 0)
        return VC_OK;
    for (int l = 0; l < cfg->num_hidden_layers; l++)
        text_layer(ex, cfg, &w->layers[l], rope, s, segs, n_seg, l, x, R);
    /* The rows that get logits, gathered and normalized into h. */
    size_t r0 = 0, nl = 0;
    for (size_t i = 0; i < n_seg; r0 += segs[i++].n) {
        segs[i].kv->len += segs[i].n;
        const size_t rows = segs[i].n_logits, first = r0 + segs[i].n - rows;
        ex->ops->rmsnorm(s->h + nl * D, x + first * D, rows, D, w->norm, (float)cfg->rms_norm_eps,
                         ex);
        nl += rows;
    }
    idf2_mm(ex, logits, s->h, nl, &w->lm_head, NULL);
    return VC_OK;
}

void idf2_text_matmuls(const struct idf2_exec *ex, const struct idf2_text_weights *w, int n_layers,
                       struct idf2_text_scratch *s, size_t R, float *logits)
{
    for (int l = 0; l < n_layers; l++) {
        const struct idf2_text_layer *L = &w->layers[l];
        qkv_mm(ex, L, s, R);
        idf2_mm(ex, s->h, s->att, R, &L->o, NULL);
        mlp(ex, L, IDF2_ACT_SILU, s, R);
    }
    idf2_mm(ex, logits, s->h, R, &w->lm_head, NULL);
}
