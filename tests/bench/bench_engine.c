/* Real-size engine benchmark: loads a checkpoint through the public API
 * (synth/idefics2.h) and captions one synthetic photo at each requested
 * size with image splitting off, so one image = one vision pass at that
 * resolution (378 px: 27x27 = 729 patches; 980 px: 70x70 = 4900).  Prints
 * load time, peak RSS, vision seconds per image, prefill tokens/s and
 * decode tokens/s: the baseline of the engine-speed work.  Meant for the
 * random-weight idefics2-8b written by bench_mkcheckpoint (the text is
 * gibberish; the timings are what count).
 *
 * usage: bench_engine CKPT_DIR [--compute bf16|f32] [--threads N] [--max-new N (16)]
 *                     [--sizes 378,980] [--cache] */
#include "core/img.h"
#include "synth/idefics2.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static double gib(size_t b)
{
    return (double)b / (double)(1u << 30);
}

static size_t peak_rss(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (size_t)ru.ru_maxrss * 1024 : 0;
}

/* A photo-like PNG of side s: smooth gradients, a disc, mild noise. */
static int make_png(uint32_t s, uint8_t **png, size_t *size)
{
    struct img im = { .w = s, .h = s, .ch = 3, .pixels = malloc((size_t)s * s * 3) };
    if (!im.pixels)
        return -1;
    uint32_t seed = 12345;
    for (uint32_t y = 0; y < s; y++)
        for (uint32_t x = 0; x < s; x++) {
            uint8_t *p = im.pixels + ((size_t)y * s + x) * 3;
            double dx = (double)x / s - 0.5, dy = (double)y / s - 0.4;
            int disc = dx * dx + dy * dy < 0.04;
            seed = seed * 1664525u + 1013904223u;
            int noise = (int)(seed >> 28) - 8;
            p[0] = (uint8_t)(disc ? 220 : 40 + 150 * x / s);
            p[1] = (uint8_t)(disc ? 180 : 90 + 100 * y / s);
            p[2] = (uint8_t)(120 + noise);
        }
    struct vc_err err = { 0 };
    enum vc_status rc = img_encode(&im, IMG_FORMAT_PNG, 0, png, size, &err);
    free(im.pixels);
    if (rc < 0)
        fprintf(stderr, "encode: %s\n", err.msg);
    return rc < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: bench_engine CKPT_DIR [--compute bf16|f32] [--threads N] "
                        "[--max-new N (16)] [--sizes 378,980] [--cache]\n");
        return 2;
    }
    struct idf2_load_opts opts = { .compute = IDF2_COMPUTE_BF16, .n_threads = 0 };
    int max_new = 16;
    char sizes[64] = "378,980";
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--compute") && i + 1 < argc)
            opts.compute = strcmp(argv[++i], "f32") == 0 ? IDF2_COMPUTE_F32 : IDF2_COMPUTE_BF16;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            opts.n_threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--max-new") && i + 1 < argc)
            max_new = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--sizes") && i + 1 < argc)
            snprintf(sizes, sizeof sizes, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--cache"))
            opts.use_cache = true;
    }
    struct idf2_model *m = NULL;
    struct vc_err err = { 0 };
    if (idf2_model_load(argv[1], &opts, &m, &err) < 0) {
        fprintf(stderr, "load: %s\n", err.msg);
        return 1;
    }
    struct idf2_load_report rep;
    idf2_model_report(m, &rep);
    printf("load %.2f s (%s compute), mapped %.2f GiB, converted %.2f GiB, cache read %d "
           "written %d, peak RSS %.2f GiB\n",
           rep.load_seconds, opts.compute == IDF2_COMPUTE_BF16 ? "bf16" : "f32",
           gib(rep.bytes_mapped), gib(rep.bytes_owned), rep.from_cache, rep.cache_written,
           gib(rep.peak_rss_bytes));
    printf("%6s %8s %8s %10s %12s %12s %12s %10s\n", "px", "patches", "prompt", "vision s",
           "prefill tok/s", "decode tok/s", "generated", "peak GiB");
    fflush(stdout);
    int status = 0;
    for (char *tok = strtok(sizes, ","); tok; tok = strtok(NULL, ",")) {
        uint32_t s = (uint32_t)atoi(tok);
        uint8_t *png = NULL;
        size_t png_size = 0;
        if (s == 0 || make_png(s, &png, &png_size) < 0)
            return 1;
        struct idf2_image_bytes image = { png, png_size };
        struct idf2_request req = {
            .images = &image,
            .n_images = 1,
            .chat = "Describe this image in one sentence.",
            .image_splitting = 0,
            .gen = { .max_new_tokens = max_new },
        };
        struct idf2_result r = { 0 };
        if (idf2_generate(m, &req, &r, &err) < 0) {
            fprintf(stderr, "generate at %u px: %s\n", s, err.msg);
            status = 1;
        } else {
            /* The first token comes out of the prefill; each later one is a
             * decode step. */
            double prefill = (double)r.n_prompt_tokens / r.prefill_seconds;
            double decode =
                r.n_ids > 1 && r.decode_seconds > 0 ? (double)(r.n_ids - 1) / r.decode_seconds : 0;
            unsigned side = s / 14; /* whole 14-px patches */
            printf("%6u %8u %8zu %10.2f %12.1f %12.2f %12zu %10.2f\n", s, side * side,
                   r.n_prompt_tokens, r.vision_seconds, prefill, decode, r.n_ids, gib(peak_rss()));
            fflush(stdout);
        }
        idf2_result_release(&r);
        free(png);
    }
    idf2_model_free(m);
    return status;
}
