/* Benchmark of a whole run, ingest -> reshard -> write, on demo data (a few
 * thousand pictures from pipeline/demo), against what the same bytes cost
 * elsewhere: reading them (cat), copying them through GNU tar (extract +
 * create: the least any reshard can do) and decoding the JPEGs with
 * libjpeg-turbo alone (img_decode, whose overhead over raw tjDecompress2
 * bench_img measures).  Also header probe vs full decode on the same
 * pictures.  Everything runs in one process run, so the ratios compare
 * like with like.
 *
 * "per core" is samples per CPU-second of the command (its user + system
 * time), so it stays meaningful when a run uses several threads.
 *
 * usage: bench_pipeline [--bin VLMCURATE] [--samples N] [--work DIR] [--threads T] */
#include "bench_clock.h"
#include "core/img.h"
#include "core/vc_fs.h"
#include "core/vc_mem.h"
#include "pipeline/demo.h"
#include "stages/wds_read.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#ifndef VC_CLI_PATH
#    define VC_CLI_PATH "vlmcurate"
#endif

struct opts {
    const char *bin, *work;
    uint32_t samples;
    int threads;
};

struct cost {
    double wall, cpu; /* seconds */
};

static double children_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

/* Runs a shell command and measures it; exits the benchmark on failure. */
static struct cost timed_shell(const char *cmd)
{
    double w0 = bench_wall_s(), c0 = children_cpu_s();
    int rc = system(cmd);
    struct cost c = { bench_wall_s() - w0, children_cpu_s() - c0 };
    if (rc != 0) {
        fprintf(stderr, "bench_pipeline: command failed (%d): %s\n", rc, cmd);
        exit(1);
    }
    return c;
}

static void row(const char *label, uint64_t n, double bytes, struct cost c)
{
    printf("| %-48s | %6llu | %7.2f | %7.2f | %9.0f | %9.0f | %7.1f |\n", label,
           (unsigned long long)n, c.wall, c.cpu, n / c.wall, n / c.cpu, bytes / 1e6 / c.wall);
}

/* ---- decode-only rows, in process ---------------------------------------- */

struct img_costs {
    struct cost probe, decode_jpeg, decode_all;
    uint64_t n_images, n_jpeg;
};

/* Times probe and decode over the pictures of one shard, held in memory
 * so that reading the shard is not part of it. */
static void time_shard_images(const char *path, struct img_costs *ic)
{
    enum { MAX_SAMPLES = 1024 }; /* demo shards hold at most 100 */
    struct arena *arena = arena_new(1u << 30);
    struct sample *samples = calloc(MAX_SAMPLES, sizeof *samples);
    const struct sample_field *pics[MAX_SAMPLES];
    struct wds_reader *r;
    struct vc_err err;
    if (!arena || !samples || wds_reader_open(path, NULL, &r, &err) < 0) {
        fprintf(stderr, "bench_pipeline: cannot read %s\n", path);
        exit(1);
    }
    size_t n = 0, n_pics = 0;
    for (; n < MAX_SAMPLES; n++) {
        sample_init(&samples[n], arena);
        if (wds_reader_next(r, &samples[n], &err) != VC_OK)
            break;
        const struct sample_field *f = sample_main_image(&samples[n]);
        if (f)
            pics[n_pics++] = f;
    }
    wds_reader_close(r);
    /* Pass 0 probes, pass 1 decodes the JPEGs, pass 2 every picture. */
    for (int pass = 0; pass < 3; pass++) {
        struct cost *c = pass == 0 ? &ic->probe : pass == 1 ? &ic->decode_jpeg : &ic->decode_all;
        double w0 = bench_wall_s(), c0 = bench_cpu_s();
        for (size_t i = 0; i < n_pics; i++) {
            struct img_info info;
            struct img im;
            if (pass == 0) {
                ic->n_images += img_probe(pics[i]->data, pics[i]->size, NULL, &info, &err) == 0;
                continue;
            }
            if (pass == 1 && img_sniff(pics[i]->data, pics[i]->size) != IMG_FORMAT_JPEG)
                continue;
            ic->n_jpeg += pass == 1;
            if (img_decode(pics[i]->data, pics[i]->size, NULL, 0, &im, &err) == VC_OK)
                img_release(&im);
        }
        c->wall += bench_wall_s() - w0;
        c->cpu += bench_cpu_s() - c0;
    }
    for (size_t i = 0; i <= n && i < MAX_SAMPLES; i++)
        sample_fini(&samples[i]);
    free(samples);
    arena_free(arena);
}

/* ---- pipeline rows ------------------------------------------------------- */

/* A spec over the good demo shards; `reencode` adds img2dataset's
 * keep_ratio 256 + JPEG q95 to the write stage. */
static void write_spec(const char *path, const char *data_dir, uint32_t n_good, bool reencode)
{
    char urls[4400];
    snprintf(urls, sizeof urls, "%s/wds/demo-{000000..%06u}.tar", data_dir, n_good - 1);
    cJSON *spec = cJSON_CreateObject();
    cJSON *src = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(spec, "sources"), src);
    cJSON_AddStringToObject(src, "name", "web");
    cJSON_AddStringToObject(src, "type", "webdataset");
    cJSON_AddStringToObject(src, "urls", urls);
    cJSON *stages = cJSON_AddArrayToObject(spec, "stages");
    cJSON *ingest = cJSON_CreateObject(), *reshard = cJSON_CreateObject();
    cJSON *write = cJSON_CreateObject();
    cJSON_AddItemToArray(stages, ingest);
    cJSON_AddItemToArray(stages, reshard);
    cJSON_AddItemToArray(stages, write);
    cJSON_AddStringToObject(ingest, "stage", "ingest");
    cJSON_AddStringToObject(reshard, "stage", "reshard");
    cJSON_AddStringToObject(reshard, "shuffle", "buffer");
    cJSON_AddNumberToObject(reshard, "seed", 1);
    cJSON_AddStringToObject(write, "stage", "write");
    if (reencode) {
        cJSON_AddStringToObject(write, "resize_mode", "keep_ratio");
        cJSON_AddNumberToObject(write, "image_size", 256);
        cJSON_AddStringToObject(write, "encode_format", "jpg");
        cJSON_AddNumberToObject(write, "encode_quality", 95);
    }
    cJSON *out = cJSON_AddObjectToObject(spec, "output");
    cJSON_AddStringToObject(out, "dir", "out");
    cJSON_AddStringToObject(out, "prefix", "bench");
    cJSON_AddNumberToObject(out, "samples_per_shard", 1000);
    char *text = cJSON_Print(spec);
    struct vc_err err;
    if (!text || vc_fs_write_atomic(path, text, strlen(text), &err) < 0) {
        fprintf(stderr, "bench_pipeline: cannot write %s\n", path);
        exit(1);
    }
    free(text);
    cJSON_Delete(spec);
}

/* totals.input and totals.written of the run, from its run.json. */
static void run_totals(const char *out_dir, uint64_t *input, uint64_t *written)
{
    char path[4200], *text = NULL;
    size_t size;
    struct vc_err err;
    snprintf(path, sizeof path, "%s/run.json", out_dir);
    *input = *written = 0;
    if (vc_fs_read_file(path, 64u << 20, &text, &size, &err) < 0)
        return;
    cJSON *j = cJSON_Parse(text);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "totals");
    *input = (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(t, "input"));
    *written = (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(t, "written"));
    cJSON_Delete(j);
    free(text);
}

static struct cost run_pipeline(const struct opts *o, const char *spec, const char *out_dir,
                                int threads, uint64_t expect_input)
{
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && '%s' run '%s' --threads %d --out '%s' >/dev/null",
             out_dir, o->bin, spec, threads, out_dir);
    struct cost c = timed_shell(cmd);
    uint64_t input, written;
    run_totals(out_dir, &input, &written);
    if (input != expect_input)
        fprintf(stderr, "bench_pipeline: warning: run.json counts %llu input samples, not %llu\n",
                (unsigned long long)input, (unsigned long long)expect_input);
    return c;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_pipeline [--bin VLMCURATE] [--samples N (3000)] "
                    "[--work DIR (bench-work)] [--threads T (1)]\n");
    exit(2);
}

static struct opts parse(int argc, char **argv)
{
    struct opts o = { VC_CLI_PATH, "bench-work", 3000, 1 };
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (!strcmp(argv[i], "--bin"))
            o.bin = argv[++i];
        else if (!strcmp(argv[i], "--work"))
            o.work = argv[++i];
        else if (!strcmp(argv[i], "--samples"))
            o.samples = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--threads"))
            o.threads = atoi(argv[++i]);
        else
            usage();
    }
    if (o.samples < DEMO_MIN_SAMPLES || o.threads < 1)
        usage();
    return o;
}

int main(int argc, char **argv)
{
    struct opts o = parse(argc, argv);
    static char cmd[1 << 17];
    char data[4200];
    snprintf(data, sizeof data, "%s/data", o.work);
    struct demo_summary sum;
    struct vc_err err;
    double t0 = bench_wall_s();
    if (demo_generate_n(data, 1, o.samples, &sum, &err) < 0) {
        fprintf(stderr, "bench_pipeline: %s\n", err.msg);
        return 1;
    }
    double gen_s = bench_wall_s() - t0;
    uint32_t n_good = sum.n_wds_shards - 2; /* leave out the corrupt and hostile shards */
    double bytes = 0;
    char shards[1 << 16] = "";
    size_t len = 0;
    for (uint32_t s = 0; s < n_good; s++) {
        char p[4400];
        snprintf(p, sizeof p, "%s/wds/demo-%06u.tar", sum.dir, s);
        FILE *f = fopen(p, "rb");
        if (f && fseek(f, 0, SEEK_END) == 0)
            bytes += (double)ftell(f);
        if (f)
            fclose(f);
        len += (size_t)snprintf(shards + len, sizeof shards - len, " 'demo-%06u.tar'", s);
    }
    printf("bench_pipeline: %u demo samples in %u shards, %.1f MB (generated in %.1f s); "
           "CLI %s\n\n",
           o.samples, n_good, bytes / 1e6, gen_s, o.bin);
    printf("| %-48s | %6s | %7s | %7s | %9s | %9s | %7s |\n", "step", "items", "wall s", "cpu s",
           "items/s", "per core", "MB/s");
    printf("|--------------------------------------------------|--------|---------|---------|"
           "-----------|-----------|---------|\n");

    snprintf(cmd, sizeof cmd, "cd '%s/wds' && cat %s >/dev/null", sum.dir, shards);
    struct cost cat = timed_shell(cmd);
    row("cat shards > /dev/null", o.samples, bytes, cat);
    snprintf(cmd, sizeof cmd,
             "set -e; cd '%s'; rm -rf tar-x tar-out; mkdir tar-x tar-out; "
             "for s in %s; do tar -xf \"data/wds/$s\" -C tar-x; tar -cf \"tar-out/$s\" -C tar-x .; "
             "rm -rf tar-x; mkdir tar-x; done; rm -rf tar-x tar-out",
             o.work, shards);
    struct cost tar = timed_shell(cmd);
    row("GNU tar extract + create (copy)", o.samples, bytes, tar);

    struct img_costs ic = { 0 };
    for (uint32_t s = 0; s < n_good; s++) {
        char p[4400];
        snprintf(p, sizeof p, "%s/wds/demo-%06u.tar", sum.dir, s);
        time_shard_images(p, &ic);
    }
    row("img_probe, every picture (header only)", ic.n_images, 0, ic.probe);
    row("img_decode, JPEGs only (libjpeg-turbo)", ic.n_jpeg, 0, ic.decode_jpeg);
    row("img_decode, every picture", ic.n_images, 0, ic.decode_all);

    char spec_copy[4400], spec_re[4400], out[4400];
    snprintf(spec_copy, sizeof spec_copy, "%s/spec-copy.json", o.work);
    snprintf(spec_re, sizeof spec_re, "%s/spec-reencode.json", o.work);
    snprintf(out, sizeof out, "%s/out", o.work);
    write_spec(spec_copy, sum.dir, n_good, false);
    write_spec(spec_re, sum.dir, n_good, true);
    struct cost copy1 = run_pipeline(&o, spec_copy, out, 1, o.samples);
    row("vlmcurate run, no re-encode, 1 thread", o.samples, bytes, copy1);
    struct cost re1 = run_pipeline(&o, spec_re, out, 1, o.samples);
    row("vlmcurate run, keep_ratio 256 + JPEG q95, 1 thr", o.samples, bytes, re1);
    if (o.threads > 1) {
        char label[64];
        snprintf(label, sizeof label, "vlmcurate run, no re-encode, %d threads", o.threads);
        row(label, o.samples, bytes, run_pipeline(&o, spec_copy, out, o.threads, o.samples));
        snprintf(label, sizeof label, "vlmcurate run, re-encode, %d threads", o.threads);
        row(label, o.samples, bytes, run_pipeline(&o, spec_re, out, o.threads, o.samples));
    }

    double copy_pc = o.samples / copy1.cpu, re_pc = o.samples / re1.cpu;
    printf("\nper core: vlmcurate (no re-encode) / GNU tar copy  = %.2f\n",
           copy_pc / (o.samples / tar.cpu));
    printf("per core: vlmcurate (re-encode) / JPEG decode alone = %.2f\n",
           re_pc / (ic.n_jpeg / ic.decode_jpeg.cpu));
    printf("per core: re-encode / no re-encode                  = %.2f\n", re_pc / copy_pc);
    printf("header probe / full decode speed                    = %.0fx\n",
           (ic.n_images / ic.probe.cpu) / (ic.n_images / ic.decode_all.cpu));
    return 0;
}
