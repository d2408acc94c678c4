/* img: image formats behind one codec table (JPEG via TurboJPEG, PNG via
 * libpng, WebP via libwebp): header-only probe, full decode, EXIF
 * orientation, resize in img2dataset's modes, and re-encode.
 *
 * Formats are detected by magic bytes, never by a file extension.  Decoders
 * never call exit(): libpng's longjmp and TurboJPEG's error strings become a
 * struct vc_err.  Pixel budgets come from struct img_limits, checked against
 * the header before a single pixel buffer is allocated. */
#ifndef VC_CORE_IMG_H
#define VC_CORE_IMG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vc_err.h"

enum img_format {
    IMG_FORMAT_UNKNOWN = 0,
    IMG_FORMAT_JPEG = 1,
    IMG_FORMAT_PNG = 2,
    IMG_FORMAT_WEBP = 3,
};

/* What the header says.  Filled without decoding pixel data. */
struct img_info {
    enum img_format format;
    uint32_t width, height; /* as stored, before EXIF orientation */
    uint8_t channels;       /* 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA (as stored) */
    uint8_t orientation;    /* EXIF orientation 1..8 (JPEG only; 1 elsewhere) */
    bool has_alpha;
};

/* Resource limits for untrusted images.  Both are checked against the
 * header before any allocation. */
struct img_limits {
    uint64_t max_pixels; /* width * height; 0 = IMG_DEFAULT_MAX_PIXELS */
    uint32_t max_side;   /* either dimension; 0 = IMG_DEFAULT_MAX_SIDE */
};

/* 178,956,970 is Pillow's decompression-bomb error threshold (2x its
 * warning); an image that large is a bomb or a scan, not web data. */
#define IMG_DEFAULT_MAX_PIXELS 178956970ull
/* WebP's own format maximum; JPEG allows 65535 but no real photo does. */
#define IMG_DEFAULT_MAX_SIDE 16383u

/* A decoded image, 8 bits per channel, rows packed (stride = w * ch). */
struct img {
    uint32_t w, h;
    uint8_t ch;      /* 3 (RGB) or 4 (RGBA) */
    uint8_t *pixels; /* owned: (h, w, ch); free with img_release */
};

void img_release(struct img *im);

/* Format from the first bytes; IMG_FORMAT_UNKNOWN when none matches. */
enum img_format img_sniff(const uint8_t *data, size_t size);
/* "jpg", "png", "webp" (the webdataset extension); "unknown" otherwise. */
const char *img_format_ext(enum img_format f);
/* Parses an extension or format name ("jpg", "jpeg", "png", "webp");
 * IMG_FORMAT_UNKNOWN when none. */
enum img_format img_format_from_name(const char *name);

/* Header-only: format, size, channels, orientation.  VC_ESAMPLE with
 * reason unsupported_format, truncated or decode_error on bad input, and
 * image_too_large when the header exceeds `limits` (NULL = defaults). */
enum vc_status img_probe(const uint8_t *data, size_t size, const struct img_limits *limits,
                         struct img_info *out, struct vc_err *err);

enum img_decode_flags {
    IMG_DECODE_RGBA = 1 << 0,        /* keep alpha (4 channels); default composites to RGB */
    IMG_DECODE_NO_ORIENT = 1 << 1,   /* ignore EXIF orientation */
};

/* Full decode to RGB (alpha composited over white, Pillow's rule: rounded
 * (c * a + 255 * (255 - a)) / 255) or RGBA with IMG_DECODE_RGBA.  EXIF
 * orientation is applied unless IMG_DECODE_NO_ORIENT.  A truncated file is
 * an error (VC_ESAMPLE, truncated), not a half-grey picture. */
enum vc_status img_decode(const uint8_t *data, size_t size, const struct img_limits *limits,
                          unsigned flags, struct img *out, struct vc_err *err);

/* img2dataset's resize modes. */
enum img_resize_mode {
    IMG_RESIZE_NO = 0,     /* keep the pixels as they are */
    IMG_RESIZE_KEEP_RATIO, /* scale so the longer side is `size` (never upscales) */
    IMG_RESIZE_CENTER_CROP,/* scale the shorter side to `size`, crop the centre square */
    IMG_RESIZE_BORDER,     /* scale the longer side to `size`, pad to a square with white */
};
enum img_resize_mode img_resize_mode_from_name(const char *name); /* -1 cast when unknown */
const char *img_resize_mode_name(enum img_resize_mode m);

/* Resizes `in` into a new image `out` (owned) with an area-averaging
 * filter when shrinking and bilinear when enlarging.  Deterministic: the
 * same input gives the same bytes on every machine and thread count. */
enum vc_status img_resize(const struct img *in, enum img_resize_mode mode, uint32_t size,
                          struct img *out, struct vc_err *err);

/* Encodes `im` (RGB or RGBA) as `format` with `quality` 1..100 (JPEG,
 * WebP; PNG ignores it and uses compression level 6).  *out is owned
 * (free()).  Deterministic output bytes. */
enum vc_status img_encode(const struct img *im, enum img_format format, int quality,
                          uint8_t **out, size_t *out_size, struct vc_err *err);

#endif
