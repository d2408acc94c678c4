/* The executor's contract with stages (stages/stage.h), through stages
 * defined here only (not in the product's table), spliced into a parsed
 * spec between ingest and write:
 *
 *   t_sig    a global stage built like dedup: its map hook writes each
 *            unit's signatures (value mod 5) to a side file, two reduce
 *            parts (even and odd signatures) read every unit's file and
 *            write the duplicates they find, its plan hook marks them;
 *   t_model  a STAGE_CAP_MODEL stage after it: map_batch in batches of at
 *            most 3, rejecting values that are multiples of 7.
 *
 * Inputs are ustar files written here byte by byte (3 units of 10
 * samples "value N"), so the expected fate of every sample is arithmetic:
 * value v = 10 * unit + i is a duplicate unless it is the first of its
 * residue mod 5 (values 0..4 survive), and the model rejects 0. */
#include "vc_test.h"

#include "core/vc_fs.h"
#include "core/vc_mem.h"
#include "pipeline/exec.h"
#include "pipeline/outdir.h"
#include "pipeline/phase_finish.h"
#include "pipeline/phase_global.h"
#include "pipeline/phase_map.h"
#include "pipeline/phase_plan.h"
#include "pipeline/phase_reduce.h"
#include "pipeline/session.h"
#include "pipeline/spec.h"
#include "pipeline/spill.h"
#include "stages/wds_read.h"

#include <archive.h>
#include <archive_entry.h>
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { UNITS = 3, PER_UNIT = 10, RESIDUES = 5 };

static atomic_int n_map, n_reduce, n_batch_calls, max_batch, in_batch, max_in_batch;
static atomic_int model_saw[UNITS * PER_UNIT];

/* ---- a ustar writer of our own (independent of stages/wds_write.c) --- */

static void tar_member(FILE *f, const char *name, const char *data)
{
    unsigned char h[512] = { 0 };
    size_t n = strlen(data);
    snprintf((char *)h, 100, "%s", name);
    snprintf((char *)h + 100, 8, "%07o", 0644);
    snprintf((char *)h + 108, 8, "%07o", 0);
    snprintf((char *)h + 116, 8, "%07o", 0);
    snprintf((char *)h + 124, 12, "%011o", (unsigned)n);
    snprintf((char *)h + 136, 12, "%011o", 0);
    memset(h + 148, ' ', 8);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    fwrite(h, 1, 512, f);
    fwrite(data, 1, n, f);
    static const unsigned char zeros[512];
    fwrite(zeros, 1, (512 - n % 512) % 512, f);
}

static void make_inputs(const char *dir)
{
    for (int u = 0; u < UNITS; u++) {
        char path[4200], name[64], text[64];
        snprintf(path, sizeof path, "%s/in-%d.tar", dir, u);
        FILE *f = fopen(path, "wb");
        for (int i = 0; i < PER_UNIT; i++) {
            snprintf(name, sizeof name, "k%02d.txt", 10 * u + i);
            snprintf(text, sizeof text, "value %d", 10 * u + i);
            tar_member(f, name, text);
        }
        static const unsigned char end[1024];
        fwrite(end, 1, sizeof end, f);
        fclose(f);
    }
}

static int sample_value(const struct sample *s)
{
    const struct sample_field *f = sample_field_get(s, "txt");
    char buf[32] = { 0 };
    memcpy(buf, f->data, f->size < 31 ? f->size : 31);
    return atoi(buf + 6);
}

/* ---- t_sig ----------------------------------------------------------- */

/* Side file per unit: per sample, its index and value (two ints). */
static enum vc_status sig_begin(void *state, struct stage_task_ctx *ctx, struct vc_err *err)
{
    (void)state;
    ctx->task_state = calloc(2 * PER_UNIT + 1, sizeof(int));
    return ctx->task_state ? VC_OK : vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "t");
}

static enum vc_status sig_map(void *state, struct sample *s, struct stage_task_ctx *ctx,
                              struct vc_err *err)
{
    (void)state;
    (void)err;
    int *v = ctx->task_state;
    v[1 + 2 * v[0]] = (int)s->src_index;
    v[2 + 2 * v[0]] = sample_value(s);
    v[0]++;
    n_map++;
    return VC_OK;
}

static enum vc_status sig_end(void *state, struct stage_task_ctx *ctx, struct vc_err *err)
{
    (void)state;
    char path[4096];
    int *v = ctx->task_state;
    stage_work_path(path, sizeof path, ctx->run, "t_sig", "sig", ctx->unit);
    enum vc_status rc = vc_fs_write_atomic(path, v, (size_t)(1 + 2 * v[0]) * sizeof(int), err);
    free(v);
    ctx->task_state = NULL;
    return rc;
}

static size_t sig_parts(void *state, const struct stage_ctx *ctx)
{
    (void)state;
    CHECK_INT(ctx->n_units, UNITS);
    return 2;
}

/* Part p: the signatures of parity p; the first (unit, index) of each
 * residue is kept, later ones are written as (unit, index, kept unit,
 * kept index). */
static enum vc_status sig_reduce(void *state, const struct stage_ctx *ctx, size_t part,
                                 struct vc_err *err)
{
    (void)state;
    n_reduce++;
    int first[RESIDUES][2], seen[RESIDUES] = { 0 }, out[4 * UNITS * PER_UNIT + 1], n = 0;
    for (size_t u = 0; u < ctx->n_units; u++) {
        char path[4096];
        stage_work_path(path, sizeof path, ctx, "t_sig", "sig", u);
        char *data;
        size_t size;
        VC_TRY(vc_fs_read_file(path, 1 << 20, &data, &size, err));
        const int *v = (const int *)data;
        for (int i = 0; i < v[0]; i++) {
            int idx = v[1 + 2 * i], r = v[2 + 2 * i] % RESIDUES;
            if (r % 2 != (int)part)
                continue;
            if (!seen[r]++) {
                first[r][0] = (int)u;
                first[r][1] = idx;
                continue;
            }
            int *o = &out[1 + 4 * n++];
            o[0] = (int)u, o[1] = idx, o[2] = first[r][0], o[3] = first[r][1];
        }
        free(data);
    }
    out[0] = n;
    char path[4096];
    stage_work_path(path, sizeof path, ctx, "t_sig", "dups", part);
    return vc_fs_write_atomic(path, out, (size_t)(1 + 4 * n) * sizeof(int), err);
}

/* Both parts' duplicates: (unit, index, kept unit, kept index) each. */
static enum vc_status read_dups(const struct stage_ctx *run, int (*dups)[4], int *n,
                                struct vc_err *err)
{
    *n = 0;
    for (size_t part = 0; part < 2; part++) {
        char path[4096];
        stage_work_path(path, sizeof path, run, "t_sig", "dups", part);
        char *data;
        size_t size;
        VC_TRY(vc_fs_read_file(path, 1 << 20, &data, &size, err));
        const int *v = (const int *)data;
        for (int i = 0; i < v[0]; i++)
            memcpy(dups[(*n)++], &v[1 + 4 * i], sizeof dups[0]);
        free(data);
    }
    return VC_OK;
}

static enum vc_status sig_plan(void *state, struct stage_plan *plan, struct vc_err *err)
{
    (void)state;
    int dups[UNITS * PER_UNIT][4], n_dups;
    VC_TRY(read_dups(plan->run, dups, &n_dups, err));
    for (int i = 0; i < n_dups; i++) {
        const int *d = dups[i];
        size_t rec = stage_plan_find(plan, (uint32_t)d[0], (uint64_t)d[1]);
        size_t kept = stage_plan_find(plan, (uint32_t)d[2], (uint64_t)d[3]);
        CHECK(rec != SIZE_MAX && kept != SIZE_MAX);
        plan->recs[rec].state = STAGE_REC_DUPLICATE;
        plan->recs[rec].stage = "t_sig";
        plan->recs[rec].reason = VC_REASON_duplicate;
        plan->recs[rec].dup_of = kept;
    }
    size_t n = 0;
    for (size_t i = 0; i < plan->n_order; i++)
        if (plan->recs[plan->order[i]].state == STAGE_REC_KEEP)
            plan->order[n++] = plan->order[i];
    plan->n_order = n;
    return VC_OK;
}

static enum vc_status t_create(const cJSON *cfg, const struct stage_ctx *ctx, void **state,
                               struct vc_err *err)
{
    (void)cfg, (void)ctx, (void)err;
    *state = NULL;
    return VC_OK;
}

static const struct stage_ops t_sig_ops = {
    .name = "t_sig",
    .create = t_create,
    .task_begin = sig_begin,
    .map = sig_map,
    .task_end = sig_end,
    .reduce_parts = sig_parts,
    .reduce = sig_reduce,
    .plan = sig_plan,
};

/* The same decisions through plan_stream: the records come from each(),
 * the duplicates go to stage_plan_drop in (unit, index) order.  With
 * `stray` set it also removes a record no unit holds. */
static bool stray;

struct stream_keys {
    char *key[UNITS * PER_UNIT];
};

static enum vc_status stream_key(void *ctx, const struct stage_rec *r, struct vc_err *err)
{
    (void)err;
    struct stream_keys *k = ctx;
    size_t i = r->unit * PER_UNIT + r->index;
    CHECK(i < UNITS * PER_UNIT && !k->key[i]);
    if (i < UNITS * PER_UNIT && !k->key[i])
        k->key[i] = vc_strdup(r->key);
    return VC_OK;
}

static int drop_cmp(const void *a, const void *b)
{
    const int *x = a, *y = b;
    return x[0] != y[0] ? x[0] - y[0] : x[1] - y[1];
}

static enum vc_status stream_plan(void *state, struct stage_plan_stream *plan, struct vc_err *err)
{
    (void)state;
    struct stream_keys k = { { NULL } };
    int dups[UNITS * PER_UNIT][4], n = 0;
    enum vc_status rc = plan->each(plan, stream_key, &k, err);
    if (rc == VC_OK)
        rc = read_dups(plan->run, dups, &n, err);
    qsort(dups, (size_t)n, sizeof dups[0], drop_cmp);
    for (int i = 0; rc == VC_OK && i < n; i++) {
        const int *d = dups[i];
        struct stage_drop sd = { .unit = (uint32_t)d[0],
                                 .index = (uint64_t)d[1],
                                 .key = k.key[d[0] * PER_UNIT + d[1]],
                                 .state = STAGE_REC_DUPLICATE,
                                 .stage = "t_sig",
                                 .reason = VC_REASON_duplicate,
                                 .dup_unit = (uint32_t)d[2],
                                 .dup_index = (uint64_t)d[3],
                                 .dup_key = k.key[d[2] * PER_UNIT + d[3]] };
        rc = stage_plan_drop(plan, &sd, err);
    }
    struct stage_drop bad = { .unit = UNITS + 6,
                              .key = "nowhere",
                              .state = STAGE_REC_REJECTED,
                              .stage = "t_sig",
                              .reason = VC_REASON_duplicate };
    if (rc == VC_OK && stray)
        rc = stage_plan_drop(plan, &bad, err);
    for (size_t i = 0; i < UNITS * PER_UNIT; i++)
        free(k.key[i]);
    return rc;
}

/* t_sig with stream_plan for its plan hook (set by the test). */
static struct stage_ops t_stream_ops;

/* ---- t_model --------------------------------------------------------- */

static size_t model_batch(const void *state)
{
    (void)state;
    return 3;
}

static enum vc_status model_map_batch(void *state, struct sample **v, size_t n,
                                      struct stage_task_ctx *ctx, enum vc_status *st,
                                      struct stage_verdict *verdicts, struct vc_err *errs)
{
    (void)state, (void)ctx;
    int now = ++in_batch;
    if (now > max_in_batch)
        max_in_batch = now;
    n_batch_calls++;
    if ((int)n > max_batch)
        max_batch = (int)n;
    for (size_t i = 0; i < n; i++) {
        int value = sample_value(v[i]);
        model_saw[value]++;
        char note[32];
        snprintf(note, sizeof note, "seen with %zu", n);
        if (value % 7 == 0) {
            st[i] = VC_REJECT;
            verdicts[i].reason = VC_REASON_filtered;
            verdicts[i].filter = "t_model";
        } else {
            st[i] = sample_add_field(v[i], "note", note, strlen(note), &errs[i]);
        }
    }
    in_batch--;
    return VC_OK;
}

static const struct stage_ops t_model_ops = {
    .name = "t_model",
    .caps = STAGE_CAP_MODEL,
    .create = t_create,
    .map_batch = model_map_batch,
    .batch_size = model_batch,
};

/* ---- the run --------------------------------------------------------- */

/* The global stage load() splices in. */
static const struct stage_ops *sig_ops = &t_sig_ops;

static struct spec *load(const char *dir, const char *out, int threads)
{
    char text[1024];
    snprintf(text, sizeof text,
             "{\"sources\": [{\"name\": \"s\", \"type\": \"webdataset\", \"urls\": "
             "\"in-{0..2}.tar\"}], \"stages\": [{\"stage\": \"ingest\"}], "
             "\"output\": {\"dir\": \"%s\", \"samples_per_shard\": 4}}",
             out);
    struct spec_overrides ov = { .threads = threads };
    struct spec *s = NULL;
    struct vc_err err = { 0 };
    CHECK_INT(spec_parse(text, strlen(text), dir, &ov, &s, &err), VC_OK);
    if (!s)
        return NULL;
    CHECK_INT(s->n_stages, 2); /* ingest, write */
    struct spec_stage *st = calloc(4, sizeof *st);
    st[0] = s->stages[0];
    st[1] = (struct spec_stage){ .ops = sig_ops };
    st[2] = (struct spec_stage){ .ops = &t_model_ops };
    st[3] = s->stages[1];
    free(s->stages);
    s->stages = st;
    s->n_stages = 4;
    return s;
}

static void run(const char *dir, const char *out, int threads)
{
    struct spec *s = load(dir, out, threads);
    if (!s)
        return;
    struct exec_opts eo = { 0 };
    struct exec_result res;
    struct vc_err err = { 0 };
    enum vc_status rc = exec_run(s, &eo, &res, &err);
    if (rc != VC_OK)
        fprintf(stderr, "exec_run: %s\n", err.msg);
    CHECK_INT(rc, VC_OK);
    CHECK_INT(res.totals.input, UNITS * PER_UNIT);
    CHECK_INT(res.totals.duplicate, UNITS * PER_UNIT - RESIDUES);
    CHECK_INT(res.totals.rejected, 1); /* value 0 */
    CHECK_INT(res.totals.written, RESIDUES - 1);
    spec_free(s);
}

TEST(global_stage_reduce_and_model_batches)
{
    char dir[4096], out[4200];
    snprintf(dir, sizeof dir, "%s", vc_test_tmpdir());
    snprintf(out, sizeof out, "%s/out", dir);
    make_inputs(dir);
    run(dir, out, 2);
    CHECK_INT(n_map, UNITS * PER_UNIT);
    CHECK_INT(n_reduce, 2);
    /* The model saw the 5 survivors only, in batches of at most 3, one
     * batch at a time although the run has 2 threads. */
    for (int v = 0; v < UNITS * PER_UNIT; v++)
        CHECK_INT(model_saw[v], v < RESIDUES);
    CHECK(max_batch <= 3 && max_batch >= 2);
    CHECK_INT(max_in_batch, 1);
    /* Reduce parts are committed by their markers. */
    char path[4300];
    snprintf(path, sizeof path, "%s/_work/r0-t_sig-reduce-000001.json", out);
    CHECK(vc_fs_exists(path));
    /* The ledger names each duplicate's kept sample by its output key. */
    snprintf(path, sizeof path, "%s/ledger.jsonl", out);
    size_t n;
    char *text = (char *)vc_test_read_file(path, &n);
    CHECK(text && strstr(text, "\"key\":\"k07\",\"state\":\"duplicate\",\"stage\":\"t_sig\""));
    CHECK(text && strstr(text, "\"key\":\"k02\",\"out_key\":\"k02\"}"));
    free(text);
    /* A rerun redoes nothing: no map, no reduce, no batch. */
    int calls = n_batch_calls;
    run(dir, out, 2);
    CHECK_INT(n_map, UNITS * PER_UNIT);
    CHECK_INT(n_reduce, 2);
    CHECK_INT(n_batch_calls, calls);
}

static bool same_file(const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    unsigned char *da = vc_test_read_file(a, &na), *db = vc_test_read_file(b, &nb);
    bool same = da && db && na == nb && memcmp(da, db, na) == 0;
    free(da);
    free(db);
    return same;
}

static void expect_same_outputs(const char *x, const char *y)
{
    static const char *const names[] = { "ledger.jsonl", "shard-000000.tar", "shard-000000.json",
                                         "wids-index.json" };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char a[4400], b[4400];
        snprintf(a, sizeof a, "%s/%s", x, names[i]);
        snprintf(b, sizeof b, "%s/%s", y, names[i]);
        if (!same_file(a, b)) {
            fprintf(stderr, "%s differs\n", names[i]);
            vc_test_failures++;
        }
    }
}

/* A plan_stream hook makes the same run as the plan hook that holds every
 * record (the same ledger and shard bytes); a removal of a record that no
 * unit holds fails the plan step, naming it, with nothing committed. */
TEST(plan_stream_matches_plan_and_refuses_stray_drops)
{
    char dir[4096], held[4200], streamed[4200], bad[4200], path[4400];
    snprintf(dir, sizeof dir, "%s", vc_test_tmpdir());
    snprintf(held, sizeof held, "%s/held", dir);
    snprintf(streamed, sizeof streamed, "%s/streamed", dir);
    snprintf(bad, sizeof bad, "%s/bad", dir);
    make_inputs(dir);
    run(dir, held, 2);
    t_stream_ops = t_sig_ops;
    t_stream_ops.plan = NULL;
    t_stream_ops.plan_stream = stream_plan;
    sig_ops = &t_stream_ops;
    run(dir, streamed, 1);
    expect_same_outputs(held, streamed);
    stray = true;
    struct spec *s = load(dir, bad, 2);
    if (s) {
        struct exec_opts eo = { 0 };
        struct exec_result res;
        struct vc_err err = { 0 };
        CHECK_INT(exec_run(s, &eo, &res, &err), VC_EFATAL);
        CHECK(strstr(err.msg, "removed record 0 of unit 9") != NULL);
        spec_free(s);
    }
    snprintf(path, sizeof path, "%s/_work/r0-plan.json", bad);
    CHECK(!vc_fs_exists(path));
    stray = false;
    sig_ops = &t_sig_ops;
}

/* An input file that vanishes after the spec was loaded (issue 7, item 2):
 * the run fails naming it, nothing of that unit is committed, the other
 * units are; once the file is back, a rerun reads it and ends with the
 * bytes of a clean run. */
TEST(unreadable_unit_fails_uncommitted)
{
    char dir[4096], out[4200], clean[4200], path[4400], moved[4400];
    snprintf(dir, sizeof dir, "%s", vc_test_tmpdir());
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(clean, sizeof clean, "%s/clean", dir);
    make_inputs(dir);
    struct spec *s = load(dir, out, 2);
    if (!s)
        return;
    snprintf(path, sizeof path, "%s/in-1.tar", dir);
    snprintf(moved, sizeof moved, "%s/elsewhere.tar", dir);
    CHECK_INT(rename(path, moved), 0);
    struct exec_opts eo = { 0 };
    struct exec_result res;
    struct vc_err err = { 0 };
    CHECK_INT(exec_run(s, &eo, &res, &err), VC_EFATAL);
    CHECK_INT(res.units_failed, 1);
    CHECK(strstr(err.msg, "1 of 3 input units could not be read") != NULL);
    CHECK(strstr(err.msg, "in-1.tar") != NULL);
    spec_free(s);
    snprintf(path, sizeof path, "%s/_work/r0-map-000001.json", out);
    CHECK(!vc_fs_exists(path));
    snprintf(path, sizeof path, "%s/_work/r0-map-000001.bin.tmp", out);
    CHECK(!vc_fs_exists(path));
    snprintf(path, sizeof path, "%s/_work/r0-map-000002.json", out);
    CHECK(vc_fs_exists(path));
    snprintf(path, sizeof path, "%s/run.json", out);
    CHECK(!vc_fs_exists(path));
    snprintf(path, sizeof path, "%s/in-1.tar", dir);
    CHECK_INT(rename(moved, path), 0);
    run(dir, out, 2);
    run(dir, clean, 1);
    expect_same_outputs(out, clean);
}

/* The phase functions run one task at a time, every phase's tasks in
 * reverse order, as separate cluster tasks would: the same bytes as the
 * local executor.  Then a REDUCE task rewrites a shard from its slice
 * alone, with plan.json and every unit manifest gone. */
TEST(phases_run_alone)
{
    char dir[4096], out[4200], ref[4200], path[4400];
    snprintf(dir, sizeof dir, "%s", vc_test_tmpdir());
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(ref, sizeof ref, "%s/ref", dir);
    make_inputs(dir);
    run(dir, ref, 2);
    struct spec *s = load(dir, out, 1);
    if (!s)
        return;
    struct session ss;
    struct outdir od;
    struct exec_result res = { 0 };
    struct vc_err err = { 0 };
    CHECK_INT(session_init(&ss, s, NULL, &err), VC_OK);
    CHECK_INT(ss.n_rounds, 2);
    CHECK_INT(outdir_claim(s, false, &od, &err), VC_OK);
    for (size_t k = 0; k < ss.n_rounds; k++) {
        struct arena **arenas = phase_map_arenas_new(&ss, k);
        for (size_t u = ss.n_units; u-- > 0;)
            CHECK_INT(phase_map_unit(&ss, k, u, arenas, &err), VC_OK);
        phase_map_arenas_free(&ss, k, arenas);
        if (k + 1 == ss.n_rounds)
            break;
        for (size_t p = phase_global_parts(&ss, k); p-- > 0;)
            CHECK_INT(phase_global_part(&ss, k, p, &err), VC_OK);
        CHECK_INT(phase_global_plan(&ss, k, &err), VC_OK);
    }
    CHECK_INT(phase_plan(&ss, &err), VC_OK);
    struct cJSON *plan = NULL;
    size_t n_shards = 0;
    CHECK_INT(phase_plan_read(&ss, &plan, &n_shards, &err), VC_OK);
    cJSON_Delete(plan);
    CHECK_INT(n_shards, 1);
    struct arena *arena = arena_new(s->limits.max_sample_bytes);
    for (size_t k = n_shards; k-- > 0;)
        CHECK_INT(phase_reduce_shard(&ss, k, arena, &err), VC_OK);
    CHECK_INT(phase_finish(&ss, &res, &err), VC_OK);
    CHECK_INT(res.totals.written, RESIDUES - 1);
    expect_same_outputs(out, ref);

    char saved[4400];
    snprintf(path, sizeof path, "%s/shard-000000.tar", out);
    snprintf(saved, sizeof saved, "%s/saved.tar", dir);
    CHECK_INT(rename(path, saved), 0);
    snprintf(path, sizeof path, "%s/shard-000000.json", out);
    CHECK_INT(unlink(path), 0);
    snprintf(path, sizeof path, "%s/_work/plan.json", out);
    CHECK_INT(unlink(path), 0);
    for (size_t k = 0; k < ss.n_rounds; k++)
        for (size_t u = 0; u < ss.n_units; u++) {
            snprintf(path, sizeof path, "%s/_work/r%zu-map-%06zu.json", out, k, u);
            CHECK_INT(unlink(path), 0);
        }
    CHECK_INT(phase_reduce_shard(&ss, 0, arena, &err), VC_OK);
    snprintf(path, sizeof path, "%s/shard-000000.tar", out);
    CHECK(same_file(path, saved));
    arena_free(arena);
    outdir_release(&od);
    session_fini(&ss);
    spec_free(s);
}

/* The indexed file the plan's slices and the alive flags live in
 * (spill.h), byte by byte: u64 n, n + 1 u64 starts, the parts; each part
 * read alone; a damaged or incomplete file is an error naming it. */
TEST(indexed_file_parts)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/idx.bin", vc_test_tmpdir());
    static const char *const parts[] = { "hello", "", "abcd" };
    struct spill_index_writer w;
    struct vc_err err = { 0 };
    CHECK_INT(spill_index_open(&w, path, 3, &err), VC_OK);
    for (size_t i = 0; i < 3; i++)
        CHECK_INT(spill_index_add(&w, parts[i], strlen(parts[i]), &err), VC_OK);
    CHECK_INT(spill_index_close(&w, true, &err), VC_OK);
    static const uint8_t want[] = { 3, 0,   0,   0,   0,   0,   0,   0,   0,   0,  0, 0, 0,
                                    0, 0,   0,   5,   0,   0,   0,   0,   0,   0,  0, 5, 0,
                                    0, 0,   0,   0,   0,   0,   9,   0,   0,   0,  0, 0, 0,
                                    0, 'h', 'e', 'l', 'l', 'o', 'a', 'b', 'c', 'd' };
    char *got = NULL;
    size_t n = 0;
    CHECK_INT(vc_fs_read_file(path, 1 << 20, &got, &n, &err), VC_OK);
    CHECK(got && n == sizeof want && !memcmp(got, want, n));
    for (size_t i = 0; i < 3; i++) {
        uint8_t *part = NULL;
        size_t len = 0;
        CHECK_INT(spill_index_read(path, i, &part, &len, &err), VC_OK);
        CHECK(part && len == strlen(parts[i]) && !strcmp((char *)part, parts[i]));
        free(part);
    }
    uint8_t *part = NULL;
    size_t len = 0;
    CHECK_INT(spill_index_read(path, 3, &part, &len, &err), VC_EFATAL);
    CHECK(strstr(err.msg, "no part 3") != NULL);
    CHECK(truncate(path, (off_t)sizeof want - 1) == 0);
    CHECK_INT(spill_index_read(path, 2, &part, &len, &err), VC_EFATAL);
    CHECK(strstr(err.msg, "shorter than its header says") != NULL && strstr(err.msg, path));
    CHECK_INT(spill_index_read(path, 0, &part, &len, &err), VC_OK);
    free(part);
    /* Fewer parts than announced: nothing replaces the file. */
    CHECK_INT(spill_index_open(&w, path, 2, &err), VC_OK);
    CHECK_INT(spill_index_add(&w, "x", 1, &err), VC_OK);
    CHECK_INT(spill_index_close(&w, true, &err), VC_EFATAL);
    CHECK(strstr(err.msg, "1 of 2 parts") != NULL);
    free(got);
    CHECK_INT(vc_fs_read_file(path, 1 << 20, &got, &n, &err), VC_OK);
    CHECK_INT(n, sizeof want - 1);
    free(got);
}

/* A spill record carries a field's cached digest to the next round (so
 * it hashes the bytes no second time) and no digest for a field without
 * one; the bytes and names read back unchanged either way. */
TEST(spill_carries_field_digest)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/digest.bin", vc_test_tmpdir());
    struct arena *a = arena_new(1 << 20);
    struct sample s;
    struct vc_err err = { 0 };
    sample_init(&s, a);
    CHECK_INT(sample_add_field(&s, "jpg", "abc", 3, &err), VC_OK);
    CHECK_INT(sample_add_field(&s, "txt", "hi", 2, &err), VC_OK);
    uint8_t want[32];
    memcpy(want, sample_field_sha256(sample_field_get(&s, "jpg")), 32);
    struct spill_writer w;
    struct spill_rec rec;
    CHECK_INT(spill_writer_open(&w, path, NULL, &err), VC_OK);
    CHECK_INT(spill_writer_add(&w, &s, NULL, &rec, &err), VC_OK);
    CHECK_INT(spill_writer_close(&w, true, &err), VC_OK);
    /* 4 + (10 + 3 + 32 + 3) + (10 + 3 + 2) + 4: the digest's 32 bytes. */
    CHECK_INT(rec.len, 71);
    sample_fini(&s);
    struct spill_reader r;
    struct sample back;
    sample_init(&back, a);
    CHECK_INT(spill_reader_open(&r, path, NULL, NULL, &err), VC_OK);
    CHECK_INT(spill_reader_load(&r, rec.off, rec.len, &back, NULL, &err), VC_OK);
    spill_reader_close(&r);
    const struct sample_field *jpg = sample_field_get(&back, "jpg");
    const struct sample_field *txt = sample_field_get(&back, "txt");
    CHECK(jpg && jpg->size == 3 && !memcmp(jpg->data, "abc", 3));
    CHECK(jpg && jpg->has_sha256 && !memcmp(jpg->sha256, want, 32));
    CHECK(txt && txt->size == 2 && !memcmp(txt->data, "hi", 2) && !txt->has_sha256);
    sample_fini(&back);
    arena_free(a);
}

/* Loading the record at rec from path (with base and src) fails, the
 * message naming `want` (and `also`, unless NULL). */
static void expect_load_fails(struct arena *a, const char *path, const char *base, const char *src,
                              const struct spill_rec *rec, const char *want, const char *also)
{
    struct spill_reader r = SPILL_READER_CLOSED;
    struct vc_err err = { 0 };
    struct sample s;
    sample_init(&s, a);
    CHECK_INT(spill_reader_open(&r, path, base, src, &err), VC_OK);
    CHECK_INT(spill_reader_load(&r, rec->off, rec->len, &s, NULL, &err), VC_EFATAL);
    CHECK(strstr(err.msg, want) != NULL && (!also || strstr(err.msg, also) != NULL));
    spill_reader_close(&r);
    sample_fini(&s);
}

/* A record written with a base links the big fields it passes on
 * unchanged (one u64 instead of the bytes), copies small and new ones, and
 * reads back the same sample through the base; without its base, or with
 * the base cut short, the load is an error naming the file. */
TEST(spill_links_unchanged_fields_to_base)
{
    char base_path[4200], path[4200];
    snprintf(base_path, sizeof base_path, "%s/base.bin", vc_test_tmpdir());
    snprintf(path, sizeof path, "%s/linked.bin", vc_test_tmpdir());
    struct arena *a = arena_new(1 << 20);
    static uint8_t pic[5000], other[6000];
    for (size_t i = 0; i < sizeof pic; i++)
        pic[i] = (uint8_t)(i * 7);
    memset(other, 'o', sizeof other);
    struct sample s;
    struct vc_err err = { 0 };
    sample_init(&s, a);
    CHECK_INT(sample_add_field(&s, "txt", "a caption", 9, &err), VC_OK);
    CHECK_INT(sample_add_field(&s, "jpg", pic, sizeof pic, &err), VC_OK);
    uint8_t want[32];
    memcpy(want, sample_field_sha256(sample_field_get(&s, "jpg")), 32);
    struct spill_writer w;
    struct spill_rec pad, rec0, rec1;
    CHECK_INT(spill_writer_open(&w, base_path, NULL, &err), VC_OK);
    CHECK_INT(spill_writer_add(&w, &s, NULL, &pad, &err), VC_OK); /* rec0 not at offset 0 */
    CHECK_INT(spill_writer_add(&w, &s, NULL, &rec0, &err), VC_OK);
    CHECK_INT(spill_writer_close(&w, true, &err), VC_OK);
    sample_fini(&s);
    /* Read it back as the last round does, change it, spill it linked. */
    struct spill_reader r = SPILL_READER_CLOSED;
    struct spill_base at;
    sample_init(&s, a);
    CHECK_INT(spill_reader_open(&r, base_path, NULL, NULL, &err), VC_OK);
    CHECK_INT(spill_reader_load(&r, rec0.off, rec0.len, &s, &at, &err), VC_OK);
    spill_reader_close(&r);
    CHECK_INT(at.off, rec0.off);
    CHECK_INT(at.len, rec0.len);
    CHECK_INT(sample_add_field(&s, "png", other, sizeof other, &err), VC_OK);
    CHECK_INT(spill_writer_open(&w, path, NULL, &err), VC_OK);
    CHECK_INT(spill_writer_add(&w, &s, &at, &rec1, &err), VC_OK);
    CHECK_INT(spill_writer_close(&w, true, &err), VC_OK);
    /* 4 + txt (10 + 3 + 9) + jpg linked (10 + 3 + 32 + 8) + png copied
     * (10 + 3 + 6000) + 4. */
    CHECK_INT(rec1.len, 4 + 22 + 53 + 6013 + 4);
    CHECK_INT(rec1.tar_bytes, rec0.tar_bytes + 512 + 6144);
    sample_fini(&s);
    sample_init(&s, a);
    CHECK_INT(spill_reader_open(&r, path, base_path, NULL, &err), VC_OK);
    CHECK_INT(spill_reader_load(&r, rec1.off, rec1.len, &s, NULL, &err), VC_OK);
    const struct sample_field *jpg = sample_field_get(&s, "jpg");
    const struct sample_field *png = sample_field_get(&s, "png");
    const struct sample_field *txt = sample_field_get(&s, "txt");
    CHECK(jpg && jpg->size == sizeof pic && !memcmp(jpg->data, pic, sizeof pic));
    CHECK(jpg && jpg->has_sha256 && !memcmp(jpg->sha256, want, 32));
    CHECK(png && png->size == sizeof other && !memcmp(png->data, other, sizeof other));
    CHECK(txt && txt->size == 9 && !memcmp(txt->data, "a caption", 9));
    spill_reader_close(&r);
    sample_fini(&s);
    /* No base named: the linked field is a bad record. */
    expect_load_fails(a, path, NULL, NULL, &rec1, "bad record", NULL);
    /* The base cut before the picture's end. */
    CHECK(truncate(base_path, (off_t)(rec0.off + rec0.len - 100)) == 0);
    expect_load_fails(a, path, base_path, NULL, &rec1, base_path, NULL);
    arena_free(a);
}

/* Writes a plain pax tar (or gzip'd) holding one sample: KEY.jpg (pic)
 * and KEY.txt, KEY over 100 bytes so the picture gets a pax header. */
static void write_tar(const char *path, const char *key, const uint8_t *pic, size_t n, bool gz)
{
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    if (gz)
        archive_write_add_filter_gzip(a);
    CHECK(archive_write_open_filename(a, path) == ARCHIVE_OK);
    const char *ext[2] = { ".jpg", ".txt" };
    const void *data[2] = { pic, "a caption" };
    size_t size[2] = { n, 9 };
    for (int i = 0; i < 2; i++) {
        char name[512];
        snprintf(name, sizeof name, "%s%s", key, ext[i]);
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, name);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, (la_int64_t)size[i]);
        CHECK(archive_write_header(a, e) == ARCHIVE_OK);
        CHECK(archive_write_data(a, data[i], size[i]) == (la_ssize_t)size[i]);
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
}

/* Round 0 links a picture read from a plain tar to that tar: the spill
 * holds 8 bytes for it, reading back gives the tar's bytes, a later round
 * links it there again, and a tar replaced in between is an error. */
TEST(spill_links_source_fields)
{
    char tar[512], gz[512], path[512], path1[512];
    snprintf(tar, sizeof tar, "%s/src.tar", vc_test_tmpdir());
    snprintf(gz, sizeof gz, "%s/src.tar.gz", vc_test_tmpdir());
    snprintf(path, sizeof path, "%s/r0-src.bin", vc_test_tmpdir());
    snprintf(path1, sizeof path1, "%s/r1-src.bin", vc_test_tmpdir());
    static uint8_t pic[9000];
    for (size_t i = 0; i < sizeof pic; i++)
        pic[i] = (uint8_t)(i * 13 + 5);
    char key[160];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = 0;
    write_tar(tar, key, pic, sizeof pic, false);
    write_tar(gz, key, pic, sizeof pic, true);
    struct arena *a = arena_new(1 << 20);
    struct vc_err err = { 0 };
    struct sample s;
    struct wds_reader *wr;
    /* Compressed: no offsets. */
    sample_init(&s, a);
    CHECK_INT(wds_reader_open(gz, NULL, &wr, &err), VC_OK);
    wds_reader_keep_offsets(wr);
    CHECK_INT(wds_reader_next(wr, &s, &err), VC_OK);
    CHECK(sample_field_get(&s, "jpg") && !sample_field_get(&s, "jpg")->src_data);
    wds_reader_close(wr);
    sample_fini(&s);
    /* Plain: the offset is where the tar file holds the bytes. */
    sample_init(&s, a);
    CHECK_INT(wds_reader_open(tar, NULL, &wr, &err), VC_OK);
    wds_reader_keep_offsets(wr);
    CHECK_INT(wds_reader_next(wr, &s, &err), VC_OK);
    struct sample_field *f = sample_field_get(&s, "jpg");
    CHECK(f && f->src_data == f->data && f->size == sizeof pic);
    static uint8_t got[sizeof pic];
    FILE *fp = fopen(tar, "rb");
    CHECK(fp && fseek(fp, (long)f->src_off, SEEK_SET) == 0 &&
          fread(got, 1, sizeof got, fp) == sizeof got && !memcmp(got, pic, sizeof pic));
    if (fp)
        fclose(fp);
    struct spill_writer w;
    struct spill_rec rec0, rec1;
    CHECK_INT(spill_writer_open(&w, path, tar, &err), VC_OK);
    CHECK_INT(spill_writer_add(&w, &s, NULL, &rec0, &err), VC_OK);
    CHECK_INT(spill_writer_close(&w, true, &err), VC_OK);
    wds_reader_close(wr);
    sample_fini(&s);
    /* 4 + jpg linked (10 + 3 + 8) + txt (10 + 3 + 9) + 4. */
    CHECK_INT(rec0.len, 4 + 21 + 22 + 4);
    /* The next round reads it back and spills it unchanged: linked again. */
    struct spill_reader r = SPILL_READER_CLOSED;
    sample_init(&s, a);
    CHECK_INT(spill_reader_open(&r, path, NULL, tar, &err), VC_OK);
    CHECK_INT(spill_reader_load(&r, rec0.off, rec0.len, &s, NULL, &err), VC_OK);
    spill_reader_close(&r);
    f = sample_field_get(&s, "jpg");
    CHECK(f && f->size == sizeof pic && !memcmp(f->data, pic, sizeof pic));
    CHECK_INT(spill_writer_open(&w, path1, tar, &err), VC_OK);
    CHECK_INT(spill_writer_add(&w, &s, NULL, &rec1, &err), VC_OK);
    /* Replaced by a stage: copied. */
    CHECK_INT(sample_set_field(&s, "jpg", pic, sizeof pic, &err), VC_OK);
    struct spill_rec rec2;
    CHECK_INT(spill_writer_add(&w, &s, NULL, &rec2, &err), VC_OK);
    CHECK_INT(spill_writer_close(&w, true, &err), VC_OK);
    sample_fini(&s);
    CHECK_INT(rec1.len, rec0.len);
    CHECK_INT(rec2.len, rec0.len - 8 + sizeof pic);
    sample_init(&s, a);
    CHECK_INT(spill_reader_open(&r, path1, NULL, tar, &err), VC_OK);
    CHECK_INT(spill_reader_load(&r, rec1.off, rec1.len, &s, NULL, &err), VC_OK);
    f = sample_field_get(&s, "jpg");
    CHECK(f && f->size == sizeof pic && !memcmp(f->data, pic, sizeof pic));
    spill_reader_close(&r);
    sample_fini(&s);
    /* No source named: a bad record. */
    expect_load_fails(a, path, NULL, NULL, &rec0, "bad record", NULL);
    /* The tar rewritten (same size, another mtime): refused, naming it. */
    struct timespec ts[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
    CHECK(utimensat(AT_FDCWD, tar, ts, 0) == 0);
    expect_load_fails(a, path, NULL, tar, &rec0, tar, "changed after a map task read it");
    arena_free(a);
}

#define TESTS(X)                                                                                   \
    X(global_stage_reduce_and_model_batches)                                                       \
    X(plan_stream_matches_plan_and_refuses_stray_drops)                                            \
    X(unreadable_unit_fails_uncommitted)                                                           \
    X(phases_run_alone)                                                                            \
    X(indexed_file_parts)                                                                          \
    X(spill_carries_field_digest)                                                                  \
    X(spill_links_unchanged_fields_to_base) X(spill_links_source_fields)
TEST_MAIN(TESTS)
