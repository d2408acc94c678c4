/* Benchmarks of the dedup stage's two costly steps.
 *
 *   bench_dedup phash [--images N]
 *       pHash signatures per CPU-second over the same N pictures (1280x960,
 *       made here by img_encode) as JPEG, PNG and WebP, through the reduced
 *       decode (img_decode_reduced with IMG_DECODE_LUMA: TurboJPEG DCT
 *       scaling straight to grey, PNG block averaging, libwebp's scaler)
 *       and through a full RGB decode + luma conversion: the ratio is what
 *       the reduced decode buys.
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
 *   bench_dedup chain [--samples N] [--work DIR] [--bin VLMCURATE]
 *                     [--python PY] [--peer PIL_PIPELINE_PY]
 *       The whole chain ingest -> filter (OBELICS width/height/aspect)
 *       -> dedup (SHA-256 + pHash radius 10) -> write at --threads 1 over
 *       the good demo shards of N samples, against the Python peer
 *       (shared/peers/pil_pipeline.py: tarfile, PIL, imagededup's pHash) on
 *       the same shards, and against the C decode bound: the same pictures
 *       probed (what the filters read) and, those passing the filters,
 *       decoded to grey at the pHash's scale, in this process.  Per core =
 *       samples per CPU-second of the command.  Beside the bound, the
 *       SHA-256 of the kept pictures' bytes, which the chain computes on
 *       top of decoding them (dedup's exact key, and again inside each
 *       shard's sha256), so the share of the gap it explains is shown.
 *
 *   bench_dedup run [--samples N] [--work DIR] [--bin VLMCURATE]
 *       Peak RSS and CPU of a whole run ingest -> dedup (defaults) -> write
 *       over N tiny samples (a distinct 8x8 PNG and an 8-word caption,
 *       10,000 per shard), and of the same run without dedup, at
 *       --threads 2: what dedup costs per sample.
 *
 * Single-threaded throughout unless said: "per core" figures.  Lines
 * starting "RESULT" carry the figures the README quotes. */
#include "bench_clock.h"
#include "core/img.h"
#include "core/sample.h"
#include "core/sha256.h"
#include "core/vc_fs.h"
#include "core/vc_mem.h"
#include "pipeline/demo.h"
#include "stages/dedup_hash.h"
#include "stages/dedup_reduce.h"
#include "stages/dedup_sig.h"
#include "stages/wds_read.h"
#include "stages/wds_write.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#ifndef VC_CLI_PATH
#    define VC_CLI_PATH "vlmcurate"
#endif

static uint64_t rng(uint64_t *s)
{
    return dedup_mix64(++*s);
}

static int bench_phash(int n)
{
    static const enum img_format fmts[3] = { IMG_FORMAT_JPEG, IMG_FORMAT_PNG, IMG_FORMAT_WEBP };
    static const char *const names[3] = { "JPEG q85", "PNG", "WebP q85" };
    uint8_t **enc = calloc((size_t)n * 3, sizeof *enc);
    size_t *len = calloc((size_t)n * 3, sizeof *len);
    if (!enc || !len)
        return 1;
    uint64_t seed = 1;
    for (int i = 0; i < n; i++) {
        struct img im = { .w = 1280, .h = 960, .ch = 3, .pixels = malloc((size_t)1280 * 960 * 3) };
        if (!im.pixels)
            return 1;
        double fx = 1 + (double)(rng(&seed) % 7), fy = 1 + (double)(rng(&seed) % 7);
        for (uint32_t y = 0; y < im.h; y++)
            for (uint32_t x = 0; x < im.w; x++)
                for (int c = 0; c < 3; c++)
                    im.pixels[((size_t)y * im.w + x) * 3 + c] =
                        (uint8_t)(128 + 100 * sin(fx * x / 200.0 + c) * cos(fy * y / 150.0) +
                                  (double)(rng(&seed) % 24) - 12);
        for (int f = 0; f < 3; f++)
            if (img_encode(&im, fmts[f], 85, &enc[f * n + i], &len[f * n + i], NULL) != VC_OK)
                return 1;
        img_release(&im);
    }
    uint64_t sink = 0;
    printf("pHash of %d pictures 1280x960, one core:\n", n);
    for (int f = 0; f < 3; f++) {
        uint8_t **e = enc + f * n;
        size_t *l = len + f * n;
        double t0 = bench_cpu_s();
        for (int i = 0; i < n; i++) {
            uint64_t ph = 0;
            dedup_phash_image(e[i], l[i], NULL, &ph, NULL);
            sink ^= ph;
        }
        double scaled = bench_cpu_s() - t0;
        t0 = bench_cpu_s();
        for (int i = 0; i < n; i++) {
            struct img im;
            if (img_decode(e[i], l[i], NULL, IMG_DECODE_NO_ORIENT, &im, NULL) != VC_OK)
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
        double full = bench_cpu_s() - t0;
        printf("  %-9s (%4zu KB avg) reduced decode %8.1f/s, full decode + luma %8.1f/s\n",
               names[f], l[0] / 1024, n / scaled, n / full);
        printf("RESULT phash_%s_reduced_per_core=%.1f phash_%s_full_per_core=%.1f "
               "phash_%s_ratio=%.2f\n",
               f == 0   ? "jpeg"
               : f == 1 ? "png"
                        : "webp",
               n / scaled,
               f == 0   ? "jpeg"
               : f == 1 ? "png"
                        : "webp",
               n / full,
               f == 0   ? "jpeg"
               : f == 1 ? "png"
                        : "webp",
               full / scaled);
    }
    printf("  (checksum %016llx)\n", (unsigned long long)sink);
    for (int i = 0; i < 3 * n; i++)
        free(enc[i]);
    free(enc);
    free(len);
    return 0;
}

enum { FILES = 64, PART_BITS = 4 };

/* "%016llx\n" without printf's parsing, which took most of the time to
 * make 100M keys. */
static void put_hex_line(FILE *f, uint64_t k)
{
    char line[17];
    for (int i = 15; i >= 0; i--, k >>= 4)
        line[i] = "0123456789abcdef"[k & 15];
    line[16] = '\n';
    fwrite(line, 1, sizeof line, f);
}

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
                put_hex_line(kt, v[n - 1].key);
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
    double t0 = bench_wall_s();
    fflush(stdout); /* or the child prints our buffered lines again */
    pid_t pid = fork();
    if (pid == 0) {
        if (fn) {
            int rc = fn(dir, mem_mb);
            fflush(stdout);
            _exit(rc);
        }
        /* The CLI's progress lines would mix with the table. */
        if (!freopen("/dev/null", "w", stdout))
            _exit(126);
        execvp(argv[0], argv);
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid)
        return 1;
    *wall = bench_wall_s() - t0;
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
    double t0 = bench_wall_s();
    if (gen_sigs(dir, n_sigs, keys))
        return 1;
    printf("%llu signatures in %d unit files (%.1f s to make)\n", (unsigned long long)n_sigs, FILES,
           bench_wall_s() - t0);
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

struct wopts {
    const char *work, *bin, *python, *peer;
    uint64_t samples;
};

static int write_text(const char *path, const char *text)
{
    struct vc_err err;
    if (vc_fs_write_atomic(path, text, strlen(text), &err) != VC_OK) {
        fprintf(stderr, "bench_dedup: %s\n", err.msg);
        return 1;
    }
    return 0;
}

/* What the chain's filters let through (OBELICS's defaults). */
static bool passes_filters(const struct img_info *in)
{
    uint32_t lo = in->width < in->height ? in->width : in->height;
    uint32_t hi = in->width ^ in->height ^ lo;
    double aspect = (double)in->width / (in->height ? in->height : 1);
    return lo >= 150 && hi <= 20000 && aspect >= 0.5 && aspect <= 2;
}

/* The C decode bound of one shard: its pictures probed and, those the
 * filters keep, decoded to grey at the pHash's scale; the shard is read
 * into memory first, so only probing and decoding are timed.  Apart from
 * the bound, *hash_cpu: SHA-256 over the kept pictures' bytes, work the
 * chain must do on top of the decode (dedup's exact key), and once more
 * as part of the shard it writes (the shard's sha256). */
static int decode_bound(const char *path, double *cpu, double *hash_cpu, uint64_t *n_pics,
                        uint64_t *n_decoded)
{
    enum { MAX_SAMPLES = 1024 };
    struct arena *arena = arena_new(1u << 30);
    struct sample *v = calloc(MAX_SAMPLES, sizeof *v);
    struct wds_reader *r;
    struct vc_err err;
    if (!arena || !v || wds_reader_open(path, NULL, &r, &err) != VC_OK)
        return 1;
    size_t n = 0;
    for (; n < MAX_SAMPLES; n++) {
        sample_init(&v[n], arena);
        if (wds_reader_next(r, &v[n], &err) != VC_OK)
            break;
    }
    wds_reader_close(r);
    double t0 = bench_cpu_s();
    for (size_t i = 0; i < n; i++) {
        const struct sample_field *f = sample_main_image(&v[i]);
        struct img_info info;
        if (!f || img_probe(f->data, f->size, NULL, &info, &err) != VC_OK)
            continue;
        ++*n_pics;
        if (!passes_filters(&info))
            continue;
        struct img im;
        if (img_decode_reduced(f->data, f->size, NULL, 64, IMG_DECODE_LUMA | IMG_DECODE_NO_ORIENT,
                               &im, &err) == VC_OK) {
            img_release(&im);
            ++*n_decoded;
        }
    }
    *cpu += bench_cpu_s() - t0;
    t0 = bench_cpu_s();
    uint8_t digest[32];
    for (size_t i = 0; i < n; i++) {
        const struct sample_field *f = sample_main_image(&v[i]);
        struct img_info info;
        if (f && img_probe(f->data, f->size, NULL, &info, &err) == VC_OK && passes_filters(&info)) {
            struct sha256 c;
            sha256_init(&c);
            sha256_update(&c, f->data, f->size);
            sha256_final(&c, digest);
        }
    }
    *hash_cpu += bench_cpu_s() - t0;
    for (size_t i = 0; i <= n && i < MAX_SAMPLES; i++)
        sample_fini(&v[i]);
    free(v);
    arena_free(arena);
    return 0;
}

static int bench_chain(const struct wopts *o)
{
    char data[4200], spec[4300], out[4300], peer_out[4300];
    snprintf(data, sizeof data, "%s/data", o->work);
    snprintf(spec, sizeof spec, "%s/chain.json", o->work);
    snprintf(out, sizeof out, "%s/chain-out", o->work);
    snprintf(peer_out, sizeof peer_out, "%s/peer.tar", o->work);
    struct demo_summary sum;
    struct vc_err err;
    if (vc_fs_mkdirs(o->work, &err) != VC_OK ||
        demo_generate_n(data, 1, (uint32_t)o->samples, &sum, &err) != VC_OK) {
        fprintf(stderr, "bench_dedup: %s\n", err.msg);
        return 1;
    }
    uint32_t n_good = sum.n_wds_shards - 2; /* not the corrupt and hostile shards */
    /* Twice: as shipped (write verifies every image once more) and with
     * "verify": "header", since dedup's pHash decode reads and checks every
     * byte of each kept picture with img_decode's strictness already. */
    double w, rss, c_cpu, h_cpu, p_cpu;
    for (int pass = 0; pass < 2; pass++) {
        static char text[8192];
        snprintf(text, sizeof text,
                 "{\"sources\": [{\"name\": \"web\", \"type\": \"webdataset\",\n"
                 "  \"urls\": \"%s/wds/demo-{000000..%06u}.tar\"}],\n"
                 " \"stages\": [{\"stage\": \"ingest\"},\n"
                 "  {\"stage\": \"filter\", \"defaults\": false, \"filters\": [\n"
                 "    {\"name\": \"img_width\", \"min\": 150, \"max\": 20000},\n"
                 "    {\"name\": \"img_height\", \"min\": 150, \"max\": 20000},\n"
                 "    {\"name\": \"img_aspect\", \"min\": 0.5, \"max\": 2}]},\n"
                 "  {\"stage\": \"dedup\", \"image\": {\"exact\": true, \"phash\": {\"radius\": "
                 "10}},\n"
                 "   \"text\": false, \"documents\": false},\n"
                 "  {\"stage\": \"write\", \"verify\": \"%s\"}],\n"
                 " \"output\": {\"dir\": \"out\", \"prefix\": \"chain\", \"samples_per_shard\": "
                 "1000}}\n",
                 sum.dir, n_good - 1, pass ? "header" : "full");
        char rm[4400];
        snprintf(rm, sizeof rm, "rm -rf '%s'", out);
        if (write_text(spec, text) || system(rm) != 0)
            return 1;
        char *run[] = { (char *)o->bin, "run", spec, "--threads", "1", "--out", out, NULL };
        if (child(NULL, NULL, 0, run, &w, &rss, pass ? &h_cpu : &c_cpu)) {
            fprintf(stderr, "bench_dedup: vlmcurate run failed\n");
            return 1;
        }
    }
    char **pargv = calloc(n_good + 4, sizeof *pargv);
    if (!pargv)
        return 1;
    pargv[0] = (char *)o->python;
    pargv[1] = (char *)o->peer;
    pargv[2] = peer_out;
    for (uint32_t i = 0; i < n_good; i++) {
        pargv[3 + i] = malloc(4400);
        snprintf(pargv[3 + i], 4400, "%s/wds/demo-%06u.tar", sum.dir, i);
    }
    double pw, prss;
    int peer_rc = child(NULL, NULL, 0, pargv, &pw, &prss, &p_cpu);
    double b_cpu = 0, hash_cpu = 0;
    uint64_t n_pics = 0, n_dec = 0;
    for (uint32_t i = 0; i < n_good; i++)
        if (decode_bound(pargv[3 + i], &b_cpu, &hash_cpu, &n_pics, &n_dec))
            return 1;
    for (uint32_t i = 0; i < n_good; i++)
        free(pargv[3 + i]);
    free(pargv);
    double n = (double)o->samples;
    printf("chain ingest -> filter -> dedup -> write, %llu demo samples in %u shards, one core:\n",
           (unsigned long long)o->samples, n_good);
    printf("  vlmcurate --threads 1     %7.2f s CPU  %8.1f samples/s per core, peak RSS %.0f MiB\n",
           c_cpu, n / c_cpu, rss);
    printf("  the same, write verify:   %7.2f s CPU  %8.1f samples/s per core\n"
           "    \"header\" (dedup's decode checked the pictures)\n",
           h_cpu, n / h_cpu);
    if (peer_rc == 0)
        printf("  pil_pipeline.py (peer)    %7.2f s CPU  %8.1f samples/s per core, peak RSS %.0f "
               "MiB\n",
               p_cpu, n / p_cpu, prss);
    else
        printf("  pil_pipeline.py (peer) failed (%s %s): no ratio\n", o->python, o->peer);
    printf("  C decode bound            %7.2f s CPU  %8.1f samples/s per core (%llu pictures "
           "probed, %llu decoded to grey at >= 64 px)\n",
           b_cpu, n / b_cpu, (unsigned long long)n_pics, (unsigned long long)n_dec);
    printf("  (beside the bound: SHA-256 of the kept pictures %.2f s CPU, which the chain does\n"
           "   twice, as dedup's exact key and inside the shards' sha256: the bound plus\n"
           "   that is %.0f %% of the chain)\n",
           hash_cpu, 100 * (b_cpu + 2 * hash_cpu) / c_cpu);
    printf("RESULT chain_per_core=%.1f chain_header_per_core=%.1f peer_per_core=%.1f "
           "bound_per_core=%.1f chain_vs_peer=%.2f chain_header_vs_peer=%.2f chain_of_bound=%.2f "
           "chain_header_of_bound=%.2f sha256_of_kept_s=%.3f bound_and_hashes_of_chain=%.2f\n",
           n / c_cpu, n / h_cpu, peer_rc == 0 ? n / p_cpu : 0, n / b_cpu,
           peer_rc == 0 ? p_cpu / c_cpu : 0, peer_rc == 0 ? p_cpu / h_cpu : 0, b_cpu / c_cpu,
           b_cpu / h_cpu, hash_cpu, (b_cpu + 2 * hash_cpu) / c_cpu);
    return 0;
}

static uint8_t *put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return p + 4;
}

/* A PNG chunk at p: length, type, data, CRC. */
static uint8_t *put_chunk(uint8_t *p, const char type[4], const uint8_t *data, uint32_t n)
{
    p = put_be32(p, n);
    memcpy(p, type, 4);
    memcpy(p + 4, data, n);
    uint32_t crc = (uint32_t)crc32(0, p, n + 4);
    return put_be32(p + 4 + n, crc);
}

/* An 8x8 RGB PNG whose IDAT is one stored deflate block: built by hand
 * because libpng's per-file setup would dominate making a million. */
static size_t tiny_png(const uint8_t px[8 * 8 * 3], uint8_t out[320])
{
    static const uint8_t sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
    uint8_t ihdr[13] = { 0, 0, 0, 8, 0, 0, 0, 8, 8, 2, 0, 0, 0 };
    uint8_t raw[8 * 25], z[2 + 5 + sizeof raw + 4];
    for (int y = 0; y < 8; y++) {
        raw[y * 25] = 0; /* filter: none */
        memcpy(raw + y * 25 + 1, px + y * 24, 24);
    }
    z[0] = 0x78, z[1] = 0x01;
    z[2] = 1; /* final stored block */
    z[3] = sizeof raw & 0xff, z[4] = sizeof raw >> 8;
    z[5] = (uint8_t)~z[3], z[6] = (uint8_t)~z[4];
    memcpy(z + 7, raw, sizeof raw);
    put_be32(z + 7 + sizeof raw, (uint32_t)adler32(1, raw, sizeof raw));
    uint8_t *p = out;
    memcpy(p, sig, 8);
    p = put_chunk(p + 8, "IHDR", ihdr, sizeof ihdr);
    p = put_chunk(p, "IDAT", z, sizeof z);
    p = put_chunk(p, "IEND", NULL, 0);
    return (size_t)(p - out);
}

/* N tiny samples: a distinct 8x8 PNG and an 8-word caption each. */
static int gen_tiny(const char *dir, uint64_t n)
{
    static const char *const words[16] = { "red",   "small", "house", "near", "the",  "old",
                                           "river", "under", "blue",  "sky",  "with", "two",
                                           "cats",  "on",    "green", "grass" };
    struct arena *arena = arena_new(1u << 20);
    if (!arena || vc_fs_mkdirs(dir, NULL) != VC_OK)
        return 1;
    for (uint64_t first = 0; first < n; first += 10000) {
        char path[4400];
        snprintf(path, sizeof path, "%s/tiny-%06llu.tar", dir, (unsigned long long)(first / 10000));
        struct wds_writer *w;
        struct vc_err err;
        if (wds_writer_open(path, WDS_COMPRESS_NONE, &w, &err) != VC_OK)
            return 1;
        for (uint64_t i = first; i < n && i < first + 10000; i++) {
            uint8_t px[8 * 8 * 3];
            uint64_t h = i;
            for (size_t k = 0; k < sizeof px; k++)
                px[k] = (uint8_t)(k % 8 == 0 ? (h = dedup_mix64(h + k)) : h >> (8 * (k % 8)));
            uint8_t png[320];
            size_t len = tiny_png(px, png);
            char key[32], cap[160];
            size_t c = 0;
            uint64_t wh = dedup_mix64(i ^ 0x5eed);
            for (int k = 0; k < 8; k++)
                c += (size_t)snprintf(cap + c, sizeof cap - c, "%s%s", k ? " " : "",
                                      words[(wh >> (4 * k)) & 15]);
            snprintf(key, sizeof key, "%09llu", (unsigned long long)i);
            struct sample s;
            arena_reset(arena);
            sample_init(&s, arena);
            s.key = key;
            enum vc_status rc = sample_add_field(&s, "png", png, len, &err);
            if (rc == VC_OK)
                rc = sample_add_field(&s, "txt", cap, c, &err);
            if (rc == VC_OK)
                rc = wds_writer_add(w, &s, NULL, &err);
            sample_fini(&s);
            if (rc != VC_OK) {
                fprintf(stderr, "bench_dedup: %s\n", err.msg);
                wds_writer_abort(w);
                return 1;
            }
        }
        if (wds_writer_commit(w, NULL, &err) != VC_OK)
            return 1;
    }
    arena_free(arena);
    return 0;
}

/* totals.written of a run (every tiny sample is distinct: all of them). */
static uint64_t written(const char *out)
{
    char path[4400], *text = NULL;
    size_t size;
    snprintf(path, sizeof path, "%s/run.json", out);
    if (vc_fs_read_file(path, 64u << 20, &text, &size, NULL) != VC_OK)
        return 0;
    cJSON *j = cJSON_Parse(text);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "totals");
    uint64_t n = (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(t, "written"));
    cJSON_Delete(j);
    free(text);
    return n;
}

static int bench_run(const struct wopts *o)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/tiny", o->work);
    double t0 = bench_wall_s();
    if (gen_tiny(dir, o->samples))
        return 1;
    uint64_t n_shards = (o->samples + 9999) / 10000;
    printf("%llu tiny samples (8x8 PNG + 8-word caption) in %llu shards (%.1f s to make)\n",
           (unsigned long long)o->samples, (unsigned long long)n_shards, bench_wall_s() - t0);
    double cpu[2], rss[2], wall[2];
    for (int with = 1; with >= 0; with--) {
        char spec[4300], out[4300], text[8192], rm[4400];
        snprintf(spec, sizeof spec, "%s/tiny-%d.json", o->work, with);
        snprintf(out, sizeof out, "%s/tiny-out-%d", o->work, with);
        snprintf(text, sizeof text,
                 "{\"sources\": [{\"name\": \"tiny\", \"type\": \"webdataset\",\n"
                 "  \"urls\": \"%s/tiny-{000000..%06llu}.tar\"}],\n"
                 " \"stages\": [{\"stage\": \"ingest\"},%s {\"stage\": \"write\"}],\n"
                 " \"output\": {\"dir\": \"out\", \"prefix\": \"t\", \"samples_per_shard\": "
                 "100000}}\n",
                 dir, (unsigned long long)n_shards - 1, with ? " {\"stage\": \"dedup\"}," : "");
        snprintf(rm, sizeof rm, "rm -rf '%s'", out);
        if (write_text(spec, text) || system(rm) != 0)
            return 1;
        char *run[] = { (char *)o->bin, "run", spec, "--threads", "2", "--out", out, NULL };
        if (child(NULL, NULL, 0, run, &wall[with], &rss[with], &cpu[with])) {
            fprintf(stderr, "bench_dedup: vlmcurate run failed\n");
            return 1;
        }
        printf("  ingest ->%s write, --threads 2: %.1f s wall, %.1f s CPU, peak RSS %.0f MiB, "
               "%llu written\n",
               with ? " dedup (defaults) ->" : "", wall[with], cpu[with], rss[with],
               (unsigned long long)written(out));
        if (system(rm) != 0)
            return 1;
    }
    double n = (double)o->samples;
    printf("  dedup adds %.1f us of CPU and %.0f bytes of peak RSS per sample; the whole run "
           "holds %.0f bytes of peak RSS per sample\n",
           (cpu[1] - cpu[0]) / n * 1e6, (rss[1] - rss[0]) * 1048576.0 / n, rss[1] * 1048576.0 / n);
    printf("RESULT run_samples=%llu run_dedup_rss_mib=%.0f run_plain_rss_mib=%.0f "
           "run_dedup_cpu_s=%.1f run_plain_cpu_s=%.1f dedup_us_per_sample=%.1f "
           "run_bytes_per_sample=%.0f\n",
           (unsigned long long)o->samples, rss[1], rss[0], cpu[1], cpu[0],
           (cpu[1] - cpu[0]) / n * 1e6, rss[1] * 1048576.0 / n);
    char rm[4400];
    snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
    return system(rm) == 0 ? 0 : 1;
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
    if (argc >= 2 && (strcmp(argv[1], "chain") == 0 || strcmp(argv[1], "run") == 0)) {
        bool chain = strcmp(argv[1], "chain") == 0;
        struct wopts o = { "bench-dedup", VC_CLI_PATH, "/usr/bin/python3",
                           "../shared/peers/pil_pipeline.py", chain ? 3000 : 100000 };
        for (int i = 2; i + 1 < argc; i += 2) {
            if (strcmp(argv[i], "--samples") == 0)
                o.samples = strtoull(argv[i + 1], NULL, 10);
            else if (strcmp(argv[i], "--work") == 0)
                o.work = argv[i + 1];
            else if (strcmp(argv[i], "--bin") == 0)
                o.bin = argv[i + 1];
            else if (strcmp(argv[i], "--python") == 0)
                o.python = argv[i + 1];
            else if (strcmp(argv[i], "--peer") == 0)
                o.peer = argv[i + 1];
        }
        if (o.samples < (chain ? DEMO_MIN_SAMPLES : 1))
            return 2;
        return chain ? bench_chain(&o) : bench_run(&o);
    }
    fprintf(stderr, "usage: bench_dedup phash [--images N]\n"
                    "       bench_dedup reduce [--sigs N] [--mem MB] [--work DIR]\n"
                    "       bench_dedup chain [--samples N] [--work DIR] [--bin VLMCURATE]\n"
                    "                         [--python PY] [--peer PIL_PIPELINE_PY]\n"
                    "       bench_dedup run [--samples N] [--work DIR] [--bin VLMCURATE]\n");
    return 2;
}
