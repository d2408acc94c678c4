/* idf2_cpu_avx2q: the "avx2" row's matmul over ggml-block weights (Q8_0,
 * Q4_0 and their x16 twins, synth/idf2_backend.h) for CPUs with AVX2, FMA
 * and F16C but no AVX-512: quantization of the activations to int8
 * blocks, the register tiles and their driver.  synth/idf2_cpu_avx2.c
 * registers these entries in its row.
 *
 * Compiled with per-function target attributes, so the library builds
 * anywhere; call only when idf2_avx2_usable() says the CPU has AVX2/FMA.
 *
 * Numerics: those of the avx512 row (synth/idf2_cpu_q8.h), bit for bit.
 * Activations are quantized per call in blocks of 32 (d = amax / 127,
 * q = round(x / d)); each block's dot product with the weight codes is an
 * exact integer, and output (m, n) is
 *   acc = 0; for each block b in order: acc = fma(float(dot_b), d_w * d_x, acc);
 *   y = acc + bias,
 * a function of x's row m and w's row n only: the same for any row count,
 * tile shape or thread count (batch invariance), and the same for a matrix
 * in ggml's layout and in its x16 twin.  Error against the reference: the
 * int8 activation codes, 1/254 of a block's largest activation each. */
#ifndef VC_SYNTH_IDF2_CPU_AVX2Q_H
#define VC_SYNTH_IDF2_CPU_AVX2Q_H

#include <stddef.h>

#include "synth/idf2_backend.h"

/* Workspace bytes of idf2_avx2q_matmul for n rows by w (the quantized
 * activations); non-decreasing in n and w->cols. */
size_t idf2_avx2q_matmul_ws(size_t n, const struct idf2_w *w);
/* y[n, w->rows] = x[n, w->cols] W^T (+ bias) for w in Q8_0, Q4_0, Q8_0X16
 * or Q4_0X16; ex->ws holds idf2_avx2q_matmul_ws bytes. */
void idf2_avx2q_matmul(float *y, const float *x, size_t n, const struct idf2_w *w,
                       const float *bias, const struct idf2_exec *ex);

#endif
