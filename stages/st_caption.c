/* st_caption: the caption and ocr stages.  Owns the stage's parameters,
 * the provenance template written with every text, and per task the
 * unit's result cache (and, for Tesseract, the recogniser).  The model is
 * the pool's (st_model.h); the engine decides every token. */
#include "st_caption.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/vc_mem.h"
#include "ocr_tess.h"
#include "st_model.h"
#include "stage_cfg.h"

/* The chat user messages behind the prompt names.  The OCR one asks for
 * the text only, as Idefics2's document fine-tuning data phrased it. */
static const char *const prompt_names[] = { "short", "detailed", "ocr", NULL };
static const char *const prompt_texts[] = {
    "Describe this image in one sentence.",
    "Describe this image in detail.",
    "What is written in this image? Transcribe the text exactly.",
};
enum { PROMPT_SHORT, PROMPT_DETAILED, PROMPT_OCR };

/* Beyond this a batch holds more pixels than it saves weight passes. */
#define CAPTION_MAX_BATCH 256
#define CAPTION_MAX_FIELD 64

struct st_caption {
    const char *where;
    bool ocr;
    struct st_model *model; /* NULL: Tesseract */
    char *lang;             /* Tesseract's language */
    char *prompt;
    bool raw; /* prompt is a processor prompt with its <image>, not a chat turn */
    int image_splitting;
    struct idf2_gen_params gen;
    uint64_t seed;
    char field[CAPTION_MAX_FIELD], prov_key[CAPTION_MAX_FIELD + 16];
    bool replace_txt, record_ids;
    size_t batch; /* requests decoded together: the engine's slots */
    struct idf2_ctx_params ctx_params;
    struct idf2_ctx *ctx; /* made on the first batch, reused (st_model_generate) */
    char tag[32];
    const char *work_dir;
    struct img_limits img_limits;
    cJSON *provenance; /* the per-stage part of every provenance object */
};

struct caption_task {
    struct st_model_cache *cache;
    struct ocr_tess *tess;
};

static void caption_destroy(void *state)
{
    struct st_caption *st = state;
    if (!st)
        return;
    idf2_ctx_free(st->ctx);
    st_model_close(st->model);
    free(st->lang);
    free(st->prompt);
    cJSON_Delete(st->provenance);
    free(st);
}

static enum vc_status parse_sampling(struct st_caption *st, const cJSON *cfg, struct vc_err *err)
{
    const cJSON *s = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "sampling") : NULL;
    if (s && !cJSON_IsNull(s) && !cJSON_IsObject(s))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "%s: \"sampling\" must be an object",
                          st->where);
    static const char *const keys[] = { "temperature", "top_p", "seed", NULL };
    if (cJSON_IsObject(s))
        VC_TRY(stage_cfg_check_keys(s, st->where, keys, err));
    double t, p;
    uint64_t seed;
    VC_TRY(stage_cfg_double(s, st->where, "temperature", 0, 0, 100, &t, err));
    VC_TRY(stage_cfg_double(s, st->where, "top_p", 1, 1e-6, 1, &p, err));
    VC_TRY(stage_cfg_u64(s, st->where, "seed", 0, 0, UINT64_MAX, &seed, err));
    st->gen.temperature = (float)t;
    st->gen.top_p = (float)p;
    st->seed = seed;
    return VC_OK;
}

/* "prompt" (a chat turn) or "raw_prompt" (the processor's text as is, for
 * a base model whose vocabulary lacks the chat's <end_of_utterance>). */
static enum vc_status parse_prompt(struct st_caption *st, const cJSON *cfg, struct vc_err *err)
{
    const char *p, *raw;
    VC_TRY(stage_cfg_str(cfg, st->where, "raw_prompt", NULL, &raw, err));
    if (raw) {
        const char *first = strstr(raw, "<image>");
        if (cJSON_GetObjectItemCaseSensitive(cfg, "prompt") || !first ||
            strstr(first + 1, "<image>"))
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                              "%s: \"raw_prompt\" needs exactly one <image> and no \"prompt\"",
                              st->where);
        st->raw = true;
        st->prompt = vc_strdup(raw);
        return st->prompt ? VC_OK : vc_err_oom(err);
    }
    VC_TRY(stage_cfg_str(cfg, st->where, "prompt",
                         prompt_names[st->ocr ? PROMPT_OCR : PROMPT_SHORT], &p, err));
    const char *text = p;
    for (int i = 0; prompt_names[i]; i++)
        if (strcmp(p, prompt_names[i]) == 0)
            text = prompt_texts[i];
    if (!text[0] || strstr(text, "<image>"))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "%s: \"prompt\" must be short, detailed, ocr or a user message without "
                          "<image> (the image goes first)",
                          st->where);
    st->prompt = vc_strdup(text);
    return st->prompt ? VC_OK : vc_err_oom(err);
}

/* The seed as its exact digits: cJSON prints a number with 15 significant
 * digits when they read back within its tolerance, so 2^53 - 1 came out as
 * 9.00719925474099e+15. */
static bool add_seed(cJSON *p, uint64_t seed)
{
    char digits[24];
    snprintf(digits, sizeof digits, "%llu", (unsigned long long)seed);
    return cJSON_AddRawToObject(p, "seed", digits) != NULL;
}

static enum vc_status build_provenance(struct st_caption *st, struct vc_err *err)
{
    cJSON *p = st->provenance = cJSON_CreateObject();
    if (!p)
        return vc_err_oom(err);
    bool ok = true;
    if (st->model) {
        struct idf2_model_info info;
        idf2_model_info(st_model_engine(st->model), &info);
        int max_new = st->gen.max_new_tokens ? st->gen.max_new_tokens : info.default_max_new;
        ok = cJSON_AddStringToObject(p, "model", st_model_name(st->model)) &&
             cJSON_AddStringToObject(p, "config_sha256", st_model_config_sha256(st->model)) &&
             cJSON_AddStringToObject(p, "engine", "vlmcurate " VC_VERSION " idefics2") &&
             st_model_provenance(p, st->model) &&
             cJSON_AddStringToObject(p, st->raw ? "raw_prompt" : "prompt", st->prompt) &&
             cJSON_AddBoolToObject(p, "image_splitting", st->image_splitting != 0) &&
             cJSON_AddNumberToObject(p, "max_new_tokens", max_new) &&
             cJSON_AddNumberToObject(p, "temperature", st->gen.temperature) &&
             cJSON_AddNumberToObject(p, "top_p", st->gen.top_p) && add_seed(p, st->seed);
    } else {
        char v[64];
        ocr_tess_version(v, sizeof v);
        ok =
            cJSON_AddStringToObject(p, "engine", v) && cJSON_AddStringToObject(p, "lang", st->lang);
    }
    return ok ? VC_OK : vc_err_oom(err);
}

/* The engine context: a slot per request of a batch, each as long as the
 * prompt (the same for every sample: one image, one text, the same
 * splitting) plus the tokens to generate. */
static enum vc_status size_context(struct st_caption *st, struct vc_err *err)
{
    const struct idf2_model *m = st_model_engine(st->model);
    struct idf2_model_info info;
    idf2_model_info(m, &info);
    static const uint8_t none;
    const struct idf2_image_bytes img = { &none, 0, NULL };
    const struct idf2_request req = { .images = &img,
                                      .n_images = 1,
                                      .prompt = st->raw ? st->prompt : NULL,
                                      .chat = st->raw ? NULL : st->prompt,
                                      .image_splitting = st->image_splitting };
    size_t L;
    if (idf2_request_tokens(m, &req, &L, err) < 0)
        return vc_err_prefix(err, "%s: prompt", st->where);
    size_t need =
        L + (size_t)(st->gen.max_new_tokens ? st->gen.max_new_tokens : info.default_max_new);
    /* A prompt over the context fails each sample alone (too_long). */
    st->ctx_params = (struct idf2_ctx_params){
        .n_slots = (int)st->batch,
        .n_ctx = (int)(need < IDF2_MAX_CONTEXT ? need : IDF2_MAX_CONTEXT),
    };
    return VC_OK;
}

static enum vc_status caption_create_kind(const cJSON *cfg, const struct stage_ctx *ctx, bool ocr,
                                          void **state, struct vc_err *err)
{
    static const char *const keys[] = {
        "stage",          "model",      "compute", "prompt",      "raw_prompt", "image_splitting",
        "max_new_tokens", "sampling",   "field",   "replace_txt", "batch",      "engine",
        "lang",           "record_ids", "backend", "quant",       "weights",    NULL
    };
    const char *where = ocr ? "stage 'ocr'" : "stage 'caption'";
    VC_TRY(stage_cfg_check_keys(cfg, where, keys, err));
    struct st_caption *st = calloc(1, sizeof *st);
    if (!st)
        return vc_err_oom(err);
    st->where = where;
    st->ocr = ocr;
    st->work_dir = ctx ? ctx->work_dir : NULL;
    if (ctx && ctx->limits)
        st->img_limits = (struct img_limits){ ctx->limits->max_pixels, ctx->limits->max_side };
    int engine = 0;
    struct st_model_opts mo;
    uint64_t max_new = 0, batch = 0;
    const char *model = NULL, *field = NULL, *lang = NULL;
    static const char *const engines[] = { "model", "tesseract", NULL };
    enum vc_status rc = stage_cfg_enum(cfg, where, "engine", engines, 0, &engine, err);
    if (rc >= 0 && engine == 1 && !ocr)
        rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                        "%s: \"engine\": \"tesseract\" is for the ocr stage", where);
    if (rc >= 0)
        rc = st_model_parse_opts(cfg, where, &mo, err);
    if (rc >= 0)
        rc = stage_cfg_str(cfg, where, "model", NULL, &model, err);
    if (rc >= 0 && engine == 0 && !model)
        rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                        "%s: \"model\" (a checkpoint folder) is required", where);
    if (rc >= 0)
        rc = stage_cfg_u64(cfg, where, "max_new_tokens", 0, 0, IDF2_MAX_CONTEXT, &max_new, err);
    if (rc >= 0)
        rc = stage_cfg_u64(cfg, where, "batch", 16, 1, CAPTION_MAX_BATCH, &batch, err);
    if (rc >= 0)
        rc =
            stage_cfg_str(cfg, where, "field", ocr ? "ocr_text" : "synthetic_caption", &field, err);
    if (rc >= 0 && (!field[0] || strlen(field) >= CAPTION_MAX_FIELD))
        rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "%s: \"field\" must be 1 to %d bytes",
                        where, CAPTION_MAX_FIELD - 1);
    /* The writer keeps its own facts (source, key, image sizes) under that
     * key: a caption there would replace them mid-write. */
    if (rc >= 0 && strcmp(field, "vlmcurate") == 0)
        rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                        "%s: \"field\": \"vlmcurate\" is the writer's own json key", where);
    if (rc >= 0)
        rc = stage_cfg_bool(cfg, where, "replace_txt", false, &st->replace_txt, err);
    if (rc >= 0)
        rc = stage_cfg_bool(cfg, where, "record_ids", false, &st->record_ids, err);
    if (rc >= 0)
        rc = stage_cfg_str(cfg, where, "lang", "eng", &lang, err);
    if (rc >= 0)
        rc = parse_sampling(st, cfg, err);
    if (rc >= 0)
        rc = parse_prompt(st, cfg, err);
    bool split = ocr;
    if (rc >= 0)
        rc = stage_cfg_bool(cfg, where, "image_splitting", ocr, &split, err);
    if (rc >= 0)
        rc = st_model_tag(ocr ? "ocr" : "caption", cfg, st->tag, err);
    if (rc >= 0 && !(st->lang = vc_strdup(lang)))
        rc = vc_err_oom(err);
    if (rc >= 0 && engine == 0)
        rc = st_model_open(model, &mo, ctx, where, &st->model, err);
    if (rc >= 0 && engine == 1) {
        /* Fail at create, not in the first task, when the language is
         * missing. */
        struct ocr_tess *probe;
        rc = ocr_tess_new(st->lang, &probe, err);
        if (rc < 0)
            vc_err_prefix(err, "%s", where);
        ocr_tess_free(probe);
    }
    if (rc >= 0) {
        st->image_splitting = split;
        st->gen.max_new_tokens = (int)max_new;
        st->batch = (size_t)batch;
        strcpy(st->field, field);
        snprintf(st->prov_key, sizeof st->prov_key, "%s_provenance", field);
        rc = build_provenance(st, err);
    }
    if (rc >= 0 && st->model)
        rc = size_context(st, err);
    if (rc < 0) {
        caption_destroy(st);
        return rc;
    }
    *state = st;
    return VC_OK;
}

static enum vc_status caption_create(const cJSON *cfg, const struct stage_ctx *ctx, void **state,
                                     struct vc_err *err)
{
    return caption_create_kind(cfg, ctx, false, state, err);
}

static enum vc_status ocr_create(const cJSON *cfg, const struct stage_ctx *ctx, void **state,
                                 struct vc_err *err)
{
    return caption_create_kind(cfg, ctx, true, state, err);
}

static void caption_task_free(struct stage_task_ctx *ctx)
{
    struct caption_task *t = ctx->task_state;
    if (t) {
        st_model_cache_close(t->cache);
        ocr_tess_free(t->tess);
        free(t);
    }
    ctx->task_state = NULL;
}

static enum vc_status caption_task_end(void *state, struct stage_task_ctx *ctx, struct vc_err *err)
{
    (void)state;
    struct caption_task *t = ctx->task_state;
    enum vc_status rc = t && t->cache ? st_model_cache_finish(t->cache, err) : VC_OK;
    caption_task_free(ctx);
    return rc;
}

static enum vc_status caption_task_begin(void *state, struct stage_task_ctx *ctx,
                                         struct vc_err *err)
{
    struct st_caption *st = state;
    struct caption_task *t = calloc(1, sizeof *t);
    if (!t)
        return vc_err_oom(err);
    ctx->task_state = t;
    enum vc_status rc = VC_OK;
    if (st->work_dir)
        rc = st_model_cache_open(st->work_dir, st->tag, ctx->unit, &t->cache, err);
    if (rc >= 0 && !st->model)
        rc = ocr_tess_new(st->lang, &t->tess, err);
    if (rc < 0)
        caption_task_free(ctx);
    return rc;
}

/* ---- computing ---- */

/* A cache record from one engine result. */
static cJSON *result_record(const struct idf2_result *r)
{
    if (r->status < 0) {
        struct vc_err e = r->err;
        st_model_sample_error(&e);
        return st_model_error_record(&e);
    }
    cJSON *rec = cJSON_CreateObject();
    bool ok = rec && cJSON_AddStringToObject(rec, "text", r->text ? r->text : "") &&
              cJSON_AddNumberToObject(rec, "prompt_tokens", (double)r->n_prompt_tokens) &&
              cJSON_AddNumberToObject(rec, "generated_tokens", (double)r->n_ids) &&
              cJSON_AddBoolToObject(rec, "stopped_on_eos", r->stopped_on_eos);
    cJSON *ids = ok ? cJSON_AddArrayToObject(rec, "generated_ids") : NULL;
    ok = ids != NULL;
    for (size_t i = 0; ok && i < r->n_ids; i++) {
        cJSON *id = cJSON_CreateNumber(r->ids[i]);
        ok = id && cJSON_AddItemToArray(ids, id);
    }
    if (!ok) {
        cJSON_Delete(rec);
        return NULL;
    }
    return rec;
}

/* One compute call's requests: each result becomes its record the moment
 * the engine finishes it. */
struct gen_call {
    const struct st_caption *st;
    struct sample **v;
    const size_t *todo;
    struct idf2_result *res;
    struct st_model_sink *sink;
};

static void gen_done(void *arg, size_t j)
{
    struct gen_call *g = arg;
    struct idf2_result *r = &g->res[j];
    if (r->status == VC_EFATAL && r->err.reason == VC_REASON_out_of_memory) {
        struct vc_err e = r->err;
        vc_err_prefix(&e, "%s: sample '%s'", g->st->where, st_model_sample_key(g->v[g->todo[j]]));
        st_model_sink_fail(g->sink, &e);
    }
    st_model_sink_put(g->sink, j, result_record(r), r->n_ids);
    idf2_result_release(r);
}

/* Runs the engine on the samples `todo` (n of them) in one call. */
static enum vc_status compute_model(struct st_caption *st, struct sample **v, const size_t *todo,
                                    size_t n, struct st_model_sink *sink,
                                    const struct stage_ctx *run, struct vc_err *err)
{
    struct idf2_image_bytes *imgs = vc_malloc_array(n, sizeof *imgs);
    struct idf2_request *reqs = vc_malloc_array(n, sizeof *reqs);
    struct idf2_result *res = calloc(n, sizeof *res);
    enum vc_status rc = imgs && reqs && res ? VC_OK : vc_err_oom(err);
    for (size_t j = 0; rc >= 0 && j < n; j++) {
        const struct sample_field *im = sample_main_image(v[todo[j]]);
        imgs[j] = (struct idf2_image_bytes){ im->data, im->size, NULL };
        reqs[j] = (struct idf2_request){
            .images = &imgs[j],
            .n_images = 1,
            .prompt = st->raw ? st->prompt : NULL,
            .chat = st->raw ? NULL : st->prompt,
            .image_splitting = st->image_splitting,
            .gen = st->gen,
        };
        if (st->gen.temperature > 0)
            reqs[j].gen.seed = st_model_sample_seed(st->seed, st_model_sample_key(v[todo[j]]));
    }
    struct idf2_ctx_params p = st->ctx_params;
    p.n_threads = run ? run->threads : 0;
    struct gen_call call = { st, v, todo, res, sink };
    if (rc >= 0)
        rc = st_model_generate(st->model, &st->ctx, &p, reqs, n, res, gen_done, &call, err);
    for (size_t j = 0; res && j < n; j++)
        idf2_result_release(&res[j]);
    free(imgs);
    free(reqs);
    free(res);
    return rc;
}

static enum vc_status compute_tess(struct st_caption *st, struct caption_task *t, struct sample **v,
                                   const size_t *todo, size_t n, struct st_model_sink *sink,
                                   struct vc_err *err)
{
    for (size_t j = 0; j < n; j++) {
        const struct sample_field *im = sample_main_image(v[todo[j]]);
        char *text = NULL;
        struct vc_err e = { 0 };
        enum vc_status rc = ocr_tess_text(t->tess, im->data, im->size, &st->img_limits, &text, &e);
        if (rc == VC_EFATAL)
            return *err = e, rc;
        cJSON *rec = rc < 0 ? st_model_error_record(&e) : cJSON_CreateObject();
        if (rec && rc >= 0 && !cJSON_AddStringToObject(rec, "text", text)) {
            cJSON_Delete(rec);
            rec = NULL;
        }
        free(text);
        st_model_sink_put(sink, j, rec, 0);
    }
    return VC_OK;
}

/* ---- applying a record to its sample ---- */

/* A caption never rejects: ctx and verdict go unused. */
static enum vc_status apply(void *state, struct sample *s, const cJSON *rec,
                            struct stage_task_ctx *ctx, struct stage_verdict *verdict,
                            struct vc_err *err)
{
    struct st_caption *st = state;
    (void)ctx, (void)verdict;
    VC_TRY(st_model_record_error(rec, st->where, err));
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(rec, "text");
    if (!cJSON_IsString(text))
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_engine_error, "%s: no text", st->where);
    cJSON *meta = sample_meta(s);
    cJSON *prov = meta ? cJSON_Duplicate(st->provenance, true) : NULL;
    if (!prov)
        return vc_err_oom(err);
    static const char *const counts[] = { "prompt_tokens", "generated_tokens", "stopped_on_eos",
                                          "generated_ids", NULL };
    for (int i = 0; counts[i] && (i < 3 || st->record_ids); i++) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(rec, counts[i]);
        cJSON *dup = c ? cJSON_Duplicate(c, true) : NULL;
        if (c && (!dup || !cJSON_AddItemToObject(prov, counts[i], dup))) {
            cJSON_Delete(dup);
            cJSON_Delete(prov);
            return vc_err_oom(err);
        }
    }
    if (st->model && st->gen.temperature > 0) {
        /* The engine's seed for this sample, for `vlmcurate generate --seed`. */
        char seed[24];
        snprintf(seed, sizeof seed, "%llu",
                 (unsigned long long)st_model_sample_seed(st->seed, st_model_sample_key(s)));
        if (!cJSON_AddStringToObject(prov, "sample_seed", seed)) {
            cJSON_Delete(prov);
            return vc_err_oom(err);
        }
    }
    cJSON_DeleteItemFromObjectCaseSensitive(meta, st->prov_key);
    cJSON_AddItemToObject(meta, st->prov_key, prov);
    if (!st->replace_txt) {
        cJSON_DeleteItemFromObjectCaseSensitive(meta, st->field);
        return cJSON_AddStringToObject(meta, st->field, text->valuestring) ? VC_OK
                                                                           : vc_err_oom(err);
    }
    const struct sample_field *old = sample_main_text(s);
    if (old) {
        char *o = vc_strndup((const char *)old->data, old->size);
        cJSON_DeleteItemFromObjectCaseSensitive(meta, "original_txt");
        bool ok = o && cJSON_AddStringToObject(meta, "original_txt", o);
        free(o);
        if (!ok)
            return vc_err_oom(err);
        /* A main text in .caption or .text would stay beside the new .txt,
         * and a loader reading that member would get the replaced text. */
        if (strcmp(old->name, "txt") != 0)
            sample_remove_field(s, old->name);
    }
    return sample_set_field(s, "txt", text->valuestring, strlen(text->valuestring), err);
}

static bool caption_wants(void *state, const struct sample *s)
{
    (void)state;
    return sample_main_image(s) != NULL;
}

static enum vc_status caption_compute(void *state, void *task, struct sample **v,
                                      const size_t *todo, size_t n, struct st_model_sink *sink,
                                      const struct stage_ctx *run, struct vc_err *err)
{
    struct st_caption *st = state;
    return st->model ? compute_model(st, v, todo, n, sink, run, err)
                     : compute_tess(st, task, v, todo, n, sink, err);
}

static const struct st_model_batch_ops caption_batch_ops = {
    .wants = caption_wants,
    .compute = caption_compute,
    .apply = apply,
};

static enum vc_status caption_map_batch(void *state, struct sample **v, size_t n,
                                        struct stage_task_ctx *ctx, enum vc_status *st,
                                        struct stage_verdict *verdicts, struct vc_err *errs)
{
    struct caption_task *t = ctx->task_state;
    return st_model_map_batch(&caption_batch_ops, state, t, t->cache, v, n, ctx, st, verdicts,
                              errs);
}

static size_t caption_batch_size(const void *state)
{
    const struct st_caption *st = state;
    return st->model ? st_model_chunk(st->batch) : st->batch;
}

const struct stage_ops st_caption_ops = {
    .name = "caption",
    .caps = STAGE_CAP_MODEL,
    .create = caption_create,
    .task_begin = caption_task_begin,
    .map_batch = caption_map_batch,
    .batch_size = caption_batch_size,
    .task_end = caption_task_end,
    .destroy = caption_destroy,
};

const struct stage_ops st_ocr_ops = {
    .name = "ocr",
    .caps = STAGE_CAP_MODEL,
    .create = ocr_create,
    .task_begin = caption_task_begin,
    .map_batch = caption_map_batch,
    .batch_size = caption_batch_size,
    .task_end = caption_task_end,
    .destroy = caption_destroy,
};
