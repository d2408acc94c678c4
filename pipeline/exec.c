/* exec: the local executor.  Owns OUT/_work and every file it writes into
 * OUT; must never write outside OUT and never leave a partial file under
 * a final name (temp + fsync + rename everywhere).  Determinism rests on
 * three rules: a unit's outputs in a round depend only on the unit and the
 * previous round's committed files, plans run on one thread in (unit,
 * index) order, and a shard's bytes depend only on the plan.
 *
 * Files of round R in OUT/_work (R from 0):
 *   rR-map-UUUUUU.bin / .json   a MAP task's spill (spill.h) and manifest
 *                                (its commit: kept records, ledger lines);
 *   rR-STAGE-reduce-PPPPPP.json one reduce part of the round's global stage;
 *   rR-alive.bin                per record of the round, 1 when the
 *                                global stage kept it (u64 n_units, u64
 *                                first record of each unit and the end,
 *                                then one byte per record): what round
 *                                R+1's tasks read;
 *   rR-order.bin                the output order so far, as (u32 unit,
 *                                u64 index) pairs;
 *   rR-plan.json                the global stage's commit: the records it
 *                                dropped (with unit, index, key, reason),
 *                                shard sizing and its report;
 * and after the last round plan.json (order, keys, shard cuts). */
#include "exec.h"

#include "core/sample.h"
#include "core/vc_buf.h"
#include "core/vc_fs.h"
#include "core/vc_mem.h"
#include "manifests/commit.h"
#include "outdir.h"
#include "plan.h"
#include "progress.h"
#include "spill.h"
#include "stages/wds_write.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Field names longer than this do not fit a 100-byte member name next to
 * a key of PLAN_MAX_KEY bytes and its dot. */
#define EXEC_MAX_FIELD_NAME (WDS_MAX_MEMBER_NAME - PLAN_MAX_KEY - 1)
/* Samples a model round holds at once, each in its own arena: larger
 * batches stop paying off on one accelerator well before this. */
#define EXEC_MAX_BATCH 256

/* Stages [first, end) run their map hooks in this round; `global` is the
 * stage that ends it (its plan/reduce), or -1 for the last round. */
struct round {
    size_t first, end;
    long global;
    bool model;
    size_t batch; /* samples per MAP batch: 1, or the model stages' largest */
};

/* What one round's plan passes on to the next. */
struct carry {
    bool ordered; /* false: no global stage yet, the order is (unit, index) */
    struct spill_id *order;
    size_t n_order;
    uint64_t samples_per_shard, shard_bytes;
    cJSON *report;
};

/* The records of one round, loaded from its unit manifests. */
struct recs {
    cJSON **docs; /* unit manifests, by unit (owned) */
    struct stage_rec *v;
    uint64_t *off, *len; /* where each record sits in its unit's spill */
    size_t n, *first;    /* first[u]: the first record of unit u; first[n_units] = n */
};

struct run {
    struct spec *spec;
    const struct exec_opts *opts;
    struct exec_result *res;
    size_t n_units;
    struct progress prog;
    char phase[32];
    struct round *rounds;
    size_t n_rounds;
    struct stage_ctx rctx; /* the stages' context of the current round */
    struct carry carry;
    /* final PLAN products */
    struct recs last;
    cJSON *plan_doc;
    size_t *order, n_order;
    char **keys;
    size_t *starts, n_shards;
    cJSON *shard_docs_arr; /* per-shard manifests, for FINISH */
    /* the first fatal error of a parallel phase; the first unit that
     * could not be read */
    int failed;
    struct vc_err fatal, unit_err;
};

static void set_fatal(struct run *r, const struct vc_err *e)
{
#pragma omp critical(exec_fatal)
    {
        if (!r->failed) {
            r->failed = 1;
            r->fatal = *e;
        }
    }
}

static double seconds_since(uint64_t t0)
{
    return (double)(progress_now_ns() - t0) / 1e9;
}

static enum vc_status oom(struct vc_err *err)
{
    return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
}

static char *path_fmt(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *path_fmt(const char *dir, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* A unit's file as the ledger names it: relative to the spec's folder
 * when it lies below it, else as the spec spelled it, so that the same
 * spec names the same file alike from any current folder. */
static const char *unit_file(const struct spec *sp, const char *file)
{
    size_t n = strlen(sp->spec_dir);
    if (n && !strncmp(file, sp->spec_dir, n) && file[n] == '/')
        return file + n + 1 + (file[n + 1] == '/');
    return file;
}

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

/* ---- MAP ----------------------------------------------------------- */

struct map_task {
    struct run *r;
    const struct round *rd;
    uint32_t unit;
    size_t source;
    const struct source_unit *u;
    cJSON *kept, *ledger;
    struct spill_writer spill;
    uint64_t n_input, next_index;
    struct stage_task_ctx *tcs; /* by stage index; [rd->first, rd->end) used */
    /* round 0 reads the unit from its source ... */
    void *cursor;
    /* ... later rounds the records round-1 kept and its global stage let live */
    cJSON *prev;
    const cJSON *prev_rec;
    uint8_t *alive;
    size_t n_alive, pos;
    struct spill_reader in;
    /* per batch slot */
    struct sample *batch;
    cJSON **extras;
    bool *live;
    struct sample **v;
    size_t *slots;
    enum vc_status *st;
    struct stage_verdict *verdicts;
    struct vc_err *errs;
};

static void log_error(struct run *r, const char *file, const char *key, const char *stage,
                      const struct vc_err *e)
{
    if (r->opts->log)
        fprintf(r->opts->log, "vlmcurate: error: %s: key '%s': %s: %s: %s\n", file, key, stage,
                vc_reason_name(e->reason), e->msg);
}

static enum vc_status ledger_add(struct map_task *t, const struct sample *s, uint64_t index,
                                 enum ledger_state state, const char *stage, const struct vc_err *e,
                                 const struct stage_verdict *v, struct vc_err *err)
{
    const struct stage_source_info *si = &t->r->spec->source_info[t->source];
    struct ledger_entry le = {
        .source = si->name,
        .file = unit_file(t->r->spec, t->u->file),
        .index = index,
        .key = s && s->orig_key ? s->orig_key : "",
        .state = state,
        .stage = stage,
        .reason = e->reason,
        .message = e->msg[0] ? e->msg : NULL,
    };
    if (v && state == LEDGER_REJECTED) {
        le.reason = v->reason ? v->reason : VC_REASON_filtered;
        le.filter = v->filter;
        le.has_score = v->has_score;
        le.score = v->score;
        le.threshold = v->threshold;
    }
    if (state == LEDGER_ERROR)
        log_error(t->r, t->u->file, le.key, stage, e);
    t->n_input++;
    cJSON *o = ledger_entry_to_json(&le);
    if (!o || !cJSON_AddItemToArray(t->ledger, o)) {
        cJSON_Delete(o);
        return oom(err);
    }
    return VC_OK;
}

/* Appends the sample to the spill and its record to t->kept. */
static enum vc_status spill_sample(struct map_task *t, const struct sample *s, const cJSON *extra,
                                   struct vc_err *err)
{
    struct spill_rec sr;
    VC_TRY(spill_writer_add(&t->spill, s, &sr, err));
    cJSON *rec = cJSON_CreateObject();
    if (!rec || !cJSON_AddNumberToObject(rec, "i", (double)s->src_index) ||
        !cJSON_AddStringToObject(rec, "k", s->orig_key ? s->orig_key : "") ||
        !cJSON_AddNumberToObject(rec, "o", (double)sr.off) ||
        !cJSON_AddNumberToObject(rec, "n", (double)sr.len) ||
        !cJSON_AddNumberToObject(rec, "b", (double)sr.tar_bytes) ||
        (extra && !cJSON_AddItemToObject(rec, "x", cJSON_Duplicate(extra, 1))) ||
        !cJSON_AddItemToArray(t->kept, rec)) {
        cJSON_Delete(rec);
        return oom(err);
    }
    t->n_input++;
    return VC_OK;
}

/* Field names must fit a member name next to any output key. */
static enum vc_status check_names(const struct sample *s, struct vc_err *err)
{
    for (size_t i = 0; i < s->n_fields; i++)
        if (strlen(s->fields[i].name) > EXEC_MAX_FIELD_NAME)
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_field_too_long,
                              "field name '%.40s...' is longer than %d bytes", s->fields[i].name,
                              EXEC_MAX_FIELD_NAME);
    return VC_OK;
}

/* A stage's outcome for one sample: VC_OK keeps it; a reject or a sample
 * error becomes its ledger line and drops it from the batch. */
static enum vc_status settle(struct map_task *t, size_t k, size_t slot, enum vc_status rc,
                             struct vc_err *e, const struct stage_verdict *v, struct vc_err *err)
{
    const struct stage_ops *ops = t->r->spec->stages[k].ops;
    struct sample *s = &t->batch[slot];
    if (rc == VC_OK && ops->caps & STAGE_CAP_LAST)
        rc = check_names(s, e);
    if (rc == VC_OK)
        return VC_OK;
    if (rc != VC_REJECT && rc != VC_ESAMPLE) {
        *err = *e;
        if (err->status >= 0)
            err->status = VC_EFATAL;
        return vc_err_prefix(err, "%s: key '%s': stage '%s'", t->u->file,
                             s->orig_key ? s->orig_key : "", ops->name);
    }
    t->live[slot] = false;
    bool reject = rc == VC_REJECT;
    return ledger_add(t, s, s->src_index, reject ? LEDGER_REJECTED : LEDGER_ERROR, ops->name, e, v,
                      err);
}

static enum vc_status map_one(struct map_task *t, size_t k, size_t slot, struct vc_err *err)
{
    const struct spec *sp = t->r->spec;
    struct stage_task_ctx *tc = &t->tcs[k];
    struct vc_err e = { 0 };
    memset(&tc->verdict, 0, sizeof tc->verdict);
    tc->extra = t->extras[slot]; /* one extra object per sample, shared by the stages */
    enum vc_status rc = sp->stages[k].ops->map(sp->stages[k].state, &t->batch[slot], tc, &e);
    t->extras[slot] = tc->extra;
    tc->extra = NULL;
    return settle(t, k, slot, rc, &e, &tc->verdict, err);
}

static enum vc_status map_batch(struct map_task *t, size_t k, size_t n, struct vc_err *err)
{
    const struct spec_stage *ss = &t->r->spec->stages[k];
    size_t cap = ss->ops->batch_size ? ss->ops->batch_size(ss->state) : 1;
    if (cap == 0 || cap > t->rd->batch)
        cap = t->rd->batch;
    size_t i = 0;
    while (i < n) {
        size_t m = 0;
        for (; i < n && m < cap; i++)
            if (t->live[i]) {
                t->slots[m] = i;
                t->v[m++] = &t->batch[i];
            }
        if (!m)
            break;
        memset(t->st, 0, m * sizeof *t->st);
        memset(t->verdicts, 0, m * sizeof *t->verdicts);
        memset(t->errs, 0, m * sizeof *t->errs);
        enum vc_status rc =
            ss->ops->map_batch(ss->state, t->v, m, &t->tcs[k], t->st, t->verdicts, t->errs);
        if (rc < 0) {
            *err = t->errs[0];
            err->status = VC_EFATAL;
            return vc_err_prefix(err, "%s: stage '%s'", t->u->file, ss->ops->name);
        }
        for (size_t j = 0; j < m; j++)
            VC_TRY(settle(t, k, t->slots[j], t->st[j], &t->errs[j], &t->verdicts[j], err));
    }
    return VC_OK;
}

/* Runs the round's stages over batch[0..n), spills the survivors in
 * order and releases every sample. */
static enum vc_status run_batch(struct map_task *t, size_t n, struct vc_err *err)
{
    const struct spec *sp = t->r->spec;
    enum vc_status rc = VC_OK;
    for (size_t i = 0; i < n; i++) {
        t->live[i] = true;
        t->extras[i] = NULL;
    }
    for (size_t k = t->rd->first; rc == VC_OK && k < t->rd->end; k++) {
        const struct stage_ops *ops = sp->stages[k].ops;
        if (ops->map_batch)
            rc = map_batch(t, k, n, err);
        else if (ops->map)
            for (size_t i = 0; rc == VC_OK && i < n; i++)
                if (t->live[i])
                    rc = map_one(t, k, i, err);
    }
    for (size_t i = 0; i < n; i++) {
        struct sample *s = &t->batch[i];
        if (rc == VC_OK && t->live[i])
            rc = spill_sample(t, s, t->extras[i], err);
        uint64_t bytes = 0;
        for (size_t f = 0; f < s->n_fields; f++)
            bytes += s->fields[f].size;
        progress_add(&t->r->prog, 1, bytes);
        cJSON_Delete(t->extras[i]);
        sample_fini(s);
    }
    return rc;
}

/* The next sample of a later round: the next record round-1 kept that its
 * global stage let live. */
static enum vc_status next_survivor(struct map_task *t, struct sample *s, struct vc_err *err)
{
    for (; t->prev_rec; t->prev_rec = t->prev_rec->next, t->pos++) {
        if (t->pos >= t->n_alive)
            return vc_err_set(err, VC_EFATAL, VC_REASON_io_error,
                              "unit %u: round %u's alive flags do not match its manifest", t->unit,
                              (unsigned)t->r->rctx.round - 1);
        if (!t->alive[t->pos])
            continue;
        const cJSON *rec = t->prev_rec;
        t->prev_rec = rec->next;
        t->pos++;
        const char *k = str(rec, "k");
        char *key = arena_alloc(s->arena, strlen(k) + 2);
        s->orig_key = arena_strdup(s->arena, k);
        if (!key || !s->orig_key)
            return vc_err_set(err, VC_EFATAL, VC_REASON_mem_cap, "unit %u: key", t->unit);
        sample_key_sanitize(k, key, strlen(k) + 2);
        s->key = key;
        s->src_index = (uint64_t)num(rec, "i");
        return spill_reader_load(&t->in, (uint64_t)num(rec, "o"), (uint64_t)num(rec, "n"), s, err);
    }
    return VC_EOF;
}

static enum vc_status next_input(struct map_task *t, struct sample *s, struct vc_err *e)
{
    if (t->rd == &t->r->rounds[0])
        return t->r->spec->sources[t->source].ops->next(t->cursor, s, e);
    return next_survivor(t, s, e);
}

/* A unit that cannot be read (vanished, no permission, I/O error) may read
 * fine on the next try: it fails the run uncommitted rather than becoming
 * a ledger line for good.  A corrupt archive is the data's fault and is
 * recorded. */
static bool transient(enum vc_status rc, const struct vc_err *e)
{
    return rc == VC_ESHARD && e->reason == VC_REASON_io_error;
}

static enum vc_status map_loop(struct map_task *t, struct arena **arenas, struct vc_err *err)
{
    const struct spec *sp = t->r->spec;
    bool eof = false;
    while (!eof) {
        size_t n = 0;
        enum vc_status rc = VC_OK;
        while (n < t->rd->batch && !eof) {
            struct sample *s = &t->batch[n];
            struct vc_err e = { 0 };
            arena_reset(arenas[n]);
            sample_init(s, arenas[n]);
            s->source = sp->source_info[t->source].name;
            s->src_file = t->u->file;
            rc = next_input(t, s, &e);
            if (rc == VC_OK) {
                t->next_index = s->src_index + 1;
                n++;
                continue;
            }
            if (rc == VC_EOF) {
                eof = true;
                rc = VC_OK;
            } else if (transient(rc, &e)) {
                *err = e;
            } else if (rc == VC_ESHARD) {
                /* One line for the corrupt remainder of the unit. */
                s->orig_key = NULL;
                rc = ledger_add(t, s, t->next_index, LEDGER_ERROR, "read", &e, NULL, err);
                eof = true;
            } else if (rc == VC_ESAMPLE || rc == VC_REJECT) {
                t->next_index = s->src_index + 1;
                rc = ledger_add(t, s, s->src_index, LEDGER_ERROR, "read", &e, NULL, err);
            } else {
                *err = e;
                rc = VC_EFATAL;
            }
            sample_fini(s);
            if (rc < 0)
                break;
        }
        enum vc_status brc = run_batch(t, rc < 0 ? 0 : n, err);
        for (size_t i = 0; rc < 0 && i < n; i++)
            sample_fini(&t->batch[i]);
        if (rc < 0)
            return rc;
        VC_TRY(brc);
    }
    return VC_OK;
}

static enum vc_status open_input(struct map_task *t, struct vc_err *err)
{
    struct run *r = t->r;
    struct spec *sp = r->spec;
    if (t->rd == &r->rounds[0]) {
        struct vc_err e = { 0 };
        enum vc_status orc =
            sp->sources[t->source].ops->open(sp->sources[t->source].state, t->u, &t->cursor, &e);
        if (orc == VC_EFATAL) {
            *err = e;
            return orc;
        }
        if (orc < 0 && transient(orc, &e)) {
            *err = e;
            return VC_ESHARD;
        }
        if (orc < 0) /* a unit whose content is no archive is one error line */
            return ledger_add(t, NULL, 0, LEDGER_ERROR, "read", &e, NULL, err);
        return VC_OK;
    }
    unsigned prev = (unsigned)(t->rd - r->rounds) - 1;
    char *man = path_fmt(sp->work_dir, "r%u-map-%06u.json", prev, t->unit);
    char *bin = path_fmt(sp->work_dir, "r%u-map-%06u.bin", prev, t->unit);
    char *alive = path_fmt(sp->work_dir, "r%u-alive.bin", prev);
    enum vc_status rc = man && bin && alive ? VC_OK : oom(err);
    if (rc == VC_OK && !commit_valid(man, sp->hash, &t->prev))
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s vanished or changed under the run",
                        man);
    if (rc == VC_OK)
        rc = spill_alive_read(alive, t->unit, &t->alive, &t->n_alive, err);
    if (rc == VC_OK)
        rc = spill_reader_open(&t->in, bin, err);
    if (rc == VC_OK) {
        const cJSON *kept = cJSON_GetObjectItemCaseSensitive(t->prev, "kept");
        t->prev_rec = kept ? kept->child : NULL;
        if ((size_t)cJSON_GetArraySize(kept) != t->n_alive)
            rc =
                vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %zu alive flags for %d records",
                           alive, t->n_alive, cJSON_GetArraySize(kept));
    }
    free(man);
    free(bin);
    free(alive);
    return rc;
}

static void close_input(struct map_task *t)
{
    if (t->cursor)
        t->r->spec->sources[t->source].ops->close(t->cursor);
    spill_reader_close(&t->in);
    cJSON_Delete(t->prev);
    free(t->alive);
}

static enum vc_status map_task_alloc(struct map_task *t, size_t n_stages, struct vc_err *err)
{
    size_t b = t->rd->batch;
    t->tcs = calloc(n_stages + 1, sizeof *t->tcs);
    t->batch = calloc(b, sizeof *t->batch);
    t->extras = calloc(b, sizeof *t->extras);
    t->live = calloc(b, sizeof *t->live);
    t->v = calloc(b, sizeof *t->v);
    t->slots = calloc(b, sizeof *t->slots);
    t->st = calloc(b, sizeof *t->st);
    t->verdicts = calloc(b, sizeof *t->verdicts);
    t->errs = calloc(b, sizeof *t->errs);
    t->kept = cJSON_CreateArray();
    t->ledger = cJSON_CreateArray();
    if (!t->tcs || !t->batch || !t->extras || !t->live || !t->v || !t->slots || !t->st ||
        !t->verdicts || !t->errs || !t->kept || !t->ledger)
        return oom(err);
    return VC_OK;
}

static void map_task_free(struct map_task *t)
{
    free(t->tcs);
    free(t->batch);
    free(t->extras);
    free(t->live);
    free(t->v);
    free(t->slots);
    free(t->st);
    free(t->verdicts);
    free(t->errs);
    cJSON_Delete(t->kept);
    cJSON_Delete(t->ledger);
}

static enum vc_status map_unit(struct run *r, const struct round *rd, uint32_t unit,
                               struct arena **arenas, struct vc_err *err)
{
    struct spec *sp = r->spec;
    unsigned round = (unsigned)(rd - r->rounds);
    struct map_task t = { .r = r, .rd = rd, .unit = unit, .in = { .fd = -1 } };
    t.u = spec_unit(sp, unit, &t.source);
    char *bin = path_fmt(sp->work_dir, "r%u-map-%06u.bin", round, unit);
    char *man = path_fmt(sp->work_dir, "r%u-map-%06u.json", round, unit);
    enum vc_status rc = bin && man ? map_task_alloc(&t, sp->n_stages, err) : oom(err);
    if (rc == VC_OK)
        rc = spill_writer_open(&t.spill, bin, err);
    size_t begun = rd->first;
    for (; rc == VC_OK && begun < rd->end; begun++) {
        t.tcs[begun] =
            (struct stage_task_ctx){ .run = &r->rctx, .unit = unit, .unit_file = t.u->file };
        if (sp->stages[begun].ops->task_begin)
            rc = sp->stages[begun].ops->task_begin(sp->stages[begun].state, &t.tcs[begun], err);
    }
    if (rc == VC_OK)
        rc = open_input(&t, err);
    if (rc == VC_OK && (t.cursor || t.prev))
        rc = map_loop(&t, arenas, err);
    close_input(&t);
    for (size_t k = rd->first; k < begun; k++) {
        const struct stage_ops *ops = sp->stages[k].ops;
        if (ops->task_end) {
            enum vc_status erc = ops->task_end(sp->stages[k].state, &t.tcs[k], err);
            if (rc == VC_OK)
                rc = erc;
        }
    }
    if (t.spill.path) {
        enum vc_status src = spill_writer_close(&t.spill, rc == VC_OK, err);
        if (rc == VC_OK)
            rc = src;
    }
    if (rc == VC_OK) {
        cJSON *doc = cJSON_CreateObject();
        if (!doc || !cJSON_AddStringToObject(doc, "spec_hash", sp->hash) ||
            !cJSON_AddNumberToObject(doc, "round", round) ||
            !cJSON_AddNumberToObject(doc, "unit", unit) ||
            !cJSON_AddStringToObject(doc, "file", unit_file(sp, t.u->file)) ||
            !cJSON_AddNumberToObject(doc, "input", (double)t.n_input) ||
            !cJSON_AddItemToObject(doc, "kept", t.kept) ||
            (t.kept = NULL, !cJSON_AddItemToObject(doc, "ledger", t.ledger)))
            rc = oom(err);
        else
            t.ledger = NULL;
        if (rc == VC_OK)
            rc = commit_write_json(man, doc, false, err);
        cJSON_Delete(doc);
    }
    map_task_free(&t);
    free(bin);
    free(man);
    return rc;
}

static void unit_failed(struct run *r, size_t unit, const struct vc_err *e)
{
#pragma omp critical(exec_fatal)
    {
        if (!r->res->units_failed++)
            r->unit_err = *e;
        if (r->opts->log)
            fprintf(r->opts->log, "vlmcurate: error: input unit %zu (%s): %s (not committed)\n",
                    unit, spec_unit(r->spec, unit, &(size_t){ 0 })->file, e->msg);
    }
}

static bool map_committed(const struct run *r, unsigned round, size_t u)
{
    char *man = path_fmt(r->spec->work_dir, "r%u-map-%06zu.json", round, u);
    char *bin = path_fmt(r->spec->work_dir, "r%u-map-%06zu.bin", round, u);
    bool ok = man && bin && vc_fs_exists(bin) && commit_valid(man, r->spec->hash, NULL);
    free(man);
    free(bin);
    return ok;
}

static enum vc_status phase_map(struct run *r, const struct round *rd, struct vc_err *err)
{
    struct spec *sp = r->spec;
    unsigned round = (unsigned)(rd - r->rounds);
    size_t *pending = calloc(r->n_units ? r->n_units : 1, sizeof *pending);
    if (!pending)
        return oom(err);
    size_t n_pending = 0;
    for (size_t u = 0; u < r->n_units; u++)
        if (!map_committed(r, round, u))
            pending[n_pending++] = u;
    if (round == 0)
        r->res->units_skipped = r->n_units - n_pending;
    snprintf(r->phase, sizeof r->phase, round ? "map (round %u)" : "map", round);
    progress_begin(&r->prog, r->opts->log, r->phase, n_pending, sp->log_interval_s);
    r->failed = 0;
    /* A model stage takes every core for itself: its round runs one unit
     * at a time. */
#pragma omp parallel num_threads(rd->model ? 1 : sp->threads)
    {
        struct arena **arenas = calloc(rd->batch, sizeof *arenas);
        bool ok = arenas != NULL;
        for (size_t i = 0; ok && i < rd->batch; i++)
            ok = (arenas[i] = arena_new(sp->limits.max_sample_bytes)) != NULL;
        if (!ok) {
            struct vc_err e;
            oom(&e);
            set_fatal(r, &e);
        }
#pragma omp for schedule(dynamic, 1)
        for (size_t i = 0; i < n_pending; i++) {
            if (r->failed || !ok)
                continue;
            struct vc_err e = { 0 };
            enum vc_status urc = map_unit(r, rd, (uint32_t)pending[i], arenas, &e);
            if (urc == VC_ESHARD)
                unit_failed(r, pending[i], &e);
            else if (urc < 0)
                set_fatal(r, &e);
            progress_unit_done(&r->prog);
        }
        for (size_t i = 0; arenas && i < rd->batch; i++)
            arena_free(arenas[i]);
        free(arenas);
    }
    progress_end(&r->prog);
    free(pending);
    if (r->failed) {
        *err = r->fatal;
        return VC_EFATAL;
    }
    if (r->res->units_failed) {
        *err = r->unit_err;
        err->status = VC_EFATAL;
        return vc_err_prefix(err,
                             "%llu of %zu input units could not be read and were not committed "
                             "(rerun to retry them); the first",
                             (unsigned long long)r->res->units_failed, n_pending);
    }
    return VC_OK;
}

/* ---- global stages: reduce parts and plan -------------------------- */

static enum vc_status reduce_part(struct run *r, const struct spec_stage *ss, size_t part,
                                  struct vc_err *err)
{
    const struct spec *sp = r->spec;
    char *man = path_fmt(sp->work_dir, "r%u-%s-reduce-%06zu.json", (unsigned)r->rctx.round,
                         ss->ops->name, part);
    if (!man)
        return oom(err);
    enum vc_status rc = VC_OK;
    if (!commit_valid(man, sp->hash, NULL)) {
        rc = ss->ops->reduce(ss->state, &r->rctx, part, err);
        if (rc < 0)
            vc_err_prefix(err, "stage '%s': reduce part %zu", ss->ops->name, part);
        cJSON *doc = rc == VC_OK ? cJSON_CreateObject() : NULL;
        if (rc == VC_OK && (!doc || !cJSON_AddStringToObject(doc, "spec_hash", sp->hash) ||
                            !cJSON_AddStringToObject(doc, "stage", ss->ops->name) ||
                            !cJSON_AddNumberToObject(doc, "round", r->rctx.round) ||
                            !cJSON_AddNumberToObject(doc, "part", (double)part)))
            rc = oom(err);
        if (rc == VC_OK)
            rc = commit_write_json(man, doc, false, err);
        cJSON_Delete(doc);
    }
    free(man);
    return rc;
}

static enum vc_status phase_reduce_parts(struct run *r, const struct spec_stage *ss,
                                         struct vc_err *err)
{
    size_t n = ss->ops->reduce_parts ? ss->ops->reduce_parts(ss->state, &r->rctx) : 0;
    if (!n)
        return VC_OK;
    snprintf(r->phase, sizeof r->phase, "%s reduce", ss->ops->name);
    progress_begin(&r->prog, r->opts->log, r->phase, n, r->spec->log_interval_s);
    r->failed = 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(r->spec->threads)
    for (size_t p = 0; p < n; p++) {
        if (r->failed)
            continue;
        struct vc_err e = { 0 };
        if (reduce_part(r, ss, p, &e) < 0)
            set_fatal(r, &e);
        progress_unit_done(&r->prog);
    }
    progress_end(&r->prog);
    if (r->failed) {
        *err = r->fatal;
        return VC_EFATAL;
    }
    return VC_OK;
}

static void recs_free(struct recs *rs, size_t n_units)
{
    for (size_t u = 0; rs->docs && u < n_units; u++)
        cJSON_Delete(rs->docs[u]);
    free(rs->docs);
    free(rs->v);
    free(rs->off);
    free(rs->len);
    free(rs->first);
    memset(rs, 0, sizeof *rs);
}

/* The records a round's MAP tasks kept, from their manifests. */
static enum vc_status recs_load(struct run *r, unsigned round, struct recs *rs, struct vc_err *err)
{
    struct spec *sp = r->spec;
    rs->docs = calloc(r->n_units + 1, sizeof *rs->docs);
    rs->first = calloc(r->n_units + 1, sizeof *rs->first);
    if (!rs->docs || !rs->first)
        return oom(err);
    size_t n = 0;
    for (size_t u = 0; u < r->n_units; u++) {
        char *man = path_fmt(sp->work_dir, "r%u-map-%06zu.json", round, u);
        bool ok = man && commit_valid(man, sp->hash, &rs->docs[u]);
        free(man);
        if (!ok)
            return vc_err_set(err, VC_EFATAL, VC_REASON_io_error,
                              "unit %zu: its round %u manifest vanished or changed under the run",
                              u, round);
        rs->first[u] = n;
        n += (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(rs->docs[u], "kept"));
    }
    rs->first[r->n_units] = n;
    rs->n = n;
    rs->v = calloc(n + 1, sizeof *rs->v);
    rs->off = calloc(n + 1, sizeof *rs->off);
    rs->len = calloc(n + 1, sizeof *rs->len);
    if (!rs->v || !rs->off || !rs->len)
        return oom(err);
    size_t i = 0;
    for (size_t u = 0; u < r->n_units; u++) {
        size_t source;
        spec_unit(sp, u, &source);
        const cJSON *rec;
        cJSON_ArrayForEach(rec, cJSON_GetObjectItemCaseSensitive(rs->docs[u], "kept"))
        {
            rs->v[i] = (struct stage_rec){
                .unit = (uint32_t)u,
                .source = (uint32_t)source,
                .index = (uint64_t)num(rec, "i"),
                .bytes = (uint64_t)num(rec, "b"),
                .key = str(rec, "k"),
                .extra = cJSON_GetObjectItemCaseSensitive(rec, "x"),
            };
            rs->off[i] = (uint64_t)num(rec, "o");
            rs->len[i] = (uint64_t)num(rec, "n");
            i++;
        }
    }
    return VC_OK;
}

/* The starting order of a plan over `rs`: the carried order restricted to
 * the records still alive, or every record in (unit, index) order. */
static enum vc_status initial_order(const struct run *r, const struct recs *rs,
                                    struct stage_plan *plan, struct vc_err *err)
{
    size_t cap = r->carry.ordered ? r->carry.n_order : rs->n;
    plan->order = calloc(cap + 1, sizeof *plan->order);
    if (!plan->order)
        return oom(err);
    plan->n_order = 0;
    if (!r->carry.ordered) {
        for (size_t i = 0; i < rs->n; i++)
            plan->order[plan->n_order++] = i;
        return VC_OK;
    }
    for (size_t i = 0; i < r->carry.n_order; i++) {
        size_t pos = stage_plan_find(plan, r->carry.order[i].unit, r->carry.order[i].index);
        if (pos != SIZE_MAX)
            plan->order[plan->n_order++] = pos;
    }
    return VC_OK;
}

static const char *const rec_state_names[] = { "keep", "rejected", "duplicate" };

/* Every record is in the order or dropped with a reason. */
static enum vc_status plan_check(const struct stage_plan *plan, uint8_t *in_order,
                                 const char *stage, struct vc_err *err)
{
    for (size_t i = 0; i < plan->n_order; i++) {
        if (plan->order[i] >= plan->n_recs)
            return vc_err_set(err, VC_EFATAL, VC_REASON_none,
                              "stage '%s': the plan hook wrote a bad order", stage);
        in_order[plan->order[i]] = 1;
    }
    for (size_t i = 0; i < plan->n_recs; i++)
        if (in_order[i] != (plan->recs[i].state == STAGE_REC_KEEP) ||
            (!in_order[i] && !plan->recs[i].stage))
            return vc_err_set(err, VC_EFATAL, VC_REASON_none,
                              "stage '%s': record %zu is neither planned nor dropped", stage, i);
    return VC_OK;
}

static cJSON *dropped_json(const struct stage_plan *plan)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < plan->n_recs; i++) {
        const struct stage_rec *sr = &plan->recs[i];
        if (sr->state == STAGE_REC_KEEP)
            continue;
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(arr, o) || !cJSON_AddNumberToObject(o, "u", sr->unit) ||
            !cJSON_AddNumberToObject(o, "i", (double)sr->index) ||
            !cJSON_AddStringToObject(o, "k", sr->key) ||
            !cJSON_AddStringToObject(o, "state", rec_state_names[sr->state]) ||
            !cJSON_AddStringToObject(o, "stage", sr->stage) ||
            !cJSON_AddStringToObject(o, "reason", vc_reason_name(sr->reason)) ||
            (sr->state == STAGE_REC_DUPLICATE && sr->dup_of < plan->n_recs &&
             (!cJSON_AddNumberToObject(o, "du", plan->recs[sr->dup_of].unit) ||
              !cJSON_AddNumberToObject(o, "di", (double)plan->recs[sr->dup_of].index)))) {
            cJSON_Delete(arr);
            return NULL;
        }
    }
    return arr;
}

static enum vc_status carry_set(struct run *r, const struct recs *rs, const size_t *order, size_t n,
                                struct vc_err *err)
{
    struct spill_id *ids = malloc((n + 1) * sizeof *ids);
    if (!ids)
        return oom(err);
    for (size_t i = 0; i < n; i++)
        ids[i] = (struct spill_id){ rs->v[order[i]].unit, rs->v[order[i]].index };
    free(r->carry.order);
    r->carry.order = ids;
    r->carry.n_order = n;
    r->carry.ordered = true;
    return VC_OK;
}

/* Commits a global stage's decisions: alive flags and order (for the next
 * round), then rR-plan.json last. */
static enum vc_status round_plan_commit(struct run *r, const struct spec_stage *ss,
                                        const struct recs *rs, const struct stage_plan *plan,
                                        const uint8_t *in_order, struct vc_err *err)
{
    struct spec *sp = r->spec;
    unsigned round = r->rctx.round;
    char *alive = path_fmt(sp->work_dir, "r%u-alive.bin", round);
    char *order = path_fmt(sp->work_dir, "r%u-order.bin", round);
    char *man = path_fmt(sp->work_dir, "r%u-plan.json", round);
    enum vc_status rc = alive && order && man ? VC_OK : oom(err);
    if (rc == VC_OK)
        rc = spill_alive_write(alive, r->n_units, rs->first, in_order, err);
    if (rc == VC_OK)
        rc = spill_order_write(order, r->carry.order, r->carry.n_order, err);
    cJSON *doc = rc == VC_OK ? cJSON_CreateObject() : NULL;
    if (rc == VC_OK &&
        (!doc || !cJSON_AddStringToObject(doc, "spec_hash", sp->hash) ||
         !cJSON_AddStringToObject(doc, "stage", ss->ops->name) ||
         !cJSON_AddNumberToObject(doc, "round", round) ||
         !cJSON_AddNumberToObject(doc, "n_recs", (double)rs->n) ||
         !cJSON_AddNumberToObject(doc, "n_order", (double)plan->n_order) ||
         !cJSON_AddNumberToObject(doc, "samples_per_shard", (double)plan->samples_per_shard) ||
         !cJSON_AddNumberToObject(doc, "shard_bytes", (double)plan->shard_bytes) ||
         !cJSON_AddItemToObject(doc, "report", cJSON_Duplicate(plan->report, 1)) ||
         !cJSON_AddItemToObject(doc, "dropped", dropped_json(plan))))
        rc = oom(err);
    if (rc == VC_OK)
        rc = commit_write_json(man, doc, false, err);
    cJSON_Delete(doc);
    free(alive);
    free(order);
    free(man);
    return rc;
}

/* A committed round plan: the carry it left. */
static bool round_plan_load(struct run *r, unsigned round)
{
    char *man = path_fmt(r->spec->work_dir, "r%u-plan.json", round);
    char *order = path_fmt(r->spec->work_dir, "r%u-order.bin", round);
    cJSON *doc = NULL;
    struct vc_err e;
    struct spill_id *ids = NULL;
    size_t n = 0;
    bool ok = man && order && commit_valid(man, r->spec->hash, &doc) &&
              spill_order_read(order, &ids, &n, &e) == VC_OK && n == (size_t)num(doc, "n_order");
    if (ok) {
        free(r->carry.order);
        r->carry.order = ids;
        r->carry.n_order = n;
        r->carry.ordered = true;
        r->carry.samples_per_shard = (uint64_t)num(doc, "samples_per_shard");
        r->carry.shard_bytes = (uint64_t)num(doc, "shard_bytes");
        cJSON *rep = cJSON_DetachItemFromObjectCaseSensitive(doc, "report");
        if (rep) {
            cJSON_Delete(r->carry.report);
            r->carry.report = rep;
        }
    } else {
        free(ids);
    }
    cJSON_Delete(doc);
    free(man);
    free(order);
    return ok;
}

static enum vc_status round_plan(struct run *r, const struct spec_stage *ss, struct vc_err *err)
{
    struct recs rs = { 0 };
    enum vc_status rc = recs_load(r, r->rctx.round, &rs, err);
    struct stage_plan plan = {
        .recs = rs.v,
        .n_recs = rs.n,
        .sources = r->spec->source_info,
        .n_sources = r->spec->n_sources,
        .samples_per_shard = r->carry.samples_per_shard,
        .shard_bytes = r->carry.shard_bytes,
        .report = cJSON_Duplicate(r->carry.report, 1),
        .run = &r->rctx,
    };
    if (rc == VC_OK && !plan.report)
        rc = oom(err);
    if (rc == VC_OK)
        rc = initial_order(r, &rs, &plan, err);
    if (rc == VC_OK && ss->ops->plan)
        rc = ss->ops->plan(ss->state, &plan, err);
    uint8_t *in_order = rc == VC_OK ? calloc(rs.n + 1, 1) : NULL;
    if (rc == VC_OK && !in_order)
        rc = oom(err);
    if (rc == VC_OK)
        rc = plan_check(&plan, in_order, ss->ops->name, err);
    if (rc == VC_OK)
        rc = carry_set(r, &rs, plan.order, plan.n_order, err);
    if (rc == VC_OK) {
        r->carry.samples_per_shard = plan.samples_per_shard;
        r->carry.shard_bytes = plan.shard_bytes;
        rc = round_plan_commit(r, ss, &rs, &plan, in_order, err);
    }
    if (rc == VC_OK) {
        cJSON_Delete(r->carry.report);
        r->carry.report = plan.report;
        plan.report = NULL;
    }
    free(in_order);
    free(plan.order);
    cJSON_Delete(plan.report);
    recs_free(&rs, r->n_units);
    return rc;
}

/* ---- PLAN (after the last round) ----------------------------------- */

static enum vc_status plan_load(struct run *r, cJSON *doc, struct vc_err *err)
{
    const cJSON *order = cJSON_GetObjectItemCaseSensitive(doc, "order");
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(doc, "keys");
    const cJSON *starts = cJSON_GetObjectItemCaseSensitive(doc, "starts");
    size_t n = (size_t)cJSON_GetArraySize(order), ns = (size_t)cJSON_GetArraySize(starts);
    r->plan_doc = doc;
    if ((size_t)cJSON_GetArraySize(keys) != n || ns == 0 || num(doc, "n_recs") != (double)r->last.n)
        return vc_err_set(err, VC_EFATAL, VC_REASON_json_invalid, "plan.json is inconsistent");
    r->order = calloc(n + 1, sizeof *r->order);
    r->keys = calloc(n + 1, sizeof *r->keys);
    r->starts = calloc(ns, sizeof *r->starts);
    if (!r->order || !r->keys || !r->starts)
        return oom(err);
    size_t i = 0;
    for (const cJSON *o = order->child, *k = keys->child; o && k; o = o->next, k = k->next, i++) {
        r->order[i] = (size_t)o->valuedouble;
        r->keys[i] = vc_strdup(cJSON_IsString(k) ? k->valuestring : "_");
        if (r->order[i] >= r->last.n || !r->keys[i])
            return vc_err_set(err, VC_EFATAL, VC_REASON_json_invalid, "plan.json: bad order");
    }
    r->n_order = n;
    i = 0;
    for (const cJSON *s = starts->child; s; s = s->next)
        r->starts[i++] = (size_t)s->valuedouble;
    r->n_shards = ns - 1;
    return VC_OK;
}

static enum vc_status plan_compute(struct run *r, struct vc_err *err)
{
    struct spec *sp = r->spec;
    struct stage_plan plan = { .recs = r->last.v, .n_recs = r->last.n };
    VC_TRY(initial_order(r, &r->last, &plan, err));
    r->order = plan.order;
    r->n_order = plan.n_order;
    uint64_t *bytes = calloc(r->n_order + 1, sizeof *bytes);
    r->keys = calloc(r->n_order + 1, sizeof *r->keys);
    enum vc_status rc = bytes && r->keys ? VC_OK : oom(err);
    for (size_t i = 0; rc == VC_OK && i < r->n_order; i++) {
        bytes[i] = r->last.v[r->order[i]].bytes;
        if (!(r->keys[i] = vc_strdup(r->last.v[r->order[i]].key)))
            rc = oom(err);
    }
    if (rc == VC_OK)
        rc = plan_shards(bytes, r->n_order, r->carry.samples_per_shard, r->carry.shard_bytes,
                         &r->starts, &r->n_shards, err);
    free(bytes);
    if (rc == VC_OK)
        rc = plan_unique_keys(r->keys, r->n_order, err);
    cJSON *doc = rc == VC_OK ? cJSON_CreateObject() : NULL;
    if (rc == VC_OK) {
        cJSON *order = cJSON_AddArrayToObject(doc, "order");
        cJSON *keys = cJSON_AddArrayToObject(doc, "keys");
        cJSON *starts = cJSON_AddArrayToObject(doc, "starts");
        cJSON_AddStringToObject(doc, "spec_hash", sp->hash);
        cJSON_AddNumberToObject(doc, "n_recs", (double)r->last.n);
        for (size_t i = 0; i < r->n_order; i++) {
            cJSON_AddItemToArray(order, cJSON_CreateNumber((double)r->order[i]));
            cJSON_AddItemToArray(keys, cJSON_CreateString(r->keys[i]));
        }
        for (size_t i = 0; i <= r->n_shards; i++)
            cJSON_AddItemToArray(starts, cJSON_CreateNumber((double)r->starts[i]));
        cJSON_AddItemToObject(doc, "report", cJSON_Duplicate(r->carry.report, 1));
        char *path = path_fmt(sp->work_dir, "plan.json");
        rc = path ? commit_write_json(path, doc, false, err) : oom(err);
        free(path);
    }
    r->plan_doc = doc;
    return rc;
}

static enum vc_status phase_plan(struct run *r, struct vc_err *err)
{
    VC_TRY(recs_load(r, (unsigned)r->n_rounds - 1, &r->last, err));
    char *path = path_fmt(r->spec->work_dir, "plan.json");
    cJSON *doc = NULL;
    bool have = path && commit_valid(path, r->spec->hash, &doc);
    free(path);
    if (have)
        return plan_load(r, doc, err);
    return plan_compute(r, err);
}

/* ---- REDUCE -------------------------------------------------------- */

static enum vc_status reduce_shard(struct run *r, size_t k, struct arena *arena, cJSON **doc_out,
                                   struct vc_err *err)
{
    const struct spec *sp = r->spec;
    char name[512];
    snprintf(name, sizeof name, "%s-%06zu%s", sp->prefix, k,
             wds_compression_suffix(sp->compression));
    char *path = path_fmt(sp->out_dir, "%s", name);
    char *man = path_fmt(sp->out_dir, "%s-%06zu.json", sp->prefix, k);
    uint64_t *per_source = calloc(sp->n_sources + 1, sizeof *per_source);
    enum vc_status rc = VC_OK;
    if (!path || !man || !per_source)
        rc = oom(err);
    if (rc == VC_OK && commit_valid(man, sp->hash, doc_out)) {
#pragma omp atomic
        r->res->shards_skipped++;
        goto done;
    }
    struct wds_writer *w = NULL;
    if (rc == VC_OK)
        rc = wds_writer_open(path, sp->compression, &w, err);
    struct spill_reader in = { .fd = -1 };
    size_t in_unit = SIZE_MAX;
    unsigned last = (unsigned)r->n_rounds - 1;
    for (size_t i = r->starts[k]; rc == VC_OK && i < r->starts[k + 1]; i++) {
        size_t rec = r->order[i];
        const struct stage_rec *sr = &r->last.v[rec];
        if (sr->unit != in_unit) {
            spill_reader_close(&in);
            char *bin = path_fmt(sp->work_dir, "r%u-map-%06u.bin", last, sr->unit);
            rc = bin ? spill_reader_open(&in, bin, err) : oom(err);
            free(bin);
            in_unit = sr->unit;
            if (rc != VC_OK)
                break;
        }
        struct sample s;
        arena_reset(arena);
        sample_init(&s, arena);
        rc = spill_reader_load(&in, r->last.off[rec], r->last.len[rec], &s, err);
        s.key = r->keys[i];
        if (rc == VC_OK)
            rc = wds_writer_add(w, &s, NULL, err);
        if (rc < 0 && rc != VC_EFATAL) /* MAP checked everything the writer checks */
            err->status = rc = VC_EFATAL;
        per_source[sr->source]++;
        sample_fini(&s);
        progress_add(&r->prog, 1, sr->bytes);
    }
    spill_reader_close(&in);
    struct wds_shard_stats st = { 0 };
    if (w && rc == VC_OK)
        rc = wds_writer_commit(w, &st, err);
    else if (w)
        wds_writer_abort(w);
    if (rc == VC_OK) {
        cJSON *doc = cJSON_CreateObject(), *srcs = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "spec_hash", sp->hash);
        cJSON_AddStringToObject(doc, "shard", name);
        cJSON_AddNumberToObject(doc, "samples", (double)st.n_samples);
        cJSON_AddNumberToObject(doc, "bytes", (double)st.n_bytes);
        cJSON_AddNumberToObject(doc, "tar_bytes", (double)st.n_tar_bytes);
        cJSON_AddStringToObject(doc, "sha256", st.sha256);
        cJSON_AddStringToObject(doc, "first_key", r->keys[r->starts[k]]);
        cJSON_AddStringToObject(doc, "last_key", r->keys[r->starts[k + 1] - 1]);
        for (size_t i = 0; i < sp->n_sources; i++)
            if (per_source[i])
                cJSON_AddNumberToObject(srcs, sp->source_info[i].name, (double)per_source[i]);
        cJSON_AddItemToObject(doc, "sources", srcs);
        rc = commit_write_json(man, doc, true, err);
        *doc_out = doc;
    }
done:
    free(per_source);
    free(path);
    free(man);
    return rc;
}

static enum vc_status phase_reduce(struct run *r, struct vc_err *err)
{
    struct spec *sp = r->spec;
    cJSON **docs = calloc(r->n_shards + 1, sizeof *docs);
    if (!docs)
        return oom(err);
    progress_begin(&r->prog, r->opts->log, "write", r->n_shards, sp->log_interval_s);
    r->failed = 0;
#pragma omp parallel num_threads(sp->threads)
    {
        struct arena *arena = arena_new(sp->limits.max_sample_bytes);
#pragma omp for schedule(dynamic, 1)
        for (size_t k = 0; k < r->n_shards; k++) {
            if (r->failed)
                continue;
            struct vc_err e = { 0 };
            if (!arena)
                oom(&e);
            if (!arena || reduce_shard(r, k, arena, &docs[k], &e) < 0)
                set_fatal(r, &e);
            progress_unit_done(&r->prog);
        }
        arena_free(arena);
    }
    progress_end(&r->prog);
    r->shard_docs_arr = cJSON_CreateArray();
    for (size_t k = 0; k < r->n_shards; k++)
        if (docs[k])
            cJSON_AddItemToArray(r->shard_docs_arr, docs[k]);
    free(docs);
    if (r->failed) {
        *err = r->fatal;
        return VC_EFATAL;
    }
    return r->shard_docs_arr ? VC_OK : oom(err);
}

/* ---- FINISH -------------------------------------------------------- */

static enum vc_status write_wids(struct run *r, struct vc_err *err)
{
    size_t n = (size_t)cJSON_GetArraySize(r->shard_docs_arr);
    struct wds_index_entry *e = calloc(n + 1, sizeof *e);
    if (!e)
        return oom(err);
    size_t i = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, r->shard_docs_arr)
    {
        e[i].url = str(d, "shard");
        e[i].n_samples = (uint64_t)num(d, "samples");
        e[i].filesize = (uint64_t)num(d, "bytes");
        r->res->bytes_written += e[i].filesize;
        i++;
    }
    char *path = path_fmt(r->spec->out_dir, OUTDIR_WIDS_NAME);
    enum vc_status rc = path ? wds_write_wids_index(path, e, n, err) : oom(err);
    free(path);
    free(e);
    return rc;
}

struct placement {
    size_t first; /* position in the order of the first copy */
    uint64_t copies;
};

static size_t shard_of(const struct run *r, size_t pos)
{
    size_t lo = 0, hi = r->n_shards;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (r->starts[mid] <= pos)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* One input sample's fate, from wherever it was decided. */
struct fate {
    uint64_t index;
    enum { FATE_LINE, FATE_DROP, FATE_KEPT } kind;
    const cJSON *j; /* FATE_LINE: a ledger line; FATE_DROP: a plan's dropped entry */
    size_t rec;     /* FATE_KEPT: record of the last round */
};

static int fate_cmp(const void *a, const void *b)
{
    const struct fate *x = a, *y = b;
    return x->index < y->index ? -1 : x->index > y->index;
}

struct ledger_out {
    FILE *f;
    const char *tmp;
    struct vc_buf line;
    struct placement *pl;
    struct ledger_totals *per_source;
    const cJSON **drops; /* per global round, its next dropped entry */
    struct fate *fates;
    size_t n_fates, cap_fates;
};

static enum vc_status fate_add(struct ledger_out *lo, struct fate f, struct vc_err *err)
{
    if (lo->n_fates == lo->cap_fates) {
        size_t cap = lo->cap_fates ? 2 * lo->cap_fates : 256;
        struct fate *g = vc_realloc_array(lo->fates, cap, sizeof *g);
        if (!g)
            return oom(err);
        lo->fates = g;
        lo->cap_fates = cap;
    }
    lo->fates[lo->n_fates++] = f;
    return VC_OK;
}

static enum vc_status emit(struct run *r, struct ledger_out *lo, size_t source,
                           const struct ledger_entry *e, struct vc_err *err)
{
    lo->line.len = 0;
    VC_TRY(ledger_append_line(&lo->line, e, err));
    if (fwrite(lo->line.data, 1, lo->line.len, lo->f) != lo->line.len)
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", lo->tmp, strerror(errno));
    ledger_totals_add_entry(&r->res->totals, e);
    ledger_totals_add_entry(&lo->per_source[source], e);
    return VC_OK;
}

/* The output key the kept record (unit, index) was written under, or
 * NULL when it was not written. */
static const char *written_key(const struct run *r, const struct placement *pl, uint32_t unit,
                               uint64_t index)
{
    struct stage_plan p = { .recs = r->last.v, .n_recs = r->last.n };
    size_t rec = stage_plan_find(&p, unit, index);
    return rec != SIZE_MAX && pl[rec].copies ? r->keys[pl[rec].first] : NULL;
}

static enum vc_status emit_fate(struct run *r, struct ledger_out *lo, size_t u,
                                const struct fate *f, struct vc_err *err)
{
    size_t source;
    const struct source_unit *su = spec_unit(r->spec, u, &source);
    struct ledger_entry e = { .source = r->spec->source_info[source].name,
                              .file = unit_file(r->spec, su->file) };
    char shard[512]; /* e.shard points here until emit */
    if (f->kind == FATE_LINE) {
        VC_TRY(ledger_entry_from_json(f->j, &e, err));
    } else if (f->kind == FATE_DROP) {
        e.index = (uint64_t)num(f->j, "i");
        e.key = str(f->j, "k");
        e.state = strcmp(str(f->j, "state"), "duplicate") ? LEDGER_REJECTED : LEDGER_DUPLICATE;
        e.stage = str(f->j, "stage");
        int reason = vc_reason_from_name(str(f->j, "reason"));
        e.reason = reason < 0 ? VC_REASON_none : (enum vc_reason)reason;
        if (cJSON_GetObjectItemCaseSensitive(f->j, "du"))
            e.dup_of = written_key(r, lo->pl, (uint32_t)num(f->j, "du"), (uint64_t)num(f->j, "di"));
    } else {
        const struct stage_rec *sr = &r->last.v[f->rec];
        size_t pos = lo->pl[f->rec].first;
        snprintf(shard, sizeof shard, "%s-%06zu%s", r->spec->prefix, shard_of(r, pos),
                 wds_compression_suffix(r->spec->compression));
        e.index = sr->index;
        e.key = sr->key;
        e.state = LEDGER_WRITTEN;
        e.shard = shard;
        e.out_key = r->keys[pos];
        e.copies = lo->pl[f->rec].copies;
    }
    return emit(r, lo, source, &e, err);
}

/* Unit u's ledger lines: every round's rejects and errors, every global
 * stage's drops and the written records, in index order. */
static enum vc_status ledger_unit(struct run *r, struct ledger_out *lo, size_t u,
                                  struct vc_err *err)
{
    lo->n_fates = 0;
    cJSON **docs = calloc(r->n_rounds, sizeof *docs);
    if (!docs)
        return oom(err);
    enum vc_status rc = VC_OK;
    for (size_t k = 0; rc == VC_OK && k < r->n_rounds; k++) {
        const cJSON *doc = r->last.docs[u];
        if (k + 1 < r->n_rounds) {
            char *man = path_fmt(r->spec->work_dir, "r%zu-map-%06zu.json", k, u);
            if (!man || !commit_valid(man, r->spec->hash, &docs[k]))
                rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error,
                                "unit %zu: its round %zu manifest vanished", u, k);
            free(man);
            doc = docs[k];
        }
        const cJSON *j;
        cJSON_ArrayForEach(j, cJSON_GetObjectItemCaseSensitive(doc, "ledger"))
        {
            if (rc == VC_OK)
                rc = fate_add(lo, (struct fate){ (uint64_t)num(j, "index"), FATE_LINE, j, 0 }, err);
        }
        for (; rc == VC_OK && lo->drops[k] && num(lo->drops[k], "u") == (double)u;
             lo->drops[k] = lo->drops[k]->next)
            rc = fate_add(
                lo, (struct fate){ (uint64_t)num(lo->drops[k], "i"), FATE_DROP, lo->drops[k], 0 },
                err);
    }
    for (size_t i = r->last.first[u]; rc == VC_OK && i < r->last.first[u + 1]; i++)
        rc = fate_add(lo, (struct fate){ r->last.v[i].index, FATE_KEPT, NULL, i }, err);
    if (rc == VC_OK)
        qsort(lo->fates, lo->n_fates, sizeof *lo->fates, fate_cmp);
    for (size_t i = 0; rc == VC_OK && i < lo->n_fates; i++)
        rc = emit_fate(r, lo, u, &lo->fates[i], err);
    for (size_t k = 0; k < r->n_rounds; k++)
        cJSON_Delete(docs[k]);
    free(docs);
    return rc;
}

static enum vc_status write_ledger(struct run *r, struct ledger_totals *per_source,
                                   struct vc_err *err)
{
    const struct spec *sp = r->spec;
    char *path = path_fmt(sp->out_dir, OUTDIR_LEDGER_NAME);
    char *tmp = path_fmt(sp->out_dir, OUTDIR_LEDGER_NAME ".tmp");
    struct ledger_out lo = { .tmp = tmp, .per_source = per_source };
    vc_buf_init(&lo.line, 1u << 30);
    lo.pl = calloc(r->last.n + 1, sizeof *lo.pl);
    lo.drops = calloc(r->n_rounds, sizeof *lo.drops);
    cJSON **plans = calloc(r->n_rounds, sizeof *plans);
    enum vc_status rc = path && tmp && lo.pl && lo.drops && plans ? VC_OK : oom(err);
    for (size_t k = 0; rc == VC_OK && k + 1 < r->n_rounds; k++) {
        char *man = path_fmt(sp->work_dir, "r%zu-plan.json", k);
        if (!man || !commit_valid(man, sp->hash, &plans[k]))
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "round %zu plan vanished", k);
        free(man);
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(plans[k], "dropped");
        lo.drops[k] = d ? d->child : NULL;
    }
    if (rc == VC_OK && !(lo.f = fopen(tmp, "wb")))
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", tmp, strerror(errno));
    for (size_t i = r->n_order; rc == VC_OK && i-- > 0;) {
        lo.pl[r->order[i]].first = i;
        lo.pl[r->order[i]].copies++;
    }
    memset(&r->res->totals, 0, sizeof r->res->totals);
    for (size_t u = 0; rc == VC_OK && u < r->n_units; u++)
        rc = ledger_unit(r, &lo, u, err);
    if (lo.f) {
        if (rc == VC_OK && (fflush(lo.f) != 0 || fsync(fileno(lo.f)) != 0))
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", tmp, strerror(errno));
        if (fclose(lo.f) != 0 && rc == VC_OK)
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", tmp, strerror(errno));
        if (rc == VC_OK)
            rc = vc_fs_commit_rename(tmp, path, err);
        else
            unlink(tmp); /* a rerun rewrites the whole ledger */
    }
    for (size_t k = 0; plans && k < r->n_rounds; k++)
        cJSON_Delete(plans[k]);
    free(plans);
    free(lo.fates);
    free(lo.drops);
    vc_buf_free(&lo.line);
    free(lo.pl);
    free(path);
    free(tmp);
    return rc;
}

static enum vc_status write_run_json(struct run *r, const struct ledger_totals *per_source,
                                     struct vc_err *err)
{
    const struct spec *sp = r->spec;
    const struct exec_result *res = r->res;
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "tool", "vlmcurate");
    cJSON_AddStringToObject(doc, "version", VC_VERSION);
    cJSON_AddStringToObject(doc, "spec_hash", sp->hash);
    cJSON_AddItemToObject(doc, "spec", cJSON_Duplicate(sp->json, 1));
    cJSON *libs = cJSON_AddObjectToObject(doc, "libraries");
    cJSON_AddStringToObject(libs, "cjson", cJSON_Version());
    cJSON_AddNumberToObject(doc, "threads", sp->threads);
    cJSON_AddItemToObject(doc, "totals", ledger_totals_to_json(&res->totals));
    cJSON *srcs = cJSON_AddObjectToObject(doc, "sources");
    for (size_t i = 0; i < sp->n_sources; i++) {
        cJSON *one = ledger_totals_to_json(&per_source[i]);
        if (one)
            ledger_totals_breakdown(&per_source[i], one);
        cJSON_AddItemToObject(srcs, sp->source_info[i].name, one);
    }
    const cJSON *report = cJSON_GetObjectItemCaseSensitive(r->plan_doc, "report");
    const cJSON *it;
    cJSON_ArrayForEach(it, report)
    {
        cJSON_AddItemToObject(doc, it->string, cJSON_Duplicate(it, 1));
    }
    cJSON *outs = cJSON_AddObjectToObject(doc, "outputs");
    cJSON_AddStringToObject(outs, "dir", sp->out_dir);
    cJSON_AddNumberToObject(outs, "shards", (double)r->n_shards);
    cJSON_AddNumberToObject(outs, "samples", (double)r->n_order);
    cJSON_AddNumberToObject(outs, "bytes", (double)res->bytes_written);
    cJSON *shards = cJSON_AddArrayToObject(outs, "shard_files");
    cJSON_ArrayForEach(it, r->shard_docs_arr)
    {
        cJSON_AddItemToArray(shards, cJSON_CreateString(str(it, "shard")));
    }
    cJSON_AddStringToObject(outs, "ledger", OUTDIR_LEDGER_NAME);
    cJSON_AddStringToObject(outs, "wids_index", OUTDIR_WIDS_NAME);
    cJSON *resumed = cJSON_AddObjectToObject(doc, "resumed");
    cJSON_AddNumberToObject(resumed, "units_skipped", (double)res->units_skipped);
    cJSON_AddNumberToObject(resumed, "shards_skipped", (double)res->shards_skipped);
    cJSON *t = cJSON_AddObjectToObject(doc, "timings");
    cJSON_AddNumberToObject(t, "map_s", res->seconds_map);
    cJSON_AddNumberToObject(t, "plan_s", res->seconds_plan);
    cJSON_AddNumberToObject(t, "reduce_s", res->seconds_reduce);
    cJSON_AddNumberToObject(t, "finish_s", res->seconds_finish);
    char *path = path_fmt(sp->out_dir, OUTDIR_RUN_NAME);
    enum vc_status rc = path && doc ? commit_write_json(path, doc, true, err) : oom(err);
    free(path);
    cJSON_Delete(doc);
    return rc;
}

/* A run whose input was mostly not there did not succeed, whatever it
 * wrote: a source that yielded no sample at all (a wrong folder, an empty
 * shard list) and an error rate above the spec's limit fail it, after the
 * ledger and the report are written so the user can see why. */
static enum vc_status check_totals(const struct run *r, const struct ledger_totals *per_source,
                                   struct vc_err *err)
{
    const struct spec *sp = r->spec;
    for (size_t i = 0; i < sp->n_sources; i++)
        if (per_source[i].input == 0)
            return vc_err_set(err, VC_EFATAL, VC_REASON_bad_spec,
                              "source '%s' yielded no sample from its %zu input unit%s (first: "
                              "%s): check its paths",
                              sp->source_info[i].name, sp->sources[i].n_units,
                              sp->sources[i].n_units == 1 ? "" : "s",
                              sp->sources[i].n_units ? sp->sources[i].units[0].file : "none");
    const struct ledger_totals *t = &r->res->totals;
    double rate = t->input ? (double)t->error / (double)t->input : 0;
    if (rate > sp->max_error_rate)
        return vc_err_set(err, VC_EFATAL, VC_REASON_error_rate,
                          "%llu of %llu input samples (%.2f%%) are errors, more than "
                          "max_error_rate %g allows: see %s/%s",
                          (unsigned long long)t->error, (unsigned long long)t->input, 100 * rate,
                          sp->max_error_rate, sp->out_dir, OUTDIR_LEDGER_NAME);
    return VC_OK;
}

static enum vc_status phase_finish(struct run *r, struct ledger_totals *per_source,
                                   struct vc_err *err)
{
    VC_TRY(write_wids(r, err));
    VC_TRY(write_ledger(r, per_source, err));
    if (!ledger_totals_balanced(&r->res->totals))
        return vc_err_set(err, VC_EFATAL, VC_REASON_none, "ledger totals do not add up (a bug)");
    struct stage_finish_ctx fc = { .run = &r->rctx,
                                   .n_units = r->n_units,
                                   .n_shards = r->n_shards };
    for (size_t k = 0; k < r->spec->n_stages; k++)
        if (r->spec->stages[k].ops->finish)
            VC_TRY(r->spec->stages[k].ops->finish(r->spec->stages[k].state, &fc, err));
    return check_totals(r, per_source, err);
}

/* ---- the run ------------------------------------------------------- */

/* Splits the stage list after each global stage.  The batch of a round is
 * its model stages' largest, capped so that a batch's arenas stay a few
 * samples' worth. */
static enum vc_status rounds_build(struct run *r, struct vc_err *err)
{
    const struct spec *sp = r->spec;
    r->rounds = calloc(sp->n_stages + 1, sizeof *r->rounds);
    if (!r->rounds)
        return oom(err);
    struct round *rd = &r->rounds[0];
    *rd = (struct round){ .first = 0, .global = -1, .batch = 1 };
    for (size_t k = 0; k < sp->n_stages; k++) {
        const struct spec_stage *ss = &sp->stages[k];
        if (ss->ops->caps & STAGE_CAP_MODEL) {
            size_t b = ss->ops->batch_size ? ss->ops->batch_size(ss->state) : 1;
            rd->model = true;
            if (b > rd->batch)
                rd->batch = b < EXEC_MAX_BATCH ? b : EXEC_MAX_BATCH;
        }
        if (stage_is_global(ss->ops)) {
            rd->end = k + 1;
            rd->global = (long)k;
            rd++;
            *rd = (struct round){ .first = k + 1, .global = -1, .batch = 1 };
        }
    }
    rd->end = sp->n_stages;
    r->n_rounds = (size_t)(rd - r->rounds) + 1;
    return VC_OK;
}

static enum vc_status run_rounds(struct run *r, struct vc_err *err)
{
    struct spec *sp = r->spec;
    for (size_t k = 0; k < r->n_rounds; k++) {
        const struct round *rd = &r->rounds[k];
        r->rctx.round = (uint32_t)k;
        if (rd->global < 0) {
            char *path = path_fmt(sp->work_dir, "plan.json");
            bool done = path && commit_valid(path, sp->hash, NULL);
            free(path);
            return done ? VC_OK : phase_map(r, rd, err);
        }
        if (round_plan_load(r, (unsigned)k))
            continue;
        const struct spec_stage *ss = &sp->stages[rd->global];
        VC_TRY(phase_map(r, rd, err));
        VC_TRY(phase_reduce_parts(r, ss, err));
        VC_TRY(round_plan(r, ss, err));
    }
    return VC_OK;
}

static void run_free(struct run *r)
{
    recs_free(&r->last, r->n_units);
    free(r->order);
    for (size_t i = 0; r->keys && i < r->n_order; i++)
        free(r->keys[i]);
    free(r->keys);
    free(r->starts);
    cJSON_Delete(r->plan_doc);
    cJSON_Delete(r->shard_docs_arr);
    free(r->carry.order);
    cJSON_Delete(r->carry.report);
    free(r->rounds);
}

enum vc_status exec_run(struct spec *spec, const struct exec_opts *opts, struct exec_result *res,
                        struct vc_err *err)
{
    struct run r = { .spec = spec, .opts = opts, .res = res };
    memset(res, 0, sizeof *res);
    if (spec->threads <= 0)
        spec->threads = omp_get_max_threads();
    r.n_units = spec_n_units(spec);
    r.rctx = spec->ctx;
    r.rctx.n_units = r.n_units;
    r.carry = (struct carry){ .samples_per_shard = spec->samples_per_shard,
                              .shard_bytes = spec->shard_bytes,
                              .report = cJSON_CreateObject() };
    struct ledger_totals *per_source = calloc(spec->n_sources + 1, sizeof *per_source);
    struct outdir od = { .lock_fd = -1 };
    enum vc_status rc = per_source && r.carry.report ? rounds_build(&r, err) : oom(err);
    if (rc == VC_OK)
        rc = outdir_claim(spec, opts->force, &od, err);
    uint64_t t0 = progress_now_ns();
    if (rc == VC_OK)
        rc = run_rounds(&r, err);
    res->seconds_map = seconds_since(t0);
    t0 = progress_now_ns();
    if (rc == VC_OK)
        rc = phase_plan(&r, err);
    res->seconds_plan = seconds_since(t0);
    t0 = progress_now_ns();
    if (rc == VC_OK)
        rc = phase_reduce(&r, err);
    res->seconds_reduce = seconds_since(t0);
    t0 = progress_now_ns();
    if (rc == VC_OK)
        rc = phase_finish(&r, per_source, err);
    res->seconds_finish = seconds_since(t0);
    res->n_shards = r.n_shards;
    if (rc == VC_OK)
        rc = write_run_json(&r, per_source, err);
    free(per_source);
    run_free(&r);
    outdir_release(&od);
    return rc;
}
