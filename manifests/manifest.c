/* manifest: builders and getters over cJSON.  Getters never fail: a key
 * that is missing or of the wrong type reads as 0 or "" (the commit check
 * has vouched for the document's origin); the arrays an executor indexes
 * with (slices, shard cuts) are checked and refused when malformed. */
#include "manifest.h"

#include "core/vc_mem.h"
#include "core/vc_utf8.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* A document with its spec_hash, or NULL on OOM. */
static cJSON *doc_new(const char *hash)
{
    cJSON *doc = cJSON_CreateObject();
    if (doc && !cJSON_AddStringToObject(doc, "spec_hash", hash)) {
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}

/* Adds the numbers (key, value) pairs; false on OOM. */
static bool add_nums(cJSON *o, const char *const *keys, const double *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!cJSON_AddNumberToObject(o, keys[i], v[i]))
            return false;
    return true;
}

static enum vc_status append(cJSON *doc, const char *array, cJSON *item, struct vc_err *err)
{
    cJSON *a = cJSON_GetObjectItemCaseSensitive(doc, array);
    if (!item || !a || !cJSON_AddItemToArray(a, item)) {
        cJSON_Delete(item);
        return vc_err_oom(err);
    }
    return VC_OK;
}

/* ---- unit ---- */

cJSON *manifest_unit_new(const char *hash, unsigned round, unsigned unit, const char *file)
{
    cJSON *doc = doc_new(hash);
    static const char *const keys[] = { "round", "unit" };
    const double v[] = { round, unit };
    if (doc && (!add_nums(doc, keys, v, 2) || !cJSON_AddStringToObject(doc, "file", file))) {
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}

enum vc_status manifest_unit_set_counts(cJSON *doc, const struct manifest_unit_counts *c,
                                        struct vc_err *err)
{
    static const char *const keys[] = { "input", "kept", "lines" };
    const double v[] = { (double)c->input, (double)c->n_kept, (double)c->n_lines };
    return add_nums(doc, keys, v, 3) ? VC_OK : vc_err_oom(err);
}

void manifest_unit_get_counts(const cJSON *doc, struct manifest_unit_counts *out)
{
    out->input = (uint64_t)num(doc, "input");
    out->n_kept = (uint64_t)num(doc, "kept");
    out->n_lines = (uint64_t)num(doc, "lines");
}

enum vc_status manifest_unit_set_links(cJSON *doc, struct vc_err *err)
{
    return cJSON_AddTrueToObject(doc, "links") ? VC_OK : vc_err_oom(err);
}

bool manifest_unit_links(const cJSON *doc)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "links"));
}

/* Writes o (taken: deleted here) to f as one line.  utf8: through the
 * UTF-8 guard (vc_utf8_json_print), as the unit manifest that held these
 * lines was; drops keep cJSON's own bytes, raw keys included. */
static enum vc_status write_line(FILE *f, const char *path, cJSON *o, bool utf8, struct vc_err *err)
{
    char *text = !o ? NULL : utf8 ? vc_utf8_json_print(o, false) : cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text)
        return vc_err_oom(err);
    bool ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    free(text);
    return ok ? VC_OK : vc_err_io(err, path);
}

enum vc_status manifest_kept_write(FILE *f, const char *path, const struct manifest_kept *k,
                                   struct vc_err *err)
{
    cJSON *rec = cJSON_CreateObject();
    static const char *const keys[] = { "i", "o", "n", "b" };
    const double v[] = { (double)k->index, (double)k->off, (double)k->len, (double)k->tar_bytes };
    if (rec && (!add_nums(rec, keys, v, 4) || !vc_utf8_json_add(rec, "k", k->key) ||
                (k->extra && !cJSON_AddItemToObject(rec, "x", cJSON_Duplicate(k->extra, 1))))) {
        cJSON_Delete(rec);
        rec = NULL;
    }
    return write_line(f, path, rec, true, err);
}

enum vc_status manifest_line_write(FILE *f, const char *path, const struct ledger_entry *e,
                                   struct vc_err *err)
{
    return write_line(f, path, ledger_entry_to_json(e), true, err);
}

/* A key is written as valid UTF-8 plus "k_hex" when its bytes are not
 * (vc_utf8_json_add); readers get the exact bytes back.  The item belongs
 * to a document the caller loaded (never a const object), so the string is
 * restored in place; doing it twice gives the same bytes. */
static const char *raw_key(const cJSON *item)
{
    vc_utf8_json_restore((cJSON *)(uintptr_t)item, "k");
    return str(item, "k");
}

void manifest_kept_get(const cJSON *item, struct manifest_kept *out)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(item, "x");
    *out = (struct manifest_kept){
        .index = (uint64_t)num(item, "i"),
        .key = raw_key(item),
        .off = (uint64_t)num(item, "o"),
        .len = (uint64_t)num(item, "n"),
        .tar_bytes = (uint64_t)num(item, "b"),
        .extra = cJSON_IsObject(x) ? x : NULL,
    };
}

uint64_t manifest_line_index(const cJSON *line)
{
    return (uint64_t)num(line, "index");
}

/* ---- JSON lines ---- */

enum vc_status manifest_reader_open(struct manifest_reader *r, const char *path, const char *what,
                                    struct vc_err *err)
{
    memset(r, 0, sizeof *r);
    r->what = what;
    if (!(r->path = vc_strdup(path)))
        return vc_err_oom(err);
    if (!(r->f = fopen(path, "rb"))) {
        vc_err_io(err, path);
        manifest_reader_close(r);
        return VC_EFATAL;
    }
    return VC_OK;
}

int manifest_reader_next(struct manifest_reader *r, cJSON **item, struct vc_err *err)
{
    *item = NULL;
    errno = 0;
    ssize_t n = getline(&r->line, &r->cap, r->f);
    if (n < 0)
        return errno ? vc_err_io(err, r->path) : 0;
    r->n++;
    r->off = r->pos;
    r->pos += (uint64_t)n;
    *item = cJSON_ParseWithLength(r->line, (size_t)n);
    if (!cJSON_IsObject(*item)) {
        cJSON_Delete(*item);
        *item = NULL;
        return vc_err_set(err, VC_EFATAL, VC_REASON_json_invalid, "%s: line %llu is not a %s",
                          r->path, (unsigned long long)r->n, r->what);
    }
    return 1;
}

enum vc_status manifest_reader_seek(struct manifest_reader *r, uint64_t off, struct vc_err *err)
{
    if (off == r->pos)
        return VC_OK;
    if (off > INT64_MAX || fseeko(r->f, (off_t)off, SEEK_SET) != 0)
        return vc_err_io(err, r->path);
    r->pos = off;
    return VC_OK;
}

void manifest_reader_close(struct manifest_reader *r)
{
    if (r->f)
        fclose(r->f);
    free(r->path);
    free(r->line);
    memset(r, 0, sizeof *r);
}

/* ---- part ---- */

cJSON *manifest_part_new(const char *hash, const char *stage, unsigned round, size_t part)
{
    cJSON *doc = doc_new(hash);
    static const char *const keys[] = { "round", "part" };
    const double v[] = { round, (double)part };
    if (doc && (!cJSON_AddStringToObject(doc, "stage", stage) || !add_nums(doc, keys, v, 2))) {
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}

/* ---- round ---- */

cJSON *manifest_round_new(const char *hash, const char *stage, unsigned round,
                          const struct manifest_sizing *sz, const cJSON *report)
{
    cJSON *doc = doc_new(hash);
    static const char *const keys[] = { "round", "n_order", "samples_per_shard", "shard_bytes",
                                        "n_dropped" };
    const double v[] = { round, (double)sz->n_order, (double)sz->samples_per_shard,
                         (double)sz->shard_bytes, (double)sz->n_dropped };
    if (doc && (!cJSON_AddStringToObject(doc, "stage", stage) || !add_nums(doc, keys, v, 5) ||
                !cJSON_AddItemToObject(doc, "report", cJSON_Duplicate(report, 1)))) {
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}

static cJSON *drop_json(const struct manifest_drop *d)
{
    cJSON *o = cJSON_CreateObject();
    static const char *const keys[] = { "u", "i", "du", "di" };
    const double v[] = { d->unit, (double)d->index, d->dup_unit, (double)d->dup_index };
    if (o && (!add_nums(o, keys, v, 2) || !vc_utf8_json_add(o, "k", d->key) ||
              !cJSON_AddStringToObject(o, "state", d->state) ||
              !cJSON_AddStringToObject(o, "stage", d->stage) ||
              !cJSON_AddStringToObject(o, "reason", d->reason) ||
              (d->has_dup && !add_nums(o, keys + 2, v + 2, 2)) ||
              (d->dup_key && !cJSON_AddStringToObject(o, "dk", d->dup_key)) ||
              (d->dup_method && !cJSON_AddStringToObject(o, "dm", d->dup_method)) ||
              (d->dup_measure && (!cJSON_AddStringToObject(o, "dq", d->dup_measure) ||
                                  !cJSON_AddNumberToObject(o, "dv", d->dup_value))))) {
        cJSON_Delete(o);
        o = NULL;
    }
    return o;
}

enum vc_status manifest_drop_write(FILE *f, const char *path, const struct manifest_drop *d,
                                   struct vc_err *err)
{
    return write_line(f, path, drop_json(d), false, err);
}

static const char *opt_str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

void manifest_drop_get(const cJSON *item, struct manifest_drop *out)
{
    *out = (struct manifest_drop){
        .unit = (uint32_t)num(item, "u"),
        .index = (uint64_t)num(item, "i"),
        .key = raw_key(item),
        .state = str(item, "state"),
        .stage = str(item, "stage"),
        .reason = str(item, "reason"),
        .has_dup = cJSON_GetObjectItemCaseSensitive(item, "du") != NULL,
        .dup_unit = (uint32_t)num(item, "du"),
        .dup_index = (uint64_t)num(item, "di"),
        .dup_key = opt_str(item, "dk"),
        .dup_method = opt_str(item, "dm"),
        .dup_measure = opt_str(item, "dq"),
        .dup_value = num(item, "dv"),
    };
}

void manifest_round_sizing(const cJSON *doc, struct manifest_sizing *out)
{
    out->n_order = (uint64_t)num(doc, "n_order");
    out->samples_per_shard = (uint64_t)num(doc, "samples_per_shard");
    out->shard_bytes = (uint64_t)num(doc, "shard_bytes");
    out->n_dropped = (uint64_t)num(doc, "n_dropped");
}

cJSON *manifest_take_report(cJSON *doc)
{
    return cJSON_DetachItemFromObjectCaseSensitive(doc, "report");
}

/* ---- slice ---- */

cJSON *manifest_slice_new(const char *hash, size_t shard, size_t first_pos)
{
    cJSON *doc = doc_new(hash);
    static const char *const keys[] = { "shard", "first" };
    const double v[] = { (double)shard, (double)first_pos };
    if (doc && (!add_nums(doc, keys, v, 2) || !cJSON_AddArrayToObject(doc, "recs") ||
                !cJSON_AddArrayToObject(doc, "keys"))) {
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}

enum vc_status manifest_slice_add(cJSON *doc, const struct manifest_slot *s, struct vc_err *err)
{
    const double v[] = { s->unit, (double)s->index, (double)s->off, (double)s->len, s->source };
    cJSON *rec = cJSON_CreateDoubleArray(v, 5);
    VC_TRY(append(doc, "recs", rec, err));
    return append(doc, "keys", cJSON_CreateString(s->key), err);
}

enum vc_status manifest_slice_slots(const cJSON *doc, const char *what, struct manifest_slot **out,
                                    size_t *n, struct vc_err *err)
{
    const cJSON *recs = cJSON_GetObjectItemCaseSensitive(doc, "recs");
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(doc, "keys");
    size_t k = (size_t)cJSON_GetArraySize(recs);
    *out = NULL;
    *n = 0;
    if (!cJSON_IsArray(recs) || !cJSON_IsArray(keys) || (size_t)cJSON_GetArraySize(keys) != k)
        return vc_err_set(err, VC_EFATAL, VC_REASON_json_invalid, "%s: malformed slice", what);
    struct manifest_slot *v = calloc(k + 1, sizeof *v);
    if (!v)
        return vc_err_oom(err);
    size_t i = 0;
    for (const cJSON *r = recs->child, *key = keys->child; r && key;
         r = r->next, key = key->next, i++) {
        double f[5] = { 0 };
        size_t j = 0;
        for (const cJSON *x = r->child; x && j < 5; x = x->next)
            f[j++] = cJSON_IsNumber(x) ? x->valuedouble : -1;
        if (j != 5 || !cJSON_IsString(key) || f[0] < 0 || f[1] < 0 || f[2] < 0 || f[3] < 0 ||
            f[4] < 0) {
            free(v);
            return vc_err_set(err, VC_EFATAL, VC_REASON_json_invalid, "%s: bad record %zu", what,
                              i);
        }
        v[i] = (struct manifest_slot){ .unit = (uint32_t)f[0],
                                       .index = (uint64_t)f[1],
                                       .off = (uint64_t)f[2],
                                       .len = (uint64_t)f[3],
                                       .source = (uint32_t)f[4],
                                       .key = key->valuestring };
    }
    *out = v;
    *n = k;
    return VC_OK;
}

/* ---- plan ---- */

cJSON *manifest_plan_new(const char *hash, const size_t *starts, size_t n_shards,
                         const cJSON *report)
{
    cJSON *doc = doc_new(hash);
    cJSON *st = doc ? cJSON_AddArrayToObject(doc, "starts") : NULL;
    bool ok = st && cJSON_AddNumberToObject(doc, "n_shards", (double)n_shards) &&
              cJSON_AddItemToObject(doc, "report", cJSON_Duplicate(report, 1));
    for (size_t i = 0; ok && i <= n_shards; i++)
        ok = cJSON_AddItemToArray(st, cJSON_CreateNumber((double)starts[i]));
    if (!ok) {
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}

enum vc_status manifest_plan_starts(const cJSON *doc, size_t **starts, size_t *n_shards,
                                    struct vc_err *err)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(doc, "starts");
    size_t n = (size_t)cJSON_GetArraySize(st);
    if (!cJSON_IsArray(st) || n == 0 || num(doc, "n_shards") != (double)(n - 1))
        return vc_err_set(err, VC_EFATAL, VC_REASON_json_invalid, "plan.json: bad shard cuts");
    size_t *v = calloc(n, sizeof *v), i = 0;
    if (!v)
        return vc_err_oom(err);
    for (const cJSON *x = st->child; x; x = x->next, i++) {
        v[i] = (size_t)(cJSON_IsNumber(x) && x->valuedouble >= 0 ? x->valuedouble : 0);
        if (i && v[i] < v[i - 1]) {
            free(v);
            return vc_err_set(err, VC_EFATAL, VC_REASON_json_invalid, "plan.json: bad shard cuts");
        }
    }
    *starts = v;
    *n_shards = n - 1;
    return VC_OK;
}

const cJSON *manifest_plan_report(const cJSON *doc)
{
    return cJSON_GetObjectItemCaseSensitive(doc, "report");
}

/* ---- shard ---- */

cJSON *manifest_shard_new(const char *hash, const struct manifest_shard *m,
                          const char *const *names, const uint64_t *per_source, size_t n_sources)
{
    cJSON *doc = doc_new(hash), *srcs = cJSON_CreateObject();
    static const char *const keys[] = { "samples", "bytes", "tar_bytes" };
    const double v[] = { (double)m->samples, (double)m->bytes, (double)m->tar_bytes };
    bool ok = doc && srcs && cJSON_AddStringToObject(doc, "shard", m->name) &&
              add_nums(doc, keys, v, 3) && cJSON_AddStringToObject(doc, "sha256", m->sha256) &&
              cJSON_AddStringToObject(doc, "first_key", m->first_key) &&
              cJSON_AddStringToObject(doc, "last_key", m->last_key);
    for (size_t i = 0; ok && i < n_sources; i++)
        if (per_source[i])
            ok = cJSON_AddNumberToObject(srcs, names[i], (double)per_source[i]) != NULL;
    if (ok && cJSON_AddItemToObject(doc, "sources", srcs))
        return doc;
    cJSON_Delete(srcs);
    cJSON_Delete(doc);
    return NULL;
}

void manifest_shard_get(const cJSON *doc, struct manifest_shard *out)
{
    *out = (struct manifest_shard){
        .name = str(doc, "shard"),
        .sha256 = str(doc, "sha256"),
        .first_key = str(doc, "first_key"),
        .last_key = str(doc, "last_key"),
        .samples = (uint64_t)num(doc, "samples"),
        .bytes = (uint64_t)num(doc, "bytes"),
        .tar_bytes = (uint64_t)num(doc, "tar_bytes"),
    };
}
