/* Unit tests of manifests/stats and the HTML report: bins computed by hand,
 * merging equals accumulating in one object, JSON round trip, examples
 * independent of order, and a report that contains its charts. */
#include "vc_test.h"

#include "manifests/report_html.h"
#include "manifests/stats.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>

static uint64_t bin_count(const struct stats *s, const char *hist, int bin)
{
    for (size_t g = 0; g < stats_group_count(s); g++) {
        if (strcmp(stats_group_name(s, g), "all") != 0)
            continue;
        for (size_t i = 0; i < stats_hist_count(s, g); i++) {
            struct stats_hist_view h;
            stats_hist_at(s, g, i, &h);
            if (strcmp(h.name, hist) == 0)
                return h.counts[bin];
        }
    }
    return (uint64_t)-1;
}

TEST(width_bins_by_hand)
{
    /* width: half-octave bins from 16 px: bin k covers [16 * 2^(k/2), 16 * 2^((k+1)/2)). */
    struct stats *s = stats_new();
    stats_observe(s, "all", "width", 15);    /* underflow, index 0 */
    stats_observe(s, "all", "width", 16);    /* first bin, index 1 */
    stats_observe(s, "all", "width", 256);   /* log2 = 8: bin (8-4)*2 = 8, index 9 */
    stats_observe(s, "all", "width", 361);   /* log2 = 8.496: still bin 8 */
    stats_observe(s, "all", "width", 363);   /* log2 = 8.504: bin 9, index 10 */
    stats_observe(s, "all", "width", 32768); /* hi is inside the last bin, index 22 */
    stats_observe(s, "all", "width", 40000); /* overflow, index 23 */
    stats_observe(s, "all", "width", NAN);
    CHECK_INT(bin_count(s, "width", 0), 1);
    CHECK_INT(bin_count(s, "width", 1), 1);
    CHECK_INT(bin_count(s, "width", 9), 2);
    CHECK_INT(bin_count(s, "width", 10), 1);
    CHECK_INT(bin_count(s, "width", 22), 1);
    CHECK_INT(bin_count(s, "width", 23), 1);
    CHECK_INT(stats_hist_total(s, "all", "width"), 7);
    stats_free(s);
}

TEST(score_bins_ratio_then_octaves)
{
    /* Ten bins of 0.1 over [0, 1), then one per octave: [1, 2), [2, 4), ... */
    struct stats *s = stats_new();
    stats_observe(s, "all", "score.stopword_ratio", 0.0);  /* bin 0, index 1 */
    stats_observe(s, "all", "score.stopword_ratio", 0.12); /* 0.12 * 10 = 1.2: index 2 */
    stats_observe(s, "all", "score.stopword_ratio", 1.0);  /* [1, 2): bin 10, index 11 */
    stats_observe(s, "all", "score.stopword_ratio", 450);  /* [256, 512): bin 18, index 19 */
    stats_observe(s, "all", "score.stopword_ratio", -0.5); /* underflow */
    stats_observe(s, "all", "score.stopword_ratio", 2e6);  /* past 2^20: overflow, index 31 */
    CHECK_INT(bin_count(s, "score.stopword_ratio", 1), 1);
    CHECK_INT(bin_count(s, "score.stopword_ratio", 2), 1);
    CHECK_INT(bin_count(s, "score.stopword_ratio", 11), 1);
    CHECK_INT(bin_count(s, "score.stopword_ratio", 19), 1);
    CHECK_INT(bin_count(s, "score.stopword_ratio", 0), 1);
    CHECK_INT(bin_count(s, "score.stopword_ratio", 31), 1);
    stats_free(s);
}

static void fill(struct stats *s, int from, int to)
{
    char key[32];
    for (int i = from; i < to; i++) {
        snprintf(key, sizeof key, "k%03d", i);
        stats_count(s, "all", "funnel", "input", 1, NULL);
        stats_count(s, "all", "reject", i % 3 ? "too_small" : "aspect_ratio", 1, key);
        stats_count(s, "source:laion", "funnel", "input", 1, NULL);
        stats_observe(s, "all", "pixels", (double)(i * i * 37 + 1));
    }
}

TEST(merge_equals_single_pass)
{
    struct stats *one = stats_new(), *a = stats_new(), *b = stats_new();
    fill(one, 0, 100);
    fill(b, 40, 100); /* merged in the "wrong" order on purpose */
    fill(a, 0, 40);
    struct vc_err err;
    CHECK_INT(stats_merge(b, a, &err), VC_OK);
    cJSON *j1 = stats_to_json(one), *j2 = stats_to_json(b);
    char *t1 = cJSON_PrintUnformatted(j1), *t2 = cJSON_PrintUnformatted(j2);
    CHECK_STR(t1, t2);
    CHECK_INT(stats_counter(b, "all", "funnel", "input"), 100);
    CHECK_INT(stats_counter(b, "all", "reject", "aspect_ratio"), 34); /* 0, 3, ..., 99 */
    free(t1);
    free(t2);
    cJSON_Delete(j1);
    cJSON_Delete(j2);
    stats_free(one);
    stats_free(a);
    stats_free(b);
}

TEST(examples_are_smallest_keys)
{
    struct stats *s = stats_new();
    const char *keys[] = { "k9", "k3", "k7", "k1", "k5", "k2", "k8", "k3" };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        stats_count(s, "all", "error", "decode_error", 1, keys[i]);
    cJSON *j = stats_to_json(s);
    cJSON *ex = cJSON_GetObjectItem(
        cJSON_GetObjectItem(
            cJSON_GetObjectItem(
                cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "groups"), "all"),
                                    "counters"),
                "error"),
            "decode_error"),
        "examples");
    char *t = cJSON_PrintUnformatted(ex);
    CHECK_STR(t, "[\"k1\",\"k2\",\"k3\",\"k5\",\"k7\"]");
    free(t);
    cJSON_Delete(j);
    stats_free(s);
}

TEST(json_round_trip_and_bad_schema)
{
    struct stats *s = stats_new();
    fill(s, 0, 25);
    stats_observe(s, "all", "doc_images", 3);
    char path[4200];
    snprintf(path, sizeof path, "%s/stats.json", vc_test_tmpdir());
    struct vc_err err;
    CHECK_INT(stats_write_json(s, path, &err), VC_OK);
    struct stats *back = NULL;
    CHECK_INT(stats_read_json(path, &back, &err), VC_OK);
    if (back) {
        cJSON *j1 = stats_to_json(s), *j2 = stats_to_json(back);
        CHECK(cJSON_Compare(j1, j2, 1));
        cJSON_Delete(j1);
        cJSON_Delete(j2);
        stats_free(back);
    }
    cJSON *bad = cJSON_Parse("{\"schema\":\"something-else\"}");
    back = NULL;
    CHECK_INT(stats_from_json(bad, &back, &err), VC_ESAMPLE);
    CHECK(back == NULL);
    cJSON_Delete(bad);
    cJSON *bins = cJSON_Parse("{\"schema\":\"vlmcurate-stats-v1\",\"groups\":{\"all\":{"
                              "\"histograms\":{\"width\":{\"bins\":3,\"counts\":[1,2,3,4,5]}}}}}");
    CHECK_INT(stats_from_json(bins, &back, &err), VC_ESAMPLE);
    cJSON_Delete(bins);
    stats_free(s);
}

static double percentile_of(const struct stats *s, const char *hist, double q)
{
    struct stats_hist_view h;
    return stats_hist_find(s, "all", hist, &h) ? stats_hist_percentile(&h, q) : NAN;
}

TEST(percentiles_by_nearest_rank)
{
    /* doc_images has unit-wide linear bins, so integer data gets exact
     * nearest-rank percentiles: of 0..9 (n = 10) rank ceil(q * 10). */
    struct stats *s = stats_new();
    for (int v = 9; v >= 0; v--)
        stats_observe(s, "all", "doc_images", v);
    CHECK(percentile_of(s, "doc_images", 0.01) == 0); /* rank 1 */
    CHECK(percentile_of(s, "doc_images", 0.05) == 0); /* rank 1 */
    CHECK(percentile_of(s, "doc_images", 0.25) == 2); /* rank 3 */
    CHECK(percentile_of(s, "doc_images", 0.50) == 4); /* rank 5 */
    CHECK(percentile_of(s, "doc_images", 0.75) == 7); /* rank 8 */
    CHECK(percentile_of(s, "doc_images", 0.95) == 9); /* rank 10 */
    stats_free(s);
    /* Log bins: 256, 300 and 350 share the width bin [256, 362.04); the
     * median (rank 2 of 4) is placed a third into it, the top rank is
     * the maximum itself, not its bin's edge. */
    s = stats_new();
    stats_observe(s, "all", "width", 1000);
    stats_observe(s, "all", "width", 350);
    stats_observe(s, "all", "width", 256);
    stats_observe(s, "all", "width", 300);
    double p50 = percentile_of(s, "width", 0.5), edge = 256 * sqrt(2.0);
    CHECK(fabs(p50 - (256 + (edge - 256) / 3)) < 1e-9);
    CHECK(percentile_of(s, "width", 0.99) == 1000);
    CHECK(percentile_of(s, "width", 0.01) == 256);
    stats_free(s);
    /* Nothing observed: 0, as stats.json writes min and max. */
    s = stats_new();
    stats_observe(s, "all", "width", NAN);
    CHECK(percentile_of(s, "width", 0.5) == 0);
    stats_free(s);
}

TEST(report_has_charts_and_escapes)
{
    struct stats *s = stats_new();
    fill(s, 0, 30);
    stats_count(s, "all", "funnel", "written", 20, NULL);
    stats_count(s, "all", "format", "jpg", 20, NULL);
    stats_count(s, "all", "error", "unsafe_path", 1, "<script>alert(1)</script>");
    stats_count(s, "source:b&w", "funnel", "written", 5, NULL);
    stats_observe(s, "source:b&w", "width", 300);
    char path[4200];
    snprintf(path, sizeof path, "%s/report.html", vc_test_tmpdir());
    struct vc_err err;
    CHECK_INT(report_html_write(s, "Audit <test>", path, &err), VC_OK);
    size_t n = 0;
    char *html = (char *)vc_test_read_file(path, &n);
    CHECK(html != NULL);
    if (html) {
        html = realloc(html, n + 1);
        html[n] = '\0';
        CHECK(strstr(html, "<svg") != NULL);
        CHECK(strstr(html, "id=\"funnel\"") != NULL);
        CHECK(strstr(html, "id=\"sources\"") != NULL);
        CHECK(strstr(html, "Audit &lt;test&gt;") != NULL);
        CHECK(strstr(html, "<script>alert") == NULL);
        CHECK(strstr(html, "b&amp;w") != NULL);
        CHECK(strstr(html, "http") == NULL); /* nothing fetched from the network */
        free(html);
    }
    stats_free(s);
}

#define TESTS(X)                                                                                   \
    X(width_bins_by_hand)                                                                          \
    X(score_bins_ratio_then_octaves)                                                               \
    X(merge_equals_single_pass)                                                                    \
    X(examples_are_smallest_keys)                                                                  \
    X(json_round_trip_and_bad_schema)                                                              \
    X(percentiles_by_nearest_rank) X(report_has_charts_and_escapes)
TEST_MAIN(TESTS)
