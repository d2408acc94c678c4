/* st_filter: the filter stage.  Owns the filter chain (built once, shared
 * read-only by every task) and one filter_scratch per task.  Never
 * decides anything itself: every keep/reject comes from the chain, and the
 * stage only maps samples onto it and records what it said.  Document
 * text is bounded by the json limit the ingest stage already enforced. */
#include "st_filter.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/vc_buf.h"
#include "core/vc_utf8.h"
#include "filters/filter_chain.h"
#include "filters/filter_registry.h"
#include "stage_cfg.h"

#define WHERE "stage 'filter'"

struct st_filter {
    struct filter_chain *chain;
    size_t max_doc_text; /* bytes of joined document text */
};

static enum vc_status filter_create(const cJSON *cfg, const struct stage_ctx *ctx, void **state,
                                    struct vc_err *err)
{
    static const char *const keys[] = { "stage", "defaults", "filters", NULL };
    VC_TRY(stage_cfg_check_keys(cfg, WHERE, keys, err));
    bool defaults;
    VC_TRY(stage_cfg_bool(cfg, WHERE, "defaults", true, &defaults, err));
    struct st_filter *st = calloc(1, sizeof *st);
    if (!st)
        return vc_err_oom(err);
    const cJSON *list = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "filters") : NULL;
    enum vc_status rc = filter_chain_new(list, defaults, &st->chain, err);
    if (rc < 0) {
        vc_err_prefix(err, WHERE);
        free(st);
        return rc;
    }
    /* A document's text is part of its json field. */
    st->max_doc_text = ctx && ctx->limits ? (size_t)ctx->limits->max_json_bytes : 4u << 20;
    *state = st;
    return VC_OK;
}

static void filter_destroy(void *state)
{
    struct st_filter *st = state;
    if (!st)
        return;
    filter_chain_free(st->chain);
    free(st);
}

static enum vc_status filter_task_begin(void *state, struct stage_task_ctx *ctx, struct vc_err *err)
{
    (void)state;
    ctx->task_state = filter_scratch_new();
    if (!ctx->task_state)
        return vc_err_oom(err);
    return VC_OK;
}

static enum vc_status filter_task_end(void *state, struct stage_task_ctx *ctx, struct vc_err *err)
{
    (void)state, (void)err;
    filter_scratch_free(ctx->task_state);
    ctx->task_state = NULL;
    return VC_OK;
}

static enum vc_status reject(struct stage_task_ctx *ctx, const struct filter_verdict *v)
{
    ctx->verdict = (struct stage_verdict){
        .reason = VC_REASON_filtered,
        /* static: outlives the task.  The chain names every rejection. */
        .filter = v->by ? v->by->ops->name : "filter",
        .has_score = true,
        .score = v->score,
        .threshold = v->threshold,
    };
    return VC_REJECT;
}

/* Writes the report into the sample's metadata.  For a document only the
 * document-level scores are meaningful (an image's would be the last
 * image's); what the node filters did shows in the removal counts. */
static enum vc_status record(const struct filter_report *rep, bool document, struct sample *s,
                             struct vc_err *err)
{
    cJSON *scores = NULL, *removed = NULL;
    for (size_t i = 0; i < filter_registry_count(); i++) {
        const struct filter_ops *ops = filter_registry_at(i);
        const char *name = ops->name;
        bool wanted = !document || ops->kind == FILTER_KIND_DOCUMENT;
        if (wanted && rep->scored[i] && isfinite(rep->score[i]) &&
            ((!scores && !(scores = cJSON_CreateObject())) ||
             !cJSON_AddNumberToObject(scores, name, rep->score[i])))
            goto fail;
        if (document && rep->removed[i] &&
            ((!removed && !(removed = cJSON_CreateObject())) ||
             !cJSON_AddNumberToObject(removed, name, rep->removed[i])))
            goto fail;
    }
    cJSON *meta = scores || removed ? sample_meta(s) : NULL;
    if ((scores || removed) && !meta)
        goto fail;
    if (scores) {
        cJSON_DeleteItemFromObjectCaseSensitive(meta, "filter_scores");
        cJSON_AddItemToObject(meta, "filter_scores", scores);
    }
    if (removed) {
        cJSON_DeleteItemFromObjectCaseSensitive(meta, "filter_removed");
        cJSON_AddItemToObject(meta, "filter_removed", removed);
    }
    return VC_OK;
fail:
    cJSON_Delete(scores);
    cJSON_Delete(removed);
    return vc_err_oom(err);
}

static const char *json_string(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- image-text pairs ---- */

static enum vc_status filter_pair(struct st_filter *st, struct filter_scratch *scr,
                                  struct sample *s, const cJSON *json, struct stage_task_ctx *ctx,
                                  struct vc_err *err)
{
    struct filter_report rep;
    struct filter_verdict v = { NULL, 0, 0 };
    filter_report_clear(&rep);
    const struct sample_field *im = sample_main_image(s);
    /* Image filters configured and no image to judge: a caption alone is
     * not an image-text pair, whatever the caption filters say. */
    if (!im && filter_chain_has_kind(st->chain, FILTER_KIND_IMAGE)) {
        ctx->verdict = (struct stage_verdict){ .reason = VC_REASON_missing_image };
        return VC_REJECT;
    }
    if (im) {
        struct filter_image fi = { im->data, im->size, json_string(json, "url") };
        enum vc_status rc = filter_chain_image(st->chain, scr, &fi, &v, &rep, err);
        if (rc == VC_REJECT)
            return reject(ctx, &v);
        if (rc < 0)
            return vc_err_prefix(err, "field '%s'", im->name);
    }
    /* A sample with no text field is an image, not a pair: no caption to
     * judge.  An empty caption is judged (and fails the length rules). */
    const struct sample_field *txt = sample_main_text(s);
    if (txt) {
        enum vc_status rc =
            filter_chain_caption(st->chain, scr, (const char *)txt->data, txt->size, &v, &rep, err);
        if (rc == VC_REJECT)
            return reject(ctx, &v);
        VC_TRY(rc);
    }
    return record(&rep, false, s, err);
}

/* ---- interleaved documents ---- */

/* Drops position `pos` from the document's parallel lists. */
static void drop_position(cJSON *texts, cJSON *images, cJSON *meta, int pos)
{
    cJSON_DeleteItemFromArray(texts, pos);
    cJSON_DeleteItemFromArray(images, pos);
    if (meta)
        cJSON_DeleteItemFromArray(meta, pos);
}

/* OBELICS keeps an image that failed to decode out of the document; the
 * reason is recorded like the source records unreadable images. */
static enum vc_status note_dropped(cJSON *doc, const char *field, const struct vc_err *why,
                                   struct vc_err *err)
{
    cJSON *list = cJSON_GetObjectItemCaseSensitive(doc, "dropped_images");
    if (!list && !(list = cJSON_AddArrayToObject(doc, "dropped_images")))
        return vc_err_oom(err);
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(list, o) || !cJSON_AddStringToObject(o, "field", field) ||
        !cJSON_AddStringToObject(o, "reason", vc_reason_name(why->reason)))
        return vc_err_oom(err);
    return VC_OK;
}

/* Image filters, then paragraph filters, node by node (OBELICS's node
 * level).  *changed tells whether the json must be rewritten. */
static enum vc_status filter_nodes(struct st_filter *st, struct filter_scratch *scr,
                                   struct sample *s, cJSON *doc, cJSON *texts, cJSON *images,
                                   cJSON *meta, struct filter_report *rep, bool *changed,
                                   struct vc_err *err)
{
    int pos = 0;
    for (cJSON *t = texts->child, *im = images->child; t && im;) {
        cJSON *t_next = t->next, *im_next = im->next;
        bool drop = false;
        if (cJSON_IsString(im)) {
            const struct sample_field *f = sample_field_get(s, im->valuestring);
            const cJSON *m = meta ? cJSON_GetArrayItem(meta, pos) : NULL;
            struct filter_image fi = { f ? f->data : NULL, f ? f->size : 0, json_string(m, "src") };
            struct filter_verdict v = { NULL, 0, 0 };
            struct vc_err why = { 0 };
            enum vc_status rc = filter_chain_image(st->chain, scr, &fi, &v, rep, &why);
            if (rc == VC_EFATAL)
                return *err = why, rc;
            if (rc == VC_REJECT)
                rep->removed[filter_registry_index(v.by->ops)]++;
            else if (rc < 0)
                VC_TRY(note_dropped(doc, im->valuestring, &why, err));
            if (rc != VC_OK) {
                sample_remove_field(s, im->valuestring);
                drop = true;
            }
        } else if (cJSON_IsString(t)) {
            const char *out;
            size_t out_len, n_removed;
            VC_TRY(filter_chain_paragraphs(st->chain, scr, t->valuestring, strlen(t->valuestring),
                                           &out, &out_len, &n_removed, rep, err));
            if (out_len == 0)
                drop = true;
            else if (n_removed > 0 && !cJSON_SetValuestring(t, out))
                return vc_err_oom(err);
            *changed = *changed || n_removed > 0;
        } else {
            drop = true; /* neither text nor image: OBELICS drops the position */
        }
        if (drop) {
            drop_position(texts, images, meta, pos);
            *changed = true;
        } else {
            pos++;
        }
        t = t_next, im = im_next;
    }
    return VC_OK;
}

/* OBELICS's document text: the remaining text nodes joined by "\n\n". */
static enum vc_status join_texts(const cJSON *texts, struct vc_buf *b, struct vc_err *err)
{
    bool first = true;
    const cJSON *t;
    cJSON_ArrayForEach(t, texts)
    {
        if (!cJSON_IsString(t) || !t->valuestring[0])
            continue;
        if ((!first && vc_buf_append(b, "\n\n", 2) < 0) ||
            vc_buf_append(b, t->valuestring, strlen(t->valuestring)) < 0)
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_field_too_long,
                              "document text exceeds %zu bytes", b->max);
        first = false;
    }
    return VC_OK;
}

static enum vc_status filter_document(struct st_filter *st, struct filter_scratch *scr,
                                      struct sample *s, cJSON *doc, struct stage_task_ctx *ctx,
                                      struct vc_err *err)
{
    cJSON *texts = cJSON_GetObjectItemCaseSensitive(doc, "texts");
    cJSON *images = cJSON_GetObjectItemCaseSensitive(doc, "images");
    /* OBELICS's per-position metadata (image "src" URLs), a JSON string;
     * used only while it still lines up with the lists. */
    const char *meta_s = json_string(doc, "metadata");
    cJSON *meta = meta_s ? vc_json_parse_exact(meta_s, strlen(meta_s)) : NULL;
    if (meta && (!cJSON_IsArray(meta) || cJSON_GetArraySize(meta) != cJSON_GetArraySize(texts))) {
        cJSON_Delete(meta);
        meta = NULL;
    }
    struct filter_report rep;
    filter_report_clear(&rep);
    bool changed = false;
    enum vc_status rc = filter_nodes(st, scr, s, doc, texts, images, meta, &rep, &changed, err);
    /* Rewritten only when it lined up with the lists; metadata that never
     * did is left as the source wrote it. */
    bool rewrite_meta = rc == VC_OK && changed && meta;
    char *meta_new = rewrite_meta ? cJSON_PrintUnformatted(meta) : NULL;
    cJSON_Delete(meta);
    if (rewrite_meta) {
        if (meta_new)
            cJSON_ReplaceItemInObjectCaseSensitive(doc, "metadata", cJSON_CreateString(meta_new));
        else
            rc = vc_err_oom(err);
    }
    free(meta_new);
    VC_TRY(rc);

    struct vc_buf text;
    vc_buf_init(&text, st->max_doc_text);
    size_t n_images = 0;
    const cJSON *im;
    cJSON_ArrayForEach(im, images)
    {
        n_images += cJSON_IsString(im);
    }
    struct filter_verdict v = { NULL, 0, 0 };
    rc = join_texts(texts, &text, err);
    if (rc == VC_OK)
        rc = filter_chain_document(st->chain, scr, text.data ? text.data : "", text.len, n_images,
                                   &v, &rep, err);
    vc_buf_free(&text);
    if (rc == VC_REJECT)
        return reject(ctx, &v);
    VC_TRY(rc);
    if (changed) {
        char *json = cJSON_PrintUnformatted(doc);
        if (!json)
            return vc_err_oom(err);
        rc = sample_set_field(s, "json", json, strlen(json), err);
        free(json);
        VC_TRY(rc);
    }
    return record(&rep, true, s, err);
}

static enum vc_status filter_map(void *state, struct sample *s, struct stage_task_ctx *ctx,
                                 struct vc_err *err)
{
    struct st_filter *st = state;
    struct filter_scratch *scr = ctx->task_state;
    const struct sample_field *jf = sample_field_get(s, "json");
    cJSON *json = jf ? vc_json_parse_exact((const char *)jf->data, jf->size) : NULL;
    if (jf && !json)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_json_invalid, "field 'json' does not parse");
    enum vc_status rc;
    if (cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(json, "texts")) &&
        cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(json, "images")))
        rc = filter_document(st, scr, s, json, ctx, err);
    else
        rc = filter_pair(st, scr, s, json, ctx, err);
    cJSON_Delete(json);
    return rc;
}

const struct stage_ops st_filter_ops = {
    .name = "filter",
    .create = filter_create,
    .task_begin = filter_task_begin,
    .map = filter_map,
    .task_end = filter_task_end,
    .destroy = filter_destroy,
};
