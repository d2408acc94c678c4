/* idf2_cpu_avx512_inl: the small AVX-512 helpers shared by the kernel
 * files of the "avx512" backend row (idf2_cpu_avx512.c, idf2_cpu_q8.c,
 * idf2_cpu_bf16mm.c, idf2_cpu_ops512.c): their target attribute macros,
 * tail masks, the fixed fold of a zmm's 16 lanes and the tile store built
 * on it, e^x and the activations.  Internal: only those .c files include
 * it.
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
#include <stdbool.h>
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

/* e^x in float32 for x <= 0 (and -inf): 2^n e^r with |r| <= ln2/2, degree-7
 * Taylor polynomial (error below 1e-8 relative); 0 below -87.3. */
KINL __m512 vexp(__m512 x)
{
    const __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_GE_OQ);
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.3f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_maskz_scalef_ps(live, p, n);
}

/* SiLU (silu) or GELU, tanh form, of v as v * sigmoid(a): a = v, or a =
 * 2 sqrt(2/pi) (v + 0.044715 v^3), since 0.5 (1 + tanh(z)) = sigmoid(2z);
 * sigmoid from vexp(-|a|), so no exp overflows.  Within a few ulp of the
 * reference's expf/tanhf forms (the vision MLP spent more time in libm's
 * tanhf than in its matmuls).  One copy: the activation pass
 * (synth/idf2_cpu_ops512.c) and the outer product's fused store
 * (synth/idf2_cpu_bf16mm.c) must give the same bits. */
KINL __m512 act_vec(__m512 v, bool silu)
{
    const __m512 one = _mm512_set1_ps(1.0f), c1 = _mm512_set1_ps(1.5957691216057308f),
                 c3 = _mm512_set1_ps(1.5957691216057308f * 0.044715f);
    const __m512 a = silu ? v : _mm512_mul_ps(v, _mm512_fmadd_ps(c3, _mm512_mul_ps(v, v), c1));
    const __m512 t = vexp(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(a)));
    const __mmask16 neg = _mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 sig = _mm512_div_ps(_mm512_mask_blend_ps(neg, one, t), _mm512_add_ps(one, t));
    return _mm512_mul_ps(v, sig);
}

#endif
