/* idf2_cpu_avx2q: AVX2 matmul over Q8_0 / Q4_0 weights (numerics in the
 * header).  Owns nothing between calls; uses only the caller's workspace
 * (the quantized activations).  Never splits a dot product across threads
 * or tiles: threads take contiguous ranges of weight rows.
 *
 * AVX2 has no vpdpbusd: a block's integer dot product is vpmaddubsw
 * (unsigned x signed bytes, pairs summed into int16 with saturation) and
 * vpmaddwd by ones (int16 pairs into int32).  Q8_0 codes are signed, so
 * the unsigned operand is |w| and the activation takes w's sign
 * (vpsignb): pairs of at most 128 x 127 stay clear of int16 saturation.
 * Q4_0 nibbles are unsigned already (0..15, the -8 comes back as -8 x the
 * activation codes' sum): a block's 8 vpmaddubsw results add in int16
 * (at most 8 x 2 x 15 x 127 = 30480) before one vpmaddwd.
 *
 * The x16 formats (what the engine quantizes its text weights into) hold
 * per block chunk j of 16 rows as 16 dwords: two ymm of 8 rows, each lane
 * a row's 4 codes against the same 4 activation codes broadcast, so a tile
 * gets 8 rows' sums per ymm with no horizontal step.  ggml's row layout
 * (the plain formats) gives one ymm per row and block: 8 rows' vectors
 * fold into one by a fixed hadd tree.  Tiles are 1-2 activation rows (the
 * decode's, streaming each weight once) by 16 or 8 weight rows; more rows
 * run tiles of 2 over a weight group while it stays in L2. */
#include "idf2_cpu_avx2q.h"

#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#define T_AVX2Q "avx2,fma,f16c"
#define KFN     static __attribute__((target(T_AVX2Q)))
#define KINL    static inline __attribute__((always_inline, target(T_AVX2Q)))
/* OpenMP regions live in plain functions and call KFN functions only
 * (clang does not give an outlined region its function's target). */

/* ggml block sizes: half scale, then 32 codes (Q8_0) or 16 nibble bytes. */
#define Q8_BLOCK_BYTES 34
#define Q4_BLOCK_BYTES 18
/* Weight rows per x16 group (synth/idf2_backend.h) and per ggml-layout
 * tile (one ymm of int32 sums). */
#define X16_GROUP 16
#define ROW_GROUP 8
/* Bytes ahead of a whole x16 group's block that a tile prefetches: the
 * decode streams each weight once, and on Zen 1 the hardware prefetcher
 * alone left a thread well short of the read probe. */
#define X16_PF 1024
/* The same for the group's scales (32 bytes a block): whole lines, some
 * blocks ahead of the codes' distance in time. */
#define X16_PF_SC 256
/* Blocks of a partial x16 group (a matrix's last, rows % 16) copied at a
 * time into zero-padded lanes: 8 KiB of stack at most. */
#define PAD_BLOCKS 16
/* Activation rows a thread passes over one weight group before the next:
 * about this many bytes of activation codes, so they stay in L2 (512 KiB
 * on Zen 1) beside the group. */
#define XQ_SPAN (128u << 10)
/* Below this many multiply-adds one thread does the call (as the avx2
 * row's float matmul). */
#define PAR_MIN_MACS (1u << 18)

static size_t min_sz(size_t a, size_t b)
{
    return a < b ? a : b;
}

static size_t n_blocks(size_t K)
{
    return (K + 31) / 32;
}

/* Bytes per quantized activation row: codes (zero padded to whole
 * blocks), then per block d_x (float) and the offset term (int32). */
static size_t xq_bytes(size_t K)
{
    return idf2_align64(n_blocks(K) * (32 + 8));
}

size_t idf2_avx2q_matmul_ws(size_t n, const struct idf2_w *w)
{
    return n * xq_bytes((size_t)w->cols);
}

static int32_t ld32(const void *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Lanes [0, n) (n <= 8) as a mask for maskload. */
KINL __m256i lanes(size_t n)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), idx);
}

/* One activation row: int8 codes (zero past K), and per block its scale
 * dx and the offset term -off * (sum of its codes), as the avx512 row
 * quantizes (the same codes, d and rounding). */
KFN void qact_row(int8_t *q, float *dx, int32_t *corr, const float *x, size_t K, int off)
{
    const __m256 sgn = _mm256_set1_ps(-0.0f);
    const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (size_t b = 0; b < n_blocks(K); b++) {
        __m256 v[4];
        for (int i = 0; i < 4; i++) {
            const size_t k = b * 32 + (size_t)i * 8, n = k < K ? min_sz(8, K - k) : 0;
            v[i] = n == 8 ? _mm256_loadu_ps(x + k)
                   : n    ? _mm256_maskload_ps(x + k, lanes(n))
                          : _mm256_setzero_ps();
        }
        const __m256 m =
            _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sgn, v[0]), _mm256_andnot_ps(sgn, v[1])),
                          _mm256_max_ps(_mm256_andnot_ps(sgn, v[2]), _mm256_andnot_ps(sgn, v[3])));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        const float amax = _mm_cvtss_f32(_mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1)));
        const float d = amax / 127.0f;
        const __m256 id = _mm256_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
        __m256i qi[4];
        for (int i = 0; i < 4; i++)
            qi[i] = _mm256_min_epi32(
                _mm256_max_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(v[i], id)), lo), hi);
        /* The packs interleave 128-bit lanes: dwords come out as codes
         * 0-3, 8-11, 16-19, 24-27, 4-7, ...; `order` puts them back. */
        const __m256i p =
            _mm256_packs_epi16(_mm256_packs_epi32(qi[0], qi[1]), _mm256_packs_epi32(qi[2], qi[3]));
        _mm256_storeu_si256((__m256i *)(void *)(q + b * 32), _mm256_permutevar8x32_epi32(p, order));
        const __m256i s =
            _mm256_add_epi32(_mm256_add_epi32(qi[0], qi[1]), _mm256_add_epi32(qi[2], qi[3]));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
        dx[b] = d;
        corr[b] = -off * _mm_cvtsi128_si32(s4);
    }
}

/* A call's quantized activations: row r at base + r * stride: codes, then
 * nb scales and nb offset terms. */
struct qx {
    const int8_t *base;
    size_t stride, nb;
};

static const int8_t *qx_codes(const struct qx *a, size_t r)
{
    return a->base + r * a->stride;
}

static const float *qx_dx(const struct qx *a, size_t r)
{
    return (const float *)(const void *)(a->base + r * a->stride + a->nb * 32);
}

static const int32_t *qx_corr(const struct qx *a, size_t r)
{
    return (const int32_t *)(const void *)(a->base + r * a->stride + a->nb * 36);
}

/* The float step of a block for 8 outputs: acc + float(dot) * (dw * dx). */
KINL __m256 q_step(__m256 acc, __m256i dot, __m256 dw, float dx)
{
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(dw, _mm256_set1_ps(dx)), acc);
}

/* y[0..n) = acc (+ bias), n <= 8. */
KINL void q_store(float *y, size_t n, __m256 acc, const float *bias)
{
    float t[8];
    _mm256_storeu_ps(t, acc);
    for (size_t c = 0; c < n; c++)
        y[c] = bias ? t[c] + bias[c] : t[c];
}

/* Q8_0 codes w (signed) against activation codes x: 16 int16 pair sums,
 * exact (|w| <= 128, |x| <= 127). */
KINL __m256i q8_pairs(__m256i aw, __m256i w, __m256i x)
{
    return _mm256_maddubs_epi16(aw, _mm256_sign_epi8(x, w));
}

/* ---- x16 layout ---------------------------------------------------------------------------- */

/* One block's exact integer sums of MR (1-2) activation rows from r0
 * against a whole x16 group's block at cp (chunk j of 4 codes per row at
 * cp + 64 j, rows 8 h .. 8 h + 7 at +32 h), activation block b: lane c of
 * dot[r][h] is row 8 h + c's sum, offset term included.  Both halves in
 * one pass over the chunks, so that each activation broadcast serves 16
 * rows. */
KINL void x16_dots(const int MR, const bool q4, const struct qx *a, size_t r0, const uint8_t *cp,
                   size_t b, __m256i dot[2][2])
{
    const __m256i ones = _mm256_set1_epi16(1), nib = _mm256_set1_epi8(15),
                  flip = _mm256_set1_epi8(-128);
    const int8_t *xq[2];
    for (int r = 0; r < MR; r++) {
        xq[r] = qx_codes(a, r0 + (size_t)r) + b * 32;
        dot[r][0] = dot[r][1] = _mm256_setzero_si256();
    }
    if (q4) {
        _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++)
            _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++)
        {
            const __m256i v =
                _mm256_loadu_si256((const __m256i *)(const void *)(cp + 64 * j + 32 * h));
            const __m256i lo = _mm256_and_si256(v, nib),
                          hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
            _Pragma("GCC unroll 2") for (int r = 0; r < MR; r++)
            {
                const __m256i xl = _mm256_set1_epi32(ld32(xq[r] + 4 * j)),
                              xh = _mm256_set1_epi32(ld32(xq[r] + 16 + 4 * j));
                dot[r][h] =
                    _mm256_add_epi16(dot[r][h], _mm256_add_epi16(_mm256_maddubs_epi16(lo, xl),
                                                                 _mm256_maddubs_epi16(hi, xh)));
            }
        }
        for (int r = 0; r < MR; r++)
            for (int h = 0; h < 2; h++)
                dot[r][h] = _mm256_add_epi32(_mm256_madd_epi16(dot[r][h], ones),
                                             _mm256_set1_epi32(qx_corr(a, r0 + (size_t)r)[b]));
        return;
    }
    _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++)
        _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++)
    {
        /* Stored q + 128: the xor gives q back. */
        const __m256i v = _mm256_xor_si256(
            _mm256_loadu_si256((const __m256i *)(const void *)(cp + 64 * j + 32 * h)), flip);
        const __m256i aw = _mm256_abs_epi8(v);
        _Pragma("GCC unroll 2") for (int r = 0; r < MR; r++)
        {
            const __m256i xb = _mm256_set1_epi32(ld32(xq[r] + 4 * j));
            dot[r][h] = _mm256_add_epi32(dot[r][h], _mm256_madd_epi16(q8_pairs(aw, v, xb), ones));
        }
    }
}

/* Blocks [b0, b1) of MR (1-2) activation rows from r0 against a whole x16
 * group (16 rows): block b0's codes at cp, its 16 half scales at sp, the
 * rest in turn; adds each block's step to acc[r][h] (rows 8 h ..).  With
 * pf, cp and sp are the group's own (cp = pf + b0 * its block's code
 * bytes) and the loop prefetches both streams ahead, past the group's end
 * into the next group's codes and scales (a thread's groups lie back to
 * back), so that a group's first blocks do not wait on memory either.
 * No calls inside: a call (the padding's memcpy, before) sent every live
 * ymm to the stack and back each block. */
KINL void x16_blocks(const int MR, const bool q4, const struct qx *a, size_t r0, const uint8_t *cp,
                     const uint8_t *sp, size_t b0, size_t b1, const uint8_t *pf, size_t nb,
                     __m256 acc[2][2])
{
    const size_t cbb = X16_GROUP * (q4 ? 16 : 32), codes = nb * cbb, scales = nb * X16_GROUP * 2;
    for (size_t b = b0; b < b1; b++, cp += cbb, sp += X16_GROUP * 2) {
        if (pf) {
            /* Addresses only: a prefetch never faults, past the matrix
             * either. */
            const size_t o = b * cbb + X16_PF, so = b * X16_GROUP * 2 + X16_PF_SC;
            const uintptr_t c = (uintptr_t)pf + o + (o >= codes ? scales : 0),
                            s = (uintptr_t)pf + codes + so + (so >= scales ? codes : 0);
            for (size_t l = 0; l < cbb; l += 64)
                _mm_prefetch((const char *)(c + l), _MM_HINT_T0);
            _mm_prefetch((const char *)s, _MM_HINT_T0);
        }
        __m256i dot[2][2];
        x16_dots(MR, q4, a, r0, cp, b, dot);
        for (int h = 0; h < 2; h++) {
            const __m256 dw =
                _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(sp + 16 * h)));
            for (int r = 0; r < MR; r++)
                acc[r][h] = q_step(acc[r][h], dot[r][h], dw, qx_dx(a, r0 + (size_t)r)[b]);
        }
    }
}

/* MR (1-2) activation rows from r0 x one group of `lanes` interleaved
 * weight rows at grp over nb blocks (layout: synth/idf2_backend.h).  A
 * partial last group is copied PAD_BLOCKS blocks at a time into 16
 * zero-padded lanes. */
KINL void x16_tile(const int MR, const bool q4, const struct qx *a, size_t r0, const uint8_t *grp,
                   size_t lanes, size_t nb, float *y, size_t ldy, const float *bias)
{
    const size_t cb = q4 ? 16 : 32, cs = lanes * 4;
    const uint8_t *sc = grp + nb * lanes * cb;
    __m256 acc[2][2];
    for (int r = 0; r < MR; r++)
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    if (lanes == X16_GROUP)
        x16_blocks(MR, q4, a, r0, grp, sc, 0, nb, grp, nb, acc);
    else {
        _Alignas(32) uint8_t pad[PAD_BLOCKS * X16_GROUP * 32];
        _Alignas(16) uint8_t pad_sc[PAD_BLOCKS * X16_GROUP * 2];
        for (size_t b0 = 0; b0 < nb; b0 += PAD_BLOCKS) {
            const size_t b1 = min_sz(nb, b0 + PAD_BLOCKS);
            memset(pad, 0, sizeof pad);
            memset(pad_sc, 0, sizeof pad_sc);
            for (size_t b = b0; b < b1; b++) {
                for (size_t j = 0; j < cb / 4; j++)
                    memcpy(pad + ((b - b0) * cb / 4 + j) * X16_GROUP * 4,
                           grp + b * lanes * cb + j * cs, cs);
                memcpy(pad_sc + (b - b0) * X16_GROUP * 2, sc + b * lanes * 2, lanes * 2);
            }
            x16_blocks(MR, q4, a, r0, pad, pad_sc, b0, b1, NULL, nb, acc);
        }
    }
    for (int r = 0; r < MR; r++)
        for (size_t h = 0; h < 2 && 8 * h < lanes; h++)
            q_store(y + (size_t)r * ldy + 8 * h, min_sz(8, lanes - 8 * h), acc[r][h],
                    bias ? bias + 8 * h : NULL);
}

/* ---- ggml's row layout --------------------------------------------------------------------- */

/* Eight vectors of 8 int32 into one of their 8 sums, v[c]'s in lane c: a
 * fixed tree (integer, so exact in any case). */
KINL __m256i fold8(const __m256i v[8])
{
    const __m256i a =
        _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    const __m256i b =
        _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
    /* a: rows 0-3's low-half sums | their high-half sums; b: rows 4-7's. */
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20),
                            _mm256_permute2x128_si256(a, b, 0x31));
}

/* MR (1-2) activation rows from r0 x C (<= 8) weight rows at w, wrb bytes
 * apart, over nb blocks. */
KINL void row_tile(const int MR, const bool q4, const struct qx *a, size_t r0, const uint8_t *w,
                   size_t wrb, size_t C, size_t nb, float *y, size_t ldy, const float *bias)
{
    const size_t bb = q4 ? Q4_BLOCK_BYTES : Q8_BLOCK_BYTES;
    const __m256i ones = _mm256_set1_epi16(1), nib = _mm256_set1_epi8(15);
    const int8_t *xq[2];
    const float *dx[2];
    const int32_t *corr[2];
    __m256 acc[2];
    for (int r = 0; r < MR; r++) {
        xq[r] = qx_codes(a, r0 + (size_t)r);
        dx[r] = qx_dx(a, r0 + (size_t)r);
        corr[r] = qx_corr(a, r0 + (size_t)r);
        acc[r] = _mm256_setzero_ps();
    }
    for (size_t b = 0; b < nb; b++) {
        __m256i xv[2], s[2][ROW_GROUP];
        for (int r = 0; r < MR; r++)
            xv[r] = _mm256_loadu_si256((const __m256i *)(const void *)(xq[r] + b * 32));
        _Alignas(16) uint16_t hs[ROW_GROUP] = { 0 };
        _Pragma("GCC unroll 8") for (int c = 0; c < ROW_GROUP; c++)
        {
            if ((size_t)c >= C) {
                for (int r = 0; r < MR; r++)
                    s[r][c] = _mm256_setzero_si256();
                continue;
            }
            const uint8_t *blk = w + (size_t)c * wrb + b * bb;
            memcpy(&hs[c], blk, 2);
            if (q4) {
                /* Nibble byte e: element e low, e + 16 high. */
                const __m128i h = _mm_loadu_si128((const __m128i *)(const void *)(blk + 2));
                const __m256i v = _mm256_and_si256(
                    _mm256_inserti128_si256(_mm256_castsi128_si256(h), _mm_srli_epi16(h, 4), 1),
                    nib);
                for (int r = 0; r < MR; r++)
                    s[r][c] = _mm256_madd_epi16(_mm256_maddubs_epi16(v, xv[r]), ones);
            } else {
                const __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(blk + 2));
                const __m256i aw = _mm256_abs_epi8(v);
                for (int r = 0; r < MR; r++)
                    s[r][c] = _mm256_madd_epi16(q8_pairs(aw, v, xv[r]), ones);
            }
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(const void *)hs));
        for (int r = 0; r < MR; r++)
            acc[r] = q_step(acc[r], _mm256_add_epi32(fold8(s[r]), _mm256_set1_epi32(corr[r][b])),
                            dw, dx[r][b]);
    }
    for (int r = 0; r < MR; r++)
        q_store(y + (size_t)r * ldy, C, acc[r], bias);
}

/* ---- driver -------------------------------------------------------------------------------- */

/* One function per (tile, rows, format), so each inlines its constants. */
#define TILE_FNS(MR_, Q4_)                                                                         \
    KFN __attribute__((noinline)) void x16_tile_##MR_##_##Q4_(                                     \
        const struct qx *a, size_t r0, const uint8_t *grp, size_t lanes, size_t nb, float *y,      \
        size_t ldy, const float *bias)                                                             \
    {                                                                                              \
        x16_tile(MR_, Q4_, a, r0, grp, lanes, nb, y, ldy, bias);                                   \
    }                                                                                              \
    KFN __attribute__((noinline)) void row_tile_##MR_##_##Q4_(                                     \
        const struct qx *a, size_t r0, const uint8_t *w, size_t wrb, size_t C, size_t nb,          \
        float *y, size_t ldy, const float *bias)                                                   \
    {                                                                                              \
        row_tile(MR_, Q4_, a, r0, w, wrb, C, nb, y, ldy, bias);                                    \
    }
TILE_FNS(1, 0)
TILE_FNS(1, 1)
TILE_FNS(2, 0)
TILE_FNS(2, 1)

/* What a call computes; threads take groups [ga, gb). */
struct q_call {
    float *y;
    const struct qx *a;
    size_t m, N, K, nb;
    const uint8_t *w;
    bool q4, x16;
    const float *bias;
};

static void q_groups(const struct q_call *c, size_t ga, size_t gb)
{
    const size_t unit = c->x16 ? X16_GROUP : ROW_GROUP;
    const size_t wrb = idf2_wfmt_row_bytes(c->q4 ? IDF2_WF_Q4_0 : IDF2_WF_Q8_0, c->K);
    size_t span = XQ_SPAN / c->a->stride & ~(size_t)1;
    span = span < 2 ? 2 : span;
    for (size_t i0 = 0; i0 < c->m; i0 += span) {
        const size_t i1 = min_sz(c->m, i0 + span);
        for (size_t g = ga; g < gb; g++) {
            const size_t n0 = g * unit, cols = min_sz(unit, c->N - n0);
            const uint8_t *wg = c->w + n0 * wrb;
            const float *bias = c->bias ? c->bias + n0 : NULL;
            for (size_t i = i0; i < i1; i += 2) {
                float *y = c->y + i * c->N + n0;
                const bool two = i + 1 < i1;
                if (c->x16)
                    (two ? (c->q4 ? x16_tile_2_1 : x16_tile_2_0)
                         : (c->q4 ? x16_tile_1_1 : x16_tile_1_0))(c->a, i, wg, cols, c->nb, y, c->N,
                                                                  bias);
                else
                    (two ? (c->q4 ? row_tile_2_1 : row_tile_2_0)
                         : (c->q4 ? row_tile_1_1 : row_tile_1_0))(c->a, i, wg, wrb, cols, c->nb, y,
                                                                  c->N, bias);
            }
        }
    }
}

static void q_acts(void *ws, const float *x, size_t m, size_t K, bool q4, int nt)
{
    const size_t nb = n_blocks(K), st = xq_bytes(K);
#pragma omp parallel for schedule(static) num_threads(m >= 8 ? nt : 1)
    for (long r = 0; r < (long)m; r++) {
        int8_t *row = (int8_t *)ws + (size_t)r * st;
        qact_row(row, (float *)(void *)(row + nb * 32), (int32_t *)(void *)(row + nb * 36),
                 x + (size_t)r * K, K, q4 ? 8 : 0);
    }
}

void idf2_avx2q_matmul(float *y, const float *x, size_t n, const struct idf2_w *w,
                       const float *bias, const struct idf2_exec *ex)
{
    const size_t K = (size_t)w->cols, N = (size_t)w->rows;
    if (n == 0 || N == 0)
        return;
    const bool q4 = idf2_wfmt_base(w->fmt) == IDF2_WF_Q4_0;
    const struct qx a = { ex->ws, xq_bytes(K), n_blocks(K) };
    const struct q_call c = {
        .y = y,
        .a = &a,
        .m = n,
        .N = N,
        .K = K,
        .nb = n_blocks(K),
        .w = w->data,
        .q4 = q4,
        .x16 = w->fmt != idf2_wfmt_base(w->fmt),
        .bias = bias,
    };
    q_acts(ex->ws, x, n, K, q4, ex->nt);
    const size_t groups =
        (N + (c.x16 ? X16_GROUP : ROW_GROUP) - 1) / (c.x16 ? X16_GROUP : ROW_GROUP);
    const int team = (double)n * (double)N * (double)K < PAR_MIN_MACS ? 1 : ex->nt;
#pragma omp parallel num_threads(team > 0 ? team : 1)
    {
        const size_t t = (size_t)omp_get_thread_num(), T = (size_t)omp_get_num_threads();
        q_groups(&c, groups * t / T, groups * (t + 1) / T);
    }
}
