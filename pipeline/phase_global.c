/* phase_global: reduce parts and the plan of a global stage.  The plan
 * checks the hook's work (every record ends in the order or dropped with a
 * stage and reason) before anything is committed, so a buggy hook fails
 * the run instead of losing samples from the ledger. */
#include "phase_global.h"

#include "core/vc_fs.h"
#include "core/vc_mem.h"
#include "manifests/commit.h"
#include "manifests/manifest.h"
#include "spill.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const struct spec_stage *global_stage(const struct session *ss, size_t round)
{
    return &ss->spec->stages[ss->rounds[round].global];
}

size_t phase_global_parts(const struct session *ss, size_t round)
{
    const struct spec_stage *st = global_stage(ss, round);
    return st->ops->reduce_parts && st->ops->reduce
               ? st->ops->reduce_parts(st->state, &ss->ctx[round])
               : 0;
}

static char *part_path(const struct session *ss, size_t round, size_t part)
{
    return session_work_path(ss, "r%zu-%s-reduce-%06zu.json", round,
                             global_stage(ss, round)->ops->name, part);
}

bool phase_global_part_done(const struct session *ss, size_t round, size_t part)
{
    char *man = part_path(ss, round, part);
    bool ok = man && commit_valid(man, ss->spec->hash, NULL);
    free(man);
    return ok;
}

enum vc_status phase_global_part(const struct session *ss, size_t round, size_t part,
                                 struct vc_err *err)
{
    const struct spec_stage *st = global_stage(ss, round);
    char *man = part_path(ss, round, part);
    if (!man)
        return vc_err_oom(err);
    enum vc_status rc = st->ops->reduce(st->state, &ss->ctx[round], part, err);
    if (rc < 0)
        vc_err_prefix(err, "stage '%s': reduce part %zu", st->ops->name, part);
    cJSON *doc = rc == VC_OK
                     ? manifest_part_new(ss->spec->hash, st->ops->name, (unsigned)round, part)
                     : NULL;
    if (rc == VC_OK)
        rc = doc ? commit_write_json(man, doc, false, err) : vc_err_oom(err);
    cJSON_Delete(doc);
    free(man);
    return rc;
}

bool phase_global_plan_done(const struct session *ss, size_t round)
{
    char *man = session_work_path(ss, "r%zu-plan.json", round);
    char *order = session_work_path(ss, "r%zu-order.bin", round);
    char *drops = session_work_path(ss, "r%zu-drops.jsonl", round);
    bool ok = man && order && drops && vc_fs_exists(order) && vc_fs_exists(drops) &&
              commit_valid(man, ss->spec->hash, NULL);
    free(man);
    free(order);
    free(drops);
    return ok;
}

static const char *const rec_state_names[] = { "keep", "rejected", "duplicate" };

/* Every record is in the order or dropped with a reason; in_order gets
 * one flag per record. */
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

static int id_cmp(const void *a, const void *b)
{
    const struct spill_id *x = a, *y = b;
    if (x->unit != y->unit)
        return x->unit < y->unit ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

static enum vc_status stray_drop(uint32_t unit, uint64_t index, struct vc_err *err)
{
    return vc_err_set(err, VC_EFATAL, VC_REASON_none,
                      "the plan hook removed record %llu of unit %u, which the round does not "
                      "hold or listed out of order",
                      (unsigned long long)index, unit);
}

/* The round's drop file, written line by line as the plan finds its
 * drops and committed (renamed from its temporary name) just before
 * rR-plan.json, so no step of the round holds the drops. */
struct drop_out {
    struct spill_writer w;
    bool open, any;
    struct spill_id last;
    uint64_t n;
};

static enum vc_status drops_open(const struct session *ss, size_t round, struct drop_out *o,
                                 struct vc_err *err)
{
    memset(o, 0, sizeof *o);
    char *path = session_work_path(ss, "r%zu-drops.jsonl", round);
    enum vc_status rc = path ? spill_writer_open(&o->w, path, NULL, err) : vc_err_oom(err);
    o->open = rc == VC_OK;
    free(path);
    return rc;
}

/* ok: fsync and rename into place; else the temporary file goes. */
static enum vc_status drops_close(struct drop_out *o, bool ok, struct vc_err *err)
{
    enum vc_status rc = o->open ? spill_writer_close(&o->w, ok, err) : VC_OK;
    o->open = false;
    return rc;
}

static enum vc_status drop_put(struct drop_out *o, const struct stage_drop *sd, struct vc_err *err)
{
    struct spill_id id = { sd->unit, sd->index };
    if (o->any && id_cmp(&o->last, &id) >= 0)
        return stray_drop(sd->unit, sd->index, err);
    if (!sd->stage || sd->state == STAGE_REC_KEEP)
        return vc_err_set(err, VC_EFATAL, VC_REASON_none,
                          "the plan hook removed record %llu of unit %u without a reason",
                          (unsigned long long)sd->index, sd->unit);
    o->any = true;
    o->last = id;
    o->n++;
    bool dup = sd->state == STAGE_REC_DUPLICATE && sd->dup_key; /* else the kept one is unknown */
    struct manifest_drop d = { .unit = sd->unit,
                               .index = sd->index,
                               .key = sd->key ? sd->key : "",
                               .state = rec_state_names[sd->state],
                               .stage = sd->stage,
                               .reason = vc_reason_name(sd->reason),
                               .has_dup = dup,
                               .dup_unit = dup ? sd->dup_unit : 0,
                               .dup_index = dup ? sd->dup_index : 0,
                               .dup_key = dup ? sd->dup_key : NULL,
                               .dup_method = dup ? sd->dup_method : NULL,
                               .dup_measure = dup ? sd->dup_measure : NULL,
                               .dup_value = sd->dup_value };
    return manifest_drop_write(o->w.f, o->w.tmp, &d, err);
}

static enum vc_status add_drops(struct drop_out *o, const struct stage_plan *plan,
                                struct vc_err *err)
{
    for (size_t i = 0; i < plan->n_recs; i++) {
        const struct stage_rec *sr = &plan->recs[i];
        if (sr->state == STAGE_REC_KEEP)
            continue;
        struct stage_drop d = { .unit = sr->unit,
                                .index = sr->index,
                                .key = sr->key,
                                .state = sr->state,
                                .stage = sr->stage,
                                .reason = sr->reason };
        if (sr->state == STAGE_REC_DUPLICATE && sr->dup_of < plan->n_recs) {
            d.dup_unit = plan->recs[sr->dup_of].unit;
            d.dup_index = plan->recs[sr->dup_of].index;
            d.dup_key = plan->recs[sr->dup_of].key;
            d.dup_method = sr->dup_method;
            d.dup_measure = sr->dup_measure;
            d.dup_value = sr->dup_value;
        }
        VC_TRY(drop_put(o, &d, err));
    }
    return VC_OK;
}

/* Commits the round: its drop file, then rR-plan.json with the round's
 * sizing and report. */
static enum vc_status round_commit(const struct session *ss, size_t round, const char *man,
                                   struct manifest_sizing *sz, const cJSON *report,
                                   struct drop_out *drops, struct vc_err *err)
{
    sz->n_dropped = drops->n;
    VC_TRY(drops_close(drops, true, err));
    cJSON *doc = manifest_round_new(ss->spec->hash, global_stage(ss, round)->ops->name,
                                    (unsigned)round, sz, report);
    enum vc_status rc = doc ? commit_write_json(man, doc, false, err) : vc_err_oom(err);
    cJSON_Delete(doc);
    return rc;
}

static enum vc_status plan_commit(const struct session *ss, size_t round,
                                  const struct session_recs *rs, const struct stage_plan *plan,
                                  const uint8_t *in_order, struct vc_err *err)
{
    char *alive = session_work_path(ss, "r%zu-alive.bin", round);
    char *order = session_work_path(ss, "r%zu-order.bin", round);
    char *man = session_work_path(ss, "r%zu-plan.json", round);
    struct spill_id *ids = malloc((plan->n_order + 1) * sizeof *ids);
    struct drop_out drops = { 0 };
    enum vc_status rc = alive && order && man && ids ? VC_OK : vc_err_oom(err);
    for (size_t i = 0; rc == VC_OK && i < plan->n_order; i++)
        ids[i] =
            (struct spill_id){ plan->recs[plan->order[i]].unit, plan->recs[plan->order[i]].index };
    if (rc == VC_OK)
        rc = spill_alive_write(alive, ss->n_units, rs->first, in_order, err);
    if (rc == VC_OK)
        rc = spill_order_write(order, ids, plan->n_order, err);
    if (rc == VC_OK)
        rc = drops_open(ss, round, &drops, err);
    if (rc == VC_OK)
        rc = add_drops(&drops, plan, err);
    struct manifest_sizing sz = { plan->n_order, plan->samples_per_shard, plan->shard_bytes, 0 };
    if (rc == VC_OK)
        rc = round_commit(ss, round, man, &sz, plan->report, &drops, err);
    drops_close(&drops, false, err);
    free(ids);
    free(alive);
    free(order);
    free(man);
    return rc;
}

/* ---- plan_stream hooks: the records stay on disk ---- */

struct stream_src {
    const struct session *ss;
    size_t round;
    struct drop_out *drops;
};

static enum vc_status stream_each(const struct stage_plan_stream *p, stage_rec_fn fn, void *ctx,
                                  struct vc_err *err)
{
    const struct stream_src *src = p->impl;
    enum vc_status rc = VC_OK;
    for (size_t u = 0; rc == VC_OK && u < src->ss->n_units; u++) {
        struct session_kept c;
        rc = session_kept_open(&c, src->ss, src->round, u, err);
        for (; rc == VC_OK && c.item; rc = session_kept_next(&c, err)) {
            struct stage_rec r;
            session_kept_rec(&c, &r);
            rc = fn(ctx, &r, err);
            if (rc != VC_OK)
                break;
        }
        session_kept_close(&c);
    }
    return rc;
}

static enum vc_status stream_drop(const struct stage_plan_stream *p, const struct stage_drop *d,
                                  struct vc_err *err)
{
    const struct stream_src *src = p->impl;
    return drop_put(src->drops, d, err);
}

/* What the streaming commit carries from unit to unit. */
struct stream_out {
    struct manifest_reader rd; /* the drops, read back in order */
    cJSON *next;               /* the next drop, NULL after the last */
    struct spill_id next_id;
    uint8_t *flags; /* the current unit's alive flags */
    size_t n_flags, cap_flags;
    /* Without a carried order the kept records go straight to the order
     * file; with one, their ids are collected (sorted: they come in
     * (unit, index) order) to filter it. */
    bool ordered;
    struct spill_writer order;
    struct spill_id *live;
    size_t n_live, cap_live;
    uint64_t n_order;
};

static enum vc_status grow(void **v, size_t *cap, size_t need, size_t size, struct vc_err *err)
{
    void *p = vc_grow_array(*v, cap, need, size, 1024);
    if (!p)
        return vc_err_oom(err);
    *v = p;
    return VC_OK;
}

static enum vc_status next_drop(struct stream_out *o, struct vc_err *err)
{
    cJSON_Delete(o->next);
    o->next = NULL;
    int got = manifest_reader_next(&o->rd, &o->next, err);
    if (got < 0)
        return (enum vc_status)got;
    if (got) {
        struct manifest_drop d;
        manifest_drop_get(o->next, &d);
        o->next_id = (struct spill_id){ d.unit, d.index };
    }
    return VC_OK;
}

/* One record of the round: dropped when it is the next removal, else
 * alive (and next in the order when nothing was carried). */
static enum vc_status stream_rec(struct stream_out *o, const struct spill_id *id,
                                 struct vc_err *err)
{
    int c = o->next ? id_cmp(&o->next_id, id) : 1;
    if (c < 0)
        return stray_drop(o->next_id.unit, o->next_id.index, err);
    VC_TRY(grow((void **)&o->flags, &o->cap_flags, o->n_flags + 1, 1, err));
    o->flags[o->n_flags++] = c > 0;
    if (c == 0)
        return next_drop(o, err);
    if (o->ordered) {
        VC_TRY(grow((void **)&o->live, &o->cap_live, o->n_live + 1, sizeof *o->live, err));
        o->live[o->n_live++] = *id;
        return VC_OK;
    }
    o->n_order++;
    return spill_order_add(&o->order, id, err);
}

/* The carried order minus the records no longer alive. */
static enum vc_status stream_order_filter(struct stream_out *o, const char *carried,
                                          struct vc_err *err)
{
    struct spill_order_reader rd;
    VC_TRY(spill_order_open(&rd, carried, err));
    enum vc_status rc = VC_OK;
    struct spill_id id;
    int got;
    while (rc == VC_OK && (got = spill_order_next(&rd, &id, err)) != 0) {
        if (got < 0)
            rc = (enum vc_status)got;
        else if (o->n_live && bsearch(&id, o->live, o->n_live, sizeof id, id_cmp)) {
            o->n_order++;
            rc = spill_order_add(&o->order, &id, err);
        }
    }
    spill_order_close(&rd);
    return rc;
}

/* Streams the round's manifests once more against the hook's removals
 * (read back from the drop file): rR-alive.bin unit by unit, rR-order.bin,
 * then the drop file and rR-plan.json. */
static enum vc_status stream_commit(const struct session *ss, size_t round,
                                    const struct session_carry *carry,
                                    const struct stage_plan_stream *p, struct drop_out *drops,
                                    struct vc_err *err)
{
    char *alive = session_work_path(ss, "r%zu-alive.bin", round);
    char *order = session_work_path(ss, "r%zu-order.bin", round);
    char *man = session_work_path(ss, "r%zu-plan.json", round);
    char *carried = round ? session_work_path(ss, "r%zu-order.bin", round - 1) : NULL;
    struct stream_out o = { .ordered = carry->ordered };
    struct spill_index_writer aw;
    bool aw_open = false, ow_open = false;
    enum vc_status rc = alive && order && man && (carried || !round) ? VC_OK : vc_err_oom(err);
    if (rc == VC_OK && fflush(drops->w.f) != 0)
        rc = vc_err_io(err, drops->w.tmp);
    if (rc == VC_OK)
        rc = manifest_reader_open(&o.rd, drops->w.tmp, "drop", err);
    if (rc == VC_OK)
        rc = next_drop(&o, err);
    if (rc == VC_OK && (rc = spill_index_open(&aw, alive, ss->n_units, err)) == VC_OK)
        aw_open = true;
    if (rc == VC_OK && (rc = spill_writer_open(&o.order, order, NULL, err)) == VC_OK)
        ow_open = true;
    for (size_t u = 0; rc == VC_OK && u < ss->n_units; u++) {
        struct session_kept c;
        rc = session_kept_open(&c, ss, round, u, err);
        o.n_flags = 0;
        for (; rc == VC_OK && c.item; rc = session_kept_next(&c, err)) {
            struct spill_id id = { (uint32_t)u, c.k.index };
            if ((rc = stream_rec(&o, &id, err)) != VC_OK)
                break;
        }
        session_kept_close(&c);
        if (rc == VC_OK)
            rc = spill_index_add(&aw, o.flags, o.n_flags, err);
    }
    if (rc == VC_OK && o.next)
        rc = stray_drop(o.next_id.unit, o.next_id.index, err);
    if (rc == VC_OK && o.ordered)
        rc = stream_order_filter(&o, carried, err);
    if (aw_open) {
        enum vc_status c = spill_index_close(&aw, rc == VC_OK, err);
        rc = rc == VC_OK ? c : rc;
    }
    if (ow_open) {
        enum vc_status c = spill_writer_close(&o.order, rc == VC_OK, err);
        rc = rc == VC_OK ? c : rc;
    }
    struct manifest_sizing sz = { o.n_order, carry->samples_per_shard, carry->shard_bytes, 0 };
    if (rc == VC_OK)
        rc = round_commit(ss, round, man, &sz, p->report, drops, err);
    cJSON_Delete(o.next);
    manifest_reader_close(&o.rd);
    free(o.flags);
    free(o.live);
    free(alive);
    free(order);
    free(man);
    free(carried);
    return rc;
}

static enum vc_status plan_streamed(const struct session *ss, size_t round, struct vc_err *err)
{
    const struct spec_stage *st = global_stage(ss, round);
    struct session_carry carry;
    VC_TRY(session_carry_load(ss, round, false, &carry, err));
    struct drop_out drops;
    enum vc_status rc = drops_open(ss, round, &drops, err);
    if (rc != VC_OK) {
        session_carry_free(&carry);
        return rc;
    }
    struct stream_src src = { ss, round, &drops };
    struct stage_plan_stream p = { .each = stream_each,
                                   .drop = stream_drop,
                                   .impl = &src,
                                   .sources = ss->spec->source_info,
                                   .n_sources = ss->spec->n_sources,
                                   .report = carry.report,
                                   .run = &ss->ctx[round] };
    rc = st->ops->plan_stream(st->state, &p, err);
    if (rc == VC_OK)
        rc = stream_commit(ss, round, &carry, &p, &drops, err);
    drops_close(&drops, false, err);
    carry.report = p.report;
    session_carry_free(&carry);
    return rc;
}

enum vc_status phase_global_plan(const struct session *ss, size_t round, struct vc_err *err)
{
    const struct spec_stage *st = global_stage(ss, round);
    if (st->ops->plan_stream)
        return plan_streamed(ss, round, err);
    struct session_recs rs;
    struct session_carry carry;
    enum vc_status rc = session_recs_load(ss, round, &rs, err);
    if (rc == VC_OK)
        rc = session_carry_load(ss, round, true, &carry, err);
    else
        memset(&carry, 0, sizeof carry);
    struct stage_plan plan = {
        .recs = rs.v,
        .n_recs = rs.n,
        .sources = ss->spec->source_info,
        .n_sources = ss->spec->n_sources,
        .samples_per_shard = carry.samples_per_shard,
        .shard_bytes = carry.shard_bytes,
        .report = carry.report,
        .run = &ss->ctx[round],
    };
    if (rc == VC_OK)
        rc = session_carry_order(&carry, &rs, &plan.order, &plan.n_order, err);
    if (rc == VC_OK && st->ops->plan)
        rc = st->ops->plan(st->state, &plan, err);
    uint8_t *in_order = rc == VC_OK ? calloc(rs.n + 1, 1) : NULL;
    if (rc == VC_OK && !in_order)
        rc = vc_err_oom(err);
    if (rc == VC_OK)
        rc = plan_check(&plan, in_order, st->ops->name, err);
    if (rc == VC_OK)
        rc = plan_commit(ss, round, &rs, &plan, in_order, err);
    carry.report = plan.report; /* a hook may have replaced members; freed with the carry */
    free(in_order);
    free(plan.order);
    session_carry_free(&carry);
    session_recs_free(&rs);
    return rc;
}
