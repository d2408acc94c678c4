/* idf2_ctx: creating and freeing inference contexts.
 *
 * Sizes everything from the model's config and the parameters with one
 * carve pass that only counts, allocates that many bytes through the
 * backend row, then carves the same sequence over it.  The largest image a
 * context takes is the vision position table's full grid (N x N patches),
 * so any image the preprocessor can make fits. */
#include "idf2_ctx.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

static void carve_all(struct idf2_ctx *c, struct idf2_carve *cv)
{
    const struct idf2_model_config *mc = &c->m->cfg.model;
    const size_t V = (size_t)mc->text.vocab_size, Dt = (size_t)mc->text.hidden_size;
    const size_t kvf = idf2_kv_floats(&mc->text, c->n_ctx);
    idf2_vision_scratch_carve(&mc->vision, c->max_patches, cv, &c->vs);
    idf2_connector_scratch_carve(mc, c->max_patches, cv, &c->cs);
    idf2_text_scratch_carve(&mc->text, c->max_rows, cv, &c->ts);
    c->vis = idf2_carve(cv, c->max_patches, (size_t)mc->vision.hidden_size * sizeof(float));
    c->proj = idf2_carve(cv, c->max_patches, Dt * sizeof(float));
    c->x = idf2_carve(cv, c->max_rows, Dt * sizeof(float));
    c->logits = idf2_carve(cv, c->max_rows, V * sizeof(float));
    c->work = idf2_carve(cv, V, sizeof(float));
    c->keys = idf2_carve(cv, V, IDF2_SORTKEY_BYTES);
    c->seq = idf2_carve(cv, c->n_slots, c->n_ctx * sizeof(int32_t));
    c->kv = idf2_carve(cv, c->n_slots, sizeof(struct idf2_kv));
    c->segs = idf2_carve(cv, c->n_slots, sizeof(struct idf2_text_seg));
    c->seg_slot = idf2_carve(cv, c->n_slots, sizeof(size_t));
    for (size_t i = 0; i < c->n_slots; i++) {
        float *k = idf2_carve(cv, kvf ? kvf : 1, sizeof(float));
        float *v = idf2_carve(cv, kvf ? kvf : 1, sizeof(float));
        if (cv->base)
            c->kv[i] = (struct idf2_kv){ .k = k, .v = v, .cap = c->n_ctx };
    }
    c->ex.ws = idf2_carve(cv, c->ex.ws_bytes ? c->ex.ws_bytes : 1, 1);
}

enum vc_status idf2_ctx_new(const struct idf2_model *m, const struct idf2_ctx_params *p,
                            struct idf2_ctx **out, struct vc_err *err)
{
    *out = NULL;
    const struct idf2_ctx_params def = { 0 };
    if (!p)
        p = &def;
    if (p->n_slots < 0 || p->n_ctx < 0 || p->n_ctx > IDF2_MAX_CONTEXT || p->n_threads < 0 ||
        p->max_rows < 0)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "context: n_slots, n_ctx (<= %d), n_threads and max_rows must be "
                          "positive or 0 for the default",
                          IDF2_MAX_CONTEXT);
    struct idf2_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "context");
    const struct idf2_model_config *mc = &m->cfg.model;
    const size_t N = (size_t)(mc->vision.image_size / mc->vision.patch_size);
    c->m = m;
    c->n_slots = p->n_slots ? (size_t)p->n_slots : IDF2_DEFAULT_SLOTS;
    c->n_ctx = p->n_ctx ? (size_t)p->n_ctx : IDF2_DEFAULT_CTX;
    c->max_rows = p->max_rows ? (size_t)p->max_rows : IDF2_DEFAULT_ROWS;
    c->max_rows = c->max_rows < c->n_slots ? c->n_slots : c->max_rows;
    c->max_patches = N * N;
    const int nt = p->n_threads ? p->n_threads : m->nt ? m->nt : omp_get_max_threads();
    size_t ws = idf2_vision_ws(m->ops, &mc->vision, &m->w->vision, c->max_patches, nt);
    const size_t wc = idf2_connector_ws(m->ops, mc, &m->w->connector, c->max_patches, nt);
    const size_t wt = idf2_text_ws(m->ops, &mc->text, &m->w->text, c->max_rows, c->n_ctx, nt);
    ws = ws > wc ? ws : wc;
    c->ex = (struct idf2_exec){ .ops = m->ops, .nt = nt, .ws_bytes = ws > wt ? ws : wt };

    struct idf2_carve cv = { 0 };
    carve_all(c, &cv);
    if (!cv.overflow)
        c->arena = m->ops->buf_alloc(cv.off);
    if (!c->arena) {
        const size_t slots = c->n_slots, n_ctx = c->n_ctx;
        free(c);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory,
                          "context: %.1f MiB for %zu slots of %zu positions",
                          (double)cv.off / (1 << 20), slots, n_ctx);
    }
    c->arena_bytes = cv.off;
    cv = (struct idf2_carve){ .base = c->arena };
    carve_all(c, &cv);
    c->stats = (struct idf2_ctx_stats){
        .n_slots = c->n_slots,
        .n_ctx = c->n_ctx,
        .max_rows = c->max_rows,
        .arena_bytes = c->arena_bytes,
    };
    *out = c;
    return VC_OK;
}

void idf2_ctx_free(struct idf2_ctx *c)
{
    if (!c)
        return;
    c->m->ops->buf_free(c->arena);
    free(c);
}

void idf2_ctx_stats(const struct idf2_ctx *c, struct idf2_ctx_stats *out)
{
    *out = c->stats;
}

void idf2_ctx_on_done(struct idf2_ctx *c, idf2_done_fn fn, void *arg)
{
    c->on_done = fn;
    c->on_done_arg = arg;
}
