/* Writes the seed corpus of tests/fuzz/fuzz_img.c into the folder given
 * (tests/fuzz/corpus/img): tiny valid JPEG (RGB, gray, CMYK, progressive,
 * EXIF orientation in both byte orders), PNG (RGB, RGBA, palette+alpha,
 * gray, gray+alpha 16-bit) and WebP (lossy, alpha, lossless) files, plus
 * truncated copies and headers claiming huge sizes.  Deterministic: a rerun
 * writes the same bytes.  Not part of the build; run from the repository
 * root after building vc_core in BUILD:
 *   cc -std=c11 -I. tests/tools/gen_img_corpus.c BUILD/libvc_core.a \
 *      -lturbojpeg -lwebp -lpng16 -lm -o /tmp/gen_img_corpus
 *   /tmp/gen_img_corpus tests/fuzz/corpus/img */
#include "core/img.h"

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
#include <webp/encode.h>

static const char *out_dir;

static void put(const char *name, const void *data, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", out_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

static uint8_t pixels[16 * 16 * 4];

static void fill(size_t n_px, int ch)
{
    for (size_t i = 0; i < n_px * (size_t)ch; i++)
        pixels[i] = (uint8_t)(i * 29 + (i / 7) * 3);
}

static void put_img(const char *name, uint32_t w, uint32_t h, uint8_t ch, enum img_format f,
                    int quality, size_t drop_bytes)
{
    fill((size_t)w * h, ch);
    struct img im = { w, h, ch, pixels, 0 };
    uint8_t *buf;
    size_t n;
    struct vc_err err;
    if (img_encode(&im, f, quality, &buf, &n, &err) != VC_OK) {
        fprintf(stderr, "%s: %s\n", name, err.msg);
        exit(1);
    }
    put(name, buf, n - drop_bytes);
    free(buf);
}

static void put_tj(const char *name, int w, int h, int pf, int samp, int flags)
{
    fill((size_t)w * h, tjPixelSize[pf]);
    tjhandle tj = tjInitCompress();
    unsigned char *buf = NULL;
    unsigned long n = 0;
    if (tjCompress2(tj, pixels, w, 0, h, pf, &buf, &n, samp, 50, flags) != 0) {
        fprintf(stderr, "%s: %s\n", name, tjGetErrorStr2(tj));
        exit(1);
    }
    put(name, buf, n);
    tjFree(buf);
    tjDestroy(tj);
}

/* A JPEG with an EXIF APP1 (one IFD0 entry: orientation) after SOI. */
static void put_exif_jpeg(const char *name, uint8_t orientation, int big_endian)
{
    static const uint8_t le[] = { 0xFF, 0xD8, 0xFF, 0xE1, 0,  34, 'E', 'x', 'i', 'f',
                                  0,    0,    'I',  'I',  42, 0,  8,   0,   0,   0,
                                  1,    0,    0x12, 0x01, 3,  0,  1,   0,   0,   0,
                                  0xA5, 0,    0,    0,    0,  0,  0,   0 };
    static const uint8_t be[] = { 0xFF, 0xD8, 0xFF, 0xE1, 0, 34, 'E', 'x', 'i', 'f',
                                  0,    0,    'M',  'M',  0, 42, 0,   0,   0,   8,
                                  0,    1,    0x01, 0x12, 0, 3,  0,   0,   0,   1,
                                  0,    0xA5, 0,    0,    0, 0,  0,   0 };
    uint8_t head[sizeof le];
    memcpy(head, big_endian ? be : le, sizeof head);
    head[big_endian ? 31 : 30] = orientation; /* the 0xA5 placeholder */
    fill(8 * 16, 3);
    struct img im = { 8, 16, 3, pixels, 0 };
    uint8_t *jpeg, *file;
    size_t n;
    struct vc_err err;
    if (img_encode(&im, IMG_FORMAT_JPEG, 50, &jpeg, &n, &err) != VC_OK)
        exit(1);
    file = malloc(sizeof head + n - 2);
    memcpy(file, head, sizeof head);
    memcpy(file + sizeof head, jpeg + 2, n - 2);
    put(name, file, sizeof head + n - 2);
    free(file);
    free(jpeg);
}

/* libpng's simplified writer covers gray, gray+alpha, 16-bit and
 * colour-mapped (palette + tRNS) files in a few lines. */
static void put_png_simple(const char *name, uint32_t w, uint32_t h, png_uint_32 format,
                           const void *colormap, int n_colors)
{
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = w;
    im.height = h;
    im.format = format;
    im.colormap_entries = (png_uint_32)n_colors;
    fill((size_t)w * h, 8);
    if (format & PNG_FORMAT_FLAG_COLORMAP)
        for (size_t i = 0; i < (size_t)w * h; i++)
            pixels[i] %= (uint8_t)n_colors;
    static uint8_t buf[4096];
    png_alloc_size_t n = sizeof buf;
    if (!png_image_write_to_memory(&im, buf, &n, 0, pixels, 0, colormap)) {
        fprintf(stderr, "%s: %s\n", name, im.message);
        exit(1);
    }
    put(name, buf, n);
}

static void put_webp_lossless(const char *name)
{
    fill(8 * 8, 3);
    uint8_t *buf;
    size_t n = WebPEncodeLosslessRGB(pixels, 8, 8, 24, &buf);
    put(name, buf, n);
    WebPFree(buf);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_img_corpus FOLDER\n");
        return 2;
    }
    out_dir = argv[1];
    put_img("jpeg_rgb_8x8.jpg", 8, 8, 3, IMG_FORMAT_JPEG, 50, 0);
    put_img("jpeg_truncated_scan.jpg", 16, 16, 3, IMG_FORMAT_JPEG, 50, 40);
    put_tj("jpeg_gray_16x8.jpg", 16, 8, TJPF_GRAY, TJSAMP_GRAY, 0);
    put_tj("jpeg_cmyk_8x8.jpg", 8, 8, TJPF_CMYK, TJSAMP_444, 0);
    put_tj("jpeg_progressive_16x16.jpg", 16, 16, TJPF_RGB, TJSAMP_420, TJFLAG_PROGRESSIVE);
    put_exif_jpeg("jpeg_exif6_le.jpg", 6, 0);
    put_exif_jpeg("jpeg_exif7_be.jpg", 7, 1);
    static const uint8_t huge_jpeg[] = { 0xFF, 0xD8, 0xFF, 0xC0, 0, 17,   8, 0xEA, 0x60, 0xEA, 0x60,
                                         3,    1,    0x22, 0,    2, 0x11, 1, 3,    0x11, 1,    0xFF,
                                         0xDA, 0,    8,    1,    1, 0,    0, 0x3F, 0 };
    put("jpeg_huge_header.jpg", huge_jpeg, sizeof huge_jpeg);

    put_img("png_rgb_5x4.png", 5, 4, 3, IMG_FORMAT_PNG, 0, 0);
    put_img("png_rgba_5x4.png", 5, 4, 4, IMG_FORMAT_PNG, 0, 0);
    put_img("png_truncated_idat.png", 12, 12, 3, IMG_FORMAT_PNG, 0, 40);
    put_png_simple("png_gray_7x3.png", 7, 3, PNG_FORMAT_GRAY, NULL, 0);
    put_png_simple("png_ga16_4x4.png", 4, 4, PNG_FORMAT_GA | PNG_FORMAT_FLAG_LINEAR, NULL, 0);
    static const uint8_t cmap[4 * 4] = {
        255, 0, 0, 255, 0, 255, 0, 0, 0, 0, 255, 128, 9, 9, 9, 255
    };
    put_png_simple("png_palette_alpha_6x5.png", 6, 5, PNG_FORMAT_RGBA_COLORMAP, cmap, 4);
    static const uint8_t huge_png[] = { 0x89, 'P',  'N', 'G', '\r', '\n', 0x1A, '\n', 0,
                                        0,    0,    13,  'I', 'H',  'D',  'R',  0,    1,
                                        0x86, 0xA0, 0,   1,   0x86, 0xA0, 8,    2,    0,
                                        0,    0,    0,   0,   0,    0,    0,    0,    0,
                                        0,    'I',  'D', 'A', 'T',  0,    0,    0,    0 };
    put("png_huge_header.png", huge_png, sizeof huge_png);

    put_img("webp_lossy_8x8.webp", 8, 8, 3, IMG_FORMAT_WEBP, 50, 0);
    put_img("webp_alpha_8x8.webp", 8, 8, 4, IMG_FORMAT_WEBP, 50, 0);
    put_img("webp_truncated.webp", 16, 16, 3, IMG_FORMAT_WEBP, 50, 30);
    put_webp_lossless("webp_lossless_8x8.webp");
    put("not_an_image.bin", "GIF89a\x01\x00\x01\x00", 10);
    return 0;
}
