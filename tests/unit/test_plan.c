/* Planning: shard cuts, unique keys, the shuffles (permutations, seeded,
 * bounded displacement for the buffer) and the mixture (exact counts with
 * caps and epochs, proportions within binomial bounds). */
#include "vc_test.h"

#include "core/extsort.h"
#include "pipeline/plan.h"
#include "stages/st_reshard.h"
#include "stages/wds_write.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TEST(shards_by_count_and_bytes)
{
    uint64_t b[7] = { 100, 100, 100, 100, 100, 100, 100 };
    size_t *st, n;
    struct vc_err err = { 0 };
    CHECK_INT(plan_shards(b, 7, 3, 0, &st, &n, &err), VC_OK);
    CHECK_INT(n, 3); /* 3 + 3 + 1 */
    CHECK_INT(st[0], 0);
    CHECK_INT(st[1], 3);
    CHECK_INT(st[2], 6);
    CHECK_INT(st[3], 7);
    free(st);
    /* A 20480-byte target bounds the file, end blocks (1024) and padding to
     * the 10240-byte record included: two 9728-byte samples fill it
     * exactly, a third would need a 30720-byte file; a 40960-byte sample is
     * alone. */
    uint64_t c[5] = { 9728, 9728, 9728, 40960, 9728 };
    CHECK_INT(plan_shards(c, 5, 0, 20480, &st, &n, &err), VC_OK);
    CHECK_INT(n, 4);
    CHECK_INT(st[1], 2);
    CHECK_INT(st[2], 3);
    CHECK_INT(st[3], 4);
    CHECK_INT(st[4], 5);
    free(st);
    /* Two 10240-byte samples are 20480 bytes of members, but their file,
     * with the end blocks, is 30720: each is a shard of its own. */
    uint64_t d[2] = { 10240, 10240 };
    CHECK_INT(plan_shards(d, 2, 0, 20480, &st, &n, &err), VC_OK);
    CHECK_INT(n, 2);
    free(st);
    CHECK_INT(wds_tar_file_bytes(0), 10240);
    CHECK_INT(wds_tar_file_bytes(9216), 10240);
    CHECK_INT(wds_tar_file_bytes(9728), 20480);
    CHECK_INT(wds_tar_file_bytes(19456), 20480);
    CHECK_INT(plan_shards(c, 0, 10, 0, &st, &n, &err), VC_OK);
    CHECK_INT(n, 0);
    free(st);
    CHECK_INT(plan_tar_member_bytes(0), 512);
    CHECK_INT(plan_tar_member_bytes(1), 1024);
    CHECK_INT(plan_tar_member_bytes(512), 1024);
    CHECK_INT(plan_tar_member_bytes(513), 1536);
}

TEST(unique_keys)
{
    const char *in[] = { "a", "a.b", "a_b", "a", "a_1", "", "x/y" };
    char *k[7];
    for (int i = 0; i < 7; i++)
        k[i] = strdup(in[i]);
    struct vc_err err = { 0 };
    CHECK_INT(plan_unique_keys(k, 7, &err), VC_OK);
    CHECK_STR(k[0], "a");
    CHECK_STR(k[1], "a_b");
    CHECK_STR(k[2], "a_b_1");
    CHECK_STR(k[3], "a_1");
    CHECK_STR(k[4], "a_1_1");
    CHECK_STR(k[5], "_");
    CHECK_STR(k[6], "x_y");
    for (int i = 0; i < 7; i++)
        free(k[i]);
    /* Long keys are cut and still unique. */
    char *l[2] = { malloc(201), malloc(201) };
    memset(l[0], 'q', 200);
    l[0][200] = 0;
    memcpy(l[1], l[0], 201);
    CHECK_INT(plan_unique_keys(l, 2, &err), VC_OK);
    CHECK_INT(strlen(l[0]), PLAN_MAX_KEY);
    CHECK_INT(strlen(l[1]), PLAN_MAX_KEY);
    CHECK(strcmp(l[0], l[1]) != 0);
    CHECK_STR(l[1] + PLAN_MAX_KEY - 2, "_1");
    free(l[0]);
    free(l[1]);
}

static int is_permutation(const size_t *v, size_t n)
{
    unsigned char *seen = calloc(n, 1);
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        if (v[i] >= n || seen[v[i]])
            ok = 0;
        else
            seen[v[i]] = 1;
    }
    free(seen);
    return ok;
}

TEST(shuffles_are_seeded_permutations)
{
    enum { N = 1000 };
    size_t a[N], b[N], c[N];
    for (size_t i = 0; i < N; i++)
        a[i] = b[i] = c[i] = i;
    reshard_shuffle_global(a, N, 42);
    reshard_shuffle_global(b, N, 42);
    reshard_shuffle_global(c, N, 43);
    CHECK(is_permutation(a, N));
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
    size_t fixed = 0;
    for (size_t i = 0; i < N; i++)
        fixed += a[i] == i;
    CHECK(fixed < 10); /* expected 1 fixed point for a uniform permutation */

    /* A buffer of 10: an item is emitted at most... it cannot come out
     * before position i - 9 (it enters the buffer at i at the earliest
     * after 10 others), and the output is a permutation. */
    struct vc_err err = { 0 };
    for (size_t i = 0; i < N; i++)
        b[i] = i;
    CHECK_INT(reshard_shuffle_buffer(b, N, 10, 7, &err), VC_OK);
    CHECK(is_permutation(b, N));
    size_t early = 0, moved = 0;
    for (size_t pos = 0; pos < N; pos++) {
        if (b[pos] + 0 < pos && pos - b[pos] > N) /* never */
            early++;
        if (b[pos] > pos + 9) /* emitted more than 9 places early: impossible */
            early++;
        moved += b[pos] != pos;
    }
    CHECK_INT(early, 0);
    CHECK(moved > N / 2);
}

TEST(rng_below_is_uniform)
{
    struct reshard_rng r;
    reshard_rng_seed(&r, 1);
    enum { K = 6, DRAWS = 60000 };
    unsigned count[K] = { 0 };
    for (int i = 0; i < DRAWS; i++)
        count[reshard_rng_below(&r, K)]++;
    /* 10000 each, sd = sqrt(60000 * 1/6 * 5/6) = 91: 5 sd bounds */
    for (int k = 0; k < K; k++)
        CHECK(fabs((double)count[k] - 10000) < 460);
}

/* Runs the reshard plan hook over n_per[s] records of each source. */
static void run_mix(const char *cfg_text, const struct stage_source_info *src, size_t ns,
                    const size_t *n_per, struct stage_plan *plan, struct stage_rec **recs_out)
{
    size_t n = 0;
    for (size_t s = 0; s < ns; s++)
        n += n_per[s];
    struct stage_rec *recs = calloc(n, sizeof *recs);
    size_t *order = malloc(n * sizeof *order);
    size_t i = 0;
    for (size_t s = 0; s < ns; s++)
        for (size_t j = 0; j < n_per[s]; j++, i++) {
            recs[i].source = (uint32_t)s;
            recs[i].index = j;
            recs[i].key = "k";
            order[i] = i;
        }
    *plan = (struct stage_plan){ .recs = recs,
                                 .n_recs = n,
                                 .order = order,
                                 .n_order = n,
                                 .sources = src,
                                 .n_sources = ns,
                                 .report = cJSON_CreateObject() };
    cJSON *cfg = cJSON_Parse(cfg_text);
    void *state = NULL;
    struct vc_err err = { 0 };
    struct stage_limits lim;
    stage_limits_default(&lim);
    struct stage_ctx ctx = { .limits = &lim, .sources = src, .n_sources = ns };
    CHECK_INT(st_reshard_ops.create(cfg, &ctx, &state, &err), VC_OK);
    CHECK_INT(st_reshard_ops.plan(state, plan, &err), VC_OK);
    st_reshard_ops.destroy(state);
    cJSON_Delete(cfg);
    *recs_out = recs;
}

TEST(mixture_within_binomial_bounds)
{
    struct stage_source_info src[3] = { { .name = "a", .weight = 0.5, .epochs = 1 },
                                        { .name = "b", .weight = 0.3, .epochs = 1 },
                                        { .name = "c", .weight = 0.2, .epochs = 1 } };
    size_t n_per[3] = { 20000, 20000, 20000 };
    struct stage_plan plan;
    struct stage_rec *recs;
    run_mix("{\"stage\": \"reshard\", \"seed\": 5}", src, 3, n_per, &plan, &recs);
    size_t cnt[3] = { 0 };
    for (size_t i = 0; i < plan.n_order; i++)
        cnt[recs[plan.order[i]].source]++;
    /* first_exhausted: stops when "a" (the most drawn) runs out */
    CHECK_INT(cnt[0], 20000);
    double n = (double)plan.n_order, w[3] = { 0.5, 0.3, 0.2 };
    for (int s = 0; s < 3; s++) {
        double sd = sqrt(n * w[s] * (1 - w[s]));
        CHECK(fabs((double)cnt[s] - n * w[s]) < 4 * sd);
    }
    /* Undrawn records are marked, drawn ones stay kept, each once. */
    size_t unused = 0;
    for (size_t i = 0; i < plan.n_recs; i++)
        unused += recs[i].state == STAGE_REC_REJECTED && recs[i].reason == VC_REASON_mix_unused;
    CHECK_INT(unused + plan.n_order, 60000);
    const cJSON *mix = cJSON_GetObjectItem(plan.report, "mix");
    const cJSON *b = cJSON_GetObjectItem(cJSON_GetObjectItem(mix, "sources"), "b");
    CHECK_INT(cJSON_GetObjectItem(b, "drawn")->valuedouble, cnt[1]);
    CHECK_NEAR(cJSON_GetObjectItem(b, "proportion")->valuedouble, cnt[1] / n, 1e-12);
    cJSON_Delete(plan.report);
    free(plan.order);
    free(recs);
}

TEST(mixture_caps_epochs_and_concat)
{
    struct stage_source_info src[2] = { { .name = "a", .weight = 1, .epochs = 1, .max_samples = 5 },
                                        { .name = "b", .weight = 1, .epochs = 3 } };
    size_t n_per[2] = { 10, 4 };
    struct stage_plan plan;
    struct stage_rec *recs;
    /* all_exhausted: a gives its cap of 5, b all 4 records three times */
    run_mix("{\"stage\": \"reshard\", \"stop\": \"all_exhausted\", \"shuffle\": \"global\"}", src,
            2, n_per, &plan, &recs);
    size_t cnt[2] = { 0 }, times[14] = { 0 };
    for (size_t i = 0; i < plan.n_order; i++) {
        cnt[recs[plan.order[i]].source]++;
        times[plan.order[i]]++;
    }
    CHECK_INT(cnt[0], 5);
    CHECK_INT(cnt[1], 12);
    for (size_t i = 10; i < 14; i++)
        CHECK_INT(times[i], 3);
    for (size_t i = 0; i < 10; i++) /* a's first five drawn, the rest unused */
        CHECK_INT(recs[i].state, i < 5 ? STAGE_REC_KEEP : STAGE_REC_REJECTED);
    cJSON_Delete(plan.report);
    free(plan.order);
    free(recs);

    /* concat keeps source order and record order */
    struct stage_source_info one[2] = { { .name = "a", .weight = 1, .epochs = 1 },
                                        { .name = "b", .weight = 1, .epochs = 1 } };
    run_mix("{\"stage\": \"reshard\", \"mix\": \"concat\", \"samples_per_shard\": 3}", one, 2,
            n_per, &plan, &recs);
    CHECK_INT(plan.n_order, 14);
    for (size_t i = 0; i < plan.n_order; i++)
        CHECK_INT(plan.order[i], i);
    CHECK_INT(plan.samples_per_shard, 3);
    cJSON_Delete(plan.report);
    free(plan.order);
    free(recs);
}

/* The key rule one key at a time, against a set the caller keeps. */
static bool in_keyset(void *ctx, const char *key)
{
    return plan_keyset_has(ctx, key);
}

TEST(key_pick_and_suffix_shape)
{
    struct plan_keyset *ks = plan_keyset_new();
    struct vc_err err = { 0 };
    char out[PLAN_MAX_KEY + 1];
    plan_key_pick("a", in_keyset, ks, out);
    CHECK_STR(out, "a");
    CHECK_INT(plan_keyset_add(ks, "a", &err), VC_OK);
    CHECK_INT(plan_keyset_add(ks, "a_1", &err), VC_OK);
    plan_key_pick("a", in_keyset, ks, out);
    CHECK_STR(out, "a_2");
    /* The set doubles as it fills and forgets nothing. */
    char k[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(k, sizeof k, "k%d", i);
        CHECK_INT(plan_keyset_add(ks, k, &err), VC_OK);
    }
    for (int i = 0; i < 100000; i += 997) {
        snprintf(k, sizeof k, "k%d", i);
        CHECK(plan_keyset_has(ks, k));
    }
    CHECK(!plan_keyset_has(ks, "k100000"));
    plan_keyset_free(ks);
    CHECK(plan_key_suffixed("a_1"));
    CHECK(plan_key_suffixed("_12"));
    CHECK(plan_key_suffixed("a_b_10"));
    CHECK(!plan_key_suffixed("a_"));
    CHECK(!plan_key_suffixed("a1"));
    CHECK(!plan_key_suffixed("12"));
    CHECK(!plan_key_suffixed("a_1b"));
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static size_t files_in(const char *dir)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

/* n records of 4..39 bytes (a pseudo-random head, then the BE ordinal so
 * all differ), sorted within 1 MiB (runs of at most 32,768 records: the
 * index's quarter of the budget).  The output is in memcmp
 * order, the same multiset (sum of hashes), the same again after a rewind,
 * and no temporary file outlives the sort (nor a run a killed one left). */
static void sort_check(size_t n)
{
    const char *dir = vc_test_tmpdir();
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%s/run", dir);
    char stale[600];
    snprintf(stale, sizeof stale, "%s.17", prefix); /* a killed sort's run */
    CHECK_INT(vc_test_write_file(stale, "x", 1), 0);
    struct extsort *s;
    struct vc_err err = { 0 };
    CHECK_INT(extsort_open(&s, prefix, 1u << 20, &err), VC_OK);
    uint64_t sum_in = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t rec[48];
        uint64_t h = mix64(i + 1);
        size_t head = h % 36;
        for (size_t j = 0; j < head; j++)
            rec[j] = (uint8_t)(mix64(h + j) % 4); /* few letters: long common prefixes */
        extsort_put_be(rec + head, i, 4);
        sum_in += mix64(h ^ (head + 4));
        CHECK_INT(extsort_add(s, rec, head + 4, &err), VC_OK);
    }
    CHECK_INT(extsort_count(s), n);
    CHECK_INT(extsort_done(s, &err), VC_OK);
    for (int pass = 0; pass < 2; pass++) {
        uint8_t prev[48];
        size_t prev_n = 0, got = 0;
        uint64_t sum_out = 0;
        const uint8_t *r;
        size_t rn;
        while (extsort_next(s, &r, &rn, &err) == 1) {
            if (got) {
                int c = memcmp(prev, r, prev_n < rn ? prev_n : rn);
                CHECK(c < 0 || (c == 0 && prev_n < rn));
            }
            uint64_t i = extsort_get_be(r + rn - 4, 4);
            uint64_t h = mix64(i + 1);
            CHECK_INT(h % 36 + 4, rn);
            sum_out += mix64(h ^ rn);
            memcpy(prev, r, rn);
            prev_n = rn;
            got++;
        }
        CHECK_INT(got, n);
        CHECK(sum_out == sum_in);
        CHECK_INT(extsort_rewind(s, &err), VC_OK);
    }
    extsort_close(s);
    CHECK_INT(files_in(dir), 0);
}

TEST(extsort_orders_in_memory_and_on_disk)
{
    sort_check(1000);    /* fits: sorted in memory */
    sort_check(2500000); /* 77 runs, more than EXTSORT_FANIN: a merge pass first */
}

#define TESTS(X)                                                                                   \
    X(shards_by_count_and_bytes)                                                                   \
    X(unique_keys)                                                                                 \
    X(key_pick_and_suffix_shape)                                                                   \
    X(extsort_orders_in_memory_and_on_disk)                                                        \
    X(shuffles_are_seeded_permutations)                                                            \
    X(rng_below_is_uniform) X(mixture_within_binomial_bounds) X(mixture_caps_epochs_and_concat)
TEST_MAIN(TESTS)
