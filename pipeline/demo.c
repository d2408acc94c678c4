/* demo: the sample dataset generator (see demo.h for the layout).
 *
 * Everything random derives from (seed, stream, item index) through
 * splitmix64, so an item's bytes do not depend on which thread made it or
 * in what order: pictures of one shard (or one batch of pairs/documents)
 * are painted in parallel, then written sequentially.  Memory is bounded
 * by one batch of encoded pictures (DEMO_BATCH items).
 *
 * Input tars are written with libarchive directly, not with wds_write:
 * the demo must be able to write what our writer refuses (unsafe names,
 * symlinks, repeated extensions), and inputs made by another writer keep
 * the round-trip tests honest.  This module never reads DIR/out. */
#include "demo.h"

#include "core/img.h"
#include "core/vc_buf.h"
#include "core/vc_fs.h"
#include "core/vc_mem.h"
#include "stages/st_reshard.h"
#include "synth/idf2_mkmodel.h"

#include <archive.h>
#include <archive_entry.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Items painted at once: bounds memory to ~100 encoded pictures. */
enum { DEMO_BATCH = 100 };
/* Samples per good webdataset shard at most; the demo has at least 4. */
enum { DEMO_SHARD_SAMPLES = 100, DEMO_MIN_GOOD_SHARDS = 4 };
/* Samples written into the corrupt shard, and the one cut in half. */
enum { DEMO_CORRUPT_SAMPLES = 8, DEMO_CORRUPT_CUT = 5 };
enum { DEMO_MAX_SHAPES = 6 };
/* pairs.jsonl, pairs.csv and docs.jsonl are built in memory: at the
 * largest n_samples they stay far below this. */
#define DEMO_LIST_MAX_BYTES (1u << 30)
/* Captions well past the pipeline's 64 KiB default text limit. */
_Static_assert(DEMO_LONG_CAPTION_BYTES > (64 << 10), "the long caption must exceed the limit");

/* Independent random streams, so adding a pairs row never changes a shard. */
enum demo_stream {
    STREAM_WDS = 1,
    STREAM_CORRUPT,
    STREAM_HOSTILE,
    STREAM_PAIRS,
    STREAM_DOCS,
    STREAM_DOC_IMAGES,
};

/* ---- randomness ---------------------------------------------------- */

static struct reshard_rng item_rng(uint64_t seed, enum demo_stream stream, uint64_t index)
{
    struct reshard_rng r;
    reshard_rng_seed(&r, seed ^ ((uint64_t)stream << 56) ^ (index * 0x9e3779b97f4a7c15ull));
    /* Two draws decorrelate neighbouring seeds. */
    reshard_rng_next(&r);
    reshard_rng_next(&r);
    return r;
}

static uint32_t rnd(struct reshard_rng *r, uint32_t n)
{
    return (uint32_t)reshard_rng_below(r, n);
}

static uint32_t rnd_range(struct reshard_rng *r, uint32_t lo, uint32_t hi)
{
    return lo + rnd(r, hi - lo + 1);
}

static const char *pick(struct reshard_rng *r, const char *const *list, size_t n)
{
    return list[rnd(r, (uint32_t)n)];
}
#define PICK(r, list) pick((r), (list), sizeof(list) / sizeof((list)[0]))

/* ---- pictures ------------------------------------------------------ */

struct demo_color {
    const char *name;
    uint8_t rgb[3];
};
static const struct demo_color palette[] = {
    { "red", { 200, 30, 40 } },     { "orange", { 240, 140, 20 } }, { "yellow", { 240, 220, 50 } },
    { "green", { 40, 160, 60 } },   { "teal", { 20, 140, 140 } },   { "blue", { 30, 80, 200 } },
    { "purple", { 120, 50, 160 } }, { "pink", { 240, 130, 180 } },  { "brown", { 120, 80, 40 } },
    { "grey", { 128, 128, 128 } },  { "black", { 15, 15, 20 } },    { "white", { 245, 245, 240 } },
};
enum { N_COLORS = sizeof palette / sizeof palette[0] };

enum demo_shape { SHAPE_RECT, SHAPE_CIRCLE, SHAPE_RING, SHAPE_TRIANGLE, N_SHAPES };
static const char *const shape_names[N_SHAPES] = { "rectangle", "circle", "ring", "triangle" };

/* What a picture shows (for a caption that matches it) and its bytes. */
struct demo_pic {
    uint8_t *bytes; /* owned: the encoded file */
    size_t size;
    enum img_format format;
    uint32_t w, h;
    int bg0, bg1;
    int n_shapes;
    int shape_kind[DEMO_MAX_SHAPES], shape_color[DEMO_MAX_SHAPES];
    bool text_lines;
};

static uint8_t clamp_u8(int v)
{
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static void put(struct img *im, uint32_t x, uint32_t y, const uint8_t rgb[3])
{
    uint8_t *p = im->pixels + ((size_t)y * im->w + x) * im->ch;
    memcpy(p, rgb, 3);
}

static void paint_gradient(struct reshard_rng *r, struct demo_pic *p, struct img *im)
{
    int dx = (int)rnd(r, 7) - 3, dy = (int)rnd(r, 7) - 3;
    if (dx == 0 && dy == 0)
        dx = 1;
    /* The projection x*dx + y*dy spans [lo, hi] over the corners: one
     * colour per projection value, looked up per pixel. */
    int64_t c[4] = { 0, (int64_t)(im->w - 1) * dx, (int64_t)(im->h - 1) * dy,
                     (int64_t)(im->w - 1) * dx + (int64_t)(im->h - 1) * dy };
    int64_t lo = c[0], hi = c[0];
    for (int i = 1; i < 4; i++) {
        lo = c[i] < lo ? c[i] : lo;
        hi = c[i] > hi ? c[i] : hi;
    }
    size_t span = (size_t)(hi - lo + 1);
    uint8_t *lut = malloc(span * 3);
    if (!lut) /* a flat background is still a picture */
        span = 0;
    const uint8_t *a = palette[p->bg0].rgb, *b = palette[p->bg1].rgb;
    for (size_t v = 0; v < span; v++)
        for (int k = 0; k < 3; k++)
            lut[v * 3 + k] = (uint8_t)(a[k] + (b[k] - a[k]) * (int64_t)(v * 256 / span) / 256);
    for (uint32_t y = 0; y < im->h; y++)
        for (uint32_t x = 0; x < im->w; x++)
            put(im, x, y, span ? lut + ((int64_t)x * dx + (int64_t)y * dy - lo) * 3 : a);
    free(lut);
}

static bool shape_covers(int kind, int64_t dx, int64_t dy, int64_t rx, int64_t ry)
{
    switch (kind) {
    case SHAPE_RECT:
        return dx >= -rx && dx <= rx && dy >= -ry && dy <= ry;
    case SHAPE_CIRCLE:
        return dx * dx + dy * dy <= rx * rx;
    case SHAPE_RING:
        return dx * dx + dy * dy <= rx * rx && 25 * (dx * dx + dy * dy) >= 9 * rx * rx;
    default: /* an isosceles triangle pointing up, apex at -rx */
        return dy >= -rx && dy <= rx && 2 * (dx < 0 ? -dx : dx) <= dy + rx;
    }
}

static void paint_shapes(struct reshard_rng *r, struct demo_pic *p, struct img *im)
{
    int64_t w = im->w, h = im->h, m = w < h ? w : h;
    p->n_shapes = (int)rnd_range(r, 1, DEMO_MAX_SHAPES);
    for (int s = 0; s < p->n_shapes; s++) {
        int kind = (int)rnd(r, N_SHAPES), color = (int)rnd(r, N_COLORS);
        p->shape_kind[s] = kind;
        p->shape_color[s] = color;
        int64_t cx = rnd(r, (uint32_t)w), cy = rnd(r, (uint32_t)h);
        int64_t rx = m / 12 + rnd(r, (uint32_t)(m / 4 + 1)) + 1;
        int64_t ry = kind == SHAPE_RECT ? m / 12 + rnd(r, (uint32_t)(m / 4 + 1)) + 1 : rx;
        for (int64_t y = cy - ry > 0 ? cy - ry : 0; y <= cy + ry && y < h; y++)
            for (int64_t x = cx - rx > 0 ? cx - rx : 0; x <= cx + rx && x < w; x++)
                if (shape_covers(kind, x - cx, y - cy, rx, ry))
                    put(im, (uint32_t)x, (uint32_t)y, palette[color].rgb);
    }
}

/* Rows of dark word-like dashes: what scanned pages, memes and slides look
 * like to an image filter, and what compresses least in a JPEG. */
static void paint_text_lines(struct reshard_rng *r, struct img *im)
{
    uint32_t lh = im->h / 24 > 4 ? im->h / 24 : 4, cw = lh / 2 > 2 ? lh / 2 : 2;
    uint32_t margin = im->w / 12 + 1, y = rnd(r, im->h / 2 + 1);
    static const uint8_t ink[3] = { 25, 25, 30 };
    for (uint32_t line = rnd_range(r, 3, 12); line > 0 && y + lh < im->h; line--, y += lh * 3 / 2) {
        uint32_t x = margin + (line % 3 == 0 ? 2 * cw : 0);
        while (x + cw < im->w - margin) {
            uint32_t wl = cw * rnd_range(r, 2, 9);
            for (uint32_t yy = y; yy < y + lh * 2 / 3; yy++)
                for (uint32_t xx = x; xx < x + wl && xx < im->w - margin; xx++)
                    put(im, xx, yy, ink);
            x += wl + cw;
        }
    }
}

/* Sensor-like noise for photos; half the PNGs are flat web graphics
 * (screenshots, logos), the other half photos saved as PNG. */
static void paint_noise(struct reshard_rng *r, enum img_format f, struct img *im)
{
    static const uint32_t photo[] = { 2, 5, 9, 16 };
    uint32_t a = f == IMG_FORMAT_PNG && rnd(r, 2) ? 0 : photo[rnd(r, 4)];
    if (a == 0)
        return;
    uint32_t xs = (uint32_t)reshard_rng_next(r) | 1u; /* xorshift32: cheap per pixel */
    for (size_t i = 0; i < (size_t)im->w * im->h; i++)
        for (int k = 0; k < 3; k++) {
            xs ^= xs << 13;
            xs ^= xs >> 17;
            xs ^= xs << 5;
            uint8_t *c = im->pixels + i * im->ch + k;
            /* (xs >> 16) * (2a + 1) >> 16 is uniform in [0, 2a]: no division. */
            *c = clamp_u8(*c + (int)(((xs >> 16) * (2 * a + 1)) >> 16) - (int)a);
        }
}

/* A sticker-like cut-out: opaque inside an ellipse, fading to transparent. */
static void paint_alpha(struct img *im)
{
    double cx = im->w / 2.0, cy = im->h / 2.0;
    for (uint32_t y = 0; y < im->h; y++)
        for (uint32_t x = 0; x < im->w; x++) {
            double u = (x - cx) / cx, v = (y - cy) / cy, d = u * u + v * v;
            int a = d <= 0.7 ? 255 : d >= 1.0 ? 0 : (int)((1.0 - d) / 0.3 * 255.0);
            im->pixels[((size_t)y * im->w + x) * 4 + 3] = (uint8_t)a;
        }
}

/* Aspect ratios seen on the web: squares, photos both ways, banners. */
static const uint8_t aspects[][2] = { { 1, 1 },  { 4, 3 },  { 3, 4 }, { 3, 2 }, { 2, 3 },
                                      { 16, 9 }, { 9, 16 }, { 3, 1 }, { 1, 3 } };

static void pick_size(struct reshard_rng *r, enum img_format f, uint32_t *w, uint32_t *h)
{
    uint32_t u = rnd(r, 100), lng;
    if (u < 20)
        lng = rnd_range(r, 40, 200); /* thumbnails, icons */
    else if (u < 80)
        lng = rnd_range(r, 200, 800);
    else
        lng = rnd_range(r, 800, 1200);
    /* Noisy PNGs barely compress; keep them at web-graphic sizes. */
    if (f != IMG_FORMAT_JPEG && lng > 640)
        lng = rnd_range(r, 300, 640);
    const uint8_t *a = aspects[rnd(r, sizeof aspects / sizeof aspects[0])];
    uint32_t sh = lng * (a[0] < a[1] ? a[0] : a[1]) / (a[0] > a[1] ? a[0] : a[1]);
    sh = sh < 16 ? 16 : sh;
    *w = a[0] >= a[1] ? lng : sh;
    *h = a[0] >= a[1] ? sh : lng;
}

/* An APP1 Exif segment holding only the orientation tag, inserted after
 * SOI/APP0 as cameras write it; both TIFF byte orders occur in the wild. */
static enum vc_status jpeg_add_orientation(struct demo_pic *p, int orientation, bool big_endian,
                                           struct vc_err *err)
{
    uint8_t seg[36] = { 0xFF, 0xE1, 0, 34, 'E', 'x', 'i', 'f', 0, 0 };
    uint8_t *t = seg + 10;
    memcpy(t, big_endian ? "MM\0*\0\0\0\x08" : "II*\0\x08\0\0\0", 8);
    /* IFD0: one entry (tag 0x0112, type SHORT, count 1, value), next 0. */
    const uint8_t be[] = { 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, (uint8_t)orientation, 0, 0 };
    const uint8_t le[] = { 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, (uint8_t)orientation, 0, 0, 0 };
    memcpy(t + 8, big_endian ? be : le, 14);
    size_t at = 2;
    if (p->size > 6 && p->bytes[2] == 0xFF && p->bytes[3] == 0xE0)
        at = 4 + ((size_t)p->bytes[4] << 8 | p->bytes[5]);
    uint8_t *grown = realloc(p->bytes, p->size + sizeof seg);
    if (!grown)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "demo picture");
    memmove(grown + at + sizeof seg, grown + at, p->size - at);
    memcpy(grown + at, seg, sizeof seg);
    p->bytes = grown;
    p->size += sizeof seg;
    return VC_OK;
}

static enum img_format pick_format(struct reshard_rng *r)
{
    uint32_t u = rnd(r, 100);
    return u < 70 ? IMG_FORMAT_JPEG : u < 85 ? IMG_FORMAT_PNG : IMG_FORMAT_WEBP;
}

/* Paints and encodes one picture.  `format` UNKNOWN picks one at random. */
static enum vc_status make_pic(struct reshard_rng *r, enum img_format format, struct demo_pic *p,
                               struct vc_err *err)
{
    memset(p, 0, sizeof *p);
    p->format = format != IMG_FORMAT_UNKNOWN ? format : pick_format(r);
    pick_size(r, p->format, &p->w, &p->h);
    bool alpha = p->format != IMG_FORMAT_JPEG && rnd(r, 3) == 0;
    struct img im = { .w = p->w, .h = p->h, .ch = alpha ? 4 : 3 };
    im.pixels = vc_malloc_array((size_t)p->w * p->h, im.ch);
    if (!im.pixels)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "demo picture %ux%u", p->w,
                          p->h);
    p->bg0 = (int)rnd(r, N_COLORS);
    p->bg1 = (int)rnd(r, N_COLORS);
    paint_gradient(r, p, &im);
    paint_shapes(r, p, &im);
    p->text_lines = rnd(r, 100) < 35;
    if (p->text_lines)
        paint_text_lines(r, &im);
    paint_noise(r, p->format, &im);
    if (alpha)
        paint_alpha(&im);
    int quality =
        p->format == IMG_FORMAT_JPEG ? (int)rnd_range(r, 70, 95) : (int)rnd_range(r, 70, 90);
    enum vc_status rc = img_encode(&im, p->format, quality, &p->bytes, &p->size, err);
    free(im.pixels);
    if (rc < 0)
        return rc;
    if (p->format == IMG_FORMAT_JPEG && rnd(r, 100) < 8) {
        static const int orientations[] = { 3, 6, 8 };
        return jpeg_add_orientation(p, orientations[rnd(r, 3)], rnd(r, 2) == 0, err);
    }
    return VC_OK;
}

/* ---- broken pictures ----------------------------------------------- */

static void pic_truncate(struct demo_pic *p)
{
    p->size = p->size * 11 / 20; /* mid-scan: the header still probes fine */
}

/* Flips bytes inside the first IDAT's data, leaving its CRC stale: the
 * header probes fine, the decode must fail. */
static void png_corrupt_idat(struct demo_pic *p)
{
    for (size_t i = 8; i + 12 <= p->size;) {
        uint32_t len = (uint32_t)p->bytes[i] << 24 | (uint32_t)p->bytes[i + 1] << 16 |
                       (uint32_t)p->bytes[i + 2] << 8 | p->bytes[i + 3];
        if (!memcmp(p->bytes + i + 4, "IDAT", 4) && len >= 16) {
            for (uint32_t k = len / 3; k < len / 3 + 8; k++)
                p->bytes[i + 8 + k] ^= 0x5A;
            return;
        }
        i += 12 + (size_t)len;
    }
}

static uint32_t crc32_png(const uint8_t *d, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= d[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* A well-formed PNG header claiming 100000 x 100000 RGB pixels (30 GB
 * decoded), with a few bytes of IDAT: a decompression bomb's calling card. */
static enum vc_status make_huge_png(struct demo_pic *p, struct vc_err *err)
{
    static const uint8_t sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n' };
    static const uint8_t idat[] = { 0x78, 0x9C, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01 };
    memset(p, 0, sizeof *p);
    p->format = IMG_FORMAT_PNG;
    p->w = p->h = 100000;
    p->size = 8 + 25 + 12 + sizeof idat + 12;
    uint8_t *b = p->bytes = malloc(p->size);
    if (!b)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "demo picture");
    memcpy(b, sig, 8);
    be32(b + 8, 13);
    memcpy(b + 12, "IHDR", 4);
    be32(b + 16, p->w);
    be32(b + 20, p->h);
    memcpy(b + 24, "\x08\x02\x00\x00\x00", 5);
    be32(b + 29, crc32_png(b + 12, 17));
    be32(b + 33, sizeof idat);
    memcpy(b + 37, "IDAT", 4);
    memcpy(b + 41, idat, sizeof idat);
    be32(b + 41 + sizeof idat, crc32_png(b + 37, 4 + sizeof idat));
    uint8_t *end = b + 45 + sizeof idat;
    be32(end, 0);
    memcpy(end + 4, "IEND", 4);
    be32(end + 8, crc32_png(end + 4, 4));
    return VC_OK;
}

/* ---- captions ------------------------------------------------------ */

static const char *const generic_alts[] = {
    "Vintage red bicycle leaning against a brick wall",
    "A bowl of ramen with a soft-boiled egg and spring onions",
    "Aerial view of a coastline at sunset",
    "Golden retriever puppy playing in the snow",
    "Modern kitchen with white cabinets and a marble island",
    "Hikers on a ridge above a foggy valley",
    "Close-up of raindrops on a green leaf",
    "Old wooden fishing boat moored in a small harbour",
    "Chart showing quarterly revenue growth by region",
    "Screenshot of a login form with an error message",
    "Hand-drawn map of a fantasy island with mountains and rivers",
    "A cup of coffee next to an open notebook on a wooden desk",
    "Street market stall selling oranges and lemons",
    "Night skyline of a city reflected in a river",
    "Child flying a kite on a windy beach",
    "Diagram of the water cycle with labelled arrows",
    "Stack of pancakes topped with blueberries and maple syrup",
    "Two people shaking hands across a conference table",
    "Snow-covered pine trees under a clear blue sky",
    "Black and white portrait of an elderly man smiling",
    "Recipe card for lemon drizzle cake",
    "Infographic about recycling plastics",
    "Living room with a grey sofa and a large window",
    "Product photo of running shoes on a white background",
};
static const char *const foreign_alts[] = {
    "Ein roter Bus fährt durch die Altstadt", "Un chat endormi sur un canapé bleu",
    "Una playa tranquila al atardecer",       "公園で遊ぶ子供たち",
    "Старый деревянный дом в лесу",           "一碗热腾腾的牛肉面",
    "Vista aérea de uma cidade à noite",      "منظر طبيعي للجبال في الشتاء",
};
static const char *const filler_words[] = { "image", "photo", "picture", "img", "untitled" };
static const char *const spam[] = {
    "cheap shoes buy shoes online best shoes sale shoes discount shoes free shipping",
    "click here to download now!!! free free free",
    "logo",
    "banner_ad_728x90",
    "spacer",
};
static const char *const licenses[] = { "cc-by-4.0", "cc-by-sa-4.0", "cc0-1.0", "unknown" };
static const char *const count_words[] = { "two", "three", "four", "five", "six" };

static int most_common_shape(const struct demo_pic *p, int *count)
{
    int best = p->shape_kind[0], n_best = 0;
    for (int k = 0; k < N_SHAPES; k++) {
        int n = 0;
        for (int s = 0; s < p->n_shapes; s++)
            n += p->shape_kind[s] == k;
        if (n > n_best) {
            best = k;
            n_best = n;
        }
    }
    *count = n_best;
    return best;
}

/* "a" or "an" for the word that follows. */
static const char *article(const char *word)
{
    return strchr("aeiou", word[0]) ? "an" : "a";
}

/* An alt text as the web writes them: mostly about the picture, some
 * generic, some useless (empty, a file name, a URL, spam), some not in
 * English.  Owned (free()). */
static char *make_caption(struct reshard_rng *r, const struct demo_pic *p)
{
    char buf[512];
    uint32_t u = rnd(r, 100);
    const char *bg0 = palette[p->bg0].name, *bg1 = palette[p->bg1].name;
    const char *c0 = palette[p->shape_color[0]].name, *s0 = shape_names[p->shape_kind[0]];
    int n_same, kind = most_common_shape(p, &n_same);
    if (u < 45) {
        switch (rnd(r, 4)) {
        case 0:
            snprintf(buf, sizeof buf, "%s %s %s on %s %s background", article(c0), c0, s0,
                     article(bg0), bg0);
            break;
        case 1:
            if (n_same > 1)
                snprintf(buf, sizeof buf, "%s %ss over %s %s and %s gradient",
                         count_words[n_same - 2], shape_names[kind], article(bg0), bg0, bg1);
            else /* one of each: name the colours instead */
                snprintf(buf, sizeof buf, "abstract %s and %s pattern with %s %s", bg0, bg1,
                         article(shape_names[kind]), shape_names[kind]);
            break;
        case 2:
            snprintf(buf, sizeof buf, "Abstract geometric art in %s and %s tones", bg0, bg1);
            break;
        default:
            snprintf(buf, sizeof buf, "%s with %s %s %s",
                     p->text_lines ? "a page of text" : "a poster", article(c0), c0, s0);
        }
    } else if (u < 65) {
        snprintf(buf, sizeof buf, "%s", PICK(r, generic_alts));
    } else if (u < 70) {
        buf[0] = '\0';
    } else if (u < 74) {
        snprintf(buf, sizeof buf, rnd(r, 2) ? "IMG_%04u.JPG" : "DSC%05u.jpg", rnd(r, 10000));
    } else if (u < 77) {
        snprintf(buf, sizeof buf, "%s", PICK(r, filler_words));
    } else if (u < 80) {
        snprintf(buf, sizeof buf, "https://cdn.example.com/uploads/2023/%02u/%08x.%s",
                 rnd_range(r, 1, 12), (unsigned)reshard_rng_next(r), img_format_ext(p->format));
    } else if (u < 88) {
        snprintf(buf, sizeof buf, "%s", PICK(r, foreign_alts));
    } else if (u < 92) {
        snprintf(buf, sizeof buf, "%s", PICK(r, spam));
    } else {
        snprintf(buf, sizeof buf, "%s | Stock Photo", PICK(r, generic_alts));
    }
    return vc_strdup(buf);
}

/* ---- files --------------------------------------------------------- */

struct demo_gen {
    const char *dir;
    uint64_t seed;
    uint32_t n_samples;
    cJSON *defects; /* array of {source, file, key, defect} */
    struct demo_summary *sum;
};

static enum vc_status io_fail(struct vc_err *err, const char *what, const char *path)
{
    return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s %s: %s", what, path, strerror(errno));
}

/* DIR/rel, or an error when it does not fit PATH_MAX. */
static enum vc_status demo_path(const struct demo_gen *g, const char *rel, char out[PATH_MAX],
                                struct vc_err *err)
{
    if (snprintf(out, PATH_MAX, "%s/%s", g->dir, rel) >= PATH_MAX)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "demo path too long: %s/%s", g->dir,
                          rel);
    return VC_OK;
}

/* Writes DIR/rel (creating its folder).  Plain writes, no fsync: demo
 * input is regenerated at will, and thousands of fsyncs would dominate. */
static enum vc_status demo_write(struct demo_gen *g, const char *rel, const void *data, size_t size,
                                 struct vc_err *err)
{
    char path[PATH_MAX];
    VC_TRY(demo_path(g, rel, path, err));
    char *slash = strrchr(path, '/');
    *slash = '\0';
    VC_TRY(vc_fs_mkdirs(path, err));
    *slash = '/';
    FILE *f = fopen(path, "wb");
    if (!f)
        return io_fail(err, "cannot create", path);
    bool ok = fwrite(data, 1, size, f) == size;
    if (fclose(f) != 0 || !ok)
        return io_fail(err, "cannot write", path);
    g->sum->n_bytes += size;
    return VC_OK;
}

/* Records a deliberate defect: the sample's file (relative to DIR), its
 * key as written (a tar key, a pairs image path, a document id) and, for
 * list files, its 0-based data row (-1 for shards). */
static enum vc_status add_defect(struct demo_gen *g, const char *source, const char *file,
                                 const char *key, long row, const char *defect, struct vc_err *err)
{
    cJSON *d = cJSON_CreateObject();
    if (!d || !cJSON_AddItemToArray(g->defects, d) ||
        !cJSON_AddStringToObject(d, "source", source) ||
        !cJSON_AddStringToObject(d, "file", file) || !cJSON_AddStringToObject(d, "key", key) ||
        (row >= 0 && !cJSON_AddNumberToObject(d, "row", (double)row)) ||
        !cJSON_AddStringToObject(d, "defect", defect))
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "demo defect list");
    g->sum->n_defects++;
    return VC_OK;
}

/* Prints `o` unformatted into an owned string. */
static enum vc_status json_text(cJSON *o, char **out, struct vc_err *err)
{
    *out = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!*out)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "demo json");
    return VC_OK;
}

/* ---- webdataset shards --------------------------------------------- */

/* A tar written member by member.  ustar with fixed owners and times so the
 * same seed gives the same bytes; member offsets are tracked because the
 * corrupt shard is cut inside a chosen member. */
struct demo_tar {
    struct archive *a;
    uint64_t offset; /* of the next header */
    uint32_t mtime;
};

static enum vc_status tar_fail(struct demo_tar *t, const char *path, struct vc_err *err)
{
    return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "writing %s: %s", path,
                      archive_error_string(t->a) ? archive_error_string(t->a) : "error");
}

static enum vc_status tar_open(struct demo_tar *t, const char *path, struct vc_err *err)
{
    t->offset = 0;
    t->mtime = 1700000000u;
    t->a = archive_write_new();
    if (!t->a)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "archive_write_new");
    if (archive_write_set_format_ustar(t->a) != ARCHIVE_OK ||
        archive_write_open_filename(t->a, path) != ARCHIVE_OK) {
        enum vc_status rc = tar_fail(t, path, err);
        archive_write_free(t->a);
        return rc;
    }
    return VC_OK;
}

/* Adds a member; a NULL `link` makes a regular file of `data`, otherwise a
 * symlink to `link`.  *data_at (may be NULL) gets the offset of the data. */
static enum vc_status tar_add(struct demo_tar *t, const char *name, const void *data, size_t size,
                              const char *link, uint64_t *data_at, struct vc_err *err)
{
    struct archive_entry *e = archive_entry_new();
    if (!e)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "archive_entry_new");
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, link ? AE_IFLNK : AE_IFREG);
    if (link)
        archive_entry_set_symlink(e, link);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, link ? 0 : (la_int64_t)size);
    archive_entry_set_mtime(e, t->mtime++, 0);
    archive_entry_set_uname(e, "demo");
    archive_entry_set_gname(e, "demo");
    bool ok = archive_write_header(t->a, e) == ARCHIVE_OK &&
              (link || size == 0 || archive_write_data(t->a, data, size) == (la_ssize_t)size);
    archive_entry_free(e);
    if (!ok)
        return tar_fail(t, name, err);
    if (data_at)
        *data_at = t->offset + 512;
    t->offset += 512 + (link ? 0 : (size + 511) / 512 * 512);
    return VC_OK;
}

static enum vc_status tar_close(struct demo_tar *t, const char *path, struct vc_err *err)
{
    enum vc_status rc = archive_write_close(t->a) == ARCHIVE_OK ? VC_OK : tar_fail(t, path, err);
    archive_write_free(t->a);
    return rc;
}

/* ---- items: a picture with its caption and provenance -------------- */

/* One sample (or one document image) before it is written. */
struct demo_item {
    char key[96]; /* member key (may hold a folder), or a file path */
    struct demo_pic pic;
    char *caption; /* owned; NULL: no txt member */
    size_t caption_len;
    char *json; /* owned; NULL: no json member */
    char url[160];
    const char *license;
    const char *defect; /* set by the caller before generation */
    struct vc_err err;
    enum vc_status rc;
};

static void item_free(struct demo_item *it)
{
    free(it->pic.bytes);
    free(it->caption);
    free(it->json);
    memset(it, 0, sizeof *it);
}

static bool is_defect(const struct demo_item *it, const char *name)
{
    return it->defect && !strcmp(it->defect, name);
}

static enum vc_status long_caption(struct demo_item *it, struct vc_err *err)
{
    static const char phrase[] = "best deals cheap flights hotels car rental ";
    it->caption = malloc(DEMO_LONG_CAPTION_BYTES);
    if (!it->caption)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "demo caption");
    for (size_t i = 0; i < DEMO_LONG_CAPTION_BYTES; i++)
        it->caption[i] = phrase[i % (sizeof phrase - 1)];
    it->caption_len = DEMO_LONG_CAPTION_BYTES;
    return VC_OK;
}

/* img2dataset's per-sample json: where it came from and its sizes.  A
 * defective caption stays out of it, so the txt field is the only defect. */
static enum vc_status item_json(struct demo_item *it, const char *key_id, struct vc_err *err)
{
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddStringToObject(o, "url", it->url);
        cJSON_AddStringToObject(o, "key", key_id);
        cJSON_AddStringToObject(o, "status", "success");
        if (it->caption && !is_defect(it, "caption_too_long") && !is_defect(it, "caption_not_utf8"))
            cJSON_AddStringToObject(o, "caption", it->caption);
        cJSON_AddNumberToObject(o, "width", it->pic.w);
        cJSON_AddNumberToObject(o, "height", it->pic.h);
        cJSON_AddNumberToObject(o, "original_width", it->pic.w);
        cJSON_AddNumberToObject(o, "original_height", it->pic.h);
        cJSON_AddStringToObject(o, "license", it->license);
    }
    return json_text(o, &it->json, err);
}

static const char *const url_dirs[] = { "media", "static/img", "wp-content/uploads/2023/04" };

/* Generates item `i` of a stream with its defect planted; with_json adds
 * the webdataset json member. */
static enum vc_status make_item(const struct demo_gen *g, enum demo_stream stream, uint32_t i,
                                bool with_json, struct demo_item *it)
{
    struct reshard_rng r = item_rng(g->seed, stream, i);
    struct vc_err *err = &it->err;
    enum img_format f = IMG_FORMAT_UNKNOWN;
    if (is_defect(it, "truncated_jpeg") || is_defect(it, "repeated_extension"))
        f = IMG_FORMAT_JPEG;
    else if (is_defect(it, "corrupt_png_chunk"))
        f = IMG_FORMAT_PNG;
    VC_TRY(is_defect(it, "huge_dimensions") ? make_huge_png(&it->pic, err)
                                            : make_pic(&r, f, &it->pic, err));
    if (is_defect(it, "truncated_jpeg"))
        pic_truncate(&it->pic);
    if (is_defect(it, "corrupt_png_chunk"))
        png_corrupt_idat(&it->pic);
    if (is_defect(it, "caption_too_long"))
        VC_TRY(long_caption(it, err));
    else if (is_defect(it, "caption_not_utf8")) /* Latin-1, as old CMSs wrote it */
        it->caption = vc_strdup("Caf\xe9 cr\xe8me on a wooden table, Z\xfcrich");
    else if (it->defect || rnd(&r, 100) >= 3) /* a few samples come without text */
        it->caption = make_caption(&r, &it->pic);
    if (it->caption && !it->caption_len)
        it->caption_len = strlen(it->caption);
    const char *slash = strrchr(it->key, '/');
    const char *id = slash ? slash + 1 : it->key;
    snprintf(it->url, sizeof it->url, "https://images.example.org/%s/%.64s.%s", PICK(&r, url_dirs),
             id, img_format_ext(it->pic.format));
    it->license = PICK(&r, licenses);
    if (with_json && (it->defect || rnd(&r, 100) >= 5))
        VC_TRY(item_json(it, id, err));
    return VC_OK;
}

/* Makes items [0, n) (stream indices first..first+n-1) in parallel; the
 * first failure in item order wins, so the error does not depend on
 * thread timing. */
static enum vc_status make_items(const struct demo_gen *g, enum demo_stream stream,
                                 struct demo_item *items, uint32_t first, uint32_t n,
                                 bool with_json, struct vc_err *err)
{
#pragma omp parallel for schedule(dynamic, 1)
    for (uint32_t k = 0; k < n; k++)
        items[k].rc = make_item(g, stream, first + k, with_json, &items[k]);
    for (uint32_t k = 0; k < n; k++)
        if (items[k].rc < 0) {
            *err = items[k].err;
            return items[k].rc;
        }
    return VC_OK;
}

static void items_free(struct demo_item *items)
{
    for (uint32_t k = 0; k < DEMO_BATCH; k++)
        item_free(&items[k]);
}

/* ---- webdataset shards --------------------------------------------- */

/* The deliberate defects of good shards, spread over the sample range. */
static const char *const wds_defects[] = { "truncated_jpeg", "corrupt_png_chunk", "huge_dimensions",
                                           "caption_not_utf8", "caption_too_long" };
enum { N_WDS_DEFECTS = sizeof wds_defects / sizeof wds_defects[0] };

static const char *wds_defect_at(uint32_t i, uint32_t n)
{
    for (uint32_t k = 0; k < N_WDS_DEFECTS; k++)
        if (i == (2 * k + 1) * n / (2 * N_WDS_DEFECTS))
            return wds_defects[k];
    return NULL;
}

/* Writes the members of one item; *image_at gets the image data offset. */
static enum vc_status tar_add_item(struct demo_tar *t, const struct demo_item *it,
                                   uint64_t *image_at, struct vc_err *err)
{
    char name[160];
    snprintf(name, sizeof name, "%s.%s", it->key, img_format_ext(it->pic.format));
    VC_TRY(tar_add(t, name, it->pic.bytes, it->pic.size, NULL, image_at, err));
    if (it->caption) {
        snprintf(name, sizeof name, "%s.txt", it->key);
        VC_TRY(tar_add(t, name, it->caption, it->caption_len, NULL, NULL, err));
    }
    if (it->json) {
        snprintf(name, sizeof name, "%s.json", it->key);
        VC_TRY(tar_add(t, name, it->json, strlen(it->json), NULL, NULL, err));
    }
    if (is_defect(it, "repeated_extension")) {
        /* The same field again in another case: webdataset lower-cases
         * extensions, so this is "jpg" twice. */
        snprintf(name, sizeof name, "%s.JPG", it->key);
        VC_TRY(tar_add(t, name, it->pic.bytes, it->pic.size, NULL, NULL, err));
    }
    return VC_OK;
}

static void shard_rel(uint32_t shard, char out[64])
{
    snprintf(out, 64, "wds/demo-%06u.tar", shard);
}

/* Writes items [0, n) as samples of the shard DIR/rel, recording defects. */
static enum vc_status write_items(struct demo_gen *g, struct demo_tar *t, const char *rel,
                                  const struct demo_item *items, uint32_t n, uint64_t *image_at,
                                  struct vc_err *err)
{
    for (uint32_t k = 0; k < n; k++) {
        VC_TRY(tar_add_item(t, &items[k], image_at ? &image_at[k] : NULL, err));
        if (items[k].defect)
            VC_TRY(add_defect(g, "web", rel, items[k].key, -1, items[k].defect, err));
        g->sum->n_wds_samples++;
        g->sum->n_images++;
    }
    return VC_OK;
}

static enum vc_status file_size_add(struct demo_gen *g, const char *path, struct vc_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return io_fail(err, "cannot stat", path);
    g->sum->n_bytes += (uint64_t)st.st_size;
    return VC_OK;
}

/* Opens DIR/wds/demo-<shard>.tar for writing; rel and path receive its
 * names. */
static enum vc_status shard_begin(struct demo_gen *g, uint32_t shard, char rel[64],
                                  char path[PATH_MAX], struct demo_tar *t, struct vc_err *err)
{
    shard_rel(shard, rel);
    VC_TRY(demo_path(g, rel, path, err));
    char *slash = strrchr(path, '/');
    *slash = '\0';
    enum vc_status rc = vc_fs_mkdirs(path, err);
    *slash = '/';
    VC_TRY(rc);
    return tar_open(t, path, err);
}

/* Closes the tar; `rc` is the status of what was written into it. */
static enum vc_status shard_end(struct demo_tar *t, const char *path, enum vc_status rc,
                                struct vc_err *err)
{
    enum vc_status rc_close = tar_close(t, path, rc < 0 ? NULL : err);
    return rc < 0 ? rc : rc_close;
}

static enum vc_status write_good_shard(struct demo_gen *g, uint32_t shard, uint32_t first,
                                       uint32_t n, struct demo_item *items, struct vc_err *err)
{
    for (uint32_t k = 0; k < n; k++) {
        /* img2dataset keys: shard number then index, 9 digits.  Shard 1
         * keeps a crawl folder in its member names, as some tars do. */
        snprintf(items[k].key, sizeof items[k].key, "%s%04u%05u", shard == 1 ? "crawl-2023/" : "",
                 shard, k);
        items[k].defect = wds_defect_at(first + k, g->n_samples);
    }
    VC_TRY(make_items(g, STREAM_WDS, items, first, n, true, err));
    char rel[64], path[PATH_MAX];
    struct demo_tar t;
    VC_TRY(shard_begin(g, shard, rel, path, &t, err));
    VC_TRY(shard_end(&t, path, write_items(g, &t, rel, items, n, NULL, err), err));
    return file_size_add(g, path, err);
}

/* A shard that ends in the middle of a member's data, as an interrupted
 * copy leaves it: the samples before the cut are readable. */
static enum vc_status write_corrupt_shard(struct demo_gen *g, uint32_t shard,
                                          struct demo_item *items, struct vc_err *err)
{
    uint64_t image_at[DEMO_CORRUPT_SAMPLES];
    for (uint32_t k = 0; k < DEMO_CORRUPT_SAMPLES; k++)
        snprintf(items[k].key, sizeof items[k].key, "%04u%05u", shard, k);
    VC_TRY(make_items(g, STREAM_CORRUPT, items, 0, DEMO_CORRUPT_SAMPLES, true, err));
    char rel[64], path[PATH_MAX];
    struct demo_tar t;
    VC_TRY(shard_begin(g, shard, rel, path, &t, err));
    /* Only what precedes the cut will exist in the file, so only that counts. */
    enum vc_status rc = write_items(g, &t, rel, items, DEMO_CORRUPT_CUT + 1, image_at, err);
    for (uint32_t k = DEMO_CORRUPT_CUT + 1; rc >= 0 && k < DEMO_CORRUPT_SAMPLES; k++)
        rc = tar_add_item(&t, &items[k], NULL, err);
    VC_TRY(shard_end(&t, path, rc, err));
    off_t cut = (off_t)(image_at[DEMO_CORRUPT_CUT] + items[DEMO_CORRUPT_CUT].pic.size / 2);
    if (truncate(path, cut) != 0)
        return io_fail(err, "cannot truncate", path);
    VC_TRY(add_defect(g, "web", rel, items[DEMO_CORRUPT_CUT].key, -1, "truncated_tar", err));
    return file_size_add(g, path, err);
}

/* Member names a hostile or careless archiver produces.  Each unsafe
 * sample has a caption too, so it is a whole sample to account for; the
 * symlink is a sample of its own (key "link") that must end as an error,
 * never followed. */
static enum vc_status write_hostile_shard(struct demo_gen *g, uint32_t shard,
                                          struct demo_item *items, struct vc_err *err)
{
    static const char *const keys[] = { "000000",     "../escape", "Photo 2023-05 (copy)",
                                        "/abs/owned", "dup",       "000005" };
    static const char *const defects[] = {
        NULL, "unsafe_path_dotdot", NULL, "unsafe_path_absolute", "repeated_extension", NULL
    };
    enum { N = sizeof keys / sizeof keys[0] };
    for (uint32_t k = 0; k < N; k++) {
        snprintf(items[k].key, sizeof items[k].key, "%s", keys[k]);
        items[k].defect = defects[k];
    }
    VC_TRY(make_items(g, STREAM_HOSTILE, items, 0, N, true, err));
    char rel[64], path[PATH_MAX];
    struct demo_tar t;
    VC_TRY(shard_begin(g, shard, rel, path, &t, err));
    enum vc_status rc = write_items(g, &t, rel, items, 3, NULL, err);
    if (rc >= 0)
        rc = tar_add(&t, "link.jpg", NULL, 0, "/etc/passwd", NULL, err);
    if (rc >= 0) {
        g->sum->n_wds_samples++;
        rc = add_defect(g, "web", rel, "link", -1, "symlink_member", err);
    }
    if (rc >= 0)
        rc = write_items(g, &t, rel, items + 3, N - 3, NULL, err);
    VC_TRY(shard_end(&t, path, rc, err));
    return file_size_add(g, path, err);
}

static enum vc_status gen_wds(struct demo_gen *g, struct demo_item *items, struct vc_err *err)
{
    uint32_t n_good = (g->n_samples + DEMO_SHARD_SAMPLES - 1) / DEMO_SHARD_SAMPLES;
    n_good = n_good < DEMO_MIN_GOOD_SHARDS ? DEMO_MIN_GOOD_SHARDS : n_good;
    g->sum->n_wds_shards = n_good + 2;
    enum vc_status rc = VC_OK;
    for (uint32_t s = 0; rc >= 0 && s < n_good; s++) {
        uint32_t first = (uint32_t)((uint64_t)s * g->n_samples / n_good);
        uint32_t end = (uint32_t)((uint64_t)(s + 1) * g->n_samples / n_good);
        rc = write_good_shard(g, s, first, end - first, items, err);
        items_free(items);
    }
    if (rc >= 0)
        rc = write_corrupt_shard(g, n_good, items, err);
    items_free(items);
    if (rc >= 0)
        rc = write_hostile_shard(g, n_good + 1, items, err);
    items_free(items);
    return rc;
}

/* ---- image-caption pairs ------------------------------------------- */

/* Rows that point where they must not, or at nothing usable.  The "../"
 * row's file exists (outside images_dir), so only the path rule can stop
 * it. */
static const char *const pair_defects[] = { "missing_image", "unsafe_path_dotdot",
                                            "unsafe_path_absolute", "empty_image" };
enum { N_PAIR_DEFECTS = sizeof pair_defects / sizeof pair_defects[0] };

/* RFC 4180: quote when needed, double the quotes inside. */
static int csv_field(struct vc_buf *b, const char *s, bool last)
{
    int rc = 0;
    if (strpbrk(s, ",\"\r\n") || (s[0] == ' ')) {
        rc |= vc_buf_append(b, "\"", 1);
        for (const char *p = s; *p; p++)
            rc |= *p == '"' ? vc_buf_append(b, "\"\"", 2) : vc_buf_append(b, p, 1);
        rc |= vc_buf_append(b, "\"", 1);
    } else {
        rc |= vc_buf_append(b, s, strlen(s));
    }
    return rc | vc_buf_append(b, last ? "\n" : ",", 1);
}

static int pair_row(struct vc_buf *jsonl, struct vc_buf *csv, const struct demo_item *it,
                    const char *image)
{
    char w[16], h[16];
    snprintf(w, sizeof w, "%u", it->pic.w);
    snprintf(h, sizeof h, "%u", it->pic.h);
    cJSON *o = cJSON_CreateObject();
    char *line = NULL;
    if (o && cJSON_AddStringToObject(o, "image", image) &&
        cJSON_AddStringToObject(o, "caption", it->caption ? it->caption : "") &&
        cJSON_AddStringToObject(o, "url", it->url) &&
        cJSON_AddStringToObject(o, "license", it->license) &&
        cJSON_AddNumberToObject(o, "width", it->pic.w) &&
        cJSON_AddNumberToObject(o, "height", it->pic.h))
        line = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    int rc = line ? vc_buf_printf(jsonl, "%s\n", line) : -1;
    free(line);
    return rc | csv_field(csv, image, false) |
           csv_field(csv, it->caption ? it->caption : "", false) | csv_field(csv, it->url, false) |
           csv_field(csv, it->license, false) | csv_field(csv, w, false) | csv_field(csv, h, true);
}

/* The data row (0-based) at which defect k is inserted among n good rows. */
static uint32_t pair_defect_row(uint32_t k, uint32_t n)
{
    return (k + 1) * n / (N_PAIR_DEFECTS + 1) + k;
}

static enum vc_status gen_pairs(struct demo_gen *g, struct demo_item *items, struct vc_err *err)
{
    uint32_t n_good = g->n_samples / 4 < 8 ? 8 : g->n_samples / 4;
    uint32_t n_rows = n_good + N_PAIR_DEFECTS;
    struct vc_buf jsonl, csv;
    vc_buf_init(&jsonl, DEMO_LIST_MAX_BYTES);
    vc_buf_init(&csv, DEMO_LIST_MAX_BYTES);
    vc_buf_printf(&csv, "image,caption,url,license,width,height\n");
    enum vc_status rc = VC_OK;
    uint32_t defect = 0;
    for (uint32_t row0 = 0; rc >= 0 && row0 < n_rows; row0 += DEMO_BATCH) {
        uint32_t n = n_rows - row0 < DEMO_BATCH ? n_rows - row0 : DEMO_BATCH;
        for (uint32_t k = 0; k < n; k++) {
            struct demo_item *it = &items[k];
            it->defect = defect < N_PAIR_DEFECTS && row0 + k == pair_defect_row(defect, n_good)
                             ? pair_defects[defect++]
                             : NULL;
            /* Every fourth image lives in a subfolder, as split exports do. */
            snprintf(it->key, sizeof it->key, "%s%05u", (row0 + k) % 4 == 3 ? "part-1/" : "",
                     row0 + k);
        }
        rc = make_items(g, STREAM_PAIRS, items, row0, n, false, err);
        for (uint32_t k = 0; rc >= 0 && k < n; k++) {
            struct demo_item *it = &items[k];
            char image[128], rel[192];
            snprintf(image, sizeof image, "%s.%s", it->key, img_format_ext(it->pic.format));
            if (is_defect(it, "missing_image"))
                snprintf(image, sizeof image, "missing/%05u.jpg", row0 + k);
            else if (is_defect(it, "unsafe_path_dotdot"))
                snprintf(image, sizeof image, "../escape.jpg");
            else if (is_defect(it, "unsafe_path_absolute"))
                snprintf(image, sizeof image, "/etc/hostname");
            else if (is_defect(it, "empty_image"))
                snprintf(image, sizeof image, "empty.jpg");
            if (is_defect(it, "unsafe_path_dotdot"))
                rc = demo_write(g, "pairs/escape.jpg", it->pic.bytes, it->pic.size, err);
            else if (!it->defect || is_defect(it, "empty_image")) {
                snprintf(rel, sizeof rel, "pairs/images/%s", image);
                rc = demo_write(g, rel, it->pic.bytes, it->defect ? 0 : it->pic.size, err);
                g->sum->n_images += !it->defect;
            }
            if (rc >= 0 && it->defect)
                rc = add_defect(g, "pairs", "pairs/pairs.jsonl", image, (long)(row0 + k),
                                it->defect, err);
            if (rc >= 0 && pair_row(&jsonl, &csv, it, image) != 0)
                rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "pairs list");
        }
        items_free(items);
    }
    if (rc >= 0)
        rc = demo_write(g, "pairs/pairs.jsonl", jsonl.data, jsonl.len, err);
    if (rc >= 0)
        rc = demo_write(g, "pairs/pairs.csv", csv.data, csv.len, err);
    vc_buf_free(&jsonl);
    vc_buf_free(&csv);
    g->sum->n_pairs = n_rows;
    return rc;
}

/* ---- interleaved documents ----------------------------------------- */

struct demo_topic {
    const char *title;
    const char *sentences[6];
};
static const struct demo_topic topics[] = {
    { "A weekend in the mountains: what to pack",
      { "The trail starts just behind the village church and climbs steadily for two hours.",
        "Bring at least two litres of water per person, even on a cloudy day.",
        "The hut at the top serves soup until four in the afternoon.",
        "From the ridge you can see three lakes on a clear morning.",
        "We took the longer route down through the larch forest.",
        "Check the weather forecast the evening before and again at dawn." } },
    { "Sourdough for beginners",
      { "A starter needs about a week of daily feeding before it is strong enough.",
        "Use a digital scale: baking by volume is the most common source of failure.",
        "The dough should roughly double during the bulk fermentation.",
        "Shape the loaf gently so that you keep the gas inside.",
        "Bake in a preheated cast-iron pot with the lid on for the first twenty minutes.",
        "Let the bread cool completely before slicing it." } },
    { "How we redesigned our small garden",
      { "The old lawn was replaced by gravel paths and raised beds.",
        "Herbs grow best in the sunniest corner, next to the south wall.",
        "We kept the apple tree and built a bench around its trunk.",
        "A small pond attracts frogs, dragonflies and the occasional heron.",
        "Mulching the beds in spring saved us hours of weeding.",
        "Most of the plants came from cuttings given by our neighbours." } },
    { "Commuting by bike through the winter",
      { "Good lights matter more than anything else from November to February.",
        "Studded tyres are worth it if your route is not gritted.",
        "A waterproof jacket with vents keeps you dry without overheating.",
        "Clean and oil the chain every week when the roads are salted.",
        "Leave a spare set of clothes at the office for the wettest days.",
        "Most days the ride is faster than the bus, even in the snow." } },
    { "Review: a budget mechanical keyboard",
      { "The keyboard ships with brown switches and double-shot keycaps.",
        "Typing feels firm, with a clear bump and little wobble.",
        "The software lets you remap every key and record simple macros.",
        "Battery life reached three weeks with the backlight turned off.",
        "The USB-C cable is detachable, which makes it easy to travel with.",
        "For the price it is hard to find anything better built." } },
};
enum { N_TOPICS = sizeof topics / sizeof topics[0], DEMO_DOC_MAX_IMAGES = 4 };

/* What a document looks like before its images exist. */
struct demo_doc {
    uint32_t topic, n_pos, n_images;
    bool is_image[DEMO_DOC_MAX_IMAGES + 8];
    uint32_t n_sentences[DEMO_DOC_MAX_IMAGES + 8];
    uint32_t first_image; /* index into the batch's items */
};

/* Document 0 has text only and document 1 several images, one of them
 * missing on disk, so both cases are always present. */
static void doc_layout(const struct demo_gen *g, uint32_t d, struct demo_doc *doc)
{
    struct reshard_rng r = item_rng(g->seed, STREAM_DOCS, d);
    uint32_t n_text = rnd_range(&r, 2, 7);
    doc->topic = rnd(&r, N_TOPICS);
    doc->n_images = d == 0   ? 0
                    : d == 1 ? DEMO_DOC_MAX_IMAGES
                             : rnd_range(&r, 1, DEMO_DOC_MAX_IMAGES);
    doc->n_pos = n_text + doc->n_images;
    /* A title first, then the images scattered among the paragraphs. */
    uint32_t images_left = doc->n_images;
    for (uint32_t p = 0; p < doc->n_pos; p++) {
        uint32_t slots_left = doc->n_pos - p;
        doc->is_image[p] = p > 0 && rnd(&r, slots_left) < images_left;
        images_left -= doc->is_image[p];
        doc->n_sentences[p] = rnd_range(&r, 1, 4);
    }
}

/* Paragraph p (p > 0) continues where the previous one stopped, so a
 * document reads on and repeats itself only when it is long. */
static cJSON *doc_paragraph(const struct demo_doc *doc, uint32_t p, uint32_t *cursor)
{
    if (p == 0)
        return cJSON_CreateString(topics[doc->topic].title);
    char buf[1024] = "";
    size_t len = 0;
    for (uint32_t s = 0; s < doc->n_sentences[p]; s++, (*cursor)++) {
        const char *sent = topics[doc->topic].sentences[*cursor % 6];
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", s ? " " : "", sent);
    }
    return cJSON_CreateString(buf);
}

/* OBELICS keeps per-image metadata and the crawl record as JSON strings. */
static enum vc_status doc_json(const struct demo_doc *doc, uint32_t d, const struct demo_item *imgs,
                               char **out, struct vc_err *err)
{
    cJSON *o = cJSON_CreateObject(), *texts = cJSON_CreateArray(), *images = cJSON_CreateArray();
    cJSON *meta = cJSON_CreateArray(), *general = cJSON_CreateObject();
    char url[128];
    snprintf(url, sizeof url, "https://blog.example.net/%u/%02u/post-%05u.html", 2019 + d % 5,
             1 + d % 12, d);
    for (uint32_t p = 0, i = 0, cursor = 0; p < doc->n_pos; p++) {
        if (!doc->is_image[p]) {
            cJSON_AddItemToArray(texts, doc_paragraph(doc, p, &cursor));
            cJSON_AddItemToArray(images, cJSON_CreateNull());
            cJSON_AddItemToArray(meta, cJSON_CreateNull());
            continue;
        }
        const struct demo_item *it = &imgs[i++];
        cJSON_AddItemToArray(texts, cJSON_CreateNull());
        cJSON_AddItemToArray(images, cJSON_CreateString(it->key));
        cJSON *m = cJSON_CreateObject();
        cJSON_AddItemToArray(meta, m);
        cJSON_AddStringToObject(m, "document_url", url);
        cJSON_AddStringToObject(m, "src", it->url);
        cJSON_AddStringToObject(m, "alt_text", it->caption ? it->caption : "");
        cJSON_AddNumberToObject(m, "original_width", it->pic.w);
        cJSON_AddNumberToObject(m, "original_height", it->pic.h);
    }
    cJSON_AddStringToObject(general, "url", url);
    cJSON_AddStringToObject(general, "warc_filename",
                            "crawl-data/CC-MAIN-2023-06/segments/1674764494826.88/warc/"
                            "CC-MAIN-20230126210844-20230127000844-00042.warc.gz");
    cJSON_AddNumberToObject(general, "warc_record_offset", 1000 + 7919.0 * d);
    cJSON_AddNumberToObject(general, "warc_record_length", 4000 + 37 * d);
    char *meta_s = cJSON_PrintUnformatted(meta), *general_s = cJSON_PrintUnformatted(general);
    cJSON_Delete(meta);
    cJSON_Delete(general);
    cJSON_AddItemToObject(o, "texts", texts);
    cJSON_AddItemToObject(o, "images", images);
    if (meta_s && general_s) {
        cJSON_AddStringToObject(o, "metadata", meta_s);
        cJSON_AddStringToObject(o, "general_metadata", general_s);
    }
    bool ok = o && meta_s && general_s;
    free(meta_s);
    free(general_s);
    if (!ok) {
        cJSON_Delete(o);
        o = NULL;
    }
    return json_text(o, out, err);
}

/* Documents in batches whose images fit one DEMO_BATCH of items. */
static enum vc_status gen_docs(struct demo_gen *g, struct demo_item *items, struct vc_err *err)
{
    enum { DOCS_PER_BATCH = DEMO_BATCH / DEMO_DOC_MAX_IMAGES };
    uint32_t n_docs = g->n_samples / 20 < 6 ? 6 : g->n_samples / 20, n_img_total = 0;
    struct demo_doc docs[DOCS_PER_BATCH];
    struct vc_buf jsonl;
    vc_buf_init(&jsonl, DEMO_LIST_MAX_BYTES);
    enum vc_status rc = VC_OK;
    for (uint32_t d0 = 0; rc >= 0 && d0 < n_docs; d0 += DOCS_PER_BATCH) {
        uint32_t nd = n_docs - d0 < DOCS_PER_BATCH ? n_docs - d0 : DOCS_PER_BATCH, ni = 0;
        for (uint32_t k = 0; k < nd; k++) {
            doc_layout(g, d0 + k, &docs[k]);
            docs[k].first_image = ni;
            ni += docs[k].n_images;
        }
        rc = make_items(g, STREAM_DOC_IMAGES, items, n_img_total, ni, false, err);
        for (uint32_t k = 0; rc >= 0 && k < nd; k++) {
            struct demo_item *imgs = items + docs[k].first_image;
            for (uint32_t i = 0; rc >= 0 && i < docs[k].n_images; i++) {
                char rel[192];
                snprintf(imgs[i].key, sizeof imgs[i].key, "doc%05u/%u.%s", d0 + k, i,
                         img_format_ext(imgs[i].pic.format));
                snprintf(rel, sizeof rel, "docs/images/%s", imgs[i].key);
                if (d0 + k == 1 && i == 1) {
                    rc = add_defect(g, "docs", "docs/docs.jsonl", imgs[i].key, 1, "missing_image",
                                    err);
                    continue;
                }
                rc = demo_write(g, rel, imgs[i].pic.bytes, imgs[i].pic.size, err);
                g->sum->n_images++;
            }
            char *line = NULL;
            if (rc >= 0)
                rc = doc_json(&docs[k], d0 + k, imgs, &line, err);
            if (rc >= 0 && vc_buf_printf(&jsonl, "%s\n", line) != 0)
                rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "docs list");
            free(line);
        }
        n_img_total += ni;
        items_free(items);
    }
    if (rc >= 0)
        rc = demo_write(g, "docs/docs.jsonl", jsonl.data, jsonl.len, err);
    vc_buf_free(&jsonl);
    g->sum->n_docs = n_docs;
    return rc;
}

/* ---- the default spec and the demo manifest ------------------------ */

/* DIR/model: a tiny random Idefics2 checkpoint in the Hugging Face layout,
 * its tokenizer generated from the system word list. */
static enum vc_status gen_model(struct demo_gen *g, struct vc_err *err)
{
    char path[4200];
    if (snprintf(path, sizeof path, "%s/%s", g->dir, DEMO_MODEL_DIR) >= (int)sizeof path)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "demo: path too long: %s", g->dir);
    return idf2_mk_tiny(path, g->seed, DEMO_WORDS, err);
}

/* Paths are relative to the spec's folder, so DIR can be moved whole. */
static enum vc_status write_spec(struct demo_gen *g, struct vc_err *err)
{
    char urls[96];
    snprintf(urls, sizeof urls, "wds/demo-{000000..%06u}.tar", g->sum->n_wds_shards - 1);
    cJSON *spec = cJSON_CreateObject(), *sources = cJSON_AddArrayToObject(spec, "sources");
    cJSON *web = cJSON_CreateObject(), *pairs = cJSON_CreateObject(), *docs = cJSON_CreateObject();
    cJSON_AddItemToArray(sources, web);
    cJSON_AddItemToArray(sources, pairs);
    cJSON_AddItemToArray(sources, docs);
    cJSON_AddStringToObject(web, "name", "web");
    cJSON_AddStringToObject(web, "type", "webdataset");
    cJSON_AddStringToObject(web, "urls", urls);
    cJSON_AddNumberToObject(web, "weight", 0.7);
    cJSON_AddStringToObject(pairs, "name", "pairs");
    cJSON_AddStringToObject(pairs, "type", "pairs");
    cJSON_AddStringToObject(pairs, "list", "pairs/pairs.jsonl");
    cJSON_AddStringToObject(pairs, "images_dir", "pairs/images");
    cJSON_AddNumberToObject(pairs, "weight", 0.25);
    cJSON_AddStringToObject(docs, "name", "docs");
    cJSON_AddStringToObject(docs, "type", "documents");
    cJSON_AddStringToObject(docs, "path", "docs/docs.jsonl");
    cJSON_AddStringToObject(docs, "images_dir", "docs/images");
    cJSON_AddNumberToObject(docs, "weight", 0.05);

    cJSON *stages = cJSON_AddArrayToObject(spec, "stages");
    cJSON *ingest = cJSON_CreateObject(), *reshard = cJSON_CreateObject();
    cJSON *filter = cJSON_CreateObject(), *stats = cJSON_CreateObject();
    cJSON *write = cJSON_CreateObject(), *caption = cJSON_CreateObject();
    cJSON_AddItemToArray(stages, ingest);
    cJSON_AddItemToArray(stages, filter);
    cJSON_AddItemToArray(stages, caption);
    cJSON_AddItemToArray(stages, reshard);
    cJSON_AddItemToArray(stages, stats);
    cJSON_AddItemToArray(stages, write);
    /* The OBELICS defaults, and the audit of what they kept: the demo shows
     * the whole funnel in OUT/report.html. */
    cJSON_AddStringToObject(filter, "stage", "filter");
    cJSON_AddStringToObject(stats, "stage", "stats");
    cJSON_AddStringToObject(ingest, "stage", "ingest");
    /* A full decode catches what a header probe cannot: truncated scans
     * and corrupt chunks. */
    cJSON_AddTrueToObject(ingest, "decode");
    cJSON_AddStringToObject(reshard, "stage", "reshard");
    cJSON_AddStringToObject(reshard, "mix", "weighted");
    /* Keep drawing from what is left once a source runs out, so the demo
     * writes every valid sample. */
    cJSON_AddStringToObject(reshard, "stop", "all_exhausted");
    cJSON_AddStringToObject(reshard, "shuffle", "buffer");
    cJSON_AddNumberToObject(reshard, "buffer_size", 1000);
    cJSON_AddNumberToObject(reshard, "seed", (double)(g->seed & ((1ull << 53) - 1)));
    cJSON_AddStringToObject(write, "stage", "write");
    /* Captioning end to end with the random checkpoint of DIR/model: the
     * captions are noise, the plumbing is real.  Short, so the demo stays
     * a matter of seconds. */
    cJSON_AddStringToObject(caption, "stage", "caption");
    cJSON_AddStringToObject(caption, "model", DEMO_MODEL_DIR);
    cJSON_AddNumberToObject(caption, "max_new_tokens", 8);

    cJSON *output = cJSON_AddObjectToObject(spec, "output");
    cJSON_AddStringToObject(output, "dir", "out");
    cJSON_AddStringToObject(output, "prefix", "demo");
    cJSON_AddNumberToObject(output, "samples_per_shard", 64);

    /* The description names the generator's parameters, so data made with
     * other ones never passes for a finished run of this spec (the run's
     * resume check hashes the whole spec). */
    char desc[160];
    snprintf(desc, sizeof desc, "vlmcurate demo data: seed %llu, %u samples",
             (unsigned long long)g->seed, g->n_samples);
    cJSON_AddStringToObject(spec, "description", desc);
    char *text = cJSON_Print(spec);
    cJSON_Delete(spec);
    if (!text)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "demo spec");
    enum vc_status rc = demo_write(g, "spec.json", text, strlen(text), err);
    free(text);
    return rc;
}

/* DIR/demo.json: what was generated, for tests and curious users. */
static enum vc_status write_manifest(struct demo_gen *g, struct vc_err *err)
{
    const struct demo_summary *s = g->sum;
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "generator", "vlmcurate demo " VC_VERSION);
    cJSON_AddNumberToObject(m, "seed", (double)g->seed);
    cJSON_AddNumberToObject(m, "samples", g->n_samples);
    cJSON_AddNumberToObject(m, "wds_shards", s->n_wds_shards);
    cJSON_AddNumberToObject(m, "wds_samples", (double)s->n_wds_samples);
    cJSON_AddNumberToObject(m, "pairs", (double)s->n_pairs);
    cJSON_AddNumberToObject(m, "docs", (double)s->n_docs);
    cJSON_AddNumberToObject(m, "images", (double)s->n_images);
    char rel[64];
    shard_rel(s->n_wds_shards - 2, rel);
    cJSON_AddStringToObject(m, "corrupt_shard", rel);
    shard_rel(s->n_wds_shards - 1, rel);
    cJSON_AddStringToObject(m, "hostile_shard", rel);
    cJSON_AddItemToObject(m, "defects", g->defects);
    g->defects = NULL; /* owned by m now */
    char *text = cJSON_Print(m);
    cJSON_Delete(m);
    if (!text)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "demo manifest");
    enum vc_status rc = demo_write(g, "demo.json", text, strlen(text), err);
    free(text);
    return rc;
}

enum vc_status demo_generate_n(const char *dir, uint64_t seed, uint32_t n_samples,
                               struct demo_summary *out, struct vc_err *err)
{
    if (!dir || !dir[0])
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "demo: no output folder given");
    if (n_samples < DEMO_MIN_SAMPLES || n_samples > DEMO_MAX_SAMPLES)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "demo: --samples must be in %d..%d, not %u", DEMO_MIN_SAMPLES,
                          DEMO_MAX_SAMPLES, n_samples);
    memset(out, 0, sizeof *out);
    VC_TRY(vc_fs_mkdirs(dir, err));
    if (!realpath(dir, out->dir))
        return io_fail(err, "cannot resolve", dir);
    if (snprintf(out->spec_path, sizeof out->spec_path, "%s/spec.json", out->dir) >=
        (int)sizeof out->spec_path)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "demo: path too long: %s", dir);
    struct demo_gen g = {
        .dir = out->dir,
        .seed = seed,
        .n_samples = n_samples,
        .sum = out,
        .defects = cJSON_CreateArray(),
    };
    struct demo_item *items = calloc(DEMO_BATCH, sizeof *items);
    enum vc_status rc = VC_OK;
    if (!items || !g.defects)
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "demo");
    if (rc >= 0)
        rc = gen_wds(&g, items, err);
    if (rc >= 0)
        rc = gen_pairs(&g, items, err);
    if (rc >= 0)
        rc = gen_docs(&g, items, err);
    if (rc >= 0)
        rc = gen_model(&g, err);
    if (rc >= 0)
        rc = write_spec(&g, err);
    if (rc >= 0)
        rc = write_manifest(&g, err);
    free(items);
    cJSON_Delete(g.defects);
    return rc;
}

enum vc_status demo_generate(const char *dir, uint64_t seed, struct demo_summary *out,
                             struct vc_err *err)
{
    return demo_generate_n(dir, seed, DEMO_DEFAULT_SAMPLES, out, err);
}
