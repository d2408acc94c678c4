/* idf2_cpu_avx2mm: the "avx2" row's float32 / bf16 matmul (layout and
 * numerics in the header).  Owns the panel layout and its packing; never
 * allocates (per-call packing goes to the caller's workspace).
 *
 * A tile is R activation rows (up to MR) by P panels (R * P <= 6: 12 ymm
 * accumulators, two per row and panel) over one K block; a weight step is
 * one 32-byte load (bf16) widened by a shift and a mask, then 2 R FMAs per
 * panel against broadcast activations.  Threads take contiguous ranges of
 * panels; a thread runs its range in chunks of panels (W_CHUNK bytes a K
 * block, kept in L2) and passes every row tile over a chunk's block before
 * the next block.  With up to MR rows (decode) a chunk is the P panels of
 * one tile, so each panel streams from memory front to back with 2 R P
 * independent chains in flight; up to SMALL_N rows, one panel. */
#include "idf2_cpu_avx2mm.h"

#include <immintrin.h>
#include <omp.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define T_AVX2 "avx2,fma"
#define KFN    static __attribute__((target(T_AVX2)))
#define KINL   static inline __attribute__((always_inline, target(T_AVX2)))
/* OpenMP regions live in plain functions and call KFN functions only
 * (clang does not give an outlined region its function's target). */

#define NR 16 /* weight rows per panel: two ymm of outputs */
#define MR 6  /* activation rows per tile: 12 accumulators of the 16 ymm */
#define KC IDF2_AVX2MM_KC
/* A chunk's K block of panels: in L2 (512 KiB on Zen 1) with the row
 * tiles' activations streaming past it. */
#define W_CHUNK (192u << 10)
/* Below this many multiply-adds one thread does the call. */
#define PAR_MIN_MACS (1u << 18)
/* Up to this many rows (batched decode) a chunk is one panel: it streams
 * from memory front to back, and the rows' activations (at most 1.8 MB at
 * K = 14336) come from L2/L3 for each. */
#define SMALL_N 32

static size_t min_sz(size_t a, size_t b)
{
    return a < b ? a : b;
}

static size_t elem_bytes(enum idf2_wfmt f)
{
    return f == IDF2_WF_BF16 ? 2 : 4;
}

/* Panels [g0, g0 + ng) over inputs [k0, k1) to dst, one panel after the
 * other (k1 - k0 steps each): the load-time layout with k0 = 0, k1 = K. */
static void pack_slice(void *dst, const struct idf2_w *w, size_t g0, size_t ng, size_t k0,
                       size_t k1)
{
    const size_t N = (size_t)w->rows, K = (size_t)w->cols, kc = k1 - k0;
    const bool bf16 = w->fmt == IDF2_WF_BF16;
    for (size_t g = 0; g < ng; g++)
        for (size_t j = 0; j < NR; j++) {
            const size_t row = (g0 + g) * NR + j;
            if (bf16) {
                /* Row j in dword j % 8's low (j < 8) or high half. */
                uint16_t *o = (uint16_t *)dst + g * kc * NR + (j < 8 ? 2 * j : 2 * (j - 8) + 1);
                const uint16_t *s = (const uint16_t *)w->data + row * K + k0;
                for (size_t k = 0; k < kc; k++)
                    o[k * NR] = row < N ? s[k] : 0;
            } else {
                float *o = (float *)dst + g * kc * NR + j;
                const float *s = (const float *)w->data + row * K + k0;
                for (size_t k = 0; k < kc; k++)
                    o[k * NR] = row < N ? s[k] : 0.0f;
            }
        }
}

/* y (R rows at stride ldy, nv outputs from the first panel's) = the block
 * sums of inputs [k, k + kc): stored (first block) or added to y in
 * order, then the bias (last block, bias non-NULL). */
KINL void tile(const int R, const int P, const bool bf16, const float *x, size_t ldx,
               const char *wp, size_t pstride, size_t kc, float *y, size_t ldy, size_t nv,
               bool first, const float *bias)
{
    __m256 acc[MR][2];
    _Pragma("GCC unroll 6") for (int i = 0; i < R * P; i++) acc[i][0] = acc[i][1] =
        _mm256_setzero_ps();
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
    for (size_t k = 0; k < kc; k++) {
        _Pragma("GCC unroll 6") for (int p = 0; p < P; p++)
        {
            __m256 w0, w1;
            if (bf16) {
                const __m256i v =
                    _mm256_loadu_si256((const __m256i *)(wp + (size_t)p * pstride) + k);
                w0 = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
                w1 = _mm256_castsi256_ps(_mm256_and_si256(v, hi));
            } else {
                const float *f = (const float *)(wp + (size_t)p * pstride) + k * NR;
                w0 = _mm256_loadu_ps(f);
                w1 = _mm256_loadu_ps(f + 8);
            }
            _Pragma("GCC unroll 6") for (int r = 0; r < R; r++)
            {
                const __m256 xb = _mm256_broadcast_ss(x + (size_t)r * ldx + k);
                acc[r * P + p][0] = _mm256_fmadd_ps(xb, w0, acc[r * P + p][0]);
                acc[r * P + p][1] = _mm256_fmadd_ps(xb, w1, acc[r * P + p][1]);
            }
        }
    }
    _Pragma("GCC unroll 6") for (int r = 0; r < R; r++)
        _Pragma("GCC unroll 6") for (int p = 0; p < P; p++)
    {
        float *yo = y + (size_t)r * ldy + (size_t)p * NR;
        const float *bo = bias ? bias + (size_t)p * NR : NULL;
        const size_t n_out = min_sz(NR, nv - (size_t)p * NR);
        /* A partial last panel goes through copies of its outputs. */
        float ty[NR] = { 0 }, tb[NR] = { 0 };
        float *dst = yo;
        if (n_out < NR) {
            if (!first)
                memcpy(ty, yo, n_out * sizeof ty[0]);
            if (bo)
                memcpy(tb, bo, n_out * sizeof tb[0]);
            bo = bo ? tb : NULL;
            dst = ty;
        }
        for (int h = 0; h < 2; h++) {
            __m256 v = acc[r * P + p][h];
            if (!first)
                v = _mm256_add_ps(_mm256_loadu_ps(dst + 8 * h), v);
            if (bo)
                v = _mm256_add_ps(v, _mm256_loadu_ps(bo + 8 * h));
            _mm256_storeu_ps(dst + 8 * h, v);
        }
        if (n_out < NR)
            memcpy(yo, ty, n_out * sizeof ty[0]);
    }
}

#define TILE_CASE(R_, P_, B_)                                                                      \
    case ((R_)*8 + (P_)) * 2 + (B_):                                                               \
        tile(R_, P_, B_, x, ldx, wp, pstride, kc, y, ldy, nv, first, bias);                        \
        break;
#define TILE_CASES(R_, P_) TILE_CASE(R_, P_, 0) TILE_CASE(R_, P_, 1)

KFN void tile_any(int R, int P, bool bf16, const float *x, size_t ldx, const char *wp,
                  size_t pstride, size_t kc, float *y, size_t ldy, size_t nv, bool first,
                  const float *bias)
{
    switch ((R * 8 + P) * 2 + (int)bf16) {
        TILE_CASES(1, 1)
        TILE_CASES(1, 2)
        TILE_CASES(1, 3)
        TILE_CASES(1, 4)
        TILE_CASES(1, 5)
        TILE_CASES(1, 6)
        TILE_CASES(2, 1)
        TILE_CASES(2, 2)
        TILE_CASES(2, 3)
        TILE_CASES(3, 1)
        TILE_CASES(3, 2)
        TILE_CASES(4, 1)
        TILE_CASES(5, 1)
        TILE_CASES(6, 1)
    default:
        break;
    }
}

/* One thread's panels [ga, gb); ws: W_CHUNK bytes for packing per call. */
static void run_range(float *y, const float *x, size_t n, const struct idf2_w *w, const float *bias,
                      size_t ga, size_t gb, char *ws)
{
    const size_t N = (size_t)w->rows, K = (size_t)w->cols, es = elem_bytes(w->fmt);
    const bool bf16 = w->fmt == IDF2_WF_BF16;
    const bool packed = w->packed && w->packed_by == idf2_avx2mm_pack;
    const size_t ncb = n <= MR ? MR / n : n <= SMALL_N ? 1 : W_CHUNK / (KC * NR * es);
    for (size_t c0 = ga; c0 < gb; c0 += ncb) {
        const size_t c1 = min_sz(gb, c0 + ncb);
        for (size_t k0 = 0; k0 < K; k0 += KC) {
            const size_t kc = min_sz(KC, K - k0);
            const char *base = ws;
            size_t ps = kc * NR * es;
            if (packed) {
                ps = K * NR * es;
                base = (const char *)w->packed + c0 * ps + k0 * NR * es;
            } else {
                pack_slice(ws, w, c0, c1 - c0, k0, k0 + kc);
            }
            const float *b = k0 + kc >= K ? bias : NULL;
            for (size_t m0 = 0; m0 < n; m0 += MR) {
                const size_t R = min_sz(MR, n - m0), P = MR / R;
                for (size_t q = c0; q < c1; q += P) {
                    const size_t p = min_sz(P, c1 - q);
                    tile_any((int)R, (int)p, bf16, x + m0 * K + k0, K, base + (q - c0) * ps, ps, kc,
                             y + m0 * N + q * NR, N, min_sz(N, (q + p) * NR) - q * NR, k0 == 0,
                             b ? b + q * NR : NULL);
                }
            }
        }
    }
}

void idf2_avx2mm_matmul(float *y, const float *x, size_t n, const struct idf2_w *w,
                        const float *bias, const struct idf2_exec *ex)
{
    const size_t K = (size_t)w->cols, N = (size_t)w->rows, G = (N + NR - 1) / NR;
    if (n == 0 || N == 0)
        return;
    int team = (double)n * (double)N * (double)K < PAR_MIN_MACS ? 1 : ex->nt;
    team = team > 0 ? team : 1;
#pragma omp parallel num_threads(team)
    {
        const size_t t = (size_t)omp_get_thread_num(), T = (size_t)omp_get_num_threads();
        run_range(y, x, n, w, bias, G * t / T, G * (t + 1) / T, (char *)ex->ws + t * W_CHUNK);
    }
}

size_t idf2_avx2mm_ws(const struct idf2_w *w, int nt)
{
    (void)w;
    return (size_t)(nt > 0 ? nt : 1) * W_CHUNK;
}

size_t idf2_avx2mm_pack_bytes(const struct idf2_w *w)
{
    if (w->fmt != IDF2_WF_F32 && w->fmt != IDF2_WF_BF16)
        return 0;
    return ((size_t)w->rows + NR - 1) / NR * NR * (size_t)w->cols * elem_bytes(w->fmt);
}

void idf2_avx2mm_pack(void *dst, const struct idf2_w *w, int nt)
{
    const size_t G = ((size_t)w->rows + NR - 1) / NR, K = (size_t)w->cols;
    const size_t ps = K * NR * elem_bytes(w->fmt);
#pragma omp parallel for schedule(static) num_threads(nt > 0 ? nt : 1)
    for (size_t g = 0; g < G; g++)
        pack_slice((char *)dst + g * ps, w, g, 1, 0, K);
}
