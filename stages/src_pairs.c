/* src_pairs: list records -> samples.  The image is read whole (capped by
 * limits.max_entry_bytes) into a cursor buffer and copied once into the
 * sample arena.  Image paths come from untrusted records: they resolve
 * only inside images_dir (src_read_file). */
#include "src_pairs.h"

#include "core/img.h"
#include "core/vc_mem.h"
#include "src_lines.h"
#include "src_util.h"
#include "stage_cfg.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PAIRS_MAX_COLUMNS = 256 };

struct src_pairs {
    char *list, *images_dir;
    enum lines_format fmt;
    char *header; /* CSV/TSV header record; cols point into it */
    char *cols[PAIRS_MAX_COLUMNS];
    size_t n_cols;
    char *image_col, *caption_col, *key_col; /* NULL: try the defaults */
    uint64_t max_record, max_entry;
    struct source_unit *units;
    size_t n;
};

static const char *const image_defaults[] = { "image", "url", "path", NULL };
static const char *const caption_defaults[] = { "caption", "text", "alt", NULL };
static const char *const key_defaults[] = { "key", NULL };

static void pairs_destroy(void *state)
{
    struct src_pairs *p = state;
    if (!p)
        return;
    src_units_free(p->units, p->n);
    free(p->list);
    free(p->images_dir);
    free(p->header);
    free(p->image_col);
    free(p->caption_col);
    free(p->key_col);
    free(p);
}

/* The column name to use: the configured one, else the first default the
 * header has.  For JSONL (no header) NULL means "try the defaults". */
static const char *pick(const struct src_pairs *p, const char *configured,
                        const char *const *defaults)
{
    if (configured || p->fmt == LINES_JSONL)
        return configured;
    for (size_t d = 0; defaults[d]; d++)
        for (size_t i = 0; i < p->n_cols; i++)
            if (strcmp(p->cols[i], defaults[d]) == 0)
                return defaults[d];
    return NULL;
}

static enum vc_status pairs_create(const cJSON *cfg, const char *where, const struct stage_ctx *ctx,
                                   void **state, struct vc_err *err)
{
    static const char *const keys[] = {
        SOURCE_COMMON_KEYS, "list",       "images_dir",       "format", "image_column",
        "caption_column",   "key_column", "records_per_unit", NULL
    };
    static const char *const formats[] = { "jsonl", "csv", "tsv", "auto", NULL };
    VC_TRY(stage_cfg_check_keys(cfg, where, keys, err));
    const char *list, *dir, *ic, *cc, *kc;
    int fmt;
    uint64_t per_unit;
    VC_TRY(stage_cfg_str(cfg, where, "list", NULL, &list, err));
    VC_TRY(stage_cfg_str(cfg, where, "images_dir", NULL, &dir, err));
    if (!list || !dir)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "%s: key '%s' is required", where,
                          list ? "images_dir" : "list");
    VC_TRY(stage_cfg_enum(cfg, where, "format", formats, 3, &fmt, err));
    VC_TRY(stage_cfg_str(cfg, where, "image_column", NULL, &ic, err));
    VC_TRY(stage_cfg_str(cfg, where, "caption_column", NULL, &cc, err));
    VC_TRY(stage_cfg_str(cfg, where, "key_column", NULL, &kc, err));
    VC_TRY(stage_cfg_u64(cfg, where, "records_per_unit", 1000, 1, UINT32_MAX, &per_unit, err));
    struct src_pairs *p = calloc(1, sizeof *p);
    if (!p)
        return vc_err_oom(err);
    p->list = src_path_join(ctx->spec_dir, list);
    p->images_dir = src_path_join(ctx->spec_dir, dir);
    p->image_col = ic ? vc_strdup(ic) : NULL;
    p->caption_col = cc ? vc_strdup(cc) : NULL;
    p->key_col = kc ? vc_strdup(kc) : NULL;
    p->max_record = ctx->limits->max_json_bytes;
    p->max_entry = ctx->limits->max_entry_bytes;
    enum vc_status rc = VC_OK;
    if (!p->list || !p->images_dir || (ic && !p->image_col) || (cc && !p->caption_col) ||
        (kc && !p->key_col))
        rc = vc_err_oom(err);
    if (rc == VC_OK)
        rc = src_check_spec_paths("list", p->list, p->images_dir, ctx, err);
    if (rc == VC_OK)
        rc = lines_refuse_packed(where, p->list, NULL, NULL, err);
    if (rc == VC_OK) {
        if (fmt == 3)
            rc = lines_sniff(p->list, &p->fmt, err);
        else
            p->fmt = (enum lines_format)fmt;
    }
    uint64_t begin = 0;
    if (rc == VC_OK && p->fmt != LINES_JSONL) {
        rc = lines_read_header(p->list, p->fmt, p->max_record, where, &p->header, p->cols,
                               PAIRS_MAX_COLUMNS, &p->n_cols, &begin, err);
        if (rc == VC_OK && !pick(p, p->image_col, image_defaults))
            rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                            "%s: %s has no image column (looked for %s; set 'image_column')", where,
                            p->list, p->image_col ? p->image_col : "image, url, path");
    }
    if (rc == VC_OK)
        rc = lines_split(p->list, p->fmt, begin, per_unit, &p->units, &p->n, err);
    if (rc < 0) {
        pairs_destroy(p);
        return src_load_error(rc, where, err);
    }
    *state = p;
    return VC_OK;
}

static const struct source_unit *pairs_units(void *state, size_t *n)
{
    struct src_pairs *p = state;
    *n = p->n;
    return p->units;
}

static enum vc_status pairs_open(void *state, const struct source_unit *u, void **cursor,
                                 struct vc_err *err)
{
    const struct src_pairs *p = state;
    return lines_cursor_open(p, u, p->fmt, p->max_record, cursor, err);
}

/* Moves the record's columns into `extra`, taking out image, caption, key. */
static enum vc_status record_object(const struct src_pairs *p, char *rec, size_t len, cJSON **out,
                                    struct vc_err *err)
{
    if (p->fmt == LINES_JSONL) {
        return src_json_object(rec, len, out, err);
    }
    char *fields[PAIRS_MAX_COLUMNS];
    size_t nf =
        lines_split_fields(rec, len, p->fmt == LINES_TSV ? '\t' : ',', fields, PAIRS_MAX_COLUMNS);
    /* A record of the wrong width still gets the columns it has, so that
     * its error can name its key. */
    *out = cJSON_CreateObject();
    for (size_t i = 0; *out && i < nf && i < p->n_cols; i++)
        if (!cJSON_GetObjectItemCaseSensitive(*out, p->cols[i]))
            cJSON_AddStringToObject(*out, p->cols[i], fields[i]);
    if (!*out)
        return vc_err_oom(err);
    if (nf != p->n_cols)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_missing_field,
                          "record has %zu columns, the header %zu", nf, p->n_cols);
    return VC_OK;
}

/* Detaches the string (or number, as text) under the first matching name. */
static char *take(cJSON *obj, const char *configured, const char *const *defaults)
{
    const char *one[] = { configured, NULL };
    const char *const *names = configured ? one : defaults;
    for (size_t i = 0; names[i]; i++) {
        cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(obj, names[i]);
        if (!v)
            continue;
        char *s = NULL, num[32];
        if (cJSON_IsString(v)) {
            s = vc_strdup(v->valuestring);
        } else if (cJSON_IsNumber(v)) {
            snprintf(num, sizeof num, "%.17g", v->valuedouble);
            s = vc_strdup(num);
        }
        cJSON_Delete(v);
        if (s)
            return s;
    }
    return NULL;
}

/* Sets the sample's key: the record's own, else the image's file name
 * stem (none without either); takes both out of `obj`, the image path
 * into *image (owned). */
static void record_key(const struct src_pairs *p, struct sample *s, cJSON *obj, char **image)
{
    *image = take(obj, p->image_col, image_defaults);
    char *key = take(obj, p->key_col, key_defaults);
    if (!key && *image && (*image)[0]) {
        const char *base = strrchr(*image, '/');
        base = base ? base + 1 : *image;
        const char *dot = strrchr(base, '.');
        key = vc_strndup(base, dot && dot != base ? (size_t)(dot - base) : strlen(base));
    }
    s->orig_key = key ? arena_strdup(s->arena, key) : NULL;
    free(key);
}

static enum vc_status build(struct lines_cursor *c, struct sample *s, cJSON *obj,
                            struct vc_err *err)
{
    const struct src_pairs *p = c->src;
    char *image;
    record_key(p, s, obj, &image);
    char *caption = take(obj, p->caption_col, caption_defaults);
    enum vc_status rc = VC_OK;
    if (!image || !image[0]) {
        rc = vc_err_set(err, VC_ESAMPLE, VC_REASON_missing_field, "record has no image path");
        goto out;
    }
    size_t n = 0;
    rc = src_read_file(p->images_dir, image, p->max_entry, &c->buf, &c->cap, &n, err);
    if (rc < 0)
        goto out;
    enum img_format f;
    if ((rc = src_image_format(c->buf, n, image, &f, err)) < 0)
        goto out;
    cJSON_AddStringToObject(obj, "image_path", image);
    char *json = cJSON_PrintUnformatted(obj);
    if (!json) {
        rc = vc_err_oom(err);
        goto out;
    }
    if ((rc = sample_add_field(s, img_format_ext(f), c->buf, n, err)) == VC_OK && caption)
        rc = sample_add_field(s, "txt", caption, strlen(caption), err);
    if (rc == VC_OK)
        rc = sample_add_field(s, "json", json, strlen(json), err);
    free(json);
out:
    free(image);
    free(caption);
    return rc;
}

static enum vc_status pairs_next(void *cursor, struct sample *s, struct vc_err *err)
{
    struct lines_cursor *c = cursor;
    char *rec;
    size_t len;
    enum vc_status rc = lines_cursor_next(c, s, &rec, &len, err);
    if (rc != VC_OK)
        return rc;
    cJSON *obj = NULL;
    rc = record_object(c->src, rec, len, &obj, err);
    if (rc == VC_OK) {
        rc = build(c, s, obj, err);
    } else if (obj) {
        char *image;
        record_key(c->src, s, obj, &image);
        free(image);
    }
    cJSON_Delete(obj);
    return rc == VC_ESAMPLE ? lines_cursor_error(c, err) : rc;
}

const struct source_ops src_pairs_ops = {
    .name = "pairs",
    .create = pairs_create,
    .units = pairs_units,
    .open = pairs_open,
    .next = pairs_next,
    .close = lines_cursor_close,
    .destroy = pairs_destroy,
};
