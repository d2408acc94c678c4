/* phase_finish: the ledger is a merge, unit by unit, of what each phase
 * decided about the unit's samples; one unit's manifests are in memory at
 * a time, the plan's placements (a few words per written sample) for the
 * whole run. */
#include "phase_finish.h"

#include "core/vc_buf.h"
#include "core/vc_fs.h"
#include "core/vc_mem.h"
#include "manifests/commit.h"
#include "manifests/manifest.h"
#include "outdir.h"
#include "phase_map.h"
#include "phase_plan.h"
#include "phase_reduce.h"
#include "stages/wds_write.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static enum vc_status oom(struct vc_err *err)
{
    return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
}

static char *out_path(const struct session *ss, const char *name)
{
    size_t n = strlen(ss->spec->out_dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", ss->spec->out_dir, name);
    return p;
}

/* One output position: which record went there, under which key. */
struct place {
    uint32_t unit;
    uint64_t index;
    const char *key; /* borrowed from a slice document */
};

/* One input sample's fate, from wherever it was decided. */
struct fate {
    uint64_t index;
    enum { FATE_LINE, FATE_DROP, FATE_KEPT } kind;
    const cJSON *j; /* FATE_LINE: a ledger line; FATE_DROP: a dropped entry */
};

struct finish {
    struct session *ss;
    struct exec_result *res;
    cJSON *plan;
    size_t *starts, n_shards;
    cJSON **slices, **shards; /* by shard (owned) */
    struct place *pos;        /* by output position */
    size_t n_pos;
    struct place_id *by_id; /* every position, sorted */
    cJSON **rounds;         /* round plans (owned), NULL for the last round */
    bool *links;            /* by unit: its last-round spill links to the one before */
    const cJSON **drops;    /* per round, the next dropped entry */
    struct ledger_totals *per_source;
    struct fate *fates;
    size_t n_fates, cap_fates;
    FILE *f;
    const char *tmp;
    struct vc_buf line;
};

/* A position by the record it holds, for lookups by (unit, index). */
struct place_id {
    uint32_t unit;
    uint64_t index;
    size_t pos;
};

static int id_cmp(const void *a, const void *b)
{
    const struct place_id *x = a, *y = b;
    if (x->unit != y->unit)
        return x->unit < y->unit ? -1 : 1;
    if (x->index != y->index)
        return x->index < y->index ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Reads every shard's slice and manifest. */
static enum vc_status load_plan(struct finish *fi, struct vc_err *err)
{
    struct session *ss = fi->ss;
    VC_TRY(phase_plan_read(ss, &fi->plan, &fi->n_shards, err));
    VC_TRY(manifest_plan_starts(fi->plan, &fi->starts, &fi->n_shards, err));
    size_t n = fi->starts[fi->n_shards];
    fi->slices = calloc(fi->n_shards + 1, sizeof *fi->slices);
    fi->shards = calloc(fi->n_shards + 1, sizeof *fi->shards);
    fi->pos = calloc(n + 1, sizeof *fi->pos);
    fi->by_id = calloc(n + 1, sizeof *fi->by_id);
    if (!fi->slices || !fi->shards || !fi->pos || !fi->by_id)
        return oom(err);
    for (size_t k = 0; k < fi->n_shards; k++) {
        char slice[64];
        snprintf(slice, sizeof slice, "shard %zu's slice", k);
        char *man = phase_reduce_manifest_path(ss, k);
        struct manifest_slot *slots = NULL;
        size_t ns = 0;
        enum vc_status rc = man ? phase_plan_slice(ss, k, &fi->slices[k], err) : oom(err);
        if (rc == VC_OK && !commit_valid(man, ss->spec->hash, &fi->shards[k]))
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error,
                            "shard %zu: its manifest is missing", k);
        if (rc == VC_OK)
            rc = manifest_slice_slots(fi->slices[k], slice, &slots, &ns, err);
        if (rc == VC_OK && ns != fi->starts[k + 1] - fi->starts[k])
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_json_invalid, "%s: wrong size", slice);
        for (size_t i = 0; rc == VC_OK && i < ns; i++)
            fi->pos[fi->starts[k] + i] =
                (struct place){ slots[i].unit, slots[i].index, slots[i].key };
        free(slots);
        free(man);
        VC_TRY(rc);
    }
    fi->n_pos = n;
    for (size_t i = 0; i < n; i++)
        fi->by_id[i] = (struct place_id){ fi->pos[i].unit, fi->pos[i].index, i };
    qsort(fi->by_id, n, sizeof *fi->by_id, id_cmp);
    return VC_OK;
}

/* Where (unit, index) was written first, and how many times; 0 copies when
 * it was not written. */
static uint64_t placed(const struct finish *fi, uint32_t unit, uint64_t index, size_t *first)
{
    size_t lo = 0, hi = fi->n_pos;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct place_id *p = &fi->by_id[mid];
        if (p->unit < unit || (p->unit == unit && p->index < index))
            lo = mid + 1;
        else
            hi = mid;
    }
    uint64_t copies = 0;
    for (size_t i = lo; i < fi->n_pos; i++, copies++) {
        const struct place_id *p = &fi->by_id[i];
        if (p->unit != unit || p->index != index)
            break;
    }
    if (copies)
        *first = fi->by_id[lo].pos;
    return copies;
}

static size_t shard_of(const struct finish *fi, size_t pos)
{
    size_t lo = 0, hi = fi->n_shards;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (fi->starts[mid] <= pos)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static enum vc_status write_wids(struct finish *fi, struct vc_err *err)
{
    struct wds_index_entry *e = calloc(fi->n_shards + 1, sizeof *e);
    char *path = out_path(fi->ss, OUTDIR_WIDS_NAME);
    enum vc_status rc = e && path ? VC_OK : oom(err);
    for (size_t k = 0; rc == VC_OK && k < fi->n_shards; k++) {
        struct manifest_shard m;
        manifest_shard_get(fi->shards[k], &m);
        e[k] =
            (struct wds_index_entry){ .url = m.name, .n_samples = m.samples, .filesize = m.bytes };
        fi->res->bytes_written += m.bytes;
    }
    if (rc == VC_OK)
        rc = wds_write_wids_index(path, e, fi->n_shards, err);
    free(path);
    free(e);
    return rc;
}

static enum vc_status fate_add(struct finish *fi, uint64_t index, int kind, const cJSON *j,
                               struct vc_err *err)
{
    if (fi->n_fates == fi->cap_fates) {
        size_t cap = fi->cap_fates ? 2 * fi->cap_fates : 256;
        struct fate *g = vc_realloc_array(fi->fates, cap, sizeof *g);
        if (!g)
            return oom(err);
        fi->fates = g;
        fi->cap_fates = cap;
    }
    fi->fates[fi->n_fates++] = (struct fate){ index, kind, j };
    return VC_OK;
}

static int fate_cmp(const void *a, const void *b)
{
    const struct fate *x = a, *y = b;
    return x->index < y->index ? -1 : x->index > y->index;
}

static enum vc_status emit(struct finish *fi, size_t u, const struct fate *f, struct vc_err *err)
{
    const struct spec *sp = fi->ss->spec;
    size_t source;
    const struct source_unit *su = spec_unit(sp, u, &source);
    struct ledger_entry e = { .source = sp->source_info[source].name,
                              .file = session_unit_file(fi->ss, su->file),
                              .index = f->index };
    char shard[512]; /* e.shard points here until the line is written */
    if (f->kind == FATE_LINE) {
        VC_TRY(ledger_entry_from_json(f->j, &e, err));
    } else if (f->kind == FATE_DROP) {
        struct manifest_drop d;
        manifest_drop_get(f->j, &d);
        e.key = d.key;
        e.state = strcmp(d.state, "duplicate") ? LEDGER_REJECTED : LEDGER_DUPLICATE;
        e.stage = d.stage;
        int reason = vc_reason_from_name(d.reason);
        e.reason = reason < 0 ? VC_REASON_none : (enum vc_reason)reason;
        size_t first;
        if (d.has_dup && placed(fi, d.dup_unit, d.dup_index, &first))
            e.dup_of = fi->pos[first].key;
        if (d.has_dup && d.dup_unit < fi->ss->n_units) {
            size_t dsrc;
            const struct source_unit *dsu = spec_unit(sp, d.dup_unit, &dsrc);
            e.dup_source = sp->source_info[dsrc].name;
            e.dup_file = session_unit_file(fi->ss, dsu->file);
            e.has_dup_index = true;
            e.dup_index = d.dup_index;
            e.dup_key = d.dup_key;
            e.dup_method = d.dup_method;
            e.dup_measure = d.dup_measure;
            e.dup_value = d.dup_value;
        }
    } else {
        struct manifest_kept k;
        manifest_kept_get(f->j, &k);
        size_t first = 0;
        uint64_t copies = placed(fi, (uint32_t)u, k.index, &first);
        if (!copies)
            return vc_err_set(err, VC_EFATAL, VC_REASON_none,
                              "unit %zu record %llu was kept but not planned (a bug)", u,
                              (unsigned long long)k.index);
        snprintf(shard, sizeof shard, "%s-%06zu%s", sp->prefix, shard_of(fi, first),
                 wds_compression_suffix(sp->compression));
        e.key = k.key;
        e.state = LEDGER_WRITTEN;
        e.shard = shard;
        e.out_key = fi->pos[first].key;
        e.copies = copies;
    }
    fi->line.len = 0;
    VC_TRY(ledger_append_line(&fi->line, &e, err));
    if (fwrite(fi->line.data, 1, fi->line.len, fi->f) != fi->line.len)
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", fi->tmp, strerror(errno));
    ledger_totals_add_entry(&fi->res->totals, &e);
    ledger_totals_add_entry(&fi->per_source[source], &e);
    return VC_OK;
}

/* Unit u's lines: every round's rejects and errors, every global stage's
 * drops and the written records, in index order. */
static enum vc_status ledger_unit(struct finish *fi, size_t u, struct vc_err *err)
{
    struct session *ss = fi->ss;
    fi->n_fates = 0;
    cJSON **docs = calloc(ss->n_rounds, sizeof *docs);
    enum vc_status rc = docs ? VC_OK : oom(err);
    for (size_t k = 0; rc == VC_OK && k < ss->n_rounds; k++) {
        char *man = session_work_path(ss, "r%zu-map-%06zu.json", k, u);
        if (!man || !commit_valid(man, ss->spec->hash, &docs[k]))
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error,
                            "unit %zu: its round %zu manifest is missing", u, k);
        free(man);
        for (const cJSON *j = docs[k] ? manifest_unit_lines(docs[k]) : NULL; rc == VC_OK && j;
             j = j->next)
            rc = fate_add(fi, manifest_line_index(j), FATE_LINE, j, err);
        if (k > 0 && k + 1 == ss->n_rounds && docs[k])
            fi->links[u] = manifest_unit_links(docs[k]);
        for (const cJSON *j = k + 1 == ss->n_rounds && docs[k] ? manifest_unit_kept(docs[k]) : NULL;
             rc == VC_OK && j; j = j->next) {
            struct manifest_kept kept;
            manifest_kept_get(j, &kept);
            rc = fate_add(fi, kept.index, FATE_KEPT, j, err);
        }
        for (; rc == VC_OK && fi->drops[k]; fi->drops[k] = fi->drops[k]->next) {
            struct manifest_drop d;
            manifest_drop_get(fi->drops[k], &d);
            if (d.unit != u)
                break;
            rc = fate_add(fi, d.index, FATE_DROP, fi->drops[k], err);
        }
    }
    if (rc == VC_OK)
        qsort(fi->fates, fi->n_fates, sizeof *fi->fates, fate_cmp);
    for (size_t i = 0; rc == VC_OK && i < fi->n_fates; i++)
        rc = emit(fi, u, &fi->fates[i], err);
    for (size_t k = 0; docs && k < ss->n_rounds; k++)
        cJSON_Delete(docs[k]);
    free(docs);
    return rc;
}

static enum vc_status write_ledger(struct finish *fi, struct vc_err *err)
{
    struct session *ss = fi->ss;
    char *path = out_path(ss, OUTDIR_LEDGER_NAME);
    char *tmp = out_path(ss, OUTDIR_LEDGER_NAME ".tmp");
    fi->tmp = tmp;
    fi->rounds = calloc(ss->n_rounds, sizeof *fi->rounds);
    fi->drops = calloc(ss->n_rounds, sizeof *fi->drops);
    fi->links = calloc(ss->n_units + 1, sizeof *fi->links);
    enum vc_status rc = path && tmp && fi->rounds && fi->drops && fi->links ? VC_OK : oom(err);
    for (size_t k = 0; rc == VC_OK && k + 1 < ss->n_rounds; k++) {
        char *man = session_work_path(ss, "r%zu-plan.json", k);
        if (!man || !commit_valid(man, ss->spec->hash, &fi->rounds[k]))
            rc =
                vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "round %zu: its plan is missing", k);
        free(man);
        if (rc == VC_OK)
            fi->drops[k] = manifest_round_drops(fi->rounds[k]);
    }
    if (rc == VC_OK && !(fi->f = fopen(tmp, "wb")))
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", tmp, strerror(errno));
    memset(&fi->res->totals, 0, sizeof fi->res->totals);
    for (size_t u = 0; rc == VC_OK && u < ss->n_units; u++)
        rc = ledger_unit(fi, u, err);
    if (fi->f) {
        if (rc == VC_OK && (fflush(fi->f) != 0 || fsync(fileno(fi->f)) != 0))
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", tmp, strerror(errno));
        if (fclose(fi->f) != 0 && rc == VC_OK)
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", tmp, strerror(errno));
        if (rc == VC_OK)
            rc = vc_fs_commit_rename(tmp, path, err);
        else
            unlink(tmp); /* a rerun rewrites the whole ledger */
    }
    free(path);
    free(tmp);
    return rc;
}

/* A run whose input was mostly not there did not succeed, whatever it
 * wrote: a source that yielded no sample at all (a wrong folder, an empty
 * shard list) and an error rate above the spec's limit fail it, after the
 * ledger and the report are written so the user can see why. */
static enum vc_status check_totals(const struct finish *fi, struct vc_err *err)
{
    const struct spec *sp = fi->ss->spec;
    for (size_t i = 0; i < sp->n_sources; i++)
        if (fi->per_source[i].input == 0)
            return vc_err_set(err, VC_EFATAL, VC_REASON_bad_spec,
                              "source '%s' yielded no sample from its %zu input unit%s (first: "
                              "%s): check its paths",
                              sp->source_info[i].name, sp->sources[i].n_units,
                              sp->sources[i].n_units == 1 ? "" : "s",
                              sp->sources[i].n_units ? sp->sources[i].units[0].file : "none");
    const struct ledger_totals *t = &fi->res->totals;
    double rate = t->input ? (double)t->error / (double)t->input : 0;
    if (rate > sp->max_error_rate)
        return vc_err_set(err, VC_EFATAL, VC_REASON_error_rate,
                          "%llu of %llu input samples (%.2f%%) are errors, more than "
                          "max_error_rate %g allows: see %s/%s",
                          (unsigned long long)t->error, (unsigned long long)t->input, 100 * rate,
                          sp->max_error_rate, sp->out_dir, OUTDIR_LEDGER_NAME);
    return VC_OK;
}

static enum vc_status write_run_json(const struct finish *fi, struct vc_err *err)
{
    const struct spec *sp = fi->ss->spec;
    const struct exec_result *res = fi->res;
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
        cJSON *one = ledger_totals_to_json(&fi->per_source[i]);
        if (one)
            ledger_totals_breakdown(&fi->per_source[i], one);
        cJSON_AddItemToObject(srcs, sp->source_info[i].name, one);
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, manifest_plan_report(fi->plan))
    {
        cJSON_AddItemToObject(doc, it->string, cJSON_Duplicate(it, 1));
    }
    cJSON *outs = cJSON_AddObjectToObject(doc, "outputs");
    cJSON_AddStringToObject(outs, "dir", sp->out_dir);
    cJSON_AddNumberToObject(outs, "shards", (double)fi->n_shards);
    cJSON_AddNumberToObject(outs, "samples", (double)fi->n_pos);
    cJSON_AddNumberToObject(outs, "bytes", (double)res->bytes_written);
    cJSON *shards = cJSON_AddArrayToObject(outs, "shard_files");
    for (size_t k = 0; k < fi->n_shards; k++) {
        struct manifest_shard m;
        manifest_shard_get(fi->shards[k], &m);
        cJSON_AddItemToArray(shards, cJSON_CreateString(m.name));
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
    char *path = out_path(fi->ss, OUTDIR_RUN_NAME);
    enum vc_status rc = path && doc ? commit_write_json(path, doc, true, err) : oom(err);
    free(path);
    cJSON_Delete(doc);
    return rc;
}

static void finish_free(struct finish *fi)
{
    for (size_t k = 0; k < fi->n_shards; k++) {
        if (fi->slices)
            cJSON_Delete(fi->slices[k]);
        if (fi->shards)
            cJSON_Delete(fi->shards[k]);
    }
    for (size_t k = 0; fi->rounds && k < fi->ss->n_rounds; k++)
        cJSON_Delete(fi->rounds[k]);
    free(fi->rounds);
    free(fi->links);
    free(fi->drops);
    free(fi->slices);
    free(fi->shards);
    free(fi->pos);
    free(fi->by_id);
    free(fi->starts);
    free(fi->fates);
    free(fi->per_source);
    vc_buf_free(&fi->line);
    cJSON_Delete(fi->plan);
}

enum vc_status phase_finish(struct session *ss, struct exec_result *res, struct vc_err *err)
{
    uint64_t t0 = progress_now_ns();
    struct finish fi = { .ss = ss, .res = res };
    vc_buf_init(&fi.line, 1u << 30);
    res->bytes_written = 0;
    fi.per_source = calloc(ss->spec->n_sources + 1, sizeof *fi.per_source);
    enum vc_status rc = fi.per_source ? load_plan(&fi, err) : oom(err);
    res->n_shards = fi.n_shards;
    if (rc == VC_OK)
        rc = write_wids(&fi, err);
    if (rc == VC_OK)
        rc = write_ledger(&fi, err);
    if (rc == VC_OK && !ledger_totals_balanced(&res->totals))
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_none, "ledger totals do not add up (a bug)");
    struct stage_finish_ctx fc = { .run = &ss->ctx[ss->n_rounds - 1],
                                   .n_units = ss->n_units,
                                   .n_shards = fi.n_shards };
    for (size_t k = 0; rc == VC_OK && k < ss->spec->n_stages; k++)
        if (ss->spec->stages[k].ops->finish)
            rc = ss->spec->stages[k].ops->finish(ss->spec->stages[k].state, &fc, err);
    if (rc == VC_OK)
        rc = check_totals(&fi, err);
    res->seconds_finish = (double)(progress_now_ns() - t0) / 1e9;
    if (rc == VC_OK)
        rc = write_run_json(&fi, err);
    /* Earlier rounds' spills a crash left between a MAP task's commit and
     * its deleting them; the last round's stay with the shards' inputs,
     * and so does the one before where the last links to it. */
    for (size_t r = 0; rc == VC_OK && r + 1 < ss->n_rounds; r++)
        for (size_t u = 0; u < ss->n_units; u++)
            if (r + 2 < ss->n_rounds || !fi.links[u])
                phase_map_drop_spill(ss, r, u);
    finish_free(&fi);
    return rc;
}
