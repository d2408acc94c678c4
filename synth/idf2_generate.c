/* idf2_generate: requests end to end (SPEC §3-§9): prompt and input_ids,
 * image decoding and preprocessing, vision + connector per image, merging
 * the image features at the <image> positions, the prompt pass, then greedy
 * or seeded top-p sampling with the bad-words and stop rules of
 * generation_config.json; and scoring a continuation.
 *
 * Owns per-request buffers only; the KV cache of a request is allocated
 * once for prompt + max_new_tokens.  Requests of a batch run one after
 * another (batching the decode is the speed work's job; the API is already
 * the batch one).  Never lets one request's failure stop the others. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/vc_mem.h"
#include "synth/idf2_connector.h"
#include "synth/idf2_image.h"
#include "synth/idf2_kernels.h"
#include "synth/idf2_model.h"
#include "synth/idf2_prompt.h"
#include "synth/idf2_text.h"
#include "synth/idf2_vision.h"

static double mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static enum vc_status oom(struct vc_err *err, const char *what)
{
    return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "generate: %s", what);
}

/* ------------------------------------------------------------------ trace */

static void trace_f32(const struct idf2_trace *t, const char *name, const int64_t *shape,
                      int n_dims, const float *data)
{
    if (t && t->tensor)
        t->tensor(t->ctx, name, IDF2_TRACE_F32, shape, n_dims, data);
}

/* Widens n values of any integer width to int64 for the trace. */
static enum vc_status trace_ints(const struct idf2_trace *t, const char *name, const int64_t *shape,
                                 int n_dims, const void *src, size_t n, size_t width,
                                 struct vc_err *err)
{
    if (!t || !t->tensor)
        return VC_OK;
    int64_t *v = vc_malloc_array(n ? n : 1, sizeof *v);
    if (!v)
        return oom(err, "trace buffer");
    for (size_t i = 0; i < n; i++) {
        if (width == 1)
            v[i] = ((const uint8_t *)src)[i];
        else if (width == 4)
            v[i] = ((const int32_t *)src)[i];
        else
            v[i] = ((const int64_t *)src)[i];
    }
    t->tensor(t->ctx, name, IDF2_TRACE_I64, shape, n_dims, v);
    free(v);
    return VC_OK;
}

/* --------------------------------------------------------------- prompt */

static enum vc_status build_prompt(const struct idf2_model *m, const struct idf2_request *req,
                                   char **out, struct vc_err *err)
{
    if (!req->prompt == !req->chat)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "a request needs exactly one of prompt and chat");
    if (req->prompt) {
        *out = vc_strdup(req->prompt);
        return *out ? VC_OK : oom(err, "prompt");
    }
    if (!m->chat_template_ok)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint,
                          "the checkpoint's chat template is not the Idefics2 one; use a raw "
                          "prompt");
    struct idf2_content *c = vc_malloc_array(req->n_images + 1, sizeof *c);
    if (!c)
        return oom(err, "chat content");
    for (size_t i = 0; i < req->n_images; i++)
        c[i] = (struct idf2_content){ IDF2_CONTENT_IMAGE, NULL };
    c[req->n_images] = (struct idf2_content){ IDF2_CONTENT_TEXT, req->chat };
    const struct idf2_message msg = { "user", c, req->n_images + 1 };
    enum vc_status rc = idf2_chat_render(&msg, 1, true, out, err);
    free(c);
    return rc;
}

/* --------------------------------------------------------------- images */

/* Decodes and preprocesses the request's images. */
static enum vc_status preprocess(const struct idf2_model *m, const struct idf2_request *req,
                                 bool splitting, struct idf2_pixels *px, struct vc_err *err)
{
    struct img *ims = calloc(req->n_images, sizeof *ims);
    if (!ims)
        return oom(err, "image list");
    enum vc_status rc = VC_OK;
    for (size_t i = 0; i < req->n_images && rc >= 0; i++) {
        rc = idf2_image_decode(req->images[i].data, req->images[i].size, NULL, &ims[i], err);
        if (rc < 0)
            vc_err_prefix(err, "image %zu", i + 1);
    }
    if (rc >= 0) {
        struct idf2_preproc_config pc = m->cfg.preproc;
        pc.do_image_splitting = splitting;
        rc = idf2_image_preprocess(&pc, ims, req->n_images, px, err);
    }
    for (size_t i = 0; i < req->n_images; i++)
        img_release(&ims[i]);
    free(ims);
    return rc;
}

/* Per-image outputs kept for the trace: (n, P, width) with zero rows for
 * padding patches, as the fixtures lay them out. */
struct vis_trace {
    float *hidden; /* (n, P, Dv) */
    float *proj;   /* (n, P, Dt) */
    int64_t *pos;  /* (n, P) */
};

/* Copies rows of an nh x nw block into a gh x gw grid (row r of the block is
 * grid row r). */
static void scatter_rows(float *dst, const float *src, uint32_t nh, uint32_t nw, uint32_t gw,
                         size_t d)
{
    for (uint32_t r = 0; r < nh; r++)
        memcpy(dst + (size_t)r * gw * d, src + (size_t)r * nw * d, (size_t)nw * d * sizeof(float));
}

/* Vision + connector for every preprocessed image into feats (n, n_lat, Dt). */
static enum vc_status encode_images(const struct idf2_model *m, const struct idf2_pixels *px,
                                    const struct idf2_trace *tr, float *feats, struct vc_err *err)
{
    const struct idf2_model_config *mc = &m->cfg.model;
    const int p = mc->vision.patch_size;
    const size_t Dv = (size_t)mc->vision.hidden_size, Dt = (size_t)mc->text.hidden_size;
    uint8_t *mask = NULL;
    uint32_t gh, gw;
    enum vc_status rc = idf2_pixels_patch_mask(px, p, &mask, &gh, &gw, err);
    if (rc < 0)
        return rc;
    const size_t P = (size_t)gh * gw, n = px->n_images;
    float *vis = vc_malloc_array(P ? P : 1, Dv * sizeof(float));
    float *proj = vc_malloc_array(P ? P : 1, Dt * sizeof(float));
    struct vis_trace vt = { 0 };
    const bool tracing = tr && tr->tensor;
    if (tracing) {
        /* calloc checks the products; +1 keeps an empty grid non-NULL. */
        vt.hidden = calloc(n * P + 1, Dv * sizeof(float));
        vt.proj = calloc(n * P + 1, Dt * sizeof(float));
        vt.pos = calloc(n * P + 1, sizeof(int64_t));
    }
    if (!vis || !proj || (tracing && (!vt.hidden || !vt.proj || !vt.pos)))
        rc = oom(err, "vision buffers");
    int32_t *pos = rc >= 0 ? vc_malloc_array(P ? P : 1, sizeof *pos) : NULL;
    if (rc >= 0 && !pos)
        rc = oom(err, "position ids");
    for (size_t i = 0; i < n && rc >= 0; i++) {
        /* HF reads the grid from column 0 and row 0 of the patch mask; the
         * real patches are exactly that top-left block (SPEC §5.1). */
        const uint8_t *mi = mask + i * P;
        uint32_t nh = 0, nw = 0;
        size_t total = 0;
        for (uint32_t r = 0; r < gh; r++)
            nh += mi[(size_t)r * gw];
        for (uint32_t c = 0; c < gw; c++)
            nw += mi[c];
        for (size_t e = 0; e < P; e++)
            total += mi[e];
        if (nh == 0 || nw == 0 || total != (size_t)nh * nw) {
            rc = vc_err_set(err, VC_ESAMPLE, VC_REASON_bad_spec,
                            "image %zu: %u real patches do not form a top-left block", i + 1,
                            (unsigned)total);
            break;
        }
        const float *pix = px->values + i * 3 * (size_t)px->height * px->width;
        rc = idf2_vision_encode(&mc->vision, &m->w->vision, pix, px->height, px->width, nh, nw, vis,
                                m->nt, err);
        if (rc >= 0)
            rc = idf2_connector_project(mc, &m->w->connector, vis, (size_t)nh * nw, proj, m->nt,
                                        err);
        if (rc >= 0)
            rc = idf2_connector_resample(mc, &m->w->connector, proj, (size_t)nh * nw,
                                         feats + i * (size_t)mc->perceiver.n_latents * Dt, m->nt,
                                         err);
        if (rc >= 0 && tracing) {
            scatter_rows(vt.hidden + i * P * Dv, vis, nh, nw, gw, Dv);
            scatter_rows(vt.proj + i * P * Dt, proj, nh, nw, gw, Dt);
            idf2_vision_position_ids(mc->vision.image_size / p, (int)nh, (int)nw, pos);
            for (uint32_t r = 0; r < nh; r++)
                for (uint32_t c = 0; c < nw; c++)
                    vt.pos[i * P + (size_t)r * gw + c] = pos[(size_t)r * nw + c];
        }
    }
    if (rc >= 0 && tracing) {
        const int64_t sm[3] = { (int64_t)n, gh, gw }, sp[2] = { (int64_t)n, (int64_t)P };
        const int64_t sv[3] = { (int64_t)n, (int64_t)P, (int64_t)Dv };
        const int64_t st[3] = { (int64_t)n, (int64_t)P, (int64_t)Dt };
        const int64_t sf[3] = { (int64_t)n, mc->perceiver.n_latents, (int64_t)Dt };
        rc = trace_ints(tr, "patch_attention_mask", sm, 3, mask, n * P, 1, err);
        if (rc >= 0)
            rc = trace_ints(tr, "vision_position_ids", sp, 2, vt.pos, n * P, 8, err);
        trace_f32(tr, "vision_last_hidden_state", sv, 3, vt.hidden);
        trace_f32(tr, "modality_projection", st, 3, vt.proj);
        trace_f32(tr, "image_hidden_states", sf, 3, feats);
    }
    free(pos);
    free(vt.hidden);
    free(vt.proj);
    free(vt.pos);
    free(vis);
    free(proj);
    free(mask);
    return rc;
}

/* -------------------------------------------------------------- prepare */

/* A request made ready for the decoder: input ids and merged embeddings. */
struct prepared {
    int32_t *ids; /* owned (L) */
    size_t n_ids;
    float *x; /* owned (L, Dt): inputs_embeds */
    size_t n_images_after_split;
    double vision_seconds;
};

static void prepared_free(struct prepared *p)
{
    free(p->ids);
    free(p->x);
    memset(p, 0, sizeof *p);
}

static enum vc_status prepare(const struct idf2_model *m, const struct idf2_request *req,
                              struct prepared *out, struct vc_err *err)
{
    memset(out, 0, sizeof *out);
    const struct idf2_model_config *mc = &m->cfg.model;
    const size_t Dt = (size_t)mc->text.hidden_size, nl = (size_t)mc->perceiver.n_latents;
    const bool split =
        req->image_splitting < 0 ? m->cfg.preproc.do_image_splitting : req->image_splitting != 0;
    const struct idf2_trace *tr = req->trace;
    if (req->n_images && !req->images)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "n_images without images");

    char *prompt = NULL;
    enum vc_status rc = build_prompt(m, req, &prompt, err);
    if (rc < 0)
        return rc;
    rc = idf2_prompt_ids(m->tok, prompt, req->n_images, m->cfg.proc.image_seq_len, split, &out->ids,
                         &out->n_ids, err);
    free(prompt);
    if (rc < 0)
        return rc;
    if (out->n_ids == 0 || out->n_ids >= IDF2_MAX_CONTEXT) {
        rc = vc_err_set(err, VC_ESAMPLE, VC_REASON_field_too_long,
                        "prompt of %zu tokens (the engine's context is %d)", out->n_ids,
                        IDF2_MAX_CONTEXT);
        goto fail;
    }
    const int64_t sid[2] = { 1, (int64_t)out->n_ids };
    rc = trace_ints(tr, "input_ids", sid, 2, out->ids, out->n_ids, 4, err);
    if (rc < 0)
        goto fail;

    float *feats = NULL;
    if (req->n_images) {
        const double t0 = mono_seconds();
        struct idf2_pixels px = { 0 };
        rc = preprocess(m, req, split, &px, err);
        if (rc < 0)
            goto fail;
        out->n_images_after_split = px.n_images;
        if (tr && tr->tensor) {
            const size_t hw = (size_t)px.height * px.width;
            const int64_t sv[5] = { 1, (int64_t)px.n_images, 3, px.height, px.width };
            const int64_t sm[4] = { 1, (int64_t)px.n_images, px.height, px.width };
            trace_f32(tr, "pixel_values", sv, 5, px.values);
            rc = trace_ints(tr, "pixel_attention_mask", sm, 4, px.mask, px.n_images * hw, 1, err);
        }
        feats = rc >= 0 ? vc_malloc_array(px.n_images * nl, Dt * sizeof(float)) : NULL;
        if (rc >= 0 && !feats)
            rc = oom(err, "image features");
        if (rc >= 0)
            rc = encode_images(m, &px, tr, feats, err);
        idf2_pixels_free(&px);
        out->vision_seconds = mono_seconds() - t0;
        if (rc < 0) {
            free(feats);
            goto fail;
        }
    }

    /* Merge (SPEC §7): the k-th <image> position takes the k-th feature row. */
    out->x = vc_malloc_array(out->n_ids, Dt * sizeof(float));
    if (!out->x)
        rc = oom(err, "embeddings");
    if (rc >= 0)
        rc = idf2_text_embed(&mc->text, &m->w->text, out->ids, out->n_ids, out->x, err);
    size_t k = 0;
    const size_t n_feat_rows = out->n_images_after_split * nl;
    for (size_t i = 0; rc >= 0 && i < out->n_ids; i++) {
        if (out->ids[i] != mc->image_token_id)
            continue;
        if (feats && k < n_feat_rows)
            memcpy(out->x + i * Dt, feats + k * Dt, Dt * sizeof(float));
        k++;
    }
    free(feats);
    if (rc >= 0 && k != n_feat_rows)
        rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                        "the prompt has %zu image tokens but the images give %zu features", k,
                        n_feat_rows);
    if (rc < 0)
        goto fail;
    const int64_t se[3] = { 1, (int64_t)out->n_ids, (int64_t)Dt };
    trace_f32(tr, "inputs_embeds", se, 3, out->x);
    return VC_OK;
fail:
    prepared_free(out);
    return rc;
}

/* ------------------------------------------------------------- sampling */

/* xoshiro256** seeded through splitmix64 (Blackman & Vigna): small, fast,
 * and the same stream on every platform. */
struct rng {
    uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s;
    const uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_uniform(struct rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

struct sortkey {
    float v;
    int32_t id;
};

/* Ascending by value, then descending id, so that equal logits keep the
 * lower id on top (the tie-break of a stable descending sort). */
static int sortkey_cmp(const void *a, const void *b)
{
    const struct sortkey *x = a, *y = b;
    if (x->v != y->v)
        return x->v < y->v ? -1 : 1;
    return x->id > y->id ? -1 : x->id < y->id;
}

static int32_t argmax(const float *v, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return (int32_t)best;
}

/* HF's TemperatureLogitsWarper then TopPLogitsWarper (sorted ascending,
 * drop tokens whose cumulative probability <= 1 - top_p, always keep the
 * most likely), then a multinomial draw.  `keys` has room for V entries. */
static int32_t sample(float *logits, size_t V, float temperature, float top_p, struct rng *r,
                      struct sortkey *keys)
{
    size_t n = 0;
    for (size_t i = 0; i < V; i++) {
        if (logits[i] == -INFINITY)
            continue;
        keys[n++] = (struct sortkey){ logits[i] / temperature, (int32_t)i };
    }
    if (n == 0)
        return argmax(logits, V);
    qsort(keys, n, sizeof *keys, sortkey_cmp);
    const double mx = keys[n - 1].v;
    double total = 0;
    for (size_t i = 0; i < n; i++)
        total += exp((double)keys[i].v - mx);
    size_t first = 0;
    if (top_p > 0 && top_p < 1) {
        double cum = 0;
        while (first + 1 < n) {
            cum += exp((double)keys[first].v - mx) / total;
            if (cum > 1.0 - (double)top_p)
                break;
            first++;
        }
    }
    double kept = 0;
    for (size_t i = first; i < n; i++)
        kept += exp((double)keys[i].v - mx);
    double u = rng_uniform(r) * kept;
    for (size_t i = n; i-- > first;) {
        u -= exp((double)keys[i].v - mx);
        if (u < 0)
            return keys[i].id;
    }
    return keys[first].id;
}

/* NoBadWordsLogitsProcessor: a one-token bad word is always banned; a
 * longer one bans its last token when the sequence ends with the rest. */
static void ban_bad_words(const struct idf2_generation_config *g, const int32_t *seq, size_t n,
                          float *logits, size_t V)
{
    for (int b = 0; b < g->n_bad_words; b++) {
        const int len = g->bad_word_len[b];
        const int *w = g->bad_words_ids[b];
        if (len < 1 || (size_t)(len - 1) > n || w[len - 1] < 0 || (size_t)w[len - 1] >= V)
            continue;
        bool match = true;
        for (int t = 0; t < len - 1 && match; t++)
            match = seq[n - (size_t)(len - 1) + (size_t)t] == w[t];
        if (match)
            logits[w[len - 1]] = -INFINITY;
    }
}

static bool is_eos(const struct idf2_generation_config *g, int32_t id)
{
    for (int i = 0; i < g->n_eos; i++)
        if (g->eos_token_ids[i] == id)
            return true;
    return false;
}

/* ------------------------------------------------------------- generate */

struct gen_bufs {
    int32_t *seq;  /* (L + max_new) prompt ids then generated ids */
    float *logits; /* (L or 1, V) */
    float *work;   /* (V) */
    float *steps;  /* (max_new, V) step logits, when tracing */
    struct sortkey *keys;
    float *x1; /* (Dt) the next token's embedding */
};

static void gen_bufs_free(struct gen_bufs *b)
{
    free(b->seq);
    free(b->logits);
    free(b->work);
    free(b->steps);
    free(b->keys);
    free(b->x1);
}

static enum vc_status decode_loop(struct idf2_model *m, const struct idf2_request *req,
                                  struct prepared *p, struct idf2_result *res, struct vc_err *err)
{
    const struct idf2_text_config *tc = &m->cfg.model.text;
    const struct idf2_generation_config *gc = &m->cfg.gen;
    const struct idf2_trace *tr = req->trace;
    const bool tracing = tr && tr->tensor, all = tracing && tr->all_logits;
    const size_t V = (size_t)tc->vocab_size, Dt = (size_t)tc->hidden_size, L = p->n_ids;
    size_t max_new = req->gen.max_new_tokens > 0 ? (size_t)req->gen.max_new_tokens
                     : gc->max_new_tokens > 0    ? (size_t)gc->max_new_tokens
                                                 : IDF2_DEFAULT_MAX_NEW;
    if (max_new > IDF2_MAX_CONTEXT - L)
        max_new = IDF2_MAX_CONTEXT - L;
    struct gen_bufs b = {
        .seq = vc_malloc_array(L + max_new, sizeof(int32_t)),
        .logits = vc_malloc_array(all ? L : 1, V * sizeof(float)),
        .work = vc_malloc_array(V, sizeof(float)),
        .steps = tracing ? vc_malloc_array(max_new, V * sizeof(float)) : NULL,
        .keys = req->gen.temperature > 0 ? vc_malloc_array(V, sizeof(struct sortkey)) : NULL,
        .x1 = vc_malloc_array(Dt, sizeof(float)),
    };
    struct idf2_kv kv = { 0 };
    enum vc_status rc = VC_OK;
    if (!b.seq || !b.logits || !b.work || (tracing && !b.steps) ||
        (req->gen.temperature > 0 && !b.keys) || !b.x1)
        rc = oom(err, "decode buffers");
    if (rc >= 0)
        rc = idf2_kv_init(&kv, tc, L + max_new, err);
    double t0 = mono_seconds();
    if (rc >= 0)
        rc = idf2_text_forward(tc, &m->w->text, &kv, p->x, L, b.logits, all, m->nt, err);
    res->prefill_seconds = mono_seconds() - t0;
    if (rc >= 0 && all) {
        const int64_t sl[3] = { 1, (int64_t)L, (int64_t)V };
        trace_f32(tr, "logits", sl, 3, b.logits);
    }
    t0 = mono_seconds();
    struct rng rng;
    rng_seed(&rng, req->gen.seed);
    size_t n_seq = L, g = 0;
    if (rc >= 0)
        memcpy(b.seq, p->ids, L * sizeof(int32_t));
    const float *row = b.logits + (all ? (L - 1) * V : 0);
    while (rc >= 0 && g < max_new) {
        if (tracing)
            memcpy(b.steps + g * V, row, V * sizeof(float));
        memcpy(b.work, row, V * sizeof(float));
        ban_bad_words(gc, b.seq, n_seq, b.work, V);
        const int32_t tok = req->gen.temperature > 0 ? sample(b.work, V, req->gen.temperature,
                                                              req->gen.top_p, &rng, b.keys)
                                                     : argmax(b.work, V);
        b.seq[n_seq++] = tok;
        g++;
        if (is_eos(gc, tok)) {
            res->stopped_on_eos = true;
            break;
        }
        if (g == max_new)
            break;
        rc = idf2_text_embed(tc, &m->w->text, &tok, 1, b.x1, err);
        if (rc >= 0)
            rc = idf2_text_forward(tc, &m->w->text, &kv, b.x1, 1, b.logits, false, m->nt, err);
        row = b.logits;
    }
    res->decode_seconds = mono_seconds() - t0;
    if (rc >= 0) {
        res->n_ids = g;
        res->ids = vc_malloc_array(g ? g : 1, sizeof(int32_t));
        if (!res->ids)
            rc = oom(err, "result ids");
    }
    if (rc >= 0) {
        memcpy(res->ids, b.seq + L, g * sizeof(int32_t));
        rc = idf2_tokenizer_decode(m->tok, res->ids, g, true, &res->text, NULL, err);
    }
    if (rc >= 0 && tracing) {
        const int64_t ss[2] = { (int64_t)g, (int64_t)V }, sg[2] = { 1, (int64_t)g };
        trace_f32(tr, "step_logits", ss, 2, b.steps);
        rc = trace_ints(tr, "generated_ids", sg, 2, res->ids, g, 4, err);
    }
    idf2_kv_release(&kv);
    gen_bufs_free(&b);
    return rc;
}

void idf2_result_release(struct idf2_result *r)
{
    if (!r)
        return;
    free(r->ids);
    free(r->text);
    memset(r, 0, sizeof *r);
}

enum vc_status idf2_generate(struct idf2_model *m, const struct idf2_request *req,
                             struct idf2_result *res, struct vc_err *err)
{
    memset(res, 0, sizeof *res);
    struct prepared p;
    enum vc_status rc = prepare(m, req, &p, &res->err);
    if (rc >= 0) {
        res->n_prompt_tokens = p.n_ids;
        res->n_images_after_split = p.n_images_after_split;
        res->vision_seconds = p.vision_seconds;
        rc = decode_loop(m, req, &p, res, &res->err);
        prepared_free(&p);
    }
    res->status = rc;
    if (rc < 0) {
        free(res->ids);
        free(res->text);
        res->ids = NULL;
        res->text = NULL;
        res->n_ids = 0;
        if (err)
            *err = res->err;
    }
    return rc;
}

enum vc_status idf2_generate_batch(struct idf2_model *m, const struct idf2_request *reqs, size_t n,
                                   struct idf2_result *results, struct vc_err *err)
{
    if (n && (!reqs || !results))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "batch without requests");
    for (size_t i = 0; i < n; i++)
        idf2_generate(m, &reqs[i], &results[i], NULL);
    return VC_OK;
}

/* ---------------------------------------------------------------- score */

/* log softmax(row)[id] in double. */
static double log_prob(const float *row, size_t V, int32_t id)
{
    double mx = row[0], s = 0;
    for (size_t i = 1; i < V; i++)
        mx = row[i] > mx ? row[i] : mx;
    for (size_t i = 0; i < V; i++)
        s += exp((double)row[i] - mx);
    return (double)row[id] - mx - log(s);
}

enum vc_status idf2_score_ids(struct idf2_model *m, const struct idf2_request *req,
                              const int32_t *cont, size_t nc, double *logprob, struct vc_err *err)
{
    const struct idf2_text_config *tc = &m->cfg.model.text;
    const size_t V = (size_t)tc->vocab_size, Dt = (size_t)tc->hidden_size;
    *logprob = 0;
    if (nc == 0)
        return VC_OK;
    for (size_t t = 0; t < nc; t++)
        if (cont[t] < 0 || cont[t] >= tc->vocab_size)
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                              "continuation id %d is outside the vocabulary", (int)cont[t]);
    struct idf2_request r = *req;
    r.trace = NULL;
    struct prepared p;
    enum vc_status rc = prepare(m, &r, &p, err);
    if (rc < 0)
        return rc;
    float *logits = NULL, *xc = NULL;
    struct idf2_kv kv = { 0 };
    if (p.n_ids + nc > IDF2_MAX_CONTEXT)
        rc = vc_err_set(err, VC_ESAMPLE, VC_REASON_field_too_long,
                        "prompt + continuation of %zu tokens (the engine's context is %d)",
                        p.n_ids + nc, IDF2_MAX_CONTEXT);
    if (rc >= 0) {
        logits = vc_malloc_array(nc, V * sizeof(float));
        xc = vc_malloc_array(nc, Dt * sizeof(float));
        if (!logits || !xc)
            rc = oom(err, "score buffers");
    }
    if (rc >= 0)
        rc = idf2_kv_init(&kv, tc, p.n_ids + nc, err);
    /* The prompt's last row predicts cont[0]; continuation row t predicts
     * cont[t + 1]. */
    if (rc >= 0)
        rc = idf2_text_forward(tc, &m->w->text, &kv, p.x, p.n_ids, logits, false, m->nt, err);
    double lp = 0;
    if (rc >= 0)
        lp = log_prob(logits, V, cont[0]);
    if (rc >= 0 && nc > 1)
        rc = idf2_text_embed(tc, &m->w->text, cont, nc - 1, xc, err);
    if (rc >= 0 && nc > 1)
        rc = idf2_text_forward(tc, &m->w->text, &kv, xc, nc - 1, logits, true, m->nt, err);
    for (size_t t = 1; rc >= 0 && t < nc; t++)
        lp += log_prob(logits + (t - 1) * V, V, cont[t]);
    if (rc >= 0)
        *logprob = lp;
    idf2_kv_release(&kv);
    free(logits);
    free(xc);
    prepared_free(&p);
    return rc;
}

enum vc_status idf2_score(struct idf2_model *m, const struct idf2_request *req,
                          const char *continuation, double *logprob, size_t *n_tokens,
                          struct vc_err *err)
{
    *logprob = 0;
    if (n_tokens)
        *n_tokens = 0;
    int32_t *cont = NULL;
    size_t nc = 0;
    enum vc_status rc =
        idf2_tokenizer_encode(m->tok, continuation, strlen(continuation), false, &cont, &nc, err);
    if (rc >= 0)
        rc = idf2_score_ids(m, req, cont, nc, logprob, err);
    if (rc >= 0 && n_tokens)
        *n_tokens = nc;
    free(cont);
    return rc;
}
