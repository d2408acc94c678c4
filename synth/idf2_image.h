/* idf2_image: the Idefics2 image processor (SPEC §4), bit-exact against
 * transformers' PIL-based Idefics2ImageProcessor: decoding to RGB as
 * Pillow + convert_to_rgb see the file, splitting into four
 * crops + the whole image, the longest/shortest-edge target size, Pillow's
 * antialiased BILINEAR resample in fixed point, rescale and normalize in
 * float32, bottom/right padding to the batch maximum, and the pixel and
 * patch masks.
 *
 * Images come in decoded (core/img.h); Pillow's Image.open does not apply
 * EXIF orientation, so idf2_image_decode decodes with IMG_DECODE_NO_ORIENT.
 * Sizes are bounded by the decoder's struct img_limits and by the
 * processor's longest/shortest edge; every buffer size is overflow-checked.
 * This module never touches weights and never composites alpha itself
 * (core/img does, once for the project). */
#ifndef VC_SYNTH_IDF2_IMAGE_H
#define VC_SYNTH_IDF2_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/img.h"
#include "core/vc_err.h"
#include "synth/idf2_config.h"

/* Decodes JPEG/PNG/WebP bytes the way the reference sees them: Pillow's
 * Image.open applies no EXIF rotation, and transformers' convert_to_rgb
 * composites transparency over white with Pillow's AlphaComposite
 * arithmetic, which img_decode's default RGB output reproduces.  *out is
 * owned (img_release), 3 channels. */
enum vc_status idf2_image_decode(const uint8_t *data, size_t size, const struct img_limits *limits,
                                 struct img *out, struct vc_err *err);

/* Pillow's Image.resize((out_w, out_h), BILINEAR) on 8-bit RGB, bit for bit
 * (SPEC §4.4): separable antialiased triangle filter, horizontal pass first,
 * 22-bit fixed-point coefficients, rounding to uint8 between the passes.
 * `in` must have 3 channels.  *out is owned (img_release). */
enum vc_status idf2_image_resize(const struct img *in, uint32_t out_w, uint32_t out_h,
                                 struct img *out, struct vc_err *err);

/* The processor's resize target for a w x h image (SPEC §4.3, computed in
 * doubles with truncation exactly as transformers does). */
void idf2_image_target_size(uint32_t w, uint32_t h, int longest_edge, int shortest_edge,
                            uint32_t *out_w, uint32_t *out_h);

/* A preprocessed batch: every image (after splitting) normalized and padded
 * at the bottom/right with 0.0 to the largest height and width. */
struct idf2_pixels {
    size_t n_images;        /* after splitting: 5 per source image when splitting */
    uint32_t height, width; /* Hmax, Wmax */
    float *values;          /* (n_images, 3, height, width), channels R, G, B; owned */
    uint8_t *mask;          /* (n_images, height, width): 1 = real pixel; owned */
    uint32_t *real_h;       /* (n_images): real (resized) height, top-left; owned */
    uint32_t *real_w;       /* (n_images): real width; owned */
};

/* Runs the processor over `n_src` decoded RGB images (3 channels, in
 * prompt order; for a batch of prompts pass all their images so that the
 * padding is to the batch maximum) with the settings of `cfg`: crops come
 * out in the order TL, TR, BL, BR, whole.  Only resample 2 (BILINEAR) is
 * supported; do_convert_rgb is moot since the input is RGB already.  Without do_pad all images must
 * end up the same size.  On success *out owns its buffers (idf2_pixels_free); on failure it holds
 * nothing. */
enum vc_status idf2_image_preprocess(const struct idf2_preproc_config *cfg,
                                     const struct img *images, size_t n_src,
                                     struct idf2_pixels *out, struct vc_err *err);
void idf2_pixels_free(struct idf2_pixels *px);

/* The vision tower's patch mask (SPEC §5.1): patch (r, c) of image i is
 * real iff all patch_size^2 pixels of its cell are real; cells beyond
 * (height / patch_size) x (width / patch_size) are ignored.  *mask is owned
 * (free()): (n_images, *grid_h, *grid_w), 1 = real patch. */
enum vc_status idf2_pixels_patch_mask(const struct idf2_pixels *px, int patch_size, uint8_t **mask,
                                      uint32_t *grid_h, uint32_t *grid_w, struct vc_err *err);

#endif
