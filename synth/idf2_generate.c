/* idf2_generate: requests end to end (SPEC §3-§9): prompt and input_ids,
 * image decoding and preprocessing, vision + connector per image, merging
 * the image features at the <image> positions, the prompt pass, then greedy
 * or seeded top-p sampling with the bad-words and stop rules of
 * generation_config.json; and scoring a continuation.
 *
 * Owns per-request buffers only (ids, embeddings, trace copies); everything
 * a forward pass or a decode step touches is the context's.  A batch runs
 * as slots: each pass of the decoder takes one token row from every slot
 * that is decoding plus prompt rows of slots being prefilled, and a slot
 * whose request stops takes the next request at once.  Never lets one
 * request's failure stop the others. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/vc_mem.h"
#include "synth/idf2_ctx.h"
#include "synth/idf2_image.h"
#include "synth/idf2_prompt.h"

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
        if (rc < 0 && req->images[i].name)
            vc_err_prefix(err, "%s", req->images[i].name);
        else if (rc < 0)
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

/* -------------------------------------------------------------- prepare */

/* A request made ready for the decoder: input ids and the merged embeddings
 * of every row to prefill.  It is prepared in two steps so that the images
 * of the requests admitted together share vision passes: prepare_begin
 * makes the ids and the preprocessed images, encode_images runs the images
 * of several requests, prepare_finish merges the features. */
struct prepared {
    int32_t *ids; /* owned (L) */
    size_t n_ids;
    const int32_t *extra; /* a scored continuation, embedded after the prompt */
    size_t n_extra;
    float *x; /* owned (L + n_extra, Dt): inputs_embeds, then the extra rows */
    size_t n_images_after_split;
    double vision_seconds; /* preprocessing and this request's share of its passes */
    const struct idf2_trace *tr;
    /* From prepare_begin to prepare_finish: */
    struct idf2_pixels px;
    uint8_t *mask; /* (n, gh, gw) the patch attention mask */
    uint32_t gh, gw;
    struct idf2_vision_image *im; /* [n_images_after_split] */
    size_t patches;               /* real patches of all its images */
    const float *feats;           /* (n, n_lat, Dt), in the encoding group's buffer */
    struct vis_trace vt;
};

/* What a request holds only until its images are merged. */
static void prepared_drop_images(struct prepared *p)
{
    idf2_pixels_free(&p->px);
    free(p->mask);
    free(p->im);
    free(p->vt.hidden);
    free(p->vt.proj);
    free(p->vt.pos);
    p->mask = NULL;
    p->im = NULL;
    p->vt = (struct vis_trace){ 0 };
    p->feats = NULL;
}

static void prepared_free(struct prepared *p)
{
    prepared_drop_images(p);
    free(p->ids);
    free(p->x);
    memset(p, 0, sizeof *p);
}

static bool request_splits(const struct idf2_model *m, const struct idf2_request *req)
{
    return req->image_splitting < 0 ? m->cfg.preproc.do_image_splitting : req->image_splitting != 0;
}

/* The processor's input_ids of a request, every one inside the embedding
 * table: a base model's vocabulary may stop before tokens its tokenizer
 * knows (idefics2-8b-base lacks the chat's <end_of_utterance>), and a
 * prompt using one cannot run on it whatever the other requests do. */
static enum vc_status request_ids(const struct idf2_model *m, const struct idf2_request *req,
                                  int32_t **ids, size_t *n_ids, struct vc_err *err)
{
    if (req->n_images && !req->images)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "n_images without images");
    char *prompt = NULL;
    enum vc_status rc = build_prompt(m, req, &prompt, err);
    if (rc >= 0)
        rc = idf2_prompt_ids(m->tok, prompt, req->n_images, m->cfg.proc.image_seq_len,
                             request_splits(m, req), ids, n_ids, err);
    free(prompt);
    const int32_t V = m->cfg.model.text.vocab_size;
    for (size_t i = 0; rc >= 0 && i < *n_ids; i++)
        if ((*ids)[i] >= V) {
            const char *piece = idf2_tokenizer_piece(m->tok, (*ids)[i]);
            rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                            "the prompt holds %s (id %d), outside this model's vocabulary of %d "
                            "ids%s",
                            piece ? piece : "a token", (int)(*ids)[i], (int)V,
                            req->chat ? " (a base model without the chat tokens: give it a raw "
                                        "prompt, not a chat)"
                                      : "");
            free(*ids);
            *ids = NULL;
            *n_ids = 0;
        }
    return rc;
}

enum vc_status idf2_request_tokens(const struct idf2_model *m, const struct idf2_request *req,
                                   size_t *n_tokens, struct vc_err *err)
{
    int32_t *ids = NULL;
    *n_tokens = 0;
    VC_TRY(request_ids(m, req, &ids, n_tokens, err));
    free(ids);
    return VC_OK;
}

/* Each preprocessed image's real patch grid, and the trace buffers. */
static enum vc_status image_grids(const struct idf2_model *m, struct prepared *p,
                                  struct vc_err *err)
{
    const struct idf2_model_config *mc = &m->cfg.model;
    const size_t Dv = (size_t)mc->vision.hidden_size, Dt = (size_t)mc->text.hidden_size;
    const struct idf2_pixels *px = &p->px;
    VC_TRY(idf2_pixels_patch_mask(px, mc->vision.patch_size, &p->mask, &p->gh, &p->gw, err));
    const size_t P = (size_t)p->gh * p->gw, n = px->n_images;
    const int N = mc->vision.image_size / mc->vision.patch_size;
    if (p->tr && p->tr->tensor) {
        /* calloc checks the products; +1 keeps an empty grid non-NULL. */
        p->vt.hidden = calloc(n * P + 1, Dv * sizeof(float));
        p->vt.proj = calloc(n * P + 1, Dt * sizeof(float));
        p->vt.pos = calloc(n * P + 1, sizeof(int64_t));
        if (!p->vt.hidden || !p->vt.proj || !p->vt.pos)
            return oom(err, "trace buffers");
    }
    p->im = calloc(n + 1, sizeof *p->im);
    if (!p->im)
        return oom(err, "image list");
    for (size_t i = 0; i < n; i++) {
        /* HF reads the grid from column 0 and row 0 of the patch mask; the
         * real patches are exactly that top-left block (SPEC §5.1). */
        const uint8_t *mi = p->mask + i * P;
        uint32_t nh = 0, nw = 0;
        size_t total = 0;
        for (uint32_t r = 0; r < p->gh; r++)
            nh += mi[(size_t)r * p->gw];
        for (uint32_t col = 0; col < p->gw; col++)
            nw += mi[col];
        for (size_t e = 0; e < P; e++)
            total += mi[e];
        if (nh == 0 || nw == 0 || total != (size_t)nh * nw)
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_bad_spec,
                              "image %zu: %u real patches do not form a top-left block", i + 1,
                              (unsigned)total);
        /* The one limit of idf2_vision_encode an image can break alone
         * (a preprocessor longest_edge above the tower's image_size):
         * caught here, it fails this request, not every request whose
         * images would have shared its vision pass. */
        if (nh > (uint32_t)N || nw > (uint32_t)N)
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_image_too_large,
                              "image %zu: its %ux%u patch grid exceeds the vision tower's %dx%d "
                              "position table (image_size %d: the preprocessor's longest_edge "
                              "is larger)",
                              i + 1, nh, nw, N, N, mc->vision.image_size);
        p->im[i] = (struct idf2_vision_image){
            px->values + i * 3 * (size_t)px->height * px->width, nh, nw, px->height, px->width,
        };
        p->patches += total;
    }
    return VC_OK;
}

/* Prompt ids and the preprocessed images of a request, plus `extra` more
 * ids to embed after the prompt (a scored continuation, kept by the
 * caller until prepare_finish), all of which must fit the context's n_ctx. */
static enum vc_status prepare_begin(struct idf2_ctx *c, const struct idf2_request *req,
                                    const int32_t *extra, size_t n_extra, struct prepared *out,
                                    struct vc_err *err)
{
    *out = (struct prepared){ .extra = extra, .n_extra = n_extra, .tr = req->trace };
    const struct idf2_model *m = c->m;
    const struct idf2_trace *tr = req->trace;
    enum vc_status rc = request_ids(m, req, &out->ids, &out->n_ids, err);
    if (rc >= 0 && (out->n_ids == 0 || out->n_ids + n_extra >= c->n_ctx))
        rc = vc_err_set(err, VC_ESAMPLE, VC_REASON_field_too_long,
                        "prompt of %zu tokens%s (the context holds %zu)", out->n_ids + n_extra,
                        n_extra ? " with the continuation" : "", c->n_ctx);
    const int64_t sid[2] = { 1, (int64_t)out->n_ids };
    if (rc >= 0)
        rc = trace_ints(tr, "input_ids", sid, 2, out->ids, out->n_ids, 4, err);
    if (rc >= 0 && req->n_images) {
        const double t0 = mono_seconds();
        struct idf2_pixels *px = &out->px;
        rc = preprocess(m, req, request_splits(m, req), px, err);
        out->n_images_after_split = rc >= 0 ? px->n_images : 0;
        if (rc >= 0 && tr && tr->tensor) {
            const size_t hw = (size_t)px->height * px->width;
            const int64_t sv[5] = { 1, (int64_t)px->n_images, 3, px->height, px->width };
            const int64_t sm[4] = { 1, (int64_t)px->n_images, px->height, px->width };
            trace_f32(tr, "pixel_values", sv, 5, px->values);
            rc = trace_ints(tr, "pixel_attention_mask", sm, 4, px->mask, px->n_images * hw, 1, err);
        }
        if (rc >= 0)
            rc = image_grids(m, out, err);
        out->vision_seconds = mono_seconds() - t0;
    }
    if (rc < 0)
        prepared_free(out);
    return rc;
}

/* Images per encoding group at most: its latents (1 MiB per image at
 * idefics2-8b) are held until the group's requests are merged. */
#define GROUP_IMAGES 16

/* Whether a request with `patches` real patches over `images` images
 * joins a group holding `g_patches` over `g_images`: a group is what one
 * vision pass holds (or one request alone). */
static bool group_takes(const struct idf2_ctx *c, size_t g_patches, size_t g_images, size_t patches,
                        size_t images)
{
    return g_images == 0 ||
           (g_patches + patches <= c->max_patches && g_images + images <= GROUP_IMAGES);
}

/* Vision + connector for the images of the requests ps[0..n) into
 * feats, the images of consecutive requests sharing a pass while their
 * patches fit the context's vision scratch.  Each request's rows are bit
 * for bit those of encoding it alone (idf2_vision.h), so its tokens do not
 * depend on its batch mates.  Each request gets its share of a pass's time
 * by patches. */
static enum vc_status encode_images(struct idf2_ctx *c, struct prepared *const *ps, size_t n,
                                    float *feats, struct vc_err *err)
{
    const struct idf2_model *m = c->m;
    const struct idf2_model_config *mc = &m->cfg.model;
    const size_t Dv = (size_t)mc->vision.hidden_size, Dt = (size_t)mc->text.hidden_size;
    const size_t nf = (size_t)mc->perceiver.n_latents * Dt;
    size_t N = 0;
    for (size_t j = 0; j < n; j++)
        N += ps[j]->n_images_after_split;
    struct idf2_vision_image *im = calloc(N + 1, sizeof *im);
    size_t *rows = calloc(N + 1, sizeof *rows), *owner = calloc(N + 1, sizeof *owner);
    enum vc_status rc = im && rows && owner ? VC_OK : oom(err, "image list");
    for (size_t j = 0, i = 0; j < n && rc >= 0; j++) {
        ps[j]->feats = feats + i * nf;
        for (size_t k = 0; k < ps[j]->n_images_after_split; k++, i++) {
            im[i] = ps[j]->im[k];
            rows[i] = (size_t)im[i].nh * im[i].nw;
            owner[i] = j;
        }
    }
    for (size_t i0 = 0, k; i0 < N && rc >= 0; i0 += k) {
        k = idf2_vision_pass_images(im + i0, N - i0, c->max_patches);
        const double t0 = mono_seconds();
        rc =
            idf2_vision_encode(&c->ex, &mc->vision, &m->w->vision, &c->vs, im + i0, k, c->vis, err);
        if (rc < 0)
            break;
        size_t all = 0;
        for (size_t i = i0; i < i0 + k; i++)
            all += rows[i];
        idf2_connector_project(&c->ex, mc, &m->w->connector, &c->cs, c->vis, all, c->proj);
        idf2_connector_resample(&c->ex, mc, &m->w->connector, &c->cs, c->proj, rows + i0, k,
                                feats + i0 * nf);
        const double dt = mono_seconds() - t0;
        c->stats.vision_passes++;
        c->stats.vision_images += k;
        for (size_t i = i0, r0 = 0; i < i0 + k; r0 += rows[i], i++) {
            struct prepared *p = ps[owner[i]];
            p->vision_seconds += dt * (double)rows[i] / (double)all;
            if (!p->vt.hidden)
                continue;
            /* The image's index within its request. */
            const size_t e = (size_t)(p->feats - feats) / nf, ii = i - e;
            const size_t P = (size_t)p->gh * p->gw;
            const uint32_t nh = im[i].nh, nw = im[i].nw;
            scatter_rows(p->vt.hidden + ii * P * Dv, c->vis + r0 * Dv, nh, nw, p->gw, Dv);
            scatter_rows(p->vt.proj + ii * P * Dt, c->proj + r0 * Dt, nh, nw, p->gw, Dt);
            for (uint32_t r = 0; r < nh; r++)
                for (uint32_t col = 0; col < nw; col++)
                    p->vt.pos[ii * P + (size_t)r * p->gw + col] =
                        c->vs.pos[r0 + (size_t)r * nw + col];
        }
    }
    free(owner);
    free(rows);
    free(im);
    return rc;
}

/* The embeddings with the image features merged (SPEC §7), once the
 * request's images went through encode_images; drops the pixels. */
static enum vc_status prepare_finish(struct idf2_ctx *c, struct prepared *p, struct vc_err *err)
{
    const struct idf2_model *m = c->m;
    const struct idf2_model_config *mc = &m->cfg.model;
    const size_t Dt = (size_t)mc->text.hidden_size, nl = (size_t)mc->perceiver.n_latents;
    const struct idf2_trace *tr = p->tr;
    const size_t n = p->n_images_after_split, n_feat_rows = n * nl;
    enum vc_status rc = VC_OK;
    if (p->vt.hidden) {
        const size_t P = (size_t)p->gh * p->gw;
        const int64_t sm[3] = { (int64_t)n, p->gh, p->gw }, sp[2] = { (int64_t)n, (int64_t)P };
        const int64_t sv[3] = { (int64_t)n, (int64_t)P, mc->vision.hidden_size };
        const int64_t st[3] = { (int64_t)n, (int64_t)P, (int64_t)Dt };
        const int64_t sf[3] = { (int64_t)n, (int64_t)nl, (int64_t)Dt };
        rc = trace_ints(tr, "patch_attention_mask", sm, 3, p->mask, n * P, 1, err);
        if (rc >= 0)
            rc = trace_ints(tr, "vision_position_ids", sp, 2, p->vt.pos, n * P, 8, err);
        trace_f32(tr, "vision_last_hidden_state", sv, 3, p->vt.hidden);
        trace_f32(tr, "modality_projection", st, 3, p->vt.proj);
        trace_f32(tr, "image_hidden_states", sf, 3, p->feats);
    }
    p->x = rc >= 0 ? vc_malloc_array(p->n_ids + p->n_extra, Dt * sizeof(float)) : NULL;
    if (rc >= 0 && !p->x)
        rc = oom(err, "embeddings");
    if (rc >= 0)
        rc = idf2_text_embed(&c->ex, &mc->text, &m->w->text, p->ids, p->n_ids, p->x, err);
    if (rc >= 0)
        rc = idf2_text_embed(&c->ex, &mc->text, &m->w->text, p->extra, p->n_extra,
                             p->x + p->n_ids * Dt, err);
    /* The k-th <image> position takes the k-th feature row. */
    size_t k = 0;
    for (size_t i = 0; rc >= 0 && i < p->n_ids; i++) {
        if (p->ids[i] != mc->image_token_id)
            continue;
        if (p->feats && k < n_feat_rows)
            memcpy(p->x + i * Dt, p->feats + k * Dt, Dt * sizeof(float));
        k++;
    }
    if (rc >= 0 && k != n_feat_rows)
        rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                        "the prompt has %zu image tokens but the images give %zu features", k,
                        n_feat_rows);
    const int64_t se[3] = { 1, (int64_t)p->n_ids, (int64_t)Dt };
    if (rc >= 0)
        trace_f32(tr, "inputs_embeds", se, 3, p->x);
    prepared_drop_images(p);
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

/* ---------------------------------------------------------------- slots */

_Static_assert(sizeof(struct sortkey) == IDF2_SORTKEY_BYTES, "sort key size");

/* One sequence of a batch: a request being generated or an item being
 * scored, prefilled in chunks, then (generation) decoded a token a pass. */
struct slot {
    bool busy, scoring;
    size_t idx;          /* the request's index in the batch */
    struct prepared p;   /* rows to prefill: L (generation) or L + nc - 1 (scoring) */
    size_t n_rows, done; /* rows to prefill, rows prefilled */
    size_t first_logit;  /* the first row whose logits are used */
    bool decoding;
    int32_t next; /* decoding: the token to feed */
    /* generation */
    const struct idf2_request *req;
    struct idf2_result *res;
    int32_t *seq; /* the context's row for this slot */
    size_t n_seq, g, max_new;
    struct rng rng;
    float *trace_logits; /* (L, V) with trace->all_logits */
    float *trace_steps;  /* (max_new, V) when tracing */
    /* scoring */
    struct idf2_score_item *item;
    const int32_t *cont;
    double lp;
};

/* The batch being run: the queue and its slots. */
struct batch {
    struct idf2_ctx *c;
    const struct idf2_request *reqs; /* generation */
    struct idf2_result *results;
    struct idf2_score_item *items; /* scoring */
    int32_t **item_ids;            /* scoring: each item's continuation ids */
    size_t n, next;
    struct slot *slots; /* [c->n_slots] */
    size_t *group;      /* [c->n_slots] slots whose images are encoded together */
};

static void slot_release(struct slot *s)
{
    prepared_free(&s->p);
    free(s->trace_logits);
    free(s->trace_steps);
    s->trace_logits = s->trace_steps = NULL;
    s->busy = false;
}

/* Request idx has its final result: hand it over. */
static void notify(const struct idf2_ctx *c, size_t idx)
{
    if (c->on_done)
        c->on_done(c->on_done_arg, idx);
}

static size_t request_max_new(const struct idf2_model *m, const struct idf2_request *req)
{
    const int g = m->cfg.gen.max_new_tokens;
    return req->gen.max_new_tokens > 0 ? (size_t)req->gen.max_new_tokens
           : g > 0                     ? (size_t)g
                                       : IDF2_DEFAULT_MAX_NEW;
}

/* Fills the slot with generation request b->next, its images still to
 * encode (admit_group). */
static enum vc_status admit_generate(struct batch *b, struct slot *s, size_t slot_no,
                                     struct vc_err *err)
{
    struct idf2_ctx *c = b->c;
    const struct idf2_request *req = &b->reqs[b->next];
    const size_t V = (size_t)c->m->cfg.model.text.vocab_size;
    const struct idf2_trace *tr = req->trace;
    const bool tracing = tr && tr->tensor;
    *s = (struct slot){ .idx = b->next, .req = req, .res = &b->results[b->next] };
    memset(s->res, 0, sizeof *s->res);
    enum vc_status rc = prepare_begin(c, req, NULL, 0, &s->p, err);
    if (rc < 0)
        return rc;
    const size_t L = s->p.n_ids;
    s->n_rows = L;
    s->first_logit = tracing && tr->all_logits ? 0 : L - 1;
    s->max_new = request_max_new(c->m, req);
    s->max_new = s->max_new < c->n_ctx - L ? s->max_new : c->n_ctx - L;
    s->seq = c->seq + slot_no * c->n_ctx;
    memcpy(s->seq, s->p.ids, L * sizeof(int32_t));
    s->n_seq = L;
    rng_seed(&s->rng, req->gen.seed);
    s->res->n_prompt_tokens = L;
    s->res->n_images_after_split = s->p.n_images_after_split;
    if (tracing) {
        s->trace_steps = vc_malloc_array(s->max_new, V * sizeof(float));
        s->trace_logits = tr->all_logits ? vc_malloc_array(L, V * sizeof(float)) : NULL;
        if (!s->trace_steps || (tr->all_logits && !s->trace_logits)) {
            slot_release(s);
            return oom(err, "trace buffers");
        }
    }
    return VC_OK;
}

/* Fills the slot with scoring item b->next, its images still to encode. */
static enum vc_status admit_score(struct batch *b, struct slot *s, struct vc_err *err)
{
    struct idf2_score_item *it = &b->items[b->next];
    const int32_t *cont = b->item_ids[b->next];
    const size_t nc = it->n_tokens;
    *s = (struct slot){ .idx = b->next, .scoring = true, .item = it, .cont = cont };
    struct idf2_request r = it->req;
    r.trace = NULL;
    enum vc_status rc = prepare_begin(b->c, &r, cont, nc - 1, &s->p, err);
    if (rc < 0)
        return rc;
    s->n_rows = s->p.n_ids + nc - 1;
    s->first_logit = s->p.n_ids - 1;
    return VC_OK;
}

/* The slot's request failed: its result gets the error, the slot is free. */
static void slot_fail(struct idf2_ctx *c, struct slot *s, const struct vc_err *err)
{
    if (s->scoring) {
        s->item->status = err->status;
        s->item->err = *err;
    } else {
        s->res->status = err->status;
        s->res->err = *err;
    }
    slot_release(s);
    notify(c, s->idx);
}

/* Encodes the images of the slots group[0..n), admitted together, in
 * shared passes and merges them into each one's prompt rows.  Returns
 * whether a slot failed (and is free again). */
static bool admit_group(struct batch *b, const size_t *group, size_t n)
{
    struct idf2_ctx *c = b->c;
    const struct idf2_model_config *mc = &c->m->cfg.model;
    const size_t nf = (size_t)mc->perceiver.n_latents * (size_t)mc->text.hidden_size;
    struct prepared *ps[GROUP_IMAGES + 1];
    size_t np = 0, images = 0;
    for (size_t j = 0; j < n; j++) {
        struct prepared *p = &b->slots[group[j]].p;
        images += p->n_images_after_split;
        if (p->n_images_after_split)
            ps[np++] = p;
    }
    struct vc_err err = { 0 };
    float *feats = images ? vc_malloc_array(images, nf * sizeof(float)) : NULL;
    enum vc_status rc = images && !feats ? oom(&err, "image features") : VC_OK;
    if (rc >= 0 && np)
        rc = encode_images(c, ps, np, feats, &err);
    bool failed = false;
    for (size_t j = 0; j < n; j++) {
        struct slot *s = &b->slots[group[j]];
        struct vc_err e = err;
        if ((rc < 0 && s->p.n_images_after_split) || prepare_finish(c, &s->p, &e) < 0) {
            slot_fail(c, s, &e);
            failed = true;
            continue;
        }
        c->stats.vision_seconds += s->p.vision_seconds;
        if (!s->scoring)
            s->res->vision_seconds = s->p.vision_seconds;
    }
    free(feats);
    return failed;
}

/* Takes requests from the queue into free slots until both run out.  A
 * request that fails to prepare gets its result at once, and a scoring item
 * that needs no pass (an error already, or nothing to score) is skipped.
 * Requests admitted together are encoded in groups of what one vision pass
 * holds, so a vision weight is read and packed once for up to ~6 378 px
 * images instead of once per image. */
static void admit(struct batch *b)
{
    struct idf2_ctx *c = b->c;
    for (bool again = true; again;) {
        size_t n_group = 0, patches = 0, images = 0;
        again = false;
        for (size_t i = 0; i < c->n_slots; i++) {
            struct slot *s = &b->slots[i];
            while (!s->busy && b->next < b->n) {
                c->kv[i].len = 0;
                if (b->items) {
                    struct idf2_score_item *it = &b->items[b->next];
                    if (it->status >= 0 && it->n_tokens > 0) {
                        it->status = admit_score(b, s, &it->err);
                        s->busy = it->status >= 0;
                    }
                } else {
                    struct idf2_result *res = &b->results[b->next];
                    res->status = admit_generate(b, s, i, &res->err);
                    s->busy = res->status >= 0;
                }
                if (!s->busy)
                    notify(c, b->next);
                b->next++;
            }
            if (!s->busy || s->p.x)
                continue;
            const size_t np = s->p.patches, ni = s->p.n_images_after_split;
            if (!group_takes(c, patches, images, np, ni)) {
                again |= admit_group(b, b->group, n_group);
                n_group = patches = images = 0;
            }
            b->group[n_group++] = i;
            patches += np;
            images += ni;
        }
        again |= admit_group(b, b->group, n_group);
        again = again && b->next < b->n;
    }
}

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

/* The request's result once it stopped: ids, text, traces. */
static void finish_generate(struct idf2_ctx *c, struct slot *s)
{
    struct idf2_result *res = s->res;
    const struct idf2_trace *tr = s->req->trace;
    const size_t V = (size_t)c->m->cfg.model.text.vocab_size, L = s->p.n_ids;
    enum vc_status rc = VC_OK;
    res->n_ids = s->g;
    res->ids = vc_malloc_array(s->g ? s->g : 1, sizeof(int32_t));
    if (!res->ids)
        rc = oom(&res->err, "result ids");
    if (rc >= 0) {
        memcpy(res->ids, s->seq + L, s->g * sizeof(int32_t));
        rc = idf2_tokenizer_decode(c->m->tok, res->ids, s->g, true, &res->text, NULL, &res->err);
    }
    if (rc >= 0 && s->trace_steps) {
        const int64_t ss[2] = { (int64_t)s->g, (int64_t)V }, sg[2] = { 1, (int64_t)s->g };
        trace_f32(tr, "step_logits", ss, 2, s->trace_steps);
        rc = trace_ints(tr, "generated_ids", sg, 2, res->ids, s->g, 4, &res->err);
    }
    if (rc < 0) {
        free(res->ids);
        free(res->text);
        res->ids = NULL;
        res->text = NULL;
        res->n_ids = 0;
    }
    res->status = rc;
    slot_release(s);
    notify(c, s->idx);
}

/* A generation slot's next token from its logits row; stops the request
 * on a stop token or at max_new. */
static void next_token(struct idf2_ctx *c, struct slot *s, const float *row)
{
    const struct idf2_generation_config *gc = &c->m->cfg.gen;
    const size_t V = (size_t)c->m->cfg.model.text.vocab_size;
    const struct idf2_gen_params *gp = &s->req->gen;
    if (s->trace_steps)
        memcpy(s->trace_steps + s->g * V, row, V * sizeof(float));
    memcpy(c->work, row, V * sizeof(float));
    ban_bad_words(gc, s->seq, s->n_seq, c->work, V);
    const int32_t tok = gp->temperature > 0
                            ? sample(c->work, V, gp->temperature, gp->top_p, &s->rng, c->keys)
                            : argmax(c->work, V);
    s->seq[s->n_seq++] = tok;
    s->g++;
    s->next = tok;
    s->decoding = true;
    if (is_eos(gc, tok))
        s->res->stopped_on_eos = true;
    if (s->res->stopped_on_eos || s->g == s->max_new)
        finish_generate(c, s);
}

/* One decoder pass over every busy slot: a token row per decoding slot,
 * then prompt rows of prefilling slots up to the pass's row budget. */
static enum vc_status run_pass(struct batch *b, struct vc_err *err)
{
    struct idf2_ctx *c = b->c;
    const struct idf2_model *m = c->m;
    const struct idf2_text_config *tc = &m->cfg.model.text;
    const size_t V = (size_t)tc->vocab_size, Dt = (size_t)tc->hidden_size;
    size_t n_seg = 0, R = 0, budget = c->max_rows;
    for (size_t i = 0; i < c->n_slots; i++)
        budget -= b->slots[i].busy && b->slots[i].decoding;
    for (int phase = 0; phase < 2; phase++)
        for (size_t i = 0; i < c->n_slots; i++) {
            struct slot *s = &b->slots[i];
            if (!s->busy || s->decoding != (phase == 0))
                continue;
            size_t n = 1, first = s->done;
            if (!s->decoding) {
                n = s->n_rows - s->done < budget ? s->n_rows - s->done : budget;
                if (n == 0)
                    continue;
                budget -= n;
                memcpy(c->x + R * Dt, s->p.x + s->done * Dt, n * Dt * sizeof(float));
            } else {
                enum vc_status rc =
                    idf2_text_embed(&c->ex, tc, &m->w->text, &s->next, 1, c->x + R * Dt, err);
                if (rc < 0)
                    return rc;
            }
            /* Rows from first_logit on need logits: a suffix of the chunk. */
            const size_t end = first + n, from = first > s->first_logit ? first : s->first_logit;
            const size_t n_logits = s->decoding ? 1 : end > from ? end - from : 0;
            c->segs[n_seg] =
                (struct idf2_text_seg){ .kv = &c->kv[i], .n = n, .n_logits = n_logits };
            c->seg_slot[n_seg++] = i;
            R += n;
        }
    const double t0 = mono_seconds();
    enum vc_status rc = idf2_text_forward(&c->ex, tc, &m->w->text, &m->rope, &c->ts, c->segs, n_seg,
                                          c->x, c->logits, err);
    if (rc < 0)
        return rc;
    const double dt = mono_seconds() - t0;
    c->stats.passes++;
    c->stats.rows += R;
    c->stats.max_batch = n_seg > c->stats.max_batch ? n_seg : c->stats.max_batch;
    size_t n_dec = 0;
    for (size_t k = 0; k < n_seg; k++)
        n_dec += b->slots[c->seg_slot[k]].decoding;
    struct idf2_pass_stats *ps = n_dec == 0       ? &c->stats.prefill
                                 : n_dec == n_seg ? &c->stats.decode
                                                  : &c->stats.mixed;
    ps->seconds += dt;
    ps->passes++;
    ps->rows += R;
    const float *lg = c->logits;
    for (size_t k = 0; k < n_seg; k++) {
        struct slot *s = &b->slots[c->seg_slot[k]];
        const struct idf2_text_seg *sg = &c->segs[k];
        const float *rows = lg;
        lg += sg->n_logits * V;
        if (s->decoding) {
            s->res->decode_seconds += dt;
            next_token(c, s, rows);
            continue;
        }
        const size_t end = s->done + sg->n, first = end - sg->n_logits;
        s->done = end;
        if (s->scoring) {
            for (size_t r = first; r < end; r++)
                s->lp += log_prob(rows + (r - first) * V, V, s->cont[r - s->first_logit]);
            if (end == s->n_rows) {
                s->item->logprob = s->lp;
                s->item->status = VC_OK;
                slot_release(s);
                notify(c, s->idx);
            }
            continue;
        }
        s->res->prefill_seconds += dt;
        if (s->trace_logits)
            memcpy(s->trace_logits + first * V, rows, sg->n_logits * V * sizeof(float));
        if (end < s->n_rows)
            continue;
        if (s->trace_logits) {
            const int64_t sl[3] = { 1, (int64_t)s->n_rows, (int64_t)V };
            trace_f32(s->req->trace, "logits", sl, 3, s->trace_logits);
        }
        next_token(c, s, rows + (sg->n_logits - 1) * V);
    }
    return VC_OK;
}

/* Runs the batch to the end.  A pass failure (a bug: every size was
 * checked at admission) fails the requests then in flight. */
static void run_batch(struct batch *b)
{
    struct idf2_ctx *c = b->c;
    for (;;) {
        admit(b);
        bool any = false;
        for (size_t i = 0; i < c->n_slots; i++)
            any |= b->slots[i].busy;
        if (!any)
            break;
        struct vc_err err = { 0 };
        if (run_pass(b, &err) >= 0)
            continue;
        for (size_t i = 0; i < c->n_slots; i++)
            if (b->slots[i].busy)
                slot_fail(c, &b->slots[i], &err);
    }
}

static enum vc_status batch_start(struct batch *b, struct idf2_ctx *c, struct vc_err *err)
{
    b->c = c;
    b->slots = calloc(c->n_slots, sizeof *b->slots);
    b->group = calloc(c->n_slots, sizeof *b->group);
    return b->slots && b->group ? VC_OK : oom(err, "batch slots");
}

static void batch_end(struct batch *b)
{
    free(b->slots);
    free(b->group);
}

enum vc_status idf2_ctx_generate(struct idf2_ctx *c, const struct idf2_request *reqs, size_t n,
                                 struct idf2_result *results, struct vc_err *err)
{
    if (n && (!reqs || !results))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "batch without requests");
    struct batch b = { .reqs = reqs, .results = results, .n = n };
    enum vc_status rc = batch_start(&b, c, err);
    if (rc >= 0)
        run_batch(&b);
    batch_end(&b);
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

/* A context just large enough for these requests: each one's prompt plus
 * its max_new_tokens (or plus `extra` tokens), at most IDF2_MAX_CONTEXT. */
static enum vc_status ctx_for(struct idf2_model *m, const struct idf2_request *reqs, size_t n,
                              const size_t *extra, struct idf2_ctx **out, struct vc_err *err)
{
    size_t need = 1;
    for (size_t i = 0; i < n; i++) {
        int32_t *ids = NULL;
        size_t L = 0;
        struct vc_err ignored = { 0 };
        if (request_ids(m, &reqs[i], &ids, &L, &ignored) >= 0) {
            const size_t more = extra ? extra[i] : request_max_new(m, &reqs[i]);
            need = L + more > need ? L + more : need;
        }
        free(ids);
    }
    const struct idf2_ctx_params p = {
        .n_slots = (int)(n < IDF2_DEFAULT_SLOTS ? (n ? n : 1) : IDF2_DEFAULT_SLOTS),
        .n_ctx = (int)(need < IDF2_MAX_CONTEXT ? need : IDF2_MAX_CONTEXT),
    };
    return idf2_ctx_new(m, &p, out, err);
}

enum vc_status idf2_generate_batch(struct idf2_model *m, const struct idf2_request *reqs, size_t n,
                                   struct idf2_result *results, struct vc_err *err)
{
    if (n && (!reqs || !results))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "batch without requests");
    struct idf2_ctx *c = NULL;
    enum vc_status rc = ctx_for(m, reqs, n, NULL, &c, err);
    if (rc >= 0)
        rc = idf2_ctx_generate(c, reqs, n, results, err);
    idf2_ctx_free(c);
    return rc;
}

enum vc_status idf2_generate(struct idf2_model *m, const struct idf2_request *req,
                             struct idf2_result *res, struct vc_err *err)
{
    enum vc_status rc = idf2_generate_batch(m, req, 1, res, err);
    if (rc < 0) {
        memset(res, 0, sizeof *res);
        res->status = rc;
        if (err)
            res->err = *err;
        return rc;
    }
    if (res->status < 0 && err)
        *err = res->err;
    return res->status;
}

/* ---------------------------------------------------------------- score */

enum vc_status idf2_ctx_score(struct idf2_ctx *c, struct idf2_score_item *items, size_t n,
                              struct vc_err *err)
{
    if (n && !items)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "batch without items");
    const struct idf2_text_config *tc = &c->m->cfg.model.text;
    int32_t **ids = calloc(n ? n : 1, sizeof *ids);
    if (!ids)
        return oom(err, "score ids");
    for (size_t i = 0; i < n; i++) {
        struct idf2_score_item *it = &items[i];
        it->status = VC_OK;
        it->err = (struct vc_err){ 0 };
        it->logprob = 0;
        if (it->continuation) {
            it->status =
                idf2_tokenizer_encode(c->m->tok, it->continuation, strlen(it->continuation), false,
                                      &ids[i], &it->n_tokens, &it->err);
            continue;
        }
        it->n_tokens = it->n_ids;
        for (size_t t = 0; t < it->n_ids && it->status >= 0; t++)
            if (it->ids[t] < 0 || it->ids[t] >= tc->vocab_size)
                it->status =
                    vc_err_set(&it->err, VC_EUSAGE, VC_REASON_bad_spec,
                               "continuation id %d is outside the vocabulary", (int)it->ids[t]);
        if (it->status >= 0 && it->n_ids) {
            ids[i] = vc_malloc_array(it->n_ids, sizeof(int32_t));
            if (!ids[i])
                it->status = oom(&it->err, "continuation ids");
            else
                memcpy(ids[i], it->ids, it->n_ids * sizeof(int32_t));
        }
    }
    struct batch b = { .items = items, .item_ids = ids, .n = n };
    enum vc_status rc = batch_start(&b, c, err);
    if (rc >= 0)
        run_batch(&b);
    batch_end(&b);
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    return rc;
}

/* One item through a context made for it. */
static enum vc_status score_one(struct idf2_model *m, struct idf2_score_item *it,
                                struct vc_err *err)
{
    struct idf2_ctx *c = NULL;
    size_t extra = it->n_ids;
    if (it->continuation) {
        int32_t *ids = NULL;
        if (idf2_tokenizer_encode(m->tok, it->continuation, strlen(it->continuation), false, &ids,
                                  &extra, err) < 0)
            extra = 0;
        free(ids);
    }
    enum vc_status rc = ctx_for(m, &it->req, 1, &extra, &c, err);
    if (rc >= 0)
        rc = idf2_ctx_score(c, it, 1, err);
    idf2_ctx_free(c);
    if (rc >= 0 && it->status < 0) {
        rc = it->status;
        if (err)
            *err = it->err;
    }
    return rc;
}

enum vc_status idf2_score_ids(struct idf2_model *m, const struct idf2_request *req,
                              const int32_t *ids, size_t n_ids, double *logprob, struct vc_err *err)
{
    struct idf2_score_item it = { .req = *req, .ids = ids, .n_ids = n_ids };
    enum vc_status rc = score_one(m, &it, err);
    *logprob = rc >= 0 ? it.logprob : 0;
    return rc;
}

enum vc_status idf2_score(struct idf2_model *m, const struct idf2_request *req,
                          const char *continuation, double *logprob, size_t *n_tokens,
                          struct vc_err *err)
{
    struct idf2_score_item it = { .req = *req, .continuation = continuation };
    enum vc_status rc = score_one(m, &it, err);
    *logprob = rc >= 0 ? it.logprob : 0;
    if (n_tokens)
        *n_tokens = rc >= 0 ? it.n_tokens : 0;
    return rc;
}
