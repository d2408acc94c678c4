/* phase_reduce: copies planned samples from the last round's spills into
 * a shard.  Everything the writer checks was checked in MAP (the write
 * stage), so a writer refusal here is a bug, reported as fatal. */
#include "phase_reduce.h"

#include "core/sample.h"
#include "core/vc_mem.h"
#include "manifests/commit.h"
#include "manifests/manifest.h"
#include "phase_plan.h"
#include "spill.h"
#include "stages/wds_write.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* OUT/PREFIX-NNNNNN<suffix> (owned; NULL on OOM). */
static char *out_path(const struct spec *sp, size_t shard, const char *suffix)
{
    size_t n = strlen(sp->out_dir) + strlen(sp->prefix) + strlen(suffix) + 32;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s-%06zu%s", sp->out_dir, sp->prefix, shard, suffix);
    return p;
}

char *phase_reduce_manifest_path(const struct session *ss, size_t shard)
{
    return out_path(ss->spec, shard, ".json");
}

bool phase_reduce_done(const struct session *ss, size_t shard)
{
    char *man = phase_reduce_manifest_path(ss, shard);
    bool ok = man && commit_valid(man, ss->spec->hash, NULL);
    free(man);
    return ok;
}

/* Copies the slice's samples into w; per_source counts them. */
static enum vc_status copy_samples(struct session *ss, const struct manifest_slot *slots, size_t n,
                                   struct wds_writer *w, struct arena *arena, uint64_t *per_source,
                                   struct vc_err *err)
{
    struct spill_reader in = SPILL_READER_CLOSED;
    size_t in_unit = SIZE_MAX, last = ss->n_rounds - 1;
    enum vc_status rc = VC_OK;
    for (size_t i = 0; rc == VC_OK && i < n; i++) {
        const struct manifest_slot *s = &slots[i];
        if (s->unit != in_unit || in.fd < 0) {
            spill_reader_close(&in);
            char *bin = session_work_path(ss, "r%zu-map-%06u.bin", last, s->unit);
            /* The round before holds the bytes the last one linked. */
            char *base =
                last ? session_work_path(ss, "r%zu-map-%06u.bin", last - 1, s->unit) : NULL;
            size_t source;
            const struct source_unit *u = spec_unit(ss->spec, s->unit, &source);
            const char *src = u ? u->file : NULL;
            rc = bin && (base || !last) ? spill_reader_open(&in, bin, base, src, err)
                                        : vc_err_oom(err);
            free(bin);
            free(base);
            in_unit = s->unit;
            if (rc != VC_OK)
                break;
        }
        struct sample smp;
        arena_reset(arena);
        sample_init(&smp, arena);
        rc = spill_reader_load(&in, s->off, s->len, &smp, NULL, err);
        smp.key = s->key;
        for (size_t k = 0; rc == VC_OK && k < ss->spec->n_stages; k++)
            if (ss->spec->stages[k].ops->keyed)
                rc = ss->spec->stages[k].ops->keyed(ss->spec->stages[k].state, &smp, err);
        if (rc == VC_OK)
            rc = wds_writer_add(w, &smp, NULL, err);
        if (rc < 0 && rc != VC_EFATAL)
            err->status = rc = VC_EFATAL;
        if (s->source < ss->spec->n_sources)
            per_source[s->source]++;
        uint64_t bytes = 0;
        for (size_t f = 0; f < smp.n_fields; f++)
            bytes += smp.fields[f].size;
        sample_fini(&smp);
        progress_add(&ss->prog, 1, bytes);
    }
    spill_reader_close(&in);
    return rc;
}

enum vc_status phase_reduce_shard(struct session *ss, size_t shard, struct arena *arena,
                                  struct vc_err *err)
{
    const struct spec *sp = ss->spec;
    const char *suffix = wds_compression_suffix(sp->compression);
    char *path = out_path(sp, shard, suffix);
    char *man = phase_reduce_manifest_path(ss, shard);
    char slice[64];
    snprintf(slice, sizeof slice, "shard %zu's slice", shard);
    uint64_t *per_source = calloc(sp->n_sources + 1, sizeof *per_source);
    const char **names = calloc(sp->n_sources + 1, sizeof *names);
    cJSON *sdoc = NULL;
    struct manifest_slot *slots = NULL;
    size_t n = 0;
    enum vc_status rc = path && man && per_source && names ? VC_OK : vc_err_oom(err);
    if (rc == VC_OK)
        rc = phase_plan_slice(ss, shard, &sdoc, err);
    if (rc == VC_OK)
        rc = manifest_slice_slots(sdoc, slice, &slots, &n, err);
    if (rc == VC_OK && n == 0)
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_json_invalid, "%s: an empty shard", slice);
    struct wds_writer *w = NULL;
    if (rc == VC_OK)
        rc = wds_writer_open(path, sp->compression, &w, err);
    if (rc == VC_OK)
        rc = copy_samples(ss, slots, n, w, arena, per_source, err);
    struct wds_shard_stats st = { 0 };
    if (w && rc == VC_OK)
        rc = wds_writer_commit(w, &st, err);
    else if (w)
        wds_writer_abort(w);
    if (rc == VC_OK) {
        for (size_t i = 0; i < sp->n_sources; i++)
            names[i] = sp->source_info[i].name;
        struct manifest_shard m = { .name = strrchr(path, '/') + 1,
                                    .sha256 = st.sha256,
                                    .first_key = slots[0].key,
                                    .last_key = slots[n - 1].key,
                                    .samples = st.n_samples,
                                    .bytes = st.n_bytes,
                                    .tar_bytes = st.n_tar_bytes };
        cJSON *doc = manifest_shard_new(sp->hash, &m, names, per_source, sp->n_sources);
        rc = doc ? commit_write_json(man, doc, true, err) : vc_err_oom(err);
        cJSON_Delete(doc);
    }
    free(slots);
    cJSON_Delete(sdoc);
    free(names);
    free(per_source);
    free(path);
    free(man);
    return rc;
}
