/* flt_image: image filters.  Most score the header alone (format, width,
 * height, aspect ratio, pixel count, byte size, source URL); three need
 * the decoded pixels (decodes completely, not near-uniform, not
 * grayscale) and are flagged FILTER_NEEDS_PIXELS so the chain decodes an
 * image only when one of them is enabled.
 *
 * Defaults: OBELICS's config_filter_web_documents.yaml (formats, 150..20000
 * px sides, aspect 1/2..2) and URL_BAN_WORDS; Pillow's decompression-bomb
 * limit for the pixel count (core/img.h); the pixel thresholds are ours,
 * with the reasoning next to each. */
#ifndef VC_FILTERS_FLT_IMAGE_H
#define VC_FILTERS_FLT_IMAGE_H

#include "filter.h"

extern const struct filter_ops flt_img_format;
extern const struct filter_ops flt_img_width;
extern const struct filter_ops flt_img_height;
extern const struct filter_ops flt_img_aspect;
extern const struct filter_ops flt_img_pixels;
extern const struct filter_ops flt_img_bytes;
extern const struct filter_ops flt_img_url_ban;
extern const struct filter_ops flt_img_decodes;
extern const struct filter_ops flt_img_uniform;
extern const struct filter_ops flt_img_grayscale;

#endif
