/* phase_global: reduce parts and the plan of a global stage.  The plan
 * checks the hook's work (every record ends in the order or dropped with a
 * stage and reason) before anything is committed, so a buggy hook fails
 * the run instead of losing samples from the ledger. */
#include "phase_global.h"

#include "core/vc_fs.h"
#include "manifests/commit.h"
#include "manifests/manifest.h"
#include "spill.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static enum vc_status oom(struct vc_err *err)
{
    return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
}

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
        return oom(err);
    enum vc_status rc = st->ops->reduce(st->state, &ss->ctx[round], part, err);
    if (rc < 0)
        vc_err_prefix(err, "stage '%s': reduce part %zu", st->ops->name, part);
    cJSON *doc = rc == VC_OK
                     ? manifest_part_new(ss->spec->hash, st->ops->name, (unsigned)round, part)
                     : NULL;
    if (rc == VC_OK)
        rc = doc ? commit_write_json(man, doc, false, err) : oom(err);
    cJSON_Delete(doc);
    free(man);
    return rc;
}

bool phase_global_plan_done(const struct session *ss, size_t round)
{
    char *man = session_work_path(ss, "r%zu-plan.json", round);
    char *order = session_work_path(ss, "r%zu-order.bin", round);
    bool ok = man && order && vc_fs_exists(order) && commit_valid(man, ss->spec->hash, NULL);
    free(man);
    free(order);
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

static enum vc_status add_drops(cJSON *doc, const struct stage_plan *plan, struct vc_err *err)
{
    for (size_t i = 0; i < plan->n_recs; i++) {
        const struct stage_rec *sr = &plan->recs[i];
        if (sr->state == STAGE_REC_KEEP)
            continue;
        struct manifest_drop d = { .unit = sr->unit,
                                   .index = sr->index,
                                   .key = sr->key,
                                   .state = rec_state_names[sr->state],
                                   .stage = sr->stage,
                                   .reason = vc_reason_name(sr->reason) };
        if (sr->state == STAGE_REC_DUPLICATE && sr->dup_of < plan->n_recs) {
            d.has_dup = true;
            d.dup_unit = plan->recs[sr->dup_of].unit;
            d.dup_index = plan->recs[sr->dup_of].index;
            d.dup_key = plan->recs[sr->dup_of].key;
            d.dup_method = sr->dup_method;
            d.dup_measure = sr->dup_measure;
            d.dup_value = sr->dup_value;
        }
        VC_TRY(manifest_round_add_drop(doc, &d, err));
    }
    return VC_OK;
}

static enum vc_status plan_commit(const struct session *ss, size_t round,
                                  const struct session_recs *rs, const struct stage_plan *plan,
                                  const uint8_t *in_order, struct vc_err *err)
{
    char *alive = session_work_path(ss, "r%zu-alive.bin", round);
    char *order = session_work_path(ss, "r%zu-order.bin", round);
    char *man = session_work_path(ss, "r%zu-plan.json", round);
    struct spill_id *ids = malloc((plan->n_order + 1) * sizeof *ids);
    enum vc_status rc = alive && order && man && ids ? VC_OK : oom(err);
    for (size_t i = 0; rc == VC_OK && i < plan->n_order; i++)
        ids[i] =
            (struct spill_id){ plan->recs[plan->order[i]].unit, plan->recs[plan->order[i]].index };
    if (rc == VC_OK)
        rc = spill_alive_write(alive, ss->n_units, rs->first, in_order, err);
    if (rc == VC_OK)
        rc = spill_order_write(order, ids, plan->n_order, err);
    struct manifest_sizing sz = { plan->n_order, plan->samples_per_shard, plan->shard_bytes };
    cJSON *doc = rc == VC_OK
                     ? manifest_round_new(ss->spec->hash, global_stage(ss, round)->ops->name,
                                          (unsigned)round, &sz, plan->report)
                     : NULL;
    if (rc == VC_OK && !doc)
        rc = oom(err);
    if (rc == VC_OK)
        rc = add_drops(doc, plan, err);
    if (rc == VC_OK)
        rc = commit_write_json(man, doc, false, err);
    cJSON_Delete(doc);
    free(ids);
    free(alive);
    free(order);
    free(man);
    return rc;
}

enum vc_status phase_global_plan(const struct session *ss, size_t round, struct vc_err *err)
{
    const struct spec_stage *st = global_stage(ss, round);
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
        rc = oom(err);
    if (rc == VC_OK)
        rc = plan_check(&plan, in_order, st->ops->name, err);
    if (rc == VC_OK)
        rc = plan_commit(ss, round, &rs, &plan, in_order, err);
    carry.report = plan.report; /* a hook may have replaced members; freed with the carry */
    free(in_order);
    free(plan.order);
    session_carry_free(&carry);
    session_recs_free(ss, &rs);
    return rc;
}
