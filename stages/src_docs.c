/* src_docs: documents -> samples.  Each text node is checked against
 * limits.max_text_bytes here (ingest sees the document only as one json
 * field, capped by limits.max_json_bytes). */
#include "src_docs.h"

#include "core/img.h"
#include "core/vc_mem.h"
#include "src_lines.h"
#include "src_util.h"
#include "stage_cfg.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct src_docs {
    char *path, *images_dir, *key_field;
    uint64_t max_record, max_entry, max_text;
    struct source_unit *units;
    size_t n;
};

static void docs_destroy(void *state)
{
    struct src_docs *d = state;
    if (!d)
        return;
    src_units_free(d->units, d->n);
    free(d->path);
    free(d->images_dir);
    free(d->key_field);
    free(d);
}

static enum vc_status docs_create(const cJSON *cfg, const char *where, const struct stage_ctx *ctx,
                                  void **state, struct vc_err *err)
{
    static const char *const keys[] = { SOURCE_COMMON_KEYS, "path", "images_dir", "key_field",
                                        "records_per_unit", NULL };
    VC_TRY(stage_cfg_check_keys(cfg, where, keys, err));
    const char *path, *dir, *kf;
    uint64_t per_unit;
    VC_TRY(stage_cfg_str(cfg, where, "path", NULL, &path, err));
    VC_TRY(stage_cfg_str(cfg, where, "images_dir", NULL, &dir, err));
    if (!path || !dir)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "%s: key '%s' is required", where,
                          path ? "images_dir" : "path");
    VC_TRY(stage_cfg_str(cfg, where, "key_field", "id", &kf, err));
    VC_TRY(stage_cfg_u64(cfg, where, "records_per_unit", 200, 1, UINT32_MAX, &per_unit, err));
    struct src_docs *d = calloc(1, sizeof *d);
    if (!d)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    d->path = src_path_join(ctx->spec_dir, path);
    d->images_dir = src_path_join(ctx->spec_dir, dir);
    d->key_field = vc_strdup(kf);
    d->max_record = ctx->limits->max_json_bytes;
    d->max_entry = ctx->limits->max_entry_bytes;
    d->max_text = ctx->limits->max_text_bytes;
    enum vc_status rc = VC_OK;
    if (!d->path || !d->images_dir || !d->key_field)
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
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

static enum vc_status docs_open(void *state, const struct source_unit *u, void **cursor,
                                struct vc_err *err)
{
    const struct src_docs *d = state;
    return lines_cursor_open(d, u, LINES_JSONL, d->max_record, cursor, err);
}

static enum vc_status check_lists(const struct src_docs *d, cJSON *texts, cJSON *images,
                                  struct vc_err *err)
{
    if (!cJSON_IsArray(texts) || !cJSON_IsArray(images) ||
        cJSON_GetArraySize(texts) != cJSON_GetArraySize(images))
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_json_invalid,
                          "'texts' and 'images' must be lists of the same length");
    for (cJSON *t = texts->child, *im = images->child; t; t = t->next, im = im->next) {
        if (!(cJSON_IsString(t) || cJSON_IsNull(t)) || !(cJSON_IsString(im) || cJSON_IsNull(im)))
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_json_invalid,
                              "'texts' and 'images' entries must be strings or null");
        if (cJSON_IsString(t) && strlen(t->valuestring) > d->max_text)
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_field_too_long,
                              "a text of %zu bytes, the limit is %llu", strlen(t->valuestring),
                              (unsigned long long)d->max_text);
        if (cJSON_IsString(im) && !src_relpath_safe(im->valuestring))
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

/* Reads every image, names the fields, drops what cannot be read. */
static enum vc_status load_images(struct lines_cursor *c, struct sample *s, cJSON *doc,
                                  cJSON *texts, cJSON *images, struct vc_err *err)
{
    const struct src_docs *d = c->src;
    cJSON *dropped = NULL;
    int pos = 0, orig = 0, n_img = 0;
    for (cJSON *im = images->child; im; orig++) {
        cJSON *next = im->next;
        if (!cJSON_IsString(im)) {
            im = next, pos++;
            continue;
        }
        size_t n = 0;
        struct vc_err e = { 0 };
        enum img_format f = IMG_FORMAT_UNKNOWN;
        enum vc_status rc =
            src_read_file(d->images_dir, im->valuestring, d->max_entry, &c->buf, &c->cap, &n, &e);
        if (rc == VC_EFATAL)
            return *err = e, rc;
        if (rc == VC_OK && (f = img_sniff(c->buf, n)) == IMG_FORMAT_UNKNOWN)
            rc = vc_err_set(&e, VC_ESAMPLE, VC_REASON_unsupported_format, "not an image");
        if (rc < 0) {
            if (!dropped && !(dropped = cJSON_AddArrayToObject(doc, "dropped_images")))
                return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToArray(dropped, o);
            cJSON_AddNumberToObject(o, "index", orig);
            cJSON_AddStringToObject(o, "path", im->valuestring);
            cJSON_AddStringToObject(o, "reason", vc_reason_name(e.reason));
            cJSON_DeleteItemFromArray(images, pos);
            cJSON_DeleteItemFromArray(texts, pos);
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

static enum vc_status docs_next(void *cursor, struct sample *s, struct vc_err *err)
{
    struct lines_cursor *c = cursor;
    const struct src_docs *d = c->src;
    char *rec;
    size_t len;
    enum vc_status rc = lines_cursor_next(c, s, &rec, &len, err);
    if (rc != VC_OK)
        return rc;
    cJSON *doc = cJSON_ParseWithLength(rec, len);
    if (!cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_json_invalid, "record is not a JSON object");
    }
    set_key(s, doc, d->key_field);
    cJSON *texts = cJSON_GetObjectItemCaseSensitive(doc, "texts");
    cJSON *images = cJSON_GetObjectItemCaseSensitive(doc, "images");
    rc = check_lists(d, texts, images, err);
    if (rc == VC_OK)
        rc = load_images(c, s, doc, texts, images, err);
    char *json = rc == VC_OK ? cJSON_PrintUnformatted(doc) : NULL;
    if (rc == VC_OK && !json)
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    if (rc == VC_OK)
        rc = sample_add_field(s, "json", json, strlen(json), err);
    free(json);
    cJSON_Delete(doc);
    return rc;
}

const struct source_ops src_docs_ops = {
    .name = "documents",
    .create = docs_create,
    .units = docs_units,
    .open = docs_open,
    .next = docs_next,
    .close = lines_cursor_close,
    .destroy = docs_destroy,
};
