/* idf2_cpu_avx512: AVX-512 BF16/VNNI matmul and tiled attention.
 *
 * bf16 matmul of one or two activation rows (decode), streaming each
 * weight once from memory as stored: a tile is MR <= 2 activation rows x NR
 * weight rows over the whole of K; accumulator (r, c) is one zmm whose 16
 * lanes each follow a fixed slice of K (input pair 2l, 2l+1 of every
 * 32-input chunk), folded at the end by lane_sum in a fixed order.  Three
 * or more rows (prefill, vision, batched decode) go to the outer-product
 * kernel of synth/idf2_cpu_bf16mm.c, which computes every output by the
 * same chain of operations, so output (m, n) does not depend on m, the
 * other rows or the thread count: the batch invariance the caption stage
 * needs.  Threads split weight rows into contiguous ranges; a thread walks
 * its rows in blocks of about MM_W_BLOCK bytes.
 *
 * bf16: activations are split once per call into two bf16 terms (hi =
 * bf16(x), lo = bf16(x - hi)) and each pair of inputs costs two vdpbf16ps,
 * hi then lo, accumulating in float32: products within 2^-16 of float32
 * ones, so the golden fixtures' float32 tolerances hold (one bf16 term, as
 * llama.cpp rounds, is off by ~1e-2 in the logits).  Decode is bound by
 * memory, so the second product is free there; prefill pays it.  The
 * bf16x1 format (the "avx512bf16" row) rounds activations once: one
 * vdpbf16ps per pair, about 1.8x the compute-bound throughput.
 * Q8_0 / Q4_0 (ggml's blocks) are dispatched to synth/idf2_cpu_q8.c. */
#include "idf2_cpu_avx512.h"

#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "synth/idf2_cpu_avx512_inl.h"
#include "synth/idf2_cpu_bf16mm.h"
#include "synth/idf2_cpu_q8.h"
#include "synth/idf2_kernels.h"

/* Bytes of a thread's weight block (L2 is 1 MiB per core here). */
#define MM_W_BLOCK (384u << 10)
/* Bytes ahead that a streaming tile prefetches. */
#define PF_AHEAD 1024
/* Activation rows (at most) and weight rows per tile. */
#define BF16_MR 2
#define MM_NR   4

bool idf2_avx512_usable(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16") &&
           __builtin_cpu_supports("avx512vnni");
}

/* Activation row stride in bytes: K padded to 64 inputs. */
static size_t xq_row(size_t K)
{
    return (K + 63) / 64 * 64;
}

static bool is_bf16(enum idf2_mm_fmt f)
{
    return f == IDF2_MM_BF16 || f == IDF2_MM_BF16X1;
}

/* Weight rows per cache block of a thread (a multiple of MM_NR). */
static size_t block_rows(size_t K)
{
    const size_t nb = MM_W_BLOCK / (K ? K * 2 : 1) / MM_NR * MM_NR;
    return nb < MM_NR ? MM_NR : nb;
}

size_t idf2_avx512_mm_ws(size_t m, size_t K, enum idf2_mm_fmt f, int nt)
{
    if (!is_bf16(f))
        return idf2_q8_mm_ws(m, K, nt);
    const size_t mine = idf2_align64(2 * (m < BF16_MR ? m : BF16_MR) * xq_row(K) * 2);
    const size_t outer = idf2_bf16mm_ws(m, K, f == IDF2_MM_BF16, nt);
    return mine > outer ? mine : outer;
}

/* ---- bf16 ---------------------------------------------------------------------------------- */

/* x as two bf16 terms, hi = bf16(x) and lo = bf16(x - hi) (round to
 * nearest even), zero padded to kp: hi + lo carries 16 of x's 24 mantissa
 * bits, so a product with a bf16 weight is within 2^-16 of the float32
 * one. */
KINL __m512 bf16_widen(__m256bh h)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)h), 16));
}

/* lo == NULL: hi only (the bf16x1 format). */
KFN void to_bf16_row(uint16_t *hi, uint16_t *lo, const float *x, size_t K, size_t kp)
{
    for (size_t k = 0; k < kp; k += 16) {
        const __m512 v = _mm512_maskz_loadu_ps(k < K ? tail16(K - k) : 0, x + k);
        const __m256bh h = _mm512_cvtneps_pbh(v);
        _mm256_storeu_si256((__m256i *)(hi + k), (__m256i)h);
        if (lo) {
            const __m256bh l = _mm512_cvtneps_pbh(_mm512_sub_ps(v, bf16_widen(h)));
            _mm256_storeu_si256((__m256i *)(lo + k), (__m256i)l);
        }
    }
}

/* A tile over all of K; weight c's inputs k .. k+31 at w + c * K + k,
 * inputs past K read as zero.  two: hi and lo activation terms (else hi
 * only). */
KINL void bf16_tile(const int MR, const int NR, const bool two, const uint16_t *xb, size_t ldx,
                    size_t xlo, const uint16_t *w, size_t K, float *y, size_t ldy,
                    const float *bias)
{
    __m512 acc[BF16_MR][MM_NR];
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
        _Pragma("GCC unroll 8") for (int c = 0; c < NR; c++) acc[r][c] = _mm512_setzero_ps();
    const size_t kfull = K / 32 * 32, kpad = (K + 31) / 32 * 32;
    for (size_t k = 0; k < kpad; k += 32) {
        const __mmask32 km = k < kfull ? 0xFFFFFFFFu : tail32(K - k);
        __m512bh wv[MM_NR];
        _Pragma("GCC unroll 8") for (int c = 0; c < NR; c++)
        {
            const uint16_t *src = w + (size_t)c * K + k;
            _mm_prefetch((const char *)src + PF_AHEAD, _MM_HINT_T0);
            wv[c] = (__m512bh)_mm512_maskz_loadu_epi16(km, src);
        }
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
        {
            const __m512bh xh = (__m512bh)_mm512_loadu_si512(xb + (size_t)r * ldx + k);
            if (two) {
                const __m512bh xl = (__m512bh)_mm512_loadu_si512(xb + (size_t)r * ldx + xlo + k);
                _Pragma("GCC unroll 8") for (int c = 0; c < NR; c++) acc[r][c] =
                    _mm512_dpbf16_ps(_mm512_dpbf16_ps(acc[r][c], xh, wv[c]), xl, wv[c]);
            } else {
                _Pragma("GCC unroll 8") for (int c = 0; c < NR; c++) acc[r][c] =
                    _mm512_dpbf16_ps(acc[r][c], xh, wv[c]);
            }
        }
    }
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
        tile_store_row(NR, y + (size_t)r * ldy, acc[r], bias);
}

#define BF16_CASE2(R_, C_, TWO_)                                                                   \
    case ((R_)*8 + (C_)) * 2 + (TWO_):                                                             \
        bf16_tile(R_, C_, TWO_, xb, ldx, xlo, w, K, y, ldy, bias);                                 \
        break;
#define BF16_CASE(R_, C_) BF16_CASE2(R_, C_, 0) BF16_CASE2(R_, C_, 1)

KFN void bf16_tile_any(int MR, int NR, bool two, const uint16_t *xb, size_t ldx, size_t xlo,
                       const uint16_t *w, size_t K, float *y, size_t ldy, const float *bias)
{
    switch ((MR * 8 + NR) * 2 + (int)two) {
        BF16_CASE(1, 1)
        BF16_CASE(1, 2)
        BF16_CASE(1, 3)
        BF16_CASE(1, 4)
        BF16_CASE(2, 1)
        BF16_CASE(2, 2)
        BF16_CASE(2, 3)
        BF16_CASE(2, 4)
    default:
        break;
    }
}

/* ---- driver -------------------------------------------------------------------------------- */

static void mm_prepare(const float *x, size_t m, size_t x_stride, size_t K, enum idf2_mm_fmt f,
                       void *ws)
{
    const size_t kp = xq_row(K);
    for (size_t r = 0; r < m; r++)
        to_bf16_row((uint16_t *)ws + r * kp,
                    f == IDF2_MM_BF16 ? (uint16_t *)ws + (m + r) * kp : NULL, x + r * x_stride, K,
                    kp);
}

void idf2_avx512_mm(float *y, const float *x, size_t m, size_t x_stride, const void *w, size_t N,
                    size_t K, enum idf2_mm_fmt f, const float *bias, void *ws, int nt)
{
    if (!is_bf16(f)) {
        idf2_q8_mm(y, x, m, x_stride, w, N, K, f == IDF2_MM_Q4_0, bias, ws, nt);
        return;
    }
    if (m == 0 || N == 0)
        return;
    const bool two = f == IDF2_MM_BF16;
    if (m > BF16_MR) {
        idf2_bf16mm(y, x, m, x_stride, w, N, K, two, bias, ws, nt);
        return;
    }
    const size_t kp = xq_row(K), nb = block_rows(K);
    mm_prepare(x, m, x_stride, K, f, ws);
    const int team = m * N * K < (1u << 18) ? 1 : (nt > 0 ? nt : 1);
#pragma omp parallel num_threads(team)
    {
        const size_t t = (size_t)omp_get_thread_num(), T = (size_t)omp_get_num_threads();
        const size_t n_groups = (N + MM_NR - 1) / MM_NR;
        const size_t n0 = n_groups * t / T * MM_NR,
                     n1 = idf2_min_sz(N, n_groups * (t + 1) / T * MM_NR);
        for (size_t b0 = n0; b0 < n1; b0 += nb) {
            const size_t b1 = idf2_min_sz(n1, b0 + nb);
            for (size_t j = b0; j < b1; j += MM_NR)
                bf16_tile_any((int)m, (int)idf2_min_sz(MM_NR, b1 - j), two, ws, kp, m * kp,
                              (const uint16_t *)w + j * K, K, y + j, N, bias ? bias + j : NULL);
        }
    }
}

/* ---- attention ----------------------------------------------------------------------------- */

/* Query rows per tile (AT_QG at a time through q k^T) and keys per
 * block: a block's keys and values (2 x 32 x hd floats) stay in L1 while
 * the tile's 32 rows pass over them. */
#define AT_QR 32
#define AT_QG 8
#define AT_KB 32

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

static size_t kt_cols(size_t n)
{
    return (n + AT_KB - 1) / AT_KB * AT_KB;
}

/* Per-thread tile: O [AT_QR][hd16], P [AT_QR][AT_KB]. */
static size_t attn_tile_floats(int hd)
{
    return (size_t)AT_QR * ((size_t)(hd + 15) / 16 * 16) + (size_t)AT_QR * AT_KB;
}

/* K transposed ([hd][n] per kv head) and V copied ([n][hd] per kv head,
 * contiguous: the caller's rows may be far apart), then per-thread tiles. */
static size_t kv_copy_bytes(size_t n_kv, int n_kv_heads, int hd)
{
    return idf2_align64((size_t)n_kv_heads * (size_t)hd * kt_cols(n_kv) * sizeof(float));
}

size_t idf2_avx512_attn_ws(size_t n_kv, int n_kv_heads, int hd, int nt)
{
    return 2 * kv_copy_bytes(n_kv, n_kv_heads, hd) +
           (size_t)(nt > 0 ? nt : 1) * idf2_align64(attn_tile_floats(hd) * sizeof(float));
}

/* O[r] = O[r] * corr[r] + sum_j P[r][j] v_j for rows r0 .. r0+3 (rows
 * past the tile's last query are computed on zeros and never read). */
KINL void attn_pv(const int nv, float *O, size_t ldo, const float *P, const float *corr, int r0,
                  const float *v, size_t stride, size_t nj, int hd)
{
    const __mmask16 lastm = (hd % 16) ? (__mmask16)((1u << (hd % 16)) - 1) : 0xFFFF;
    __m512 o[4][8];
    const int rows = 4;
    _Pragma("GCC unroll 8") for (int r = 0; r < rows; r++)
        _Pragma("GCC unroll 8") for (int t = 0; t < nv; t++) o[r][t] =
            _mm512_mul_ps(_mm512_loadu_ps(O + (size_t)(r0 + r) * ldo + (size_t)t * 16),
                          _mm512_set1_ps(corr[r0 + r]));
    for (size_t j = 0; j < nj; j++) {
        __m512 vv[8];
        _Pragma("GCC unroll 8") for (int t = 0; t < nv; t++) vv[t] =
            _mm512_maskz_loadu_ps(t == nv - 1 ? lastm : 0xFFFF, v + j * stride + (size_t)t * 16);
        _Pragma("GCC unroll 8") for (int r = 0; r < rows; r++)
        {
            __m512 pb = _mm512_set1_ps(P[(size_t)(r0 + r) * AT_KB + j]);
            _Pragma("GCC unroll 8") for (int t = 0; t < nv; t++) o[r][t] =
                _mm512_fmadd_ps(pb, vv[t], o[r][t]);
        }
    }
    _Pragma("GCC unroll 8") for (int r = 0; r < rows; r++)
        _Pragma("GCC unroll 8") for (int t = 0; t < nv; t++)
            _mm512_storeu_ps(O + (size_t)(r0 + r) * ldo + (size_t)t * 16, o[r][t]);
}

#define PV_CASE(NV_)                                                                               \
    case NV_:                                                                                      \
        attn_pv(NV_, O, ldo, P, corr, r0, v, stride, nj, hd);                                      \
        break;

/* hd <= 128 (checked by the caller). */
KFN void attn_pv_any(float *O, size_t ldo, const float *P, const float *corr, int r0,
                     const float *v, size_t stride, size_t nj, int hd)
{
    switch ((hd + 15) / 16) {
        PV_CASE(1)
        PV_CASE(2)
        PV_CASE(3)
        PV_CASE(4)
        PV_CASE(5)
        PV_CASE(6)
        PV_CASE(7)
        PV_CASE(8)
    default:
        break;
    }
}

KFN void attn_tile(float *out, size_t ldout, const float *q, size_t q_stride, size_t n_q,
                   const float *kt, size_t ldk, const float *v, size_t v_stride, size_t n,
                   size_t i0, int hd, float scale, const uint8_t *key_mask, float *tile)
{
    const size_t ldo = (size_t)(hd + 15) / 16 * 16;
    float *O = tile, *P = tile + AT_QR * ldo;
    const int R = (int)(n_q - i0 < AT_QR ? n_q - i0 : AT_QR);
    float mx[AT_QR], l[AT_QR], corr[AT_QR];
    for (int r = 0; r < AT_QR; r++) {
        mx[r] = -INFINITY;
        l[r] = 0;
        corr[r] = 1.0f;
    }
    memset(O, 0, (size_t)AT_QR * ldo * sizeof(float));
    memset(P, 0, (size_t)AT_QR * AT_KB * sizeof(float));
    for (size_t j0 = 0; j0 < n; j0 += AT_KB) {
        /* Keys past n and masked keys drop out. */
        __mmask16 km[2];
        for (int h = 0; h < 2; h++) {
            uint32_t bits = 0;
            for (int j = 0; j < 16; j++) {
                size_t jj = j0 + (size_t)h * 16 + (size_t)j;
                if (jj < n && (!key_mask || key_mask[jj]))
                    bits |= 1u << j;
            }
            km[h] = (__mmask16)bits;
        }
        const size_t nj = n - j0 < AT_KB ? n - j0 : AT_KB;
        for (int g0 = 0; g0 < R; g0 += AT_QG) {
            const float *qr[AT_QG];
            for (int r = 0; r < AT_QG; r++)
                qr[r] = q + (i0 + (size_t)(g0 + r < R ? g0 + r : R - 1)) * q_stride;
            __m512 s[AT_QG][2];
            _Pragma("GCC unroll 8") for (int r = 0; r < AT_QG; r++) s[r][0] = s[r][1] =
                _mm512_setzero_ps();
            for (int d = 0; d < hd; d++) {
                const __m512 k0 = _mm512_loadu_ps(kt + (size_t)d * ldk + j0);
                const __m512 k1 = _mm512_loadu_ps(kt + (size_t)d * ldk + j0 + 16);
                _Pragma("GCC unroll 8") for (int r = 0; r < AT_QG; r++)
                {
                    const __m512 qb = _mm512_set1_ps(qr[r][d]);
                    s[r][0] = _mm512_fmadd_ps(qb, k0, s[r][0]);
                    s[r][1] = _mm512_fmadd_ps(qb, k1, s[r][1]);
                }
            }
            for (int i = 0; i < AT_QG && g0 + i < R; i++) {
                const int r = g0 + i;
                const __m512 ninf = _mm512_set1_ps(-INFINITY), sc = _mm512_set1_ps(scale);
                __m512 x0 = _mm512_mask_mul_ps(ninf, km[0], s[i][0], sc);
                __m512 x1 = _mm512_mask_mul_ps(ninf, km[1], s[i][1], sc);
                float bm = _mm512_reduce_max_ps(_mm512_max_ps(x0, x1));
                float mn = bm > mx[r] ? bm : mx[r];
                if (mn == -INFINITY) {
                    corr[r] = 1.0f;
                    memset(P + (size_t)r * AT_KB, 0, AT_KB * sizeof(float));
                    continue;
                }
                corr[r] = expf(mx[r] - mn);
                const __m512 mv = _mm512_set1_ps(mn);
                __m512 p0 = vexp(_mm512_sub_ps(x0, mv)), p1 = vexp(_mm512_sub_ps(x1, mv));
                _mm512_storeu_ps(P + (size_t)r * AT_KB, p0);
                _mm512_storeu_ps(P + (size_t)r * AT_KB + 16, p1);
                l[r] = l[r] * corr[r] + _mm512_reduce_add_ps(_mm512_add_ps(p0, p1));
                mx[r] = mn;
            }
        }
        for (int r0 = 0; r0 < R; r0 += 4)
            attn_pv_any(O, ldo, P, corr, r0, v + j0 * v_stride, v_stride, nj, hd);
    }
    for (int r = 0; r < R; r++) {
        const float inv = l[r] > 0 ? 1.0f / l[r] : 0.0f;
        for (int t = 0; t < hd; t++)
            out[(i0 + (size_t)r) * ldout + (size_t)t] = O[(size_t)r * ldo + (size_t)t] * inv;
    }
}

void idf2_avx512_attention(float *out, const float *q, size_t q_stride, size_t n_q, const float *k,
                           const float *v, size_t kv_head_stride, size_t kv_row_stride, size_t n_kv,
                           int n_heads, int n_kv_heads, int hd, float scale,
                           const uint8_t *key_mask, void *ws, int nt)
{
    if (n_q == 0 || n_kv == 0)
        return;
    const size_t ldk = kt_cols(n_kv), D = (size_t)n_heads * (size_t)hd;
    const int group = n_heads / n_kv_heads;
    float *kt = ws, *vc = (float *)((char *)ws + kv_copy_bytes(n_kv, n_kv_heads, hd));
    char *tiles = (char *)vc + kv_copy_bytes(n_kv, n_kv_heads, hd);
    const size_t tile_bytes = idf2_align64(attn_tile_floats(hd) * sizeof(float));
    const long n_qt = (long)((n_q + AT_QR - 1) / AT_QR), items = n_qt * n_heads;
#pragma omp parallel num_threads(nt > 0 ? nt : 1)
    {
#pragma omp for schedule(static)
        for (long gj = 0; gj < (long)n_kv_heads * (long)ldk; gj++) {
            const size_t g = (size_t)gj / ldk, j = (size_t)gj % ldk;
            const float *kr = k + g * kv_head_stride + j * kv_row_stride;
            const float *vr = v + g * kv_head_stride + j * kv_row_stride;
            float *vd = vc + (g * ldk + j) * (size_t)hd;
            for (int d = 0; d < hd; d++) {
                kt[(g * (size_t)hd + (size_t)d) * ldk + j] = j < n_kv ? kr[d] : 0.0f;
                vd[d] = j < n_kv ? vr[d] : 0.0f;
            }
        }
        float *tile = (float *)(tiles + (size_t)omp_get_thread_num() * tile_bytes);
#pragma omp for schedule(static)
        for (long it = 0; it < items; it++) {
            const size_t h = (size_t)(it / n_qt), i0 = (size_t)(it % n_qt) * AT_QR;
            const size_t g = h / (size_t)group;
            attn_tile(out + h * (size_t)hd, D, q + h * (size_t)hd, q_stride, n_q,
                      kt + g * (size_t)hd * ldk, ldk, vc + g * ldk * (size_t)hd, (size_t)hd, n_kv,
                      i0, hd, scale, key_mask, tile);
        }
    }
}

/* ---- the backend row ----------------------------------------------------------------------- */

static void row_mm(float *y, const float *x, size_t n, const struct idf2_w *w, const float *bias,
                   const struct idf2_exec *ex, enum idf2_mm_fmt f)
{
    idf2_avx512_mm(y, x, n, (size_t)w->cols, w->data, (size_t)w->rows, (size_t)w->cols, f, bias,
                   ex->ws, ex->nt);
}

static void row_mm_bf16(float *y, const float *x, size_t n, const struct idf2_w *w,
                        const float *bias, const struct idf2_exec *ex)
{
    row_mm(y, x, n, w, bias, ex, IDF2_MM_BF16);
}

static void row_mm_bf16x1(float *y, const float *x, size_t n, const struct idf2_w *w,
                          const float *bias, const struct idf2_exec *ex)
{
    row_mm(y, x, n, w, bias, ex, IDF2_MM_BF16X1);
}

static void row_mm_q8_0(float *y, const float *x, size_t n, const struct idf2_w *w,
                        const float *bias, const struct idf2_exec *ex)
{
    row_mm(y, x, n, w, bias, ex, IDF2_MM_Q8_0);
}

static void row_mm_q4_0(float *y, const float *x, size_t n, const struct idf2_w *w,
                        const float *bias, const struct idf2_exec *ex)
{
    row_mm(y, x, n, w, bias, ex, IDF2_MM_Q4_0);
}

/* f32 weights go to the inherited (vec) matmul: its workspace counts too. */
static size_t row_mm_ws(size_t n, const struct idf2_w *w, int nt)
{
    switch (w->fmt) {
    case IDF2_WF_BF16:
        return idf2_avx512_mm_ws(n, (size_t)w->cols, IDF2_MM_BF16, nt);
    case IDF2_WF_Q8_0:
        return idf2_avx512_mm_ws(n, (size_t)w->cols, IDF2_MM_Q8_0, nt);
    case IDF2_WF_Q4_0:
        return idf2_avx512_mm_ws(n, (size_t)w->cols, IDF2_MM_Q4_0, nt);
    case IDF2_WF_F32:
        break;
    }
    return idf2_vec_ops.matmul_ws(n, w, nt);
}

/* Non-causal, unwindowed attention (vision tower, perceiver) is tiled
 * here; causal decoder attention goes to the vec row, whose workspace is
 * counted as well. */
static bool row_attn_tiled(const struct idf2_attn *a)
{
    return !a->causal && a->window == 0 && a->head_dim <= 128 && a->n_kv_heads > 0 &&
           a->n_heads % a->n_kv_heads == 0;
}

static void row_attention(float *out, const struct idf2_attn *a, const struct idf2_exec *ex)
{
    if (!row_attn_tiled(a)) {
        idf2_vec_ops.attention(out, a, ex);
        return;
    }
    idf2_avx512_attention(out, a->q, a->q_stride, a->n_q, a->k, a->v, a->kv_head_stride,
                          a->kv_row_stride, a->n_kv, a->n_heads, a->n_kv_heads, a->head_dim,
                          a->scale, a->key_mask, ex->ws, ex->nt);
}

static size_t row_attention_ws(size_t n_q, size_t n_kv, int n_kv_heads, int head_dim, int nt)
{
    const size_t mine = idf2_avx512_attn_ws(n_kv, n_kv_heads, head_dim, nt);
    const size_t vec = idf2_vec_ops.attention_ws(n_q, n_kv, n_kv_heads, head_dim, nt);
    return mine > vec ? mine : vec;
}

/* SiLU and GELU (tanh form) as x * sigmoid(a): a = x, or a = 2 sqrt(2/pi)
 * (x + 0.044715 x^3), since 0.5 (1 + tanh(z)) = sigmoid(2z); sigmoid from
 * vexp(-|a|), so no exp overflows.  Within a few ulp of the reference's
 * expf/tanhf forms (the vision MLP spent more time in libm's tanhf than
 * in its matmuls).  u != NULL: times u (SwiGLU's middle). */
KFN void act_span(float *x, const float *u, size_t n, enum idf2_act act)
{
    const __m512 one = _mm512_set1_ps(1.0f), c1 = _mm512_set1_ps(1.5957691216057308f),
                 c3 = _mm512_set1_ps(1.5957691216057308f * 0.044715f);
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail16(n - i);
        const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        const __m512 a = act == IDF2_ACT_SILU
                             ? v
                             : _mm512_mul_ps(v, _mm512_fmadd_ps(c3, _mm512_mul_ps(v, v), c1));
        const __m512 t = vexp(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(a)));
        const __mmask16 neg = _mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_LT_OQ);
        const __m512 sig = _mm512_div_ps(_mm512_mask_blend_ps(neg, one, t), _mm512_add_ps(one, t));
        __m512 y = _mm512_mul_ps(v, sig);
        if (u)
            y = _mm512_mul_ps(y, _mm512_maskz_loadu_ps(m, u + i));
        _mm512_mask_storeu_ps(x + i, m, y);
    }
}

static bool act_fast(enum idf2_act act)
{
    return act == IDF2_ACT_SILU || act == IDF2_ACT_GELU_TANH;
}

/* Threads take contiguous ranges of whole 16-float vectors. */
static void act_par(float *x, const float *u, size_t n, enum idf2_act act, int nt)
{
    const size_t nv = (n + 15) / 16;
#pragma omp parallel num_threads(n >= 65536 && nt > 1 ? nt : 1)
    {
        const size_t t = (size_t)omp_get_thread_num(), T = (size_t)omp_get_num_threads();
        const size_t i0 = nv * t / T * 16, i1 = idf2_min_sz(n, nv * (t + 1) / T * 16);
        if (i1 > i0)
            act_span(x + i0, u ? u + i0 : NULL, i1 - i0, act);
    }
}

static void row_act(float *x, size_t n, enum idf2_act act, const struct idf2_exec *ex)
{
    if (act_fast(act))
        act_par(x, NULL, n, act, ex->nt);
    else
        idf2_vec_ops.act(x, n, act, ex);
}

static void row_act_mul(float *g, const float *u, size_t n, enum idf2_act act,
                        const struct idf2_exec *ex)
{
    if (act_fast(act))
        act_par(g, u, n, act, ex->nt);
    else
        idf2_vec_ops.act_mul(g, u, n, act, ex);
}

/* Error relative to sum |x w|: bf16, 2^-16 per product plus float32
 * accumulation; Q8_0/Q4_0, the int8 activation codes (1/254 of a block's
 * largest activation each). */
const struct idf2_ops idf2_avx512_ops = {
    .name = "avx512",
    .tol = { [IDF2_WF_F32] = 0,
             [IDF2_WF_BF16] = 1e-2,
             [IDF2_WF_Q8_0] = 3e-2,
             [IDF2_WF_Q4_0] = 3e-2 },
    .tol_other = 1e-5,
    .matmul = { [IDF2_WF_BF16] = row_mm_bf16,
                [IDF2_WF_Q8_0] = row_mm_q8_0,
                [IDF2_WF_Q4_0] = row_mm_q4_0 },
    .matmul_ws = row_mm_ws,
    .attention = row_attention,
    .attention_ws = row_attention_ws,
    .act = row_act,
    .act_mul = row_act_mul,
};

/* The avx512 row with activations rounded once to bf16 before a bf16
 * matmul (one vdpbf16ps per input pair, llama.cpp's numerics): about
 * twice the compute-bound throughput (prefill, vision, batched decode),
 * products within 2^-9 of float32 ones.  Everything else is the avx512
 * row's. */
const struct idf2_ops idf2_avx512bf16_ops = {
    .name = "avx512bf16",
    .approx = true,
    .tol = { [IDF2_WF_BF16] = 1e-2 },
    .matmul = { [IDF2_WF_BF16] = row_mm_bf16x1 },
};
