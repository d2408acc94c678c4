/* st_score: the score stage.  Owns the score list, the prompts and the
 * filters; the log-likelihoods are the engine's (idf2_score through the
 * pool), the per-unit cache and the batch loop st_model's. */
#include "st_score.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/vc_mem.h"
#include "st_model.h"
#include "stage_cfg.h"

#define WHERE "stage 'score'"

enum { SCORE_RELEVANCE, SCORE_PERPLEXITY, SCORE_NSFW, SCORE_N };
/* Static: verdicts and records borrow them for the run. */
static const char *const score_names[] = { "relevance", "perplexity", "nsfw", NULL };

struct score_filter {
    bool has_min, has_max;
    /* A quantile cut, computed over every unit in PLAN: max_quantile drops
     * the values above the q-quantile, min_quantile those below it. */
    bool has_quantile, quantile_min;
    double min, max, quantile;
};

struct st_score {
    struct st_model *model;
    bool wanted[SCORE_N];
    struct score_filter filter[SCORE_N];
    /* Each score's chat turn, or its raw processor text (NULL when the
     * chat form is used); borrowed from prompts, one allocation. */
    const char *relevance_chat, *relevance_raw, *nsfw_chat, *nsfw_raw;
    char *prompts;
    int image_splitting;
    size_t batch; /* items decoded together: the engine's slots */
    struct idf2_ctx_params ctx_params;
    struct idf2_ctx *ctx; /* made on the first batch, reused (st_model_score) */
    char tag[32];
    const char *work_dir;
    cJSON *provenance;
};

static void score_destroy(void *state)
{
    struct st_score *st = state;
    if (!st)
        return;
    idf2_ctx_free(st->ctx);
    st_model_close(st->model);
    free(st->prompts);
    cJSON_Delete(st->provenance);
    free(st);
}

static int score_index(const char *name)
{
    for (int i = 0; score_names[i]; i++)
        if (strcmp(name, score_names[i]) == 0)
            return i;
    return -1;
}

static enum vc_status parse_scores(struct st_score *st, const cJSON *cfg, struct vc_err *err)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(cfg, "scores");
    if (!list || cJSON_IsNull(list)) {
        for (int i = 0; i < SCORE_N; i++)
            st->wanted[i] = true;
        return VC_OK;
    }
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) == 0)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          WHERE ": \"scores\" must be a non-empty list of relevance, perplexity, "
                                "nsfw");
    const cJSON *it;
    cJSON_ArrayForEach(it, list)
    {
        int k = cJSON_IsString(it) ? score_index(it->valuestring) : -1;
        if (k < 0)
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                              WHERE ": \"scores\": unknown score '%.64s' (known: relevance, "
                                    "perplexity, nsfw)",
                              cJSON_IsString(it) ? it->valuestring : "(not a string)");
        st->wanted[k] = true;
    }
    return VC_OK;
}

/* A bound given in filter f: null is absent, as everywhere in a spec. */
static bool filter_gives(const cJSON *f, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(f, key);
    return it && !cJSON_IsNull(it);
}

static enum vc_status parse_filters(struct st_score *st, const cJSON *cfg, struct vc_err *err)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(cfg, "filters");
    if (!list || cJSON_IsNull(list))
        return VC_OK;
    if (!cJSON_IsArray(list))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          WHERE ": \"filters\" must be a list of objects");
    static const char *const keys[] = {
        "name", "min", "max", "max_quantile", "min_quantile", NULL
    };
    const cJSON *f;
    cJSON_ArrayForEach(f, list)
    {
        VC_TRY(stage_cfg_check_keys(f, WHERE " filter", keys, err));
        const char *name;
        VC_TRY(stage_cfg_str(f, WHERE " filter", "name", "", &name, err));
        int k = score_index(name);
        if (k < 0 || !st->wanted[k])
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                              WHERE ": filter on '%s', which is not in \"scores\"", name);
        struct score_filter *sf = &st->filter[k];
        if (sf->has_min || sf->has_max || sf->has_quantile)
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                              WHERE ": two filters on '%s': give min, max and one quantile in "
                                    "one filter",
                              name);
        sf->has_min = filter_gives(f, "min");
        sf->has_max = filter_gives(f, "max");
        const bool maxq = filter_gives(f, "max_quantile");
        sf->quantile_min = filter_gives(f, "min_quantile");
        /* Two cuts would each need the other's survivors: ambiguous. */
        if (maxq && sf->quantile_min)
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                              WHERE ": filter on '%s': max_quantile or min_quantile, not both",
                              name);
        sf->has_quantile = maxq || sf->quantile_min;
        VC_TRY(stage_cfg_double(f, WHERE " filter", "min", 0, -INFINITY, INFINITY, &sf->min, err));
        VC_TRY(stage_cfg_double(f, WHERE " filter", "max", 0, -INFINITY, INFINITY, &sf->max, err));
        VC_TRY(stage_cfg_double(f, WHERE " filter",
                                sf->quantile_min ? "min_quantile" : "max_quantile", 1, 0, 1,
                                &sf->quantile, err));
        /* min above max rejects every sample: a typo, not a filter. */
        if (sf->has_min && sf->has_max && sf->min > sf->max)
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                              WHERE ": filter on '%s': min %g is above max %g", name, sf->min,
                              sf->max);
    }
    return VC_OK;
}

static enum vc_status parse_prompts(struct st_score *st, const cJSON *cfg, struct vc_err *err)
{
    const char *text[4];
    VC_TRY(stage_cfg_str(cfg, WHERE, "relevance_prompt", "Describe this image in one sentence.",
                         &text[0], err));
    VC_TRY(stage_cfg_str(cfg, WHERE, "relevance_raw_prompt", NULL, &text[1], err));
    VC_TRY(stage_cfg_str(cfg, WHERE, "nsfw_prompt",
                         "Is this image sexually explicit or not safe for work? Answer yes or no.",
                         &text[2], err));
    VC_TRY(stage_cfg_str(cfg, WHERE, "nsfw_raw_prompt", NULL, &text[3], err));
    if (text[1] && !strstr(text[1], "<image>"))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          WHERE ": \"relevance_raw_prompt\" needs one <image>");
    /* As the caption stage's raw_prompt: the one image the score is about,
     * and not both forms. */
    const char *first = text[3] ? strstr(text[3], "<image>") : NULL;
    if (text[3] && (cJSON_GetObjectItemCaseSensitive(cfg, "nsfw_prompt") || !first ||
                    strstr(first + 1, "<image>")))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          WHERE ": \"nsfw_raw_prompt\" needs exactly one <image> and no "
                                "\"nsfw_prompt\"");
    size_t len[4], total = 0;
    for (int i = 0; i < 4; i++)
        total += len[i] = text[i] ? strlen(text[i]) + 1 : 0;
    if (!(st->prompts = malloc(total)))
        return vc_err_oom(err);
    const char **dst[4] = { &st->relevance_chat, &st->relevance_raw, &st->nsfw_chat,
                            &st->nsfw_raw };
    for (size_t i = 0, at = 0; i < 4; at += len[i++])
        *dst[i] = text[i] ? memcpy(st->prompts + at, text[i], len[i]) : NULL;
    return VC_OK;
}

static enum vc_status build_provenance(struct st_score *st, struct vc_err *err)
{
    cJSON *p = st->provenance = cJSON_CreateObject();
    bool ok = p && cJSON_AddStringToObject(p, "model", st_model_name(st->model)) &&
              cJSON_AddStringToObject(p, "config_sha256", st_model_config_sha256(st->model)) &&
              cJSON_AddStringToObject(p, "engine", "vlmcurate " VC_VERSION " idefics2") &&
              st_model_provenance(p, st->model);
    if (ok && st->wanted[SCORE_RELEVANCE])
        ok = st->relevance_raw
                 ? cJSON_AddStringToObject(p, "relevance_raw_prompt", st->relevance_raw) != NULL
                 : cJSON_AddStringToObject(p, "relevance_prompt", st->relevance_chat) != NULL;
    if (ok && st->wanted[SCORE_NSFW])
        ok = st->nsfw_raw ? cJSON_AddStringToObject(p, "nsfw_raw_prompt", st->nsfw_raw) != NULL
                          : cJSON_AddStringToObject(p, "nsfw_prompt", st->nsfw_chat) != NULL;
    return ok ? VC_OK : vc_err_oom(err);
}

/* The request a score's prompt makes; img is the sample's image. */
static struct idf2_request score_request(const struct st_score *st, int k,
                                         const struct idf2_image_bytes *img)
{
    struct idf2_request req = { .images = img,
                                .n_images = 1,
                                .image_splitting = st->image_splitting };
    if (k == SCORE_RELEVANCE) {
        req.prompt = st->relevance_raw;
        req.chat = st->relevance_raw ? NULL : st->relevance_chat;
    } else if (k == SCORE_NSFW) {
        req.prompt = st->nsfw_raw;
        req.chat = st->nsfw_raw ? NULL : st->nsfw_chat;
    } else {
        /* Perplexity: the text after BOS alone. */
        req = (struct idf2_request){ .prompt = "", .image_splitting = -1 };
    }
    return req;
}

/* The engine context: a slot per scored item, each long enough for the
 * longest prompt plus max_text_tokens of text (a longer text is the
 * sample's too_long). */
static enum vc_status size_context(struct st_score *st, uint64_t max_text, struct vc_err *err)
{
    static const uint8_t none;
    const struct idf2_image_bytes img = { &none, 0, NULL };
    size_t need = 0;
    for (int k = 0; k < SCORE_N; k++) {
        if (!st->wanted[k])
            continue;
        const struct idf2_request req = score_request(st, k, &img);
        size_t L;
        if (idf2_request_tokens(st_model_engine(st->model), &req, &L, err) < 0)
            return vc_err_prefix(err, WHERE ": %s prompt", score_names[k]);
        /* "Yes" / "No" are a token or two. */
        L += k == SCORE_NSFW ? 8 : (size_t)max_text;
        need = L > need ? L : need;
    }
    st->ctx_params = (struct idf2_ctx_params){
        .n_slots = (int)st->batch,
        .n_ctx = (int)(need + 1 < IDF2_MAX_CONTEXT ? need + 1 : IDF2_MAX_CONTEXT),
    };
    return VC_OK;
}

static enum vc_status score_create(const cJSON *cfg, const struct stage_ctx *ctx, void **state,
                                   struct vc_err *err)
{
    static const char *const keys[] = { "stage",
                                        "model",
                                        "compute",
                                        "scores",
                                        "filters",
                                        "relevance_prompt",
                                        "relevance_raw_prompt",
                                        "nsfw_prompt",
                                        "nsfw_raw_prompt",
                                        "image_splitting",
                                        "batch",
                                        "max_text_tokens",
                                        "backend",
                                        "quant",
                                        "weights",
                                        NULL };
    VC_TRY(stage_cfg_check_keys(cfg, WHERE, keys, err));
    struct st_score *st = calloc(1, sizeof *st);
    if (!st)
        return vc_err_oom(err);
    st->work_dir = ctx ? ctx->work_dir : NULL;
    struct st_model_opts mo;
    uint64_t batch = 16, max_text = 0;
    bool split = false;
    const char *model = NULL;
    enum vc_status rc = parse_scores(st, cfg, err);
    if (rc >= 0)
        rc = parse_filters(st, cfg, err);
    if (rc >= 0)
        rc = parse_prompts(st, cfg, err);
    if (rc >= 0)
        rc = st_model_parse_opts(cfg, WHERE, &mo, err);
    if (rc >= 0)
        rc = stage_cfg_bool(cfg, WHERE, "image_splitting", false, &split, err);
    if (rc >= 0)
        rc = stage_cfg_u64(cfg, WHERE, "batch", 16, 1, 256, &batch, err);
    st->batch = (size_t)batch;
    if (rc >= 0)
        rc = stage_cfg_u64(cfg, WHERE, "max_text_tokens", 512, 1, IDF2_MAX_CONTEXT / 2, &max_text,
                           err);
    if (rc >= 0)
        rc = stage_cfg_str(cfg, WHERE, "model", NULL, &model, err);
    if (rc >= 0 && !model)
        rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                        WHERE ": \"model\" (a checkpoint folder) is required");
    if (rc >= 0)
        rc = st_model_tag("score", cfg, st->tag, err);
    if (rc >= 0)
        rc = st_model_open(model, &mo, ctx, WHERE, &st->model, err);
    st->image_splitting = split;
    if (rc >= 0)
        rc = size_context(st, max_text, err);
    if (rc >= 0)
        rc = build_provenance(st, err);
    if (rc < 0) {
        score_destroy(st);
        return rc;
    }
    *state = st;
    return VC_OK;
}

static enum vc_status score_task_end(void *state, struct stage_task_ctx *ctx, struct vc_err *err)
{
    (void)state;
    enum vc_status rc = ctx->task_state ? st_model_cache_finish(ctx->task_state, err) : VC_OK;
    st_model_cache_close(ctx->task_state);
    ctx->task_state = NULL;
    return rc;
}

static enum vc_status score_task_begin(void *state, struct stage_task_ctx *ctx, struct vc_err *err)
{
    struct st_score *st = state;
    ctx->task_state = NULL;
    if (!st->work_dir)
        return VC_OK;
    struct st_model_cache *c;
    VC_TRY(st_model_cache_open(st->work_dir, st->tag, ctx->unit, &c, err));
    ctx->task_state = c;
    return VC_OK;
}

/* ---- computing ---- */

/* The main text as a string (NULL when none; owned). */
static char *main_text(const struct sample *s)
{
    const struct sample_field *t = sample_main_text(s);
    return t ? vc_strndup((const char *)t->data, t->size) : NULL;
}

static bool score_wants(void *state, const struct sample *s)
{
    const struct st_score *st = state;
    bool img = sample_main_image(s) != NULL, txt = sample_main_text(s) != NULL;
    return (st->wanted[SCORE_RELEVANCE] && img && txt) || (st->wanted[SCORE_PERPLEXITY] && txt) ||
           (st->wanted[SCORE_NSFW] && img);
}

/* The items of one sample: relevance, perplexity, then nsfw's "Yes" and
 * "No"; SCORE_N + 1 slots. */
enum { ITEM_REL, ITEM_PPL, ITEM_YES, ITEM_NO, ITEM_N };

/* One compute call: every wanted score of every sample as one engine
 * batch; a sample's record is made when its last item finishes. */
struct score_call {
    struct st_score *st;
    struct idf2_score_item *items;
    size_t *owner;        /* item -> sample j */
    int *slot;            /* item -> ITEM_* */
    size_t *first, *left; /* per sample: its first item, items not finished */
    size_t n, n_items;
    uint64_t *tokens; /* per sample: tokens scored */
    struct st_model_sink *sink;
};

/* The record of sample j from its finished items: the first failing item
 * (in ITEM_* order) makes it an error record. */
static cJSON *score_record(const struct score_call *c, size_t j)
{
    const size_t end = j + 1 < c->n ? c->first[j + 1] : c->n_items;
    double lp[ITEM_N], n[ITEM_N];
    bool have[ITEM_N] = { false };
    for (size_t i = c->first[j]; i < end; i++) {
        const struct idf2_score_item *it = &c->items[i];
        if (it->status < 0) {
            struct vc_err e = it->err;
            st_model_sample_error(&e);
            return st_model_error_record(&e);
        }
        have[c->slot[i]] = true;
        lp[c->slot[i]] = it->logprob;
        n[c->slot[i]] = (double)it->n_tokens;
    }
    double value[SCORE_N] = { NAN, NAN, NAN };
    if (have[ITEM_REL] && n[ITEM_REL] > 0)
        value[SCORE_RELEVANCE] = lp[ITEM_REL] / n[ITEM_REL];
    if (have[ITEM_PPL] && n[ITEM_PPL] > 0)
        value[SCORE_PERPLEXITY] = exp(-lp[ITEM_PPL] / n[ITEM_PPL]);
    if (have[ITEM_YES] && have[ITEM_NO])
        value[SCORE_NSFW] = 1.0 / (1.0 + exp(lp[ITEM_NO] - lp[ITEM_YES]));
    cJSON *rec = cJSON_CreateObject();
    for (int k = 0; rec && k < SCORE_N; k++)
        if (isfinite(value[k]) && !cJSON_AddNumberToObject(rec, score_names[k], value[k])) {
            cJSON_Delete(rec);
            rec = NULL;
        }
    return rec;
}

static void score_done(void *arg, size_t i)
{
    struct score_call *c = arg;
    const struct idf2_score_item *it = &c->items[i];
    if (it->status == VC_EFATAL && it->err.reason == VC_REASON_out_of_memory)
        st_model_sink_fail(c->sink, &it->err);
    else if (it->status >= 0 && c->slot[i] <= ITEM_PPL)
        c->tokens[c->owner[i]] += it->n_tokens;
    const size_t j = c->owner[i];
    if (--c->left[j] == 0)
        st_model_sink_put(c->sink, j, score_record(c, j), c->tokens[j]);
}

static enum vc_status score_compute(void *state, void *task, struct sample **v, const size_t *todo,
                                    size_t n, struct st_model_sink *sink,
                                    const struct stage_ctx *run, struct vc_err *err)
{
    struct st_score *st = state;
    (void)task;
    struct score_call c = { .st = st, .sink = sink, .tokens = calloc(n + 1, sizeof *c.tokens) };
    struct idf2_image_bytes *imgs = vc_malloc_array(n + 1, sizeof *imgs);
    char **texts = calloc(n + 1, sizeof *texts);
    c.items = calloc(n * ITEM_N + 1, sizeof *c.items);
    c.owner = vc_malloc_array(n * ITEM_N + 1, sizeof *c.owner);
    c.slot = vc_malloc_array(n * ITEM_N + 1, sizeof *c.slot);
    c.first = vc_malloc_array(n + 1, sizeof *c.first);
    c.left = vc_malloc_array(n + 1, sizeof *c.left);
    enum vc_status rc =
        imgs && texts && c.items && c.owner && c.slot && c.first && c.left && c.tokens
            ? VC_OK
            : vc_err_oom(err);
    size_t m = 0;
    for (size_t j = 0; rc >= 0 && j < n; j++) {
        const struct sample *s = v[todo[j]];
        const struct sample_field *im = sample_main_image(s);
        imgs[j] = (struct idf2_image_bytes){ im ? im->data : NULL, im ? im->size : 0, NULL };
        texts[j] = main_text(s);
        if (sample_main_text(s) && !texts[j]) {
            rc = vc_err_oom(err);
            break;
        }
        c.first[j] = m;
        const char *cont[ITEM_N] = { NULL };
        if (st->wanted[SCORE_RELEVANCE] && im && texts[j])
            cont[ITEM_REL] = texts[j];
        if (st->wanted[SCORE_PERPLEXITY] && texts[j])
            cont[ITEM_PPL] = texts[j];
        if (st->wanted[SCORE_NSFW] && im)
            cont[ITEM_YES] = "Yes", cont[ITEM_NO] = "No";
        static const int score_of[ITEM_N] = { SCORE_RELEVANCE, SCORE_PERPLEXITY, SCORE_NSFW,
                                              SCORE_NSFW };
        for (int k = 0; k < ITEM_N; k++) {
            if (!cont[k])
                continue;
            c.items[m] = (struct idf2_score_item){ .req = score_request(st, score_of[k], &imgs[j]),
                                                   .continuation = cont[k] };
            c.owner[m] = j;
            c.slot[m++] = k;
        }
        c.left[j] = m - c.first[j];
    }
    c.n = n, c.n_items = m;
    struct idf2_ctx_params p = st->ctx_params;
    p.n_threads = run ? run->threads : 0;
    if (rc >= 0)
        rc = st_model_score(st->model, &st->ctx, &p, c.items, m, score_done, &c, err);
    for (size_t j = 0; texts && j < n; j++)
        free(texts[j]);
    free(texts);
    free(imgs);
    free(c.items);
    free(c.owner);
    free(c.slot);
    free(c.first);
    free(c.left);
    free(c.tokens);
    return rc;
}

static enum vc_status score_apply(void *state, struct sample *s, const cJSON *rec,
                                  struct stage_task_ctx *ctx, struct stage_verdict *verdict,
                                  struct vc_err *err)
{
    struct st_score *st = state;
    VC_TRY(st_model_record_error(rec, WHERE, err));
    cJSON *meta = sample_meta(s);
    cJSON *scores = cJSON_CreateObject();
    cJSON *prov = cJSON_Duplicate(st->provenance, true);
    (void)ctx;
    if (!meta || !scores || !prov) {
        cJSON_Delete(scores);
        cJSON_Delete(prov);
        return vc_err_oom(err);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(meta, "model_scores");
    cJSON_DeleteItemFromObjectCaseSensitive(meta, "model_scores_provenance");
    cJSON_AddItemToObject(meta, "model_scores", scores);
    cJSON_AddItemToObject(meta, "model_scores_provenance", prov);
    for (int k = 0; k < SCORE_N; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, score_names[k]);
        if (!cJSON_IsNumber(v))
            continue;
        if (!cJSON_AddNumberToObject(scores, score_names[k], v->valuedouble))
            return vc_err_oom(err);
        const struct score_filter *f = &st->filter[k];
        bool low = f->has_min && v->valuedouble < f->min;
        if (low || (f->has_max && v->valuedouble > f->max)) {
            *verdict = (struct stage_verdict){
                .reason = VC_REASON_filtered,
                .filter = score_names[k],
                .has_score = true,
                .score = v->valuedouble,
                .threshold = low ? f->min : f->max,
            };
            return VC_REJECT;
        }
    }
    return VC_OK;
}

static const struct st_model_batch_ops score_batch_ops = {
    .wants = score_wants,
    .compute = score_compute,
    .apply = score_apply,
};

static enum vc_status score_map_batch(void *state, struct sample **v, size_t n,
                                      struct stage_task_ctx *ctx, enum vc_status *st,
                                      struct stage_verdict *verdicts, struct vc_err *errs)
{
    return st_model_map_batch(&score_batch_ops, state, NULL, ctx->task_state, v, n, ctx, st,
                              verdicts, errs);
}

static size_t score_batch_size(const void *state)
{
    return st_model_chunk(((const struct st_score *)state)->batch);
}

/* ---- the global quantile cut ---- */

/* The scores PLAN reads: the units' result caches, which the unit
 * manifests committed (a batch hook has no per-record extra). */
struct score_reader {
    const struct st_score *st;
    struct st_model_cache *cache;
    uint32_t unit;
};

static enum vc_status rec_score(struct score_reader *r, const struct stage_rec *rec, int k,
                                double *out, struct vc_err *err)
{
    *out = NAN;
    if (!r->st->work_dir)
        return VC_OK;
    if (!r->cache || r->unit != rec->unit) {
        st_model_cache_close(r->cache);
        r->cache = NULL;
        VC_TRY(st_model_cache_read(r->st->work_dir, r->st->tag, rec->unit, &r->cache, err));
        r->unit = rec->unit;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(
        st_model_cache_get(r->cache, rec->index, NULL), score_names[k]);
    if (cJSON_IsNumber(v))
        *out = v->valuedouble;
    return VC_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest rank: the smallest value with at least q of the values at or
 * below it. */
static double nearest_rank(const double *sorted, size_t n, double q)
{
    size_t rank = (size_t)ceil(q * (double)n);
    return sorted[rank ? rank - 1 : 0];
}

static enum vc_status cut_quantile(struct st_score *st, struct stage_plan *plan, int k,
                                   struct vc_err *err)
{
    const double q = st->filter[k].quantile;
    const bool below = st->filter[k].quantile_min;
    /* One score per record, in record order, so each unit's cache is read
     * once. */
    double *vals = vc_malloc_array(plan->n_recs + 1, sizeof *vals);
    double *sorted = vc_malloc_array(plan->n_recs + 1, sizeof *sorted);
    struct score_reader rd = { .st = st };
    enum vc_status rc = vals && sorted ? VC_OK : vc_err_oom(err);
    size_t n = 0;
    for (size_t i = 0; rc >= 0 && i < plan->n_recs; i++) {
        vals[i] = NAN;
        if (plan->recs[i].state == STAGE_REC_KEEP)
            rc = rec_score(&rd, &plan->recs[i], k, &vals[i], err);
        if (rc >= 0 && isfinite(vals[i]))
            sorted[n++] = vals[i];
    }
    st_model_cache_close(rd.cache);
    size_t dropped = 0;
    double cut = NAN;
    if (rc >= 0 && n) {
        qsort(sorted, n, sizeof *sorted, cmp_double);
        cut = nearest_rank(sorted, n, q);
        size_t kept = 0;
        for (size_t i = 0; i < plan->n_order; i++) {
            const size_t at = plan->order[i];
            struct stage_rec *r = &plan->recs[at];
            if (r->state == STAGE_REC_KEEP && isfinite(vals[at]) &&
                (below ? vals[at] < cut : vals[at] > cut)) {
                r->state = STAGE_REC_REJECTED;
                r->stage = "score";
                r->reason = VC_REASON_filtered;
                dropped++;
            }
            if (r->state == STAGE_REC_KEEP)
                plan->order[kept++] = at;
        }
        plan->n_order = kept;
    }
    free(vals);
    free(sorted);
    VC_TRY(rc);
    cJSON *rep = cJSON_GetObjectItemCaseSensitive(plan->report, "score");
    if (!rep && !(rep = cJSON_AddObjectToObject(plan->report, "score")))
        return vc_err_oom(err);
    cJSON *o = cJSON_AddObjectToObject(rep, score_names[k]);
    if (!o || !cJSON_AddNumberToObject(o, below ? "min_quantile" : "max_quantile", q) ||
        !cJSON_AddNumberToObject(o, "threshold", cut) ||
        !cJSON_AddNumberToObject(o, "rejected", (double)dropped))
        return vc_err_oom(err);
    return VC_OK;
}

static enum vc_status score_plan(void *state, struct stage_plan *plan, struct vc_err *err)
{
    struct st_score *st = state;
    for (int k = 0; k < SCORE_N; k++)
        if (st->filter[k].has_quantile)
            VC_TRY(cut_quantile(st, plan, k, err));
    return VC_OK;
}

/* Per-sample thresholds decide in MAP: only a quantile cut needs every
 * unit's scores, so only then does the round end here. */
static bool score_is_global(const void *state)
{
    const struct st_score *st = state;
    for (int k = 0; k < SCORE_N; k++)
        if (st->filter[k].has_quantile)
            return true;
    return false;
}

const struct stage_ops st_score_ops = {
    .name = "score",
    .caps = STAGE_CAP_MODEL,
    .create = score_create,
    .task_begin = score_task_begin,
    .map_batch = score_map_batch,
    .batch_size = score_batch_size,
    .task_end = score_task_end,
    .plan = score_plan,
    .is_global = score_is_global,
    .destroy = score_destroy,
};
