/* session: rounds, paths and the readers of committed files.  A file that
 * should be committed but is missing or names another spec is an error
 * naming it: a phase never starts on the half of a run. */
#include "session.h"

#include "core/img.h"
#include "core/vc_mem.h"

#include "manifests/commit.h"
#include "manifests/manifest.h"

#include <cjson/cJSON.h>
#include <omp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Splits the stage list after each global stage. */
static enum vc_status rounds_build(struct session *ss, struct vc_err *err)
{
    const struct spec *sp = ss->spec;
    ss->rounds = calloc(sp->n_stages + 1, sizeof *ss->rounds);
    if (!ss->rounds)
        return vc_err_oom(err);
    struct session_round *rd = &ss->rounds[0];
    *rd = (struct session_round){ .first = 0, .global = -1, .batch = 1 };
    for (size_t k = 0; k < sp->n_stages; k++) {
        const struct spec_stage *st = &sp->stages[k];
        if (st->ops->caps & STAGE_CAP_MODEL) {
            size_t b = st->ops->batch_size ? st->ops->batch_size(st->state) : 1;
            rd->model = true;
            if (b > rd->batch)
                rd->batch = b < SESSION_MAX_BATCH ? b : SESSION_MAX_BATCH;
        }
        if (stage_is_global(st->ops, st->state)) {
            rd->end = k + 1;
            rd->global = (long)k;
            rd++;
            *rd = (struct session_round){ .first = k + 1, .global = -1, .batch = 1 };
        }
    }
    rd->end = sp->n_stages;
    ss->n_rounds = (size_t)(rd - ss->rounds) + 1;
    return VC_OK;
}

enum vc_status session_init(struct session *ss, struct spec *spec, FILE *log, struct vc_err *err)
{
    memset(ss, 0, sizeof *ss);
    ss->spec = spec;
    ss->log = log;
    if (spec->threads <= 0)
        spec->threads = omp_get_max_threads();
    img_budget_set(spec->limits.max_decode_bytes);
    ss->n_units = spec_n_units(spec);
    VC_TRY(rounds_build(ss, err));
    ss->ctx = calloc(ss->n_rounds, sizeof *ss->ctx);
    if (!ss->ctx)
        return vc_err_oom(err);
    for (size_t k = 0; k < ss->n_rounds; k++) {
        ss->ctx[k] = spec->ctx;
        ss->ctx[k].round = (uint32_t)k;
        ss->ctx[k].n_units = ss->n_units;
        ss->ctx[k].threads = spec->threads;
    }
    return VC_OK;
}

void session_fini(struct session *ss)
{
    free(ss->rounds);
    free(ss->ctx);
    memset(ss, 0, sizeof *ss);
}

char *session_work_path(const struct session *ss, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const char *dir = ss->spec->work_dir;
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Bytes of `p` that spell the spec's folder and the slash after it (0 when
 * p does not start with it). */
static size_t spec_dir_prefix(const struct session *ss, const char *p)
{
    const char *dir = ss->spec->spec_dir;
    size_t n = strlen(dir);
    if (n && !strncmp(p, dir, n) && p[n] == '/')
        return n + 1 + (p[n + 1] == '/');
    return 0;
}

const char *session_unit_file(const struct session *ss, const char *file)
{
    return file + spec_dir_prefix(ss, file);
}

/* A character that can continue a path: the folder is cut only where a
 * path starts, not inside a longer name that ends like it. */
static bool path_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("._-/~+", c));
}

void session_unit_message(const struct session *ss, const char *msg, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; msg[i] && o + 1 < cap;) {
        size_t skip = (i == 0 || !path_char(msg[i - 1])) ? spec_dir_prefix(ss, msg + i) : 0;
        if (skip)
            i += skip;
        else
            out[o++] = msg[i++];
    }
    if (cap)
        out[o] = '\0';
}

enum vc_status session_unit_manifest(const struct session *ss, size_t round, size_t u,
                                     struct cJSON **doc, struct vc_err *err)
{
    char *man = session_work_path(ss, "r%zu-map-%06zu.json", round, u);
    bool ok = man && commit_valid(man, ss->spec->hash, doc);
    free(man);
    if (!ok)
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error,
                          "unit %zu: its round %zu manifest is missing or names another spec", u,
                          round);
    return VC_OK;
}

enum vc_status session_kept_open(struct session_kept *c, const struct session *ss, size_t round,
                                 size_t u, struct vc_err *err)
{
    memset(c, 0, sizeof *c);
    c->ss = ss;
    c->unit = u;
    cJSON *doc = NULL;
    VC_TRY(session_unit_manifest(ss, round, u, &doc, err));
    cJSON_Delete(doc);
    char *path = session_work_path(ss, "r%zu-map-%06zu.kept", round, u);
    enum vc_status rc =
        path ? manifest_reader_open(&c->rd, path, "kept record", err) : vc_err_oom(err);
    free(path);
    return rc == VC_OK ? session_kept_next(c, err) : rc;
}

enum vc_status session_kept_next(struct session_kept *c, struct vc_err *err)
{
    cJSON_Delete(c->item);
    c->item = NULL;
    int got = manifest_reader_next(&c->rd, &c->item, err);
    if (got < 0)
        return (enum vc_status)got;
    if (got > 0)
        manifest_kept_get(c->item, &c->k);
    return VC_OK;
}

void session_kept_close(struct session_kept *c)
{
    cJSON_Delete(c->item);
    manifest_reader_close(&c->rd);
    memset(c, 0, sizeof *c);
}

void session_kept_rec(const struct session_kept *c, struct stage_rec *r)
{
    size_t source;
    spec_unit(c->ss->spec, c->unit, &source);
    *r = (struct stage_rec){ .unit = (uint32_t)c->unit,
                             .source = (uint32_t)source,
                             .index = c->k.index,
                             .bytes = c->k.tar_bytes,
                             .key = c->k.key,
                             .extra = c->k.extra };
}

void session_recs_free(struct session_recs *rs)
{
    for (size_t i = 0; rs->v && i < rs->n; i++)
        cJSON_Delete((cJSON *)(uintptr_t)rs->v[i].extra);
    free(rs->v);
    free(rs->first);
    arena_free(rs->keys);
    memset(rs, 0, sizeof *rs);
}

/* Unit u's kept records appended, owning their keys and extras. */
static enum vc_status recs_add_unit(const struct session *ss, size_t round, size_t u,
                                    struct session_recs *rs, struct vc_err *err)
{
    struct session_kept c;
    enum vc_status rc = session_kept_open(&c, ss, round, u, err);
    for (; rc == VC_OK && c.item; rc = session_kept_next(&c, err)) {
        struct stage_rec *v = vc_grow_array(rs->v, &rs->cap, rs->n + 1, sizeof *v, 4096);
        if (!v) {
            rc = vc_err_oom(err);
            break;
        }
        rs->v = v;
        struct stage_rec *r = &rs->v[rs->n];
        session_kept_rec(&c, r);
        r->extra = NULL;
        if (!(r->key = arena_strdup(rs->keys, c.k.key))) {
            rc = vc_err_oom(err);
            break;
        }
        rs->n++;
        if (c.k.extra)
            r->extra = cJSON_DetachItemViaPointer(c.item, (cJSON *)(uintptr_t)c.k.extra);
    }
    session_kept_close(&c);
    return rc;
}

enum vc_status session_recs_load(const struct session *ss, size_t round, struct session_recs *rs,
                                 struct vc_err *err)
{
    memset(rs, 0, sizeof *rs);
    rs->first = calloc(ss->n_units + 1, sizeof *rs->first);
    rs->keys = arena_new(SIZE_MAX);
    if (!rs->first || !rs->keys)
        return vc_err_oom(err);
    for (size_t u = 0; u < ss->n_units; u++) {
        rs->first[u] = rs->n;
        VC_TRY(recs_add_unit(ss, round, u, rs, err));
    }
    rs->first[ss->n_units] = rs->n;
    if (!rs->v && !(rs->v = calloc(1, sizeof *rs->v)))
        return vc_err_oom(err);
    return VC_OK;
}

void session_carry_free(struct session_carry *c)
{
    free(c->order);
    cJSON_Delete(c->report);
    memset(c, 0, sizeof *c);
}

enum vc_status session_carry_load(const struct session *ss, size_t round, bool with_order,
                                  struct session_carry *c, struct vc_err *err)
{
    memset(c, 0, sizeof *c);
    c->samples_per_shard = ss->spec->samples_per_shard;
    c->shard_bytes = ss->spec->shard_bytes;
    if (round == 0) {
        c->report = cJSON_CreateObject();
        return c->report ? VC_OK : vc_err_oom(err);
    }
    char *man = session_work_path(ss, "r%zu-plan.json", round - 1);
    char *order = session_work_path(ss, "r%zu-order.bin", round - 1);
    cJSON *doc = NULL;
    enum vc_status rc = man && order ? VC_OK : vc_err_oom(err);
    if (rc == VC_OK && !commit_valid(man, ss->spec->hash, &doc))
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s is missing or names another spec",
                        man);
    struct spill_order_reader rd;
    if (rc == VC_OK && with_order)
        rc = spill_order_read(order, &c->order, &c->n_order, err);
    else if (rc == VC_OK && (rc = spill_order_open(&rd, order, err)) == VC_OK) {
        c->n_order = rd.n;
        spill_order_close(&rd);
    }
    struct manifest_sizing sz = { 0 };
    if (rc == VC_OK) {
        manifest_round_sizing(doc, &sz);
        if (sz.n_order != c->n_order)
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s does not match %s", order, man);
    }
    if (rc == VC_OK) {
        c->ordered = true;
        c->samples_per_shard = sz.samples_per_shard;
        c->shard_bytes = sz.shard_bytes;
        c->report = manifest_take_report(doc);
        if (!c->report)
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: no report", man);
    }
    cJSON_Delete(doc);
    free(man);
    free(order);
    if (rc != VC_OK)
        session_carry_free(c);
    return rc;
}

enum vc_status session_carry_order(const struct session_carry *c, const struct session_recs *rs,
                                   size_t **order, size_t *n, struct vc_err *err)
{
    size_t cap = c->ordered ? c->n_order : rs->n;
    size_t *o = calloc(cap + 1, sizeof *o), k = 0;
    if (!o)
        return vc_err_oom(err);
    struct stage_plan p = { .recs = rs->v, .n_recs = rs->n };
    for (size_t i = 0; i < cap; i++) {
        size_t pos = c->ordered ? stage_plan_find(&p, c->order[i].unit, c->order[i].index) : i;
        if (pos != SIZE_MAX)
            o[k++] = pos;
    }
    *order = o;
    *n = k;
    return VC_OK;
}
