/* phase_map: the MAP task of one input unit in one round.  Reads the unit
 * (round 0: its source; later rounds: the records the previous round kept
 * that its global stage let live, from that round's spill), runs the
 * round's stages over it in batches (one sample, or a model stage's batch),
 * spills the survivors and commits the unit manifest last.  Never touches
 * another unit's files, so tasks run in any order, on any thread or
 * machine; a task killed midway leaves only temporary files, which the
 * next attempt replaces. */
#include "phase_map.h"

#include "core/sample.h"
#include "core/vc_fs.h"
#include "core/vc_mem.h"
#include "manifests/commit.h"
#include "manifests/manifest.h"
#include "plan.h"
#include "spill.h"
#include "stages/wds_write.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Field names longer than this do not fit a 100-byte member name next to
 * a key of PLAN_MAX_KEY bytes and its dot. */
#define PHASE_MAX_FIELD_NAME (WDS_MAX_MEMBER_NAME - PLAN_MAX_KEY - 1)

struct map_task {
    struct session *ss;
    const struct session_round *rd;
    size_t round;
    uint32_t unit;
    size_t source;
    const struct source_unit *u;
    cJSON *doc; /* the manifest being built: counts and links */
    struct spill_writer spill;
    /* The records kept and the ledger lines, one JSON line each, streamed
     * to the unit's .kept and .ledger files (manifest.h). */
    struct spill_writer kept, lines;
    uint64_t n_kept, n_lines;
    /* The last round after a global stage links the bytes it passes on
     * unchanged to the previous round's spill instead of copying them. */
    bool link;
    uint64_t n_input, next_index;
    struct stage_task_ctx *tcs; /* by stage index; [rd->first, rd->end) used */
    /* The previous round's global stage when it edits survivors (its
     * tcs entry is then used too), else -1. */
    long edit;
    /* round 0 reads the unit from its source ... */
    void *cursor;
    /* ... later rounds the records round-1 kept and its global stage let
     * live: its manifest, its .kept file read as a stream and its flags */
    cJSON *prev;
    struct manifest_reader prev_kept;
    uint8_t *alive;
    size_t n_alive, pos;
    struct spill_reader in;
    /* per batch slot */
    struct sample *batch;
    struct spill_base *bases; /* where each was read from (later rounds) */
    cJSON **extras;
    bool *live;
    struct sample **v;
    size_t *slots;
    enum vc_status *st;
    struct stage_verdict *verdicts;
    struct vc_err *errs;
};

static void log_error(const struct session *ss, const char *file, const char *key,
                      const char *stage, const struct vc_err *e)
{
    if (ss->log)
        fprintf(ss->log, "vlmcurate: error: %s: key '%s': %s: %s: %s\n", file, key, stage,
                vc_reason_name(e->reason), e->msg);
}

static enum vc_status ledger_add(struct map_task *t, const struct sample *s, uint64_t index,
                                 enum ledger_state state, const char *stage, const struct vc_err *e,
                                 const struct stage_verdict *v, struct vc_err *err)
{
    const struct stage_source_info *si = &t->ss->spec->source_info[t->source];
    char msg[sizeof e->msg];
    session_unit_message(t->ss, e->msg, msg, sizeof msg);
    struct ledger_entry le = {
        .source = si->name,
        .file = session_unit_file(t->ss, t->u->file),
        .index = index,
        .key = s && s->orig_key ? s->orig_key : "",
        .state = state,
        .stage = stage,
        .reason = e->reason,
        .message = msg[0] ? msg : NULL,
    };
    if (v && state == LEDGER_REJECTED) {
        le.reason = v->reason ? v->reason : VC_REASON_filtered;
        le.filter = v->filter;
        le.has_score = v->has_score;
        le.score = v->score;
        le.threshold = v->threshold;
    }
    if (state == LEDGER_ERROR)
        log_error(t->ss, t->u->file, le.key, stage, e);
    t->n_input++;
    t->n_lines++;
    return manifest_line_write(t->lines.f, t->lines.tmp, &le, err);
}

/* Appends the sample to the spill and its record to the .kept file. */
static enum vc_status spill_sample(struct map_task *t, const struct sample *s,
                                   const struct spill_base *base, const cJSON *extra,
                                   struct vc_err *err)
{
    struct spill_rec sr;
    VC_TRY(spill_writer_add(&t->spill, s, t->link ? base : NULL, &sr, err));
    struct manifest_kept k = { .index = s->src_index,
                               .key = s->orig_key ? s->orig_key : "",
                               .off = sr.off,
                               .len = sr.len,
                               .tar_bytes = sr.tar_bytes,
                               .extra = extra };
    t->n_input++;
    t->n_kept++;
    return manifest_kept_write(t->kept.f, t->kept.tmp, &k, err);
}

/* Field names must fit a member name next to any output key. */
static enum vc_status check_names(const struct sample *s, struct vc_err *err)
{
    for (size_t i = 0; i < s->n_fields; i++)
        if (strlen(s->fields[i].name) > PHASE_MAX_FIELD_NAME)
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_field_too_long,
                              "field name '%.40s...' is longer than %d bytes", s->fields[i].name,
                              PHASE_MAX_FIELD_NAME);
    return VC_OK;
}

/* A stage's outcome for one sample: VC_OK keeps it; a reject or a sample
 * error becomes its ledger line and drops it from the batch. */
static enum vc_status settle(struct map_task *t, size_t k, size_t slot, enum vc_status rc,
                             struct vc_err *e, const struct stage_verdict *v, struct vc_err *err)
{
    const struct stage_ops *ops = t->ss->spec->stages[k].ops;
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
    const struct spec *sp = t->ss->spec;
    struct stage_task_ctx *tc = &t->tcs[k];
    struct vc_err e = { 0 };
    memset(&tc->verdict, 0, sizeof tc->verdict);
    tc->extra = t->extras[slot]; /* one extra object per sample, shared by the stages */
    enum vc_status rc = sp->stages[k].ops->map(sp->stages[k].state, &t->batch[slot], tc, &e);
    t->extras[slot] = tc->extra;
    tc->extra = NULL;
    return settle(t, k, slot, rc, &e, &tc->verdict, err);
}

static void model_progress(struct stage_task_ctx *tc, uint64_t images, uint64_t tokens)
{
    progress_add_model(tc->progress_arg, images, tokens);
}

/* What a model round's unit will show the progress line: the records the
 * previous round let live, or the pages a source knows at open. */
static uint64_t unit_expected(const struct map_task *t)
{
    uint64_t n = 0;
    for (size_t i = 0; t->alive && i < t->n_alive; i++)
        n += t->alive[i] != 0;
    const struct source_ops *src = t->ss->spec->sources[t->source].ops;
    if (t->round == 0 && t->cursor && src->n_samples)
        n = src->n_samples(t->cursor);
    return n;
}

static enum vc_status map_batch(struct map_task *t, size_t k, size_t n, struct vc_err *err)
{
    const struct spec_stage *ss = &t->ss->spec->stages[k];
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
    const struct spec *sp = t->ss->spec;
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
            rc = spill_sample(t, s, &t->bases[i], t->extras[i], err);
        uint64_t bytes = 0;
        for (size_t f = 0; f < s->n_fields; f++)
            bytes += s->fields[f].size;
        progress_add(&t->ss->prog, 1, bytes);
        cJSON_Delete(t->extras[i]);
        sample_fini(s);
    }
    return rc;
}

/* The next sample of a later round: the next record round-1 kept that its
 * global stage let live. */
static enum vc_status next_survivor(struct map_task *t, struct sample *s, struct spill_base *at,
                                    struct vc_err *err)
{
    for (;; t->pos++) {
        cJSON *item;
        int got = manifest_reader_next(&t->prev_kept, &item, err);
        if (got < 0)
            return (enum vc_status)got;
        if (got == 0)
            return VC_EOF;
        if (t->pos >= t->n_alive) {
            cJSON_Delete(item);
            return vc_err_set(err, VC_EFATAL, VC_REASON_io_error,
                              "unit %u: round %u's alive flags do not match its records", t->unit,
                              (unsigned)t->round - 1);
        }
        if (!t->alive[t->pos]) {
            cJSON_Delete(item);
            continue;
        }
        t->pos++;
        struct manifest_kept k;
        manifest_kept_get(item, &k);
        /* Percent-encoding makes a key up to 3 times longer. */
        char *key = arena_alloc(s->arena, 3 * strlen(k.key) + 2);
        s->orig_key = arena_strdup(s->arena, k.key);
        if (key && s->orig_key)
            sample_key_sanitize(k.key, key, 3 * strlen(k.key) + 2);
        cJSON_Delete(item);
        if (!key || !s->orig_key)
            return vc_err_set(err, VC_EFATAL, VC_REASON_mem_cap, "unit %u: key", t->unit);
        s->key = key;
        s->src_index = k.index;
        return spill_reader_load(&t->in, k.off, k.len, s, at, err);
    }
}

/* The previous round's global stage's edit of a survivor.  *kept false:
 * it rejected or errored the sample, whose ledger line is written. */
static enum vc_status edit_sample(struct map_task *t, struct sample *s, bool *kept,
                                  struct vc_err *e)
{
    const struct spec_stage *g = &t->ss->spec->stages[t->edit];
    struct stage_task_ctx *tc = &t->tcs[t->edit];
    struct vc_err why = { 0 };
    memset(&tc->verdict, 0, sizeof tc->verdict);
    enum vc_status rc = g->ops->edit(g->state, s, tc, &why);
    *kept = rc == VC_OK;
    if (rc == VC_OK)
        return VC_OK;
    if (rc != VC_REJECT && rc != VC_ESAMPLE) {
        *e = why;
        e->status = VC_EFATAL;
        return vc_err_prefix(e, "%s: key '%s': stage '%s'", t->u->file,
                             s->orig_key ? s->orig_key : "", g->ops->name);
    }
    bool reject = rc == VC_REJECT;
    return ledger_add(t, s, s->src_index, reject ? LEDGER_REJECTED : LEDGER_ERROR, g->ops->name,
                      &why, &tc->verdict, e);
}

static enum vc_status next_input(struct map_task *t, struct sample *s, struct spill_base *at,
                                 struct vc_err *e)
{
    *at = (struct spill_base){ 0 };
    if (t->round == 0)
        return t->ss->spec->sources[t->source].ops->next(t->cursor, s, e);
    return next_survivor(t, s, at, e);
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
    const struct spec *sp = t->ss->spec;
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
            rc = next_input(t, s, &t->bases[n], &e);
            bool kept = true;
            if (rc == VC_OK && t->edit >= 0)
                rc = edit_sample(t, s, &kept, &e);
            if (rc == VC_OK && kept) {
                t->next_index = s->src_index + 1;
                n++;
                continue;
            }
            if (rc == VC_OK) {
                t->next_index = s->src_index + 1;
            } else if (rc == VC_EOF) {
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
    const struct session *ss = t->ss;
    const struct spec *sp = ss->spec;
    if (t->round == 0) {
        struct vc_err e = { 0 };
        enum vc_status orc =
            sp->sources[t->source].ops->open(sp->sources[t->source].state, t->u, &t->cursor, &e);
        if (orc == VC_EFATAL || (orc < 0 && transient(orc, &e))) {
            *err = e;
            return orc == VC_EFATAL ? orc : VC_ESHARD;
        }
        if (orc < 0) /* a unit whose content is no archive is one error line */
            return ledger_add(t, NULL, t->u->first_record, LEDGER_ERROR, "read", &e, NULL, err);
        return VC_OK;
    }
    size_t prev = t->round - 1;
    char *man = session_work_path(ss, "r%zu-map-%06u.json", prev, t->unit);
    char *kept = session_work_path(ss, "r%zu-map-%06u.kept", prev, t->unit);
    char *bin = session_work_path(ss, "r%zu-map-%06u.bin", prev, t->unit);
    char *alive = session_work_path(ss, "r%zu-alive.bin", prev);
    enum vc_status rc = man && kept && bin && alive ? VC_OK : vc_err_oom(err);
    if (rc == VC_OK && !commit_valid(man, sp->hash, &t->prev))
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s is missing or names another spec",
                        man);
    if (rc == VC_OK)
        rc = spill_index_read(alive, t->unit, &t->alive, &t->n_alive, err);
    if (rc == VC_OK)
        rc = spill_reader_open(&t->in, bin, NULL, t->u->file, err);
    if (rc == VC_OK)
        rc = manifest_reader_open(&t->prev_kept, kept, "kept record", err);
    struct manifest_unit_counts c = { 0 };
    if (rc == VC_OK)
        manifest_unit_get_counts(t->prev, &c);
    if (rc == VC_OK && c.n_kept != t->n_alive)
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %zu alive flags for %llu records",
                        alive, t->n_alive, (unsigned long long)c.n_kept);
    free(man);
    free(kept);
    free(bin);
    free(alive);
    return rc;
}

static void close_input(struct map_task *t)
{
    if (t->cursor)
        t->ss->spec->sources[t->source].ops->close(t->cursor);
    spill_reader_close(&t->in);
    manifest_reader_close(&t->prev_kept);
    cJSON_Delete(t->prev);
    free(t->alive);
}

static enum vc_status map_task_alloc(struct map_task *t, size_t n_stages, struct vc_err *err)
{
    size_t b = t->rd->batch;
    t->tcs = calloc(n_stages + 1, sizeof *t->tcs);
    t->batch = calloc(b, sizeof *t->batch);
    t->bases = calloc(b, sizeof *t->bases);
    t->extras = calloc(b, sizeof *t->extras);
    t->live = calloc(b, sizeof *t->live);
    t->v = calloc(b, sizeof *t->v);
    t->slots = calloc(b, sizeof *t->slots);
    t->st = calloc(b, sizeof *t->st);
    t->verdicts = calloc(b, sizeof *t->verdicts);
    t->errs = calloc(b, sizeof *t->errs);
    t->doc = manifest_unit_new(t->ss->spec->hash, (unsigned)t->round, t->unit,
                               session_unit_file(t->ss, t->u->file));
    if (!t->tcs || !t->batch || !t->bases || !t->extras || !t->live || !t->v || !t->slots ||
        !t->st || !t->verdicts || !t->errs || !t->doc)
        return vc_err_oom(err);
    return VC_OK;
}

static void map_task_free(struct map_task *t)
{
    free(t->tcs);
    free(t->batch);
    free(t->bases);
    free(t->extras);
    free(t->live);
    free(t->v);
    free(t->slots);
    free(t->st);
    free(t->verdicts);
    free(t->errs);
    cJSON_Delete(t->doc);
}

bool phase_map_done(const struct session *ss, size_t round, size_t unit)
{
    char *man = session_work_path(ss, "r%zu-map-%06zu.json", round, unit);
    char *bin = session_work_path(ss, "r%zu-map-%06zu.bin", round, unit);
    char *kept = session_work_path(ss, "r%zu-map-%06zu.kept", round, unit);
    /* A spill is needed until the unit's next round is done (the last
     * round's, by REDUCE, always): without it the unit is redone.  So is a
     * unit without its records file: a manifest of the earlier format,
     * which held them. */
    bool ok =
        man && bin && kept && commit_valid(man, ss->spec->hash, NULL) && vc_fs_exists(kept) &&
        (vc_fs_exists(bin) || (round + 1 < ss->n_rounds && phase_map_done(ss, round + 1, unit)));
    free(man);
    free(bin);
    free(kept);
    return ok;
}

struct arena **phase_map_arenas_new(const struct session *ss, size_t round)
{
    size_t b = ss->rounds[round].batch;
    struct arena **a = calloc(b, sizeof *a);
    for (size_t i = 0; a && i < b; i++)
        if (!(a[i] = arena_new(ss->spec->limits.max_sample_bytes))) {
            phase_map_arenas_free(ss, round, a);
            return NULL;
        }
    return a;
}

void phase_map_arenas_free(const struct session *ss, size_t round, struct arena **a)
{
    for (size_t i = 0; a && i < ss->rounds[round].batch; i++)
        arena_free(a[i]);
    free(a);
}

enum vc_status phase_map_unit(struct session *ss, size_t round, size_t unit, struct arena **arenas,
                              struct vc_err *err)
{
    struct spec *sp = ss->spec;
    const struct session_round *rd = &ss->rounds[round];
    struct map_task t = { .ss = ss,
                          .rd = rd,
                          .round = round,
                          .unit = (uint32_t)unit,
                          .link = round > 0 && round + 1 == ss->n_rounds,
                          .edit = -1,
                          .in = SPILL_READER_CLOSED };
    t.u = spec_unit(sp, unit, &t.source);
    /* A unit of a list file starts at its own record, not at the file's
     * first: the unreadable rest of a unit is numbered from there. */
    t.next_index = t.u->first_record;
    char *bin = session_work_path(ss, "r%zu-map-%06zu.bin", round, unit);
    char *man = session_work_path(ss, "r%zu-map-%06zu.json", round, unit);
    char *kept = session_work_path(ss, "r%zu-map-%06zu.kept", round, unit);
    char *lines = session_work_path(ss, "r%zu-map-%06zu.ledger", round, unit);
    enum vc_status rc =
        bin && man && kept && lines ? map_task_alloc(&t, sp->n_stages, err) : vc_err_oom(err);
    if (rc == VC_OK)
        rc = spill_writer_open(&t.spill, bin, t.u->file, err);
    if (rc == VC_OK)
        rc = spill_writer_open(&t.kept, kept, NULL, err);
    if (rc == VC_OK)
        rc = spill_writer_open(&t.lines, lines, NULL, err);
    size_t begun = rd->first;
    for (; rc == VC_OK && begun < rd->end; begun++) {
        t.tcs[begun] = (struct stage_task_ctx){ .run = &ss->ctx[round],
                                                .unit = (uint32_t)unit,
                                                .unit_file = t.u->file };
        if (sp->stages[begun].ops->caps & STAGE_CAP_MODEL) {
            t.tcs[begun].model_progress = model_progress;
            t.tcs[begun].progress_arg = &ss->prog;
        }
        if (sp->stages[begun].ops->task_begin)
            rc = sp->stages[begun].ops->task_begin(sp->stages[begun].state, &t.tcs[begun], err);
    }
    long g = round > 0 ? ss->rounds[round - 1].global : -1;
    bool edit_begun = false;
    if (rc == VC_OK && g >= 0 && sp->stages[g].ops->edit) {
        t.tcs[g] = (struct stage_task_ctx){ .run = &ss->ctx[round - 1],
                                            .unit = (uint32_t)unit,
                                            .unit_file = t.u->file };
        const struct stage_ops *ops = sp->stages[g].ops;
        rc = ops->edit_begin ? ops->edit_begin(sp->stages[g].state, &t.tcs[g], err) : VC_OK;
        edit_begun = rc == VC_OK;
        t.edit = edit_begun ? g : -1;
    }
    if (rc == VC_OK)
        rc = open_input(&t, err);
    if (rc == VC_OK && rd->model)
        progress_unit_begin(&ss->prog, unit_expected(&t));
    if (rc == VC_OK && (t.cursor || t.prev))
        rc = map_loop(&t, arenas, err);
    close_input(&t);
    if (edit_begun && sp->stages[g].ops->edit_end) {
        enum vc_status erc = sp->stages[g].ops->edit_end(sp->stages[g].state, &t.tcs[g], err);
        if (rc == VC_OK)
            rc = erc;
    }
    for (size_t k = rd->first; k < begun; k++) {
        const struct stage_ops *ops = sp->stages[k].ops;
        if (ops->task_end) {
            enum vc_status erc = ops->task_end(sp->stages[k].state, &t.tcs[k], err);
            if (rc == VC_OK)
                rc = erc;
        }
    }
    /* Only a spill that linked something needs the previous one kept. */
    t.link = t.link && t.spill.linked;
    if (rc == VC_OK && t.link)
        rc = manifest_unit_set_links(t.doc, err);
    struct spill_writer *files[] = { &t.spill, &t.kept, &t.lines };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        if (files[i]->path) {
            enum vc_status src = spill_writer_close(files[i], rc == VC_OK, err);
            if (rc == VC_OK)
                rc = src;
        }
    struct manifest_unit_counts c = { t.n_input, t.n_kept, t.n_lines };
    if (rc == VC_OK)
        rc = manifest_unit_set_counts(t.doc, &c, err);
    if (rc == VC_OK)
        rc = commit_write_json(man, t.doc, false, err);
    /* The previous round's spill of this unit has no reader left once this
     * task is committed (phase_map_done counts it as done without it),
     * unless this spill links to it. */
    if (rc == VC_OK && round > 0 && !t.link)
        phase_map_drop_spill(ss, round - 1, unit);
    map_task_free(&t);
    free(bin);
    free(man);
    free(kept);
    free(lines);
    return rc;
}

void phase_map_drop_spill(const struct session *ss, size_t round, size_t unit)
{
    char *bin = session_work_path(ss, "r%zu-map-%06zu.bin", round, unit);
    if (bin)
        unlink(bin); /* best effort: FINISH tries again */
    free(bin);
}
