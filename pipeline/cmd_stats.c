/* cmd_stats: scans shards in parallel (one OpenMP task per shard), records
 * every sample with sample_stats_observe, writes one stats file per shard
 * and the merged stats.json + report.html.  Per-shard files are merged in
 * shard order, and merging is exact, so the outputs do not depend on the
 * thread count. */
#include "cmd_stats.h"

#include "core/sample.h"
#include "core/vc_arg.h"
#include "core/vc_fs.h"
#include "core/vc_mem.h"
#include "manifests/report_html.h"
#include "core/sha256.h"
#include "manifests/stats.h"
#include "stages/dedup_hash.h"
#include "stages/dedup_reduce.h"
#include "stages/sample_stats.h"
#include "stages/src_util.h"
#include "stages/wds_read.h"

#include <cjson/cJSON.h>

#include <dirent.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Per-sample scratch cap: the reader's entry limit plus room for fields. */
#define STATS_ARENA_BYTES (WDS_DEFAULT_MAX_ENTRY_BYTES + (64u << 20))

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vlmcurate stats DIR|SHARD|PATTERN... [--out DIR] [--decode]\n"
            "                       [--no-language] [--threads N] [--title TEXT]\n"
            "                       [--phash] [--phash-radius R]\n"
            "Audits webdataset shards (.tar, .tar.gz, .tar.zst): counts, image sizes and\n"
            "formats from headers (--decode: full decode), text lengths, languages,\n"
            "documents, percentiles, a per-shard table.  A PATTERN is a brace pattern as\n"
            "in a spec's \"urls\" (data-{000000..000127}.tar, {a,b}.tar).\n"
            "Writes OUT/stats.json, OUT/report.html and OUT/stats/<shard>.json, where OUT\n"
            "is --out or, for a single folder argument, that folder.\n"
            "Counts exact image duplicates (SHA-256 of the bytes) across all shards;\n"
            "--phash also counts near-duplicate clusters (pHash within R bits, default 10).\n");
}

struct shard_list {
    char **paths;
    size_t n, cap;
};

/* Exit status 2 for a bad command line, freeing the shards named so far. */
static int usage_error(struct shard_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->paths[i]);
    free(l->paths);
    return 2;
}

static int list_add(struct shard_list *l, const char *path)
{
    char **grown = vc_grow_array(l->paths, &l->cap, l->n + 1, sizeof *grown, 16);
    if (!grown)
        return -1;
    l->paths = grown;
    l->paths[l->n] = vc_strdup(path);
    return l->paths[l->n++] ? 0 : -1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One path: a shard, or a folder whose shards are taken in name order. */
static int collect_path(const char *arg, struct shard_list *l)
{
    struct stat st;
    if (stat(arg, &st) != 0) {
        struct vc_err err;
        src_check_path(arg, false, &err);
        fprintf(stderr, "vlmcurate stats: %s\n", err.msg);
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return list_add(l, arg);
    DIR *d = opendir(arg);
    if (!d)
        return -1;
    size_t first = l->n;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !src_shard_name(e->d_name))
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", arg, e->d_name);
        if (list_add(l, path) != 0) {
            closedir(d);
            return -1;
        }
    }
    closedir(d);
    if (l->n > first) /* a folder without shards: paths may still be NULL */
        qsort(l->paths + first, l->n - first, sizeof *l->paths, cmp_str);
    return 0;
}

/* An argument is expanded as a spec's "urls" are (a brace pattern names
 * every path; a plain path names itself), and each path must exist. */
static int collect(const char *arg, struct shard_list *l)
{
    char **paths = NULL;
    size_t n = 0;
    struct vc_err err;
    int rc = 0;
    if (src_brace_expand(arg, &paths, &n, &err) != VC_OK) {
        fprintf(stderr, "vlmcurate stats: %s: %s\n", arg, err.msg);
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = collect_path(paths[i], l);
    src_paths_free(paths, n);
    return rc;
}

/* One shard's duplicate signatures: unit = shard number, index = sample
 * ordinal in the shard. */
struct audit_sigs {
    uint32_t shard;
    int phash_radius; /* < 0: exact only */
    struct dedup_sig *v;
    size_t n, cap;
    uint32_t samples;
};

static enum vc_status audit_push(struct audit_sigs *a, const struct dedup_sig *v, size_t n,
                                 struct vc_err *err)
{
    struct dedup_sig *g = vc_grow_array(a->v, &a->cap, a->n + n, sizeof *g, 1024);
    if (!g)
        return vc_err_oom(err);
    a->v = g;
    memcpy(a->v + a->n, v, n * sizeof *v);
    a->n += n;
    return VC_OK;
}

/* The main image's SHA-256 and, when asked, pHash bands.  A picture that
 * does not decode has no pHash (the scan counts it as an error already). */
static enum vc_status audit_sample(struct audit_sigs *a, const struct sample *s, struct vc_err *err)
{
    uint32_t index = a->samples++;
    const struct sample_field *f = sample_main_image(s);
    if (!f)
        return VC_OK;
    struct sha256 c;
    uint8_t dg[32];
    sha256_init(&c);
    sha256_update(&c, f->data, f->size);
    sha256_final(&c, dg);
    struct dedup_sig v[33];
    v[0] = dedup_sig_digest(DEDUP_M_IMAGE_SHA256, dg, a->shard, index, 0);
    size_t n = 1;
    uint64_t ph;
    struct vc_err ignored;
    if (a->phash_radius >= 0 && dedup_phash_image(f->data, f->size, NULL, &ph, &ignored) == VC_OK) {
        dedup_sig_phash(ph, a->phash_radius, a->shard, index, 0, v + 1);
        n += (size_t)a->phash_radius + 1;
    }
    return audit_push(a, v, n, err);
}

/* The scores a run wrote into a kept sample's json (shards with the tool's
 * own "vlmcurate" object only: another writer's "filter_scores" column
 * means something else), so that a run folder's score charts hold the
 * kept samples next to the ledger's rejected ones. */
static void observe_kept_scores(struct stats *st, const struct sample *s)
{
    const struct sample_field *jf = sample_field_get(s, "json");
    cJSON *j = jf ? cJSON_ParseWithLength((const char *)jf->data, jf->size) : NULL;
    if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "vlmcurate")))
        sample_stats_observe_scores(st, j);
    cJSON_Delete(j);
}

/* The per-shard table's row (group "shard:<path>", family "shard"), from
 * the shard's own statistics: samples and unreadable ones were counted
 * during the scan; images are those whose header was read, texts the
 * captions and documents measured. */
static enum vc_status shard_row(struct stats *st, const char *group, const char *path)
{
    struct stat fst;
    struct stats_hist_view h;
    enum vc_status rc = VC_OK;
    if (rc == VC_OK && stat(path, &fst) == 0)
        rc = stats_count(st, group, "shard", "bytes", (uint64_t)fst.st_size, NULL);
    if (rc == VC_OK && stats_hist_find(st, "all", "width", &h))
        rc = stats_count(st, group, "shard", "images", h.n, NULL);
    if (rc == VC_OK && stats_hist_find(st, "all", "text_chars", &h)) {
        rc = stats_count(st, group, "shard", "texts", h.n, NULL);
        if (rc == VC_OK)
            rc = stats_count(st, group, "shard", "text_chars", (uint64_t)h.sum, NULL);
    }
    return rc;
}

/* What a shard lost that no sample can be named for (all of it when it is
 * no archive, the rest after damage part-way): one input in error, as a
 * run's ledger counts it, so the error reasons add up to the funnel's
 * errors. */
static void count_unreadable_rest(struct stats *st, const char *group, const char *path,
                                  bool count_funnel, const struct vc_err *e)
{
    if (count_funnel) {
        stats_count(st, "all", "funnel", "input", 1, NULL);
        stats_count(st, "all", "funnel", "error", 1, NULL);
    }
    stats_count(st, group, "shard", "samples", 1, NULL);
    stats_count(st, group, "shard", "unreadable", 1, path);
    stats_count(st, "all", "error", vc_reason_name(e->reason), 1, path);
}

/* Reads one shard into a fresh stats object.  Returns VC_ESHARD when the
 * shard could not be read to its end (what was read is still recorded).
 * count_funnel (no ledger): the samples read count as "readable", since
 * this tool read them but did not write them. */
static enum vc_status scan_shard(const char *path, const struct sample_stats_opts *opts,
                                 bool count_funnel, struct stats *st, struct audit_sigs *sigs,
                                 struct vc_err *err)
{
    char group[4200];
    snprintf(group, sizeof group, "shard:%s", path);
    struct wds_reader *r;
    if (wds_reader_open(path, NULL, &r, err) != VC_OK) {
        count_unreadable_rest(st, group, path, count_funnel, err);
        shard_row(st, group, path);
        return VC_ESHARD;
    }
    struct arena *a = arena_new(STATS_ARENA_BYTES);
    enum vc_status rc = a ? VC_OK : VC_EFATAL;
    while (rc == VC_OK) {
        struct sample s;
        sample_init(&s, a);
        struct vc_err e;
        enum vc_status got = wds_reader_next(r, &s, &e);
        if (got == VC_OK || got == VC_ESAMPLE) {
            if (count_funnel)
                stats_count(st, "all", "funnel", "input", 1, NULL);
            stats_count(st, group, "shard", "samples", 1, NULL);
            if (got == VC_OK)
                observe_kept_scores(st, &s);
            if (got == VC_OK && audit_sample(sigs, &s, &e) != VC_OK) {
                *err = e;
                rc = VC_EFATAL;
            } else if (got == VC_OK && sample_stats_observe(st, &s, opts, &e) == VC_OK) {
                if (count_funnel)
                    stats_count(st, "all", "funnel", "readable", 1, NULL);
            } else {
                if (count_funnel)
                    stats_count(st, "all", "funnel", "error", 1, NULL);
                stats_count(st, group, "shard", "unreadable", 1, s.orig_key ? s.orig_key : path);
                if (got == VC_ESAMPLE)
                    stats_count(st, "all", "error", vc_reason_name(e.reason), 1,
                                s.orig_key ? s.orig_key : path);
                fprintf(stderr, "vlmcurate stats: %s: %s: %s\n", path,
                        s.orig_key ? s.orig_key : "?", e.msg);
            }
        } else if (got == VC_ESHARD) {
            count_unreadable_rest(st, group, path, count_funnel, &e);
            *err = e;
            rc = VC_ESHARD;
        } else {
            rc = got == VC_EOF ? VC_EOF : got;
            if (got != VC_EOF)
                *err = e;
        }
        sample_fini(&s);
        arena_reset(a);
    }
    arena_free(a);
    wds_reader_close(r);
    if (shard_row(st, group, path) != VC_OK && rc == VC_EOF)
        rc = vc_err_oom(err);
    return rc == VC_EOF ? VC_OK : rc;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

struct audit_ids {
    const size_t *first; /* first[shard]: global number of its first sample */
    size_t n_shards;
};

static size_t audit_id(const void *ctx, uint32_t unit, uint32_t index)
{
    const struct audit_ids *ids = ctx;
    return unit < ids->n_shards ? ids->first[unit] + index : SIZE_MAX;
}

/* Duplicates over every shard, through the dedup stage's own map/reduce:
 * one signature file per shard, each partition reduced to pairs,
 * union-find.  Adds counters "duplicates" (image_sha256, and with pHash
 * image_phash_clusters, image_phash_samples, image_phash_duplicates,
 * image_phash_largest) to `merged` and prints a line. */
static enum vc_status audit_duplicates(struct audit_sigs *sigs, size_t n_shards,
                                       const char *stats_dir, int radius, struct stats *merged,
                                       struct vc_err *err)
{
    enum { PART_BITS = 4 };
    size_t *first = calloc(n_shards + 1, sizeof *first);
    char **paths = calloc(n_shards + 1, sizeof *paths);
    enum vc_status rc = first && paths ? VC_OK : vc_err_oom(err);
    for (size_t i = 0; rc == VC_OK && i < n_shards; i++) {
        first[i + 1] = first[i] + sigs[i].samples;
        char path[4200];
        snprintf(path, sizeof path, "%s/dedup-sig-%06zu", stats_dir, i);
        if (!(paths[i] = vc_strdup(path)))
            rc = vc_err_oom(err);
        else
            rc = dedup_sig_write(path, sigs[i].v, sigs[i].n, PART_BITS, err);
    }
    struct dedup_reduce_opts o = { .phash_radius = radius < 0 ? 0 : radius,
                                   .part_bits = PART_BITS,
                                   .mem_bytes = 64u << 20,
                                   .max_open = 256 };
    struct audit_ids ids = { first, n_shards };
    struct dedup_clusters exact = { 0 }, near = { 0 };
    if (rc == VC_OK)
        rc = dedup_clusters_init(&exact, first[n_shards], err);
    if (rc == VC_OK && radius >= 0)
        rc = dedup_clusters_init(&near, first[n_shards], err);
    for (uint32_t p = 0; rc == VC_OK && p < (1u << PART_BITS); p++) {
        char edges[4200], tmp[4200];
        snprintf(edges, sizeof edges, "%s/dedup-edges-%02u", stats_dir, p);
        snprintf(tmp, sizeof tmp, "%s/dedup-merge-%02u", stats_dir, p);
        struct dedup_reduce_stats rs;
        rc = dedup_reduce_part(paths, n_shards, p, &o, tmp, edges, NULL, &rs, err);
        if (rc == VC_OK)
            rc = dedup_clusters_add(&exact, edges, DEDUP_M_IMAGE_SHA256, audit_id, &ids, err);
        if (rc == VC_OK && radius >= 0)
            rc = dedup_clusters_add(&near, edges, 0, audit_id, &ids, err);
        unlink(edges);
    }
    for (size_t i = 0; paths && i < n_shards; i++)
        if (paths[i])
            unlink(paths[i]);
    uint64_t n_exact = 0, clusters = 0, in_clusters = 0, largest = 0;
    if (rc == VC_OK) {
        dedup_clusters_count(&exact);
        for (size_t i = 0; i < exact.n; i++)
            n_exact += exact.parent[i] != i;
        rc = stats_count(merged, "all", "duplicates", "image_sha256", n_exact, NULL);
        printf("exact image duplicates (SHA-256): %llu\n", (unsigned long long)n_exact);
    }
    if (rc == VC_OK && radius >= 0) {
        dedup_clusters_count(&near);
        for (size_t i = 0; i < near.n; i++)
            if (near.parent[i] == i && near.size[i] > 1) {
                clusters++;
                in_clusters += near.size[i];
                largest = near.size[i] > largest ? near.size[i] : largest;
            }
        rc = stats_count(merged, "all", "duplicates", "image_phash_clusters", clusters, NULL);
        if (rc == VC_OK)
            rc = stats_count(merged, "all", "duplicates", "image_phash_samples", in_clusters, NULL);
        if (rc == VC_OK)
            rc = stats_count(merged, "all", "duplicates", "image_phash_duplicates",
                             in_clusters - clusters, NULL);
        if (rc == VC_OK)
            rc = stats_count(merged, "all", "duplicates", "image_phash_largest", largest, NULL);
        printf("near-duplicate clusters (pHash radius %d): %llu, %llu samples, largest %llu\n",
               radius, (unsigned long long)clusters, (unsigned long long)in_clusters,
               (unsigned long long)largest);
    }
    dedup_clusters_free(&exact);
    dedup_clusters_free(&near);
    for (size_t i = 0; paths && i < n_shards; i++)
        free(paths[i]);
    free(paths);
    free(first);
    return rc;
}

static int cmp_base(const void *a, const void *b)
{
    return strcmp(base_name(*(char *const *)a), base_name(*(char *const *)b));
}

static bool same_names(const struct shard_list *l)
{
    if (l->n < 2) /* also a run's folder without shards: no list to copy */
        return false;
    char **v = calloc(l->n, sizeof *v);
    if (!v)
        return true;
    memcpy(v, l->paths, l->n * sizeof *v);
    qsort(v, l->n, sizeof *v, cmp_base);
    bool same = false;
    for (size_t i = 1; i < l->n && !same; i++)
        if (strcmp(base_name(v[i - 1]), base_name(v[i])) == 0) {
            fprintf(stderr, "vlmcurate stats: '%s' and '%s': two shards of one name\n", v[i - 1],
                    v[i]);
            same = true;
        }
    free(v);
    return same;
}

/* How many texts got a language, and how many are "und", said on stdout
 * so that nobody reads the language chart as covering every text. */
static void print_languages(const struct stats *st)
{
    uint64_t und = 0, named = 0;
    long all = stats_group_find(st, "all");
    for (size_t i = 0; all >= 0 && i < stats_counter_count(st, (size_t)all); i++) {
        struct stats_counter_view c;
        stats_counter_at(st, (size_t)all, i, &c);
        if (strcmp(c.family, "language") == 0)
            *(strcmp(c.name, SAMPLE_STATS_LANG_UNDETERMINED) == 0 ? &und : &named) += c.count;
    }
    printf("languages: %llu texts identified, %llu '%s' (under %d characters or TextCat "
           "confidence under %.2g)\n",
           (unsigned long long)named, (unsigned long long)und, SAMPLE_STATS_LANG_UNDETERMINED,
           SAMPLE_STATS_LANG_MIN_CHARS, SAMPLE_STATS_LANG_MIN_CONF);
}

int cmd_stats_main(int argc, char **argv)
{
    struct sample_stats_opts opts = { 0 };
    bool language = true;
    const char *out_dir = NULL, *title = NULL;
    int threads = 0, phash_radius = -1;
    struct shard_list shards = { 0 };
    int n_args = 0, status = 0;
    const char *only_arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--decode") == 0) {
            opts.decode = true;
        } else if (strcmp(argv[i], "--phash") == 0) {
            phash_radius = phash_radius < 0 ? 10 : phash_radius;
        } else if (strcmp(argv[i], "--phash-radius") == 0 && i + 1 < argc) {
            long long r;
            if (!vc_arg_long(argv[++i], 0, 31, &r)) {
                fprintf(stderr, "vlmcurate stats: --phash-radius takes 0..31\n");
                return usage_error(&shards);
            }
            phash_radius = (int)r;
        } else if (strcmp(argv[i], "--no-language") == 0) {
            language = false;
        } else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
            out_dir = argv[++i];
        } else if (strcmp(argv[i], "--title") == 0 && i + 1 < argc) {
            title = argv[++i];
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            long long n;
            if (!vc_arg_long(argv[++i], 1, 4096, &n)) {
                fprintf(stderr, "vlmcurate stats: --threads wants a number from 1 to 4096\n");
                return usage_error(&shards);
            }
            threads = (int)n;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "vlmcurate stats: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return usage_error(&shards);
        } else {
            if (collect(argv[i], &shards) != 0)
                status = 2;
            only_arg = argv[i];
            n_args++;
        }
    }
    struct stat st;
    bool one_dir = n_args == 1 && stat(only_arg, &st) == 0 && S_ISDIR(st.st_mode);
    if (!out_dir && one_dir)
        out_dir = only_arg;
    char ledger[4200] = "";
    if (one_dir)
        snprintf(ledger, sizeof ledger, "%s/ledger.jsonl", only_arg);
    /* A run whose every sample was rejected wrote no shard, and its ledger
     * is what the audit is for: why. */
    bool have_ledger = ledger[0] && vc_fs_exists(ledger);
    if (status || n_args == 0 || !out_dir || (shards.n == 0 && !have_ledger)) {
        if (n_args && shards.n == 0 && status == 0)
            fprintf(stderr, "vlmcurate stats: no shards found\n");
        if (n_args && shards.n && !out_dir)
            fprintf(stderr, "vlmcurate stats: --out is required unless the one argument is a "
                            "folder\n");
        usage(stderr);
        return usage_error(&shards);
    }
    /* Per-shard files are named by the shard's file name: two shards of one
     * name (the same shard twice, or one name in two folders) would write
     * one file and count twice. */
    if (same_names(&shards)) {
        for (size_t i = 0; i < shards.n; i++)
            free(shards.paths[i]);
        free(shards.paths);
        return 2;
    }
    char stats_dir[4096];
    snprintf(stats_dir, sizeof stats_dir, "%s/stats", out_dir);
    struct vc_err err;
    if (vc_fs_mkdirs(stats_dir, &err) != VC_OK) {
        fprintf(stderr, "vlmcurate stats: %s\n", err.msg);
        return 1;
    }
    if (language && sample_stats_lang_on(&opts, &err) != VC_OK) {
        fprintf(stderr, "vlmcurate stats: %s (use --no-language)\n", err.msg);
        return 1;
    }
    struct stats **per = calloc(shards.n + 1, sizeof *per);
    struct audit_sigs *sigs = calloc(shards.n + 1, sizeof *sigs);
    if (!per || !sigs) {
        fprintf(stderr, "vlmcurate stats: out of memory\n");
        free(per);
        free(sigs);
        return 1;
    }
    int bad = 0;
    if (threads > 0)
        omp_set_num_threads(threads);
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : bad)
    for (size_t i = 0; i < shards.n; i++) {
        struct vc_err e;
        vc_err_clear(&e);
        per[i] = stats_new();
        if (!per[i]) {
            bad++;
            continue;
        }
        sigs[i] = (struct audit_sigs){ .shard = (uint32_t)i, .phash_radius = phash_radius };
        if (scan_shard(shards.paths[i], &opts, !have_ledger, per[i], &sigs[i], &e) != VC_OK) {
            fprintf(stderr, "vlmcurate stats: %s: %s\n", shards.paths[i], e.msg);
            bad++;
        }
        char path[4200];
        snprintf(path, sizeof path, "%s/%s.json", stats_dir, base_name(shards.paths[i]));
        if (stats_write_json(per[i], path, &e) != VC_OK) {
            fprintf(stderr, "vlmcurate stats: %s\n", e.msg);
            bad++;
        }
    }
    struct stats *merged = stats_new();
    int rc = merged ? 0 : 1;
    for (size_t i = 0; i < shards.n && rc == 0; i++)
        if (per[i] && stats_merge(merged, per[i], &err) != VC_OK)
            rc = 1;
    if (rc == 0 && have_ledger && sample_stats_read_ledger(ledger, merged, &err) != VC_OK) {
        fprintf(stderr, "vlmcurate stats: %s\n", err.msg);
        rc = 1;
    }
    if (rc == 0 &&
        audit_duplicates(sigs, shards.n, stats_dir, phash_radius, merged, &err) != VC_OK) {
        fprintf(stderr, "vlmcurate stats: %s\n", err.msg);
        rc = 1;
    }
    char json_path[4200], html_path[4200];
    snprintf(json_path, sizeof json_path, "%s/stats.json", out_dir);
    snprintf(html_path, sizeof html_path, "%s/report.html", out_dir);
    char default_title[4200];
    snprintf(default_title, sizeof default_title, "vlmcurate audit of %s",
             n_args == 1 ? only_arg : out_dir);
    if (rc == 0 &&
        (stats_write_json(merged, json_path, &err) != VC_OK ||
         report_html_write(merged, title ? title : default_title, html_path, &err) != VC_OK)) {
        fprintf(stderr, "vlmcurate stats: %s\n", err.msg);
        rc = 1;
    }
    if (rc == 0 && language)
        print_languages(merged);
    if (rc == 0)
        printf("%zu shards, %llu samples (%llu unreadable)\nstats:  %s\nreport: %s\n", shards.n,
               (unsigned long long)stats_counter(merged, "all", "funnel", "input"),
               (unsigned long long)stats_counter(merged, "all", "funnel", "error"), json_path,
               html_path);
    stats_free(merged);
    sample_stats_lang_off(&opts);
    for (size_t i = 0; i < shards.n; i++) {
        stats_free(per[i]);
        free(sigs[i].v);
        free(shards.paths[i]);
    }
    free(per);
    free(sigs);
    free(shards.paths);
    return rc ? rc : (bad ? 1 : 0);
}
