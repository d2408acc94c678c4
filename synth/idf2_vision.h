/* idf2_vision: the Idefics2 vision tower (SPEC §5): patch embedding as a
 * matmul over flattened patches, NaViT-style fractional position ids,
 * pre-LayerNorm encoder layers with bidirectional attention, and the post
 * LayerNorm.
 *
 * Real patches only: the real patches of a padded image are the top-left
 * nh x nw block (SPEC §5.1), and since HF masks padding keys with
 * float32-min (exp of which is exactly 0), encoding the real block alone
 * gives the same rows.  Padding rows are never computed.  Several images
 * (a split image's crops, or the images of several requests) go through
 * one pass as consecutive row segments:
 * every matmul, norm and activation is row-wise and batch invariant, and
 * attention runs per segment, so each image's rows are bit for bit those
 * of encoding it alone, while each weight is packed once per pass instead
 * of once per image.
 * Limits: nh, nw <= N = image_size / patch_size (the position table). */
#ifndef VC_SYNTH_IDF2_VISION_H
#define VC_SYNTH_IDF2_VISION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/vc_err.h"
#include "synth/idf2_backend.h"
#include "synth/idf2_config.h"
#include "synth/idf2_weights.h"

/* Position-embedding rows of an nh x nw real grid on an N x N table,
 * row-major into out[nh*nw], with the transformers 4.40-4.54 bucketing
 * (SPEC §5.3): torch's float32 recipe, and for N = 70 the integer form
 * with the AVX2 exceptions the released model saw. */
void idf2_vision_position_ids(int N, int nh, int nw, int32_t *out);

/* The buffers of one encode, carved from a context's arena for images of up
 * to max_patches real patches. */
struct idf2_vision_scratch {
    size_t max_patches;
    float *x, *h, *att; /* (max_patches, max(Dv, C*p*p)) */
    float *qkv;         /* (max_patches, 3 Dv): q, k, v side by side per row (fused) or one after
                           another (three matmuls) */
    float *qkv_b;       /* (3 Dv): the fused matmul's bias */
    bool qkv_apart;     /* three matmuls even where one would do (benchmarks compare) */
    bool ep_apart;      /* GELU and the residual adds as passes of their own even where the
                           row fuses them into the matmuls (benchmarks compare) */
    float *mlp;         /* (min(max_patches, 1664), Iv): one MLP chunk */
    int32_t *pos;       /* (max_patches) */
};
void idf2_vision_scratch_carve(const struct idf2_vision_config *cfg, size_t max_patches,
                               struct idf2_carve *c, struct idf2_vision_scratch *s);
/* A layer's q, k and v as one [3 Dv, Dv] matrix (idf2_w_stack) when they
 * stack for ex's row and have biases: one matmul gives q, k and v bit for
 * bit; false: use three matmuls. */
bool idf2_vision_fused_qkv(const struct idf2_ops *ops, const struct idf2_vision_layer *L,
                           struct idf2_w *qkv);

/* Operation workspace bytes an encode of up to max_patches needs. */
size_t idf2_vision_ws(const struct idf2_ops *ops, const struct idf2_vision_config *cfg,
                      const struct idf2_vision_weights *w, size_t max_patches, int nt);

/* One image of a pass: the real nh x nw patch grid in the top-left corner
 * of its padded canvas (C, height, width) float32.  Images of one pass may
 * lie on canvases of different sizes (several requests' images). */
struct idf2_vision_image {
    const float *pixels;
    uint32_t nh, nw;
    uint32_t height, width;
};

/* Encodes the real patches of n images in one pass: out gets image 0's
 * nh*nw rows, then image 1's, ... (each (.., Dv), after post_layernorm)
 * and s->pos their position ids in the same order.  VC_EUSAGE when a grid
 * exceeds its canvas or the position table, or the patches together exceed
 * the scratch. */
enum vc_status idf2_vision_encode(const struct idf2_exec *ex, const struct idf2_vision_config *cfg,
                                  const struct idf2_vision_weights *w,
                                  struct idf2_vision_scratch *s, const struct idf2_vision_image *im,
                                  size_t n, float *out, struct vc_err *err);

/* How many of the images im[0..n) (n >= 1) from the first go into one
 * pass: as many as fit max_patches together, at least one. */
size_t idf2_vision_pass_images(const struct idf2_vision_image *im, size_t n, size_t max_patches);

#endif
