/* idf2_kernels: the "vec" row of the backend table (synth/idf2_backend.h):
 * float32 kernels on 8-lane vectors for matmuls with f32 and bf16 weights
 * (bf16 widened exactly, in registers for decode-sized inputs and into a
 * per-thread block of the workspace for larger ones) and a tiled attention
 * (two products per block of 32 queries).  Every dot product goes through
 * one tile routine whose lane layout and combine order are the same for any
 * tile size, which is what makes results independent of the batch shape,
 * the thread count and (attention) the chunks of a prefill.  The norms, activations, add and RoPE
 * are the reference's, run on one slice of rows or elements per thread.  Other operations and
 * formats are inherited. */
#ifndef VC_SYNTH_IDF2_KERNELS_H
#define VC_SYNTH_IDF2_KERNELS_H

#include "synth/idf2_backend.h"

extern const struct idf2_ops idf2_vec_ops;

#endif
