/* phase_plan: shard cuts, keys and slices.  The slices file is written
 * before plan.json, so a committed plan always has all of its slices. */
#include "phase_plan.h"

#include "core/vc_mem.h"
#include "core/vc_utf8.h"
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

static char *slices_path(const struct session *ss)
{
    return session_work_path(ss, "plan-slices.bin");
}

enum vc_status phase_plan_slice(const struct session *ss, size_t shard, cJSON **doc,
                                struct vc_err *err)
{
    char *path = slices_path(ss);
    uint8_t *text = NULL;
    size_t n = 0;
    *doc = NULL;
    enum vc_status rc = path ? spill_index_read(path, shard, &text, &n, err) : oom(err);
    if (rc == VC_OK)
        *doc = cJSON_ParseWithLength((const char *)text, n);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(*doc, "spec_hash");
    if (rc == VC_OK && !(cJSON_IsString(h) && !strcmp(h->valuestring, ss->spec->hash)))
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error,
                        "%s: shard %zu's slice is malformed or names another spec", path, shard);
    if (rc != VC_OK) {
        cJSON_Delete(*doc);
        *doc = NULL;
    }
    free(text);
    free(path);
    return rc;
}

static enum vc_status add_slice(const struct session *ss, struct spill_index_writer *w,
                                const struct session_recs *rs, const size_t *order,
                                char *const *keys, size_t k, size_t begin, size_t end,
                                struct vc_err *err)
{
    cJSON *doc = manifest_slice_new(ss->spec->hash, k, begin);
    enum vc_status rc = doc ? VC_OK : oom(err);
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
    char *text = rc == VC_OK ? vc_utf8_json_print(doc, false) : NULL;
    if (rc == VC_OK)
        rc = text ? spill_index_add(w, text, strlen(text), err) : oom(err);
    free(text);
    cJSON_Delete(doc);
    return rc;
}

/* All the slices in one indexed file: one fsync for the lot, and a
 * REDUCE task reads its own part alone. */
static enum vc_status write_slices(const struct session *ss, const struct session_recs *rs,
                                   const size_t *order, char *const *keys, const size_t *starts,
                                   size_t n_shards, struct vc_err *err)
{
    char *path = slices_path(ss);
    struct spill_index_writer w;
    enum vc_status rc = path ? spill_index_open(&w, path, n_shards, err) : oom(err);
    free(path);
    VC_TRY(rc);
    for (size_t k = 0; rc == VC_OK && k < n_shards; k++)
        rc = add_slice(ss, &w, rs, order, keys, k, starts[k], starts[k + 1], err);
    enum vc_status crc = spill_index_close(&w, rc == VC_OK, err);
    return rc != VC_OK ? rc : crc;
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
    if (rc == VC_OK)
        rc = write_slices(ss, &rs, order, keys, starts, n_shards, err);
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
