/* idf2_cpu_avx512_inl: the small AVX-512 helpers shared by the kernel
 * files of the "avx512" backend row (idf2_cpu_avx512.c, idf2_cpu_q8.c,
 * idf2_cpu_bf16mm.c): their target attribute macros, tail masks, the fixed
 * fold of a zmm's 16 lanes and the tile store built on it.  Internal: only
 * those .c files include it.
 *
 * lane_sum's fold order (halves 8, 4, 2, 1) is part of the batch-invariance
 * contract: every kernel that folds per-lane partial sums into one output
 * (the streaming bf16 tile, the Q8_0/Q4_0 tiles) and bf16mm's outer product,
 * which replays the same pairing over whole zmm (its bit-reversed slice
 * order), must pair lanes exactly so, or a row alone and the same row in a
 * batch give different bits.  One copy keeps them from drifting apart.
 *
 * Target.  An includer may define IDF2_AVX512_TARGET (a target attribute
 * string) before including; the default is the full set of the row
 * (F/BW/VL/DQ, BF16, VNNI, FMA, F16C).  bf16mm.c leaves out VNNI and F16C,
 * which it does not use.  The helpers here take the includer's target, so
 * that they inline into its functions with gcc and clang alike (an
 * always_inline function may not need features its caller lacks).  Callers
 * check idf2_avx512_usable() first. */
#ifndef VC_SYNTH_IDF2_CPU_AVX512_INL_H
#define VC_SYNTH_IDF2_CPU_AVX512_INL_H

#include <immintrin.h>
#include <stddef.h>

#ifndef IDF2_AVX512_TARGET
#    define IDF2_AVX512_TARGET "avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx512vnni,fma,f16c"
#endif
#define KFN  static __attribute__((target(IDF2_AVX512_TARGET)))
#define KINL static inline __attribute__((always_inline, target(IDF2_AVX512_TARGET)))
/* OpenMP regions live in plain functions and call KFN functions only: clang
 * does not give a region's outlined body its function's target attribute. */

/* Mask of the first min(left, 16) lanes. */
static inline __mmask16 tail16(size_t left)
{
    return left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1);
}

/* Mask of the first min(left, 32) 16-bit lanes. */
static inline __mmask32 tail32(size_t left)
{
    return left >= 32 ? 0xFFFFFFFFu : (__mmask32)((1u << left) - 1);
}

/* The fixed fold of 16 lanes: halves 8, 4, 2, 1 (see above: a contract). */
KINL float lane_sum(__m512 a)
{
    __m256 r8 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
    __m128 r4 = _mm_add_ps(_mm256_castps256_ps128(r8), _mm256_extractf128_ps(r8, 1));
    __m128 r2 = _mm_add_ps(r4, _mm_movehl_ps(r4, r4));
    return _mm_cvtss_f32(_mm_add_ss(r2, _mm_shuffle_ps(r2, r2, 1)));
}

/* One activation row of a tile: y[c] = lane_sum(acc[c]) (+ bias[c]) for
 * the NR weight rows c of the tile. */
KINL void tile_store_row(const int NR, float *y, const __m512 *acc, const float *bias)
{
    _Pragma("GCC unroll 8") for (int c = 0; c < NR; c++)
    {
        const float v = lane_sum(acc[c]);
        y[c] = bias ? v + bias[c] : v;
    }
}

#endif
