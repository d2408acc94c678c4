/* phase_plan: shard cuts, keys and slices.  Slices are written before
 * plan.json, so a committed plan always has all of its slices. */
#include "phase_plan.h"

#include "core/vc_mem.h"
#include "manifests/commit.h"
#include "manifests/manifest.h"
#include "plan.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static enum vc_status oom(struct vc_err *err)
{
    return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
}

bool phase_plan_done(const struct session *ss)
{
    char *path = session_work_path(ss, "plan.json");
    bool ok = path && commit_valid(path, ss->spec->hash, NULL);
    free(path);
    return ok;
}

enum vc_status phase_plan_read(const struct session *ss, cJSON **doc, size_t *n_shards,
                               struct vc_err *err)
{
    char *path = session_work_path(ss, "plan.json");
    *doc = NULL;
    enum vc_status rc = path ? VC_OK : oom(err);
    if (rc == VC_OK && !commit_valid(path, ss->spec->hash, doc))
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s is missing or names another spec",
                        path);
    size_t *starts = NULL;
    if (rc == VC_OK)
        rc = manifest_plan_starts(*doc, &starts, n_shards, err);
    free(starts);
    free(path);
    if (rc != VC_OK) {
        cJSON_Delete(*doc);
        *doc = NULL;
    }
    return rc;
}

static enum vc_status write_slice(const struct session *ss, const struct session_recs *rs,
                                  const size_t *order, char *const *keys, size_t k, size_t begin,
                                  size_t end, struct vc_err *err)
{
    char *path = session_work_path(ss, "plan-shard-%06zu.json", k);
    cJSON *doc = manifest_slice_new(ss->spec->hash, k, begin);
    enum vc_status rc = path && doc ? VC_OK : oom(err);
    for (size_t i = begin; rc == VC_OK && i < end; i++) {
        const struct stage_rec *sr = &rs->v[order[i]];
        struct manifest_slot s = { .unit = sr->unit,
                                   .source = sr->source,
                                   .index = sr->index,
                                   .off = rs->off[order[i]],
                                   .len = rs->len[order[i]],
                                   .key = keys[i] };
        rc = manifest_slice_add(doc, &s, err);
    }
    if (rc == VC_OK)
        rc = commit_write_json(path, doc, false, err);
    cJSON_Delete(doc);
    free(path);
    return rc;
}

enum vc_status phase_plan(const struct session *ss, struct vc_err *err)
{
    size_t last = ss->n_rounds - 1, *order = NULL, n = 0, *starts = NULL, n_shards = 0;
    struct session_recs rs;
    struct session_carry carry;
    memset(&carry, 0, sizeof carry);
    enum vc_status rc = session_recs_load(ss, last, &rs, err);
    if (rc == VC_OK)
        rc = session_carry_load(ss, last, &carry, err);
    if (rc == VC_OK)
        rc = session_carry_order(&carry, &rs, &order, &n, err);
    uint64_t *bytes = rc == VC_OK ? calloc(n + 1, sizeof *bytes) : NULL;
    char **keys = rc == VC_OK ? calloc(n + 1, sizeof *keys) : NULL;
    if (rc == VC_OK && (!bytes || !keys))
        rc = oom(err);
    for (size_t i = 0; rc == VC_OK && i < n; i++) {
        bytes[i] = rs.v[order[i]].bytes;
        if (!(keys[i] = vc_strdup(rs.v[order[i]].key)))
            rc = oom(err);
    }
    if (rc == VC_OK)
        rc = plan_shards(bytes, n, carry.samples_per_shard, carry.shard_bytes, &starts, &n_shards,
                         err);
    if (rc == VC_OK)
        rc = plan_unique_keys(keys, n, err);
    for (size_t k = 0; rc == VC_OK && k < n_shards; k++)
        rc = write_slice(ss, &rs, order, keys, k, starts[k], starts[k + 1], err);
    if (rc == VC_OK) {
        cJSON *doc = manifest_plan_new(ss->spec->hash, starts, n_shards, carry.report);
        char *path = session_work_path(ss, "plan.json");
        rc = doc && path ? commit_write_json(path, doc, false, err) : oom(err);
        cJSON_Delete(doc);
        free(path);
    }
    for (size_t i = 0; keys && i < n; i++)
        free(keys[i]);
    free(keys);
    free(bytes);
    free(order);
    free(starts);
    session_carry_free(&carry);
    session_recs_free(ss, &rs);
    return rc;
}
