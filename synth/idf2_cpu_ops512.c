/* idf2_cpu_ops512: the operations of the avx512 rows other than matmul:
 * flash-style non-causal attention in float32 (the exact "avx512" row) and
 * with bf16 dot products (the approximate "avx512bf16" row), LayerNorm and
 * RMSNorm, SiLU/GELU-tanh.  The matmuls and the row tables are in
 * synth/idf2_cpu_avx512.c.
 *
 * Every operation splits whole rows (or whole 16-float vectors) over the
 * threads and computes each by the same code whatever the split, so its
 * results do not depend on the thread count or on the other rows (the
 * batch invariance of synth/idf2_backend.h). */
#include "idf2_cpu_ops512.h"

#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "synth/idf2_cpu_avx512_inl.h"
#include "synth/idf2_kernels.h"

/* Query rows per tile (AT_QG at a time through q k^T) and keys per
 * block: a block's keys and values (2 x 32 x hd floats) stay in L1 while
 * the tile's 32 rows pass over them. */
#define AT_QR 32
#define AT_QG 8
#define AT_KB 32

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

/* ---- attention with bf16 dot products (the approximate row) ---------------------------------
 *
 * The online softmax of the float32 tile above, with q k^T and P V as
 * vdpbf16ps: k, v and the probabilities rounded once to bf16 (8 mantissa
 * bits, as a bf16 engine computes attention), q * scale as two bf16 terms
 * (hi + lo, as the exact matmul's activations: two vdpbf16ps per pair of
 * dimensions), products accumulated in float32; the softmax (max, exp,
 * sums, the rescaling of the output rows) stays float32.  q's second term
 * costs a third more work and keeps the scores, which the exponential
 * amplifies, within k's rounding: with q rounded once too, the tiny
 * fixture's chat_single_split_jpeg picked another first token (its top two
 * logits are 0.05 apart).
 *
 * Keys go in blocks of AB_KB for the packing and q k^T, and in spans of
 * AB_SB blocks for the softmax: per span a group of AB_QG query rows gets
 * all its scores (4 x 4 zmm of accumulators per block, K pair-major: for
 * each pair of dimensions, the block's keys' two values side by side, one
 * zmm of 16 keys per vdpbf16ps against a broadcast pair of q), one max per
 * row, the exponentials as bf16 P, then P V over the span's key pairs with
 * the group's output rows in registers (V key-pair-major: for each pair of
 * keys and 16 dimensions, the two keys' values side by side).  The online
 * rescaling thus runs once per span instead of once per block: a span of
 * 1,024 keys covers a 378 px image (729) and the perceiver (793) at once,
 * and its K and V (295 KB at 72 dimensions) stay in L2 while a tile's
 * AB_QR rows pass.  Only a span's live 16-key chunks and key pairs are
 * computed, and a head dimension of 8 past a multiple of 16 (SigLIP's 72)
 * takes its last 8 dimensions of P V in a ymm. */
#define AB_QR 64
#define AB_QG 4
#define AB_KB 64
#define AB_SB 16
#define AB_SK (AB_SB * AB_KB)

/* Dimension pairs (hd rounded up to even) and 16-dimension chunks. */
static size_t ab_pairs(int hd)
{
    return ((size_t)hd + 1) / 2;
}

static size_t ab_chunks(int hd)
{
    return ((size_t)hd + 15) / 16;
}

static size_t ab_blocks(size_t n_kv)
{
    return (n_kv + AB_KB - 1) / AB_KB;
}

/* bf16 values of one kv head's K (or V) over all blocks. */
static size_t ab_k_elems(size_t n_kv, int hd)
{
    return ab_blocks(n_kv) * ab_pairs(hd) * AB_KB * 2;
}

static size_t ab_v_elems(size_t n_kv, int hd)
{
    return ab_blocks(n_kv) * (AB_KB / 2) * ab_chunks(hd) * 32;
}

/* bf16 values per q term of a tile row: the pairs, padded to 16. */
static size_t ab_q_ld(int hd)
{
    return (2 * ab_pairs(hd) + 15) / 16 * 16;
}

/* Per-thread tile: O [AB_QR][chunks*16], l [AB_QR][16] and the scores
 * S [AB_QG][AB_SK] floats, then q [AB_QR][hi, lo][ab_q_ld] and
 * P [AB_QG][AB_SK] bf16. */
static size_t ab_tile_bytes(int hd)
{
    return idf2_align64(((size_t)AB_QR * (ab_chunks(hd) * 16 + 16) + AB_QG * AB_SK) *
                            sizeof(float) +
                        ((size_t)AB_QR * 2 * ab_q_ld(hd) + AB_QG * AB_SK) * sizeof(uint16_t));
}

static size_t ab_kv_bytes(size_t n_kv, int n_kv_heads, int hd)
{
    return idf2_align64((size_t)n_kv_heads * ab_k_elems(n_kv, hd) * sizeof(uint16_t)) +
           idf2_align64((size_t)n_kv_heads * ab_v_elems(n_kv, hd) * sizeof(uint16_t)) +
           idf2_align64(ab_blocks(n_kv) * (AB_KB / 16) * sizeof(__mmask16));
}

size_t idf2_avx512_attn_bf16_ws(size_t n_kv, int n_kv_heads, int hd, int nt)
{
    return ab_kv_bytes(n_kv, n_kv_heads, hd) + (size_t)(nt > 0 ? nt : 1) * ab_tile_bytes(hd);
}

/* Dimensions [d, d + 16) of a row as bf16 (zero past hd). */
KINL __m256i ab_row16(const float *row, size_t d, int hd)
{
    const __mmask16 m = d < (size_t)hd ? tail16((size_t)hd - d) : 0;
    return (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, row + d));
}

/* Dimensions [d, d + 16) of a q row times scale as two bf16 terms, hi =
 * bf16(x) at hi and lo = bf16(x - hi) at hi + lo_off. */
KINL void ab_q16(uint16_t *hi, size_t lo_off, const float *row, size_t d, int hd, float scale)
{
    const __mmask16 m = d < (size_t)hd ? tail16((size_t)hd - d) : 0;
    const __m512 x = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, row + d), _mm512_set1_ps(scale));
    const __m256bh h = _mm512_cvtneps_pbh(x);
    const __m512 hw = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)h), 16));
    _mm256_storeu_si256((__m256i *)hi, (__m256i)h);
    _mm256_storeu_si256((__m256i *)(hi + lo_off),
                        (__m256i)_mm512_cvtneps_pbh(_mm512_sub_ps(x, hw)));
}

/* Rows ahead that the packing and the tile's q rounding prefetch. */
#define AB_PF 8

KINL void ab_prefetch_row(const float *row, int hd)
{
    for (int d = 0; d < hd; d += 16)
        _mm_prefetch((const char *)(row + d), _MM_HINT_T0);
    _mm_prefetch((const char *)(row + hd - 1), _MM_HINT_T0);
}

/* Block b of kv head g: K pair-major (the 32-bit pair of dimensions 2p,
 * 2p + 1 of key j at word p * AB_KB + j), V key-pair-major (dimension d of
 * keys 2i, 2i + 1 as the 32-bit word (i * nc + d / 16) * 16 + d % 16),
 * keys past n_kv zero; and (km != NULL) the block's key masks. */
KFN void ab_pack_block(uint32_t *kp, uint32_t *vp, __mmask16 *km, const float *k, const float *v,
                       size_t row_stride, size_t n_kv, int hd, size_t b, const uint8_t *key_mask)
{
    const size_t np = ab_pairs(hd), nc = ab_chunks(hd), j0 = b * AB_KB;
    uint32_t row[64]; /* hd <= 128: 64 pairs */
    for (size_t j = 0; j < AB_KB; j++) {
        const size_t jj = j0 + j;
        /* The rows are far apart (a head's slice of whole q|k|v rows): the
         * hardware prefetcher does not follow, and waiting for each row
         * took half of the packing. */
        if (jj + AB_PF < n_kv)
            ab_prefetch_row(k + (jj + AB_PF) * row_stride, hd);
        if (jj < n_kv) /* read by the loop below */
            ab_prefetch_row(v + jj * row_stride, hd);
        for (size_t d = 0; d < 2 * np; d += 16) {
            const __m256i h =
                jj < n_kv ? ab_row16(k + jj * row_stride, d, hd) : _mm256_setzero_si256();
            _mm256_storeu_si256((__m256i *)(row + d / 2), h);
        }
        for (size_t p = 0; p < np; p++)
            kp[p * AB_KB + j] = row[p];
    }
    for (size_t j = 0; j < AB_KB; j += 2)
        for (size_t t = 0; t < nc; t++) {
            const size_t jj = j0 + j;
            const __m256i a =
                jj < n_kv ? ab_row16(v + jj * row_stride, t * 16, hd) : _mm256_setzero_si256();
            const __m256i c = jj + 1 < n_kv ? ab_row16(v + (jj + 1) * row_stride, t * 16, hd)
                                            : _mm256_setzero_si256();
            const __m512i w = _mm512_or_si512(_mm512_cvtepu16_epi32(a),
                                              _mm512_slli_epi32(_mm512_cvtepu16_epi32(c), 16));
            _mm512_storeu_si512(vp + ((j / 2) * nc + t) * 16, w);
        }
    if (km)
        for (int h = 0; h < AB_KB / 16; h++) {
            uint32_t bits = 0;
            for (int j = 0; j < 16; j++) {
                const size_t jj = j0 + (size_t)h * 16 + (size_t)j;
                if (jj < n_kv && (!key_mask || key_mask[jj]))
                    bits |= 1u << j;
            }
            km[h] = (__mmask16)bits;
        }
}

KINL int32_t ab_word(const uint16_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Scores of the group's AB_QG rows (q: hi then lo terms, qld apart, row
 * stride 2 * qld) against the first NK 16-key chunks of one block, masked
 * keys -inf, into S (rows AB_SK apart), and each row's running max vector
 * bm. */
KINL void ab_qk(const int NK, float *S, __m512 *bm, const uint16_t *q, size_t qld, size_t np,
                const uint16_t *kp, const __mmask16 *km)
{
    __m512 s[AB_QG][AB_KB / 16];
    _Pragma("GCC unroll 8") for (int r = 0; r < AB_QG; r++)
        _Pragma("GCC unroll 8") for (int c = 0; c < NK; c++) s[r][c] = _mm512_setzero_ps();
    for (size_t d = 0; d < np; d++) {
        __m512bh kv[AB_KB / 16];
        _Pragma("GCC unroll 8") for (int c = 0; c < NK; c++) kv[c] =
            (__m512bh)_mm512_loadu_si512(kp + d * AB_KB * 2 + (size_t)c * 32);
        _Pragma("GCC unroll 8") for (int r = 0; r < AB_QG; r++)
        {
            const __m512bh qb =
                (__m512bh)_mm512_set1_epi32(ab_word(q + (size_t)r * 2 * qld + 2 * d));
            const __m512bh ql =
                (__m512bh)_mm512_set1_epi32(ab_word(q + (size_t)r * 2 * qld + qld + 2 * d));
            _Pragma("GCC unroll 8") for (int c = 0; c < NK; c++) s[r][c] =
                _mm512_dpbf16_ps(_mm512_dpbf16_ps(s[r][c], qb, kv[c]), ql, kv[c]);
        }
    }
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    _Pragma("GCC unroll 8") for (int r = 0; r < AB_QG; r++)
        _Pragma("GCC unroll 8") for (int c = 0; c < NK; c++)
    {
        const __m512 x = _mm512_mask_mov_ps(ninf, km[c], s[r][c]);
        _mm512_storeu_ps(S + (size_t)r * AB_SK + (size_t)c * 16, x);
        bm[r] = _mm512_max_ps(bm[r], x);
    }
}

#define QK_CASE(NK_)                                                                               \
    case NK_:                                                                                      \
        ab_qk(NK_, S, bm, q, qld, np, kp, km);                                                     \
        break;

KFN void ab_qk_any(int nk, float *S, __m512 *bm, const uint16_t *q, size_t qld, size_t np,
                   const uint16_t *kp, const __mmask16 *km)
{
    switch (nk) {
        QK_CASE(1)
        QK_CASE(2)
        QK_CASE(3)
        QK_CASE(4)
    default:
        break;
    }
}

/* O[r] = O[r] * corr[r] + P[r] V over nk2 key pairs for the group's
 * AB_QG rows: NC zmm of 16 dimensions per row, then (HALF) a ymm of 8. */
KINL void ab_pv(const int NC, const int HALF, float *O, size_t ldo, const uint16_t *P,
                const float *corr, const uint16_t *vp, size_t nk2)
{
    const size_t vld = (size_t)(NC + HALF) * 32;
    __m512 o[AB_QG][8];
    __m256 oh[AB_QG];
    _Pragma("GCC unroll 8") for (int r = 0; r < AB_QG; r++)
    {
        const __m512 c = _mm512_set1_ps(corr[r]);
        _Pragma("GCC unroll 8") for (int t = 0; t < NC; t++) o[r][t] =
            _mm512_mul_ps(_mm512_loadu_ps(O + (size_t)r * ldo + (size_t)t * 16), c);
        if (HALF)
            oh[r] = _mm256_mul_ps(_mm256_loadu_ps(O + (size_t)r * ldo + (size_t)NC * 16),
                                  _mm512_castps512_ps256(c));
    }
    for (size_t jp = 0; jp < nk2; jp++) {
        __m512bh vv[8];
        __m256bh vh = (__m256bh)_mm256_setzero_si256();
        _Pragma("GCC unroll 8") for (int t = 0; t < NC; t++) vv[t] =
            (__m512bh)_mm512_loadu_si512(vp + jp * vld + (size_t)t * 32);
        if (HALF)
            vh = (__m256bh)_mm256_loadu_si256((const __m256i *)(vp + jp * vld + (size_t)NC * 32));
        _Pragma("GCC unroll 8") for (int r = 0; r < AB_QG; r++)
        {
            const int32_t w = ab_word(P + (size_t)r * AB_SK + 2 * jp);
            const __m512bh pb = (__m512bh)_mm512_set1_epi32(w);
            _Pragma("GCC unroll 8") for (int t = 0; t < NC; t++) o[r][t] =
                _mm512_dpbf16_ps(o[r][t], pb, vv[t]);
            if (HALF)
                oh[r] = _mm256_dpbf16_ps(oh[r], (__m256bh)_mm256_set1_epi32(w), vh);
        }
    }
    _Pragma("GCC unroll 8") for (int r = 0; r < AB_QG; r++)
    {
        _Pragma("GCC unroll 8") for (int t = 0; t < NC; t++)
            _mm512_storeu_ps(O + (size_t)r * ldo + (size_t)t * 16, o[r][t]);
        if (HALF)
            _mm256_storeu_ps(O + (size_t)r * ldo + (size_t)NC * 16, oh[r]);
    }
}

#define PV_CASE2(NC_, HALF_)                                                                       \
    case 2 * (NC_) + (HALF_):                                                                      \
        ab_pv(NC_, HALF_, O, ldo, P, corr, vp, nk2);                                               \
        break;

/* hd <= 128 (checked by the caller): nc chunks, the last one half when
 * hd % 16 is 1..8. */
KFN void ab_pv_any(int hd, float *O, size_t ldo, const uint16_t *P, const float *corr,
                   const uint16_t *vp, size_t nk2)
{
    const int half = hd % 16 != 0 && hd % 16 <= 8;
    switch (2 * ((hd + 15) / 16 - half) + half) {
        PV_CASE2(0, 1)
        PV_CASE2(1, 0)
        PV_CASE2(1, 1)
        PV_CASE2(2, 0)
        PV_CASE2(2, 1)
        PV_CASE2(3, 0)
        PV_CASE2(3, 1)
        PV_CASE2(4, 0)
        PV_CASE2(4, 1)
        PV_CASE2(5, 0)
        PV_CASE2(5, 1)
        PV_CASE2(6, 0)
        PV_CASE2(6, 1)
        PV_CASE2(7, 0)
        PV_CASE2(7, 1)
        PV_CASE2(8, 0)
    default:
        break;
    }
}

/* One group of AB_QG query rows over the keys [j0, j0 + nk) (a span,
 * j0 a multiple of AB_SK): scores, the online softmax (mx, l), then P V
 * into O. */
KFN void ab_group_span(int hd, float *O, size_t ldo, float *l, float *mx, const uint16_t *q,
                       size_t qld, const uint16_t *kp, const uint16_t *vp, const __mmask16 *km,
                       size_t j0, size_t nk, float *S, uint16_t *P)
{
    const size_t np = ab_pairs(hd), nc = ab_chunks(hd), nch = (nk + 15) / 16;
    __m512 bm[AB_QG];
    for (int r = 0; r < AB_QG; r++)
        bm[r] = _mm512_set1_ps(-INFINITY);
    for (size_t c0 = 0; c0 < nch; c0 += AB_KB / 16) {
        const size_t b = (j0 + c0 * 16) / AB_KB;
        const size_t nkc = nch - c0 < AB_KB / 16 ? nch - c0 : AB_KB / 16;
        ab_qk_any((int)nkc, S + c0 * 16, bm, q, qld, np, kp + b * np * AB_KB * 2,
                  km + b * (AB_KB / 16));
    }
    float corr[AB_QG];
    for (int r = 0; r < AB_QG; r++) {
        const float *sr = S + (size_t)r * AB_SK;
        uint16_t *pr = P + (size_t)r * AB_SK;
        const float m = _mm512_reduce_max_ps(bm[r]);
        corr[r] = 1.0f;
        if (m > mx[r]) {
            corr[r] = expf(mx[r] - m);
            mx[r] = m;
        }
        if (mx[r] == -INFINITY) { /* no live key so far: p = 0 */
            memset(pr, 0, nch * 16 * sizeof(uint16_t));
            continue;
        }
        const __m512 mv = _mm512_set1_ps(mx[r]);
        __m512 sum = _mm512_setzero_ps();
        for (size_t c = 0; c < nch; c += 2) {
            const __m512 p0 = vexp(_mm512_sub_ps(_mm512_loadu_ps(sr + c * 16), mv));
            const __m512 p1 = c + 1 < nch
                                  ? vexp(_mm512_sub_ps(_mm512_loadu_ps(sr + c * 16 + 16), mv))
                                  : _mm512_setzero_ps();
            sum = _mm512_add_ps(sum, _mm512_add_ps(p0, p1));
            _mm512_storeu_si512(pr + c * 16, (__m512i)_mm512_cvtne2ps_pbh(p1, p0));
        }
        float *lr = l + (size_t)r * 16;
        _mm512_storeu_ps(
            lr, _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(lr), _mm512_set1_ps(corr[r])), sum));
    }
    ab_pv_any(hd, O, ldo, P, corr, vp + (j0 / 2) * nc * 32, (nk + 1) / 2);
}

/* Query rows [i0, i0 + AB_QR) of one head: q times the scale as bf16 hi +
 * lo, every key span, then out = O / l. */
KFN void ab_tile(float *out, size_t ldout, const float *q, size_t q_stride, size_t n_q, size_t i0,
                 int hd, float scale, const uint16_t *kp, const uint16_t *vp, const __mmask16 *km,
                 size_t n_kv, void *tile)
{
    const size_t np = ab_pairs(hd), ldo = ab_chunks(hd) * 16, qld = ab_q_ld(hd);
    float *O = tile, *l = O + AB_QR * ldo, *S = l + AB_QR * 16;
    uint16_t *qb = (uint16_t *)(S + AB_QG * AB_SK), *P = qb + AB_QR * 2 * qld;
    const size_t R = n_q - i0 < AB_QR ? n_q - i0 : AB_QR;
    float mx[AB_QR];
    for (size_t r = 0; r < AB_QR; r++) {
        /* Rows past R repeat the last row (computed, never stored). */
        const float *qr = q + (i0 + (r < R ? r : R - 1)) * q_stride;
        if (r + AB_PF < R)
            ab_prefetch_row(q + (i0 + r + AB_PF) * q_stride, hd);
        for (size_t d = 0; d < 2 * np; d += 16)
            ab_q16(qb + r * 2 * qld + d, qld, qr, d, hd, scale);
        mx[r] = -INFINITY;
    }
    memset(O, 0, AB_QR * (ldo + 16) * sizeof(float));
    for (size_t j0 = 0; j0 < n_kv; j0 += AB_SK) {
        const size_t nk = n_kv - j0 < AB_SK ? n_kv - j0 : AB_SK;
        for (size_t g = 0; g < R; g += AB_QG)
            ab_group_span(hd, O + g * ldo, ldo, l + g * 16, mx + g, qb + g * 2 * qld, qld, kp, vp,
                          km, j0, nk, S, P);
    }
    for (size_t r = 0; r < R; r++) {
        const float sum = lane_sum(_mm512_loadu_ps(l + r * 16));
        const float inv = sum > 0 ? 1.0f / sum : 0.0f;
        for (int t = 0; t < hd; t++)
            out[(i0 + r) * ldout + (size_t)t] = O[r * ldo + (size_t)t] * inv;
    }
}

void idf2_avx512_attention_bf16(float *out, const float *q, size_t q_stride, size_t n_q,
                                const float *k, const float *v, size_t kv_head_stride,
                                size_t kv_row_stride, size_t n_kv, int n_heads, int n_kv_heads,
                                int hd, float scale, const uint8_t *key_mask, void *ws, int nt)
{
    if (n_q == 0 || n_kv == 0)
        return;
    const size_t nb = ab_blocks(n_kv), D = (size_t)n_heads * (size_t)hd;
    const size_t ke = ab_k_elems(n_kv, hd), ve = ab_v_elems(n_kv, hd);
    const int group = n_heads / n_kv_heads;
    uint16_t *kp = ws;
    uint16_t *vp =
        (uint16_t *)((char *)ws + idf2_align64((size_t)n_kv_heads * ke * sizeof(uint16_t)));
    __mmask16 *km =
        (__mmask16 *)((char *)vp + idf2_align64((size_t)n_kv_heads * ve * sizeof(uint16_t)));
    char *tiles = (char *)ws + ab_kv_bytes(n_kv, n_kv_heads, hd);
    const size_t tile_bytes = ab_tile_bytes(hd);
    const long n_qt = (long)((n_q + AB_QR - 1) / AB_QR), items = n_qt * n_heads;
#pragma omp parallel num_threads(nt > 0 ? nt : 1)
    {
#pragma omp for schedule(static)
        for (long gb = 0; gb < (long)n_kv_heads * (long)nb; gb++) {
            const size_t g = (size_t)gb / nb, b = (size_t)gb % nb;
            ab_pack_block((uint32_t *)(kp + g * ke + b * ab_pairs(hd) * AB_KB * 2),
                          (uint32_t *)(vp + g * ve + b * (AB_KB / 2) * ab_chunks(hd) * 32),
                          g == 0 ? km + b * (AB_KB / 16) : NULL, k + g * kv_head_stride,
                          v + g * kv_head_stride, kv_row_stride, n_kv, hd, b, key_mask);
        }
        void *tile = tiles + (size_t)omp_get_thread_num() * tile_bytes;
#pragma omp for schedule(static)
        for (long it = 0; it < items; it++) {
            const size_t h = (size_t)(it / n_qt), i0 = (size_t)(it % n_qt) * AB_QR;
            const size_t g = h / (size_t)group;
            ab_tile(out + h * (size_t)hd, D, q + h * (size_t)hd, q_stride, n_q, i0, hd, scale,
                    kp + g * ke, vp + g * ve, km, n_kv, tile);
        }
    }
}

/* Non-causal, unwindowed attention (vision tower, perceiver) is tiled
 * here; causal decoder attention goes to the vec row, whose workspace is
 * counted as well. */
static bool row_attn_tiled(const struct idf2_attn *a)
{
    return !a->causal && a->window == 0 && a->head_dim <= 128 && a->n_kv_heads > 0 &&
           a->n_heads % a->n_kv_heads == 0;
}

/* The row entry of one of the two tiled attentions. */
typedef void attn_fn(float *out, const float *q, size_t q_stride, size_t n_q, const float *k,
                     const float *v, size_t kv_head_stride, size_t kv_row_stride, size_t n_kv,
                     int n_heads, int n_kv_heads, int hd, float scale, const uint8_t *key_mask,
                     void *ws, int nt);

static void attn_row(attn_fn *tiled, float *out, const struct idf2_attn *a,
                     const struct idf2_exec *ex)
{
    if (!row_attn_tiled(a)) {
        idf2_vec_ops.attention(out, a, ex);
        return;
    }
    tiled(out, a->q, a->q_stride, a->n_q, a->k, a->v, a->kv_head_stride, a->kv_row_stride, a->n_kv,
          a->n_heads, a->n_kv_heads, a->head_dim, a->scale, a->key_mask, ex->ws, ex->nt);
}

static size_t attn_row_ws(size_t mine, size_t n_q, size_t n_kv, int n_kv_heads, int head_dim,
                          int nt)
{
    const size_t vec = idf2_vec_ops.attention_ws(n_q, n_kv, n_kv_heads, head_dim, nt);
    return mine > vec ? mine : vec;
}

void idf2_ops512_attention(float *out, const struct idf2_attn *a, const struct idf2_exec *ex)
{
    attn_row(idf2_avx512_attention, out, a, ex);
}

size_t idf2_ops512_attention_ws(size_t n_q, size_t n_kv, int n_kv_heads, int head_dim, int nt)
{
    return attn_row_ws(idf2_avx512_attn_ws(n_kv, n_kv_heads, head_dim, nt), n_q, n_kv, n_kv_heads,
                       head_dim, nt);
}

/* The approximate row's: bf16 dot products where the float32 tile would
 * run. */
void idf2_ops512_attention_bf16(float *out, const struct idf2_attn *a, const struct idf2_exec *ex)
{
    attn_row(idf2_avx512_attention_bf16, out, a, ex);
}

size_t idf2_ops512_attention_bf16_ws(size_t n_q, size_t n_kv, int n_kv_heads, int head_dim, int nt)
{
    return attn_row_ws(idf2_avx512_attn_bf16_ws(n_kv, n_kv_heads, head_dim, nt), n_q, n_kv,
                       n_kv_heads, head_dim, nt);
}

/* SiLU and GELU (tanh form) by act_vec (synth/idf2_cpu_avx512_inl.h, which
 * the outer product's fused store shares); u != NULL: times u (SwiGLU's
 * middle). */
KFN void act_span(float *x, const float *u, size_t n, enum idf2_act act)
{
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail16(n - i);
        __m512 y = act_vec(_mm512_maskz_loadu_ps(m, x + i), act == IDF2_ACT_SILU);
        if (u)
            y = _mm512_mul_ps(y, _mm512_maskz_loadu_ps(m, u + i));
        _mm512_mask_storeu_ps(x + i, m, y);
    }
}

void idf2_ops512_act(float *x, size_t n, enum idf2_act act, const struct idf2_exec *ex)
{
    idf2_act_spans(act_span, 16, x, NULL, n, act, ex);
}

void idf2_ops512_act_mul(float *g, const float *u, size_t n, enum idf2_act act,
                         const struct idf2_exec *ex)
{
    idf2_act_spans(act_span, 16, g, u, n, act, ex);
}

/* ---- norms --------------------------------------------------------------------------------- */

/* Sum of x[0..d) (sq: of x^2, or of (x - mean)^2 with mean != 0) in
 * double, 8 lanes at a time, folded in a fixed order: the reference's
 * double sums up to rounding order, with float32 inputs widened exactly. */
KINL double norm_sum(const float *x, size_t d, bool sq, double mean)
{
    __m512d acc = _mm512_setzero_pd();
    const __m512d mv = _mm512_set1_pd(mean);
    for (size_t k = 0; k < d; k += 8) {
        const __mmask8 m = d - k >= 8 ? 0xFF : (__mmask8)((1u << (d - k)) - 1);
        __m512d v = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, x + k));
        if (sq) {
            v = _mm512_maskz_sub_pd(m, v, mv);
            v = _mm512_mul_pd(v, v);
        }
        acc = _mm512_add_pd(acc, v);
    }
    const __m256d h = _mm256_add_pd(_mm512_castpd512_pd256(acc), _mm512_extractf64x4_pd(acc, 1));
    const __m128d q = _mm_add_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd(h, 1));
    return _mm_cvtsd_f64(_mm_add_sd(q, _mm_unpackhi_pd(q, q)));
}

/* Rows [0, n) of the reference's LayerNorm (ln; b may be NULL: no bias)
 * or RMSNorm: the same float32 operations after the sums. */
KFN void norm_rows(float *y, const float *x, size_t n, size_t d, const float *w, const float *b,
                   bool ln, float eps)
{
    for (size_t i = 0; i < n; i++) {
        const float *xi = x + i * d;
        float *yi = y + i * d;
        float sub = 0, r;
        if (ln) {
            const double mean = norm_sum(xi, d, false, 0) / (double)d;
            const double var = norm_sum(xi, d, true, mean) / (double)d;
            r = (float)(1.0 / sqrt(var + (double)eps));
            sub = (float)mean;
        } else {
            r = (float)(1.0 / sqrt(norm_sum(xi, d, true, 0) / (double)d + (double)eps));
        }
        const __m512 rv = _mm512_set1_ps(r), sv = _mm512_set1_ps(sub);
        for (size_t k = 0; k < d; k += 16) {
            const __mmask16 m = tail16(d - k);
            const __m512 v = _mm512_maskz_loadu_ps(m, xi + k), wv = _mm512_maskz_loadu_ps(m, w + k);
            __m512 o;
            if (ln) /* (x - mean) * rstd * w + b */
                o = _mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(_mm512_sub_ps(v, sv), rv), wv),
                                  b ? _mm512_maskz_loadu_ps(m, b + k) : _mm512_setzero_ps());
            else /* w * (x * r) */
                o = _mm512_mul_ps(wv, _mm512_mul_ps(v, rv));
            _mm512_mask_storeu_ps(yi + k, m, o);
        }
    }
}

void idf2_ops512_layernorm(float *y, const float *x, size_t n, size_t d, const float *w,
                           const float *b, float eps, const struct idf2_exec *ex)
{
    idf2_norm_spans(norm_rows, y, x, n, d, w, b, true, eps, ex);
}

void idf2_ops512_rmsnorm(float *y, const float *x, size_t n, size_t d, const float *w, float eps,
                         const struct idf2_exec *ex)
{
    idf2_norm_spans(norm_rows, y, x, n, d, w, NULL, false, eps, ex);
}
