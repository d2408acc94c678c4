/* exec_local: threads over tasks.  A model round runs its units one at a
 * time (the model takes every core).  An input unit that cannot be read
 * fails the run after every other unit of its round is committed, so a
 * rerun redoes only that unit. */
#include "exec_local.h"

#include "core/vc_mem.h"
#include <cjson/cJSON.h>
#include "phase_finish.h"
#include "phase_global.h"
#include "phase_map.h"
#include "phase_plan.h"
#include "phase_reduce.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

/* The first fatal error of a parallel loop, and the units that failed. */
struct outcome {
    int failed;
    struct vc_err fatal, unit_err;
    uint64_t units_failed;
};

static void set_fatal(struct outcome *o, const struct vc_err *e)
{
#pragma omp critical(exec_local_outcome)
    {
        if (!o->failed) {
            o->failed = 1;
            o->fatal = *e;
        }
    }
}

static void unit_failed(const struct session *ss, struct outcome *o, size_t unit,
                        const struct vc_err *e)
{
#pragma omp critical(exec_local_outcome)
    {
        if (!o->units_failed++)
            o->unit_err = *e;
        if (ss->log)
            fprintf(ss->log, "vlmcurate: error: input unit %zu (%s): %s (not committed)\n", unit,
                    spec_unit(ss->spec, unit, &(size_t){ 0 })->file, e->msg);
    }
}

static double seconds_since(uint64_t t0)
{
    return (double)(progress_now_ns() - t0) / 1e9;
}

static enum vc_status map_round(struct session *ss, size_t round, struct exec_result *res,
                                struct vc_err *err)
{
    struct spec *sp = ss->spec;
    size_t *pending = calloc(ss->n_units + 1, sizeof *pending), n = 0;
    if (!pending)
        return vc_err_oom(err);
    for (size_t u = 0; u < ss->n_units; u++)
        if (!phase_map_done(ss, round, u))
            pending[n++] = u;
    if (round == 0)
        res->units_skipped = ss->n_units - n;
    char phase[32];
    snprintf(phase, sizeof phase, round ? "map (round %zu)" : "map", round);
    progress_begin(&ss->prog, ss->log, phase, n, sp->log_interval_s);
    struct outcome o = { 0 };
#pragma omp parallel num_threads(ss->rounds[round].model ? 1 : sp->threads)
    {
        struct arena **arenas = phase_map_arenas_new(ss, round);
        if (!arenas) {
            struct vc_err e;
            vc_err_set(&e, VC_EFATAL, VC_REASON_out_of_memory, "worker arenas");
            set_fatal(&o, &e);
        }
#pragma omp for schedule(dynamic, 1)
        for (size_t i = 0; i < n; i++) {
            if (o.failed || !arenas)
                continue;
            struct vc_err e = { 0 };
            enum vc_status rc = phase_map_unit(ss, round, pending[i], arenas, &e);
            if (rc == VC_ESHARD)
                unit_failed(ss, &o, pending[i], &e);
            else if (rc < 0)
                set_fatal(&o, &e);
            progress_unit_done(&ss->prog);
        }
        phase_map_arenas_free(ss, round, arenas);
    }
    progress_end(&ss->prog);
    free(pending);
    res->units_failed = o.units_failed;
    if (o.failed) {
        *err = o.fatal;
        return VC_EFATAL;
    }
    if (o.units_failed) {
        *err = o.unit_err;
        err->status = VC_EFATAL;
        return vc_err_prefix(err,
                             "%llu of %zu input units could not be read and were not committed "
                             "(rerun to retry them); the first",
                             (unsigned long long)o.units_failed, n);
    }
    return VC_OK;
}

static enum vc_status reduce_parts(struct session *ss, size_t round, struct vc_err *err)
{
    size_t n = phase_global_parts(ss, round);
    if (!n)
        return VC_OK;
    progress_begin(&ss->prog, ss->log, "global reduce", n, ss->spec->log_interval_s);
    struct outcome o = { 0 };
#pragma omp parallel for schedule(dynamic, 1) num_threads(ss->spec->threads)
    for (size_t p = 0; p < n; p++) {
        struct vc_err e = { 0 };
        if (!o.failed && !phase_global_part_done(ss, round, p) &&
            phase_global_part(ss, round, p, &e) < 0)
            set_fatal(&o, &e);
        progress_unit_done(&ss->prog);
    }
    progress_end(&ss->prog);
    if (o.failed) {
        *err = o.fatal;
        return VC_EFATAL;
    }
    return VC_OK;
}

static enum vc_status reduce_shards(struct session *ss, size_t n, struct exec_result *res,
                                    struct vc_err *err)
{
    progress_begin(&ss->prog, ss->log, "write", n, ss->spec->log_interval_s);
    struct outcome o = { 0 };
    uint64_t skipped = 0;
#pragma omp parallel num_threads(ss->spec->threads) reduction(+ : skipped)
    {
        struct arena *arena = arena_new(ss->spec->limits.max_sample_bytes);
#pragma omp for schedule(dynamic, 1)
        for (size_t k = 0; k < n; k++) {
            struct vc_err e = { 0 };
            if (o.failed)
                continue;
            if (phase_reduce_done(ss, k))
                skipped++;
            else if (!arena)
                set_fatal(&o, (vc_err_set(&e, VC_EFATAL, VC_REASON_out_of_memory, "arena"), &e));
            else if (phase_reduce_shard(ss, k, arena, &e) < 0)
                set_fatal(&o, &e);
            progress_unit_done(&ss->prog);
        }
        arena_free(arena);
    }
    progress_end(&ss->prog);
    res->shards_skipped = skipped;
    if (o.failed) {
        *err = o.fatal;
        return VC_EFATAL;
    }
    return VC_OK;
}

static enum vc_status local_run(struct session *ss, struct exec_result *res, struct vc_err *err)
{
    uint64_t t0 = progress_now_ns();
    size_t last = ss->n_rounds - 1;
    /* Round 0's MAP, when it runs, counts the input units it finds done;
     * when a committed plan spares it, every unit was. */
    res->units_skipped = ss->n_units;
    /* A committed round plan means every task of its round was committed:
     * such rounds are not even checked. */
    for (size_t k = 0; k < last; k++) {
        if (phase_global_plan_done(ss, k))
            continue;
        VC_TRY(map_round(ss, k, res, err));
        VC_TRY(reduce_parts(ss, k, err));
        VC_TRY(phase_global_plan(ss, k, err));
    }
    if (!phase_plan_done(ss))
        VC_TRY(map_round(ss, last, res, err));
    res->seconds_map = seconds_since(t0);
    t0 = progress_now_ns();
    if (!phase_plan_done(ss))
        VC_TRY(phase_plan(ss, err));
    cJSON *plan = NULL;
    size_t n_shards = 0;
    VC_TRY(phase_plan_read(ss, &plan, &n_shards, err));
    cJSON_Delete(plan);
    res->seconds_plan = seconds_since(t0);
    t0 = progress_now_ns();
    VC_TRY(reduce_shards(ss, n_shards, res, err));
    res->seconds_reduce = seconds_since(t0);
    return phase_finish(ss, res, err);
}

const struct executor_ops exec_local_ops = {
    .name = "local",
    .summary = "this machine's threads (OpenMP)",
    .run = local_run,
};
