/* idf2_cpu_avx2: AVX2 + FMA matmul for f32 and bf16 weights (the "avx2"
 * row; see the header for the numerics).
 *
 * A tile is MR activation rows x NR weight rows over the whole of K, one
 * ymm accumulator per output (MR * NR = 12 of the 16 registers, plus NR
 * weight vectors and one activation vector).  Threads split weight rows
 * into contiguous ranges of whole groups of NR; a thread walks its range in
 * blocks of about W_BLOCK bytes and passes every activation tile over a
 * block before the next, so a block is read from memory once per call.  No
 * workspace: bf16 is widened in registers (two instructions per 8
 * weights). */
#include "idf2_cpu_avx2.h"

#include <immintrin.h>
#include <omp.h>
#include <string.h>

#include "synth/idf2_kernels.h"

#define T_AVX2 "avx2,fma"
#define KFN    static __attribute__((target(T_AVX2)))
#define KINL   static inline __attribute__((always_inline, target(T_AVX2)))
/* OpenMP regions live in plain functions and call KFN functions only
 * (clang does not give an outlined region its function's target). */

#define MR      4
#define NR      3
#define W_BLOCK (256u << 10)
/* Below this many multiply-adds one thread does the call. */
#define PAR_MIN_MACS (1u << 18)

bool idf2_avx2_usable(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

static size_t min_sz(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* Lanes of [k, k + n) (n <= 8) as a mask for maskload. */
KINL __m256i lanes(size_t n)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), idx);
}

/* 8 weights from k on (n of them real, the rest zero). */
KINL __m256 load_w(const void *row, size_t k, size_t n, bool bf16)
{
    if (!bf16)
        return n == 8 ? _mm256_loadu_ps((const float *)row + k)
                      : _mm256_maskload_ps((const float *)row + k, lanes(n));
    __m128i h;
    if (n == 8) {
        h = _mm_loadu_si128((const __m128i *)((const uint16_t *)row + k));
    } else {
        uint16_t t[8] = { 0 };
        memcpy(t, (const uint16_t *)row + k, n * sizeof t[0]);
        memcpy(&h, t, sizeof h);
    }
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* The fixed fold of 8 lanes: halves 4, 2, 1. */
KINL float lane_sum(__m256 a)
{
    const __m128 r4 = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    const __m128 r2 = _mm_add_ps(r4, _mm_movehl_ps(r4, r4));
    return _mm_cvtss_f32(_mm_add_ss(r2, _mm_shuffle_ps(r2, r2, 1)));
}

KINL void tile(const int R, const int C, const bool bf16, const float *x, size_t ldx, const void *w,
               size_t w_row_bytes, size_t K, float *y, size_t ldy, const float *bias)
{
    __m256 acc[MR][NR];
    _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)
        _Pragma("GCC unroll 4") for (int c = 0; c < C; c++) acc[r][c] = _mm256_setzero_ps();
    for (size_t k = 0; k < K; k += 8) {
        const size_t n = min_sz(8, K - k);
        __m256 wv[NR];
        _Pragma("GCC unroll 4") for (int c = 0; c < C; c++) wv[c] =
            load_w((const char *)w + (size_t)c * w_row_bytes, k, n, bf16);
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)
        {
            const float *xr = x + (size_t)r * ldx + k;
            const __m256 xv = n == 8 ? _mm256_loadu_ps(xr) : _mm256_maskload_ps(xr, lanes(n));
            _Pragma("GCC unroll 4") for (int c = 0; c < C; c++) acc[r][c] =
                _mm256_fmadd_ps(xv, wv[c], acc[r][c]);
        }
    }
    _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)
        _Pragma("GCC unroll 4") for (int c = 0; c < C; c++)
    {
        const float v = lane_sum(acc[r][c]);
        y[(size_t)r * ldy + (size_t)c] = bias ? v + bias[c] : v;
    }
}

#define TILE_CASE(R_, C_, B_)                                                                      \
    case ((R_)*4 + (C_)) * 2 + (B_):                                                               \
        tile(R_, C_, B_, x, ldx, w, w_row_bytes, K, y, ldy, bias);                                 \
        break;
#define TILE_CASES(R_, C_) TILE_CASE(R_, C_, 0) TILE_CASE(R_, C_, 1)

KFN void tile_any(int R, int C, bool bf16, const float *x, size_t ldx, const void *w,
                  size_t w_row_bytes, size_t K, float *y, size_t ldy, const float *bias)
{
    switch ((R * 4 + C) * 2 + (int)bf16) {
        TILE_CASES(1, 1)
        TILE_CASES(1, 2)
        TILE_CASES(1, 3)
        TILE_CASES(2, 1)
        TILE_CASES(2, 2)
        TILE_CASES(2, 3)
        TILE_CASES(3, 1)
        TILE_CASES(3, 2)
        TILE_CASES(3, 3)
        TILE_CASES(4, 1)
        TILE_CASES(4, 2)
        TILE_CASES(4, 3)
    default:
        break;
    }
}

static void avx2_matmul(float *y, const float *x, size_t n, const struct idf2_w *w,
                        const float *bias, const struct idf2_exec *ex)
{
    const size_t K = (size_t)w->cols, N = (size_t)w->rows;
    if (n == 0 || N == 0)
        return;
    const bool bf16 = w->fmt == IDF2_WF_BF16;
    const size_t wrb = K * (bf16 ? 2 : 4);
    size_t nb = W_BLOCK / (wrb ? wrb : 1) / NR * NR;
    nb = nb < NR ? NR : nb;
    const int team = (double)n * (double)N * (double)K < PAR_MIN_MACS ? 1 : ex->nt;
#pragma omp parallel num_threads(team > 0 ? team : 1)
    {
        const size_t t = (size_t)omp_get_thread_num(), T = (size_t)omp_get_num_threads();
        const size_t n_groups = (N + NR - 1) / NR;
        const size_t n0 = n_groups * t / T * NR, n1 = min_sz(N, n_groups * (t + 1) / T * NR);
        for (size_t b0 = n0; b0 < n1; b0 += nb) {
            const size_t b1 = min_sz(n1, b0 + nb);
            for (size_t m0 = 0; m0 < n; m0 += MR)
                for (size_t j = b0; j < b1; j += NR)
                    tile_any((int)min_sz(MR, n - m0), (int)min_sz(NR, b1 - j), bf16, x + m0 * K, K,
                             (const char *)w->data + j * wrb, wrb, K, y + m0 * N + j, N,
                             bias ? bias + j : NULL);
        }
    }
}

/* f32 and bf16 need none; the block formats run vec's inherited matmul. */
static size_t avx2_matmul_ws(size_t n, const struct idf2_w *w, int nt)
{
    return w->fmt == IDF2_WF_F32 || w->fmt == IDF2_WF_BF16 ? 0 : idf2_vec_ops.matmul_ws(n, w, nt);
}

/* Float32 accumulation in 8 lanes over up to ~15k inputs: well inside
 * 1e-5 of the sum of magnitudes. */
const struct idf2_ops idf2_avx2_ops = {
    .name = "avx2",
    .tol = { [IDF2_WF_F32] = 1e-5, [IDF2_WF_BF16] = 1e-5 },
    .matmul = { [IDF2_WF_F32] = avx2_matmul, [IDF2_WF_BF16] = avx2_matmul },
    .matmul_ws = avx2_matmul_ws,
};
