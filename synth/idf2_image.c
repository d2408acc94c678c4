/* idf2_image: Idefics2ImageProcessor in C, bit-exact.
 *
 * Owns the resample coefficients, the intermediate uint8 crops and the
 * float output.  It must never round differently from Pillow: every double
 * expression below is written in the operand order of Pillow's Resample.c
 * or of transformers' numpy code, because a reordered sum or a fused
 * multiply-add moves some pixel by one level.  Output sizes are bounded by
 * the processor's edges (or, without resizing, by the decoder's limits);
 * every allocation is overflow-checked. */
#include "synth/idf2_image.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/vc_mem.h"

/* Pillow's fixed point for 8-bit resampling: 8 bits of result plus two of
 * headroom leave 22 bits of coefficient precision. */
#define RS_PRECISION_BITS 22

/* transformers' PILImageResampling.BILINEAR. */
#define PIL_BILINEAR 2

enum vc_status idf2_image_decode(const uint8_t *data, size_t size, const struct img_limits *limits,
                                 struct img *out, struct vc_err *err)
{
    return img_decode(data, size, limits, IMG_DECODE_NO_ORIENT, out, err);
}

/* --------------------------------------------------------------- resample */

/* One axis of a resample: output index o reads in[first[o] .. first[o] +
 * count[o]) with the weights k[o * ksize ..]. */
struct rs_axis {
    int ksize;
    int *first, *count;
    int32_t *k;
};

/* Leaves *a empty, so freeing twice (init failure, then cleanup) is safe. */
static void rs_axis_free(struct rs_axis *a)
{
    free(a->first);
    free(a->count);
    free(a->k);
    memset(a, 0, sizeof *a);
}

static double tri(double x)
{
    if (x < 0.0)
        x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc for the bilinear
 * filter (support 1). */
static enum vc_status rs_axis_init(struct rs_axis *a, int in_size, int out_size, struct vc_err *err)
{
    memset(a, 0, sizeof *a);
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;
    a->ksize = (int)ceil(support) * 2 + 1;
    size_t n_k;
    double *w = NULL;
    if (vc_mul_ok((size_t)out_size, (size_t)a->ksize, &n_k)) {
        a->first = vc_malloc_array((size_t)out_size, sizeof *a->first);
        a->count = vc_malloc_array((size_t)out_size, sizeof *a->count);
        a->k = vc_malloc_array(n_k, sizeof *a->k);
        w = vc_malloc_array((size_t)a->ksize, sizeof *w);
    }
    if (!a->first || !a->count || !a->k || !w) {
        free(w);
        rs_axis_free(a);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "resample %d -> %d", in_size,
                          out_size);
    }
    for (int o = 0; o < out_size; o++) {
        double center = (o + 0.5) * scale;
        double ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size)
            xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            w[x] = tri((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        int32_t *k = &a->k[(size_t)o * a->ksize];
        for (int x = 0; x < a->ksize; x++) {
            double v = x < xmax ? (ww != 0.0 ? w[x] / ww : w[x]) : 0.0;
            /* The triangle is never negative, so Pillow's negative-weight
             * rounding branch cannot occur. */
            k[x] = (int32_t)(0.5 + v * (1 << RS_PRECISION_BITS));
        }
        a->first[o] = xmin;
        a->count[o] = xmax;
    }
    free(w);
    return VC_OK;
}

static uint8_t rs_clip8(int32_t acc)
{
    int32_t v = acc >> RS_PRECISION_BITS; /* arithmetic shift, as Pillow's table lookup */
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

/* Resamples a strided RGB image along x: `in` rows have `in_stride` bytes. */
static void rs_horizontal(const uint8_t *in, size_t in_stride, uint32_t h, const struct rs_axis *a,
                          uint32_t out_w, uint8_t *out)
{
    for (uint32_t y = 0; y < h; y++) {
        const uint8_t *row = in + y * in_stride;
        uint8_t *dst = out + (size_t)y * out_w * 3;
        for (uint32_t o = 0; o < out_w; o++) {
            const int32_t *k = &a->k[(size_t)o * a->ksize];
            const uint8_t *src = row + (size_t)a->first[o] * 3;
            int32_t s0 = 1 << (RS_PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < a->count[o]; x++) {
                s0 += src[3 * x + 0] * k[x];
                s1 += src[3 * x + 1] * k[x];
                s2 += src[3 * x + 2] * k[x];
            }
            dst[3 * o + 0] = rs_clip8(s0);
            dst[3 * o + 1] = rs_clip8(s1);
            dst[3 * o + 2] = rs_clip8(s2);
        }
    }
}

static void rs_vertical(const uint8_t *in, size_t in_stride, uint32_t w, const struct rs_axis *a,
                        uint32_t out_h, uint8_t *out)
{
    for (uint32_t o = 0; o < out_h; o++) {
        const int32_t *k = &a->k[(size_t)o * a->ksize];
        uint8_t *dst = out + (size_t)o * w * 3;
        for (uint32_t x = 0; x < 3 * w; x++) {
            const uint8_t *src = in + (size_t)a->first[o] * in_stride + x;
            int32_t s = 1 << (RS_PRECISION_BITS - 1);
            for (int y = 0; y < a->count[o]; y++)
                s += src[(size_t)y * in_stride] * k[y];
            dst[x] = rs_clip8(s);
        }
    }
}

static enum vc_status rgb_alloc(struct img *im, uint32_t w, uint32_t h, struct vc_err *err)
{
    size_t n;
    memset(im, 0, sizeof *im);
    if (!vc_mul_ok((size_t)w * 3, h, &n) || !(im->pixels = malloc(n ? n : 1)))
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "image %ux%u", w, h);
    im->w = w;
    im->h = h;
    im->ch = 3;
    return VC_OK;
}

/* Image.resize on a strided region: copy when the size is unchanged, else
 * the passes that are needed, horizontal first. */
static enum vc_status resize_region(const uint8_t *in, size_t stride, uint32_t w, uint32_t h,
                                    uint32_t out_w, uint32_t out_h, struct img *out,
                                    struct vc_err *err)
{
    if (out_w == 0 || out_h == 0 || out_w > INT32_MAX / 3 || out_h > INT32_MAX / 3)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_image_too_large, "resize to %ux%u", out_w,
                          out_h);
    VC_TRY(rgb_alloc(out, out_w, out_h, err));
    if (out_w == w && out_h == h) {
        for (uint32_t y = 0; y < h; y++)
            memcpy(out->pixels + (size_t)y * w * 3, in + y * stride, (size_t)w * 3);
        return VC_OK;
    }
    struct img mid = { 0 };
    struct rs_axis ax = { 0 }, ay = { 0 };
    enum vc_status rc = VC_OK;
    if (out_w != w) {
        rc = rs_axis_init(&ax, (int)w, (int)out_w, err);
        if (rc == VC_OK && out_h != h)
            rc = rgb_alloc(&mid, out_w, h, err);
        if (rc == VC_OK) {
            rs_horizontal(in, stride, h, &ax, out_w, out_h != h ? mid.pixels : out->pixels);
            in = mid.pixels;
            stride = (size_t)out_w * 3;
        }
    }
    if (rc == VC_OK && out_h != h) {
        rc = rs_axis_init(&ay, (int)h, (int)out_h, err);
        if (rc == VC_OK)
            rs_vertical(in, stride, out_w, &ay, out_h, out->pixels);
    }
    rs_axis_free(&ax);
    rs_axis_free(&ay);
    img_release(&mid);
    if (rc != VC_OK)
        img_release(out);
    return rc;
}

enum vc_status idf2_image_resize(const struct img *in, uint32_t out_w, uint32_t out_h,
                                 struct img *out, struct vc_err *err)
{
    memset(out, 0, sizeof *out);
    if (in->ch != 3 || in->w == 0 || in->h == 0)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_unsupported_format,
                          "resize: needs a non-empty RGB image (%ux%ux%u)", in->w, in->h, in->ch);
    return resize_region(in->pixels, (size_t)in->w * 3, in->w, in->h, out_w, out_h, out, err);
}

void idf2_image_target_size(uint32_t w, uint32_t h, int longest_edge, int shortest_edge,
                            uint32_t *out_w, uint32_t *out_h)
{
    /* transformers' get_resize_output_image_size, Python float semantics. */
    double aspect = (double)w / (double)h;
    int64_t W = w, H = h;
    if (W >= H && W > longest_edge) {
        W = longest_edge;
        H = (int64_t)((double)W / aspect);
    } else if (H > W && H > longest_edge) {
        H = longest_edge;
        W = (int64_t)((double)H * aspect);
    }
    *out_h = (uint32_t)(H > shortest_edge ? H : shortest_edge);
    *out_w = (uint32_t)(W > shortest_edge ? W : shortest_edge);
}

/* ------------------------------------------------------------ processing */

void idf2_pixels_free(struct idf2_pixels *px)
{
    free(px->values);
    free(px->mask);
    free(px->real_h);
    free(px->real_w);
    memset(px, 0, sizeof *px);
}

/* rescale then normalize, per channel and 8-bit value, in transformers'
 * dtypes: float32(double(v) * factor), then (x - mean) / std in float32. */
static void build_lut(const struct idf2_preproc_config *cfg, float lut[3][256])
{
    for (int c = 0; c < 3; c++) {
        float mean = (float)cfg->image_mean[c], std = (float)cfg->image_std[c];
        for (int v = 0; v < 256; v++) {
            float x = cfg->do_rescale ? (float)((double)v * cfg->rescale_factor) : (float)v;
            lut[c][v] = cfg->do_normalize ? (x - mean) / std : x;
        }
    }
}

/* The five regions of the split (TL, TR, BL, BR, whole) or just the whole:
 * {x, y, w, h}. */
static size_t split_regions(uint32_t w, uint32_t h, bool split, uint32_t r[5][4])
{
    uint32_t mw = w / 2, mh = h / 2;
    size_t n = 0;
    if (split) {
        const uint32_t quads[4][4] = { { 0, 0, mw, mh },
                                       { mw, 0, w - mw, mh },
                                       { 0, mh, mw, h - mh },
                                       { mw, mh, w - mw, h - mh } };
        memcpy(r, quads, sizeof quads);
        n = 4;
    }
    r[n][0] = 0;
    r[n][1] = 0;
    r[n][2] = w;
    r[n][3] = h;
    return n + 1;
}

static enum vc_status check_cfg(const struct idf2_preproc_config *cfg, struct vc_err *err)
{
    if (cfg->do_resize && cfg->resample != PIL_BILINEAR)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint,
                          "image processor: resample %d is not supported (only 2, BILINEAR)",
                          cfg->resample);
    if (cfg->do_resize && (cfg->longest_edge < 1 || cfg->shortest_edge < 1))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint, "image processor: edges %d/%d",
                          cfg->longest_edge, cfg->shortest_edge);
    for (int c = 0; c < 3 && cfg->do_normalize; c++)
        if (!(cfg->image_std[c] != 0.0))
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint,
                              "image processor: image_std[%d] is 0", c);
    return VC_OK;
}

/* Splits and resizes every source image into `crops` (n_src * per_src
 * entries, owned by the caller). */
static enum vc_status crop_and_resize(const struct idf2_preproc_config *cfg,
                                      const struct img *images, size_t n_src, struct img *crops,
                                      struct vc_err *err)
{
    size_t k = 0;
    for (size_t i = 0; i < n_src; i++) {
        const struct img *im = &images[i];
        uint32_t min_side = cfg->do_image_splitting ? 2 : 1;
        if (im->ch != 3 || !im->pixels || im->w < min_side || im->h < min_side)
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_decode_error,
                              "image %zu: %ux%u with %u channels; the processor needs RGB of at "
                              "least %ux%u",
                              i, im->w, im->h, im->ch, min_side, min_side);
        uint32_t r[5][4];
        size_t n = split_regions(im->w, im->h, cfg->do_image_splitting, r);
        for (size_t j = 0; j < n; j++, k++) {
            uint32_t tw = r[j][2], th = r[j][3];
            if (cfg->do_resize)
                idf2_image_target_size(tw, th, cfg->longest_edge, cfg->shortest_edge, &tw, &th);
            size_t stride = (size_t)im->w * 3;
            const uint8_t *origin = im->pixels + (size_t)r[j][1] * stride + (size_t)r[j][0] * 3;
            VC_TRY(resize_region(origin, stride, r[j][2], r[j][3], tw, th, &crops[k], err));
        }
    }
    return VC_OK;
}

/* Normalizes the crops into the padded canvas of *out. */
static enum vc_status pad_and_normalize(const struct idf2_preproc_config *cfg,
                                        const struct img *crops, struct idf2_pixels *out,
                                        struct vc_err *err)
{
    uint32_t H = 0, W = 0;
    for (size_t i = 0; i < out->n_images; i++) {
        if (!cfg->do_pad && i > 0 && (crops[i].w != W || crops[i].h != H))
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                              "images of different sizes need do_pad");
        H = crops[i].h > H ? crops[i].h : H;
        W = crops[i].w > W ? crops[i].w : W;
    }
    size_t plane, n_px, n_vals;
    if (!vc_mul_ok(H, W, &plane) || !vc_mul_ok(plane, out->n_images, &n_px) ||
        !vc_mul_ok(n_px, 3, &n_vals))
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_image_too_large, "pixel batch too large");
    out->height = H;
    out->width = W;
    out->values = vc_malloc_array(n_vals, sizeof *out->values);
    out->mask = calloc(n_px, 1);
    out->real_h = vc_malloc_array(out->n_images, sizeof *out->real_h);
    out->real_w = vc_malloc_array(out->n_images, sizeof *out->real_w);
    if (!out->values || !out->mask || !out->real_h || !out->real_w)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "pixel batch %zu x %ux%u",
                          out->n_images, H, W);
    float lut[3][256];
    build_lut(cfg, lut);
    for (size_t i = 0; i < out->n_images; i++) {
        const struct img *c = &crops[i];
        out->real_h[i] = c->h;
        out->real_w[i] = c->w;
        for (int ch = 0; ch < 3; ch++) {
            float *dst = out->values + (i * 3 + (size_t)ch) * plane;
            for (uint32_t y = 0; y < H; y++)
                for (uint32_t x = 0; x < W; x++)
                    dst[(size_t)y * W + x] =
                        y < c->h && x < c->w ? lut[ch][c->pixels[((size_t)y * c->w + x) * 3 + ch]]
                                             : 0.0f;
        }
        uint8_t *m = out->mask + i * plane;
        for (uint32_t y = 0; y < c->h; y++)
            memset(m + (size_t)y * W, 1, c->w);
    }
    return VC_OK;
}

enum vc_status idf2_image_preprocess(const struct idf2_preproc_config *cfg,
                                     const struct img *images, size_t n_src,
                                     struct idf2_pixels *out, struct vc_err *err)
{
    memset(out, 0, sizeof *out);
    VC_TRY(check_cfg(cfg, err));
    size_t per_src = cfg->do_image_splitting ? 5 : 1, n;
    if (n_src == 0)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_missing_image, "no images to preprocess");
    if (!vc_mul_ok(n_src, per_src, &n))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_image_too_large, "too many images");
    struct img *crops = calloc(n, sizeof *crops);
    if (!crops)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "%zu images", n);
    out->n_images = n;
    enum vc_status rc = crop_and_resize(cfg, images, n_src, crops, err);
    if (rc == VC_OK)
        rc = pad_and_normalize(cfg, crops, out, err);
    for (size_t i = 0; i < n; i++)
        img_release(&crops[i]);
    free(crops);
    if (rc != VC_OK)
        idf2_pixels_free(out);
    return rc;
}

enum vc_status idf2_pixels_patch_mask(const struct idf2_pixels *px, int patch_size, uint8_t **mask,
                                      uint32_t *grid_h, uint32_t *grid_w, struct vc_err *err)
{
    *mask = NULL;
    if (patch_size < 1)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint, "patch size %d", patch_size);
    uint32_t p = (uint32_t)patch_size, gh = px->height / p, gw = px->width / p;
    size_t cells, n;
    if (!vc_mul_ok(gh, gw, &cells) || !vc_mul_ok(cells, px->n_images, &n) ||
        !(*mask = malloc(n ? n : 1)))
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "patch mask");
    size_t plane = (size_t)px->height * px->width;
    for (size_t i = 0; i < px->n_images; i++) {
        const uint8_t *m = px->mask + i * plane;
        for (uint32_t r = 0; r < gh; r++)
            for (uint32_t c = 0; c < gw; c++) {
                uint8_t all = 1;
                for (uint32_t y = r * p; all && y < (r + 1) * p; y++)
                    for (uint32_t x = c * p; all && x < (c + 1) * p; x++)
                        all = m[(size_t)y * px->width + x];
                (*mask)[i * cells + (size_t)r * gw + c] = all;
            }
    }
    *grid_h = gh;
    *grid_w = gw;
    return VC_OK;
}
