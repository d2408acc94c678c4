/* exec: the four phases.  Owns OUT/_work and every file it writes into
 * OUT; must never write outside OUT and never leave a partial file under
 * a final name (temp + fsync + rename everywhere).  Determinism rests on
 * three rules: a unit's outputs depend only on the unit, PLAN runs on one
 * thread in unit order, and a shard's bytes depend only on the plan.
 *
 * Spill record format (OUT/_work/map-NNNNNN.bin, private to this file):
 * per sample, u32 n_fields, then per field u16 name length, u64 size, the
 * name, the bytes; integers little-endian. */
#include "exec.h"

#include "core/sample.h"
#include "core/vc_buf.h"
#include "core/vc_fs.h"
#include "core/vc_mem.h"
#include "manifests/commit.h"
#include "plan.h"
#include "progress.h"
#include "stages/wds_write.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Field names longer than this do not fit a 100-byte member name next to
 * a key of PLAN_MAX_KEY bytes and its dot. */
#define EXEC_MAX_FIELD_NAME (WDS_MAX_MEMBER_NAME - PLAN_MAX_KEY - 1)

struct run {
    struct spec *spec;
    const struct exec_opts *opts;
    struct exec_result *res;
    size_t n_units;
    struct progress prog;
    /* PLAN products */
    cJSON **unit_docs; /* committed unit manifests, by unit */
    size_t n_recs;
    struct stage_rec *recs;
    uint64_t *rec_off, *rec_len;
    size_t *unit_first_rec; /* first rec of each unit */
    cJSON *plan_doc;        /* committed plan */
    size_t *order, n_order;
    char **keys;
    size_t *starts, n_shards;
    cJSON *shard_docs_arr; /* per-shard manifests, for FINISH */
    /* the first fatal error of a parallel phase */
    int failed;
    struct vc_err fatal;
};

static void set_fatal(struct run *r, const struct vc_err *e)
{
#pragma omp critical(exec_fatal)
    {
        if (!r->failed) {
            r->failed = 1;
            r->fatal = *e;
        }
    }
}

static double seconds_since(uint64_t t0)
{
    return (double)(progress_now_ns() - t0) / 1e9;
}

static char *path_fmt(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *path_fmt(const char *dir, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* ---- output folder ownership --------------------------------------- */

/* Files a run writes at the top of OUT (and may remove under --force). */
static bool is_run_output(const char *name)
{
    if (!strcmp(name, EXEC_LEDGER_NAME) || !strcmp(name, EXEC_RUN_NAME) ||
        !strcmp(name, EXEC_WIDS_NAME))
        return true;
    const char *dash = strrchr(name, '-');
    if (!dash)
        return false;
    for (int i = 1; i <= 6; i++)
        if (dash[i] < '0' || dash[i] > '9')
            return false;
    const char *ext = dash + 7;
    return !strcmp(ext, ".tar") || !strcmp(ext, ".tar.gz") || !strcmp(ext, ".tar.zst") ||
           !strcmp(ext, ".idx") || !strcmp(ext, ".json") || !strncmp(ext, ".tar.tmp", 8) ||
           !strcmp(ext, ".json.tmp");
}

/* Removes the files of `dir` for which keep(name) is false (all of them
 * when keep is NULL); never recurses. */
static enum vc_status remove_files(const char *dir, bool (*pick)(const char *), struct vc_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT
                   ? VC_OK
                   : vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", dir, strerror(errno));
    enum vc_status rc = VC_OK;
    struct dirent *de;
    while (rc == VC_OK && (de = readdir(d))) {
        if (de->d_name[0] == '.' || (pick && !pick(de->d_name)))
            continue;
        char *p = path_fmt(dir, "%s", de->d_name);
        struct stat st;
        if (p && lstat(p, &st) == 0 && S_ISREG(st.st_mode) && unlink(p) != 0)
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", p, strerror(errno));
        free(p);
    }
    closedir(d);
    return rc;
}

static bool dir_has_foreign(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool found = false;
    struct dirent *de;
    while (!found && (de = readdir(d)))
        found = strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, "_work");
    closedir(d);
    return found;
}

/* Claims OUT for this spec: a folder of the same spec resumes, an empty
 * one starts, anything else needs --force (which clears our files only). */
static enum vc_status claim_output(struct run *r, struct vc_err *err)
{
    struct spec *s = r->spec;
    VC_TRY(vc_fs_mkdirs(s->work_dir, err));
    char *marker = path_fmt(s->work_dir, "spec.json");
    if (!marker)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    enum vc_status rc = VC_OK;
    bool same = commit_valid(marker, s->hash, NULL);
    if (!same && (vc_fs_exists(marker) || dir_has_foreign(s->out_dir))) {
        if (!r->opts->force) {
            rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                            "%s is not empty and holds no run of this spec; pass --force to "
                            "replace the run outputs in it, or choose another --out",
                            s->out_dir);
        } else {
            rc = remove_files(s->work_dir, NULL, err);
            if (rc == VC_OK)
                rc = remove_files(s->out_dir, is_run_output, err);
        }
    }
    if (rc == VC_OK && !same) {
        cJSON *doc = cJSON_CreateObject();
        if (!doc || !cJSON_AddStringToObject(doc, "spec_hash", s->hash) ||
            !cJSON_AddItemToObject(doc, "spec", cJSON_Duplicate(s->json, 1)))
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
        if (rc == VC_OK)
            rc = commit_write_json(marker, doc, true, err);
        cJSON_Delete(doc);
    }
    free(marker);
    return rc;
}

/* ---- MAP ----------------------------------------------------------- */

struct map_task {
    struct run *r;
    uint32_t unit;
    size_t source;
    const struct source_unit *u;
    cJSON *kept, *ledger;
    FILE *spill;
    uint64_t spill_off, n_input;
    void **task_states;
};

static void log_error(struct run *r, const char *file, const char *key, const char *stage,
                      const struct vc_err *e)
{
    if (r->opts->log)
        fprintf(r->opts->log, "vlmcurate: error: %s: key '%s': %s: %s: %s\n", file, key, stage,
                vc_reason_name(e->reason), e->msg);
}

static enum vc_status ledger_add(struct map_task *t, const struct sample *s, uint64_t index,
                                 enum ledger_state state, const char *stage, const struct vc_err *e,
                                 const struct stage_verdict *v, struct vc_err *err)
{
    const struct stage_source_info *si = &t->r->spec->source_info[t->source];
    struct ledger_entry le = {
        .source = si->name,
        .file = t->u->file,
        .index = index,
        .key = s && s->orig_key ? s->orig_key : "",
        .state = state,
        .stage = stage,
        .reason = e->reason,
        .message = e->msg[0] ? e->msg : NULL,
    };
    if (v && state == LEDGER_REJECTED) {
        le.reason = v->reason ? v->reason : VC_REASON_filtered;
        le.filter = v->filter;
        le.has_score = v->has_score;
        le.score = v->score;
        le.threshold = v->threshold;
    }
    if (state == LEDGER_ERROR)
        log_error(t->r, le.file, le.key, stage, e);
    t->n_input++;
    cJSON *o = ledger_entry_to_json(&le);
    if (!o || !cJSON_AddItemToArray(t->ledger, o)) {
        cJSON_Delete(o);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    }
    return VC_OK;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Appends the sample to the spill and its record to t->kept. */
static enum vc_status spill_sample(struct map_task *t, const struct sample *s, const cJSON *extra,
                                   struct vc_err *err)
{
    uint8_t hdr[10];
    uint64_t len = 4, tar_bytes = 0;
    put_le(hdr, s->n_fields, 4);
    bool ok = fwrite(hdr, 1, 4, t->spill) == 4;
    for (size_t i = 0; ok && i < s->n_fields; i++) {
        const struct sample_field *f = &s->fields[i];
        size_t nl = strlen(f->name);
        put_le(hdr, nl, 2);
        put_le(hdr + 2, f->size, 8);
        ok = fwrite(hdr, 1, 10, t->spill) == 10 && fwrite(f->name, 1, nl, t->spill) == nl &&
             fwrite(f->data, 1, f->size, t->spill) == f->size;
        len += 10 + nl + f->size;
        tar_bytes += plan_tar_member_bytes(f->size);
    }
    if (!ok)
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "unit %u: writing the spill: %s",
                          t->unit, strerror(errno));
    cJSON *rec = cJSON_CreateObject();
    if (!rec || !cJSON_AddNumberToObject(rec, "i", (double)s->src_index) ||
        !cJSON_AddStringToObject(rec, "k", s->orig_key ? s->orig_key : "") ||
        !cJSON_AddNumberToObject(rec, "o", (double)t->spill_off) ||
        !cJSON_AddNumberToObject(rec, "n", (double)len) ||
        !cJSON_AddNumberToObject(rec, "b", (double)tar_bytes) ||
        (extra && !cJSON_AddItemToObject(rec, "x", cJSON_Duplicate(extra, 1))) ||
        !cJSON_AddItemToArray(t->kept, rec)) {
        cJSON_Delete(rec);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    }
    t->spill_off += len;
    t->n_input++;
    return VC_OK;
}

/* Field names must fit a member name next to any output key. */
static enum vc_status check_names(const struct sample *s, struct vc_err *err)
{
    for (size_t i = 0; i < s->n_fields; i++)
        if (strlen(s->fields[i].name) > EXEC_MAX_FIELD_NAME)
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_field_too_long,
                              "field name '%.40s...' is longer than %d bytes", s->fields[i].name,
                              EXEC_MAX_FIELD_NAME);
    return VC_OK;
}

/* Runs the map hooks on one sample: VC_OK (keep), or the sample's ledger
 * line is added and VC_REJECT/VC_ESAMPLE returned; VC_EFATAL stops. */
static enum vc_status map_sample(struct map_task *t, struct sample *s, struct stage_task_ctx *tcs,
                                 cJSON **extra, struct vc_err *err)
{
    const struct spec *sp = t->r->spec;
    for (size_t k = 0; k < sp->n_stages; k++) {
        const struct stage_ops *ops = sp->stages[k].ops;
        if (!ops->map)
            continue;
        struct stage_task_ctx *tc = &tcs[k];
        struct vc_err e = { 0 };
        memset(&tc->verdict, 0, sizeof tc->verdict);
        tc->extra = *extra; /* one extra object per sample, shared by the stages */
        enum vc_status rc = ops->map(sp->stages[k].state, s, tc, &e);
        *extra = tc->extra;
        tc->extra = NULL;
        if (rc == VC_OK && ops->caps & STAGE_CAP_LAST)
            rc = check_names(s, &e);
        if (rc == VC_OK)
            continue;
        if (rc == VC_EFATAL || rc == VC_EUSAGE) {
            *err = e;
            return vc_err_prefix(err, "%s: key '%s': stage '%s'", t->u->file,
                                 s->orig_key ? s->orig_key : "", ops->name);
        }
        bool reject = rc == VC_REJECT;
        VC_TRY(ledger_add(t, s, s->src_index, reject ? LEDGER_REJECTED : LEDGER_ERROR, ops->name,
                          &e, &tc->verdict, err));
        return reject ? VC_REJECT : VC_ESAMPLE;
    }
    return VC_OK;
}

static enum vc_status map_loop(struct map_task *t, void *cursor, struct arena *arena,
                               struct stage_task_ctx *tcs, struct vc_err *err)
{
    const struct spec *sp = t->r->spec;
    const struct source_ops *src = sp->sources[t->source].ops;
    uint64_t next_index = 0;
    for (;;) {
        struct sample s;
        struct vc_err e = { 0 };
        arena_reset(arena);
        sample_init(&s, arena);
        s.source = sp->source_info[t->source].name;
        s.src_file = t->u->file;
        enum vc_status rc = src->next(cursor, &s, &e);
        if (rc == VC_EOF) {
            sample_fini(&s);
            return VC_OK;
        }
        if (rc == VC_EFATAL) {
            sample_fini(&s);
            *err = e;
            return VC_EFATAL;
        }
        if (rc == VC_ESHARD) {
            /* One line for the unreadable remainder of the unit. */
            s.orig_key = NULL;
            rc = ledger_add(t, &s, next_index, LEDGER_ERROR, "read", &e, NULL, err);
            sample_fini(&s);
            return rc < 0 ? rc : VC_OK;
        }
        next_index = s.src_index + 1;
        if (rc < 0) {
            rc = ledger_add(t, &s, s.src_index, LEDGER_ERROR, "read", &e, NULL, err);
        } else {
            cJSON *extra = NULL;
            rc = map_sample(t, &s, tcs, &extra, err);
            uint64_t bytes = 0;
            for (size_t i = 0; i < s.n_fields; i++)
                bytes += s.fields[i].size;
            if (rc == VC_OK)
                rc = spill_sample(t, &s, extra, err);
            else if (rc == VC_REJECT || rc == VC_ESAMPLE)
                rc = VC_OK;
            cJSON_Delete(extra);
            progress_add(&t->r->prog, 1, bytes);
        }
        sample_fini(&s);
        if (rc < 0)
            return rc;
    }
}

static enum vc_status map_unit(struct run *r, uint32_t unit, struct arena *arena,
                               struct vc_err *err)
{
    struct spec *sp = r->spec;
    struct map_task t = { .r = r, .unit = unit };
    t.u = spec_unit(sp, unit, &t.source);
    char *bin = path_fmt(sp->work_dir, "map-%06u.bin", unit);
    char *tmp = path_fmt(sp->work_dir, "map-%06u.bin.tmp", unit);
    char *man = path_fmt(sp->work_dir, "map-%06u.json", unit);
    struct stage_task_ctx *tcs = calloc(sp->n_stages, sizeof *tcs);
    t.kept = cJSON_CreateArray();
    t.ledger = cJSON_CreateArray();
    enum vc_status rc = VC_OK;
    if (!bin || !tmp || !man || !tcs || !t.kept || !t.ledger)
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    if (rc == VC_OK && !(t.spill = fopen(tmp, "wb")))
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", tmp, strerror(errno));
    size_t begun = 0;
    for (; rc == VC_OK && begun < sp->n_stages; begun++) {
        tcs[begun] =
            (struct stage_task_ctx){ .run = &sp->ctx, .unit = unit, .unit_file = t.u->file };
        if (sp->stages[begun].ops->task_begin)
            rc = sp->stages[begun].ops->task_begin(sp->stages[begun].state, &tcs[begun], err);
    }
    void *cursor = NULL;
    if (rc == VC_OK) {
        struct vc_err e = { 0 };
        enum vc_status orc =
            sp->sources[t.source].ops->open(sp->sources[t.source].state, t.u, &cursor, &e);
        if (orc == VC_EFATAL)
            *err = e, rc = orc;
        else if (orc < 0) /* an unreadable unit is one error line */
            rc = ledger_add(&t, NULL, 0, LEDGER_ERROR, "read", &e, NULL, err);
        else
            rc = map_loop(&t, cursor, arena, tcs, err);
        if (cursor)
            sp->sources[t.source].ops->close(cursor);
    }
    for (size_t k = 0; k < begun; k++) {
        const struct stage_ops *ops = sp->stages[k].ops;
        if (ops->task_end) {
            enum vc_status erc = ops->task_end(sp->stages[k].state, &tcs[k], err);
            if (rc == VC_OK)
                rc = erc;
        }
    }
    if (t.spill) {
        if (rc == VC_OK && (fflush(t.spill) != 0 || fsync(fileno(t.spill)) != 0))
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", tmp, strerror(errno));
        fclose(t.spill);
        if (rc == VC_OK)
            rc = vc_fs_commit_rename(tmp, bin, err);
        else
            unlink(tmp);
    }
    if (rc == VC_OK) {
        cJSON *doc = cJSON_CreateObject();
        if (!doc || !cJSON_AddStringToObject(doc, "spec_hash", sp->hash) ||
            !cJSON_AddNumberToObject(doc, "unit", unit) ||
            !cJSON_AddStringToObject(doc, "file", t.u->file) ||
            !cJSON_AddNumberToObject(doc, "input", (double)t.n_input) ||
            !cJSON_AddItemToObject(doc, "kept", t.kept) ||
            (t.kept = NULL, !cJSON_AddItemToObject(doc, "ledger", t.ledger)))
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
        else
            t.ledger = NULL;
        if (rc == VC_OK)
            rc = commit_write_json(man, doc, false, err);
        cJSON_Delete(doc);
    }
    cJSON_Delete(t.kept);
    cJSON_Delete(t.ledger);
    free(tcs);
    free(bin);
    free(tmp);
    free(man);
    return rc;
}

static enum vc_status phase_map(struct run *r, struct vc_err *err)
{
    struct spec *sp = r->spec;
    size_t *pending = calloc(r->n_units ? r->n_units : 1, sizeof *pending);
    if (!pending)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    size_t n_pending = 0;
    for (size_t u = 0; u < r->n_units; u++) {
        char *man = path_fmt(sp->work_dir, "map-%06zu.json", u);
        char *bin = path_fmt(sp->work_dir, "map-%06zu.bin", u);
        if (!man || !bin || !vc_fs_exists(bin) || !commit_valid(man, sp->hash, NULL))
            pending[n_pending++] = u;
        free(man);
        free(bin);
    }
    r->res->units_skipped = r->n_units - n_pending;
    progress_begin(&r->prog, r->opts->log, "map", n_pending, sp->log_interval_s);
    r->failed = 0;
#pragma omp parallel num_threads(sp->threads)
    {
        struct arena *arena = arena_new(sp->limits.max_sample_bytes);
        if (!arena) {
            struct vc_err e;
            vc_err_set(&e, VC_EFATAL, VC_REASON_out_of_memory, "worker arena");
            set_fatal(r, &e);
        }
#pragma omp for schedule(dynamic, 1)
        for (size_t i = 0; i < n_pending; i++) {
            if (r->failed || !arena)
                continue;
            struct vc_err e = { 0 };
            if (map_unit(r, (uint32_t)pending[i], arena, &e) < 0)
                set_fatal(r, &e);
            progress_unit_done(&r->prog);
        }
        arena_free(arena);
    }
    progress_end(&r->prog);
    free(pending);
    if (r->failed) {
        *err = r->fatal;
        return VC_EFATAL;
    }
    return VC_OK;
}

/* ---- PLAN ---------------------------------------------------------- */

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static enum vc_status load_units(struct run *r, struct vc_err *err)
{
    struct spec *sp = r->spec;
    r->unit_docs = calloc(r->n_units + 1, sizeof *r->unit_docs);
    r->unit_first_rec = calloc(r->n_units + 1, sizeof *r->unit_first_rec);
    if (!r->unit_docs || !r->unit_first_rec)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    size_t n = 0;
    for (size_t u = 0; u < r->n_units; u++) {
        char *man = path_fmt(sp->work_dir, "map-%06zu.json", u);
        bool ok = man && commit_valid(man, sp->hash, &r->unit_docs[u]);
        free(man);
        if (!ok)
            return vc_err_set(err, VC_EFATAL, VC_REASON_io_error,
                              "unit %zu: its manifest vanished or changed under the run", u);
        r->unit_first_rec[u] = n;
        n += (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r->unit_docs[u], "kept"));
    }
    r->unit_first_rec[r->n_units] = n;
    r->n_recs = n;
    r->recs = calloc(n + 1, sizeof *r->recs);
    r->rec_off = calloc(n + 1, sizeof *r->rec_off);
    r->rec_len = calloc(n + 1, sizeof *r->rec_len);
    if (!r->recs || !r->rec_off || !r->rec_len)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    size_t i = 0;
    for (size_t u = 0; u < r->n_units; u++) {
        size_t source;
        spec_unit(sp, u, &source);
        const cJSON *rec;
        cJSON_ArrayForEach(rec, cJSON_GetObjectItemCaseSensitive(r->unit_docs[u], "kept"))
        {
            const cJSON *k = cJSON_GetObjectItemCaseSensitive(rec, "k");
            r->recs[i] = (struct stage_rec){
                .unit = (uint32_t)u,
                .source = (uint32_t)source,
                .index = (uint64_t)num(rec, "i"),
                .bytes = (uint64_t)num(rec, "b"),
                .key = cJSON_IsString(k) ? k->valuestring : "",
                .extra = cJSON_GetObjectItemCaseSensitive(rec, "x"),
            };
            r->rec_off[i] = (uint64_t)num(rec, "o");
            r->rec_len[i] = (uint64_t)num(rec, "n");
            i++;
        }
    }
    return VC_OK;
}

static const char *const rec_state_names[] = { "keep", "rejected", "duplicate" };

/* Static stage names for records read back from plan.json. */
static const char *stage_name_static(const char *name)
{
    if (!strcmp(name, "mix"))
        return "mix";
    const struct stage_ops *ops = stage_find(name);
    return ops ? ops->name : "plan";
}

static enum vc_status plan_load(struct run *r, cJSON *doc, struct vc_err *err)
{
    const cJSON *order = cJSON_GetObjectItemCaseSensitive(doc, "order");
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(doc, "keys");
    const cJSON *starts = cJSON_GetObjectItemCaseSensitive(doc, "starts");
    const cJSON *dropped = cJSON_GetObjectItemCaseSensitive(doc, "dropped");
    size_t n = (size_t)cJSON_GetArraySize(order), ns = (size_t)cJSON_GetArraySize(starts);
    if ((size_t)cJSON_GetArraySize(keys) != n || ns == 0 || num(doc, "n_recs") != (double)r->n_recs)
        return vc_err_set(err, VC_EFATAL, VC_REASON_json_invalid, "plan.json is inconsistent");
    r->order = calloc(n + 1, sizeof *r->order);
    r->keys = calloc(n + 1, sizeof *r->keys);
    r->starts = calloc(ns, sizeof *r->starts);
    if (!r->order || !r->keys || !r->starts)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    size_t i = 0;
    for (const cJSON *o = order->child, *k = keys->child; o && k; o = o->next, k = k->next, i++) {
        r->order[i] = (size_t)o->valuedouble;
        r->keys[i] = vc_strdup(cJSON_IsString(k) ? k->valuestring : "_");
        if (r->order[i] >= r->n_recs || !r->keys[i])
            return vc_err_set(err, VC_EFATAL, VC_REASON_json_invalid, "plan.json: bad order");
    }
    r->n_order = n;
    i = 0;
    for (const cJSON *s = starts->child; s; s = s->next)
        r->starts[i++] = (size_t)s->valuedouble;
    r->n_shards = ns - 1;
    const cJSON *d;
    cJSON_ArrayForEach(d, dropped)
    {
        size_t rec = (size_t)num(d, "rec");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(d, "state");
        const cJSON *sg = cJSON_GetObjectItemCaseSensitive(d, "stage");
        const cJSON *rs = cJSON_GetObjectItemCaseSensitive(d, "reason");
        if (rec >= r->n_recs || !cJSON_IsString(st) || !cJSON_IsString(sg) || !cJSON_IsString(rs))
            return vc_err_set(err, VC_EFATAL, VC_REASON_json_invalid, "plan.json: bad dropped");
        struct stage_rec *sr = &r->recs[rec];
        sr->state = strcmp(st->valuestring, "duplicate") ? STAGE_REC_REJECTED : STAGE_REC_DUPLICATE;
        sr->stage = stage_name_static(sg->valuestring);
        int reason = vc_reason_from_name(rs->valuestring);
        sr->reason = reason < 0 ? VC_REASON_none : (enum vc_reason)reason;
        sr->dup_of = (uint64_t)num(d, "dup_of");
    }
    r->plan_doc = doc;
    return VC_OK;
}

static enum vc_status plan_compute(struct run *r, struct vc_err *err)
{
    struct spec *sp = r->spec;
    struct stage_plan plan = {
        .recs = r->recs,
        .n_recs = r->n_recs,
        .sources = sp->source_info,
        .n_sources = sp->n_sources,
        .samples_per_shard = sp->samples_per_shard,
        .shard_bytes = sp->shard_bytes,
        .report = cJSON_CreateObject(),
    };
    plan.order = calloc(r->n_recs + 1, sizeof *plan.order);
    if (!plan.order || !plan.report) {
        free(plan.order);
        cJSON_Delete(plan.report);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    }
    for (size_t i = 0; i < r->n_recs; i++)
        plan.order[i] = i;
    plan.n_order = r->n_recs;
    enum vc_status rc = VC_OK;
    for (size_t k = 0; rc == VC_OK && k < sp->n_stages; k++)
        if (sp->stages[k].ops->plan)
            rc = sp->stages[k].ops->plan(sp->stages[k].state, &plan, err);
    /* Every record is either in the order or dropped with a reason. */
    uint8_t *in_order = calloc(r->n_recs + 1, 1);
    if (rc == VC_OK && !in_order)
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    for (size_t i = 0; rc == VC_OK && i < plan.n_order; i++)
        if (plan.order[i] >= r->n_recs)
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_none, "a plan hook wrote a bad order");
        else
            in_order[plan.order[i]] = 1;
    for (size_t i = 0; rc == VC_OK && i < r->n_recs; i++)
        if (in_order[i] != (r->recs[i].state == STAGE_REC_KEEP) ||
            (!in_order[i] && !r->recs[i].stage))
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_none,
                            "plan hooks left record %zu neither planned nor dropped", i);
    free(in_order);
    uint64_t *bytes = rc == VC_OK ? calloc(plan.n_order + 1, sizeof *bytes) : NULL;
    r->keys = rc == VC_OK ? calloc(plan.n_order + 1, sizeof *r->keys) : NULL;
    if (rc == VC_OK && (!bytes || !r->keys))
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    for (size_t i = 0; rc == VC_OK && i < plan.n_order; i++) {
        bytes[i] = r->recs[plan.order[i]].bytes;
        if (!(r->keys[i] = vc_strdup(r->recs[plan.order[i]].key)))
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    }
    r->order = plan.order;
    r->n_order = plan.n_order;
    if (rc == VC_OK)
        rc = plan_shards(bytes, plan.n_order, plan.samples_per_shard, plan.shard_bytes, &r->starts,
                         &r->n_shards, err);
    free(bytes);
    if (rc == VC_OK)
        rc = plan_unique_keys(r->keys, r->n_order, err);
    cJSON *doc = rc == VC_OK ? cJSON_CreateObject() : NULL;
    if (rc == VC_OK) {
        cJSON *order = cJSON_AddArrayToObject(doc, "order");
        cJSON *keys = cJSON_AddArrayToObject(doc, "keys");
        cJSON *starts = cJSON_AddArrayToObject(doc, "starts");
        cJSON *dropped = cJSON_AddArrayToObject(doc, "dropped");
        cJSON_AddStringToObject(doc, "spec_hash", sp->hash);
        cJSON_AddNumberToObject(doc, "n_recs", (double)r->n_recs);
        for (size_t i = 0; i < r->n_order; i++) {
            cJSON_AddItemToArray(order, cJSON_CreateNumber((double)r->order[i]));
            cJSON_AddItemToArray(keys, cJSON_CreateString(r->keys[i]));
        }
        for (size_t i = 0; i <= r->n_shards; i++)
            cJSON_AddItemToArray(starts, cJSON_CreateNumber((double)r->starts[i]));
        for (size_t i = 0; i < r->n_recs; i++) {
            const struct stage_rec *sr = &r->recs[i];
            if (sr->state == STAGE_REC_KEEP)
                continue;
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToArray(dropped, o);
            cJSON_AddNumberToObject(o, "rec", (double)i);
            cJSON_AddStringToObject(o, "state", rec_state_names[sr->state]);
            cJSON_AddStringToObject(o, "stage", sr->stage);
            cJSON_AddStringToObject(o, "reason", vc_reason_name(sr->reason));
            if (sr->state == STAGE_REC_DUPLICATE)
                cJSON_AddNumberToObject(o, "dup_of", (double)sr->dup_of);
        }
        cJSON_AddItemToObject(doc, "report", plan.report);
        plan.report = NULL;
        char *path = path_fmt(sp->work_dir, "plan.json");
        rc = path ? commit_write_json(path, doc, false, err)
                  : vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
        free(path);
    }
    cJSON_Delete(plan.report);
    r->plan_doc = doc;
    return rc;
}

static enum vc_status phase_plan(struct run *r, struct vc_err *err)
{
    VC_TRY(load_units(r, err));
    char *path = path_fmt(r->spec->work_dir, "plan.json");
    cJSON *doc = NULL;
    bool have = path && commit_valid(path, r->spec->hash, &doc);
    free(path);
    if (have)
        return plan_load(r, doc, err);
    return plan_compute(r, err);
}

/* ---- REDUCE -------------------------------------------------------- */

static char *shard_name(const struct spec *sp, size_t k)
{
    char *s = malloc(strlen(sp->prefix) + 32);
    if (s)
        sprintf(s, "%s-%06zu%s", sp->prefix, k, wds_compression_suffix(sp->compression));
    return s;
}

/* Reads record `rec` from its unit's spill into `s` (fields in the arena). */
static enum vc_status load_sample(struct run *r, size_t rec, int *fd, size_t *fd_unit,
                                  struct sample *s, struct vc_err *err)
{
    const struct spec *sp = r->spec;
    size_t unit = r->recs[rec].unit;
    if (*fd < 0 || *fd_unit != unit) {
        if (*fd >= 0)
            close(*fd);
        char *bin = path_fmt(sp->work_dir, "map-%06zu.bin", unit);
        *fd = bin ? open(bin, O_RDONLY | O_CLOEXEC) : -1;
        *fd_unit = unit;
        if (*fd < 0) {
            vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", bin ? bin : "spill",
                       strerror(errno));
            free(bin);
            return VC_EFATAL;
        }
        free(bin);
    }
    uint64_t len = r->rec_len[rec];
    uint8_t *buf = arena_alloc(s->arena, len ? len : 1);
    if (!buf)
        return vc_err_set(err, VC_EFATAL, VC_REASON_mem_cap, "record %zu exceeds the arena", rec);
    size_t got = 0;
    while (got < len) {
        ssize_t k = pread(*fd, buf + got, len - got, (off_t)(r->rec_off[rec] + got));
        if (k <= 0)
            return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "unit %zu spill: short read",
                              unit);
        got += (size_t)k;
    }
    size_t nf = len >= 4 ? (size_t)get_le(buf, 4) : 0, pos = 4;
    s->fields = arena_alloc_array(s->arena, nf ? nf : 1, sizeof *s->fields);
    if (!s->fields || len < 4)
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "unit %zu spill: bad record", unit);
    for (size_t i = 0; i < nf; i++) {
        if (pos + 10 > len)
            return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "unit %zu spill: bad record",
                              unit);
        size_t nl = (size_t)get_le(buf + pos, 2);
        uint64_t size = get_le(buf + pos + 2, 8);
        pos += 10;
        if (nl > len - pos || size > len - pos - nl)
            return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "unit %zu spill: bad record",
                              unit);
        char *name = arena_strndup(s->arena, (const char *)buf + pos, nl);
        if (!name)
            return vc_err_set(err, VC_EFATAL, VC_REASON_mem_cap, "record %zu", rec);
        s->fields[i] = (struct sample_field){ .name = name, .data = buf + pos + nl, .size = size };
        pos += nl + (size_t)size;
    }
    s->n_fields = s->cap_fields = nf;
    return VC_OK;
}

static enum vc_status reduce_shard(struct run *r, size_t k, struct arena *arena, cJSON **doc_out,
                                   struct vc_err *err)
{
    const struct spec *sp = r->spec;
    char *name = shard_name(sp, k);
    char *path = name ? path_fmt(sp->out_dir, "%s", name) : NULL;
    char *man = path_fmt(sp->out_dir, "%s-%06zu.json", sp->prefix, k);
    uint64_t *per_source = calloc(sp->n_sources + 1, sizeof *per_source);
    enum vc_status rc = VC_OK;
    if (!name || !path || !man || !per_source)
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    if (rc == VC_OK && commit_valid(man, sp->hash, doc_out)) {
#pragma omp atomic
        r->res->shards_skipped++;
        goto done;
    }
    struct wds_writer *w = NULL;
    if (rc == VC_OK)
        rc = wds_writer_open(path, sp->compression, &w, err);
    int fd = -1;
    size_t fd_unit = 0;
    uint64_t bytes_in = 0;
    for (size_t i = r->starts[k]; rc == VC_OK && i < r->starts[k + 1]; i++) {
        size_t rec = r->order[i];
        struct sample s;
        arena_reset(arena);
        sample_init(&s, arena);
        rc = load_sample(r, rec, &fd, &fd_unit, &s, err);
        s.key = r->keys[i];
        if (rc == VC_OK)
            rc = wds_writer_add(w, &s, NULL, err);
        if (rc < 0 && rc != VC_EFATAL) /* MAP checked everything the writer checks */
            err->status = rc = VC_EFATAL;
        per_source[r->recs[rec].source]++;
        bytes_in += r->recs[rec].bytes;
        sample_fini(&s);
        progress_add(&r->prog, 1, r->recs[rec].bytes);
    }
    if (fd >= 0)
        close(fd);
    struct wds_shard_stats st = { 0 };
    if (w && rc == VC_OK)
        rc = wds_writer_commit(w, &st, err);
    else if (w)
        wds_writer_abort(w);
    if (rc == VC_OK) {
        cJSON *doc = cJSON_CreateObject(), *srcs = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "spec_hash", sp->hash);
        cJSON_AddStringToObject(doc, "shard", name);
        cJSON_AddNumberToObject(doc, "samples", (double)st.n_samples);
        cJSON_AddNumberToObject(doc, "bytes", (double)st.n_bytes);
        cJSON_AddNumberToObject(doc, "tar_bytes", (double)st.n_tar_bytes);
        cJSON_AddStringToObject(doc, "sha256", st.sha256);
        cJSON_AddStringToObject(doc, "first_key", r->keys[r->starts[k]]);
        cJSON_AddStringToObject(doc, "last_key", r->keys[r->starts[k + 1] - 1]);
        for (size_t i = 0; i < sp->n_sources; i++)
            if (per_source[i])
                cJSON_AddNumberToObject(srcs, sp->source_info[i].name, (double)per_source[i]);
        cJSON_AddItemToObject(doc, "sources", srcs);
        rc = commit_write_json(man, doc, true, err);
        *doc_out = doc;
    }
done:
    free(per_source);
    free(name);
    free(path);
    free(man);
    return rc;
}

static enum vc_status phase_reduce(struct run *r, struct vc_err *err)
{
    struct spec *sp = r->spec;
    cJSON **docs = calloc(r->n_shards + 1, sizeof *docs);
    if (!docs)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    progress_begin(&r->prog, r->opts->log, "write", r->n_shards, sp->log_interval_s);
    r->failed = 0;
#pragma omp parallel num_threads(sp->threads)
    {
        struct arena *arena = arena_new(sp->limits.max_sample_bytes);
#pragma omp for schedule(dynamic, 1)
        for (size_t k = 0; k < r->n_shards; k++) {
            if (r->failed)
                continue;
            struct vc_err e = { 0 };
            if (!arena)
                vc_err_set(&e, VC_EFATAL, VC_REASON_out_of_memory, "worker arena");
            if (!arena || reduce_shard(r, k, arena, &docs[k], &e) < 0)
                set_fatal(r, &e);
            progress_unit_done(&r->prog);
        }
        arena_free(arena);
    }
    progress_end(&r->prog);
    r->shard_docs_arr = cJSON_CreateArray();
    for (size_t k = 0; k < r->n_shards; k++)
        if (docs[k])
            cJSON_AddItemToArray(r->shard_docs_arr, docs[k]);
    free(docs);
    if (r->failed) {
        *err = r->fatal;
        return VC_EFATAL;
    }
    return r->shard_docs_arr ? VC_OK
                             : vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
}

/* ---- FINISH -------------------------------------------------------- */

static enum vc_status write_wids(struct run *r, struct vc_err *err)
{
    size_t n = (size_t)cJSON_GetArraySize(r->shard_docs_arr);
    struct wds_index_entry *e = calloc(n + 1, sizeof *e);
    if (!e)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    size_t i = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, r->shard_docs_arr)
    {
        e[i].url = cJSON_GetObjectItemCaseSensitive(d, "shard")->valuestring;
        e[i].n_samples = (uint64_t)num(d, "samples");
        e[i].filesize = (uint64_t)num(d, "bytes");
        r->res->bytes_written += e[i].filesize;
        i++;
    }
    char *path = path_fmt(r->spec->out_dir, EXEC_WIDS_NAME);
    enum vc_status rc = path ? wds_write_wids_index(path, e, n, err)
                             : vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "oom");
    free(path);
    free(e);
    return rc;
}

struct placement {
    size_t first; /* position in the order of the first copy */
    uint64_t copies;
};

static size_t shard_of(const struct run *r, size_t pos)
{
    size_t lo = 0, hi = r->n_shards;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (r->starts[mid] <= pos)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static enum vc_status emit(FILE *f, const struct ledger_entry *e, struct ledger_totals *all,
                           struct ledger_totals *per_source, struct vc_buf *line,
                           struct vc_err *err)
{
    line->len = 0;
    VC_TRY(ledger_append_line(line, e, err));
    if (fwrite(line->data, 1, line->len, f) != line->len)
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "ledger: %s", strerror(errno));
    ledger_totals_add(all, e->state);
    ledger_totals_add(per_source, e->state);
    return VC_OK;
}

/* The ledger: per unit, the lines of its rejects/errors merged by index
 * with the fate of its kept records. */
static enum vc_status write_ledger(struct run *r, struct ledger_totals *per_source,
                                   struct vc_err *err)
{
    const struct spec *sp = r->spec;
    struct placement *pl = calloc(r->n_recs + 1, sizeof *pl);
    char *path = path_fmt(sp->out_dir, EXEC_LEDGER_NAME);
    char *tmp = path_fmt(sp->out_dir, EXEC_LEDGER_NAME ".tmp");
    FILE *f = tmp ? fopen(tmp, "wb") : NULL;
    struct vc_buf line;
    vc_buf_init(&line, 1u << 30);
    enum vc_status rc = VC_OK;
    if (!pl || !path || !tmp || !f)
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "ledger: %s", strerror(errno));
    for (size_t i = r->n_order; rc == VC_OK && i-- > 0;) {
        pl[r->order[i]].first = i;
        pl[r->order[i]].copies++;
    }
    struct ledger_totals *all = &r->res->totals;
    memset(all, 0, sizeof *all);
    for (size_t u = 0; rc == VC_OK && u < r->n_units; u++) {
        size_t source;
        const struct source_unit *su = spec_unit(sp, u, &source);
        const cJSON *lines = cJSON_GetObjectItemCaseSensitive(r->unit_docs[u], "ledger");
        const cJSON *lj = lines ? lines->child : NULL;
        size_t rec = r->unit_first_rec[u], end = r->unit_first_rec[u + 1];
        while (rc == VC_OK && (lj || rec < end)) {
            struct ledger_entry e;
            char shard[96]; /* e.shard points here until emit */
            if (lj && (rec >= end || num(lj, "index") < (double)r->recs[rec].index)) {
                rc = ledger_entry_from_json(lj, &e, err);
                lj = lj->next;
            } else {
                const struct stage_rec *sr = &r->recs[rec];
                memset(&e, 0, sizeof e);
                e.source = sp->source_info[source].name;
                e.file = su->file;
                e.index = sr->index;
                e.key = sr->key;
                if (sr->state == STAGE_REC_KEEP) {
                    size_t pos = pl[rec].first, k = shard_of(r, pos);
                    snprintf(shard, sizeof shard, "%s-%06zu%s", sp->prefix, k,
                             wds_compression_suffix(sp->compression));
                    e.state = LEDGER_WRITTEN;
                    e.shard = shard;
                    e.out_key = r->keys[pos];
                    e.copies = pl[rec].copies;
                } else {
                    e.state = sr->state == STAGE_REC_DUPLICATE ? LEDGER_DUPLICATE : LEDGER_REJECTED;
                    e.stage = sr->stage;
                    e.reason = sr->reason;
                    if (sr->state == STAGE_REC_DUPLICATE && sr->dup_of < r->n_recs &&
                        pl[sr->dup_of].copies)
                        e.dup_of = r->keys[pl[sr->dup_of].first];
                }
                rec++;
            }
            if (rc == VC_OK)
                rc = emit(f, &e, all, &per_source[source], &line, err);
        }
    }
    if (f) {
        if (rc == VC_OK && (fflush(f) != 0 || fsync(fileno(f)) != 0))
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", tmp, strerror(errno));
        fclose(f);
        if (rc == VC_OK)
            rc = vc_fs_commit_rename(tmp, path, err);
    }
    vc_buf_free(&line);
    free(pl);
    free(path);
    free(tmp);
    return rc;
}

static enum vc_status write_run_json(struct run *r, const struct ledger_totals *per_source,
                                     struct vc_err *err)
{
    const struct spec *sp = r->spec;
    const struct exec_result *res = r->res;
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
    for (size_t i = 0; i < sp->n_sources; i++)
        cJSON_AddItemToObject(srcs, sp->source_info[i].name, ledger_totals_to_json(&per_source[i]));
    const cJSON *report = cJSON_GetObjectItemCaseSensitive(r->plan_doc, "report");
    const cJSON *it;
    cJSON_ArrayForEach(it, report)
    {
        cJSON_AddItemToObject(doc, it->string, cJSON_Duplicate(it, 1));
    }
    cJSON *outs = cJSON_AddObjectToObject(doc, "outputs");
    cJSON_AddStringToObject(outs, "dir", sp->out_dir);
    cJSON_AddNumberToObject(outs, "shards", (double)r->n_shards);
    cJSON_AddNumberToObject(outs, "samples", (double)r->n_order);
    cJSON_AddNumberToObject(outs, "bytes", (double)res->bytes_written);
    cJSON *shards = cJSON_AddArrayToObject(outs, "shard_files");
    cJSON_ArrayForEach(it, r->shard_docs_arr)
    {
        cJSON_AddItemToArray(
            shards, cJSON_CreateString(cJSON_GetObjectItemCaseSensitive(it, "shard")->valuestring));
    }
    cJSON_AddStringToObject(outs, "ledger", EXEC_LEDGER_NAME);
    cJSON_AddStringToObject(outs, "wids_index", EXEC_WIDS_NAME);
    cJSON *resumed = cJSON_AddObjectToObject(doc, "resumed");
    cJSON_AddNumberToObject(resumed, "units_skipped", (double)res->units_skipped);
    cJSON_AddNumberToObject(resumed, "shards_skipped", (double)res->shards_skipped);
    cJSON *t = cJSON_AddObjectToObject(doc, "timings");
    cJSON_AddNumberToObject(t, "map_s", res->seconds_map);
    cJSON_AddNumberToObject(t, "plan_s", res->seconds_plan);
    cJSON_AddNumberToObject(t, "reduce_s", res->seconds_reduce);
    cJSON_AddNumberToObject(t, "finish_s", res->seconds_finish);
    char *path = path_fmt(sp->out_dir, EXEC_RUN_NAME);
    enum vc_status rc = path && doc ? commit_write_json(path, doc, true, err)
                                    : vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "oom");
    free(path);
    cJSON_Delete(doc);
    return rc;
}

static enum vc_status phase_finish(struct run *r, struct ledger_totals *per_source,
                                   struct vc_err *err)
{
    VC_TRY(write_wids(r, err));
    VC_TRY(write_ledger(r, per_source, err));
    if (!ledger_totals_balanced(&r->res->totals))
        return vc_err_set(err, VC_EFATAL, VC_REASON_none, "ledger totals do not add up (a bug)");
    struct stage_finish_ctx fc = { .run = &r->spec->ctx,
                                   .n_units = r->n_units,
                                   .n_shards = r->n_shards };
    for (size_t k = 0; k < r->spec->n_stages; k++)
        if (r->spec->stages[k].ops->finish)
            VC_TRY(r->spec->stages[k].ops->finish(r->spec->stages[k].state, &fc, err));
    return VC_OK;
}

static void run_free(struct run *r)
{
    for (size_t u = 0; r->unit_docs && u < r->n_units; u++)
        cJSON_Delete(r->unit_docs[u]);
    free(r->unit_docs);
    free(r->unit_first_rec);
    free(r->recs);
    free(r->rec_off);
    free(r->rec_len);
    free(r->order);
    for (size_t i = 0; r->keys && i < r->n_order; i++)
        free(r->keys[i]);
    free(r->keys);
    free(r->starts);
    cJSON_Delete(r->plan_doc);
    cJSON_Delete(r->shard_docs_arr);
}

enum vc_status exec_run(struct spec *spec, const struct exec_opts *opts, struct exec_result *res,
                        struct vc_err *err)
{
    struct run r = { .spec = spec, .opts = opts, .res = res };
    memset(res, 0, sizeof *res);
    if (spec->threads <= 0)
        spec->threads = omp_get_max_threads();
    r.n_units = spec_n_units(spec);
    struct ledger_totals *per_source = calloc(spec->n_sources + 1, sizeof *per_source);
    enum vc_status rc = per_source ? claim_output(&r, err)
                                   : vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "oom");
    uint64_t t0 = progress_now_ns();
    if (rc == VC_OK)
        rc = phase_map(&r, err);
    res->seconds_map = seconds_since(t0);
    t0 = progress_now_ns();
    if (rc == VC_OK)
        rc = phase_plan(&r, err);
    res->seconds_plan = seconds_since(t0);
    t0 = progress_now_ns();
    if (rc == VC_OK)
        rc = phase_reduce(&r, err);
    res->seconds_reduce = seconds_since(t0);
    t0 = progress_now_ns();
    if (rc == VC_OK)
        rc = phase_finish(&r, per_source, err);
    res->seconds_finish = seconds_since(t0);
    res->n_shards = r.n_shards;
    if (rc == VC_OK)
        rc = write_run_json(&r, per_source, err);
    free(per_source);
    run_free(&r);
    return rc;
}
