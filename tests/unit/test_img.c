/* Unit tests of core/img: probes of hand-assembled headers, round trips
 * through every codec, PNG flavours written with libpng's writer, EXIF
 * orientation in both byte orders, CMYK and gray JPEGs, truncation, limits
 * checked before allocation, img2dataset resize geometry against
 * hand-computed values, and the decoded fixture images against the RGB
 * tensors Pillow produced (expected.safetensors). */
#include "vc_test.h"

#include "core/img.h"

#include <cjson/cJSON.h>
#include <png.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#include <stdbool.h>
#include <stdlib.h>
#include <turbojpeg.h>
#include <zlib.h>

/* A smooth test picture: R follows x, G follows y, B the diagonal, A a
 * ramp from 40 to 255 (when ch == 4). */
static struct img make_gradient(uint32_t w, uint32_t h, uint8_t ch)
{
    struct img im = { w, h, ch, malloc((size_t)w * h * ch), 0 };
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) {
            uint8_t *p = im.pixels + ((size_t)y * w + x) * ch;
            p[0] = (uint8_t)(x * 255 / (w > 1 ? w - 1 : 1));
            p[1] = (uint8_t)(y * 255 / (h > 1 ? h - 1 : 1));
            p[2] = (uint8_t)((x + y) * 255 / (w + h));
            if (ch == 4)
                p[3] = (uint8_t)(40 + (x + 2 * y) * 215 / (w + 2 * h));
        }
    return im;
}

static int max_abs_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
    int m = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        m = d > m ? d : m;
    }
    return m;
}

static const uint8_t *px(const struct img *im, uint32_t x, uint32_t y)
{
    return im->pixels + ((size_t)y * im->w + x) * im->ch;
}

/* ---- hand-assembled headers ---- */

static size_t put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return 4;
}

/* Signature, IHDR, optional tRNS, an empty IDAT header: enough for probe,
 * not for decode.  CRCs are zero: the probe does not read them. */
static size_t png_header(uint8_t *buf, uint32_t w, uint32_t h, uint8_t depth, uint8_t ctype,
                         bool trns)
{
    static const uint8_t sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n' };
    size_t n = 0;
    memcpy(buf, sig, 8);
    n += 8;
    n += put_be32(buf + n, 13);
    memcpy(buf + n, "IHDR", 4);
    n += 4;
    n += put_be32(buf + n, w);
    n += put_be32(buf + n, h);
    buf[n++] = depth, buf[n++] = ctype, buf[n++] = 0, buf[n++] = 0, buf[n++] = 0;
    n += put_be32(buf + n, 0);
    if (trns) {
        n += put_be32(buf + n, 1);
        memcpy(buf + n, "tRNS", 4);
        n += 4;
        buf[n++] = 0;
        n += put_be32(buf + n, 0);
    }
    n += put_be32(buf + n, 0);
    memcpy(buf + n, "IDAT", 4);
    n += 4;
    return n;
}

/* SOI, an APP0 to skip, SOFn with n_comp components, and a SOS header. */
static size_t jpeg_header(uint8_t *buf, uint8_t sof, uint32_t w, uint32_t h, uint8_t n_comp)
{
    size_t n = 0;
    static const uint8_t soi_app0[] = { 0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x07, 'J', 'F', 'I', 'F', 0 };
    memcpy(buf, soi_app0, sizeof soi_app0);
    n += sizeof soi_app0;
    buf[n++] = 0xFF, buf[n++] = sof;
    uint32_t len = 8 + 3u * n_comp;
    buf[n++] = (uint8_t)(len >> 8), buf[n++] = (uint8_t)len;
    buf[n++] = 8;
    buf[n++] = (uint8_t)(h >> 8), buf[n++] = (uint8_t)h;
    buf[n++] = (uint8_t)(w >> 8), buf[n++] = (uint8_t)w;
    buf[n++] = n_comp;
    for (uint8_t c = 0; c < n_comp; c++)
        buf[n++] = (uint8_t)(c + 1), buf[n++] = 0x11, buf[n++] = 0;
    static const uint8_t sos[] = { 0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00 };
    memcpy(buf + n, sos, sizeof sos);
    return n + sizeof sos;
}

TEST(sniff_and_names)
{
    CHECK_INT(img_sniff((const uint8_t *)"\xFF\xD8\xFF\xE0", 4), IMG_FORMAT_JPEG);
    CHECK_INT(img_sniff((const uint8_t *)"\x89PNG\r\n\x1A\n", 8), IMG_FORMAT_PNG);
    CHECK_INT(img_sniff((const uint8_t *)"RIFF\0\0\0\0WEBP", 12), IMG_FORMAT_WEBP);
    CHECK_INT(img_sniff((const uint8_t *)"RIFF\0\0\0\0WAVE", 12), IMG_FORMAT_UNKNOWN);
    CHECK_INT(img_sniff((const uint8_t *)"GIF89a", 6), IMG_FORMAT_UNKNOWN);
    CHECK_INT(img_sniff(NULL, 0), IMG_FORMAT_UNKNOWN);
    CHECK_STR(img_format_ext(IMG_FORMAT_JPEG), "jpg");
    CHECK_STR(img_format_ext(IMG_FORMAT_WEBP), "webp");
    CHECK_STR(img_format_ext(IMG_FORMAT_UNKNOWN), "unknown");
    CHECK_INT(img_format_from_name("jpeg"), IMG_FORMAT_JPEG);
    CHECK_INT(img_format_from_name("JPG"), IMG_FORMAT_JPEG);
    CHECK_INT(img_format_from_name("png"), IMG_FORMAT_PNG);
    CHECK_INT(img_format_from_name("gif"), IMG_FORMAT_UNKNOWN);
    static const char *modes[] = { "no",     "keep_ratio",         "center_crop",
                                   "border", "keep_ratio_largest", "fixed" };
    for (int i = 0; i < 6; i++) {
        CHECK_INT(img_resize_mode_from_name(modes[i]), i);
        CHECK_STR(img_resize_mode_name((enum img_resize_mode)i), modes[i]);
    }
    CHECK_INT((int)img_resize_mode_from_name("keep"), -1);
    CHECK_STR(img_resize_mode_name((enum img_resize_mode)9), "unknown");
}

TEST(probe_png_headers)
{
    uint8_t buf[128];
    struct img_info info;
    struct vc_err err;
    size_t n = png_header(buf, 300, 200, 8, 6, false);
    CHECK_INT(img_probe(buf, n, NULL, &info, &err), VC_OK);
    CHECK_INT(info.format, IMG_FORMAT_PNG);
    CHECK_INT(info.width, 300);
    CHECK_INT(info.height, 200);
    CHECK_INT(info.channels, 4);
    CHECK(info.has_alpha);
    CHECK_INT(info.orientation, 1);

    n = png_header(buf, 7, 9, 4, 3, true); /* palette with tRNS */
    CHECK_INT(img_probe(buf, n, NULL, &info, &err), VC_OK);
    CHECK_INT(info.channels, 3);
    CHECK(info.has_alpha);
    n = png_header(buf, 7, 9, 16, 0, false); /* 16-bit gray */
    CHECK_INT(img_probe(buf, n, NULL, &info, &err), VC_OK);
    CHECK_INT(info.channels, 1);
    CHECK(!info.has_alpha);
    n = png_header(buf, 7, 9, 8, 2, true); /* truecolour key: not alpha */
    CHECK_INT(img_probe(buf, n, NULL, &info, &err), VC_OK);
    CHECK(!info.has_alpha);

    n = png_header(buf, 7, 9, 16, 3, false); /* palettes stop at 8 bits */
    CHECK_INT(img_probe(buf, n, NULL, &info, &err), VC_ESAMPLE);
    CHECK_INT(err.reason, VC_REASON_decode_error);
    n = png_header(buf, 0, 9, 8, 2, false);
    CHECK_INT(img_probe(buf, n, NULL, &info, &err), VC_ESAMPLE);
    CHECK_INT(err.reason, VC_REASON_decode_error);
    n = png_header(buf, 7, 9, 8, 2, false);
    CHECK_INT(img_probe(buf, 20, NULL, &info, &err), VC_ESAMPLE);
    CHECK_INT(err.reason, VC_REASON_truncated);
    CHECK_INT(img_probe(buf, 33, NULL, &info, &err), VC_ESAMPLE); /* IHDR, no IDAT */
    CHECK_INT(err.reason, VC_REASON_truncated);
    CHECK_INT(img_probe((const uint8_t *)"GIF89a", 6, NULL, &info, &err), VC_ESAMPLE);
    CHECK_INT(err.reason, VC_REASON_unsupported_format);
}

TEST(probe_jpeg_headers)
{
    uint8_t buf[128];
    struct img_info info;
    struct vc_err err;
    size_t n = jpeg_header(buf, 0xC0, 640, 480, 3);
    CHECK_INT(img_probe(buf, n, NULL, &info, &err), VC_OK);
    CHECK_INT(info.format, IMG_FORMAT_JPEG);
    CHECK_INT(info.width, 640);
    CHECK_INT(info.height, 480);
    CHECK_INT(info.channels, 3);
    CHECK(!info.has_alpha);
    CHECK_INT(info.orientation, 1);
    n = jpeg_header(buf, 0xC2, 1, 65535, 1); /* progressive gray */
    CHECK_INT(img_probe(buf, n, &(struct img_limits){ 0, 65535 }, &info, &err), VC_OK);
    CHECK_INT(info.width, 1);
    CHECK_INT(info.height, 65535);
    CHECK_INT(info.channels, 1);
    n = jpeg_header(buf, 0xC0, 64, 64, 4);
    CHECK_INT(img_probe(buf, n, NULL, &info, &err), VC_OK);
    CHECK_INT(info.channels, 4);
    CHECK(!info.has_alpha);

    n = jpeg_header(buf, 0xC3, 64, 64, 3); /* lossless */
    CHECK_INT(img_probe(buf, n, NULL, &info, &err), VC_ESAMPLE);
    CHECK_INT(err.reason, VC_REASON_unsupported_format);
    n = jpeg_header(buf, 0xC0, 64, 0, 3); /* height from DNL: not supported */
    CHECK_INT(img_probe(buf, n, NULL, &info, &err), VC_ESAMPLE);
    CHECK_INT(err.reason, VC_REASON_decode_error);
    n = jpeg_header(buf, 0xC0, 64, 64, 3);
    CHECK_INT(img_probe(buf, 15, NULL, &info, &err), VC_ESAMPLE); /* inside SOF */
    CHECK_INT(err.reason, VC_REASON_truncated);
    CHECK_INT(img_probe(buf, n - 10, NULL, &info, &err), VC_ESAMPLE); /* SOF, no SOS */
    CHECK_INT(err.reason, VC_REASON_truncated);
    buf[11] = 0x12; /* garbage where the SOF marker should be */
    CHECK_INT(img_probe(buf, n, NULL, &info, &err), VC_ESAMPLE);
    CHECK_INT(err.reason, VC_REASON_decode_error);
}

/* A header claiming 100000 x 100000 fails on the limits, not on a 30 GB
 * allocation (which would be out_of_memory, or succeed lazily). */
TEST(huge_header_rejected_before_allocation)
{
    uint8_t buf[128];
    struct img_info info;
    struct img im;
    struct vc_err err;
    size_t n = png_header(buf, 100000, 100000, 8, 2, false);
    CHECK_INT(img_probe(buf, n, NULL, &info, &err), VC_ESAMPLE);
    CHECK_INT(err.reason, VC_REASON_image_too_large);
    CHECK_INT(img_decode(buf, n, NULL, 0, &im, &err), VC_ESAMPLE);
    CHECK_INT(err.reason, VC_REASON_image_too_large);
    CHECK(im.pixels == NULL);
    n = jpeg_header(buf, 0xC0, 60000, 60000, 3);
    CHECK_INT(img_decode(buf, n, &(struct img_limits){ 0, 65535 }, 0, &im, &err), VC_ESAMPLE);
    CHECK_INT(err.reason, VC_REASON_image_too_large);
    /* Limits from the caller: side and pixel count separately. */
    n = png_header(buf, 300, 200, 8, 2, false);
    CHECK_INT(img_probe(buf, n, &(struct img_limits){ 0, 299 }, &info, &err), VC_ESAMPLE);
    CHECK_INT(err.reason, VC_REASON_image_too_large);
    CHECK_INT(img_probe(buf, n, &(struct img_limits){ 59999, 0 }, &info, &err), VC_ESAMPLE);
    CHECK_INT(img_probe(buf, n, &(struct img_limits){ 60000, 300 }, &info, &err), VC_OK);
}

/* ---- round trips ---- */

TEST(round_trip_every_codec)
{
    static const enum img_format formats[] = { IMG_FORMAT_JPEG, IMG_FORMAT_PNG, IMG_FORMAT_WEBP };
    for (size_t f = 0; f < 3; f++) {
        for (uint8_t ch = 3; ch <= 4; ch++) {
            struct img src = make_gradient(97, 61, ch), dec;
            struct vc_err err;
            uint8_t *buf = NULL, *again = NULL;
            size_t n = 0, n_again = 0;
            CHECK_INT(img_encode(&src, formats[f], 90, &buf, &n, &err), VC_OK);
            CHECK_INT(img_sniff(buf, n), formats[f]);
            struct img_info info;
            CHECK_INT(img_probe(buf, n, NULL, &info, &err), VC_OK);
            CHECK_INT(info.width, 97);
            CHECK_INT(info.height, 61);
            /* JPEG has no alpha channel; the others keep it. */
            CHECK_INT(info.has_alpha, ch == 4 && formats[f] != IMG_FORMAT_JPEG);
            CHECK_INT(img_decode(buf, n, NULL, IMG_DECODE_RGBA, &dec, &err), VC_OK);
            CHECK_INT(dec.w, 97);
            CHECK_INT(dec.h, 61);
            CHECK_INT(dec.ch, 4);
            int worst = 0, worst_alpha = 0;
            for (size_t i = 0; i < (size_t)97 * 61; i++) {
                uint8_t want[4];
                memcpy(want, src.pixels + i * ch, ch);
                if (ch == 3)
                    want[3] = 255;
                if (formats[f] == IMG_FORMAT_JPEG && ch == 4) {
                    for (int c = 0; c < 3; c++) /* flattened over white on encode */
                        want[c] =
                            (uint8_t)((want[c] * want[3] + 255 * (255 - want[3]) + 127) / 255);
                    want[3] = 255;
                }
                int d = max_abs_diff(want, dec.pixels + 4 * i, 3);
                worst = d > worst ? d : worst;
                d = abs((int)want[3] - (int)dec.pixels[4 * i + 3]);
                worst_alpha = d > worst_alpha ? d : worst_alpha;
            }
            fprintf(stderr, "%s ch %d: max diff %d\n", img_format_ext(formats[f]), ch, worst);
            if (formats[f] == IMG_FORMAT_PNG)
                CHECK_INT(worst, 0);
            else
                CHECK(worst <= 12);    /* lossy at q90 (seen: JPEG 4, WebP 7) */
            CHECK_INT(worst_alpha, 0); /* WebP keeps alpha lossless by default */
            /* Deterministic: the same pixels give the same bytes. */
            CHECK_INT(img_encode(&src, formats[f], 90, &again, &n_again, &err), VC_OK);
            CHECK(n_again == n && memcmp(buf, again, n) == 0);
            free(buf);
            free(again);
            img_release(&dec);
            img_release(&src);
        }
    }
}

TEST(jpeg_quality_tolerance)
{
    /* At q95 a smooth gradient comes back within a few levels. */
    struct img src = make_gradient(64, 48, 3), dec;
    struct vc_err err;
    uint8_t *buf;
    size_t n;
    CHECK_INT(img_encode(&src, IMG_FORMAT_JPEG, 95, &buf, &n, &err), VC_OK);
    CHECK_INT(img_decode(buf, n, NULL, 0, &dec, &err), VC_OK);
    CHECK_INT(dec.ch, 3);
    int d = max_abs_diff(src.pixels, dec.pixels, (size_t)64 * 48 * 3);
    CHECK(d <= 8);
    uint8_t *low;
    size_t n_low;
    CHECK_INT(img_encode(&src, IMG_FORMAT_JPEG, 20, &low, &n_low, &err), VC_OK);
    CHECK(n_low < n);
    free(low);
    /* Quality is clamped, not refused: 500 encodes as 100. */
    uint8_t *q500, *q100;
    size_t n500, n100;
    CHECK_INT(img_encode(&src, IMG_FORMAT_JPEG, 500, &q500, &n500, &err), VC_OK);
    CHECK_INT(img_encode(&src, IMG_FORMAT_JPEG, 100, &q100, &n100, &err), VC_OK);
    CHECK(n500 == n100 && memcmp(q500, q100, n100) == 0);
    free(q500);
    free(q100);
    free(buf);
    img_release(&dec);
    img_release(&src);
}

TEST(composite_over_white)
{
    /* 4 pixels, colour/alpha pairs with hand-computed results:
     * round(c*a/255 + 255 - a): (0,128) -> 127, (200,100) -> 233.43 -> 233,
     * (10,255) -> 10, (77,0) -> 255, (255,1) -> 255, (0,254) -> 1. */
    uint8_t rgba[6 * 4] = { 0,  0,  0,  128, 200, 200, 200, 100, 10, 20, 30, 255,
                            77, 77, 77, 0,   255, 255, 255, 1,   0,  0,  0,  254 };
    struct img src = { 6, 1, 4, rgba, 0 }, dec;
    struct vc_err err;
    uint8_t *buf;
    size_t n;
    CHECK_INT(img_encode(&src, IMG_FORMAT_PNG, 0, &buf, &n, &err), VC_OK);
    CHECK_INT(img_decode(buf, n, NULL, 0, &dec, &err), VC_OK);
    CHECK_INT(dec.ch, 3);
    static const uint8_t want[6 * 3] = { 127, 127, 127, 233, 233, 233, 10, 20, 30,
                                         255, 255, 255, 255, 255, 255, 1,  1,  1 };
    CHECK_INT(max_abs_diff(dec.pixels, want, sizeof want), 0);
    img_release(&dec);
    CHECK_INT(img_decode(buf, n, NULL, IMG_DECODE_RGBA, &dec, &err), VC_OK);
    CHECK_INT(dec.ch, 4);
    CHECK_INT(max_abs_diff(dec.pixels, rgba, sizeof rgba), 0);
    img_release(&dec);
    free(buf);
}

/* ---- PNG flavours, written with libpng's writer ---- */

struct mem_out {
    uint8_t *buf;
    size_t n;
};

static void mem_write(png_structp png, png_bytep data, size_t n)
{
    struct mem_out *m = png_get_io_ptr(png);
    m->buf = realloc(m->buf, m->n + n);
    memcpy(m->buf + m->n, data, n);
    m->n += n;
}

static void mem_flush(png_structp png)
{
    (void)png;
}

/* rows: h rows of packed samples in PNG's own layout. */
static uint8_t *write_png(uint32_t w, uint32_t h, int depth, int ctype, int interlace,
                          const uint8_t *rows, size_t row_bytes, const png_color *palette,
                          int n_palette, const uint8_t *trns, int n_trns,
                          const png_color_16 *trns_color, size_t *size)
{
    struct mem_out m = { 0 };
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(m.buf);
        return NULL;
    }
    png_set_write_fn(png, &m, mem_write, mem_flush);
    png_set_IHDR(png, info, w, h, depth, ctype, interlace, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (palette)
        png_set_PLTE(png, info, palette, n_palette);
    if (trns || trns_color)
        png_set_tRNS(png, info, trns, n_trns, trns_color);
    png_write_info(png, info);
    png_bytep *ptrs = malloc(h * sizeof *ptrs);
    for (uint32_t y = 0; y < h; y++)
        ptrs[y] = (png_bytep)rows + y * row_bytes;
    png_write_image(png, ptrs);
    png_write_end(png, NULL);
    free(ptrs);
    png_destroy_write_struct(&png, &info);
    *size = m.n;
    return m.buf;
}

TEST(png_palette_trns)
{
    png_color pal[3] = { { 255, 0, 0 }, { 0, 255, 0 }, { 0, 0, 255 } };
    uint8_t trns[2] = { 255, 0 }; /* index 1 fully transparent, 2 opaque (implicit) */
    /* 4x2 at 2 bits per index: rows 0 1 2 0 and 2 2 1 0. */
    uint8_t rows[2] = { 0x18, 0xA4 };
    size_t n;
    uint8_t *buf = write_png(4, 2, 2, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, rows, 1, pal, 3,
                             trns, 2, NULL, &n);
    struct img dec;
    struct vc_err err;
    CHECK_INT(img_decode(buf, n, NULL, IMG_DECODE_RGBA, &dec, &err), VC_OK);
    static const uint8_t want[8 * 4] = { 255, 0,   0, 255, 0,   255, 0,   0,   0,   0,  255,
                                         255, 255, 0, 0,   255, 0,   0,   255, 255, 0,  0,
                                         255, 255, 0, 255, 0,   0,   255, 0,   0,   255 };
    CHECK_INT(dec.ch, 4);
    CHECK_INT(max_abs_diff(dec.pixels, want, sizeof want), 0);
    img_release(&dec);
    CHECK_INT(img_decode(buf, n, NULL, 0, &dec, &err), VC_OK);
    CHECK_INT(dec.ch, 3);
    CHECK(memcmp(px(&dec, 1, 0), "\xFF\xFF\xFF", 3) == 0); /* transparent -> white */
    CHECK(memcmp(px(&dec, 0, 0), "\xFF\x00\x00", 3) == 0);
    img_release(&dec);
    free(buf);
}

TEST(png_gray_depths_and_interlace)
{
    struct img dec;
    struct vc_err err;
    size_t n;
    /* 1-bit gray, 10x1: bits 1011001110 -> 255 0 255 255 0 0 255 255 255 0. */
    uint8_t bits[2] = { 0xB3, 0x80 };
    uint8_t *buf = write_png(10, 1, 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, bits, 2, NULL, 0,
                             NULL, 0, NULL, &n);
    CHECK_INT(img_decode(buf, n, NULL, 0, &dec, &err), VC_OK);
    static const uint8_t g1[10] = { 255, 0, 255, 255, 0, 0, 255, 255, 255, 0 };
    for (int x = 0; x < 10; x++)
        CHECK(px(&dec, (uint32_t)x, 0)[0] == g1[x] && px(&dec, (uint32_t)x, 0)[1] == g1[x] &&
              px(&dec, (uint32_t)x, 0)[2] == g1[x]);
    img_release(&dec);
    free(buf);

    /* 16-bit gray+alpha, 2x1, big-endian samples: high bytes are kept. */
    uint8_t ga16[8] = { 0x12, 0x34, 0xFF, 0xFF, 0xAB, 0xCD, 0x80, 0x01 };
    buf = write_png(2, 1, 16, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_INTERLACE_NONE, ga16, 8, NULL, 0, NULL,
                    0, NULL, &n);
    CHECK_INT(img_decode(buf, n, NULL, IMG_DECODE_RGBA, &dec, &err), VC_OK);
    static const uint8_t want16[8] = { 0x12, 0x12, 0x12, 0xFF, 0xAB, 0xAB, 0xAB, 0x80 };
    CHECK_INT(max_abs_diff(dec.pixels, want16, 8), 0);
    img_release(&dec);
    free(buf);

    /* 8-bit gray with a colour key: value 7 becomes transparent. */
    uint8_t g8[3] = { 7, 8, 200 };
    png_color_16 key = { .gray = 7 };
    buf = write_png(3, 1, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, g8, 3, NULL, 0, NULL, 0, &key,
                    &n);
    CHECK_INT(img_decode(buf, n, NULL, IMG_DECODE_RGBA, &dec, &err), VC_OK);
    static const uint8_t wantkey[12] = { 7, 7, 7, 0, 8, 8, 8, 255, 200, 200, 200, 255 };
    CHECK_INT(max_abs_diff(dec.pixels, wantkey, 12), 0);
    img_release(&dec);
    free(buf);

    /* Adam7 RGB: the same pixels as the non-interlaced encoding. */
    struct img src = make_gradient(13, 11, 3);
    buf = write_png(13, 11, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_ADAM7, src.pixels, 13 * 3, NULL, 0,
                    NULL, 0, NULL, &n);
    CHECK_INT(img_decode(buf, n, NULL, 0, &dec, &err), VC_OK);
    CHECK_INT(dec.w, 13);
    CHECK_INT(max_abs_diff(dec.pixels, src.pixels, 13 * 11 * 3), 0);
    img_release(&dec);
    img_release(&src);
    free(buf);
}

/* ---- JPEG colour spaces and EXIF ---- */

TEST(jpeg_gray_and_cmyk)
{
    tjhandle tj = tjInitCompress();
    unsigned char *buf = NULL;
    unsigned long n = 0;
    struct img dec;
    struct img_info info;
    struct vc_err err;
    /* Flat 16x16 gray: decodes to R=G=B=90 exactly. */
    uint8_t gray[256];
    memset(gray, 90, sizeof gray);
    CHECK_INT(tjCompress2(tj, gray, 16, 0, 16, TJPF_GRAY, &buf, &n, TJSAMP_GRAY, 100, 0), 0);
    CHECK_INT(img_probe(buf, n, NULL, &info, &err), VC_OK);
    CHECK_INT(info.channels, 1);
    CHECK_INT(img_decode(buf, n, NULL, 0, &dec, &err), VC_OK);
    CHECK_INT(dec.ch, 3);
    CHECK(px(&dec, 5, 5)[0] == 90 && px(&dec, 5, 5)[1] == 90 && px(&dec, 5, 5)[2] == 90);
    img_release(&dec);

    /* Flat 16x16 CMYK as stored (Adobe-inverted): (255, 128, 0, 200).
     * Pillow: C=0, M=127, Y=255, K=55, nk=200:
     * R = 200 - 0 = 200, G = 200 - round(127*200/255) = 100, B = 0. */
    uint8_t cmyk[16 * 16 * 4];
    for (int i = 0; i < 256; i++)
        memcpy(cmyk + 4 * i, "\xFF\x80\x00\xC8", 4);
    CHECK_INT(tjCompress2(tj, cmyk, 16, 0, 16, TJPF_CMYK, &buf, &n, TJSAMP_444, 100, 0), 0);
    CHECK_INT(img_probe(buf, n, NULL, &info, &err), VC_OK);
    CHECK_INT(info.channels, 4);
    CHECK(!info.has_alpha);
    CHECK_INT(img_decode(buf, n, NULL, 0, &dec, &err), VC_OK);
    CHECK_INT(dec.ch, 3);
    CHECK_NEAR(px(&dec, 8, 8)[0], 200, 1);
    CHECK_NEAR(px(&dec, 8, 8)[1], 100, 1);
    CHECK_NEAR(px(&dec, 8, 8)[2], 0, 1);
    img_release(&dec);
    tjFree(buf);
    tjDestroy(tj);
}

/* SOI, an APP1 "Exif" block with one IFD0 entry (0x0112 SHORT = o), then
 * the rest of `jpeg` after its SOI. */
static uint8_t *insert_exif(const uint8_t *jpeg, size_t n, uint16_t o, bool big_endian,
                            size_t *out_n)
{
    uint8_t tiff[26];
    bool be = big_endian;
#define PUT16(p, v)                                                                                \
    (be ? ((p)[0] = (uint8_t)((v) >> 8), (p)[1] = (uint8_t)(v))                                    \
        : ((p)[0] = (uint8_t)(v), (p)[1] = (uint8_t)((v) >> 8)))
#define PUT32(p, v)                                                                                \
    (be ? (PUT16((p), (v) >> 16), PUT16((p) + 2, (v)&0xFFFF))                                      \
        : (PUT16((p), (v)&0xFFFF), PUT16((p) + 2, (v) >> 16)))
    memcpy(tiff, be ? "MM" : "II", 2);
    PUT16(tiff + 2, 42);
    PUT32(tiff + 4, 8u); /* IFD0 right after the header */
    PUT16(tiff + 8, 1);  /* one entry */
    PUT16(tiff + 10, 0x0112);
    PUT16(tiff + 12, 3);  /* SHORT */
    PUT32(tiff + 14, 1u); /* count */
    PUT16(tiff + 18, o);  /* value, left-justified in the 4-byte field */
    PUT16(tiff + 20, 0);
    PUT32(tiff + 22, 0u); /* no next IFD */
#undef PUT16
#undef PUT32
    size_t seg = 2 + 6 + sizeof tiff;
    uint8_t *out = malloc(n + 2 + seg);
    size_t k = 0;
    out[k++] = 0xFF, out[k++] = 0xD8, out[k++] = 0xFF, out[k++] = 0xE1;
    out[k++] = (uint8_t)(seg >> 8), out[k++] = (uint8_t)seg;
    memcpy(out + k, "Exif\0\0", 6);
    k += 6;
    memcpy(out + k, tiff, sizeof tiff);
    k += sizeof tiff;
    memcpy(out + k, jpeg + 2, n - 2);
    *out_n = k + n - 2;
    return out;
}

TEST(exif_orientation_all_cases)
{
    /* 64x32 stored, four flat 32x16 quadrants (whole 4:2:0 MCUs, so the
     * colours survive JPEG): TL red, TR green, BL blue, BR white. */
    enum { R, G, B, W };
    static const uint8_t colour[4][3] = {
        { 255, 0, 0 }, { 0, 255, 0 }, { 0, 0, 255 }, { 255, 255, 255 }
    };
    struct img src = { 64, 32, 3, malloc(64 * 32 * 3), 0 };
    for (uint32_t y = 0; y < 32; y++)
        for (uint32_t x = 0; x < 64; x++)
            memcpy(src.pixels + (y * 64 + x) * 3, colour[(y >= 16) * 2 + (x >= 32)], 3);
    uint8_t *jpeg;
    size_t n;
    struct vc_err err;
    CHECK_INT(img_encode(&src, IMG_FORMAT_JPEG, 100, &jpeg, &n, &err), VC_OK);
    /* Display corners TL, TR, BL, BR per orientation, from the EXIF
     * definitions (6 = rotate 90 clockwise to display, 8 = counter-). */
    static const int want[9][4] = {
        { 0 },          { R, G, B, W }, { G, R, W, B }, { W, B, G, R }, { B, W, R, G },
        { R, B, G, W }, { B, R, W, G }, { W, G, B, R }, { G, W, R, B },
    };
    for (int be = 0; be <= 1; be++) {
        for (uint16_t o = 1; o <= 8; o++) {
            size_t m;
            uint8_t *file = insert_exif(jpeg, n, o, be, &m);
            struct img_info info;
            struct img dec;
            CHECK_INT(img_probe(file, m, NULL, &info, &err), VC_OK);
            CHECK_INT(info.orientation, o);
            CHECK_INT(info.width, 64); /* as stored */
            CHECK_INT(img_decode(file, m, NULL, 0, &dec, &err), VC_OK);
            uint32_t dw = o >= 5 ? 32 : 64, dh = o >= 5 ? 64 : 32;
            CHECK_INT(dec.w, dw);
            CHECK_INT(dec.h, dh);
            uint32_t cx[4] = { dw / 4, 3 * dw / 4, dw / 4, 3 * dw / 4 };
            uint32_t cy[4] = { dh / 4, dh / 4, 3 * dh / 4, 3 * dh / 4 };
            for (int q = 0; q < 4; q++) {
                int d = max_abs_diff(px(&dec, cx[q], cy[q]), colour[want[o][q]], 3);
                if (d > 4)
                    fprintf(stderr, "orientation %u (%s) corner %d off by %d\n", o,
                            be ? "MM" : "II", q, d);
                CHECK(d <= 4);
            }
            img_release(&dec);
            /* NO_ORIENT gives the stored picture. */
            CHECK_INT(img_decode(file, m, NULL, IMG_DECODE_NO_ORIENT, &dec, &err), VC_OK);
            CHECK_INT(dec.w, 64);
            CHECK(max_abs_diff(px(&dec, 48, 8), colour[G], 3) <= 4);
            img_release(&dec);
            free(file);
        }
    }
    /* Out-of-range values and a broken IFD offset mean "no orientation". */
    size_t m;
    uint8_t *file = insert_exif(jpeg, n, 9, false, &m);
    struct img_info info;
    CHECK_INT(img_probe(file, m, NULL, &info, &err), VC_OK);
    CHECK_INT(info.orientation, 1);
    free(file);
    file = insert_exif(jpeg, n, 6, false, &m);
    file[2 + 2 + 2 + 6 + 4] = 0xF0; /* IFD0 offset far past the segment */
    CHECK_INT(img_probe(file, m, NULL, &info, &err), VC_OK);
    CHECK_INT(info.orientation, 1);
    free(file);
    free(jpeg);
    img_release(&src);
}

/* ---- broken files ---- */

TEST(truncated_files_are_errors)
{
    static const enum img_format formats[] = { IMG_FORMAT_JPEG, IMG_FORMAT_PNG, IMG_FORMAT_WEBP };
    struct img src = make_gradient(120, 90, 3);
    for (size_t f = 0; f < 3; f++) {
        uint8_t *buf;
        size_t n;
        struct vc_err err;
        CHECK_INT(img_encode(&src, formats[f], 80, &buf, &n, &err), VC_OK);
        /* 30, 60, 90 percent; for JPEG and WebP also just the last two
         * bytes missing (the EOI marker; the RIFF size no longer fits). */
        size_t cuts[4] = { n * 3 / 10, n * 6 / 10, n * 9 / 10, n - 2 };
        int n_cuts = formats[f] == IMG_FORMAT_PNG ? 3 : 4;
        for (int k = 0; k < n_cuts; k++) {
            size_t cut = cuts[k];
            struct img dec;
            enum vc_status rc = img_decode(buf, cut, NULL, 0, &dec, &err);
            if (rc != VC_ESAMPLE || err.reason != VC_REASON_truncated)
                fprintf(stderr, "%s cut at %zu of %zu: %s (%s)\n", img_format_ext(formats[f]), cut,
                        n, vc_reason_name(err.reason), err.msg);
            CHECK_INT(rc, VC_ESAMPLE);
            CHECK_INT(err.reason, VC_REASON_truncated);
            CHECK(dec.pixels == NULL);
        }
        if (formats[f] == IMG_FORMAT_PNG) {
            /* Without IEND the pixels are complete: Pillow accepts such a
             * file, so do we. */
            struct img dec;
            CHECK_INT(img_decode(buf, n - 12, NULL, 0, &dec, &err), VC_OK);
            CHECK(dec.pixels && memcmp(dec.pixels, src.pixels, 120 * 90 * 3) == 0);
            img_release(&dec);
        }
        free(buf);
    }
    img_release(&src);
}

TEST(garbage_and_empty_inputs)
{
    struct img_info info;
    struct img dec;
    struct vc_err err;
    static const uint8_t *inputs[] = {
        (const uint8_t *)"",
        (const uint8_t *)"\xFF\xD8\xFF",
        (const uint8_t *)"\x89PNG\r\n\x1A\n",
        (const uint8_t *)"RIFF\x04\0\0\0WEBP",
        (const uint8_t *)"RIFF\xff\0\0\0WEBPVP8 \x10\0\0\0garbagegarbage!!",
    };
    static const size_t sizes[] = { 0, 3, 8, 12, 32 };
    for (size_t i = 0; i < 5; i++) {
        CHECK_INT(img_probe(inputs[i], sizes[i], NULL, &info, &err), VC_ESAMPLE);
        CHECK_INT(img_decode(inputs[i], sizes[i], NULL, 0, &dec, &err), VC_ESAMPLE);
        CHECK(dec.pixels == NULL);
    }
    /* A 0x0 image is refused by every encoder and by resize. */
    struct img empty = { 0, 0, 3, NULL, 0 }, out;
    uint8_t *buf;
    size_t n;
    for (int f = IMG_FORMAT_JPEG; f <= IMG_FORMAT_WEBP; f++)
        CHECK_INT(img_encode(&empty, (enum img_format)f, 90, &buf, &n, &err), VC_EUSAGE);
    CHECK_INT(img_resize(&empty, IMG_RESIZE_KEEP_RATIO, 32, &out, &err), VC_EUSAGE);
}

/* ---- resize ---- */

TEST(resize_area_and_bilinear_values)
{
    struct vc_err err;
    struct img out;
    /* 4x2 gray-ish RGB -> 2x1: each output averages a 2x2 block. */
    uint8_t a[4 * 2 * 3];
    static const uint8_t v[8] = { 10, 20, 100, 0, 30, 41, 255, 255 };
    for (int i = 0; i < 8; i++)
        memset(a + 3 * i, v[i], 3);
    struct img in = { 4, 2, 3, a, 0 };
    CHECK_INT(img_resize(&in, IMG_RESIZE_FIXED, 2, &out, &err), VC_OK);
    /* FIXED 2x2: x halves, y stays: (10+20)/2=15, (100+0)/2=50, (30+41)/2=35.5->36, 255. */
    CHECK_INT(out.w, 2);
    CHECK_INT(out.h, 2);
    CHECK_INT(out.pixels[0], 15);
    CHECK_INT(out.pixels[3], 50);
    CHECK_INT(out.pixels[6], 36);
    CHECK_INT(out.pixels[9], 255);
    img_release(&out);
    /* 3 -> 2 area: output 0 = (2*p0 + 1*p1) / 3, output 1 = (p1 + 2*p2) / 3. */
    uint8_t b[3 * 3] = { 0, 0, 0, 90, 90, 90, 210, 210, 210 };
    struct img in3 = { 3, 1, 3, b, 0 };
    CHECK_INT(img_resize(&in3, IMG_RESIZE_FIXED, 2, &out, &err), VC_OK);
    /* FIXED: 3x1 -> 2x2: x shrinks (area), y grows (bilinear, copies). */
    CHECK_INT(out.pixels[0], 30);
    CHECK_INT(out.pixels[3], 170);
    CHECK_INT(out.pixels[6], 30);
    CHECK_INT(out.pixels[9], 170);
    img_release(&out);
    /* 2 -> 4 bilinear with centred pixels: 0, 25, 75, 100 (OpenCV's
     * INTER_LINEAR gives the same). */
    uint8_t c[2 * 2 * 3] = { 0, 0, 0, 100, 100, 100, 0, 0, 0, 100, 100, 100 };
    struct img in2 = { 2, 2, 3, c, 0 };
    CHECK_INT(img_resize(&in2, IMG_RESIZE_FIXED, 4, &out, &err), VC_OK);
    static const uint8_t row[4] = { 0, 25, 75, 100 };
    for (uint32_t y = 0; y < 4; y++)
        for (uint32_t x = 0; x < 4; x++)
            CHECK_INT(px(&out, x, y)[0], row[x]);
    img_release(&out);
}

TEST(resize_modes_geometry)
{
    struct vc_err err;
    struct img out;
    struct img in = make_gradient(100, 50, 3);
    /* keep_ratio: the shorter side becomes 32 -> 64x32. */
    CHECK_INT(img_resize(&in, IMG_RESIZE_KEEP_RATIO, 32, &out, &err), VC_OK);
    CHECK_INT(out.w, 64);
    CHECK_INT(out.h, 32);
    img_release(&out);
    /* keep_ratio enlarges as well (resize_only_if_bigger=False): 200x100. */
    CHECK_INT(img_resize(&in, IMG_RESIZE_KEEP_RATIO, 100, &out, &err), VC_OK);
    CHECK_INT(out.w, 200);
    CHECK_INT(out.h, 100);
    img_release(&out);
    CHECK_INT(img_resize(&in, IMG_RESIZE_KEEP_RATIO_LARGEST, 32, &out, &err), VC_OK);
    CHECK_INT(out.w, 32);
    CHECK_INT(out.h, 16);
    img_release(&out);
    CHECK_INT(img_resize(&in, IMG_RESIZE_FIXED, 32, &out, &err), VC_OK);
    CHECK_INT(out.w, 32);
    CHECK_INT(out.h, 32);
    img_release(&out);
    /* center_crop: 64x32 cropped at x = (64 - 32) / 2 = 16; equal to the
     * middle of the keep_ratio result. */
    struct img kr;
    CHECK_INT(img_resize(&in, IMG_RESIZE_KEEP_RATIO, 32, &kr, &err), VC_OK);
    CHECK_INT(img_resize(&in, IMG_RESIZE_CENTER_CROP, 32, &out, &err), VC_OK);
    CHECK_INT(out.w, 32);
    CHECK_INT(out.h, 32);
    for (uint32_t y = 0; y < 32; y++)
        CHECK(memcmp(px(&out, 0, y), px(&kr, 16, y), 32 * 3) == 0);
    img_release(&out);
    img_release(&kr);
    /* border: 32x16 content, (32 - 16) / 2 = 8 white rows above and below. */
    struct img lg;
    CHECK_INT(img_resize(&in, IMG_RESIZE_KEEP_RATIO_LARGEST, 32, &lg, &err), VC_OK);
    CHECK_INT(img_resize(&in, IMG_RESIZE_BORDER, 32, &out, &err), VC_OK);
    CHECK_INT(out.w, 32);
    CHECK_INT(out.h, 32);
    for (uint32_t y = 0; y < 32; y++) {
        if (y < 8 || y >= 24) {
            for (uint32_t x = 0; x < 32; x++)
                CHECK(memcmp(px(&out, x, y), "\xFF\xFF\xFF", 3) == 0);
        } else {
            CHECK(memcmp(px(&out, 0, y), px(&lg, 0, y - 8), 32 * 3) == 0);
        }
    }
    img_release(&out);
    img_release(&lg);
    /* no, and a same-size resize, are exact copies. */
    CHECK_INT(img_resize(&in, IMG_RESIZE_NO, 0, &out, &err), VC_OK);
    CHECK(out.w == 100 && memcmp(out.pixels, in.pixels, 100 * 50 * 3) == 0);
    img_release(&out);
    CHECK_INT(img_resize(&in, IMG_RESIZE_KEEP_RATIO, 50, &out, &err), VC_OK);
    CHECK(out.w == 100 && memcmp(out.pixels, in.pixels, 100 * 50 * 3) == 0);
    img_release(&out);
    img_release(&in);

    /* Python's round: 3x2 to a short side of 3 -> 3 * 1.5 = 4.5 -> 4. */
    struct img small = make_gradient(3, 2, 4);
    CHECK_INT(img_resize(&small, IMG_RESIZE_KEEP_RATIO, 3, &out, &err), VC_OK);
    CHECK_INT(out.w, 4);
    CHECK_INT(out.h, 3);
    CHECK_INT(out.ch, 4);
    img_release(&out);
    img_release(&small);

    /* A 1x2000 strip to a short side of 512 would be 512x1024000. */
    struct img strip = make_gradient(1, 2000, 3);
    CHECK_INT(img_resize(&strip, IMG_RESIZE_KEEP_RATIO, 512, &out, &err), VC_ESAMPLE);
    CHECK_INT(err.reason, VC_REASON_image_too_large);
    CHECK_INT(img_resize(&strip, IMG_RESIZE_KEEP_RATIO_LARGEST, 512, &out, &err), VC_OK);
    CHECK_INT(out.w, 1); /* round(0.256) = 0, kept at one pixel */
    CHECK_INT(out.h, 512);
    img_release(&out);
    /* center_crop keeps size x size whatever the strip's ratio: a 3000x2
     * strip is 384000x256 scaled, of which the middle 256x256 is kept (it
     * was refused as image_too_large for the virtual width). */
    struct img wide = make_gradient(3000, 2, 3);
    CHECK_INT(img_resize(&wide, IMG_RESIZE_CENTER_CROP, 256, &out, &err), VC_OK);
    CHECK_INT(out.w, 256);
    CHECK_INT(out.h, 256);
    img_release(&out);
    img_release(&wide);
    /* The window far from the origin equals the middle of the whole
     * keep_ratio result: 300x2 to 64 is 9600x64, cropped at x = 4768. */
    struct img mid = make_gradient(300, 2, 3);
    CHECK_INT(img_resize(&mid, IMG_RESIZE_KEEP_RATIO, 64, &kr, &err), VC_OK);
    CHECK_INT(kr.w, 9600);
    CHECK_INT(img_resize(&mid, IMG_RESIZE_CENTER_CROP, 64, &out, &err), VC_OK);
    CHECK_INT(out.w, 64);
    for (uint32_t y = 0; y < 64; y++)
        CHECK(memcmp(px(&out, 0, y), px(&kr, 4768, y), 64 * 3) == 0);
    img_release(&out);
    img_release(&kr);
    img_release(&mid);
    CHECK_INT(img_resize(&strip, IMG_RESIZE_KEEP_RATIO, 0, &out, &err), VC_EUSAGE);
    CHECK_INT(img_resize(&strip, (enum img_resize_mode)7, 32, &out, &err), VC_EUSAGE);
    img_release(&strip);
}

TEST(resize_preserves_flat_colour_and_mean)
{
    /* Area averaging keeps a flat colour exactly and a 2x2 checker's mean. */
    struct vc_err err;
    struct img out;
    struct img in = { 37, 23, 4, malloc(37 * 23 * 4), 0 };
    for (size_t i = 0; i < 37 * 23; i++)
        memcpy(in.pixels + 4 * i, "\x11\x80\xEE\x40", 4);
    CHECK_INT(img_resize(&in, IMG_RESIZE_FIXED, 10, &out, &err), VC_OK);
    for (size_t i = 0; i < 100; i++)
        CHECK(memcmp(out.pixels + 4 * i, "\x11\x80\xEE\x40", 4) == 0);
    img_release(&out);
    CHECK_INT(img_resize(&in, IMG_RESIZE_FIXED, 100, &out, &err), VC_OK);
    for (size_t i = 0; i < 100 * 100; i++)
        CHECK(memcmp(out.pixels + 4 * i, "\x11\x80\xEE\x40", 4) == 0);
    img_release(&out);
    img_release(&in);
    struct img ck = { 64, 64, 3, malloc(64 * 64 * 3), 0 };
    for (uint32_t y = 0; y < 64; y++)
        for (uint32_t x = 0; x < 64; x++)
            memset(ck.pixels + (y * 64 + x) * 3, ((x + y) & 1) ? 200 : 100, 3);
    CHECK_INT(img_resize(&ck, IMG_RESIZE_FIXED, 16, &out, &err), VC_OK);
    for (size_t i = 0; i < 16 * 16 * 3; i++)
        CHECK_INT(out.pixels[i], 150);
    img_release(&out);
    img_release(&ck);
}

/* ---- golden fixtures ---- */

/* The U8 [H, W, 3] tensor `name` of expected.safetensors, parsed with
 * cJSON (format: u64 LE header size, JSON header, data). */
static uint8_t *golden_rgb(const uint8_t *st, size_t st_size, const char *name, uint32_t *h,
                           uint32_t *w)
{
    uint64_t hdr = 0;
    for (int i = 7; i >= 0; i--)
        hdr = hdr << 8 | st[i];
    if (hdr > st_size - 8)
        return NULL;
    cJSON *root = cJSON_ParseWithLength((const char *)st + 8, (size_t)hdr);
    cJSON *t = cJSON_GetObjectItemCaseSensitive(root, name);
    cJSON *shape = cJSON_GetObjectItemCaseSensitive(t, "shape");
    cJSON *offs = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
    cJSON *dtype = cJSON_GetObjectItemCaseSensitive(t, "dtype");
    uint8_t *out = NULL;
    if (cJSON_GetArraySize(shape) == 3 && cJSON_GetArraySize(offs) == 2 && cJSON_IsString(dtype) &&
        strcmp(dtype->valuestring, "U8") == 0) {
        *h = (uint32_t)cJSON_GetArrayItem(shape, 0)->valuedouble;
        *w = (uint32_t)cJSON_GetArrayItem(shape, 1)->valuedouble;
        size_t a = (size_t)cJSON_GetArrayItem(offs, 0)->valuedouble;
        size_t b = (size_t)cJSON_GetArrayItem(offs, 1)->valuedouble;
        if (b - a == (size_t)*h * *w * 3 && 8 + hdr + b <= st_size) {
            out = malloc(b - a);
            memcpy(out, st + 8 + hdr + a, b - a);
        }
    }
    cJSON_Delete(root);
    return out;
}

TEST(fixture_images_match_pillow)
{
    static const char *files[] = { "photo_100x70.png",   "rgba_45x33.png", "small_20x15.png",
                                   "square_200x200.png", "tall_61x97.jpg", "wide_300x40.png" };
    size_t st_size;
    uint8_t *st =
        vc_test_read_file(vc_test_fixture("idefics2-tiny/expected.safetensors"), &st_size);
    CHECK(st != NULL);
    if (!st)
        return;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char rel[256], name[256];
        snprintf(rel, sizeof rel, "idefics2-tiny/images/%s", files[i]);
        snprintf(name, sizeof name, "image.%s.rgb", files[i]);
        size_t n;
        uint8_t *data = vc_test_read_file(vc_test_fixture(rel), &n);
        uint32_t h = 0, w = 0;
        uint8_t *want = golden_rgb(st, st_size, name, &h, &w);
        CHECK(data != NULL && want != NULL);
        struct img dec;
        struct vc_err err;
        if (data && want && img_decode(data, n, NULL, 0, &dec, &err) == VC_OK) {
            CHECK_INT(dec.w, w);
            CHECK_INT(dec.h, h);
            CHECK_INT(dec.ch, 3);
            int d = max_abs_diff(dec.pixels, want, (size_t)w * h * 3);
            fprintf(stderr, "%s: max diff vs Pillow %d\n", files[i], d);
            /* PNG (RGBA composited over white included) is exact; JPEG
             * decoders may differ by a level or two. */
            if (strstr(files[i], ".png"))
                CHECK_INT(d, 0);
            else
                CHECK(d <= 2);
            img_release(&dec);
        } else {
            CHECK(0);
        }
        free(data);
        free(want);
    }
    free(st);
}

/* ---- reduced-size decode and verification ---- */

/* The k x k block mean of a full decode, computed here independently. */
static uint8_t block_mean(const struct img *full, uint32_t bx, uint32_t by, uint32_t k, int c)
{
    uint64_t sum = 0, n = 0;
    for (uint32_t y = by * k; y < by * k + k && y < full->h; y++)
        for (uint32_t x = bx * k; x < bx * k + k && x < full->w; x++, n++)
            sum += px(full, x, y)[c];
    return (uint8_t)((sum + n / 2) / n);
}

TEST(reduced_png_is_block_mean_of_full_decode)
{
    /* 203 x 122 with an odd remainder on both axes, written by libpng,
     * progressive (Adam7) and not. */
    uint32_t w = 203, h = 122;
    uint8_t *rows = malloc((size_t)w * h * 3);
    for (uint32_t i = 0; i < w * h * 3; i++)
        rows[i] = (uint8_t)(i * 2654435761u >> 24);
    for (int interlace = 0; interlace < 2; interlace++) {
        size_t n;
        uint8_t *buf = write_png(w, h, 8, PNG_COLOR_TYPE_RGB, interlace, rows, (size_t)w * 3, NULL,
                                 0, NULL, 0, NULL, &n);
        struct img full, small;
        struct vc_err err;
        CHECK_INT(img_decode(buf, n, NULL, 0, &full, &err), VC_OK);
        /* min_side 30 of a 122 side: k = 4, so 51 x 31 blocks. */
        CHECK_INT(img_decode_reduced(buf, n, NULL, 30, 0, &small, &err), VC_OK);
        CHECK_INT(small.w, 51);
        CHECK_INT(small.h, 31);
        int bad = 0;
        for (uint32_t y = 0; y < small.h; y++)
            for (uint32_t x = 0; x < small.w; x++)
                for (int c = 0; c < 3; c++)
                    bad += px(&small, x, y)[c] != block_mean(&full, x, y, 4, c);
        CHECK_INT(bad, 0);
        img_release(&small);
        /* min_side 0 or beyond the image: full size. */
        CHECK_INT(img_decode_reduced(buf, n, NULL, 500, 0, &small, &err), VC_OK);
        CHECK(small.w == w && small.h == h &&
              memcmp(small.pixels, full.pixels, (size_t)w * h * 3) == 0);
        img_release(&small);
        img_release(&full);
        free(buf);
    }
    free(rows);
}

TEST(reduced_jpeg_uses_dct_scaling)
{
    /* TurboJPEG's own encoder, not ours. */
    struct img src = make_gradient(640, 480, 3);
    tjhandle tj = tjInitCompress();
    unsigned char *jpg = NULL;
    unsigned long n = 0;
    CHECK_INT(tjCompress2(tj, src.pixels, 640, 0, 480, TJPF_RGB, &jpg, &n, TJSAMP_420, 90, 0), 0);
    tjDestroy(tj);
    struct img small;
    struct vc_err err;
    /* 1/8 would give 80 x 60 < 100; 1/4 gives 160 x 120. */
    CHECK_INT(img_decode_reduced(jpg, n, NULL, 100, 0, &small, &err), VC_OK);
    CHECK_INT(small.w, 160);
    CHECK_INT(small.h, 120);
    /* A smooth gradient: the scaled decode is the block mean within a few levels. */
    CHECK(max_abs_diff(px(&small, 80, 60),
                       (const uint8_t[]){ px(&src, 322, 242)[0], px(&src, 322, 242)[1],
                                          px(&src, 322, 242)[2] },
                       3) <= 6);
    img_release(&small);
    CHECK_INT(img_decode_reduced(jpg, n, NULL, 1, 0, &small, &err), VC_OK);
    CHECK_INT(small.w, 80);
    CHECK_INT(small.h, 60);
    img_release(&small);
    CHECK_INT(img_verify(jpg, n, NULL, &err), VC_OK);
    tjFree(jpg);
    img_release(&src);
}

TEST(reduced_webp_uses_the_scaler)
{
    struct img src = make_gradient(400, 300, 3), small;
    uint8_t *buf;
    size_t n;
    struct vc_err err;
    CHECK_INT(img_encode(&src, IMG_FORMAT_WEBP, 80, &buf, &n, &err), VC_OK);
    CHECK_INT(img_decode_reduced(buf, n, NULL, 100, 0, &small, &err), VC_OK);
    CHECK_INT(small.w, 134); /* k = 3: ceil(400 / 3) x 100 */
    CHECK_INT(small.h, 100);
    img_release(&small);
    free(buf);
    img_release(&src);
}

TEST(jpeg_scan_cut_with_eoi_appended_fails)
{
    /* A JPEG cut in the middle of its entropy-coded scan with FF D9
     * appended: libjpeg-turbo fills the rest grey and only warns
     * ("premature end of data segment"); that warning is a failure. */
    struct img src = make_gradient(320, 240, 3);
    tjhandle tj = tjInitCompress();
    unsigned char *jpg = NULL;
    unsigned long n = 0;
    CHECK_INT(tjCompress2(tj, src.pixels, 320, 0, 240, TJPF_RGB, &jpg, &n, TJSAMP_420, 90, 0), 0);
    tjDestroy(tj);
    size_t sos = 0;
    for (size_t i = 2; i + 1 < n; i++)
        if (jpg[i] == 0xFF && jpg[i + 1] == 0xDA) {
            sos = i;
            break;
        }
    CHECK(sos > 0);
    size_t cut = sos + (n - sos) / 2;
    uint8_t *bad = malloc(cut + 2);
    memcpy(bad, jpg, cut);
    bad[cut] = 0xFF, bad[cut + 1] = 0xD9;
    struct img dec;
    struct vc_err err;
    CHECK_INT(img_decode(bad, cut + 2, NULL, 0, &dec, &err), VC_ESAMPLE);
    CHECK(strstr(err.msg, "premature end") != NULL);
    CHECK_INT(img_verify(bad, cut + 2, NULL, &err), VC_ESAMPLE);
    CHECK_INT(err.reason, VC_REASON_truncated);
    /* Padding between the scan and EOI is the one benign warning. */
    uint8_t *padded = malloc(n + 4);
    memcpy(padded, jpg, n - 2);
    memcpy(padded + n - 2, "\x00\x00\x00\x00\xFF\xD9", 6);
    CHECK_INT(img_decode(padded, n + 4, NULL, 0, &dec, &err), VC_OK);
    img_release(&dec);
    free(padded);
    free(bad);
    tjFree(jpg);
    img_release(&src);
}

TEST(png_bad_crc_and_idat_fail)
{
    uint32_t w = 64, h = 40;
    uint8_t *rows = malloc((size_t)w * h * 3);
    for (uint32_t i = 0; i < w * h * 3; i++)
        rows[i] = (uint8_t)(i * 2654435761u >> 24);
    size_t n;
    uint8_t *buf =
        write_png(w, h, 8, PNG_COLOR_TYPE_RGB, 0, rows, (size_t)w * 3, NULL, 0, NULL, 0, NULL, &n);
    /* libpng's writer: IHDR at 8, then the single IDAT at 33. */
    CHECK(memcmp(buf + 37, "IDAT", 4) == 0);
    uint32_t len =
        (uint32_t)buf[33] << 24 | (uint32_t)buf[34] << 16 | (uint32_t)buf[35] << 8 | buf[36];
    struct vc_err err;
    buf[41 + len] ^= 0xFF; /* the IDAT's CRC */
    CHECK_INT(img_verify(buf, n, NULL, &err), VC_ESAMPLE);
    CHECK(strstr(err.msg, "CRC") != NULL);
    buf[41 + len] ^= 0xFF;
    CHECK_INT(img_verify(buf, n, NULL, &err), VC_OK);
    /* The zlib stream's Adler-32 (its last 4 bytes) damaged and the chunk
     * CRC recomputed: every row inflates, the stream end does not check. */
    buf[41 + len - 1] ^= 0x01;
    uLong crc = crc32(0, buf + 37, len + 4);
    put_be32(buf + 41 + len, (uint32_t)crc);
    CHECK_INT(img_verify(buf, n, NULL, &err), VC_ESAMPLE);
    CHECK_INT(err.reason, VC_REASON_decode_error);
    free(buf);
    free(rows);
}

/* ---- the pixel budget shared by threads ---- */

struct budget_waiter {
    uint32_t side;
    atomic_int done;
    struct img im;
};

static void *budget_alloc_thread(void *arg)
{
    struct budget_waiter *w = arg;
    struct img src = make_gradient(w->side, w->side, 3), out;
    struct vc_err err;
    /* A resize allocates through the budget: a thread holding nothing. */
    if (img_resize(&src, IMG_RESIZE_NO, 0, &out, &err) == VC_OK)
        w->im = out;
    free(src.pixels);
    atomic_store(&w->done, 1);
    return NULL;
}

TEST(pixel_budget_bounds_threads)
{
    /* 300 x 300 RGB = 270,000 bytes; a budget of 400,000 holds one. */
    img_budget_set(400000);
    struct img a;
    struct vc_err err;
    struct img src = make_gradient(300, 300, 3);
    CHECK_INT(img_resize(&src, IMG_RESIZE_NO, 0, &a, &err), VC_OK);
    CHECK_INT(img_budget_used(), 270000);
    /* This thread holds pixels: a second buffer is never made to wait. */
    struct img b;
    CHECK_INT(img_resize(&src, IMG_RESIZE_NO, 0, &b, &err), VC_OK);
    CHECK_INT(img_budget_used(), 540000);
    img_release(&b);
    /* Another thread holding nothing waits until the pixels come back. */
    struct budget_waiter w = { .side = 300 };
    atomic_init(&w.done, 0);
    pthread_t th;
    CHECK_INT(pthread_create(&th, NULL, budget_alloc_thread, &w), 0);
    usleep(200 * 1000);
    CHECK_INT(atomic_load(&w.done), 0);
    img_release(&a);
    pthread_join(th, NULL);
    CHECK_INT(atomic_load(&w.done), 1);
    CHECK(w.im.pixels != NULL);
    CHECK_INT(img_budget_used(), 270000);
    img_release(&w.im);
    /* A buffer larger than the whole budget is granted when none is out. */
    struct budget_waiter big = { .side = 500 };
    atomic_init(&big.done, 0);
    CHECK_INT(pthread_create(&th, NULL, budget_alloc_thread, &big), 0);
    pthread_join(th, NULL);
    CHECK(big.im.pixels != NULL);
    img_release(&big.im);
    CHECK_INT(img_budget_used(), 0);
    img_budget_set(0);
    free(src.pixels);
}

#define TESTS(X)                                                                                   \
    X(sniff_and_names)                                                                             \
    X(probe_png_headers)                                                                           \
    X(probe_jpeg_headers)                                                                          \
    X(huge_header_rejected_before_allocation)                                                      \
    X(round_trip_every_codec)                                                                      \
    X(jpeg_quality_tolerance)                                                                      \
    X(composite_over_white)                                                                        \
    X(png_palette_trns)                                                                            \
    X(png_gray_depths_and_interlace)                                                               \
    X(jpeg_gray_and_cmyk)                                                                          \
    X(exif_orientation_all_cases)                                                                  \
    X(truncated_files_are_errors)                                                                  \
    X(garbage_and_empty_inputs)                                                                    \
    X(resize_area_and_bilinear_values)                                                             \
    X(resize_modes_geometry)                                                                       \
    X(resize_preserves_flat_colour_and_mean)                                                       \
    X(fixture_images_match_pillow)                                                                 \
    X(reduced_png_is_block_mean_of_full_decode)                                                    \
    X(reduced_jpeg_uses_dct_scaling)                                                               \
    X(reduced_webp_uses_the_scaler)                                                                \
    X(jpeg_scan_cut_with_eoi_appended_fails)                                                       \
    X(png_bad_crc_and_idat_fail)                                                                   \
    X(pixel_budget_bounds_threads)
TEST_MAIN(TESTS)
