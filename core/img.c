/* img: the codec table and everything that does not depend on the file
 * format: limits, EXIF orientation, alpha compositing, resizing and the
 * dispatch of probe/decode/encode.  Per-format code lives in img_jpeg.c,
 * img_png.c and img_webp.c behind struct img_codec_ops (img_int.h).
 *
 * Never allocates from a header before the limits have passed, and never
 * uses threads: callers parallelise over samples, so results cannot depend
 * on a thread count.  Resampling is integer arithmetic for the same
 * reason: the bytes must not change with the compiler's float choices. */
#include "img.h"
#include "img_int.h"

#include "vc_mem.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The one table of formats; img_sniff tries them in this order. */
static const struct img_codec_ops *const img_codecs[] = {
    &img_jpeg_codec,
    &img_png_codec,
    &img_webp_codec,
};
enum { IMG_N_CODECS = sizeof img_codecs / sizeof img_codecs[0] };

static const struct img_codec_ops *img_codec_for(enum img_format f)
{
    for (size_t i = 0; i < IMG_N_CODECS; i++)
        if (img_codecs[i]->format == f)
            return img_codecs[i];
    return NULL;
}

/* The pixel budget (img_budget_set).  `held` is per thread: whether this
 * thread may be made to wait. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t freed;
    uint64_t limit, used;
} img_budget = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
static _Thread_local uint64_t img_budget_held;

void img_budget_set(uint64_t bytes)
{
    pthread_mutex_lock(&img_budget.mu);
    img_budget.limit = bytes;
    pthread_cond_broadcast(&img_budget.freed);
    pthread_mutex_unlock(&img_budget.mu);
}

uint64_t img_budget_used(void)
{
    pthread_mutex_lock(&img_budget.mu);
    uint64_t used = img_budget.used;
    pthread_mutex_unlock(&img_budget.mu);
    return used;
}

static void img_budget_take(size_t n)
{
    pthread_mutex_lock(&img_budget.mu);
    while (img_budget.limit && img_budget_held == 0 && img_budget.used > 0 &&
           img_budget.used + n > img_budget.limit)
        pthread_cond_wait(&img_budget.freed, &img_budget.mu);
    img_budget.used += n;
    img_budget_held += n;
    pthread_mutex_unlock(&img_budget.mu);
}

static void img_budget_give(size_t n)
{
    if (!n)
        return;
    pthread_mutex_lock(&img_budget.mu);
    img_budget.used -= n;
    img_budget_held = img_budget_held > n ? img_budget_held - n : 0;
    pthread_cond_broadcast(&img_budget.freed);
    pthread_mutex_unlock(&img_budget.mu);
}

void img_release(struct img *im)
{
    if (!im)
        return;
    free(im->pixels);
    img_budget_give(im->budgeted);
    memset(im, 0, sizeof *im);
}

enum vc_status img_alloc(struct img *im, uint32_t w, uint32_t h, uint8_t ch, struct vc_err *err)
{
    size_t n;
    memset(im, 0, sizeof *im);
    if (!vc_mul_ok(w, h, &n) || !vc_mul_ok(n, ch, &n))
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_image_too_large, "image %ux%ux%u too large", w,
                          h, ch);
    n = n ? n : 1;
    img_budget_take(n);
    im->pixels = malloc(n);
    if (!im->pixels) {
        img_budget_give(n);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "image %ux%ux%u", w, h, ch);
    }
    im->budgeted = n;
    im->w = w;
    im->h = h;
    im->ch = ch;
    return VC_OK;
}

void img_flatten_white(const uint8_t *rgba, uint8_t *rgb, size_t n_px)
{
    for (size_t i = 0; i < n_px; i++) {
        uint8_t a = rgba[4 * i + 3];
        uint8_t r = rgba[4 * i], g = rgba[4 * i + 1], b = rgba[4 * i + 2];
        rgb[3 * i] = img_over_white(r, a);
        rgb[3 * i + 1] = img_over_white(g, a);
        rgb[3 * i + 2] = img_over_white(b, a);
    }
}

enum img_format img_sniff(const uint8_t *data, size_t size)
{
    if (!data)
        return IMG_FORMAT_UNKNOWN;
    for (size_t i = 0; i < IMG_N_CODECS; i++)
        if (img_codecs[i]->sniff(data, size))
            return img_codecs[i]->format;
    return IMG_FORMAT_UNKNOWN;
}

const char *img_format_ext(enum img_format f)
{
    const struct img_codec_ops *c = img_codec_for(f);
    return c ? c->ext : "unknown";
}

enum img_format img_format_from_name(const char *name)
{
    if (!name)
        return IMG_FORMAT_UNKNOWN;
    if (strcasecmp(name, "jpeg") == 0)
        return IMG_FORMAT_JPEG;
    for (size_t i = 0; i < IMG_N_CODECS; i++)
        if (strcasecmp(name, img_codecs[i]->ext) == 0)
            return img_codecs[i]->format;
    return IMG_FORMAT_UNKNOWN;
}

static enum vc_status img_check_limits(uint32_t w, uint32_t h, const struct img_limits *limits,
                                       struct vc_err *err)
{
    uint64_t max_px = limits && limits->max_pixels ? limits->max_pixels : IMG_DEFAULT_MAX_PIXELS;
    uint32_t max_side = limits && limits->max_side ? limits->max_side : IMG_DEFAULT_MAX_SIDE;
    if (w > max_side || h > max_side || (uint64_t)w * h > max_px)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_image_too_large,
                          "%ux%u exceeds the limits (side %u, %llu pixels)", w, h, max_side,
                          (unsigned long long)max_px);
    return VC_OK;
}

enum vc_status img_probe(const uint8_t *data, size_t size, const struct img_limits *limits,
                         struct img_info *out, struct vc_err *err)
{
    memset(out, 0, sizeof *out);
    if (size == 0)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_empty, "empty image (0 bytes)");
    const struct img_codec_ops *c = img_codec_for(img_sniff(data, size));
    if (!c)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_unsupported_format,
                          "not a JPEG, PNG or WebP file (%zu bytes)", size);
    VC_TRY(c->probe(data, size, out, err));
    return img_check_limits(out->width, out->height, limits, err);
}

/* EXIF orientation o (1..8) maps display pixel (x, y) to a stored pixel;
 * 5..8 swap the axes.  Pillow's exif_transpose: 2 FLIP_LEFT_RIGHT,
 * 3 ROTATE_180, 4 FLIP_TOP_BOTTOM, 5 TRANSPOSE, 6 ROTATE_270, 7 TRANSVERSE,
 * 8 ROTATE_90. */
static enum vc_status img_orient(struct img *im, uint8_t o, struct vc_err *err)
{
    if (o <= 1 || o > 8)
        return VC_OK;
    bool swap = o >= 5;
    uint32_t w = im->w, h = im->h, ow = swap ? h : w, oh = swap ? w : h;
    size_t ch = im->ch;
    struct img out;
    VC_TRY(img_alloc(&out, ow, oh, im->ch, err));
    for (uint32_t y = 0; y < oh; y++) {
        uint8_t *dst = out.pixels + (size_t)y * ow * ch;
        for (uint32_t x = 0; x < ow; x++, dst += ch) {
            uint32_t sx, sy;
            switch (o) {
            case 2:
                sx = w - 1 - x, sy = y;
                break;
            case 3:
                sx = w - 1 - x, sy = h - 1 - y;
                break;
            case 4:
                sx = x, sy = h - 1 - y;
                break;
            case 5:
                sx = y, sy = x;
                break;
            case 6:
                sx = y, sy = h - 1 - x;
                break;
            case 7:
                sx = w - 1 - y, sy = h - 1 - x;
                break;
            default: /* 8 */
                sx = w - 1 - y, sy = x;
                break;
            }
            memcpy(dst, im->pixels + ((size_t)sy * w + sx) * ch, ch);
        }
    }
    img_release(im);
    *im = out;
    return VC_OK;
}

/* RGB to RGBA with opaque alpha, for IMG_DECODE_RGBA on images without
 * alpha: the caller always gets 4 channels when it asks for them. */
static enum vc_status img_add_alpha(struct img *im, struct vc_err *err)
{
    struct img out;
    VC_TRY(img_alloc(&out, im->w, im->h, 4, err));
    size_t n = (size_t)im->w * im->h;
    for (size_t i = 0; i < n; i++) {
        memcpy(out.pixels + 4 * i, im->pixels + 3 * i, 3);
        out.pixels[4 * i + 3] = 255;
    }
    img_release(im);
    *im = out;
    return VC_OK;
}

enum vc_status img_box_reduce(const struct img *in, uint32_t k, struct img *out, struct vc_err *err)
{
    uint32_t ow = (in->w + k - 1) / k, oh = (in->h + k - 1) / k;
    size_t ch = in->ch;
    VC_TRY(img_alloc(out, ow, oh, in->ch, err));
    uint64_t *acc = vc_malloc_array((size_t)ow * ch, sizeof *acc);
    if (!acc) {
        img_release(out);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "reduce: %u columns", ow);
    }
    for (uint32_t oy = 0; oy < oh; oy++) {
        uint32_t y0 = oy * k, ny = in->h - y0 < k ? in->h - y0 : k;
        memset(acc, 0, (size_t)ow * ch * sizeof *acc);
        for (uint32_t y = y0; y < y0 + ny; y++) {
            const uint8_t *row = in->pixels + (size_t)y * in->w * ch;
            for (uint32_t x = 0; x < in->w; x++)
                for (size_t c = 0; c < ch; c++)
                    acc[(size_t)(x / k) * ch + c] += row[(size_t)x * ch + c];
        }
        uint8_t *dst = out->pixels + (size_t)oy * ow * ch;
        for (uint32_t ox = 0; ox < ow; ox++) {
            uint32_t nx = in->w - ox * k < k ? in->w - ox * k : k;
            uint64_t n = (uint64_t)nx * ny;
            for (size_t c = 0; c < ch; c++)
                dst[(size_t)ox * ch + c] = (uint8_t)((acc[(size_t)ox * ch + c] + n / 2) / n);
        }
    }
    free(acc);
    return VC_OK;
}

enum vc_status img_decode(const uint8_t *data, size_t size, const struct img_limits *limits,
                          unsigned flags, struct img *out, struct vc_err *err)
{
    return img_decode_reduced(data, size, limits, 0, flags, out, err);
}

enum vc_status img_verify(const uint8_t *data, size_t size, const struct img_limits *limits,
                          struct vc_err *err)
{
    struct img im;
    enum vc_status rc = img_decode_reduced(data, size, limits, 1, IMG_DECODE_NO_ORIENT, &im, err);
    img_release(&im);
    return rc;
}

enum vc_status img_decode_reduced(const uint8_t *data, size_t size, const struct img_limits *limits,
                                  uint32_t min_side, unsigned flags, struct img *out,
                                  struct vc_err *err)
{
    memset(out, 0, sizeof *out);
    struct img_info info;
    VC_TRY(img_probe(data, size, limits, &info, err));
    const struct img_codec_ops *c = img_codec_for(info.format);
    enum vc_status rc = VC_EOF;
    if ((flags & IMG_DECODE_LUMA) && info.format == IMG_FORMAT_JPEG)
        rc = img_jpeg_decode_luma(data, size, &info, min_side, out, err);
    if (rc == VC_EOF)
        rc = c->decode(data, size, &info, min_side, out, err);
    VC_TRY(rc);
    if (out->ch == 4 && !(flags & IMG_DECODE_RGBA)) {
        size_t n = (size_t)out->w * out->h;
        img_flatten_white(out->pixels, out->pixels, n);
        out->ch = 3;
        /* The block is kept at its size or shrunk: the budget keeps the
         * larger figure until img_release. */
        uint8_t *shrunk = realloc(out->pixels, n * 3);
        if (shrunk) /* keeping the larger block is harmless */
            out->pixels = shrunk;
    } else if (out->ch == 3 && (flags & IMG_DECODE_RGBA)) {
        rc = img_add_alpha(out, err);
    }
    if (out->ch == 3 && (flags & IMG_DECODE_LUMA)) {
        size_t n = (size_t)out->w * out->h;
        for (size_t i = 0; i < n; i++) {
            const uint8_t *p = out->pixels + 3 * i;
            out->pixels[i] =
                (uint8_t)((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16);
        }
        out->ch = 1;
    }
    if (rc == VC_OK && !(flags & IMG_DECODE_NO_ORIENT))
        rc = img_orient(out, info.orientation, err);
    if (rc < 0)
        img_release(out);
    return rc;
}

/* img2dataset's names (its ResizeMode enum), indexed by the enum value. */
static const char *const img_resize_names[] = {
    [IMG_RESIZE_NO] = "no",
    [IMG_RESIZE_KEEP_RATIO] = "keep_ratio",
    [IMG_RESIZE_CENTER_CROP] = "center_crop",
    [IMG_RESIZE_BORDER] = "border",
    [IMG_RESIZE_KEEP_RATIO_LARGEST] = "keep_ratio_largest",
    [IMG_RESIZE_FIXED] = "fixed",
};
enum { IMG_N_RESIZE = sizeof img_resize_names / sizeof img_resize_names[0] };

enum img_resize_mode img_resize_mode_from_name(const char *name)
{
    for (int i = 0; name && i < IMG_N_RESIZE; i++)
        if (strcmp(name, img_resize_names[i]) == 0)
            return (enum img_resize_mode)i;
    return (enum img_resize_mode) - 1;
}

const char *img_resize_mode_name(enum img_resize_mode m)
{
    return (unsigned)m < IMG_N_RESIZE ? img_resize_names[m] : "unknown";
}

/* One axis of a separable resampler over the outputs o0..o0+count-1 of a
 * scaled axis: output o0 + i reads n[i] source samples from first[i] on,
 * with weights w[off[i]..] that sum to IMG_W_ONE.  Only the window is
 * built: center_crop of a 3000x2 strip scales its long axis to 384000
 * virtual pixels of which 256 are kept. */
struct img_axis {
    uint32_t *first, *n;
    size_t *off;
    uint32_t *w;
};

/* 14 fractional bits: a weight times an 8.8 intermediate sample stays
 * below 2^32 (65280 * 2^14), so both passes accumulate in uint32. */
enum { IMG_W_BITS = 14, IMG_W_ONE = 1 << IMG_W_BITS };

static void img_axis_free(struct img_axis *a)
{
    free(a->first);
    free(a->n);
    free(a->off);
    free(a->w);
    memset(a, 0, sizeof *a);
}

/* Area weights: output o covers the source span [o*in, (o+1)*in) in units
 * of 1/out pixel, so each overlap is an exact integer and they sum to `in`
 * (OpenCV's INTER_AREA).  Scaled to IMG_W_ONE by flooring, the remainder
 * going to the first largest weight, so a flat colour stays exact. */
static size_t img_axis_area(struct img_axis *a, uint32_t in, uint32_t out, uint32_t o, uint32_t i,
                            size_t k)
{
    uint64_t lo = (uint64_t)o * in, hi = lo + in;
    uint32_t j0 = (uint32_t)(lo / out), j1 = (uint32_t)((hi - 1) / out);
    uint32_t sum = 0;
    size_t big = k;
    for (uint32_t j = j0; j <= j1; j++, k++) {
        uint64_t s = (uint64_t)j * out, e = s + out;
        uint64_t overlap = (e < hi ? e : hi) - (s > lo ? s : lo);
        a->w[k] = (uint32_t)(overlap * IMG_W_ONE / in);
        sum += a->w[k];
        if (a->w[k] > a->w[big])
            big = k;
    }
    a->w[big] += IMG_W_ONE - sum;
    a->first[i] = j0;
    a->n[i] = j1 - j0 + 1;
    return k;
}

/* Bilinear with pixel centres aligned: source x = (o + 0.5) * in / out -
 * 0.5, kept as the exact fraction num / (2 * out), clamped at the edges. */
static size_t img_axis_linear(struct img_axis *a, uint32_t in, uint32_t out, uint32_t o, uint32_t i,
                              size_t k)
{
    int64_t num = (int64_t)(2 * (uint64_t)o + 1) * in - out;
    uint64_t den2 = 2 * (uint64_t)out;
    uint32_t j0 = 0, f = 0;
    if (num > 0) {
        j0 = (uint32_t)((uint64_t)num / den2);
        f = (uint32_t)(((uint64_t)num % den2 * IMG_W_ONE + out) / den2);
    }
    if (f == IMG_W_ONE) {
        j0++;
        f = 0;
    }
    if (j0 >= in - 1) {
        j0 = in - 1;
        f = 0;
    }
    a->first[i] = j0;
    a->n[i] = f ? 2 : 1;
    a->w[k++] = IMG_W_ONE - f;
    if (f)
        a->w[k++] = f;
    return k;
}

static enum vc_status img_axis_build(struct img_axis *a, uint32_t in, uint32_t out, uint32_t o0,
                                     uint32_t count, struct vc_err *err)
{
    memset(a, 0, sizeof *a);
    /* An area output spans at most in / out + 2 sources. */
    size_t max_taps = in > out ? ((size_t)in / out + 2) * count : (size_t)2 * count;
    a->first = vc_malloc_array(count, sizeof *a->first);
    a->n = vc_malloc_array(count, sizeof *a->n);
    a->off = vc_malloc_array(count, sizeof *a->off);
    a->w = vc_malloc_array(max_taps, sizeof *a->w);
    if (!a->first || !a->n || !a->off || !a->w) {
        img_axis_free(a);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "resize: %u -> %u", in, out);
    }
    size_t k = 0;
    for (uint32_t i = 0; i < count; i++) {
        a->off[i] = k;
        k = in > out ? img_axis_area(a, in, out, o0 + i, i, k)
                     : img_axis_linear(a, in, out, o0 + i, i, k);
    }
    return VC_OK;
}

/* Horizontal pass over one source row into 8.8 fixed point, for the cw
 * outputs of the window `ax` was built for.  `ch` is a literal at every
 * call so the channel loop unrolls. */
static inline void img_hpass(const struct img_axis *ax, const uint8_t *src, uint16_t *dst,
                             uint32_t cw, const size_t ch)
{
    for (uint32_t x = 0; x < cw; x++, dst += ch) {
        const uint32_t *w = ax->w + ax->off[x];
        const uint8_t *s = src + (size_t)ax->first[x] * ch;
        uint32_t acc[4] = { 0, 0, 0, 0 };
        for (uint32_t t = 0; t < ax->n[x]; t++, s += ch)
            for (size_t c = 0; c < ch; c++)
                acc[c] += w[t] * s[c];
        for (size_t c = 0; c < ch; c++)
            dst[c] = (uint16_t)((acc[c] + (1u << (IMG_W_BITS - 9))) >> (IMG_W_BITS - 8));
    }
}

/* The part of `in` scaled to sw x sh that lies in the window x0, y0,
 * cw x chh, written to dst (row stride dst_stride bytes).  Horizontal pass
 * over the source rows the window needs, then the vertical pass through a
 * row of accumulators. */
static enum vc_status img_resample(const struct img *in, uint32_t sw, uint32_t sh, uint32_t x0,
                                   uint32_t y0, uint32_t cw, uint32_t chh, uint8_t *dst,
                                   size_t dst_stride, struct vc_err *err)
{
    size_t ch = in->ch, row = (size_t)cw * ch;
    if (sw == in->w && sh == in->h) { /* same size: an exact copy of the window */
        for (uint32_t y = 0; y < chh; y++)
            memcpy(dst + y * dst_stride, in->pixels + ((size_t)(y0 + y) * in->w + x0) * ch, row);
        return VC_OK;
    }
    struct img_axis ax, ay;
    VC_TRY(img_axis_build(&ax, in->w, sw, x0, cw, err));
    enum vc_status rc = img_axis_build(&ay, in->h, sh, y0, chh, err);
    if (rc < 0) {
        img_axis_free(&ax);
        return rc;
    }
    uint32_t ylo = ay.first[0], yhi = ay.first[chh - 1] + ay.n[chh - 1];
    uint16_t *tmp = vc_malloc_array((size_t)(yhi - ylo), row * sizeof *tmp);
    uint32_t *acc = vc_malloc_array(row, sizeof *acc);
    if (!tmp || !acc) {
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "resize: %ux%u -> %ux%u", in->w,
                        in->h, sw, sh);
        goto done;
    }
    for (uint32_t y = ylo; y < yhi; y++) {
        const uint8_t *src = in->pixels + (size_t)y * in->w * ch;
        uint16_t *t = tmp + (size_t)(y - ylo) * row;
        if (ch == 3)
            img_hpass(&ax, src, t, cw, 3);
        else
            img_hpass(&ax, src, t, cw, 4);
    }
    for (uint32_t y = 0; y < chh; y++) {
        const uint32_t *w = ay.w + ay.off[y];
        memset(acc, 0, row * sizeof *acc);
        for (uint32_t k = 0; k < ay.n[y]; k++) {
            const uint16_t *s = tmp + (size_t)(ay.first[y] + k - ylo) * row;
            for (size_t i = 0; i < row; i++)
                acc[i] += w[k] * s[i];
        }
        uint8_t *d = dst + (size_t)y * dst_stride;
        for (size_t i = 0; i < row; i++)
            d[i] = (uint8_t)((acc[i] + (1u << (IMG_W_BITS + 7))) >> (IMG_W_BITS + 8));
    }
done:
    free(tmp);
    free(acc);
    img_axis_free(&ax);
    img_axis_free(&ay);
    return rc;
}

/* Python's round(dim * scale) in double (ties to even), as albumentations
 * computes the target of smallest_max_size / longest_max_size. */
static double img_scaled(uint32_t dim, uint32_t size, uint32_t ref)
{
    double r = nearbyint((double)dim * ((double)size / (double)ref));
    return r < 1 ? 1 : r;
}

enum vc_status img_resize(const struct img *in, enum img_resize_mode mode, uint32_t size,
                          struct img *out, struct vc_err *err)
{
    memset(out, 0, sizeof *out);
    if (!in->pixels || in->w == 0 || in->h == 0 || (in->ch != 3 && in->ch != 4))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "resize: empty or %u-channel image",
                          in->ch);
    if ((unsigned)mode >= IMG_N_RESIZE || (mode != IMG_RESIZE_NO && size == 0))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "resize: mode %d to size %u",
                          (int)mode, size);
    uint32_t lo = in->w < in->h ? in->w : in->h, hi = in->w < in->h ? in->h : in->w;
    double rw = in->w, rh = in->h;
    switch (mode) {
    case IMG_RESIZE_NO:
        break;
    case IMG_RESIZE_KEEP_RATIO:
    case IMG_RESIZE_CENTER_CROP:
        rw = img_scaled(in->w, size, lo);
        rh = img_scaled(in->h, size, lo);
        break;
    case IMG_RESIZE_KEEP_RATIO_LARGEST:
    case IMG_RESIZE_BORDER:
        rw = img_scaled(in->w, size, hi);
        rh = img_scaled(in->h, size, hi);
        break;
    case IMG_RESIZE_FIXED:
        rw = rh = size;
        break;
    }
    /* center_crop and border end as size x size around the centre, with
     * albumentations' center_crop ((dim - size) // 2) and pad
     * (int((size - dim) / 2)) offsets; only the visible window of the
     * scaled image is computed, so only what is kept must fit. */
    bool square = mode == IMG_RESIZE_CENTER_CROP || mode == IMG_RESIZE_BORDER;
    /* A 1x10000 strip scaled to a 512 short side would be 512x5120000:
     * the output obeys the same bounds as a decoded image.  The scaled
     * axes of center_crop stay virtual (a 3000x2 strip becomes 384000x256
     * of which the middle 256x256 is kept); they need only fit uint32. */
    double ow = square ? size : rw, oh = square ? size : rh;
    if (ow > IMG_DEFAULT_MAX_SIDE || oh > IMG_DEFAULT_MAX_SIDE ||
        ow * oh > IMG_DEFAULT_MAX_PIXELS || rw > UINT32_MAX || rh > UINT32_MAX)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_image_too_large,
                          "resize: %ux%u would become %.0fx%.0f", in->w, in->h, ow, oh);
    uint32_t sw = (uint32_t)rw, sh = (uint32_t)rh;
    uint32_t fw = square ? size : sw, fh = square ? size : sh;
    uint32_t cw = sw < fw ? sw : fw, chh = sh < fh ? sh : fh;
    uint32_t x0 = (sw - cw) / 2, y0 = (sh - chh) / 2, dx = (fw - cw) / 2, dy = (fh - chh) / 2;
    VC_TRY(img_alloc(out, fw, fh, in->ch, err));
    size_t stride = (size_t)fw * in->ch;
    if (cw != fw || chh != fh)
        memset(out->pixels, 255, stride * fh);
    enum vc_status rc =
        img_resample(in, sw, sh, x0, y0, cw, chh,
                     out->pixels + (size_t)dy * stride + (size_t)dx * in->ch, stride, err);
    if (rc < 0)
        img_release(out);
    return rc;
}

enum vc_status img_encode(const struct img *im, enum img_format format, int quality, uint8_t **out,
                          size_t *out_size, struct vc_err *err)
{
    *out = NULL;
    *out_size = 0;
    const struct img_codec_ops *c = img_codec_for(format);
    if (!c)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "encode: unknown format %d",
                          (int)format);
    if (!im->pixels || im->w == 0 || im->h == 0 || (im->ch != 3 && im->ch != 4))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "encode: empty or %u-channel image",
                          im->ch);
    if (im->w > IMG_DEFAULT_MAX_SIDE || im->h > IMG_DEFAULT_MAX_SIDE)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_image_too_large, "encode: %ux%u", im->w,
                          im->h);
    quality = quality < 1 ? 1 : quality > 100 ? 100 : quality;
    return c->encode(im, quality, out, out_size, err);
}
