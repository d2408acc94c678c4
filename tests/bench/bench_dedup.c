/* Benchmarks of the dedup stage's two costly steps.
 *
 *   bench_dedup phash [--images N]
 *       pHash signatures per CPU-second over the same N JPEG pictures
 *       (1280x960, made here by img_encode), through the reduced decode
 *       (TurboJPEG DCT scaling straight to grey) and through a full RGB
 *       decode + luma conversion: the ratio is what the scaled decode buys.
 *
 *   bench_dedup reduce --sigs N [--mem MB] [--work DIR]
 *       Writes N signatures as 64 unit files (a realistic mix per sample:
 *       image SHA-256, text exact, 14 MinHash bands; 1 % planted copies),
 *       then runs every partition of the reduce in a child process and
 *       reports its signatures/s and peak RSS; then sorts the same keys
 *       (16 hex digits a line) with GNU sort -S MB in a child, its time and
 *       peak RSS, for scale.  Peak RSS is the child's ru_maxrss, so the
 *       generation step does not count.
 *
 * Single-threaded throughout: "per core" figures. */
#include "core/img.h"
#include "core/vc_fs.h"
#include "stages/dedup_hash.h"
#include "stages/dedup_reduce.h"
#include "stages/dedup_sig.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng(uint64_t *s)
{
    return dedup_mix64(++*s);
}

static int bench_phash(int n)
{
    uint8_t **jpg = calloc((size_t)n, sizeof *jpg);
    size_t *len = calloc((size_t)n, sizeof *len);
    uint64_t seed = 1;
    for (int i = 0; i < n; i++) {
        struct img im = { .w = 1280, .h = 960, .ch = 3, .pixels = malloc((size_t)1280 * 960 * 3) };
        double fx = 1 + (double)(rng(&seed) % 7), fy = 1 + (double)(rng(&seed) % 7);
        for (uint32_t y = 0; y < im.h; y++)
            for (uint32_t x = 0; x < im.w; x++)
                for (int c = 0; c < 3; c++)
                    im.pixels[((size_t)y * im.w + x) * 3 + c] =
                        (uint8_t)(128 + 100 * sin(fx * x / 200.0 + c) * cos(fy * y / 150.0) +
                                  (double)(rng(&seed) % 24) - 12);
        if (img_encode(&im, IMG_FORMAT_JPEG, 85, &jpg[i], &len[i], NULL) != VC_OK)
            return 1;
        img_release(&im);
    }
    uint64_t sink = 0;
    double t0 = cpu_s();
    for (int i = 0; i < n; i++) {
        uint64_t ph = 0;
        dedup_phash_image(jpg[i], len[i], NULL, &ph, NULL);
        sink ^= ph;
    }
    double scaled = cpu_s() - t0;
    t0 = cpu_s();
    for (int i = 0; i < n; i++) {
        struct img im;
        if (img_decode(jpg[i], len[i], NULL, IMG_DECODE_NO_ORIENT, &im, NULL) != VC_OK)
            return 1;
        for (size_t k = 0; k < (size_t)im.w * im.h; k++) {
            const uint8_t *p = im.pixels + 3 * k;
            im.pixels[k] =
                (uint8_t)((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16);
        }
        im.ch = 1;
        sink ^= dedup_phash_luma(&im);
        img_release(&im);
    }
    double full = cpu_s() - t0;
    printf("pHash of %d JPEGs 1280x960 (%zu KB avg), one core:\n", n, len[0] / 1024);
    printf("  scaled decode (1/8, grey)   %8.1f signatures/s\n", n / scaled);
    printf("  full decode + luma          %8.1f signatures/s\n", n / full);
    printf("  ratio scaled / full         %8.2fx   (checksum %016llx)\n", full / scaled,
           (unsigned long long)sink);
    for (int i = 0; i < n; i++)
        free(jpg[i]);
    free(jpg);
    free(len);
    return 0;
}

enum { FILES = 64, PART_BITS = 4 };

/* Per sample: sha256 (exact), text exact, 14 MinHash bands.  One sample in
 * a hundred repeats an earlier one (same keys). */
static int gen_sigs(const char *dir, uint64_t n_sigs, const char *keys_txt)
{
    uint64_t per_sample = 16, n_samples = n_sigs / per_sample, seed = 7;
    uint64_t per_file = (n_samples + FILES - 1) / FILES;
    struct dedup_sig *v = malloc(per_file * per_sample * sizeof *v);
    FILE *kt = fopen(keys_txt, "w");
    if (!v || !kt)
        return 1;
    uint64_t s = 0;
    for (uint32_t f = 0; f < FILES; f++) {
        size_t n = 0;
        for (uint64_t i = 0; i < per_file && s < n_samples; i++, s++) {
            uint64_t id = (rng(&seed) % 100 == 0 && s > 0) ? rng(&seed) % s : s;
            uint64_t k = dedup_mix64(id * 0x9e3779b97f4a7c15ull);
            for (unsigned m = 0; m < per_sample; m++) {
                unsigned method = m == 0   ? DEDUP_M_IMAGE_SHA256
                                  : m == 1 ? DEDUP_M_TEXT_EXACT
                                           : DEDUP_M_TEXT_MINHASH;
                unsigned band = m < 2 ? 0 : m - 2;
                v[n++] = (struct dedup_sig){ .key = dedup_mix64(k + m),
                                             .aux = m < 2 ? k : k & 0xffff,
                                             .unit = f,
                                             .index = (uint32_t)i,
                                             .weight = 1,
                                             .kind = dedup_kind(method, band) };
                fprintf(kt, "%016llx\n", (unsigned long long)v[n - 1].key);
            }
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/sig-%06u.bin", dir, f);
        if (dedup_sig_write(path, v, n, PART_BITS, NULL) != VC_OK)
            return 1;
    }
    fclose(kt);
    free(v);
    return 0;
}

static int reduce_all(const char *dir, size_t mem_mb)
{
    char *paths[FILES];
    for (int f = 0; f < FILES; f++) {
        paths[f] = malloc(4096);
        snprintf(paths[f], 4096, "%s/sig-%06u.bin", dir, f);
    }
    struct dedup_reduce_opts o = { .phash_radius = 10,
                                   .minhash_threshold = 0.8,
                                   .part_bits = PART_BITS,
                                   .mem_bytes = mem_mb << 20,
                                   .max_open = 256 };
    uint64_t records = 0, edges = 0;
    for (uint32_t p = 0; p < (1u << PART_BITS); p++) {
        char edges_path[4096], tmp[4096];
        snprintf(edges_path, sizeof edges_path, "%s/edges-%02u.bin", dir, p);
        snprintf(tmp, sizeof tmp, "%s/merge-%02u", dir, p);
        struct dedup_reduce_stats st;
        struct vc_err err = { 0 };
        if (dedup_reduce_part(paths, FILES, p, &o, tmp, edges_path, NULL, &st, &err) != VC_OK) {
            fprintf(stderr, "reduce: %s\n", err.msg);
            return 1;
        }
        records += st.records;
        edges += st.edges;
    }
    printf("  reduce: %llu signatures, %llu pairs\n", (unsigned long long)records,
           (unsigned long long)edges);
    for (int f = 0; f < FILES; f++)
        free(paths[f]);
    return 0;
}

/* Runs fn in a child (or argv via exec when fn is NULL); wall seconds and
 * the child's peak RSS in MiB. */
static int child(int (*fn)(const char *, size_t), const char *dir, size_t mem_mb, char *const *argv,
                 double *wall, double *rss_mb, double *cpu)
{
    double t0 = wall_s();
    fflush(stdout); /* or the child prints our buffered lines again */
    pid_t pid = fork();
    if (pid == 0) {
        if (fn) {
            int rc = fn(dir, mem_mb);
            fflush(stdout);
            _exit(rc);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid)
        return 1;
    *wall = wall_s() - t0;
    *rss_mb = (double)ru.ru_maxrss / 1024.0;
    *cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

static int bench_reduce(uint64_t n_sigs, size_t mem_mb, const char *dir)
{
    char keys[4096], sorted[4096], mem[32];
    if (vc_fs_mkdirs(dir, NULL) != VC_OK)
        return 1;
    snprintf(keys, sizeof keys, "%s/keys.txt", dir);
    snprintf(sorted, sizeof sorted, "%s/keys.sorted", dir);
    snprintf(mem, sizeof mem, "%zuM", mem_mb);
    double t0 = wall_s();
    if (gen_sigs(dir, n_sigs, keys))
        return 1;
    printf("%llu signatures in %d unit files (%.1f s to make)\n", (unsigned long long)n_sigs, FILES,
           wall_s() - t0);
    double w, rss, cpu;
    if (child(reduce_all, dir, mem_mb, NULL, &w, &rss, &cpu))
        return 1;
    printf("  dedup reduce, memory_mb %zu: %.1f s wall, %.1f s CPU, %.2f M signatures/s per "
           "core, peak RSS %.1f MiB\n",
           mem_mb, w, cpu, (double)n_sigs / cpu / 1e6, rss);
    double rw, rrss, rcpu;
    char *argv[] = { "sort", "-S", mem, "-T", (char *)dir, "-o", sorted, keys, NULL };
    setenv("LC_ALL", "C", 1);
    if (child(NULL, NULL, 0, argv, &rw, &rrss, &rcpu))
        return 1;
    printf("  GNU sort -S %s (same keys as text): %.1f s wall, %.1f s CPU, %.2f M keys/s per "
           "core, peak RSS %.1f MiB\n",
           mem, rw, rcpu, (double)n_sigs / rcpu / 1e6, rrss);
    printf("  ratio dedup reduce / GNU sort (per core): %.2fx\n", rcpu / cpu);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "phash") == 0) {
        int n = 200;
        for (int i = 2; i + 1 < argc; i += 2)
            if (strcmp(argv[i], "--images") == 0)
                n = atoi(argv[i + 1]);
        return bench_phash(n > 0 ? n : 200);
    }
    if (argc >= 2 && strcmp(argv[1], "reduce") == 0) {
        uint64_t n = 10000000;
        size_t mem = 256;
        const char *work = "bench-dedup";
        for (int i = 2; i + 1 < argc; i += 2) {
            if (strcmp(argv[i], "--sigs") == 0)
                n = strtoull(argv[i + 1], NULL, 10);
            else if (strcmp(argv[i], "--mem") == 0)
                mem = (size_t)strtoull(argv[i + 1], NULL, 10);
            else if (strcmp(argv[i], "--work") == 0)
                work = argv[i + 1];
        }
        return bench_reduce(n, mem, work);
    }
    fprintf(stderr, "usage: bench_dedup phash [--images N]\n"
                    "       bench_dedup reduce [--sigs N] [--mem MB] [--work DIR]\n");
    return 2;
}
