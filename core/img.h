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
    uint8_t channels;       /* as stored: 1 gray, 2 gray+alpha, 3 RGB or palette, 4 RGBA or
                             * CMYK (JPEG); has_alpha says whether decode sees alpha */
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
    uint8_t ch;      /* 3 (RGB) or 4 (RGBA); 1 (luma) with IMG_DECODE_LUMA */
    uint8_t *pixels; /* owned: (h, w, ch); free with img_release */
    size_t budgeted; /* bytes held from the pixel budget; 0 for images made elsewhere */
};

void img_release(struct img *im);

/* The pixel budget: bytes of decoded pixels every thread of the process
 * may hold together (0, the default, = no bound).  Each pixel buffer this
 * module allocates is drawn from it and returned by img_release.  A thread
 * that holds nothing waits while the buffer it needs does not fit; a thread
 * that already holds pixels is never made to wait (it finishes and frees,
 * so waiting can never deadlock), and a buffer larger than the whole
 * budget is granted when no other is out.  So a run's pixel memory stays
 * near the budget however many threads decode, plus at most one follow-up
 * buffer (a resize, an encode) per thread.  Set it before the threads
 * start. */
void img_budget_set(uint64_t bytes);
/* Bytes held now, for tests and reports. */
uint64_t img_budget_used(void);

/* Format from the first bytes; IMG_FORMAT_UNKNOWN when none matches. */
enum img_format img_sniff(const uint8_t *data, size_t size);
/* "jpg", "png", "webp" (the webdataset extension); "unknown" otherwise. */
const char *img_format_ext(enum img_format f);
/* Parses an extension or format name ("jpg", "jpeg", "png", "webp");
 * IMG_FORMAT_UNKNOWN when none. */
enum img_format img_format_from_name(const char *name);

/* Header-only (never inflates or decodes pixel data): format, size,
 * channels, orientation.  VC_ESAMPLE with reason unsupported_format,
 * truncated or decode_error on bad input, and image_too_large when the
 * header exceeds `limits` (NULL = defaults).  A file whose header is fine
 * may still fail img_decode (bad or missing pixel data). */
enum vc_status img_probe(const uint8_t *data, size_t size, const struct img_limits *limits,
                         struct img_info *out, struct vc_err *err);

enum img_decode_flags {
    IMG_DECODE_RGBA = 1 << 0,      /* keep alpha (always 4 channels); default composites to RGB */
    IMG_DECODE_NO_ORIENT = 1 << 1, /* ignore EXIF orientation */
    /* 1 channel, luma (img_decode_reduced): Pillow's "L" weights
     * (R*19595 + G*38470 + B*7471 + 0x8000) >> 16, JPEG's Y weights too,
     * after compositing over white; a JPEG goes straight from its Y plane.
     * Not with IMG_DECODE_RGBA. */
    IMG_DECODE_LUMA = 1 << 2,
};

/* Full decode.  Default: 3 channels (RGB), transparency composited over
 * opaque white with Pillow's integer alpha_composite (SPEC 4.1: with
 * k1 = a*128, k2 = (255-a)*128, t = c*k1 + 255*k2 + 128*128,
 * out = (((t >> 8) + t) >> 8) >> 7, within 1 of c*a/255 + 255 - a), gray
 * replicated to R=G=B.  With IMG_DECODE_RGBA: always 4 channels, straight
 * (not premultiplied) alpha, 255 where the file has none.  EXIF
 * orientation is applied unless IMG_DECODE_NO_ORIENT, so out->w/h are the
 * display size.  Palette and gray PNGs take tRNS as alpha; a truecolour
 * PNG's colour key is ignored (transformers' convert_to_rgb keeps RGB
 * images as they are); 16-bit samples keep their high byte.  4-component
 * JPEGs are read as Adobe-inverted CMYK and converted as Pillow does.
 * Limits are checked on the header before any pixel allocation.  A
 * truncated file is an error (VC_ESAMPLE, truncated), not a half-grey
 * picture, and so is a file libjpeg-turbo warns about (a scan cut short
 * and closed by an EOI, a bad Huffman code) unless the warning is the
 * padding after the last scan ("extraneous bytes before marker 0xd9").
 * A PNG's chunk CRCs are all checked.  out->pixels is owned (img_release),
 * NULL on failure. */
enum vc_status img_decode(const uint8_t *data, size_t size, const struct img_limits *limits,
                          unsigned flags, struct img *out, struct vc_err *err);

/* Reduced-size decode, for statistics and perceptual hashes: the same
 * result as img_decode (channels, compositing, orientation, errors) at the
 * smallest size the codec makes cheaply whose sides, in stored orientation,
 * are both at least `min_side` (never larger than the stored size; 0 means
 * full size).  JPEG: TurboJPEG's DCT scaling (1/8, 1/4, 3/8, 1/2, ... of
 * each side), which still reads every entropy-coded byte.  WebP: libwebp's
 * built-in scaler.  PNG (not interlaced): k x k blocks averaged while the
 * rows stream in, k = the largest whole factor that keeps min_side, so the
 * memory is one row plus the result; an interlaced PNG is decoded at full
 * size and then averaged the same way.  Every byte of the compressed data
 * is read and checked exactly as in img_decode, so a file that passes here
 * passes there too.  With IMG_DECODE_LUMA, a grey picture for perceptual
 * hashing: a JPEG is DCT-scaled straight to its Y plane (a 4000x3000
 * photo at min_side 64 costs a 500x375 decode; CMYK JPEGs go the RGB way),
 * PNG and WebP take the reduced decode above and convert what is left. */
enum vc_status img_decode_reduced(const uint8_t *data, size_t size, const struct img_limits *limits,
                                  uint32_t min_side, unsigned flags, struct img *out,
                                  struct vc_err *err);

/* Whether the whole file decodes: img_decode_reduced to the smallest size,
 * so the cost is the entropy decoding and inflation, not the pixels.  The
 * strictness is img_decode's: a JPEG whose scan ends early (libjpeg-turbo's
 * "premature end of data segment", even with an EOI appended), a Huffman
 * error, a PNG chunk whose CRC does not match, corrupt IDAT data, a WebP
 * whose RIFF size lies, all fail with VC_ESAMPLE. */
enum vc_status img_verify(const uint8_t *data, size_t size, const struct img_limits *limits,
                          struct vc_err *err);

/* img2dataset's resize modes (img2dataset/resizer.py, ResizeMode values),
 * with its default resize_only_if_bigger=False: the keep-ratio modes
 * enlarge small images too.  Target sizes are albumentations'
 * round(dim * size / ref) in double, ties to even. */
enum img_resize_mode {
    IMG_RESIZE_NO = 0,                 /* keep the pixels as they are */
    IMG_RESIZE_KEEP_RATIO = 1,         /* scale so the SHORTER side is `size` */
    IMG_RESIZE_CENTER_CROP = 2,        /* shorter side to `size`, crop the centre size x size */
    IMG_RESIZE_BORDER = 3,             /* longer side to `size`, pad to size x size with white */
    IMG_RESIZE_KEEP_RATIO_LARGEST = 4, /* scale so the LONGER side is `size` */
    IMG_RESIZE_FIXED = 5,              /* size x size, aspect ratio not kept */
};
/* img2dataset's names ("no", "keep_ratio", ...); (enum img_resize_mode)-1
 * when unknown. */
enum img_resize_mode img_resize_mode_from_name(const char *name);
const char *img_resize_mode_name(enum img_resize_mode m); /* "unknown" outside the enum */

/* Resizes `in` (3 or 4 channels) into a new image `out` (owned,
 * img_release) with an area-averaging filter per shrinking axis (OpenCV's
 * INTER_AREA, img2dataset's downscale default) and bilinear with centred
 * pixels per enlarging axis (img2dataset enlarges with Lanczos; bilinear
 * is our simpler choice).  Integer arithmetic only: the same input gives
 * the same bytes on every machine and thread count; a same-size resize is
 * an exact copy.  Padding is 255 in every channel.  VC_ESAMPLE
 * image_too_large when the result would exceed IMG_DEFAULT_MAX_SIDE or
 * IMG_DEFAULT_MAX_PIXELS (a thin strip in keep_ratio); VC_EUSAGE for an
 * unknown mode or size 0. */
enum vc_status img_resize(const struct img *in, enum img_resize_mode mode, uint32_t size,
                          struct img *out, struct vc_err *err);

/* Encodes `im` (RGB or RGBA) as `format` with `quality` (clamped to
 * 1..100): JPEG 4:2:0 via TurboJPEG (RGBA is flattened over white first,
 * as decode does), lossy WebP (alpha kept), PNG at zlib level 6 (quality
 * ignored; alpha kept).  *out is owned (free()).  Deterministic output
 * bytes.  Sides above IMG_DEFAULT_MAX_SIDE are refused (WebP's maximum). */
enum vc_status img_encode(const struct img *im, enum img_format format, int quality, uint8_t **out,
                          size_t *out_size, struct vc_err *err);

#endif
