/* img_int: the codec vtable behind core/img.h and the helpers the codecs
 * share.  Private to core/img*.c; nothing outside core/ includes it.
 *
 * A codec knows one file format and nothing else: it sniffs magic bytes,
 * reads the header, decodes to 8-bit RGB or RGBA in stored orientation, and
 * encodes.  Limits, EXIF orientation, alpha compositing and resizing live
 * in img.c, once for every format. */
#ifndef VC_CORE_IMG_INT_H
#define VC_CORE_IMG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "img.h"
#include "vc_err.h"

struct img_codec_ops {
    enum img_format format;
    const char *ext; /* the webdataset extension */
    bool (*sniff)(const uint8_t *data, size_t size);
    /* Header only; fills every field of *out (orientation 1 if none).
     * Limits are checked by the caller afterwards. */
    enum vc_status (*probe)(const uint8_t *data, size_t size, struct img_info *out,
                            struct vc_err *err);
    /* Decodes to out->ch = 4 when info->has_alpha, else 3, at the stored
     * size and orientation.  `info` comes from probe and has passed the
     * limits; a decoder whose library reads another size fails instead of
     * trusting it.  min_side 0: full size; otherwise the codec may return
     * any smaller size whose sides are both >= min_side (or the full size
     * when that is smaller), as cheaply as it can (img_decode_reduced).
     * out->pixels is owned by the caller on success and NULL on failure. */
    enum vc_status (*decode)(const uint8_t *data, size_t size, const struct img_info *info,
                             uint32_t min_side, struct img *out, struct vc_err *err);
    /* `im` is 3 or 4 channels; quality is already clamped to 1..100.
     * *out is owned (free()). */
    enum vc_status (*encode)(const struct img *im, int quality, uint8_t **out, size_t *out_size,
                             struct vc_err *err);
};

extern const struct img_codec_ops img_jpeg_codec;
extern const struct img_codec_ops img_png_codec;
extern const struct img_codec_ops img_webp_codec;

/* JPEG's reduced decode behind IMG_DECODE_LUMA: the smallest TurboJPEG
 * scale keeping both sides >= min_side (or 1/1), decoded to grey.
 * VC_EOF when the file's colour space has no cheap grey path (CMYK): the
 * caller decodes in full instead. */
enum vc_status img_jpeg_decode_luma(const uint8_t *data, size_t size, const struct img_info *info,
                                    uint32_t min_side, struct img *out, struct vc_err *err);

/* Sets im->w/h/ch and allocates (h, w, ch) bytes with checked arithmetic;
 * VC_EFATAL out_of_memory on failure (im->pixels NULL). */
enum vc_status img_alloc(struct img *im, uint32_t w, uint32_t h, uint8_t ch, struct vc_err *err);

/* The whole factor k by which a w x h image may shrink (k x k blocks)
 * while both sides stay >= min_side; 1 when min_side is 0 or too big. */
static inline uint32_t img_reduce_factor(uint32_t w, uint32_t h, uint32_t min_side)
{
    uint32_t lo = w < h ? w : h;
    return min_side && lo / min_side > 1 ? lo / min_side : 1;
}

/* Averages k x k blocks of `in` (any channel count) into a new image
 * (ceil(w/k), ceil(h/k)); edge blocks average the pixels they hold. */
enum vc_status img_box_reduce(const struct img *in, uint32_t k, struct img *out,
                              struct vc_err *err);

/* Pillow's alpha_composite of one straight-alpha colour value over opaque
 * white, bit for bit (libImaging/AlphaComposite.c with an opaque
 * background, 7 fractional bits). */
static inline uint8_t img_over_white(uint8_t c, uint8_t a)
{
    uint32_t k1 = (uint32_t)a * 128, k2 = (uint32_t)(255 - a) * 128;
    uint32_t t = c * k1 + 255 * k2 + 128 * 128;
    return (uint8_t)((((t >> 8) + t) >> 8) >> 7);
}

/* n_px RGBA pixels to RGB over white; `rgb` may equal `rgba` (the write
 * position never passes the read position). */
void img_flatten_white(const uint8_t *rgba, uint8_t *rgb, size_t n_px);

/* Big-endian and little-endian reads for header parsers; the caller has
 * bounds-checked p[0..3]. */
static inline uint32_t img_be16(const uint8_t *p)
{
    return (uint32_t)p[0] << 8 | p[1];
}
static inline uint32_t img_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint32_t img_le16(const uint8_t *p)
{
    return (uint32_t)p[1] << 8 | p[0];
}
static inline uint32_t img_le32(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

#endif
