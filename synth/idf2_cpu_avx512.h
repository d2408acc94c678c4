/* idf2_cpu_avx512: the AVX-512 (BF16 + VNNI) kernels of the CPU backend:
 * matmul over bf16 and ggml-block (Q8_0, Q4_0) weights, and the two avx512
 * rows' tables (their attention, norms and activations are in
 * synth/idf2_cpu_ops512.h).
 *
 * Compiled with per-function target attributes, so the library builds
 * and runs anywhere; call only when idf2_avx512_usable() says the CPU has
 * AVX-512 F/BW/VL/BF16/VNNI.
 *
 * Numerics (batch invariance): output (m, n) of a matmul is a fixed chain
 * of operations on x's row m and w's row n; it does not depend on m, on the
 * other rows or on the thread count.  bf16: activations are split once per
 * call into bf16 hi + lo terms (16 mantissa bits), two vdpbf16ps per input
 * pair accumulate in float32; bf16x1 rounds them once (one vdpbf16ps).
 * Q8_0/Q4_0 run in synth/idf2_cpu_q8.c (its header gives their numerics). */
#ifndef VC_SYNTH_IDF2_CPU_AVX512_H
#define VC_SYNTH_IDF2_CPU_AVX512_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "synth/idf2_backend.h"

/* The backend row "avx512" (synth/idf2_backend.h): matmul for bf16, Q8_0
 * and Q4_0, non-causal attention, norms, SiLU/GELU; the rest is
 * inherited. */
extern const struct idf2_ops idf2_avx512_ops;
/* The row "avx512bf16": avx512 with bf16 activations in bf16 matmuls
 * (IDF2_MM_BF16X1) and bf16 dot products in non-causal attention; not
 * exact to float32 (synth/idf2_backend.h). */
extern const struct idf2_ops idf2_avx512bf16_ops;

bool idf2_avx512_usable(void);

/* Weight layouts: bf16 row-major [N, K]; Q8_0 / Q4_0 rows of ceil(K/32)
 * ggml blocks (a half scale, then 32 int8 or 16 bytes of nibbles; the last
 * block zero-filled past K); Q8_0X16 / Q4_0X16 as synth/idf2_backend.h
 * lays them out. */
enum idf2_mm_fmt {
    IDF2_MM_BF16,
    IDF2_MM_Q8_0,
    IDF2_MM_Q4_0,
    IDF2_MM_BF16X1, /* bf16 weights, activations rounded once to bf16 */
    /* The same blocks, 16 rows interleaved (IDF2_WF_Q8_0X16 / Q4_0X16). */
    IDF2_MM_Q8_0X16,
    IDF2_MM_Q4_0X16,
};

/* Workspace bytes of idf2_avx512_mm for m rows of K inputs at nt threads;
 * non-decreasing in m, K and nt. */
size_t idf2_avx512_mm_ws(size_t m, size_t K, enum idf2_mm_fmt f, int nt);
/* y[m][N] (+ bias) = x[m][K] W^T; x rows at x_stride floats.  ws: 64-byte
 * aligned, idf2_avx512_mm_ws bytes.  nt: OpenMP threads (>= 1). */
void idf2_avx512_mm(float *y, const float *x, size_t m, size_t x_stride, const void *w, size_t N,
                    size_t K, enum idf2_mm_fmt f, const float *bias, void *ws, int nt);

#endif
