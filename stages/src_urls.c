/* src_urls: URL lists (parquet, CSV/TSV, JSONL) -> downloaded samples, the
 * job img2dataset does.  A unit is a run of urls_per_unit records of one
 * list file (rows of a parquet file, records of a text list).  Opening a
 * unit reads its records, checks them against the opt-out list, downloads
 * the rest with stages/fetch into an unlinked spool file under the run's
 * work folder, and next() then hands out the samples in record order, so
 * the output does not depend on which download finished first.
 *
 * Every record becomes one sample or one ledger error with a stable
 * reason (bad_url, opted_out, http_404, timeout, not_an_image, ...). */
#include "src_urls.h"

#include "core/img.h"
#include "core/vc_mem.h"
#include "core/vc_utf8.h"
#include "fetch.h"
#include "pq.h"
#include "src_lines.h"
#include "src_util.h"
#include "stage_cfg.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum { URLS_MAX_COLUMNS = 1024, URLS_MAX_SAVE = 64 };
enum urls_format { URLS_AUTO = -2, URLS_PARQUET = -1 }; /* else an enum lines_format */

struct urls_file {
    char *path;
    int fmt;
    char *header; /* CSV/TSV */
    char *cols[URLS_MAX_COLUMNS];
    size_t n_cols;
    /* column indices (CSV/TSV, parquet); -1 when absent */
    int url_i, caption_i, save_i[URLS_MAX_SAVE];
};

struct src_urls {
    const struct stage_ctx *ctx;
    struct urls_file *files;
    size_t n_files;
    char *url_col, *caption_col;
    bool caption_required;
    bool warned_caption; /* the default caption column was missing, said once */
    char *save[URLS_MAX_SAVE];
    size_t n_save;
    uint64_t max_record, max_text;
    struct fetch_cfg fetch;
    struct source_unit *units;
    uint32_t *unit_file; /* file index per unit */
    size_t n, units_cap, unit_file_cap;
};

static void urls_destroy(void *state)
{
    struct src_urls *p = state;
    if (!p)
        return;
    for (size_t i = 0; i < p->n_files; i++) {
        free(p->files[i].path);
        free(p->files[i].header);
    }
    free(p->files);
    free(p->url_col);
    free(p->caption_col);
    for (size_t i = 0; i < p->n_save; i++)
        free(p->save[i]);
    fetch_cfg_free(&p->fetch);
    src_units_free(p->units, p->n);
    free(p->unit_file);
    free(p);
}

static int find_col(char *const *cols, size_t n, const char *name)
{
    for (size_t i = 0; name && i < n; i++)
        if (strcmp(cols[i], name) == 0)
            return (int)i;
    return -1;
}

/* A column the spec names and the file lacks: the error lists the file's
 * columns and points at one differing only in case, so that LAION's `URL`
 * against the default `url`, or a headerless CC3M TSV (its first caption
 * and URL read as the header), is plain from the message alone. */
static enum vc_status missing_col(const char *where, const char *path, const char *name,
                                  const char *key, char *const *cols, size_t n, struct vc_err *err)
{
    char have[200] = "";
    size_t len = 0;
    const char *near = NULL;
    bool url_named = false;
    for (size_t i = 0; i < n; i++) {
        if (!near && strcasecmp(cols[i], name) == 0)
            near = cols[i];
        url_named = url_named || strstr(cols[i], "://");
        if (len < sizeof have)
            len += (size_t)snprintf(have + len, sizeof have - len, "%s'%.60s'", i ? ", " : "",
                                    cols[i]);
    }
    if (len >= sizeof have)
        memcpy(have + sizeof have - 4, "...", 4);
    return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                      "%s: %s has no column '%s' (%s%s%s%s)%s; its columns: %s", where, path, name,
                      key, near ? "; did you mean '" : "", near ? near : "", near ? "'?" : "",
                      url_named ? ": a URL is a column name, so the file has no header row, "
                                  "which CSV and TSV lists need (e.g. 'caption<TAB>url' for CC3M)"
                                : "",
                      have);
}

/* Column indices of a file with a header (CSV/TSV names, parquet schema). */
static enum vc_status map_columns(struct src_urls *p, struct urls_file *f, char *const *cols,
                                  size_t n, const char *where, struct vc_err *err)
{
    f->url_i = find_col(cols, n, p->url_col);
    f->caption_i = find_col(cols, n, p->caption_col);
    if (f->url_i < 0)
        return missing_col(where, f->path, p->url_col, "url_col", cols, n, err);
    if (f->caption_i < 0 && p->caption_required)
        return missing_col(where, f->path, p->caption_col, "caption_col", cols, n, err);
    /* LAION's TEXT, DataComp's and COYO's text: without caption_col every
     * sample would lose its caption, and nothing else would say so. */
    for (size_t i = 0; f->caption_i < 0 && !p->warned_caption && i < n; i++)
        if (strcasecmp(cols[i], "caption") == 0 || strcasecmp(cols[i], "text") == 0) {
            p->warned_caption = true;
            fprintf(stderr,
                    "vlmcurate: warning: %s: %s has no column '%s' (caption_col's default) but "
                    "has '%.60s': its samples get no txt; set \"caption_col\": \"%.60s\" to "
                    "keep the captions\n",
                    where, f->path, p->caption_col, cols[i], cols[i]);
        }
    for (size_t s = 0; s < p->n_save; s++)
        if ((f->save_i[s] = find_col(cols, n, p->save[s])) < 0)
            return missing_col(where, f->path, p->save[s], "save_cols", cols, n, err);
    return VC_OK;
}

static enum vc_status add_units(struct src_urls *p, struct source_unit *u, size_t nu, uint32_t file,
                                struct vc_err *err)
{
    if (nu == 0) {
        free(u);
        return VC_OK;
    }
    /* Doubling, not the exact sum: a urls list of thousands of files would
     * otherwise copy every unit so far once per file. */
    struct source_unit *g = vc_grow_array(p->units, &p->units_cap, p->n + nu, sizeof *g, 16);
    uint32_t *gf =
        g ? vc_grow_array(p->unit_file, &p->unit_file_cap, p->n + nu, sizeof *gf, 16) : NULL;
    if (g)
        p->units = g;
    if (!g || !gf) {
        src_units_free(u, nu);
        return vc_err_oom(err);
    }
    p->unit_file = gf;
    memcpy(p->units + p->n, u, nu * sizeof *u);
    for (size_t i = 0; i < nu; i++)
        p->unit_file[p->n + i] = file;
    p->n += nu;
    free(u);
    return VC_OK;
}

static enum vc_status parquet_units(struct src_urls *p, struct urls_file *f, uint32_t fi,
                                    uint64_t per_unit, const char *where, struct vc_err *err)
{
    struct pq_file *pf;
    VC_TRY(pq_open(f->path, &pf, err));
    char *cols[URLS_MAX_COLUMNS];
    size_t n = pq_num_columns(pf) < URLS_MAX_COLUMNS ? pq_num_columns(pf) : URLS_MAX_COLUMNS;
    for (size_t i = 0; i < n; i++)
        cols[i] = (char *)pq_column_at(pf, i)->name;
    enum vc_status rc = map_columns(p, f, cols, n, where, err);
    /* A list or struct column (DataComp's face_bboxes) is refused here,
     * named, rather than failing every unit when it is read. */
    const char *nested = NULL;
    for (size_t s = 0; rc == VC_OK && !nested && s < 2 + p->n_save; s++) {
        int i = s == 0 ? f->url_i : s == 1 ? f->caption_i : f->save_i[s - 2];
        if (i >= 0 && pq_column_at(pf, (size_t)i)->nested)
            nested = pq_column_at(pf, (size_t)i)->name;
    }
    if (nested)
        rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                        "%s: %s: column '%s' is a nested or repeated field (a list or struct), "
                        "which the parquet reader does not support",
                        where, f->path, nested);
    else if (rc == VC_OK && pq_column_at(pf, (size_t)f->url_i)->type != PQ_BYTE_ARRAY)
        rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "%s: %s: column '%s' is %s, not text",
                        where, f->path, p->url_col,
                        pq_type_name(pq_column_at(pf, (size_t)f->url_i)->type));
    uint64_t rows = pq_num_rows(pf);
    pq_close(pf);
    VC_TRY(rc);
    size_t nu = (size_t)((rows + per_unit - 1) / per_unit);
    struct source_unit *u = calloc(nu ? nu : 1, sizeof *u);
    if (!u)
        return vc_err_oom(err);
    for (size_t i = 0; i < nu; i++) {
        u[i].begin = u[i].first_record = i * per_unit;
        u[i].end = u[i].begin + per_unit < rows ? u[i].begin + per_unit : rows;
        if (!(u[i].file = vc_strdup(f->path))) {
            src_units_free(u, nu);
            return vc_err_oom(err);
        }
    }
    return add_units(p, u, nu, fi, err);
}

static enum vc_status file_units(struct src_urls *p, uint32_t fi, int fmt, uint64_t per_unit,
                                 const char *where, struct vc_err *err)
{
    struct urls_file *f = &p->files[fi];
    /* A file named .parquet is parquet whatever its first bytes: a Git LFS
     * pointer or a cut download under that name must be refused as not
     * parquet, not read as a one-column CSV ("has no column 'url'"). */
    size_t len = strlen(f->path);
    if (fmt == URLS_AUTO && len >= 8 && strcasecmp(f->path + len - 8, ".parquet") == 0)
        fmt = URLS_PARQUET;
    uint8_t magic[4] = { 0 };
    size_t got = 0;
    if (fmt != URLS_PARQUET)
        VC_TRY(lines_refuse_packed(where, f->path, magic, &got, err));
    if (fmt == URLS_AUTO) {
        if (got == 4 && memcmp(magic, "PAR1", 4) == 0) {
            fmt = URLS_PARQUET;
        } else {
            enum lines_format lf;
            VC_TRY(lines_sniff(f->path, &lf, err));
            fmt = (int)lf;
        }
    }
    f->fmt = fmt;
    if (fmt == URLS_PARQUET)
        return parquet_units(p, f, fi, per_unit, where, err);
    uint64_t begin = 0;
    if (fmt != LINES_JSONL) {
        VC_TRY(lines_read_header(f->path, (enum lines_format)fmt, p->max_record, where, &f->header,
                                 f->cols, URLS_MAX_COLUMNS, &f->n_cols, &begin, err));
        VC_TRY(map_columns(p, f, f->cols, f->n_cols, where, err));
    }
    struct source_unit *u;
    size_t nu;
    VC_TRY(lines_split(f->path, (enum lines_format)fmt, begin, per_unit, &u, &nu, err));
    return add_units(p, u, nu, fi, err);
}

static enum vc_status urls_setup(struct src_urls *p, const cJSON *cfg, const char *where,
                                 const struct stage_ctx *ctx, struct vc_err *err)
{
    static const char *const formats[] = { "jsonl", "csv", "tsv", "parquet", "auto", NULL };
    const char *uc, *cc;
    int fmt;
    uint64_t per_unit;
    VC_TRY(stage_cfg_str(cfg, where, "url_col", "url", &uc, err));
    VC_TRY(stage_cfg_str(cfg, where, "caption_col", NULL, &cc, err));
    VC_TRY(stage_cfg_enum(cfg, where, "format", formats, 4, &fmt, err));
    VC_TRY(stage_cfg_u64(cfg, where, "urls_per_unit", 1000, 1, 1000000, &per_unit, err));
    p->caption_required = cc != NULL;
    p->url_col = vc_strdup(uc);
    p->caption_col = vc_strdup(cc ? cc : "caption");
    if (!p->url_col || !p->caption_col)
        return vc_err_oom(err);
    const cJSON *save = cJSON_GetObjectItemCaseSensitive(cfg, "save_cols");
    if (save && !cJSON_IsNull(save)) {
        if (!cJSON_IsArray(save) || cJSON_GetArraySize(save) > URLS_MAX_SAVE)
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                              "%s: 'save_cols' must be a list of at most %d column names", where,
                              URLS_MAX_SAVE);
        for (const cJSON *it = save->child; it; it = it->next) {
            if (!cJSON_IsString(it))
                return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                                  "%s: 'save_cols' entries must be strings", where);
            if (!(p->save[p->n_save++] = vc_strdup(it->valuestring)))
                return vc_err_oom(err);
        }
    }
    VC_TRY(fetch_cfg_parse(cJSON_GetObjectItemCaseSensitive(cfg, "fetch"), where, ctx->spec_dir,
                           ctx->limits->max_entry_bytes, &p->fetch, err));
    char **paths = NULL;
    size_t np = 0;
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(cfg, "files");
    if (!files)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "%s: key 'files' is required", where);
    VC_TRY(src_urls_expand(files, where, "files", ctx, &paths, &np, err));
    p->files = calloc(np ? np : 1, sizeof *p->files);
    if (!p->files) {
        src_paths_free(paths, np);
        return vc_err_oom(err);
    }
    for (size_t i = 0; i < np; i++)
        p->files[i].path = paths[i], paths[i] = NULL;
    p->n_files = np;
    src_paths_free(paths, np);
    for (size_t i = 0; i < p->n_files; i++)
        VC_TRY(file_units(p, (uint32_t)i,
                          fmt == 4   ? URLS_AUTO
                          : fmt == 3 ? URLS_PARQUET
                                     : fmt,
                          per_unit, where, err));
    return VC_OK;
}

static enum vc_status urls_create(const cJSON *cfg, const char *where, const struct stage_ctx *ctx,
                                  void **state, struct vc_err *err)
{
    static const char *const keys[] = { SOURCE_COMMON_KEYS, "files",       "format",
                                        "url_col",          "caption_col", "save_cols",
                                        "urls_per_unit",    "fetch",       NULL };
    VC_TRY(stage_cfg_check_keys(cfg, where, keys, err));
    struct src_urls *p = calloc(1, sizeof *p);
    if (!p)
        return vc_err_oom(err);
    p->ctx = ctx;
    p->max_record = ctx->limits->max_json_bytes;
    p->max_text = ctx->limits->max_text_bytes;
    enum vc_status rc = urls_setup(p, cfg, where, ctx, err);
    if (rc < 0) {
        urls_destroy(p);
        return src_load_error(rc, where, err);
    }
    *state = p;
    return VC_OK;
}

static const struct source_unit *urls_units(void *state, size_t *n)
{
    struct src_urls *p = state;
    *n = p->n;
    return p->units;
}

/* One record of a unit, before and after its download. */
struct urls_row {
    char *url, *caption;
    cJSON *meta;        /* url + save_cols */
    enum vc_reason pre; /* a record-level failure found before fetching */
    char pre_msg[96];
};

struct urls_cursor {
    const struct src_urls *p;
    const struct source_unit *u;
    struct urls_row *rows;
    size_t n, cap, next;
    struct fetch_result *res;
    int spool;
    uint8_t *buf;
    size_t buf_cap;
    char stem[64];
};

static void urls_close(void *cursor)
{
    struct urls_cursor *c = cursor;
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->rows[i].url);
        free(c->rows[i].caption);
        cJSON_Delete(c->rows[i].meta);
    }
    free(c->rows);
    free(c->res);
    free(c->buf);
    if (c->spool >= 0)
        close(c->spool);
    free(c);
}

static struct urls_row *new_row(struct urls_cursor *c, struct vc_err *err)
{
    struct urls_row *g = vc_grow_array(c->rows, &c->cap, c->n + 1, sizeof *g, 256);
    if (!g) {
        vc_err_oom(err);
        return NULL;
    }
    c->rows = g;
    struct urls_row *r = &c->rows[c->n++];
    memset(r, 0, sizeof *r);
    r->meta = cJSON_CreateObject();
    if (!r->meta)
        vc_err_oom(err);
    return r->meta ? r : NULL;
}

static void row_fail(struct urls_row *r, enum vc_reason why, const char *msg)
{
    r->pre = why;
    snprintf(r->pre_msg, sizeof r->pre_msg, "%.95s", msg);
}

/* A parquet null, boolean or number as JSON (save_cols). */
static cJSON *pq_json(const struct pq_value *v)
{
    if (v->null)
        return cJSON_CreateNull();
    switch (v->type) {
    case PQ_BOOLEAN:
        return cJSON_CreateBool(v->v.b);
    case PQ_INT32:
    case PQ_INT64: {
        /* Beyond 2^53 a double would change the value (LAION's int64
         * `hash`): written as its decimal literal. */
        if (v->is_unsigned && v->v.u > 9007199254740992ULL) {
            char lit[24];
            snprintf(lit, sizeof lit, "%llu", (unsigned long long)v->v.u);
            return cJSON_CreateRaw(lit);
        }
        if (v->is_unsigned)
            return cJSON_CreateNumber((double)v->v.u);
        if (v->v.i > 9007199254740992LL || v->v.i < -9007199254740992LL) {
            char lit[24];
            snprintf(lit, sizeof lit, "%lld", (long long)v->v.i);
            return cJSON_CreateRaw(lit);
        }
        return cJSON_CreateNumber((double)v->v.i);
    }
    case PQ_FLOAT:
    case PQ_DOUBLE:
        return cJSON_CreateNumber(v->v.d);
    default: /* bytes go to vc_utf8_json_add_bytes; INT96 is refused when read */
        return NULL;
    }
}

/* A save_cols value into meta.  Bytes that are not UTF-8 without NULs (a
 * BINARY column, a 32-byte FIXED_LEN_BYTE_ARRAY hash) would make the
 * sample's json invalid and the whole sample a text_not_utf8 error after
 * its download: as for keys and file names (vc_utf8_json_add), the value is
 * written with U+FFFD for the bad bytes and `name`_hex holds them exactly. */
static bool save_value(cJSON *meta, const char *name, const struct pq_value *v)
{
    bool bytes = !v->null && (v->type == PQ_BYTE_ARRAY || v->type == PQ_FIXED_LEN_BYTE_ARRAY);
    return bytes ? vc_utf8_json_add_bytes(meta, name, v->v.s.p, v->v.s.n)
                 : cJSON_AddItemToObject(meta, name, pq_json(v));
}

static char *pq_text(const struct pq_value *v)
{
    if (v->null || (v->type != PQ_BYTE_ARRAY && v->type != PQ_FIXED_LEN_BYTE_ARRAY))
        return NULL;
    return vc_strndup((const char *)v->v.s.p, v->v.s.n);
}

static enum vc_status read_parquet(struct urls_cursor *c, const struct urls_file *f,
                                   struct vc_err *err)
{
    const struct src_urls *p = c->p;
    struct pq_file *pf;
    VC_TRY(pq_open(f->path, &pf, err));
    /* Column cursors: url, caption, save cols (indices into cur). */
    struct pq_cursor *cur[2 + URLS_MAX_SAVE] = { 0 };
    int idx[2 + URLS_MAX_SAVE];
    size_t nc = 0;
    idx[nc++] = f->url_i;
    idx[nc++] = f->caption_i;
    for (size_t s = 0; s < p->n_save; s++)
        idx[nc++] = f->save_i[s];
    enum vc_status rc = VC_OK;
    for (size_t k = 0; rc == VC_OK && k < nc; k++)
        if (idx[k] >= 0)
            rc = pq_cursor_open(pf, (size_t)idx[k], c->u->begin, &cur[k], err);
    for (uint64_t row = c->u->begin; rc == VC_OK && row < c->u->end; row++) {
        struct urls_row *r = new_row(c, err);
        if (!r) {
            rc = VC_EFATAL;
            break;
        }
        for (size_t k = 0; rc == VC_OK && k < nc; k++) {
            if (!cur[k])
                continue;
            struct pq_value v;
            rc = pq_cursor_next(cur[k], &v, err);
            if (rc == VC_EOF)
                rc = vc_err_set(err, VC_ESHARD, VC_REASON_corrupt_archive,
                                "%s: column ends before row %" PRIu64, f->path, row);
            if (rc != VC_OK)
                break;
            if (k == 0)
                r->url = pq_text(&v);
            else if (k == 1)
                r->caption = pq_text(&v);
            else if (!save_value(r->meta, p->save[k - 2], &v))
                rc = vc_err_oom(err);
        }
    }
    for (size_t k = 0; k < nc; k++)
        pq_cursor_close(cur[k]);
    pq_close(pf);
    return rc;
}

/* The string (or number as text) of a JSON member; NULL when absent. */
static char *json_text(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (cJSON_IsString(v))
        return vc_strdup(v->valuestring);
    if (cJSON_IsNumber(v)) {
        char num[32];
        snprintf(num, sizeof num, "%.17g", v->valuedouble);
        return vc_strdup(num);
    }
    return NULL;
}

static enum vc_status read_lines(struct urls_cursor *c, const struct urls_file *f,
                                 struct vc_err *err)
{
    const struct src_urls *p = c->p;
    struct lines_reader *lr;
    VC_TRY(lines_open(f->path, (enum lines_format)f->fmt, c->u->begin, c->u->end, p->max_record,
                      &lr, err));
    enum vc_status rc;
    for (;;) {
        char *rec;
        size_t len;
        struct vc_err e = { 0 };
        rc = lines_next(lr, &rec, &len, &e);
        if (rc == VC_EOF) {
            rc = VC_OK;
            break;
        }
        if (rc != VC_OK && rc != VC_ESAMPLE) {
            *err = e;
            break;
        }
        struct urls_row *r = new_row(c, err);
        if (!r) {
            rc = VC_EFATAL;
            break;
        }
        if (rc == VC_ESAMPLE) {
            row_fail(r, e.reason, e.msg);
            continue;
        }
        if (f->fmt == LINES_JSONL) {
            /* Says why (a \u0000 that would cut the caption short, an
             * array, two records on one line), as the pairs source does. */
            cJSON *o;
            struct vc_err je = { 0 };
            if (src_json_object(rec, len, &o, &je) != VC_OK) {
                row_fail(r, je.reason, je.msg);
            } else {
                r->url = json_text(o, p->url_col);
                r->caption = json_text(o, p->caption_col);
                for (size_t s = 0; s < p->n_save; s++) {
                    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, p->save[s]);
                    cJSON_AddItemToObject(r->meta, p->save[s],
                                          v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull());
                }
            }
            cJSON_Delete(o);
            continue;
        }
        char *fields[URLS_MAX_COLUMNS];
        size_t nf = lines_split_fields(rec, len, f->fmt == LINES_TSV ? '\t' : ',', fields,
                                       URLS_MAX_COLUMNS);
        if (nf != f->n_cols) {
            row_fail(r, VC_REASON_missing_field, "record and header differ in column count");
            continue;
        }
        r->url = vc_strdup(fields[f->url_i]);
        r->caption = f->caption_i >= 0 ? vc_strdup(fields[f->caption_i]) : NULL;
        for (size_t s = 0; s < p->n_save; s++)
            cJSON_AddStringToObject(r->meta, p->save[s], fields[f->save_i[s]]);
    }
    lines_close(lr);
    return rc;
}

static enum vc_status urls_open(void *state, const struct source_unit *u, void **cursor,
                                struct vc_err *err)
{
    const struct src_urls *p = state;
    const struct urls_file *f = &p->files[p->unit_file[u - p->units]];
    struct urls_cursor *c = calloc(1, sizeof *c);
    if (!c)
        return vc_err_oom(err);
    c->p = p;
    c->u = u;
    c->spool = -1;
    const char *base = strrchr(f->path, '/');
    base = base ? base + 1 : f->path;
    size_t stem = strcspn(base, ".");
    char name[sizeof c->stem]; /* the stem alone: sanitising may not cut it short */
    snprintf(name, sizeof name, "%.*s", (int)stem, base);
    sample_key_sanitize(name, c->stem, sizeof c->stem);
    enum vc_status rc = f->fmt == URLS_PARQUET ? read_parquet(c, f, err) : read_lines(c, f, err);
    char **urls = NULL;
    if (rc == VC_OK) {
        c->res = calloc(c->n ? c->n : 1, sizeof *c->res);
        urls = calloc(c->n ? c->n : 1, sizeof *urls);
        if (!c->res || !urls)
            rc = vc_err_oom(err);
    }
    for (size_t i = 0; rc == VC_OK && i < c->n; i++) {
        struct urls_row *r = &c->rows[i];
        if (r->pre != VC_REASON_none)
            continue;
        if (r->url)
            fetch_url_trim(r->url);
        if (!r->url || !r->url[0])
            row_fail(r, VC_REASON_missing_field, "record has no URL");
        else if (r->caption && strlen(r->caption) > p->max_text)
            row_fail(r, VC_REASON_field_too_long, "caption longer than limits.max_text_bytes");
        /* ingest refuses such a txt: checked here, the image is not fetched
         * only to be thrown away (a Latin-1 CSV would cost every download). */
        else if (r->caption && !vc_utf8_valid(r->caption, strlen(r->caption), NULL))
            row_fail(r, VC_REASON_text_not_utf8, "caption is not valid UTF-8");
        else if (fetch_opted_out(&p->fetch, r->url))
            row_fail(r, VC_REASON_opted_out, "URL or domain is on the opt-out list");
        else
            urls[i] = r->url;
    }
    if (rc == VC_OK) {
        const char *dir = p->ctx->work_dir ? p->ctx->work_dir : P_tmpdir;
        if ((c->spool = fetch_spool_open(dir, err)) < 0)
            rc = VC_EFATAL;
    }
    if (rc == VC_OK)
        rc = fetch_run(&p->fetch, urls, c->n, c->spool, c->res, err);
    free(urls);
    if (rc < 0) {
        urls_close(c);
        return rc;
    }
    *cursor = c;
    return VC_OK;
}

static enum vc_status urls_next(void *cursor, struct sample *s, struct vc_err *err)
{
    struct urls_cursor *c = cursor;
    if (c->next >= c->n)
        return VC_EOF;
    size_t i = c->next++;
    struct urls_row *r = &c->rows[i];
    const struct fetch_result *res = &c->res[i];
    s->src_file = c->u->file;
    s->src_index = c->u->first_record + i;
    char key[96];
    snprintf(key, sizeof key, "%s_%09" PRIu64, c->stem, s->src_index);
    s->orig_key = arena_strdup(s->arena, key);
    if (r->pre != VC_REASON_none)
        return vc_err_set(err, VC_ESAMPLE, r->pre, "%s", r->pre_msg);
    if (res->reason != VC_REASON_none)
        return vc_err_set(err, VC_ESAMPLE, res->reason, "%.200s: %s", r->url, res->msg);
    VC_TRY(fetch_spool_read(c->spool, res, &c->buf, &c->buf_cap, err));
    enum img_format fmt = img_sniff(c->buf, (size_t)res->len);
    if (fmt == IMG_FORMAT_UNKNOWN)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_not_an_image,
                          "%.200s: %llu bytes of '%s' are not a JPEG, PNG or WebP image", r->url,
                          (unsigned long long)res->len,
                          res->content_type[0] ? res->content_type : "no content type");
    cJSON *meta = cJSON_Duplicate(r->meta, 1);
    if (!meta || !cJSON_AddStringToObject(meta, "url", r->url))
        return cJSON_Delete(meta), vc_err_oom(err);
    char *json = cJSON_PrintUnformatted(meta);
    cJSON_Delete(meta);
    if (!json)
        return vc_err_oom(err);
    enum vc_status rc = sample_add_field(s, img_format_ext(fmt), c->buf, (size_t)res->len, err);
    if (rc == VC_OK && r->caption)
        rc = sample_add_field(s, "txt", r->caption, strlen(r->caption), err);
    if (rc == VC_OK)
        rc = sample_add_field(s, "json", json, strlen(json), err);
    free(json);
    return rc;
}

const struct source_ops src_urls_ops = {
    .name = "urls",
    .create = urls_create,
    .units = urls_units,
    .open = urls_open,
    .next = urls_next,
    .close = urls_close,
    .destroy = urls_destroy,
};
