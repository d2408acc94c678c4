/* Benchmark of core/img on generated JPEGs: images per second for the
 * header-only img_probe, the full img_decode, and raw tjDecompress2 with
 * one reused handle (libjpeg-turbo alone: the ceiling for img_decode), plus
 * the resize and re-encode steps a curation pass adds.  Single thread, as
 * the pipeline runs one image per worker.
 *
 * usage: bench_img [N_IMAGES (300)] [SECONDS_PER_ROW (1.0)] */
#include "bench_clock.h"
#include "core/img.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <turbojpeg.h>

struct blob {
    uint8_t *data;
    size_t size;
    uint32_t w, h;
};

static uint32_t lcg(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

/* Photo-like content: smooth gradients plus per-pixel noise, so the
 * entropy coder has work comparable to a real q90 photo. */
static void make_picture(struct img *im, uint32_t w, uint32_t h, uint32_t seed)
{
    im->w = w;
    im->h = h;
    im->ch = 3;
    im->pixels = malloc((size_t)w * h * 3);
    uint32_t s = seed;
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) {
            uint8_t *p = im->pixels + ((size_t)y * w + x) * 3;
            uint32_t n = lcg(&s) & 31;
            p[0] = (uint8_t)((x * 200 / w + n) & 255);
            p[1] = (uint8_t)((y * 180 / h + (n >> 1) + 30) & 255);
            p[2] = (uint8_t)(((x + y) * 150 / (w + h) + 60 + (n & 7)) & 255);
        }
}

enum bench_op { OP_PROBE, OP_DECODE, OP_RAW, OP_RESIZE, OP_ENCODE };

struct bench_ctx {
    struct blob *blobs;
    struct img *decoded; /* for OP_RESIZE and OP_ENCODE */
    int n;
    tjhandle tj;
    uint8_t *raw_buf; /* 1024 x 1024 x 3 */
};

static int run_one(struct bench_ctx *c, enum bench_op op, int i)
{
    struct vc_err err;
    struct blob *b = &c->blobs[i];
    switch (op) {
    case OP_PROBE: {
        struct img_info info;
        return img_probe(b->data, b->size, NULL, &info, &err) == VC_OK ? 0 : -1;
    }
    case OP_DECODE: {
        struct img im;
        if (img_decode(b->data, b->size, NULL, 0, &im, &err) != VC_OK)
            return -1;
        img_release(&im);
        return 0;
    }
    case OP_RAW: {
        int w, h, ss, cs;
        if (tjDecompressHeader3(c->tj, b->data, b->size, &w, &h, &ss, &cs) != 0)
            return -1;
        return tjDecompress2(c->tj, b->data, b->size, c->raw_buf, w, 0, h, TJPF_RGB, 0);
    }
    case OP_RESIZE: {
        struct img out;
        if (img_resize(&c->decoded[i], IMG_RESIZE_CENTER_CROP, 256, &out, &err) != VC_OK)
            return -1;
        img_release(&out);
        return 0;
    }
    case OP_ENCODE: {
        uint8_t *buf;
        size_t n;
        if (img_encode(&c->decoded[i], IMG_FORMAT_JPEG, 95, &buf, &n, &err) != VC_OK)
            return -1;
        free(buf);
        return 0;
    }
    }
    return -1;
}

/* Whole passes over the set until `seconds` have passed; images/s and
 * megapixels/s. */
static double bench_row(struct bench_ctx *c, enum bench_op op, const char *label, double seconds,
                        double total_mpx)
{
    int passes = 0;
    double t0 = bench_wall_s(), t;
    do {
        for (int i = 0; i < c->n; i++)
            if (run_one(c, op, i) != 0) {
                fprintf(stderr, "%s failed on image %d\n", label, i);
                exit(1);
            }
        passes++;
        t = bench_wall_s() - t0;
    } while (t < seconds);
    double ips = passes * c->n / t;
    printf("| %-34s | %12.0f | %10.1f | %10.2f |\n", label, ips, passes * total_mpx / t, 1e6 / ips);
    return ips;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 300;
    double seconds = argc > 2 ? atof(argv[2]) : 1.0;
    if (n <= 0 || seconds <= 0) {
        fprintf(stderr, "usage: bench_img [N_IMAGES] [SECONDS_PER_ROW]\n");
        return 2;
    }
    struct bench_ctx c = { .n = n };
    c.blobs = calloc((size_t)n, sizeof *c.blobs);
    c.decoded = calloc((size_t)n, sizeof *c.decoded);
    c.raw_buf = malloc((size_t)1024 * 1024 * 3);
    c.tj = tjInitDecompress();
    uint32_t seed = 12345;
    double mpx = 0, bytes = 0;
    for (int i = 0; i < n; i++) {
        uint32_t w = 256 + lcg(&seed) % 769, h = 256 + lcg(&seed) % 769;
        struct img im;
        struct vc_err err;
        make_picture(&im, w, h, (uint32_t)i);
        if (img_encode(&im, IMG_FORMAT_JPEG, 90, &c.blobs[i].data, &c.blobs[i].size, &err) !=
            VC_OK) {
            fprintf(stderr, "encode: %s\n", err.msg);
            return 1;
        }
        img_release(&im);
        c.blobs[i].w = w;
        c.blobs[i].h = h;
        if (img_decode(c.blobs[i].data, c.blobs[i].size, NULL, 0, &c.decoded[i], &err) != VC_OK) {
            fprintf(stderr, "decode: %s\n", err.msg);
            return 1;
        }
        mpx += (double)w * h / 1e6;
        bytes += (double)c.blobs[i].size;
    }
    printf("bench_img: %d JPEGs (q90 4:2:0, 256..1024 px a side), %.1f megapixels, "
           "%.1f MB; single thread, >= %.1f s per row\n\n",
           n, mpx, bytes / 1e6, seconds);
    printf("| %-34s | %12s | %10s | %10s |\n", "operation", "images/s", "Mpx/s", "us/image");
    printf("|%s|%s|%s|%s|\n", "------------------------------------", "--------------",
           "------------", "------------");
    double probe = bench_row(&c, OP_PROBE, "img_probe (header only)", seconds, mpx);
    double decode = bench_row(&c, OP_DECODE, "img_decode (RGB)", seconds, mpx);
    double raw = bench_row(&c, OP_RAW, "raw tjDecompress2 (reused handle)", seconds, mpx);
    bench_row(&c, OP_RESIZE, "img_resize center_crop 256", seconds, mpx);
    bench_row(&c, OP_ENCODE, "img_encode JPEG q95", seconds, mpx);
    printf("\nprobe / decode speed ratio: %.0fx (probe never touches pixel data)\n",
           probe / decode);
    printf("img_decode / raw tjDecompress2: %.2f (1.00 = no overhead over libjpeg-turbo)\n",
           decode / raw);
    for (int i = 0; i < n; i++) {
        free(c.blobs[i].data);
        img_release(&c.decoded[i]);
    }
    free(c.blobs);
    free(c.decoded);
    free(c.raw_buf);
    tjDestroy(c.tj);
    return 0;
}
