/* idf2_cpu_q8: the AVX-512 VNNI matmul over ggml-block weights (Q8_0 and
 * Q4_0, synth/idf2_backend.h) of the "avx512" backend row: quantization of
 * the activations to int8 blocks, the register tiles and their driver
 * (thread split, cache blocking).  idf2_cpu_avx512.c dispatches its Q8_0 /
 * Q4_0 formats here; bf16 tiles and attention stay there.
 *
 * Compiled with per-function target attributes, so the library builds and
 * runs anywhere; call only when idf2_avx512_usable() says the CPU has
 * AVX-512 F/BW/VL/BF16/VNNI.
 *
 * Numerics (batch invariance): activations are quantized per call in
 * blocks of 32 (d = amax/127, q = round(x/d)); each block's dot product is
 * an exact integer, scaled by d_w * d_x and added in float32 in block
 * order (one fma per block), so output (m, n) depends only on x's row m
 * and w's row n, not on m, the other rows or the thread count.  Weights
 * are read in ggml's row layout; 3 or more rows repack them per call into
 * per-thread panels (workspace), 1-2 rows stream them as stored.  The x16
 * formats (16 rows interleaved at load, synth/idf2_backend.h) are read as
 * stored at every row count: idf2_q8x_mm. */
#ifndef VC_SYNTH_IDF2_CPU_Q8_H
#define VC_SYNTH_IDF2_CPU_Q8_H

#include <stdbool.h>
#include <stddef.h>

/* Workspace bytes of idf2_q8_mm for m rows of K inputs at nt threads;
 * non-decreasing in m, K and nt. */
size_t idf2_q8_mm_ws(size_t m, size_t K, int nt);
/* y[m][N] (+ bias) = x[m][K] W^T for W of N rows of ceil(K/32) Q8_0 (q4
 * false) or Q4_0 (q4 true) blocks; x rows at x_stride floats.  ws: 64-byte
 * aligned, idf2_q8_mm_ws bytes.  nt: OpenMP threads (>= 1). */
void idf2_q8_mm(float *y, const float *x, size_t m, size_t x_stride, const void *w, size_t N,
                size_t K, bool q4, const float *bias, void *ws, int nt);

/* The same product for W in the interleaved formats Q8_0X16 / Q4_0X16
 * (synth/idf2_backend.h), read as stored at every row count: the same
 * bits as idf2_q8_mm over the same blocks in ggml's layout.  ws: 64-byte
 * aligned, idf2_q8x_mm_ws bytes (non-decreasing in m and K). */
size_t idf2_q8x_mm_ws(size_t m, size_t K);
void idf2_q8x_mm(float *y, const float *x, size_t m, size_t x_stride, const void *w, size_t N,
                 size_t K, bool q4, const float *bias, void *ws, int nt);

#endif
