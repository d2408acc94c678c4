/* cmd_demo: argument parsing, generation, the run, and the closing
 * summary.  The run itself is run_spec's; this file only adds the tally of
 * what was not written, by state and reason, read back from the ledger so
 * the numbers printed are the ones a user will find there. */
#include "cmd_demo.h"

#include "cmd_run.h"
#include "core/vc_arg.h"
#include "demo.h"
#include "manifests/stats.h"

#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The default output folder, relative to where the command runs. */
#define DEMO_DEFAULT_DIR "demo-out"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vlmcurate demo [--out DIR] [--threads N] [--samples N] [--seed S] [--no-run]\n"
            "                      [--quiet]\n"
            "Generates a small realistic dataset (webdataset shards, image-caption pairs,\n"
            "interleaved documents; varied sizes and formats; some broken files on purpose)\n"
            "and runs the default pipeline on it.\n"
            "  --out DIR     where the data and DIR/out go (default: %s)\n"
            "  --threads N   worker threads (default: all cores)\n"
            "  --samples N   good webdataset samples to generate (default: %d, %d..%d);\n"
            "                pairs and documents scale with it\n"
            "  --seed S      generator seed; the same seed gives the same bytes (default: 42)\n"
            "  --no-run      only generate; run it later with 'vlmcurate run DIR/spec.json'\n"
            "  --quiet       no progress or per-sample error lines on stderr\n"
            "Exit status: 0 done, 1 failed, 2 usage error.\n",
            DEMO_DEFAULT_DIR, DEMO_DEFAULT_SAMPLES, DEMO_MIN_SAMPLES, DEMO_MAX_SAMPLES);
}

/* A whole number in [min, max] from an option's argument; -1 when not. */
static int64_t parse_count(const char *opt, const char *s, int64_t min, int64_t max)
{
    long long v;
    if (!vc_arg_long(s, min, max, &v)) {
        fprintf(stderr, "vlmcurate demo: %s wants a number from %lld to %lld\n", opt,
                (long long)min, (long long)max);
        return -1;
    }
    return v;
}

/* "rejected: img_width 57, ...; error: unsafe_path 4, ...": what was not
 * written and why, from the audit the demo spec's stats stage wrote. */
static void print_not_written(FILE *out, const char *out_dir)
{
    char path[4200];
    struct stats *st = NULL;
    struct vc_err err;
    snprintf(path, sizeof path, "%s/stats.json", out_dir);
    if (stats_read_json(path, &st, &err) != VC_OK)
        return;
    static const char *const families[] = { "reject", "error" };
    for (size_t f = 0; f < 2; f++) {
        int first = 1;
        for (size_t g = 0; g < stats_group_count(st); g++) {
            if (strcmp(stats_group_name(st, g), "all") != 0)
                continue;
            for (size_t i = 0; i < stats_counter_count(st, g); i++) {
                struct stats_counter_view c;
                stats_counter_at(st, g, i, &c);
                if (strcmp(c.family, families[f]) != 0)
                    continue;
                fprintf(out, "%s %s %llu", first ? (f ? "error:" : "rejected:") : ",", c.name,
                        (unsigned long long)c.count);
                first = 0;
            }
        }
        if (!first)
            fprintf(out, "\n");
    }
    stats_free(st);
}

int cmd_demo_main(int argc, char **argv)
{
    const char *dir = DEMO_DEFAULT_DIR;
    int64_t threads = 0, samples = DEMO_DEFAULT_SAMPLES, seed = 42;
    bool run = true;
    FILE *log = stderr;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--no-run")) {
            run = false;
        } else if (!strcmp(a, "--quiet")) {
            log = NULL;
        } else if (!strcmp(a, "--out") && val) {
            dir = argv[++i];
        } else if (!strcmp(a, "--threads") && val) {
            if ((threads = parse_count(a, argv[++i], 1, 4096)) < 0)
                return 2;
        } else if (!strcmp(a, "--samples") && val) {
            if ((samples = parse_count(a, argv[++i], DEMO_MIN_SAMPLES, DEMO_MAX_SAMPLES)) < 0)
                return 2;
        } else if (!strcmp(a, "--seed") && val) {
            /* 2^53: the seed is written into the spec as a JSON number. */
            if ((seed = parse_count(a, argv[++i], 0, (1ll << 53) - 1)) < 0)
                return 2;
        } else {
            fprintf(stderr, "vlmcurate demo: unexpected argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (threads > 0)
        omp_set_num_threads((int)threads); /* generation uses the same budget */

    struct demo_summary sum;
    struct vc_err err = { 0 };
    printf("generating demo data in %s ...\n", dir);
    fflush(stdout);
    if (demo_generate_n(dir, (uint64_t)seed, (uint32_t)samples, &sum, &err) < 0) {
        fprintf(stderr, "vlmcurate demo: %s: %s\n", vc_reason_name(err.reason), err.msg);
        return err.status == VC_EUSAGE ? 2 : 1;
    }
    printf("input: %llu webdataset samples in %u shards, %llu image-caption pairs "
           "(%s/pairs), %llu documents (%s/docs); %llu images, %.1f MB\n",
           (unsigned long long)sum.n_wds_samples, sum.n_wds_shards, (unsigned long long)sum.n_pairs,
           sum.dir, (unsigned long long)sum.n_docs, sum.dir, (unsigned long long)sum.n_images,
           (double)sum.n_bytes / 1e6);
    printf("broken on purpose: %llu samples and files, listed in %s/demo.json\n",
           (unsigned long long)sum.n_defects, sum.dir);
    printf("captions: json synthetic_caption, from the tiny RANDOM Idefics2 checkpoint in "
           "%s/%s: they are noise (point the caption stage's \"model\" at a real checkpoint "
           "for real captions)\n",
           sum.dir, DEMO_MODEL_DIR);
    if (!run) {
        printf("spec: %s\nrun it with: vlmcurate run %s\n", sum.spec_path, sum.spec_path);
        return 0;
    }
    printf("running %s ...\n", sum.spec_path);
    fflush(stdout);
    /* DIR/out belongs to the demo: a run of other demo data there is stale
     * and replaced; a run of this very data resumes. */
    struct run_opts ro = { .threads = (int)threads, .force = true, .log = log };
    struct exec_result res;
    char *out_dir = NULL;
    enum vc_status rc = run_spec(sum.spec_path, &ro, &res, &out_dir, &err);
    if (rc < 0) {
        fprintf(stderr, "vlmcurate demo: %s: %s\n", vc_reason_name(err.reason), err.msg);
        free(out_dir);
        return rc == VC_EUSAGE ? 2 : 1;
    }
    run_print_summary(stdout, out_dir, &res);
    print_not_written(stdout, out_dir);
    printf("report: %s/report.html (open it in a browser)\n", out_dir);
    printf("next: vlmcurate inspect %s/demo-000000.tar\n", out_dir);
    free(out_dir);
    return 0;
}
