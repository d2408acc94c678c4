/* stats: the accumulator behind the audit.  Groups, counters and
 * histograms live in arrays kept sorted by name (a run has tens of them,
 * not thousands), so lookups are binary searches and output order is the
 * storage order.  Bin layouts come from hist_specs[] by name and never from
 * the data, which is what makes merging exact. */
#include "stats.h"

#include "core/vc_utf8.h"
#include "core/vc_fs.h"
#include "core/vc_mem.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hist_spec {
    const char *name;
    int log_scale; /* STATS_SCALE_* */
    double lo, hi;
    int n_bins;
};

enum { HIST_MAX_BINS = 64, SCORE_LINEAR_BINS = 10 };

/* Log bins are half-octaves: fine enough to see the 224/256/384/512 px
 * steps of web images, coarse enough for a one-screen chart. */
static const struct hist_spec hist_specs[] = {
    { "aspect_ratio", 1, 1.0 / 16, 16, 16 }, { "bytes", 1, 64, 1u << 28, 44 },
    { "doc_images", 0, 0, 32, 32 },          { "doc_texts", 0, 0, 64, 32 },
    { "height", 1, 16, 32768, 22 },          { "pixels", 1, 256, 1u << 30, 44 },
    { "text_chars", 1, 1, 1u << 20, 40 },    { "text_words", 1, 1, 1u << 16, 32 },
    { "width", 1, 16, 32768, 22 },
};
/* Filter scores are ratios in [0, 1] for most filters and counts (words,
 * pixels) for the rest; one fixed layout serves both so every score merges:
 * ten linear bins over [0, 1), then one bin per octave up to 2^20. */
static const struct hist_spec score_spec = { "score.", STATS_SCALE_RATIO_LOG2, 0, 1048576.0,
                                             SCORE_LINEAR_BINS + 20 };
/* Any other name: half-octave log bins over [1, 2^32). */
static const struct hist_spec fallback_spec = { "", 1, 1, 4294967296.0, 64 };

struct counter {
    char *family, *name;
    uint64_t count;
    char *examples[STATS_MAX_EXAMPLES];
    int n_examples;
};

struct hist {
    char *name;
    struct hist_spec spec;
    uint64_t counts[HIST_MAX_BINS + 2];
    uint64_t n, n_nan;
    double sum, min, max;
};

struct group {
    char *name;
    struct counter *counters;
    size_t n_counters, cap_counters;
    struct hist *hists;
    size_t n_hists, cap_hists;
};

struct stats {
    struct group *groups;
    size_t n_groups, cap_groups;
};

static const struct hist_spec *spec_for(const char *name)
{
    for (size_t i = 0; i < sizeof hist_specs / sizeof hist_specs[0]; i++)
        if (strcmp(hist_specs[i].name, name) == 0)
            return &hist_specs[i];
    if (strncmp(name, "score.", 6) == 0)
        return &score_spec;
    return &fallback_spec;
}

struct stats *stats_new(void)
{
    return calloc(1, sizeof(struct stats));
}

static void counter_fini(struct counter *c)
{
    free(c->family);
    free(c->name);
    for (int i = 0; i < c->n_examples; i++)
        free(c->examples[i]);
}

void stats_free(struct stats *s)
{
    if (!s)
        return;
    for (size_t g = 0; g < s->n_groups; g++) {
        struct group *gr = &s->groups[g];
        for (size_t i = 0; i < gr->n_counters; i++)
            counter_fini(&gr->counters[i]);
        for (size_t i = 0; i < gr->n_hists; i++)
            free(gr->hists[i].name);
        free(gr->counters);
        free(gr->hists);
        free(gr->name);
    }
    free(s->groups);
    free(s);
}

/* Makes room for one more element at index `at` of a sorted array. */
static void *insert_slot(void **arr, size_t *n, size_t *cap, size_t elem, size_t at)
{
    void *grown = vc_grow_array(*arr, cap, *n + 1, elem, 8);
    if (!grown)
        return NULL;
    *arr = grown;
    unsigned char *base = *arr;
    memmove(base + (at + 1) * elem, base + at * elem, (*n - at) * elem);
    (*n)++;
    memset(base + at * elem, 0, elem);
    return base + at * elem;
}

/* Binary search over an array kept sorted by `cmp`; the match or NULL,
 * with *pos where `key` belongs. */
static void *sorted_find(void *base, size_t n, size_t elem, int (*cmp)(const void *, const void *),
                         const void *key, size_t *pos)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        void *e = (unsigned char *)base + mid * elem;
        int c = cmp(e, key);
        if (c == 0)
            return e;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *pos = lo;
    return NULL;
}

/* Groups and histograms start with their name. */
static int cmp_name(const void *e, const void *key)
{
    return strcmp(*(char *const *)e, key);
}

struct counter_key {
    const char *family, *name;
};

static int cmp_counter(const void *e, const void *key)
{
    const struct counter *c = e;
    const struct counter_key *k = key;
    int r = strcmp(c->family, k->family);
    return r ? r : strcmp(c->name, k->name);
}

static struct group *group_get(struct stats *s, const char *name, int create)
{
    size_t pos;
    struct group *g = sorted_find(s->groups, s->n_groups, sizeof *g, cmp_name, name, &pos);
    if (g || !create)
        return g;
    char *copy = vc_strdup(name);
    g = copy ? insert_slot((void **)&s->groups, &s->n_groups, &s->cap_groups, sizeof *g, pos)
             : NULL;
    if (!g) {
        free(copy);
        return NULL;
    }
    g->name = copy;
    return g;
}

static struct counter *counter_get(struct group *g, const char *family, const char *name,
                                   int create)
{
    size_t pos;
    struct counter_key key = { family, name };
    struct counter *c = sorted_find(g->counters, g->n_counters, sizeof *c, cmp_counter, &key, &pos);
    if (c || !create)
        return c;
    char *f = vc_strdup(family), *n = vc_strdup(name);
    c = (f && n)
            ? insert_slot((void **)&g->counters, &g->n_counters, &g->cap_counters, sizeof *c, pos)
            : NULL;
    if (!c) {
        free(f);
        free(n);
        return NULL;
    }
    c->family = f;
    c->name = n;
    return c;
}

static struct hist *hist_get(struct group *g, const char *name, int create)
{
    size_t pos;
    struct hist *h = sorted_find(g->hists, g->n_hists, sizeof *h, cmp_name, name, &pos);
    if (h || !create)
        return h;
    char *copy = vc_strdup(name);
    h = copy ? insert_slot((void **)&g->hists, &g->n_hists, &g->cap_hists, sizeof *h, pos) : NULL;
    if (!h) {
        free(copy);
        return NULL;
    }
    h->name = copy;
    h->spec = *spec_for(name);
    h->min = INFINITY;
    h->max = -INFINITY;
    return h;
}

/* Keeps the smallest keys so the examples do not depend on task order. */
static int add_example(struct counter *c, const char *key)
{
    int pos = 0;
    while (pos < c->n_examples && strcmp(c->examples[pos], key) < 0)
        pos++;
    if (pos < c->n_examples && strcmp(c->examples[pos], key) == 0)
        return 0;
    if (pos >= STATS_MAX_EXAMPLES)
        return 0;
    char *copy = vc_strdup(key);
    if (!copy)
        return -1;
    if (c->n_examples == STATS_MAX_EXAMPLES)
        free(c->examples[--c->n_examples]);
    memmove(&c->examples[pos + 1], &c->examples[pos],
            (size_t)(c->n_examples - pos) * sizeof c->examples[0]);
    c->examples[pos] = copy;
    c->n_examples++;
    return 0;
}

enum vc_status stats_count(struct stats *s, const char *group, const char *family, const char *name,
                           uint64_t n, const char *example_key)
{
    struct group *g = group_get(s, group, 1);
    struct counter *c = g ? counter_get(g, family, name, 1) : NULL;
    if (!c || (example_key && add_example(c, example_key) != 0))
        return VC_EFATAL;
    c->count += n;
    return VC_OK;
}

static int bin_of(const struct hist_spec *sp, double v)
{
    if (sp->log_scale == STATS_SCALE_RATIO_LOG2) {
        if (v < 0)
            return 0;
        if (v < 1)
            return 1 + (int)(v * SCORE_LINEAR_BINS);
        if (v > sp->hi)
            return sp->n_bins + 1;
        int b = SCORE_LINEAR_BINS + (int)log2(v);
        return 1 + (b < sp->n_bins ? b : sp->n_bins - 1);
    }
    if (v < sp->lo || (sp->log_scale && v <= 0))
        return 0;
    /* hi itself belongs to the last bin: a ratio of exactly 1 is data. */
    if (v > sp->hi)
        return sp->n_bins + 1;
    double t = sp->log_scale ? (log2(v) - log2(sp->lo)) / (log2(sp->hi) - log2(sp->lo))
                             : (v - sp->lo) / (sp->hi - sp->lo);
    int b = (int)(t * sp->n_bins);
    if (b >= sp->n_bins)
        b = sp->n_bins - 1;
    return b + 1;
}

enum vc_status stats_observe(struct stats *s, const char *group, const char *hist, double value)
{
    struct group *g = group_get(s, group, 1);
    struct hist *h = g ? hist_get(g, hist, 1) : NULL;
    if (!h)
        return VC_EFATAL;
    if (!isfinite(value)) {
        h->n_nan++;
        return VC_OK;
    }
    h->counts[bin_of(&h->spec, value)]++;
    h->n++;
    h->sum += value;
    if (value < h->min)
        h->min = value;
    if (value > h->max)
        h->max = value;
    return VC_OK;
}

enum vc_status stats_merge(struct stats *into, const struct stats *from, struct vc_err *err)
{
    for (size_t gi = 0; gi < from->n_groups; gi++) {
        const struct group *fg = &from->groups[gi];
        struct group *g = group_get(into, fg->name, 1);
        if (!g)
            return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "stats merge: no memory");
        for (size_t i = 0; i < fg->n_counters; i++) {
            const struct counter *fc = &fg->counters[i];
            struct counter *c = counter_get(g, fc->family, fc->name, 1);
            if (!c)
                return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory,
                                  "stats merge: no memory");
            c->count += fc->count;
            for (int e = 0; e < fc->n_examples; e++)
                if (add_example(c, fc->examples[e]) != 0)
                    return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory,
                                      "stats merge: no memory");
        }
        for (size_t i = 0; i < fg->n_hists; i++) {
            const struct hist *fh = &fg->hists[i];
            struct hist *h = hist_get(g, fh->name, 1);
            if (!h)
                return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory,
                                  "stats merge: no memory");
            for (int b = 0; b < h->spec.n_bins + 2; b++)
                h->counts[b] += fh->counts[b];
            h->n += fh->n;
            h->n_nan += fh->n_nan;
            h->sum += fh->sum;
            if (fh->min < h->min)
                h->min = fh->min;
            if (fh->max > h->max)
                h->max = fh->max;
        }
    }
    return VC_OK;
}

struct cJSON *stats_to_json(const struct stats *s)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "schema", STATS_SCHEMA);
    cJSON *groups = cJSON_AddObjectToObject(root, "groups");
    for (size_t gi = 0; gi < s->n_groups; gi++) {
        const struct group *g = &s->groups[gi];
        cJSON *gj = cJSON_AddObjectToObject(groups, g->name);
        cJSON *counters = cJSON_AddObjectToObject(gj, "counters");
        for (size_t i = 0; i < g->n_counters; i++) {
            const struct counter *c = &g->counters[i];
            cJSON *fam = cJSON_GetObjectItemCaseSensitive(counters, c->family);
            if (!fam)
                fam = cJSON_AddObjectToObject(counters, c->family);
            cJSON *cj = cJSON_AddObjectToObject(fam, c->name);
            cJSON_AddNumberToObject(cj, "count", (double)c->count);
            cJSON *ex = cJSON_AddArrayToObject(cj, "examples");
            for (int e = 0; e < c->n_examples; e++)
                cJSON_AddItemToArray(ex, cJSON_CreateString(c->examples[e]));
        }
        cJSON *hists = cJSON_AddObjectToObject(gj, "histograms");
        for (size_t i = 0; i < g->n_hists; i++) {
            const struct hist *h = &g->hists[i];
            cJSON *hj = cJSON_AddObjectToObject(hists, h->name);
            cJSON_AddStringToObject(hj, "scale",
                                    h->spec.log_scale == STATS_SCALE_RATIO_LOG2 ? "ratio_log2"
                                    : h->spec.log_scale                         ? "log2"
                                                                                : "linear");
            cJSON_AddNumberToObject(hj, "lo", h->spec.lo);
            cJSON_AddNumberToObject(hj, "hi", h->spec.hi);
            cJSON_AddNumberToObject(hj, "bins", h->spec.n_bins);
            cJSON *counts = cJSON_AddArrayToObject(hj, "counts");
            for (int b = 0; b < h->spec.n_bins + 2; b++)
                cJSON_AddItemToArray(counts, cJSON_CreateNumber((double)h->counts[b]));
            cJSON_AddNumberToObject(hj, "n", (double)h->n);
            cJSON_AddNumberToObject(hj, "n_nan", (double)h->n_nan);
            cJSON_AddNumberToObject(hj, "sum", h->sum);
            cJSON_AddNumberToObject(hj, "min", h->n ? h->min : 0);
            cJSON_AddNumberToObject(hj, "max", h->n ? h->max : 0);
            cJSON_AddNumberToObject(hj, "mean", h->n ? h->sum / (double)h->n : 0);
            struct stats_hist_view view;
            stats_hist_at(s, gi, i, &view);
            cJSON *pct = cJSON_AddObjectToObject(hj, "percentiles");
            for (int p = 0; p < STATS_N_PERCENTILES; p++) {
                char key[8];
                snprintf(key, sizeof key, "p%d", stats_percentiles[p]);
                cJSON_AddNumberToObject(pct, key,
                                        stats_hist_percentile(&view, stats_percentiles[p] / 100.0));
            }
        }
    }
    return root;
}

static uint64_t json_u64(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return (cJSON_IsNumber(v) && v->valuedouble > 0) ? (uint64_t)v->valuedouble : 0;
}

static double json_f64(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static enum vc_status hist_from_json(struct hist *h, const cJSON *hj, struct vc_err *err)
{
    const cJSON *counts = cJSON_GetObjectItemCaseSensitive(hj, "counts");
    if (!cJSON_IsArray(counts) || cJSON_GetArraySize(counts) != h->spec.n_bins + 2 ||
        (int)json_f64(hj, "bins") != h->spec.n_bins)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_json_invalid,
                          "histogram '%s' has bins other than this version's", h->name);
    int b = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, counts)
    {
        h->counts[b++] = cJSON_IsNumber(c) && c->valuedouble > 0 ? (uint64_t)c->valuedouble : 0;
    }
    h->n = json_u64(hj, "n");
    h->n_nan = json_u64(hj, "n_nan");
    h->sum = json_f64(hj, "sum");
    if (h->n) {
        h->min = json_f64(hj, "min");
        h->max = json_f64(hj, "max");
    }
    return VC_OK;
}

enum vc_status stats_from_json(const struct cJSON *json, struct stats **out, struct vc_err *err)
{
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(json, "schema");
    if (!cJSON_IsString(schema) || strcmp(schema->valuestring, STATS_SCHEMA) != 0)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_json_invalid, "not a %s document",
                          STATS_SCHEMA);
    struct stats *s = stats_new();
    if (!s)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "no memory");
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(json, "groups");
    const cJSON *gj;
    cJSON_ArrayForEach(gj, groups)
    {
        const cJSON *fam, *cj, *hj;
        cJSON_ArrayForEach(fam, cJSON_GetObjectItemCaseSensitive(gj, "counters"))
        {
            cJSON_ArrayForEach(cj, fam)
            {
                if (stats_count(s, gj->string, fam->string, cj->string, json_u64(cj, "count"),
                                NULL) != VC_OK)
                    goto oom;
                const cJSON *ex;
                cJSON_ArrayForEach(ex, cJSON_GetObjectItemCaseSensitive(cj, "examples"))
                {
                    if (cJSON_IsString(ex) && stats_count(s, gj->string, fam->string, cj->string, 0,
                                                          ex->valuestring) != VC_OK)
                        goto oom;
                }
            }
        }
        cJSON_ArrayForEach(hj, cJSON_GetObjectItemCaseSensitive(gj, "histograms"))
        {
            struct group *g = group_get(s, gj->string, 1);
            struct hist *h = g ? hist_get(g, hj->string, 1) : NULL;
            if (!h)
                goto oom;
            if (hist_from_json(h, hj, err) != VC_OK) {
                stats_free(s);
                return err->status;
            }
        }
    }
    *out = s;
    return VC_OK;
oom:
    stats_free(s);
    return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "no memory");
}

uint64_t stats_counter(const struct stats *s, const char *group, const char *family,
                       const char *name)
{
    struct group *g = group_get((struct stats *)s, group, 0);
    struct counter *c = g ? counter_get(g, family, name, 0) : NULL;
    return c ? c->count : 0;
}

uint64_t stats_hist_total(const struct stats *s, const char *group, const char *hist)
{
    struct group *g = group_get((struct stats *)s, group, 0);
    struct hist *h = g ? hist_get(g, hist, 0) : NULL;
    return h ? h->n : 0;
}

enum vc_status stats_write_json(const struct stats *s, const char *path, struct vc_err *err)
{
    cJSON *j = stats_to_json(s);
    char *text = j ? vc_utf8_json_print(j, true) : NULL;
    cJSON_Delete(j);
    if (!text)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "no memory for %s", path);
    enum vc_status rc = vc_fs_write_atomic(path, text, strlen(text), err);
    free(text);
    return rc;
}

/* A stats file is a few hundred KiB at most; 64 MiB means something else. */
#define STATS_MAX_FILE_BYTES (64u << 20)

enum vc_status stats_read_json(const char *path, struct stats **out, struct vc_err *err)
{
    char *text;
    size_t size;
    VC_TRY(vc_fs_read_file(path, STATS_MAX_FILE_BYTES, &text, &size, err));
    cJSON *j = cJSON_ParseWithLength(text, size);
    free(text);
    if (!j)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_json_invalid, "%s: not valid JSON", path);
    enum vc_status rc = stats_from_json(j, out, err);
    cJSON_Delete(j);
    if (rc != VC_OK)
        vc_err_prefix(err, "%s", path);
    return rc;
}

size_t stats_group_count(const struct stats *s)
{
    return s->n_groups;
}

const char *stats_group_name(const struct stats *s, size_t i)
{
    return s->groups[i].name;
}

size_t stats_counter_count(const struct stats *s, size_t group)
{
    return s->groups[group].n_counters;
}

void stats_counter_at(const struct stats *s, size_t group, size_t i, struct stats_counter_view *out)
{
    const struct counter *c = &s->groups[group].counters[i];
    out->family = c->family;
    out->name = c->name;
    out->count = c->count;
    out->examples = (const char *const *)c->examples;
    out->n_examples = c->n_examples;
}

size_t stats_hist_count(const struct stats *s, size_t group)
{
    return s->groups[group].n_hists;
}

void stats_hist_at(const struct stats *s, size_t group, size_t i, struct stats_hist_view *out)
{
    const struct hist *h = &s->groups[group].hists[i];
    out->name = h->name;
    out->log_scale = h->spec.log_scale;
    out->lo = h->spec.lo;
    out->hi = h->spec.hi;
    out->n_bins = h->spec.n_bins;
    out->counts = h->counts;
    out->n = h->n;
    out->n_nan = h->n_nan;
    out->sum = h->sum;
    out->min = h->n ? h->min : 0;
    out->max = h->n ? h->max : 0;
}

long stats_group_find(const struct stats *s, const char *name)
{
    const struct group *g = group_get((struct stats *)s, name, 0);
    return g ? (long)(g - s->groups) : -1;
}

bool stats_hist_find(const struct stats *s, const char *group, const char *hist,
                     struct stats_hist_view *out)
{
    long gi = stats_group_find(s, group);
    struct hist *h = gi < 0 ? NULL : hist_get(&s->groups[gi], hist, 0);
    if (!h)
        return false;
    stats_hist_at(s, (size_t)gi, (size_t)(h - s->groups[gi].hists), out);
    return true;
}

double stats_hist_edge(const struct stats_hist_view *h, int b)
{
    if (h->log_scale == STATS_SCALE_RATIO_LOG2)
        return b <= SCORE_LINEAR_BINS ? (double)b / SCORE_LINEAR_BINS
                                      : exp2((double)(b - SCORE_LINEAR_BINS));
    double t = (double)b / h->n_bins;
    if (h->log_scale)
        return exp2(log2(h->lo) + t * (log2(h->hi) - log2(h->lo)));
    return h->lo + t * (h->hi - h->lo);
}

const int stats_percentiles[STATS_N_PERCENTILES] = { 1, 5, 25, 50, 75, 95, 99 };

double stats_hist_percentile(const struct stats_hist_view *h, double q)
{
    if (h->n == 0)
        return 0;
    /* Nearest rank, 1-based; the open-ended bins run to the observed
     * min and max. */
    double rank = ceil(q * (double)h->n);
    if (rank <= 1)
        return h->min;
    if (rank >= (double)h->n)
        return h->max;
    double seen = 0;
    for (int i = 0; i < h->n_bins + 2; i++) {
        double c = (double)h->counts[i];
        if (seen + c < rank) {
            seen += c;
            continue;
        }
        double lo = i == 0 ? h->min : stats_hist_edge(h, i - 1);
        double hi = i == h->n_bins + 1 ? h->max : stats_hist_edge(h, i);
        /* The k-th of c values spread evenly from lo: the lower edge for
         * the first, so integer data in unit-wide bins (images per
         * document) gets exact percentiles. */
        double v = lo + (hi - lo) * (rank - seen - 1) / c;
        return v < h->min ? h->min : v > h->max ? h->max : v;
    }
    return h->max;
}
