/* phase_finish: the ledger is a merge, unit by unit, of what each phase
 * decided about the unit's samples: the unit's ledger lines, kept records
 * and drops are read from their files twice, once to sort 24 bytes per
 * sample by input index (the unit's only table) and once to write the
 * lines in that order, and the plan's placements (every output position by the record
 * it holds) come from an external sort (extsort.h, the spec's memory_mb)
 * read along with the units, so memory does not grow with the run; only
 * the shard manifests (one per shard) stay in memory.  The global stages'
 * drops are read from their files along with the units too, and a
 * duplicate's kept record is named by its output key through two more
 * external sorts (by the kept record to meet the placements, then by the
 * duplicate to meet the ledger); the three sorts share memory_mb. */
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
#include "core/extsort.h"
#include "plan.h"
#include "stages/wds_write.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *out_path(const struct session *ss, const char *name)
{
    size_t n = strlen(ss->spec->out_dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", ss->spec->out_dir, name);
    return p;
}

/* One input sample's fate, from wherever it was decided: the line at
 * `off` of a file, src = 3 * round + kind (the order the files are read
 * in, which breaks ties between equal indexes as the files have them). */
enum { FATE_LINE, FATE_KEPT, FATE_DROP, FATE_KINDS };
struct fate {
    uint64_t index, off;
    uint32_t src;
};

struct finish {
    struct session *ss;
    struct exec_result *res;
    cJSON *plan;
    size_t *starts, n_shards;
    cJSON **shards; /* by shard (owned) */
    size_t n_pos;
    /* Every output position as (BE u32 unit, BE u64 index, BE u64
     * position, output key NUL), sorted: read along with the units. */
    struct extsort *places;
    const uint8_t *place; /* the next one, NULL at the end */
    size_t place_n;
    char *places_tmp;
    /* Each duplicate's kept record's first output key, as (BE u32 unit,
     * BE u64 index of the duplicate, key NUL), sorted: read along with the
     * units. */
    struct extsort *dupkeys;
    const uint8_t *dk; /* the next one, NULL at the end */
    size_t dk_n;
    char *dupkeys_tmp, *duprefs_tmp;
    uint64_t *n_dropped; /* per round but the last: what its plan says */
    bool *links;         /* by unit: its last-round spill links to the one before */
    /* Per round but the last, its drop file and next drop (owned). */
    struct manifest_reader *drops;
    cJSON **next_drop;
    /* Per round, its drop file again, to read the current unit's drops
     * back by offset. */
    struct manifest_reader *drop_at;
    /* The current unit's ledger lines per round and its last round's kept
     * records. */
    struct manifest_reader *lines, kept;
    struct ledger_totals *per_source;
    /* The current unit's fates: in memory up to a quarter of memory_mb,
     * beyond that in an external sort of that size (a unit of millions of
     * samples). */
    struct fate *fates;
    size_t n_fates, cap_fates;
    struct extsort *fate_sort;
    char *fates_tmp;
    FILE *f;
    const char *tmp;
    struct vc_buf line;
};

enum { PLACE_ID = 12, PLACE_HEAD = PLACE_ID + 8 };

static void place_id(uint8_t *p, uint32_t unit, uint64_t index)
{
    extsort_put_be(p, unit, 4);
    extsort_put_be(p + 4, index, 8);
}

static enum vc_status place_advance(struct finish *fi, struct vc_err *err)
{
    int got = extsort_next(fi->places, &fi->place, &fi->place_n, err);
    if (got <= 0)
        fi->place = NULL;
    return got < 0 ? (enum vc_status)got : VC_OK;
}

/* The share of memory_mb of one sort: all of it for the placements when
 * no global stage drops anything, else half, a quarter for each sort of
 * the duplicates. */
static size_t finish_budget(const struct finish *fi, unsigned divisor)
{
    return ((size_t)fi->ss->spec->memory_mb << 20) / divisor;
}

/* Reads every shard's manifest, and every slice (one at a time) into the
 * places sort. */
static enum vc_status load_plan(struct finish *fi, struct vc_err *err)
{
    struct session *ss = fi->ss;
    VC_TRY(phase_plan_read(ss, &fi->plan, &fi->n_shards, err));
    VC_TRY(manifest_plan_starts(fi->plan, &fi->starts, &fi->n_shards, err));
    fi->n_pos = fi->starts[fi->n_shards];
    fi->shards = calloc(fi->n_shards + 1, sizeof *fi->shards);
    fi->places_tmp = session_work_path(ss, "finish-places.tmp");
    if (!fi->shards || !fi->places_tmp)
        return vc_err_oom(err);
    VC_TRY(extsort_open(&fi->places, fi->places_tmp, finish_budget(fi, ss->n_rounds > 1 ? 2 : 1),
                        err));
    for (size_t k = 0; k < fi->n_shards; k++) {
        char slice[64];
        snprintf(slice, sizeof slice, "shard %zu's slice", k);
        char *man = phase_reduce_manifest_path(ss, k);
        struct manifest_slot *slots = NULL;
        size_t ns = 0;
        cJSON *sdoc = NULL;
        enum vc_status rc = man ? phase_plan_slice(ss, k, &sdoc, err) : vc_err_oom(err);
        if (rc == VC_OK && !commit_valid(man, ss->spec->hash, &fi->shards[k]))
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error,
                            "shard %zu: its manifest is missing", k);
        if (rc == VC_OK)
            rc = manifest_slice_slots(sdoc, slice, &slots, &ns, err);
        if (rc == VC_OK && ns != fi->starts[k + 1] - fi->starts[k])
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_json_invalid, "%s: wrong size", slice);
        for (size_t i = 0; rc == VC_OK && i < ns; i++) {
            uint8_t rec[PLACE_HEAD + PLAN_MAX_KEY + 1];
            size_t kl = strlen(slots[i].key);
            if (kl > PLAN_MAX_KEY) {
                rc =
                    vc_err_set(err, VC_EFATAL, VC_REASON_json_invalid, "%s: a key too long", slice);
                break;
            }
            place_id(rec, slots[i].unit, slots[i].index);
            extsort_put_be(rec + PLACE_ID, fi->starts[k] + i, 8);
            memcpy(rec + PLACE_HEAD, slots[i].key, kl + 1);
            rc = extsort_add(fi->places, rec, PLACE_HEAD + kl + 1, err);
        }
        free(slots);
        cJSON_Delete(sdoc);
        free(man);
        VC_TRY(rc);
    }
    return extsort_done(fi->places, err);
}

static enum vc_status dk_advance(struct finish *fi, struct vc_err *err)
{
    int got = extsort_next(fi->dupkeys, &fi->dk, &fi->dk_n, err);
    if (got <= 0)
        fi->dk = NULL;
    return got < 0 ? (enum vc_status)got : VC_OK;
}

/* The output key of the record that unit's record `index`, a duplicate,
 * was kept for: *key (valid until the next call) or NULL when that record
 * was not written.  Asked in (unit, index) order. */
static enum vc_status dup_of(struct finish *fi, uint32_t unit, uint64_t index, const char **key,
                             struct vc_err *err)
{
    uint8_t want[PLACE_ID];
    place_id(want, unit, index);
    *key = NULL;
    while (fi->dk && memcmp(fi->dk, want, PLACE_ID) < 0)
        VC_TRY(dk_advance(fi, err));
    if (fi->dk && !memcmp(fi->dk, want, PLACE_ID))
        *key = (const char *)fi->dk + PLACE_ID;
    return VC_OK;
}

static enum vc_status drops_open(struct finish *fi, size_t k, struct manifest_reader *rd,
                                 struct vc_err *err)
{
    char *path = session_work_path(fi->ss, "r%zu-drops.jsonl", k);
    enum vc_status rc = path ? manifest_reader_open(rd, path, "drop", err) : vc_err_oom(err);
    free(path);
    return rc;
}

/* Every duplicate of round k as (kept record, duplicate), 24 bytes, into
 * refs; the file must hold as many drops as the round's plan says. */
static enum vc_status dup_refs(struct finish *fi, size_t k, struct extsort *refs,
                               struct vc_err *err)
{
    struct manifest_reader rd;
    VC_TRY(drops_open(fi, k, &rd, err));
    enum vc_status rc = VC_OK;
    cJSON *item = NULL;
    int got;
    while (rc == VC_OK && (got = manifest_reader_next(&rd, &item, err)) != 0) {
        if (got < 0) {
            rc = (enum vc_status)got;
            break;
        }
        struct manifest_drop d;
        manifest_drop_get(item, &d);
        uint8_t rec[2 * PLACE_ID];
        place_id(rec, d.dup_unit, d.dup_index);
        place_id(rec + PLACE_ID, d.unit, d.index);
        if (d.has_dup)
            rc = extsort_add(refs, rec, sizeof rec, err);
        cJSON_Delete(item);
    }
    if (rc == VC_OK && rd.n != fi->n_dropped[k])
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error,
                        "%s holds %llu drops, its round plan says %llu", rd.path,
                        (unsigned long long)rd.n, (unsigned long long)fi->n_dropped[k]);
    manifest_reader_close(&rd);
    return rc;
}

/* The kept records the global stages' duplicates point at: their output
 * keys, found by one read of the places along with the duplicates sorted
 * by their kept record, then sorted back by duplicate. */
static enum vc_status resolve_dups(struct finish *fi, struct vc_err *err)
{
    if (fi->ss->n_rounds < 2)
        return place_advance(fi, err);
    struct extsort *refs = NULL;
    enum vc_status rc = extsort_open(&refs, fi->duprefs_tmp, finish_budget(fi, 4), err);
    if (rc == VC_OK)
        rc = extsort_open(&fi->dupkeys, fi->dupkeys_tmp, finish_budget(fi, 4), err);
    for (size_t k = 0; rc == VC_OK && k + 1 < fi->ss->n_rounds; k++)
        rc = dup_refs(fi, k, refs, err);
    if (rc == VC_OK)
        rc = extsort_done(refs, err);
    if (rc == VC_OK)
        rc = place_advance(fi, err);
    const uint8_t *r;
    size_t n;
    int got = 0;
    while (rc == VC_OK && (got = extsort_next(refs, &r, &n, err)) > 0) {
        while (rc == VC_OK && fi->place && memcmp(fi->place, r, PLACE_ID) < 0)
            rc = place_advance(fi, err);
        /* The first position of a record comes first: its key is the one. */
        if (rc != VC_OK || !fi->place || memcmp(fi->place, r, PLACE_ID))
            continue;
        uint8_t rec[PLACE_ID + PLAN_MAX_KEY + 1];
        size_t kl = strnlen((const char *)fi->place + PLACE_HEAD, PLAN_MAX_KEY);
        memcpy(rec, r + PLACE_ID, PLACE_ID);
        memcpy(rec + PLACE_ID, fi->place + PLACE_HEAD, kl);
        rec[PLACE_ID + kl] = 0;
        rc = extsort_add(fi->dupkeys, rec, PLACE_ID + kl + 1, err);
    }
    if (rc == VC_OK && got < 0)
        rc = (enum vc_status)got;
    extsort_close(refs);
    if (rc == VC_OK)
        rc = extsort_done(fi->dupkeys, err);
    if (rc == VC_OK)
        rc = dk_advance(fi, err);
    if (rc == VC_OK)
        rc = extsort_rewind(fi->places, err);
    return rc == VC_OK ? place_advance(fi, err) : rc;
}

/* Where unit u's record `index` was written: copies (0: not written), the
 * first position and its key (copied into key). */
static enum vc_status placed(struct finish *fi, uint32_t unit, uint64_t index, uint64_t *copies,
                             size_t *first, char *key, struct vc_err *err)
{
    uint8_t want[PLACE_ID];
    place_id(want, unit, index);
    *copies = 0;
    if (fi->place && memcmp(fi->place, want, PLACE_ID) < 0)
        return vc_err_set(err, VC_EFATAL, VC_REASON_none,
                          "unit %llu record %llu was planned but not kept (a bug)",
                          (unsigned long long)extsort_get_be(fi->place, 4),
                          (unsigned long long)extsort_get_be(fi->place + 4, 8));
    while (fi->place && !memcmp(fi->place, want, PLACE_ID)) {
        if (!(*copies)++) {
            *first = (size_t)extsort_get_be(fi->place + PLACE_ID, 8);
            snprintf(key, PLAN_MAX_KEY + 1, "%s", (const char *)fi->place + PLACE_HEAD);
        }
        VC_TRY(place_advance(fi, err));
    }
    return VC_OK;
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
    enum vc_status rc = e && path ? VC_OK : vc_err_oom(err);
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

static int fate_cmp(const void *a, const void *b)
{
    const struct fate *x = a, *y = b;
    if (x->index != y->index)
        return x->index < y->index ? -1 : 1;
    if (x->src != y->src)
        return x->src < y->src ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Moves the fates held so far into an external sort. */
static enum vc_status fates_spill(struct finish *fi, struct vc_err *err)
{
    if (!fi->fates_tmp && !(fi->fates_tmp = session_work_path(fi->ss, "finish-fates.tmp")))
        return vc_err_oom(err);
    struct extsort_opts o = { sizeof(struct fate), fate_cmp, 0 };
    VC_TRY(extsort_open_with(&fi->fate_sort, fi->fates_tmp, finish_budget(fi, 4), &o, err));
    for (size_t i = 0; i < fi->n_fates; i++)
        VC_TRY(extsort_add(fi->fate_sort, &fi->fates[i], sizeof *fi->fates, err));
    /* The sort holds them now: the array's budget is its. */
    free(fi->fates);
    fi->fates = NULL;
    fi->n_fates = fi->cap_fates = 0;
    return VC_OK;
}

static enum vc_status fate_add(struct finish *fi, uint64_t index, size_t round, int kind,
                               uint64_t off, struct vc_err *err)
{
    struct fate f = { index, off, (uint32_t)(round * FATE_KINDS + (size_t)kind) };
    if (!fi->fate_sort && (fi->n_fates + 1) * sizeof f > finish_budget(fi, 4))
        VC_TRY(fates_spill(fi, err));
    if (fi->fate_sort)
        return extsort_add(fi->fate_sort, &f, sizeof f, err);
    struct fate *g = vc_grow_array(fi->fates, &fi->cap_fates, fi->n_fates + 1, sizeof *g, 256);
    if (!g)
        return vc_err_oom(err);
    fi->fates = g;
    fi->fates[fi->n_fates++] = f;
    return VC_OK;
}

/* The line a fate names, read back (owned). */
static enum vc_status fate_read(struct finish *fi, const struct fate *f, cJSON **item,
                                struct vc_err *err)
{
    size_t k = f->src / FATE_KINDS;
    int kind = (int)(f->src % FATE_KINDS);
    struct manifest_reader *rd = kind == FATE_LINE   ? &fi->lines[k]
                                 : kind == FATE_KEPT ? &fi->kept
                                                     : &fi->drop_at[k];
    VC_TRY(manifest_reader_seek(rd, f->off, err));
    int got = manifest_reader_next(rd, item, err);
    if (got < 0)
        return (enum vc_status)got;
    if (!got)
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: ends before offset %llu",
                          rd->path, (unsigned long long)f->off);
    return VC_OK;
}

/* Writes the ledger line of unit u's sample `index`, whose fate is j. */
static enum vc_status emit_line(struct finish *fi, size_t u, unsigned kind, uint64_t index,
                                const cJSON *j, struct vc_err *err)
{
    const struct spec *sp = fi->ss->spec;
    size_t source;
    const struct source_unit *su = spec_unit(sp, u, &source);
    struct ledger_entry e = { .source = sp->source_info[source].name,
                              .file = session_unit_file(fi->ss, su->file),
                              .index = index };
    char shard[512], out_key[PLAN_MAX_KEY + 1]; /* e.shard, e.out_key point here */
    if (kind == FATE_LINE) {
        VC_TRY(ledger_entry_from_json(j, &e, err));
    } else if (kind == FATE_DROP) {
        struct manifest_drop d;
        manifest_drop_get(j, &d);
        e.key = d.key;
        e.state = strcmp(d.state, "duplicate") ? LEDGER_REJECTED : LEDGER_DUPLICATE;
        e.stage = d.stage;
        int reason = vc_reason_from_name(d.reason);
        e.reason = reason < 0 ? VC_REASON_none : (enum vc_reason)reason;
        if (d.has_dup)
            VC_TRY(dup_of(fi, d.unit, d.index, &e.dup_of, err));
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
        manifest_kept_get(j, &k);
        size_t first = 0;
        uint64_t copies;
        VC_TRY(placed(fi, (uint32_t)u, k.index, &copies, &first, out_key, err));
        if (!copies)
            return vc_err_set(err, VC_EFATAL, VC_REASON_none,
                              "unit %zu record %llu was kept but not planned (a bug)", u,
                              (unsigned long long)k.index);
        snprintf(shard, sizeof shard, "%s-%06zu%s", sp->prefix, shard_of(fi, first),
                 wds_compression_suffix(sp->compression));
        e.key = k.key;
        e.state = LEDGER_WRITTEN;
        e.shard = shard;
        e.out_key = out_key;
        e.copies = copies;
    }
    fi->line.len = 0;
    VC_TRY(ledger_append_line(&fi->line, &e, err));
    if (fwrite(fi->line.data, 1, fi->line.len, fi->f) != fi->line.len)
        return vc_err_io(err, fi->tmp);
    ledger_totals_add_entry(&fi->res->totals, &e);
    ledger_totals_add_entry(&fi->per_source[source], &e);
    return VC_OK;
}

static enum vc_status emit(struct finish *fi, size_t u, const struct fate *f, struct vc_err *err)
{
    cJSON *j = NULL;
    VC_TRY(fate_read(fi, f, &j, err));
    enum vc_status rc = emit_line(fi, u, f->src % FATE_KINDS, f->index, j, err);
    cJSON_Delete(j);
    return rc;
}

/* Round k's next drop, in place of the one before (deleted). */
static enum vc_status next_drop(struct finish *fi, size_t k, struct vc_err *err)
{
    cJSON_Delete(fi->next_drop[k]);
    fi->next_drop[k] = NULL;
    int got = manifest_reader_next(&fi->drops[k], &fi->next_drop[k], err);
    if (got <= 0)
        fi->next_drop[k] = NULL;
    return got < 0 ? (enum vc_status)got : VC_OK;
}

/* Unit u's round k: its manifest's links, its ledger lines and (last
 * round) its kept records into the fates, checked against its counts. */
static enum vc_status unit_round(struct finish *fi, size_t u, size_t k, struct vc_err *err)
{
    struct session *ss = fi->ss;
    bool last = k + 1 == ss->n_rounds;
    cJSON *doc = NULL;
    VC_TRY(session_unit_manifest(ss, k, u, &doc, err));
    struct manifest_unit_counts c;
    manifest_unit_get_counts(doc, &c);
    if (k > 0 && last)
        fi->links[u] = manifest_unit_links(doc);
    cJSON_Delete(doc);
    char *lines = session_work_path(ss, "r%zu-map-%06zu.ledger", k, u);
    char *kept = last ? session_work_path(ss, "r%zu-map-%06zu.kept", k, u) : NULL;
    enum vc_status rc = lines && (kept || !last) ? VC_OK : vc_err_oom(err);
    struct manifest_reader *rds[2] = { &fi->lines[k], last ? &fi->kept : NULL };
    const char *paths[2] = { lines, kept }, *what[2] = { "ledger line", "kept record" };
    const uint64_t want[2] = { c.n_lines, c.n_kept };
    for (int kind = FATE_LINE; rc == VC_OK && kind <= FATE_KEPT && rds[kind]; kind++) {
        struct manifest_reader *rd = rds[kind];
        rc = manifest_reader_open(rd, paths[kind], what[kind], err);
        cJSON *j = NULL;
        int got = 0;
        while (rc == VC_OK && (got = manifest_reader_next(rd, &j, err)) > 0) {
            struct manifest_kept kr = { 0 };
            if (kind == FATE_KEPT)
                manifest_kept_get(j, &kr);
            uint64_t index = kind == FATE_KEPT ? kr.index : manifest_line_index(j);
            cJSON_Delete(j);
            rc = fate_add(fi, index, k, kind, rd->off, err);
        }
        if (rc == VC_OK && got < 0)
            rc = (enum vc_status)got;
        if (rc == VC_OK && rd->n != want[kind])
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error,
                            "%s holds %llu lines, its manifest says %llu", rd->path,
                            (unsigned long long)rd->n, (unsigned long long)want[kind]);
    }
    free(lines);
    free(kept);
    return rc;
}

/* Unit u's lines: every round's rejects and errors, every global stage's
 * drops and the written records, in index order. */
static enum vc_status ledger_unit(struct finish *fi, size_t u, struct vc_err *err)
{
    struct session *ss = fi->ss;
    fi->n_fates = 0;
    enum vc_status rc = VC_OK;
    for (size_t k = 0; rc == VC_OK && k < ss->n_rounds; k++) {
        rc = unit_round(fi, u, k, err);
        while (rc == VC_OK && k + 1 < ss->n_rounds && fi->next_drop[k]) {
            struct manifest_drop d;
            manifest_drop_get(fi->next_drop[k], &d);
            if (d.unit != u)
                break;
            rc = fate_add(fi, d.index, k, FATE_DROP, fi->drops[k].off, err);
            if (rc == VC_OK)
                rc = next_drop(fi, k, err);
        }
    }
    if (rc == VC_OK && fi->fate_sort) {
        rc = extsort_done(fi->fate_sort, err);
        const uint8_t *rec;
        size_t n;
        int got = 0;
        while (rc == VC_OK && (got = extsort_next(fi->fate_sort, &rec, &n, err)) > 0) {
            struct fate f;
            memcpy(&f, rec, sizeof f);
            rc = emit(fi, u, &f, err);
        }
        if (rc == VC_OK && got < 0)
            rc = (enum vc_status)got;
    } else if (rc == VC_OK && fi->n_fates) {
        /* A unit that yielded nothing may come before any fate was
         * allocated: qsort must not get the NULL array. */
        qsort(fi->fates, fi->n_fates, sizeof *fi->fates, fate_cmp);
    }
    for (size_t i = 0; rc == VC_OK && !fi->fate_sort && i < fi->n_fates; i++)
        rc = emit(fi, u, &fi->fates[i], err);
    extsort_close(fi->fate_sort);
    fi->fate_sort = NULL;
    for (size_t k = 0; k < ss->n_rounds; k++)
        manifest_reader_close(&fi->lines[k]);
    manifest_reader_close(&fi->kept);
    return rc;
}

static enum vc_status write_ledger(struct finish *fi, struct vc_err *err)
{
    struct session *ss = fi->ss;
    char *path = out_path(ss, OUTDIR_LEDGER_NAME);
    char *tmp = out_path(ss, OUTDIR_LEDGER_NAME ".tmp");
    fi->tmp = tmp;
    fi->n_dropped = calloc(ss->n_rounds, sizeof *fi->n_dropped);
    fi->drops = calloc(ss->n_rounds, sizeof *fi->drops);
    fi->next_drop = calloc(ss->n_rounds, sizeof *fi->next_drop);
    fi->drop_at = calloc(ss->n_rounds, sizeof *fi->drop_at);
    fi->lines = calloc(ss->n_rounds, sizeof *fi->lines);
    fi->links = calloc(ss->n_units + 1, sizeof *fi->links);
    fi->dupkeys_tmp = session_work_path(ss, "finish-dupkeys.tmp");
    fi->duprefs_tmp = session_work_path(ss, "finish-duprefs.tmp");
    enum vc_status rc = path && tmp && fi->n_dropped && fi->drops && fi->next_drop && fi->drop_at &&
                                fi->lines && fi->links && fi->dupkeys_tmp && fi->duprefs_tmp
                            ? VC_OK
                            : vc_err_oom(err);
    for (size_t k = 0; rc == VC_OK && k + 1 < ss->n_rounds; k++) {
        char *man = session_work_path(ss, "r%zu-plan.json", k);
        cJSON *doc = NULL;
        if (!man || !commit_valid(man, ss->spec->hash, &doc))
            rc =
                vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "round %zu: its plan is missing", k);
        free(man);
        struct manifest_sizing sz = { 0 };
        if (rc == VC_OK)
            manifest_round_sizing(doc, &sz);
        fi->n_dropped[k] = sz.n_dropped;
        cJSON_Delete(doc);
    }
    if (rc == VC_OK)
        rc = resolve_dups(fi, err);
    for (size_t k = 0; rc == VC_OK && k + 1 < ss->n_rounds; k++)
        if ((rc = drops_open(fi, k, &fi->drops[k], err)) == VC_OK &&
            (rc = drops_open(fi, k, &fi->drop_at[k], err)) == VC_OK)
            rc = next_drop(fi, k, err);
    if (rc == VC_OK && !(fi->f = fopen(tmp, "wb")))
        rc = vc_err_io(err, tmp);
    memset(&fi->res->totals, 0, sizeof fi->res->totals);
    for (size_t u = 0; rc == VC_OK && u < ss->n_units; u++)
        rc = ledger_unit(fi, u, err);
    if (rc == VC_OK && fi->place)
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_none,
                        "unit %llu record %llu was planned but not kept (a bug)",
                        (unsigned long long)extsort_get_be(fi->place, 4),
                        (unsigned long long)extsort_get_be(fi->place + 4, 8));
    for (size_t k = 0; rc == VC_OK && k + 1 < ss->n_rounds; k++)
        if (fi->next_drop[k])
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_none,
                            "%s: a drop out of unit order after %llu lines", fi->drops[k].path,
                            (unsigned long long)fi->drops[k].n);
    if (fi->f) {
        rc = vc_fs_sync_close(fi->f, tmp, true, rc, err);
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
    size_t first = sp->n_sources, more = 0;
    /* Every empty source is named, so one rerun can fix all the paths. */
    char others[200] = "";
    for (size_t i = 0; i < sp->n_sources; i++) {
        if (fi->per_source[i].input != 0)
            continue;
        if (first == sp->n_sources) {
            first = i;
            continue;
        }
        size_t at = strlen(others);
        snprintf(others + at, sizeof others - at, "%s'%s'", more++ ? ", " : "; so did ",
                 sp->source_info[i].name);
    }
    if (first < sp->n_sources)
        return vc_err_set(err, VC_EFATAL, VC_REASON_bad_spec,
                          "source '%s' yielded no sample from its %zu input unit%s (first: "
                          "%s)%s: check %s paths",
                          sp->source_info[first].name, sp->sources[first].n_units,
                          sp->sources[first].n_units == 1 ? "" : "s",
                          sp->sources[first].n_units ? sp->sources[first].units[0].file : "none",
                          others, others[0] ? "their" : "its");
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
    enum vc_status rc = path && doc ? commit_write_json(path, doc, true, err) : vc_err_oom(err);
    free(path);
    cJSON_Delete(doc);
    return rc;
}

static void finish_free(struct finish *fi)
{
    for (size_t k = 0; fi->shards && k < fi->n_shards; k++)
        cJSON_Delete(fi->shards[k]);
    extsort_close(fi->places);
    free(fi->places_tmp);
    extsort_close(fi->fate_sort);
    free(fi->fates_tmp);
    extsort_close(fi->dupkeys);
    free(fi->dupkeys_tmp);
    free(fi->duprefs_tmp);
    for (size_t k = 0; fi->drops && k < fi->ss->n_rounds; k++) {
        cJSON_Delete(fi->next_drop ? fi->next_drop[k] : NULL);
        manifest_reader_close(&fi->drops[k]);
        if (fi->drop_at)
            manifest_reader_close(&fi->drop_at[k]);
    }
    free(fi->next_drop);
    free(fi->drop_at);
    free(fi->lines);
    free(fi->n_dropped);
    free(fi->links);
    free(fi->drops);
    free(fi->shards);
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
    enum vc_status rc = fi.per_source ? load_plan(&fi, err) : vc_err_oom(err);
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
