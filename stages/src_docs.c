/* src_docs: documents -> samples.  Each text node is checked against
 * limits.max_text_bytes here (ingest sees the document only as one json
 * field, capped by limits.max_json_bytes).  With "fetch", image entries
 * that are http(s) URLs are downloaded when the unit opens (stages/fetch,
 * all of the unit's URLs at once, into a spool) and taken in document
 * order by next(); a failed download drops the image like a missing
 * file, with the download's reason. */
#include "src_docs.h"

#include "core/img.h"
#include "core/vc_mem.h"
#include "core/vc_utf8.h"
#include "fetch.h"
#include "src_lines.h"
#include "src_util.h"
#include "stage_cfg.h"

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct src_docs {
    char *path, *images_dir, *key_field;
    uint64_t max_record, max_entry, max_text;
    struct source_unit *units;
    size_t n;
    const struct stage_ctx *ctx;
    bool fetch_on;
    struct fetch_cfg fetch;
};

/* A unit's cursor: the list cursor, and with fetch the unit's downloads. */
struct docs_cursor {
    struct lines_cursor *lc;
    struct fetch_result *res; /* every URL image of the unit, in order */
    size_t *rec_first;        /* per record of the unit: its first res */
    size_t n_recs;
    int spool;
};

static void docs_destroy(void *state)
{
    struct src_docs *d = state;
    if (!d)
        return;
    src_units_free(d->units, d->n);
    if (d->fetch_on)
        fetch_cfg_free(&d->fetch);
    free(d->path);
    free(d->images_dir);
    free(d->key_field);
    free(d);
}

static enum vc_status docs_create(const cJSON *cfg, const char *where, const struct stage_ctx *ctx,
                                  void **state, struct vc_err *err)
{
    static const char *const keys[] = { SOURCE_COMMON_KEYS, "path",  "images_dir", "key_field",
                                        "records_per_unit", "fetch", NULL };
    VC_TRY(stage_cfg_check_keys(cfg, where, keys, err));
    const char *path, *dir, *kf;
    uint64_t per_unit;
    VC_TRY(stage_cfg_str(cfg, where, "path", NULL, &path, err));
    VC_TRY(stage_cfg_str(cfg, where, "images_dir", NULL, &dir, err));
    const cJSON *fetch = cJSON_GetObjectItemCaseSensitive(cfg, "fetch");
    if (!path || (!dir && !fetch))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "%s: key '%s' is required", where,
                          path ? "images_dir" : "path");
    if (!dir)
        dir = ".";
    VC_TRY(stage_cfg_str(cfg, where, "key_field", "id", &kf, err));
    VC_TRY(stage_cfg_u64(cfg, where, "records_per_unit", 200, 1, UINT32_MAX, &per_unit, err));
    struct src_docs *d = calloc(1, sizeof *d);
    if (!d)
        return vc_err_oom(err);
    d->path = src_path_join(ctx->spec_dir, path);
    d->images_dir = src_path_join(ctx->spec_dir, dir);
    d->key_field = vc_strdup(kf);
    d->max_record = ctx->limits->max_json_bytes;
    d->max_entry = ctx->limits->max_entry_bytes;
    d->max_text = ctx->limits->max_text_bytes;
    d->ctx = ctx;
    enum vc_status rc = VC_OK;
    if (!d->path || !d->images_dir || !d->key_field)
        rc = vc_err_oom(err);
    if (rc == VC_OK && fetch) {
        rc = fetch_cfg_parse(fetch, where, ctx->spec_dir, ctx->limits->max_entry_bytes, &d->fetch,
                             err);
        d->fetch_on = rc == VC_OK;
    }
    if (rc == VC_OK)
        rc = src_check_spec_paths("path", d->path, d->images_dir, ctx, err);
    if (rc == VC_OK)
        rc = lines_refuse_packed(where, d->path, NULL, NULL, err);
    enum lines_format is_jsonl; /* always read as JSONL: only a JSON array is refused */
    if (rc == VC_OK)
        rc = lines_sniff(d->path, &is_jsonl, err);
    if (rc == VC_OK)
        rc = lines_split(d->path, LINES_JSONL, 0, per_unit, &d->units, &d->n, err);
    if (rc < 0) {
        docs_destroy(d);
        return src_load_error(rc, where, err);
    }
    *state = d;
    return VC_OK;
}

static const struct source_unit *docs_units(void *state, size_t *n)
{
    struct src_docs *d = state;
    *n = d->n;
    return d->units;
}

static void docs_close(void *cursor)
{
    struct docs_cursor *c = cursor;
    lines_cursor_close(c->lc);
    free(c->res);
    free(c->rec_first);
    if (c->spool >= 0)
        close(c->spool);
    free(c);
}

/* Reads the unit once for its image URLs and downloads them all. */
static enum vc_status prefetch(const struct src_docs *d, struct docs_cursor *c,
                               const struct source_unit *u, struct vc_err *err)
{
    struct lines_reader *r;
    VC_TRY(lines_open(u->file, LINES_JSONL, u->begin, u->end, d->max_record, &r, err));
    char **urls = NULL;
    size_t n = 0, cap = 0, rcap = 0;
    enum vc_status rc = VC_OK;
    for (;;) {
        char *rec;
        size_t len;
        struct vc_err e = { 0 };
        enum vc_status lr = lines_next(r, &rec, &len, &e);
        if (lr == VC_EOF)
            break;
        if (lr != VC_OK && lr != VC_ESAMPLE) {
            rc = lr, *err = e;
            break;
        }
        /* One more for the end offset stored after the last record. */
        size_t *g = vc_grow_array(c->rec_first, &rcap, c->n_recs + 2, sizeof *g, 64);
        if (!g) {
            rc = vc_err_oom(err);
            break;
        }
        c->rec_first = g;
        c->rec_first[c->n_recs++] = n;
        cJSON *doc = lr == VC_OK ? cJSON_ParseWithLength(rec, len) : NULL;
        const cJSON *images = cJSON_GetObjectItemCaseSensitive(doc, "images");
        for (const cJSON *im = cJSON_IsArray(images) ? images->child : NULL; im && rc == VC_OK;
             im = im->next)
            if (cJSON_IsString(im) && fetch_is_url(im->valuestring))
                rc = src_strv_push(&urls, &n, &cap, im->valuestring, err);
        cJSON_Delete(doc);
        if (rc < 0)
            break;
    }
    lines_close(r);
    if (rc == VC_OK && c->rec_first)
        c->rec_first[c->n_recs] = n;
    if (rc == VC_OK && !(c->res = calloc(n ? n : 1, sizeof *c->res)))
        rc = vc_err_oom(err);
    for (size_t i = 0; rc == VC_OK && i < n; i++)
        if (fetch_opted_out(&d->fetch, urls[i])) {
            c->res[i].reason = VC_REASON_opted_out;
            free(urls[i]);
            urls[i] = NULL;
        }
    if (rc == VC_OK) {
        const char *dir = d->ctx->work_dir ? d->ctx->work_dir : P_tmpdir;
        if ((c->spool = fetch_spool_open(dir, err)) < 0)
            rc = VC_EFATAL;
    }
    if (rc == VC_OK)
        rc = fetch_run(&d->fetch, urls, n, c->spool, c->res, err);
    src_paths_free(urls, n);
    return rc;
}

static enum vc_status docs_open(void *state, const struct source_unit *u, void **cursor,
                                struct vc_err *err)
{
    const struct src_docs *d = state;
    struct docs_cursor *c = calloc(1, sizeof *c);
    if (!c)
        return vc_err_oom(err);
    c->spool = -1;
    void *lc = NULL;
    enum vc_status rc = lines_cursor_open(d, u, LINES_JSONL, d->max_record, &lc, err);
    c->lc = lc;
    if (rc == VC_OK && d->fetch_on)
        rc = prefetch(d, c, u, err);
    if (rc < 0) {
        if (c->lc)
            docs_close(c);
        else
            free(c);
        return rc;
    }
    *cursor = c;
    return VC_OK;
}

static enum vc_status check_lists(const struct src_docs *d, cJSON *texts, cJSON *images,
                                  struct vc_err *err)
{
    VC_TRY(src_doc_positions(texts, images, err));
    for (cJSON *t = texts->child, *im = images->child; t; t = t->next, im = im->next) {
        if (cJSON_IsString(t) && strlen(t->valuestring) > d->max_text)
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_field_too_long,
                              "a text of %zu bytes, the limit is %llu", strlen(t->valuestring),
                              (unsigned long long)d->max_text);
        /* An empty path names no file, inside the folder or out: it is
         * dropped as a missing image, not the document's error. */
        if (cJSON_IsString(im) && im->valuestring[0] &&
            !(d->fetch_on && fetch_is_url(im->valuestring)) && !src_relpath_safe(im->valuestring))
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_unsafe_path,
                              "image path '%s' is absolute or leaves the images folder",
                              im->valuestring);
    }
    return VC_OK;
}

static void set_key(struct sample *s, const cJSON *doc, const char *key_field)
{
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(doc, key_field);
    char buf[64];
    if (cJSON_IsString(k) && k->valuestring[0]) {
        s->orig_key = arena_strdup(s->arena, k->valuestring);
        return;
    }
    if (cJSON_IsNumber(k))
        snprintf(buf, sizeof buf, "%.17g", k->valuedouble);
    else
        snprintf(buf, sizeof buf, "doc%09llu", (unsigned long long)s->src_index);
    s->orig_key = arena_strdup(s->arena, buf);
}

/* One image into c->buf: downloaded (the next of this record's results)
 * or read from images_dir. */
static enum vc_status read_image(struct docs_cursor *dc, const char *name, size_t *next_res,
                                 size_t *n, struct vc_err *err)
{
    struct lines_cursor *c = dc->lc;
    const struct src_docs *d = c->src;
    if (!d->fetch_on || !fetch_is_url(name))
        return src_read_file(d->images_dir, name, d->max_entry, &c->buf, &c->cap, n, err);
    const struct fetch_result *r = &dc->res[(*next_res)++];
    if (r->reason != VC_REASON_none)
        return vc_err_set(err, VC_ESAMPLE, r->reason, "%s", r->msg);
    VC_TRY(fetch_spool_read(dc->spool, r, &c->buf, &c->cap, err));
    *n = (size_t)r->len;
    return VC_OK;
}

/* OBELICS rows name their images by URL: without "fetch" every one is
 * dropped and the documents are written text only, a run that looks
 * fine.  One line per process says so the first time (the ledger cannot:
 * the document itself is kept). */
static void warn_not_fetched(const struct docs_cursor *dc, const struct vc_err *e)
{
    static atomic_flag warned = ATOMIC_FLAG_INIT;
    if (e->reason != VC_REASON_not_fetched || atomic_flag_test_and_set(&warned))
        return;
    fprintf(stderr,
            "vlmcurate: warning: %s: %s; every such image is dropped (dropped_images reason "
            "not_fetched) and the documents keep their text only\n",
            dc->lc->u->file, e->msg);
}

/* Reads every image, names the fields, drops what cannot be read: its
 * position leaves texts, images and `meta` (an aligned metadata list, may
 * be NULL) alike. */
static enum vc_status load_images_aligned(struct docs_cursor *dc, struct sample *s, cJSON *doc,
                                          cJSON *texts, cJSON *images, cJSON *meta,
                                          struct vc_err *err)
{
    struct lines_cursor *c = dc->lc;
    cJSON *dropped = NULL;
    int pos = 0, orig = 0, n_img = 0;
    /* This record's downloads; records are counted as the prefetch did. */
    uint64_t rec = lines_count(c->r) - 1;
    size_t next_res = dc->rec_first && rec < dc->n_recs ? dc->rec_first[rec] : 0;
    for (cJSON *im = images->child; im; orig++) {
        cJSON *next = im->next;
        if (!cJSON_IsString(im)) {
            im = next, pos++;
            continue;
        }
        size_t n = 0;
        struct vc_err e = { 0 };
        enum img_format f = IMG_FORMAT_UNKNOWN;
        enum vc_status rc = read_image(dc, im->valuestring, &next_res, &n, &e);
        if (rc == VC_EFATAL)
            return *err = e, rc;
        if (rc == VC_OK)
            rc = src_image_format(c->buf, n, im->valuestring, &f, &e);
        if (rc < 0) {
            warn_not_fetched(dc, &e);
            if (!dropped && !(dropped = cJSON_AddArrayToObject(doc, "dropped_images")))
                return vc_err_oom(err);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToArray(dropped, o);
            cJSON_AddNumberToObject(o, "index", orig);
            cJSON_AddStringToObject(o, "path", im->valuestring);
            cJSON_AddStringToObject(o, "reason", vc_reason_name(e.reason));
            cJSON_DeleteItemFromArray(images, pos);
            cJSON_DeleteItemFromArray(texts, pos);
            if (meta)
                cJSON_DeleteItemFromArray(meta, pos);
            im = next;
            continue;
        }
        char name[32];
        snprintf(name, sizeof name, "%d.%s", n_img++, img_format_ext(f));
        VC_TRY(sample_add_field(s, name, c->buf, n, err));
        cJSON_SetValuestring(im, name);
        im = next, pos++;
    }
    return VC_OK;
}

/* OBELICS's "metadata": a JSON string holding a list aligned with texts
 * and images (a list is taken as is).  NULL when absent or not aligned:
 * then it is left as the source wrote it.  Owned. */
static cJSON *aligned_metadata(const cJSON *doc, int n)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "metadata");
    cJSON *list = cJSON_IsString(m)  ? vc_json_parse_exact(m->valuestring, strlen(m->valuestring))
                  : cJSON_IsArray(m) ? cJSON_Duplicate(m, 1)
                                     : NULL;
    if (list && (!cJSON_IsArray(list) || cJSON_GetArraySize(list) != n)) {
        cJSON_Delete(list);
        list = NULL;
    }
    return list;
}

/* Puts the metadata list back in the form the source used. */
static enum vc_status store_metadata(cJSON *doc, cJSON *list, struct vc_err *err)
{
    bool as_string = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(doc, "metadata"));
    cJSON *item = list;
    if (as_string) {
        char *text = cJSON_PrintUnformatted(list);
        cJSON_Delete(list);
        item = text ? cJSON_CreateString(text) : NULL;
        free(text);
    }
    if (!item || !cJSON_ReplaceItemInObjectCaseSensitive(doc, "metadata", item)) {
        cJSON_Delete(item);
        return vc_err_oom(err);
    }
    return VC_OK;
}

static enum vc_status load_images(struct docs_cursor *dc, struct sample *s, cJSON *doc,
                                  cJSON *texts, cJSON *images, struct vc_err *err)
{
    int n = cJSON_GetArraySize(images);
    cJSON *meta = aligned_metadata(doc, n);
    enum vc_status rc = load_images_aligned(dc, s, doc, texts, images, meta, err);
    if (rc == VC_OK && meta && cJSON_GetArraySize(images) != n) /* positions dropped */
        return store_metadata(doc, meta, err);
    cJSON_Delete(meta);
    return rc;
}

static enum vc_status docs_next(void *cursor, struct sample *s, struct vc_err *err)
{
    struct docs_cursor *dc = cursor;
    struct lines_cursor *c = dc->lc;
    const struct src_docs *d = c->src;
    char *rec;
    size_t len;
    enum vc_status rc = lines_cursor_next(c, s, &rec, &len, err);
    if (rc != VC_OK)
        return rc;
    cJSON *doc;
    if (src_json_object(rec, len, &doc, err) < 0)
        return lines_cursor_error(c, err);
    set_key(s, doc, d->key_field);
    cJSON *texts = cJSON_GetObjectItemCaseSensitive(doc, "texts");
    cJSON *images = cJSON_GetObjectItemCaseSensitive(doc, "images");
    rc = check_lists(d, texts, images, err);
    if (rc == VC_OK)
        rc = load_images(dc, s, doc, texts, images, err);
    char *json = rc == VC_OK ? cJSON_PrintUnformatted(doc) : NULL;
    if (rc == VC_OK && !json)
        rc = vc_err_oom(err);
    if (rc == VC_OK)
        rc = sample_add_field(s, "json", json, strlen(json), err);
    free(json);
    cJSON_Delete(doc);
    return rc == VC_ESAMPLE ? lines_cursor_error(c, err) : rc;
}

const struct source_ops src_docs_ops = {
    .name = "documents",
    .create = docs_create,
    .units = docs_units,
    .open = docs_open,
    .next = docs_next,
    .close = docs_close,
    .destroy = docs_destroy,
};
