/* task: names, counts and readiness of tasks.  Readiness is checked from
 * commit markers alone, so it holds whatever process ran the earlier
 * tasks. */
#include "task.h"

#include "core/vc_mem.h"
#include "manifests/commit.h"
#include "outdir.h"
#include "phase_finish.h"
#include "phase_global.h"
#include "phase_map.h"
#include "phase_plan.h"
#include "phase_reduce.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void task_phases(const struct session *ss, struct task_ref *v, size_t *n)
{
    size_t k = 0;
    for (size_t r = 0; r < ss->n_rounds; r++) {
        v[k++] = (struct task_ref){ TASK_MAP, r, 0 };
        if (r + 1 < ss->n_rounds) {
            v[k++] = (struct task_ref){ TASK_REDUCE, r, 0 };
            v[k++] = (struct task_ref){ TASK_ROUND_PLAN, r, 0 };
        }
    }
    v[k++] = (struct task_ref){ TASK_PLAN, 0, 0 };
    v[k++] = (struct task_ref){ TASK_WRITE, 0, 0 };
    v[k++] = (struct task_ref){ TASK_FINISH, 0, 0 };
    *n = k;
}

void task_phase_name(const struct task_ref *t, char *buf, size_t cap)
{
    static const char *const names[] = { "map", "reduce", "plan", "plan", "write", "finish" };
    if (t->phase <= TASK_ROUND_PLAN)
        snprintf(buf, cap, "r%zu-%s", t->round, names[t->phase]);
    else
        snprintf(buf, cap, "%s", names[t->phase]);
}

enum vc_status task_parse(const struct session *ss, const char *phase, struct task_ref *t,
                          struct vc_err *err)
{
    struct task_ref v[3 * 64 + 3];
    size_t n = 0;
    if (ss->n_rounds > 64)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "too many rounds");
    task_phases(ss, v, &n);
    char known[1024] = "";
    for (size_t i = 0; i < n; i++) {
        char name[32];
        task_phase_name(&v[i], name, sizeof name);
        if (!strcmp(name, phase)) {
            *t = v[i];
            return VC_OK;
        }
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "", name);
    }
    return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                      "unknown phase '%s' (this run's phases: %s)", phase, known);
}

static size_t n_shards(const struct session *ss, bool *known)
{
    cJSON *doc = NULL;
    size_t n = 0;
    struct vc_err e;
    *known = phase_plan_done(ss) && phase_plan_read(ss, &doc, &n, &e) == VC_OK;
    cJSON_Delete(doc);
    return *known ? n : 0;
}

static bool finish_done(const struct session *ss)
{
    size_t n = strlen(ss->spec->out_dir) + sizeof OUTDIR_RUN_NAME + 2;
    char *path = malloc(n);
    if (path)
        snprintf(path, n, "%s/%s", ss->spec->out_dir, OUTDIR_RUN_NAME);
    bool ok = path && commit_valid(path, ss->spec->hash, NULL);
    free(path);
    return ok;
}

bool task_done(const struct session *ss, const struct task_ref *t, size_t i)
{
    switch (t->phase) {
    case TASK_MAP:
        return phase_map_done(ss, t->round, i);
    case TASK_REDUCE:
        return phase_global_part_done(ss, t->round, i);
    case TASK_ROUND_PLAN:
        return phase_global_plan_done(ss, t->round);
    case TASK_PLAN:
        return phase_plan_done(ss);
    case TASK_WRITE:
        return phase_reduce_done(ss, i);
    case TASK_FINISH:
        return finish_done(ss);
    }
    return false;
}

void task_count(const struct session *ss, const struct task_ref *t, size_t *total, size_t *done,
                bool *known)
{
    *known = true;
    switch (t->phase) {
    case TASK_MAP:
        *total = ss->n_units;
        break;
    case TASK_REDUCE:
        *total = phase_global_parts(ss, t->round);
        break;
    case TASK_WRITE:
        *total = n_shards(ss, known);
        break;
    default:
        *total = 1;
    }
    *done = 0;
    for (size_t i = 0; i < *total; i++)
        *done += task_done(ss, t, i);
}

/* Every task of the phases before t is committed; else names the first
 * phase that is not. */
static enum vc_status ready(const struct session *ss, const struct task_ref *t, struct vc_err *err)
{
    struct task_ref v[3 * 64 + 3];
    size_t n = 0;
    task_phases(ss, v, &n);
    for (size_t i = 0; i < n; i++) {
        if (v[i].phase == t->phase && v[i].round == t->round)
            return VC_OK;
        size_t total, done;
        bool known;
        task_count(ss, &v[i], &total, &done, &known);
        if (!known || done < total) {
            char a[32], b[32];
            task_phase_name(&v[i], a, sizeof a);
            task_phase_name(t, b, sizeof b);
            return vc_err_set(err, VC_EFATAL, VC_REASON_none,
                              "not ready: %s has %zu of %zu tasks committed; %s runs after it", a,
                              done, total, b);
        }
    }
    return VC_OK;
}

enum vc_status task_run(struct session *ss, const struct task_ref *t, bool *was_done,
                        struct vc_err *err)
{
    size_t total, done;
    bool known;
    VC_TRY(ready(ss, t, err));
    task_count(ss, t, &total, &done, &known);
    if (t->index >= total) {
        char name[32];
        task_phase_name(t, name, sizeof name);
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "%s has %zu tasks; no task %zu", name,
                          total, t->index);
    }
    *was_done = task_done(ss, t, t->index);
    if (*was_done)
        return VC_OK;
    enum vc_status rc = VC_OK;
    switch (t->phase) {
    case TASK_MAP: {
        struct arena **arenas = phase_map_arenas_new(ss, t->round);
        rc = arenas ? phase_map_unit(ss, t->round, t->index, arenas, err)
                    : vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "arenas");
        phase_map_arenas_free(ss, t->round, arenas);
        break;
    }
    case TASK_REDUCE:
        rc = phase_global_part(ss, t->round, t->index, err);
        break;
    case TASK_ROUND_PLAN:
        rc = phase_global_plan(ss, t->round, err);
        break;
    case TASK_PLAN:
        rc = phase_plan(ss, err);
        break;
    case TASK_WRITE: {
        struct arena *arena = arena_new(ss->spec->limits.max_sample_bytes);
        rc = arena ? phase_reduce_shard(ss, t->index, arena, err)
                   : vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "arena");
        arena_free(arena);
        break;
    }
    case TASK_FINISH: {
        struct exec_result res = { 0 };
        rc = phase_finish(ss, &res, err);
        break;
    }
    }
    return rc;
}
