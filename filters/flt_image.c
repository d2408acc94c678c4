/* flt_image: image filter tables and their scores.  Owns each filter's
 * parsed parameters (format mask, lower-cased ban words).  Never decodes:
 * the chain hands decoded pixels in when a FILTER_NEEDS_PIXELS filter is
 * enabled.  A score that cannot be computed (no header, no pixels, a 0 px
 * side) is NaN, which filter_keeps rejects. */
#include "flt_image.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/img.h"
#include "core/vc_mem.h"

#define OBELICS_YAML "OBELICS config_filter_web_documents.yaml"

static void free_state(struct filter *f)
{
    free(f->state);
}

/* ---- header-only ---- */

/* Bit i set when img_format i is allowed. */
static enum vc_status format_init(struct filter *f, struct filter_env *env, struct vc_err *err)
{
    (void)env;
    unsigned *mask = calloc(1, sizeof *mask);
    if (!mask)
        return vc_err_oom(err);
    f->state = mask;
    size_t n = filter_param_strings_count(f, "formats");
    for (size_t i = 0; i < n; i++) {
        const char *name = filter_param_strings_at(f, "formats", i);
        enum img_format fmt = img_format_from_name(name);
        if (fmt == IMG_FORMAT_UNKNOWN)
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                              "parameter \"formats\": \"%s\" is not jpg, jpeg, png or webp", name);
        *mask |= 1u << fmt;
    }
    return VC_OK;
}

/* Magic bytes decide, never a file extension. */
static enum vc_status format_score(const struct filter *f, const struct filter_input *in,
                                   double *score, struct vc_err *err)
{
    (void)err;
    const unsigned *mask = f->state;
    enum img_format fmt = in->image ? img_sniff(in->image, in->image_size) : IMG_FORMAT_UNKNOWN;
    *score = fmt != IMG_FORMAT_UNKNOWN && (*mask & (1u << fmt)) ? 1.0 : 0.0;
    return VC_OK;
}

static enum vc_status width_score(const struct filter *f, const struct filter_input *in,
                                  double *score, struct vc_err *err)
{
    (void)f, (void)err;
    *score = in->info ? (double)in->info->width : NAN;
    return VC_OK;
}

static enum vc_status height_score(const struct filter *f, const struct filter_input *in,
                                   double *score, struct vc_err *err)
{
    (void)f, (void)err;
    *score = in->info ? (double)in->info->height : NAN;
    return VC_OK;
}

/* width / height as stored, like OBELICS's PIL image.size (no EXIF turn). */
static enum vc_status aspect_score(const struct filter *f, const struct filter_input *in,
                                   double *score, struct vc_err *err)
{
    (void)f, (void)err;
    *score = in->info && in->info->height > 0 && in->info->width > 0
                 ? (double)in->info->width / (double)in->info->height
                 : NAN;
    return VC_OK;
}

static enum vc_status pixels_score(const struct filter *f, const struct filter_input *in,
                                   double *score, struct vc_err *err)
{
    (void)f, (void)err;
    *score = in->info ? (double)in->info->width * (double)in->info->height : NAN;
    return VC_OK;
}

static enum vc_status bytes_score(const struct filter *f, const struct filter_input *in,
                                  double *score, struct vc_err *err)
{
    (void)f, (void)err;
    *score = (double)in->image_size;
    return VC_OK;
}

struct ban_state {
    size_t n;
    char **words; /* lower-cased ASCII, owned */
};

static void ban_fini(struct filter *f)
{
    struct ban_state *st = f->state;
    if (!st)
        return;
    for (size_t i = 0; i < st->n; i++)
        free(st->words[i]);
    free(st->words);
    free(st);
}

static enum vc_status ban_init(struct filter *f, struct filter_env *env, struct vc_err *err)
{
    (void)env;
    struct ban_state *st = calloc(1, sizeof *st);
    if (!st)
        return vc_err_oom(err);
    f->state = st;
    size_t n = filter_param_strings_count(f, "words");
    st->words = vc_malloc_array(n ? n : 1, sizeof *st->words);
    if (!st->words)
        return vc_err_oom(err);
    for (size_t i = 0; i < n; i++) {
        const char *w = filter_param_strings_at(f, "words", i);
        if (!*w)
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                              "parameter \"words\": an empty word would ban every URL");
        char *lw = vc_strdup(w);
        if (!lw)
            return vc_err_oom(err);
        for (char *p = lw; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        st->words[st->n++] = lw;
    }
    return VC_OK;
}

/* Substring match ignoring ASCII case: "Logo.PNG" is as much a logo as
 * "logo.png" (OBELICS compared case-sensitively; we do not). */
static bool contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == needle[i])
            i++;
        if (i == n)
            return true;
    }
    return false;
}

static enum vc_status ban_score(const struct filter *f, const struct filter_input *in,
                                double *score, struct vc_err *err)
{
    (void)err;
    const struct ban_state *st = f->state;
    *score = 0.0;
    for (size_t i = 0; in->url && i < st->n; i++) {
        if (contains_nocase(in->url, st->words[i])) {
            *score = 1.0;
            break;
        }
    }
    return VC_OK;
}

/* ---- pixels ---- */

static enum vc_status decodes_score(const struct filter *f, const struct filter_input *in,
                                    double *score, struct vc_err *err)
{
    (void)f, (void)err;
    *score = in->pixels ? 1.0 : 0.0;
    return VC_OK;
}

/* Standard deviation (population) of the luma, computed with Pillow's
 * integer RGB->L weights so the value matches ImageStat on mode "L". */
static enum vc_status uniform_score(const struct filter *f, const struct filter_input *in,
                                    double *score, struct vc_err *err)
{
    (void)f, (void)err;
    const struct img *im = in->pixels;
    size_t n = im ? (size_t)im->w * im->h : 0;
    if (n == 0) {
        *score = NAN;
        return VC_OK;
    }
    uint64_t sum = 0, sumsq = 0;
    const uint8_t *p = im->pixels;
    for (size_t i = 0; i < n; i++, p += im->ch) {
        uint64_t l = ((uint32_t)p[0] * 19595u + (uint32_t)p[1] * 38470u + (uint32_t)p[2] * 7471u +
                      0x8000u) >>
                     16;
        sum += l;
        sumsq += l * l;
    }
    double mean = (double)sum / (double)n;
    double var = (double)sumsq / (double)n - mean * mean;
    *score = var > 0 ? sqrt(var) : 0.0;
    return VC_OK;
}

/* Mean chroma, max(R,G,B) - min(R,G,B) per pixel: 0 for true gray, a few
 * units for gray photos stored as colour JPEGs.  A gray header needs no
 * pixels. */
static enum vc_status grayscale_score(const struct filter *f, const struct filter_input *in,
                                      double *score, struct vc_err *err)
{
    (void)f, (void)err;
    if (in->info && in->info->channels <= 2) {
        *score = 0.0;
        return VC_OK;
    }
    const struct img *im = in->pixels;
    size_t n = im ? (size_t)im->w * im->h : 0;
    if (n == 0) {
        *score = NAN;
        return VC_OK;
    }
    uint64_t sum = 0;
    const uint8_t *p = im->pixels;
    for (size_t i = 0; i < n; i++, p += im->ch) {
        uint8_t hi = p[0], lo = p[0];
        for (int c = 1; c < 3; c++) {
            hi = p[c] > hi ? p[c] : hi;
            lo = p[c] < lo ? p[c] : lo;
        }
        sum += (uint64_t)(hi - lo);
    }
    *score = (double)sum / (double)n;
    return VC_OK;
}

/* ---- tables ---- */

static const struct filter_param format_params[] = {
    { "min", FILTER_PARAM_NUMBER, "1", "1 = the detected format must be listed", 0, 1 },
    { "formats", FILTER_PARAM_STRINGS, "[\"jpg\",\"jpeg\",\"png\",\"webp\"]",
      "formats kept, detected by magic bytes", 0, 0 },
    FILTER_PARAMS_END,
};
const struct filter_ops flt_img_format = {
    .name = "img_format",
    .kind = FILTER_KIND_IMAGE,
    .summary = "1 when the format (from magic bytes) is in the allowed list, else 0",
    .source = OBELICS_YAML " valid_formats",
    .enabled = true,
    .params = format_params,
    .init = format_init,
    .fini = free_state,
    .score = format_score,
};

static const struct filter_param width_params[] = {
    { "min", FILTER_PARAM_INT, "150", "narrowest width kept (px)", 0, 1e6 },
    { "max", FILTER_PARAM_INT, "20000", "widest width kept (px)", 0, 1e6 },
    FILTER_PARAMS_END,
};
const struct filter_ops flt_img_width = {
    .name = "img_width",
    .kind = FILTER_KIND_IMAGE,
    .summary = "width in pixels from the header",
    .source = OBELICS_YAML " original_width_{min,max}_cutoff",
    .enabled = true,
    .flags = FILTER_NEEDS_HEADER,
    .params = width_params,
    .score = width_score,
};

static const struct filter_param height_params[] = {
    { "min", FILTER_PARAM_INT, "150", "lowest height kept (px)", 0, 1e6 },
    { "max", FILTER_PARAM_INT, "20000", "highest height kept (px)", 0, 1e6 },
    FILTER_PARAMS_END,
};
const struct filter_ops flt_img_height = {
    .name = "img_height",
    .kind = FILTER_KIND_IMAGE,
    .summary = "height in pixels from the header",
    .source = OBELICS_YAML " original_height_{min,max}_cutoff",
    .enabled = true,
    .flags = FILTER_NEEDS_HEADER,
    .params = height_params,
    .score = height_score,
};

static const struct filter_param aspect_params[] = {
    { "min", FILTER_PARAM_NUMBER, "0.5", "lowest width/height kept", 0, 1e6 },
    { "max", FILTER_PARAM_NUMBER, "2", "highest width/height kept", 0, 1e6 },
    FILTER_PARAMS_END,
};
const struct filter_ops flt_img_aspect = {
    .name = "img_aspect",
    .kind = FILTER_KIND_IMAGE,
    .summary = "width / height from the header",
    .source = OBELICS_YAML " aspect_ratio_max_cutoff 2 (and 1/2)",
    .enabled = true,
    .flags = FILTER_NEEDS_HEADER,
    .params = aspect_params,
    .score = aspect_score,
};

static const struct filter_param pixels_params[] = {
    { "max", FILTER_PARAM_INT, "178956970", "most pixels kept (width x height)", 0, 1e15 },
    FILTER_PARAMS_END,
};
const struct filter_ops flt_img_pixels = {
    .name = "img_pixels",
    .kind = FILTER_KIND_IMAGE,
    .summary = "width x height from the header: the decompression-bomb guard",
    .source = "Pillow's DecompressionBombError limit (2 x MAX_IMAGE_PIXELS)",
    .enabled = true,
    .flags = FILTER_NEEDS_HEADER,
    .params = pixels_params,
    .score = pixels_score,
};

static const struct filter_param bytes_params[] = {
    { "min", FILTER_PARAM_INT, "0", "smallest file kept (bytes)", 0, 1e15 },
    { "max", FILTER_PARAM_INT, "2000000", "largest file kept (bytes)", 0, 1e15 },
    FILTER_PARAMS_END,
};
const struct filter_ops flt_img_bytes = {
    .name = "img_bytes",
    .kind = FILTER_KIND_IMAGE,
    .summary = "size of the encoded image in bytes",
    .source = "OBELICS build_obelics/04_merge_web_docs_with_images.py 2 MB cap (commented out "
              "there, so off by default here)",
    .enabled = false,
    .params = bytes_params,
    .score = bytes_score,
};

static const struct filter_param ban_params[] = {
    { "max", FILTER_PARAM_NUMBER, "0", "1 = the URL contains a banned word", 0, 1 },
    { "words", FILTER_PARAM_STRINGS,
      "[\"logo\",\"button\",\"icon\",\"plugin\",\"widget\",\"porn\",\"xxx\",\"sex\"]",
      "substrings banned from image URLs (ASCII case ignored)", 0, 0 },
    FILTER_PARAMS_END,
};
const struct filter_ops flt_img_url_ban = {
    .name = "img_url_ban",
    .kind = FILTER_KIND_IMAGE,
    .summary = "1 when the image's source URL contains a banned word, else 0 (0 without a URL)",
    .source = "OBELICS build_obelics/04_merge_web_docs_with_images.py URL_BAN_WORDS",
    .enabled = true,
    .params = ban_params,
    .init = ban_init,
    .fini = ban_fini,
    .score = ban_score,
};

static const struct filter_param decodes_params[] = {
    { "min", FILTER_PARAM_NUMBER, "1", "1 = the image must decode completely", 0, 1 },
    FILTER_PARAMS_END,
};
const struct filter_ops flt_img_decodes = {
    .name = "img_decodes",
    .kind = FILTER_KIND_IMAGE,
    .summary = "1 when the whole image decodes (a truncated file is 0), else 0",
    .source = "ours: a picture that does not decode is not training data",
    .enabled = true,
    .flags = FILTER_NEEDS_PIXELS,
    .params = decodes_params,
    .score = decodes_score,
};

/* 2.0 on the 0..255 luma scale: JPEG noise on a flat colour stays well
 * below 1, while a foggy, low-contrast photo is still above 5. */
static const struct filter_param uniform_params[] = {
    { "min", FILTER_PARAM_NUMBER, "2", "lowest luma standard deviation kept (0..255)", 0, 255 },
    FILTER_PARAMS_END,
};
const struct filter_ops flt_img_uniform = {
    .name = "img_uniform",
    .kind = FILTER_KIND_IMAGE,
    .summary = "standard deviation of the luma over all pixels (Pillow's RGB->L weights)",
    .source = "ours: flat colour and blank placeholders score below 1",
    .enabled = true,
    .flags = FILTER_NEEDS_PIXELS,
    .params = uniform_params,
    .score = uniform_score,
};

/* 2.0: gray JPEGs stored as colour carry a chroma of about 1 from
 * rounding; any real colour photo averages far above 5. */
static const struct filter_param grayscale_params[] = {
    { "min", FILTER_PARAM_NUMBER, "2", "lowest mean chroma kept (0..255)", 0, 255 },
    FILTER_PARAMS_END,
};
const struct filter_ops flt_img_grayscale = {
    .name = "img_grayscale",
    .kind = FILTER_KIND_IMAGE,
    .summary = "mean of max(R,G,B) - min(R,G,B) per pixel; 0 for a gray header",
    .source = "ours; off by default (OBELICS keeps grayscale images)",
    .enabled = false,
    .flags = FILTER_NEEDS_PIXELS,
    .params = grayscale_params,
    .score = grayscale_score,
};
