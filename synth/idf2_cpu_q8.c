/* idf2_cpu_q8: AVX-512 VNNI matmul over Q8_0 / Q4_0 weights.
 *
 * Numerics (batch invariance).  Activations are quantized once per call
 * to int8 blocks of 32.  Output (m, n) is, for every path below,
 *   acc = 0; for each block b in order: acc = fma(float(dot_b), d_w * d_x, acc);
 *   y = acc + bias
 * where dot_b is block b's exact int32 dot product: vpdpbusd on unsigned
 * weight codes (Q8_0 q xor 0x80 = q + 128; Q4_0 nibbles), started from
 * -off * (the activation block's code sum).  An integer sum is exact in any
 * order, so the two kernels, which sum a block's products in different
 * orders, give the same bits whatever m, the other rows or the threads.
 *
 * Three or more rows (prefill, batched decode): one output per lane.  A
 * thread packs 16 weight rows (a group) at a time, per 32-input block, into
 * 8 zmm of unsigned codes (zmm j, lane c: row c's inputs 4j..4j+3) and one
 * zmm of the 16 rows' scales as float, for whole K, in a panel of about
 * Q_PANEL bytes that stays in L2.  A tile of up to Q_MR activation rows x
 * one group then costs per block and row 8 vpdpbusd (the activation quad
 * broadcast from memory), a convert, a multiply and an fma: no horizontal
 * sums.  Weights stay in ggml's layout in memory (the reference, the
 * on-disk cache and decode read it; no second copy): packing (gathers) is
 * paid once per 16 rows x 32 inputs per call and shared by all rows.
 * Up to 16 rows, the tiles over one panel also fetch the next panel's raw
 * rows into L2, so that packing (memory) and tiles (compute) overlap.
 *
 * One or two rows (decode, bound by memory): tiles stream 16 weight rows
 * as stored into per-lane partial sums, folded by an integer
 * transpose-and-add tree into one zmm of the 16 rows' sums per block, then
 * the float step above.  Q8_0: one vpdpbusd per (activation row, weight
 * row, 64 inputs), lanes 0-7 the even block, 8-15 the odd one; each row's
 * chunk is one plain load from its byte 4, against activations laid out
 * once per call to match (zero against the odd block's scale), and the 16
 * rows' scales and first two codes are gathered.  Q4_0: 128 inputs (4
 * blocks) per chunk, one word permute of a row's 72 bytes puts block l's
 * nibbles in 128-bit lane l, an AND and a shift split them, two vpdpbusd
 * meet activations laid out once per call in nibble order, and the rows'
 * scales come from the same loads by permutes.  Threads split the groups
 * into contiguous ranges, so each weight comes from memory once per call.
 *
 * The x16 formats (Q8_0X16 / Q4_0X16, what the engine quantizes its text
 * weights into at load) are the packed panel's layout in memory: 16 rows
 * interleaved per block, codes then half scales per group (layout:
 * synth/idf2_backend.h), read as stored at every row count: 1-2 rows
 * stream each thread's groups once (qx_stream, whole groups, prefetching
 * a few KiB ahead into L2; qx_tile, a partial last one, a group ahead);
 * more rows run the packed
 * tiles' row tiles (qx_tile) straight over them, span by span of about
 * Q_PANEL bytes, with the next span fetched meanwhile.  No fold, gathers or repack; the same bits
 * as the ggml-layout paths (tests/unit/test_idf2_fast.c, matmul_x16_same_bits). */
#include "idf2_cpu_q8.h"

#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "synth/idf2_backend.h"
#include "synth/idf2_cpu_avx512_inl.h"

/* Bytes of a thread's packed panel (L2 is 1 MiB per core here). */
#define Q_PANEL (384u << 10)
/* Bytes ahead that a streaming tile prefetches in each row. */
#define PF_AHEAD 1024
/* Bytes ahead in a thread's stream of x16 groups that a 1-2 row tile
 * (qx_stream) prefetches, and the hint: into L2, a short way ahead.  The
 * Mistral-7B stack (8 layers, decode, 2 threads), alternating in one
 * process on a busy 2-vCPU Zen 4 (2026-12-07): against the group-ahead L1
 * prefetch before, median per-round ratio Q8_0X16 1.07-1.12x at 2 KiB
 * (3 KiB 1.05x, 4 KiB 1.00-1.04x, 8 KiB 0.96x), Q4_0X16 1.08-1.12x at 4-8
 * KiB (2 KiB 0.83-0.89x); an L1 hint at the same distances 1.00-1.07x, a
 * prefetch of the thread's next group rather than the next in memory at a
 * range's end the same within the noise. */
#define QX_PF_Q8   2048
#define QX_PF_Q4   6144
#define QX_PF_HINT _MM_HINT_T1
/* Activation rows per packed tile: 10 measured best of 4-12 (1 thread,
 * 512 x 4096 x 1024: 486 GOP/s against 395-454 for 4, 6, 8 and 12). */
#define Q_MR 10
/* Weight rows per group (one per lane). */
#define Q_GROUP 16
/* zmm per packed group and block: 8 of codes, 1 of scales. */
#define PK_ZMM 9
/* Up to how many activation rows tiles fetch the next panel's weights
 * (struct q_ahead): past them packing is a small share of a call, and the
 * fetched rows would only crowd L2. */
#define Q_AHEAD_ROWS 16

/* ggml block sizes (synth/idf2_backend.h): half scale, then the codes. */
#define Q8_BLOCK_BYTES 34
#define Q4_BLOCK_BYTES 18

/* Activation codes per row: K padded to 64 inputs (the streaming tile
 * reads two blocks at a time). */
static size_t xq_row(size_t K)
{
    return (K + 63) / 64 * 64;
}

/* Bytes per quantized activation row: codes, then per block d_x (float)
 * and the offset term (int32). */
static size_t xq_bytes(size_t K)
{
    return xq_row(K) + xq_row(K) / 32 * 8;
}

static size_t w_row_bytes(size_t K, bool q4)
{
    return (K + 31) / 32 * (q4 ? Q4_BLOCK_BYTES : Q8_BLOCK_BYTES);
}

static size_t group_bytes(size_t nb)
{
    return nb * PK_ZMM * sizeof(__m512i);
}

/* Groups per panel: whole K each, at least one. */
static size_t panel_groups(size_t nb)
{
    const size_t g = Q_PANEL / group_bytes(nb);
    return g ? g : 1;
}

/* Bytes of a thread's panel; bounds panel_groups * group_bytes and grows
 * with K. */
static size_t panel_ws(size_t K)
{
    return idf2_align64(Q_PANEL + group_bytes(xq_row(K) / 32));
}

size_t idf2_q8_mm_ws(size_t m, size_t K, int nt)
{
    return idf2_align64(m * xq_bytes(K)) + (size_t)(nt > 0 ? nt : 1) * panel_ws(K);
}

/* One activation row: int8 codes (zero padded to kp), and per block its
 * scale dx and the offset term -off * (sum of its codes). */
KFN void qact_row(int8_t *q, float *dx, int32_t *corr, const float *x, size_t K, size_t kp, int off)
{
    const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
    for (size_t b = 0; b < kp / 32; b++) {
        const size_t k = b * 32;
        __m512 v0 = _mm512_maskz_loadu_ps(k < K ? tail16(K - k) : 0, x + k);
        __m512 v1 = _mm512_maskz_loadu_ps(k + 16 < K ? tail16(K - k - 16) : 0, x + k + 16);
        const float amax =
            _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        const float d = amax / 127.0f;
        const __m512 id = _mm512_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
        __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, id));
        __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, id));
        q0 = _mm512_min_epi32(_mm512_max_epi32(q0, lo), hi);
        q1 = _mm512_min_epi32(_mm512_max_epi32(q1, lo), hi);
        _mm_storeu_si128((__m128i *)(q + k), _mm512_cvtsepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(q + k + 16), _mm512_cvtsepi32_epi8(q1));
        dx[b] = d;
        corr[b] = -off * _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    }
}

/* Where a call's quantized activations are: row r's codes at
 * base + r * stride, then its kp / 32 scales and offset terms. */
struct qx {
    const int8_t *base;
    size_t stride, kp;
    /* Q8_0 streaming tiles: row r in q8_stream_layout at sl + r *
     * q8_sl_bytes(kp). */
    const int8_t *sl;
};

static const int8_t *qx_codes(const struct qx *a, size_t r)
{
    return a->base + r * a->stride;
}

static const float *qx_dx(const struct qx *a, size_t r)
{
    return (const float *)(const void *)(a->base + r * a->stride + a->kp);
}

static const int32_t *qx_corr(const struct qx *a, size_t r)
{
    return (const int32_t *)(const void *)(a->base + r * a->stride + a->kp + a->kp / 32 * 4);
}

/* The float step of block b for 16 outputs: acc + float(dot) * (dw * dx). */
KINL __m512 q_step(__m512 acc, __m512i dot, __m512 dw, float dx)
{
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw, _mm512_set1_ps(dx)), acc);
}

/* y[0..16) under mask cm = acc (+ bias). */
KINL void q_store(float *y, __mmask16 cm, __m512 acc, const float *bias)
{
    const __m512 v = bias ? _mm512_add_ps(acc, _mm512_maskz_loadu_ps(cm, bias)) : acc;
    _mm512_mask_storeu_ps(y, cm, v);
}

/* ---- packed tiles (3 or more rows) --------------------------------------------------------- */

/* The half scales at p + c * wrb for the first `rows` of 16 rows c (zero
 * past them) as 16 floats, gathered four to a general register: a vector
 * load of them stored to memory one by one waits out a failed store
 * forwarding (half the time of a decode tile). */
KINL __m512 q_scales(const uint8_t *p, size_t wrb, int rows)
{
    uint64_t q[4];
    _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++)
    {
        uint64_t v = 0;
        _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++)
        {
            const int c = 4 * i + k;
            uint16_t h = 0;
            if (c < rows)
                memcpy(&h, p + (size_t)c * wrb, 2);
            v |= (uint64_t)h << (16 * k);
        }
        q[i] = v;
    }
    const __m128i lo = _mm_set_epi64x((long long)q[1], (long long)q[0]),
                  hi = _mm_set_epi64x((long long)q[3], (long long)q[2]);
    return _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1));
}

/* One Q8_0 block of 16 rows (from blk on, rows beyond `rows` zero) as 8
 * zmm of unsigned codes, zmm j lane c = row c's codes 4j..4j+3: row c's
 * 8 code dwords in the half c / 8 of zr[c % 8], then an 8 x 8 dword
 * transpose within each 256-bit half. */
KINL void q_pack8(__m512i dst[8], const uint8_t *blk, size_t wrb, int rows)
{
    __m512i zr[8], t[8], u[8];
    _Pragma("GCC unroll 8") for (int c = 0; c < 8; c++)
    {
        const __m256i lo = c < rows
                               ? _mm256_loadu_si256((const __m256i *)(blk + (size_t)c * wrb + 2))
                               : _mm256_setzero_si256();
        const __m256i hi =
            c + 8 < rows ? _mm256_loadu_si256((const __m256i *)(blk + (size_t)(c + 8) * wrb + 2))
                         : _mm256_setzero_si256();
        zr[c] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < 8; i += 2)
    {
        t[i] = _mm512_unpacklo_epi32(zr[i], zr[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(zr[i], zr[i + 1]);
    }
    /* u[i] (rows 0-3 for i < 4, 4-7 else, and 8 more in the upper half):
     * dword i % 4 in 128-bit lanes 0 and 2, dword i % 4 + 4 in 1 and 3. */
    _Pragma("GCC unroll 2") for (int i = 0; i < 8; i += 4)
    {
        u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    const __m512i lo = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0),
                  hi = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2),
                  flip = _mm512_set1_epi8((char)0x80);
    _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++)
    {
        dst[j] = _mm512_xor_si512(_mm512_permutex2var_epi64(u[j], lo, u[j + 4]), flip);
        dst[j + 4] = _mm512_xor_si512(_mm512_permutex2var_epi64(u[j], hi, u[j + 4]), flip);
    }
}

/* One Q4_0 block of 16 rows as q_pack8's codes: row c's 4 dwords of
 * nibbles in 128-bit lane c / 4 of y[c % 4], a 4 x 4 dword transpose per
 * lane, then dword j's low nibbles are elements 4j.., its high ones
 * 16 + 4j... */
KINL void q_pack4(__m512i dst[8], const uint8_t *blk, size_t wrb, int rows)
{
    __m512i y[4], t[4];
    _Pragma("GCC unroll 4") for (int c = 0; c < 4; c++)
    {
        __m128i r[4];
        _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) r[k] =
            c + 4 * k < rows
                ? _mm_loadu_si128((const __m128i *)(blk + (size_t)(c + 4 * k) * wrb + 2))
                : _mm_setzero_si128();
        y[c] = _mm512_inserti32x4(
            _mm512_inserti32x4(_mm512_inserti32x4(_mm512_castsi128_si512(r[0]), r[1], 1), r[2], 2),
            r[3], 3);
    }
    t[0] = _mm512_unpacklo_epi32(y[0], y[1]);
    t[1] = _mm512_unpackhi_epi32(y[0], y[1]);
    t[2] = _mm512_unpacklo_epi32(y[2], y[3]);
    t[3] = _mm512_unpackhi_epi32(y[2], y[3]);
    const __m512i d[4] = { _mm512_unpacklo_epi64(t[0], t[2]), _mm512_unpackhi_epi64(t[0], t[2]),
                           _mm512_unpacklo_epi64(t[1], t[3]), _mm512_unpackhi_epi64(t[1], t[3]) };
    const __m512i nib = _mm512_set1_epi8(15);
    _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++)
    {
        dst[j] = _mm512_and_si512(d[j], nib);
        dst[j + 4] = _mm512_and_si512(_mm512_srli_epi32(d[j], 4), nib);
    }
}

KINL void q_pack_block(const bool q4, __m512i dst[PK_ZMM], const uint8_t *blk, size_t wrb, int rows)
{
    dst[8] = _mm512_castps_si512(q_scales(blk, wrb, rows));
    if (q4)
        q_pack4(dst, blk, wrb, rows);
    else
        q_pack8(dst, blk, wrb, rows);
}

/* Groups g0 .. g0+ng-1 (rows n = 16 g + lane; rows past N read as zero)
 * into panel: group g's block b at panel + (g * nb + b) * PK_ZMM. */
KFN void q_pack(__m512i *panel, const uint8_t *w, size_t wrb, size_t N, size_t g0, size_t ng,
                size_t nb, bool q4)
{
    const size_t bb = q4 ? Q4_BLOCK_BYTES : Q8_BLOCK_BYTES;
    for (size_t g = 0; g < ng; g++) {
        const size_t n0 = (g0 + g) * Q_GROUP;
        const int rows = (int)idf2_min_sz(Q_GROUP, N - n0);
        const uint8_t *base = w + n0 * wrb;
        for (size_t b = 0; b < nb; b++) {
            const uint8_t *blk = base + b * bb;
            __m512i *dst = panel + (g * nb + b) * PK_ZMM;
            /* 16 rows far apart are 16 streams that the hardware
             * prefetcher does not follow far enough ahead. */
            _Pragma("GCC unroll 16") for (size_t c = 0; c < Q_GROUP; c++)
                _mm_prefetch((const char *)blk + c * wrb + PF_AHEAD, _MM_HINT_T0);
            if (rows == Q_GROUP)
                q_pack_block(q4, dst, blk, wrb, Q_GROUP);
            else
                q_pack_block(q4, dst, blk, wrb, rows);
        }
    }
}

static int32_t ld32(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* The raw weights of a thread's next panel, fetched into L2 while the
 * tiles run over this one (packing reads them from there), a slice per
 * tile: per_block lines from `at` at each block.  Packing from memory
 * while no tile runs, and tiles while memory idles, had left the two
 * phases end to end (packing was half of a 16-row call's time). */
struct q_ahead {
    const char *at;
    size_t per_block;
    /* x16 1-2 row tiles: the next group's half scales (a line per two
     * blocks), which the stream `at` never reaches; NULL else. */
    const char *sc;
};

/* A row tile's MR activation rows from a's row r0: zeroed accumulators
 * and where each row's codes, scales and offset terms are. */
KINL void q_tile_rows(const int MR, const struct qx *a, size_t r0, __m512 acc[Q_MR],
                      const int8_t *xq[Q_MR], const float *dx[Q_MR], const int32_t *corr[Q_MR])
{
    _Pragma("GCC unroll 12") for (int r = 0; r < Q_MR; r++) if (r < MR)
    {
        acc[r] = _mm512_setzero_ps();
        xq[r] = qx_codes(a, r0 + (size_t)r);
        dx[r] = qx_dx(a, r0 + (size_t)r);
        corr[r] = qx_corr(a, r0 + (size_t)r);
    }
}

/* The next span's rows (groups g1.., up to pg of them, contiguous after
 * this span's; none past Q_AHEAD_ROWS activation rows), to be fetched a
 * slice per tile call over this span's `calls` tile calls. */
struct q_next {
    const char *at;
    size_t lines, per_block, span;
};

static struct q_next q_next_span(const uint8_t *w, size_t wrb, size_t N, size_t nb, size_t m,
                                 size_t g1, size_t gb, size_t pg, size_t calls)
{
    const size_t ng1 = g1 < gb && m <= Q_AHEAD_ROWS ? idf2_min_sz(pg, gb - g1) : 0;
    const size_t r1 = idf2_min_sz(N, g1 * Q_GROUP);
    struct q_next q = { (const char *)w + r1 * wrb, 0, 0, 0 };
    q.lines = (idf2_min_sz(N, (g1 + ng1) * Q_GROUP) - r1) * wrb / 64;
    q.per_block = ((q.lines + calls - 1) / calls + nb - 1) / nb;
    q.span = nb * q.per_block;
    return q;
}

/* Tile call c's slice; the last one ends at the tail rather than past it. */
static struct q_ahead q_next_slice(const struct q_next *q, size_t c)
{
    struct q_ahead pf = { q->at, 0, NULL };
    if (q->lines >= q->span && c * q->span < q->lines) {
        pf.at = q->at + idf2_min_sz(c * q->span, q->lines - q->span) * 64;
        pf.per_block = q->per_block;
    }
    return pf;
}

/* MR activation rows from a's row r0 x one packed group p over nb blocks;
 * y: row r0's column of the group's first row, cm its live columns.  The
 * row loops run to the constant Q_MR, rows past MR skipped: clang
 * optimizes this body once on its own, where MR is unknown, and there
 * unrolled `r < MR` loops by 2 with the rows' accumulators in memory (its
 * tiles ran ~3x slower than gcc's); with a constant count they unroll
 * fully, and inlining with a constant MR drops the skipped rows. */
KINL void q_gemm_tile(const int MR, const struct qx *a, size_t r0, const __m512i *p, size_t nb,
                      float *y, size_t ldy, __mmask16 cm, const float *bias,
                      const struct q_ahead *pf)
{
    __m512 acc[Q_MR];
    const int8_t *xq[Q_MR];
    const float *dx[Q_MR];
    const int32_t *corr[Q_MR];
    q_tile_rows(MR, a, r0, acc, xq, dx, corr);
    for (size_t b = 0; b < nb; b++) {
        for (size_t i = 0; i < pf->per_block; i++)
            _mm_prefetch(pf->at + (b * pf->per_block + i) * 64, _MM_HINT_T1);
        const __m512i *pb = p + b * PK_ZMM;
        __m512i wv[8];
        _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) wv[j] = _mm512_load_si512(pb + j);
        const __m512 dw = _mm512_castsi512_ps(_mm512_load_si512(pb + 8));
        /* Weight zmm j for every row in turn: MR independent chains side
         * by side for the scheduler. */
        __m512i dot[Q_MR];
        _Pragma("GCC unroll 12") for (int r = 0; r < Q_MR; r++) if (r < MR) dot[r] =
            _mm512_set1_epi32(corr[r][b]);
        _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++)
            _Pragma("GCC unroll 12") for (int r = 0; r < Q_MR; r++) if (r < MR) dot[r] =
                _mm512_dpbusd_epi32(dot[r], wv[j], _mm512_set1_epi32(ld32(xq[r] + b * 32 + 4 * j)));
        _Pragma("GCC unroll 12") for (int r = 0; r < Q_MR; r++) if (r < MR) acc[r] =
            q_step(acc[r], dot[r], dw, dx[r][b]);
    }
    _Pragma("GCC unroll 12") for (int r = 0; r < Q_MR; r++) if (r < MR)
        q_store(y + (size_t)r * ldy, cm, acc[r], bias);
}

/* Cases past Q_MR are never taken (tiles have at most Q_MR rows); the
 * min keeps their dead code within the arrays. */
#define GEMM_CASE(R_)                                                                              \
    case R_:                                                                                       \
        q_gemm_tile((R_) < Q_MR ? (R_) : Q_MR, a, r0, p, nb, y, ldy, cm, bias, pf);                \
        break;

KFN void q_gemm_tile_any(int MR, const struct qx *a, size_t r0, const __m512i *p, size_t nb,
                         float *y, size_t ldy, __mmask16 cm, const float *bias,
                         const struct q_ahead *pf)
{
    switch (MR) {
        GEMM_CASE(1)
        GEMM_CASE(2)
        GEMM_CASE(3)
        GEMM_CASE(4)
        GEMM_CASE(5)
        GEMM_CASE(6)
        GEMM_CASE(7)
        GEMM_CASE(8)
        GEMM_CASE(9)
        GEMM_CASE(10)
        GEMM_CASE(11)
        GEMM_CASE(12)
    default:
        break;
    }
}

/* A thread's groups [ga, gb): per panel, pack, then every row tile over
 * every group of it. */
KFN void q_gemm_groups(float *y, const struct qx *a, size_t m, const uint8_t *w, size_t wrb,
                       size_t N, size_t nb, bool q4, const float *bias, __m512i *panel, size_t ga,
                       size_t gb)
{
    const size_t pg = panel_groups(nb);
    const size_t tiles = (m + Q_MR - 1) / Q_MR;
    for (size_t g0 = ga; g0 < gb; g0 += pg) {
        const size_t ng = idf2_min_sz(pg, gb - g0);
        q_pack(panel, w, wrb, N, g0, ng, nb, q4);
        const struct q_next nx = q_next_span(w, wrb, N, nb, m, g0 + ng, gb, pg, tiles * ng);
        size_t call = 0;
        /* Row tiles of balanced heights (16 rows: 8 + 8, not 10 + 6). */
        for (size_t t = 0; t < tiles; t++) {
            const size_t r0 = m * t / tiles;
            const int mr = (int)(m * (t + 1) / tiles - r0);
            for (size_t g = 0; g < ng; g++, call++) {
                const size_t n0 = (g0 + g) * Q_GROUP;
                const struct q_ahead pf = q_next_slice(&nx, call);
                q_gemm_tile_any(mr, a, r0, panel + g * nb * PK_ZMM, nb, y + r0 * N + n0, N,
                                tail16(N - n0), bias ? bias + n0 : NULL, &pf);
            }
        }
    }
}

/* ---- streaming tiles (1 or 2 rows) --------------------------------------------------------- */

/* Bytes of one activation row in the Q8_0 streaming layout: a 64-byte
 * aligned stride. */
static size_t q8_sl_bytes(size_t kp)
{
    return idf2_align64(kp + kp / 16);
}

/* Row codes (kp of them) in the byte layout of a Q8_0 weight chunk read
 * from its byte 4 (q8_stream_chunk): per 64 inputs, the even block's codes
 * 2-31, two zeros (against the odd block's scale), the odd block's 32
 * codes; after all chunks, per chunk the dword (0, 0, code 0, code 1) for
 * the weight dword at the chunk's byte 0 (the even block's scale and its
 * codes 0 and 1). */
static void q8_stream_layout(int8_t *sl, const int8_t *codes, size_t kp)
{
    int8_t *head = sl + kp;
    for (size_t ch = 0; ch < kp / 64; ch++) {
        const int8_t *c = codes + ch * 64;
        int8_t *d = sl + ch * 64;
        memcpy(d, c + 2, 30);
        d[30] = d[31] = 0;
        memcpy(d + 32, c + 32, 32);
        const int8_t h[4] = { 0, 0, c[0], c[1] };
        memcpy(head + ch * 4, h, 4);
    }
}

/* Blocks per Q4_0 streaming chunk: one per 128-bit lane. */
#define Q4_CHUNK 4

/* Bytes of one activation row in the Q4_0 streaming layout. */
static size_t q4_sl_bytes(size_t kp)
{
    return idf2_align64((kp + 127) / 128 * 128);
}

/* Row codes (kp of them) in the order of Q4_0 nibbles as stored: per 4
 * blocks, 64 bytes of the blocks' codes 0-15 (block l in 128-bit lane l,
 * against the low nibbles) then 64 of their codes 16-31 (the high ones);
 * zero past kp. */
static void q4_stream_layout(int8_t *sl, const int8_t *codes, size_t kp)
{
    memset(sl, 0, q4_sl_bytes(kp));
    for (size_t b = 0; b < kp / 32; b++) {
        int8_t *d = sl + b / Q4_CHUNK * 128 + b % Q4_CHUNK * 16;
        memcpy(d, codes + b * 32, 16);
        memcpy(d + 64, codes + b * 32 + 16, 16);
    }
}

/* The streaming tiles' integer fold, in two parts so that it runs as the
 * dot products come (a tile keeps one zmm per 4 weight rows and activation
 * row live instead of 16: with 2 rows, 32 live dot products spilled).
 * quad4: the sums of 4 vectors' dwords 4l..4l+3, vector j's in dword j of
 * 128-bit lane l. */
KINL __m512i quad4(const __m512i v[4])
{
    const __m512i a0 = _mm512_add_epi32(_mm512_unpacklo_epi32(v[0], v[1]),
                                        _mm512_unpackhi_epi32(v[0], v[1])),
                  a1 = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2], v[3]),
                                        _mm512_unpackhi_epi32(v[2], v[3]));
    return _mm512_add_epi32(_mm512_unpacklo_epi64(a0, a1), _mm512_unpackhi_epi64(a0, a1));
}

/* Integer lane sums of 16 vectors: lane c of *even is the sum of v[c]'s
 * lanes 0-7, of *odd of its lanes 8-15 (quad4 of each 4, then pairs of
 * 128-bit lanes; all quad4 steps first, as the Q8_0 tile measured best). */
KINL void fold16(const __m512i v[16], __m512i *even, __m512i *odd)
{
    __m512i a[8], q[4];
    _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) a[i] =
        _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]),
                         _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
    _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) q[i] =
        _mm512_add_epi32(_mm512_unpacklo_epi64(a[2 * i], a[2 * i + 1]),
                         _mm512_unpackhi_epi64(a[2 * i], a[2 * i + 1]));
    /* c0: rows 0-3 even, rows 0-3 odd, rows 4-7 even, rows 4-7 odd. */
    const __m512i c0 = _mm512_add_epi32(_mm512_shuffle_i32x4(q[0], q[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                        _mm512_shuffle_i32x4(q[0], q[1], _MM_SHUFFLE(3, 1, 3, 1)));
    const __m512i c1 = _mm512_add_epi32(_mm512_shuffle_i32x4(q[2], q[3], _MM_SHUFFLE(2, 0, 2, 0)),
                                        _mm512_shuffle_i32x4(q[2], q[3], _MM_SHUFFLE(3, 1, 3, 1)));
    *even = _mm512_shuffle_i32x4(c0, c1, _MM_SHUFFLE(2, 0, 2, 0));
    *odd = _mm512_shuffle_i32x4(c0, c1, _MM_SHUFFLE(3, 1, 3, 1));
}

/* From quad4 of rows 4i..4i+3 in q[i]: lane c of e[l] is the sum of row
 * c's 128-bit lane l (a 4 x 4 transpose of 128-bit lanes). */
KINL void fold_quarters(const __m512i q[4], __m512i e[4])
{
    const __m512i t0 = _mm512_shuffle_i32x4(q[0], q[1], _MM_SHUFFLE(1, 0, 1, 0)),
                  t1 = _mm512_shuffle_i32x4(q[0], q[1], _MM_SHUFFLE(3, 2, 3, 2)),
                  t2 = _mm512_shuffle_i32x4(q[2], q[3], _MM_SHUFFLE(1, 0, 1, 0)),
                  t3 = _mm512_shuffle_i32x4(q[2], q[3], _MM_SHUFFLE(3, 2, 3, 2));
    e[0] = _mm512_shuffle_i32x4(t0, t2, _MM_SHUFFLE(2, 0, 2, 0));
    e[1] = _mm512_shuffle_i32x4(t0, t2, _MM_SHUFFLE(3, 1, 3, 1));
    e[2] = _mm512_shuffle_i32x4(t1, t3, _MM_SHUFFLE(2, 0, 2, 0));
    e[3] = _mm512_shuffle_i32x4(t1, t3, _MM_SHUFFLE(3, 1, 3, 1));
}

/* The next tile's rows follow this tile's: fetch as much of them per chunk
 * as chunk ch reads (cb bytes of each row), so that they are in cache when
 * it starts (rows of 2-15 KiB are too short for the hardware's stream
 * detection to hide their first misses). */
KINL void q_stream_prefetch(const uint8_t *w, size_t wrb, size_t cb, size_t ch)
{
    const size_t per = Q_GROUP * cb;
    for (size_t o = 0; o < per; o += 64)
        _mm_prefetch((const char *)w + Q_GROUP * wrb + ch * per + o, _MM_HINT_T0);
}

/* The float steps of Q8_0 chunk ch for MR rows: dots[r] folded, its even
 * block sums plus extra[r] (the part of them summed elsewhere), scales dwe
 * and (two) dwo of the 16 weight rows. */
KINL void q_stream_steps(const int MR, const bool two, const struct qx *a, size_t ch,
                         const __m512i dots[2][Q_GROUP], const __m512i extra[2], __m512 dwe,
                         __m512 dwo, __m512 acc[2])
{
    _Pragma("GCC unroll 2") for (int r = 0; r < MR; r++)
    {
        const float *dx = qx_dx(a, (size_t)r);
        const int32_t *corr = qx_corr(a, (size_t)r);
        __m512i even, odd;
        fold16(dots[r], &even, &odd);
        even = _mm512_add_epi32(even, _mm512_add_epi32(extra[r], _mm512_set1_epi32(corr[2 * ch])));
        acc[r] = q_step(acc[r], even, dwe, dx[2 * ch]);
        if (two)
            acc[r] = q_step(acc[r], _mm512_add_epi32(odd, _mm512_set1_epi32(corr[2 * ch + 1])), dwo,
                            dx[2 * ch + 1]);
    }
}

/* Chunk c (blocks 4c .. 4c+nbt-1, nbt <= 4) of a Q4_0 streaming tile.
 * A word permute of the chunk's 72 bytes puts block l's 16 bytes of
 * nibbles in 128-bit lane l; the low nibbles (an AND) meet the
 * activations' codes 0-15 and the high ones (a shift and an AND) codes
 * 16-31 as q4_stream_layout lays them out, so each lane's 4 dwords hold its
 * block's products and fold_quarters gives each block's 16 row sums whole.
 * The 16 rows' scales (words 0, 9, 18 and 27 of each row's first load)
 * come out of the same loads by word permutes, 4 rows at a time (gathers
 * of them took about a third of the tile's time). */
KINL void q4_stream_chunk(const int MR, const bool full, const int nbt, const struct qx *a,
                          const uint8_t *w, size_t wrb, int nr, size_t c, __m512 acc[2])
{
    const size_t bb = Q4_BLOCK_BYTES, slb = q4_sl_bytes(a->kp);
    const __m512i z = _mm512_setzero_si512(), nib = _mm512_set1_epi8(15);
    const __m512i idx =
        _mm512_set_epi16(35, 34, 33, 32, 31, 30, 29, 28, 26, 25, 24, 23, 22, 21, 20, 19, 17, 16, 15,
                         14, 13, 12, 11, 10, 8, 7, 6, 5, 4, 3, 2, 1);
    const uint8_t *blk = w + Q4_CHUNK * c * bb;
    const size_t nbytes = (size_t)nbt * bb;
    const __mmask64 m0 = nbytes >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << nbytes) - 1;
    const __mmask64 m1 = nbytes > 64 ? ((__mmask64)1 << (nbytes - 64)) - 1 : 0;
    /* Words 0-3: the 4 scales of the first source, 4-7 of the second. */
    const __m512i sidx = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                          0, 0, 0, 0, 0, 59, 50, 41, 32, 27, 18, 9, 0);
    __m512i alo[2], ahi[2], quads[2][4], sg[4];
    _Pragma("GCC unroll 2") for (int r = 0; r < MR; r++)
    {
        const int8_t *sl = a->sl + (size_t)r * slb + c * 128;
        alo[r] = _mm512_load_si512(sl);
        ahi[r] = _mm512_load_si512(sl + 64);
    }
    _Pragma("GCC unroll 4") for (int g = 0; g < 4; g++)
    {
        __m512i dots[2][4], r0[4];
        _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++)
        {
            const int cr = 4 * g + k;
            __m512i lo = z, hi = z;
            r0[k] = z;
            if (full || cr < nr) {
                const uint8_t *p = blk + (size_t)cr * wrb;
                r0[k] = nbt == Q4_CHUNK ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi8(m0, p);
                const __m512i r1 =
                    nbt == Q4_CHUNK
                        ? _mm512_castsi128_si512(_mm_loadl_epi64((const __m128i *)(p + 64)))
                        : _mm512_maskz_loadu_epi8(m1, p + 64);
                const __m512i v = _mm512_permutex2var_epi16(r0[k], idx, r1);
                lo = _mm512_and_si512(v, nib);
                hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
            }
            _Pragma("GCC unroll 2") for (int r = 0; r < MR; r++) dots[r][k] =
                _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(z, lo, alo[r]), hi, ahi[r]);
        }
        _Pragma("GCC unroll 2") for (int r = 0; r < MR; r++) quads[r][g] = quad4(dots[r]);
        /* 128-bit lanes 0 and 2: rows 4g, 4g+1 and 4g+2, 4g+3, 4 scales
         * each. */
        sg[g] = _mm512_shuffle_i32x4(_mm512_permutex2var_epi16(r0[0], sidx, r0[1]),
                                     _mm512_permutex2var_epi16(r0[2], sidx, r0[3]), 0);
    }
    q_stream_prefetch(w, wrb, Q4_CHUNK * bb, c);
    /* h[i]: rows 8i..8i+7, row j's scale l at word 4 j + l; then s01 holds
     * blocks 0 and 1's 16 scales, s23 blocks 2 and 3's. */
    const __m512i h0 = _mm512_shuffle_i32x4(sg[0], sg[1], _MM_SHUFFLE(2, 0, 2, 0)),
                  h1 = _mm512_shuffle_i32x4(sg[2], sg[3], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512i s01 = _mm512_permutex2var_epi16(
                      h0,
                      _mm512_set_epi16(61, 57, 53, 49, 45, 41, 37, 33, 29, 25, 21, 17, 13, 9, 5, 1,
                                       60, 56, 52, 48, 44, 40, 36, 32, 28, 24, 20, 16, 12, 8, 4, 0),
                      h1),
                  s23 = _mm512_permutex2var_epi16(h0,
                                                  _mm512_set_epi16(63, 59, 55, 51, 47, 43, 39, 35,
                                                                   31, 27, 23, 19, 15, 11, 7, 3, 62,
                                                                   58, 54, 50, 46, 42, 38, 34, 30,
                                                                   26, 22, 18, 14, 10, 6, 2),
                                                  h1);
    const __m512 dw[Q4_CHUNK] = { _mm512_cvtph_ps(_mm512_castsi512_si256(s01)),
                                  _mm512_cvtph_ps(_mm512_extracti64x4_epi64(s01, 1)),
                                  _mm512_cvtph_ps(_mm512_castsi512_si256(s23)),
                                  _mm512_cvtph_ps(_mm512_extracti64x4_epi64(s23, 1)) };
    _Pragma("GCC unroll 2") for (int r = 0; r < MR; r++)
    {
        const float *dx = qx_dx(a, (size_t)r) + Q4_CHUNK * c;
        const int32_t *corr = qx_corr(a, (size_t)r) + Q4_CHUNK * c;
        __m512i e[Q4_CHUNK];
        fold_quarters(quads[r], e);
        _Pragma("GCC unroll 4") for (int l = 0; l < Q4_CHUNK; l++) if (l < nbt) acc[r] =
            q_step(acc[r], _mm512_add_epi32(e[l], _mm512_set1_epi32(corr[l])), dw[l], dx[l]);
    }
}

/* One 64-input chunk ch of a Q8_0 streaming tile.  Each weight row's chunk
 * is one plain 64-byte load from its byte 4 (lanes 0-7: the even block's
 * codes 2-31 and the odd block's scale, 8-15: the odd block's codes)
 * against the activations in q8_stream_layout; a gather of the 16 rows'
 * dwords at byte 0 gives the even scales and the even blocks' codes 0-1,
 * one at byte 32 the odd scales.  No shuffle per row but the fold's (an
 * insert and general-register scales measured ~8 % slower from L2). */
KINL void q8_stream_chunk(const int MR, const bool full, const bool two, const struct qx *a,
                          const uint8_t *w, size_t wrb, int nr, size_t ch, __m512 acc[2])
{
    const size_t bb = Q8_BLOCK_BYTES, slb = q8_sl_bytes(a->kp);
    const __m512i z = _mm512_setzero_si512(), flip = _mm512_set1_epi8((char)0x80);
    const uint8_t *blk = w + 2 * ch * bb;
    __m512i av[2], ah[2];
    _Pragma("GCC unroll 2") for (int r = 0; r < MR; r++)
    {
        const int8_t *sl = a->sl + (size_t)r * slb;
        av[r] = _mm512_load_si512(sl + ch * 64);
        int32_t h;
        memcpy(&h, sl + a->kp + ch * 4, 4);
        ah[r] = _mm512_set1_epi32(h);
    }
    /* Folded after all 16 rows: as they come (the Q4_0 tile's order) ran
     * ~7 % slower here. */
    __m512i dots[2][Q_GROUP];
    _Pragma("GCC unroll 16") for (int c = 0; c < Q_GROUP; c++)
    {
        /* Rows past nr are not read; of a lone last block, codes 2-31. */
        const uint8_t *p = blk + (size_t)c * wrb + 4;
        __m512i wv = z;
        if (full || c < nr)
            wv = _mm512_xor_si512(
                two ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi8(0x3FFFFFFF, p), flip);
        _Pragma("GCC unroll 2") for (int r = 0; r < MR; r++) dots[r][c] =
            _mm512_dpbusd_epi32(z, wv, av[r]);
    }
    q_stream_prefetch(w, wrb, 2 * bb, ch);
    const __mmask16 rm = full ? 0xFFFF : tail16((size_t)nr);
    const __m512i roff =
        _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                           _mm512_set1_epi32((int)wrb));
    const __m512i g0 = _mm512_mask_i32gather_epi32(z, rm, roff, blk, 1);
    const __m512 dwe = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g0));
    const __m512 dwo = two ? _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(
                                 _mm512_mask_i32gather_epi32(z, rm, roff, blk + bb - 2, 1), 16)))
                           : _mm512_setzero_ps();
    const __m512i head = _mm512_xor_si512(g0, flip);
    __m512i extra[2];
    _Pragma("GCC unroll 2") for (int r = 0; r < MR; r++) extra[r] =
        _mm512_dpbusd_epi32(z, head, ah[r]);
    q_stream_steps(MR, two, a, ch, dots, extra, dwe, dwo, acc);
}

/* MR (1 or 2) activation rows x the nr <= 16 weight rows from w on (full:
 * nr is 16). */
KINL void q_stream_tile(const int MR, const bool q4, const bool full, const struct qx *a,
                        const uint8_t *w, size_t wrb, int nr, size_t nblocks, float *y, size_t ldy,
                        const float *bias)
{
    __m512 acc[2] = { _mm512_setzero_ps(), _mm512_setzero_ps() };
    if (q4) {
        for (size_t c = 0; c < nblocks / Q4_CHUNK; c++)
            q4_stream_chunk(MR, full, Q4_CHUNK, a, w, wrb, nr, c, acc);
        if (nblocks % Q4_CHUNK)
            q4_stream_chunk(MR, full, (int)(nblocks % Q4_CHUNK), a, w, wrb, nr, nblocks / Q4_CHUNK,
                            acc);
    } else {
        for (size_t ch = 0; ch < nblocks / 2; ch++)
            q8_stream_chunk(MR, full, true, a, w, wrb, nr, ch, acc);
        if (nblocks % 2)
            q8_stream_chunk(MR, full, false, a, w, wrb, nr, nblocks / 2, acc);
    }
    _Pragma("GCC unroll 2") for (int r = 0; r < MR; r++)
        q_store(y + (size_t)r * ldy, tail16((size_t)nr), acc[r], bias);
}

/* One function per tile kind: inlined into one, the eight kinds share a
 * register allocation that cost Q4_0 ~15 % once Q8_0 had its own chunk. */
#define STREAM_FN(R_, Q4_, FULL_)                                                                  \
    KFN __attribute__((noinline)) void q_stream_##R_##Q4_##FULL_(                                  \
        const struct qx *a, const uint8_t *wg, size_t wrb, int nr, size_t nblocks, float *y,       \
        size_t N, const float *bg)                                                                 \
    {                                                                                              \
        q_stream_tile(R_, Q4_, FULL_, a, wg, wrb, nr, nblocks, y, N, bg);                          \
    }
STREAM_FN(1, 0, 0)
STREAM_FN(1, 0, 1)
STREAM_FN(1, 1, 0)
STREAM_FN(1, 1, 1)
STREAM_FN(2, 0, 0)
STREAM_FN(2, 0, 1)
STREAM_FN(2, 1, 0)
STREAM_FN(2, 1, 1)

#define STREAM_CASE(R_, Q4_, FULL_)                                                                \
    case ((R_)*2 + (Q4_)) * 2 + (FULL_):                                                           \
        q_stream_##R_##Q4_##FULL_(a, wg, wrb, nr, nblocks, y + n0, N, bg);                         \
        break;

/* A thread's groups [ga, gb) for m <= 2 rows. */
KFN void q_stream_groups(float *y, const struct qx *a, size_t m, const uint8_t *w, size_t wrb,
                         size_t N, size_t nblocks, bool q4, const float *bias, size_t ga, size_t gb)
{
    for (size_t g = ga; g < gb; g++) {
        const size_t n0 = g * Q_GROUP;
        const int nr = (int)idf2_min_sz(Q_GROUP, N - n0);
        const uint8_t *wg = w + n0 * wrb;
        const float *bg = bias ? bias + n0 : NULL;
        switch (((int)m * 2 + (int)q4) * 2 + (nr == Q_GROUP)) {
            STREAM_CASE(1, 0, 0)
            STREAM_CASE(1, 0, 1)
            STREAM_CASE(1, 1, 0)
            STREAM_CASE(1, 1, 1)
            STREAM_CASE(2, 0, 0)
            STREAM_CASE(2, 0, 1)
            STREAM_CASE(2, 1, 0)
            STREAM_CASE(2, 1, 1)
        default:
            break;
        }
    }
}

/* ---- driver -------------------------------------------------------------------------------- */

/* m activation rows quantized into ws, rows xq_bytes(K) apart (struct qx),
 * for unsigned weight codes offset by 8 (q4) or 128. */
static void q_acts(void *ws, const float *x, size_t m, size_t x_stride, size_t K, bool q4, int nt)
{
    const size_t kp = xq_row(K);
#pragma omp parallel for schedule(static) num_threads(m >= 8 ? nt : 1)
    for (long r = 0; r < (long)m; r++) {
        int8_t *row = (int8_t *)ws + (size_t)r * xq_bytes(K);
        qact_row(row, (float *)(void *)(row + kp), (int32_t *)(void *)(row + kp + kp / 32 * 4),
                 x + (size_t)r * x_stride, K, kp, q4 ? 8 : 128);
    }
}

void idf2_q8_mm(float *y, const float *x, size_t m, size_t x_stride, const void *w, size_t N,
                size_t K, bool q4, const float *bias, void *ws, int nt)
{
    if (m == 0 || N == 0)
        return;
    const size_t kp = xq_row(K), nblocks = (K + 31) / 32, wrb = w_row_bytes(K, q4);
    char *panels = (char *)ws + idf2_align64(m * xq_bytes(K));
    /* Streaming tiles read their activations from the panel space, which
     * only 3+ rows use (one panel, 18 kp bytes or more, holds two rows of
     * q8_sl_bytes(kp) or q4_sl_bytes(kp)). */
    const struct qx a = { ws, xq_bytes(K), kp, (const int8_t *)panels };
    q_acts(ws, x, m, x_stride, K, q4, nt);
    if (m <= 2)
        for (size_t r = 0; r < m; r++) {
            if (q4)
                q4_stream_layout((int8_t *)panels + r * q4_sl_bytes(kp), qx_codes(&a, r), kp);
            else
                q8_stream_layout((int8_t *)panels + r * q8_sl_bytes(kp), qx_codes(&a, r), kp);
        }
    const size_t groups = (N + Q_GROUP - 1) / Q_GROUP;
    const int team = m * N * K < (1u << 18) ? 1 : (nt > 0 ? nt : 1);
#pragma omp parallel num_threads(team)
    {
        const size_t t = (size_t)omp_get_thread_num(), T = (size_t)omp_get_num_threads();
        const size_t ga = groups * t / T, gb = groups * (t + 1) / T;
        if (m <= 2)
            q_stream_groups(y, &a, m, w, wrb, N, nblocks, q4, bias, ga, gb);
        else
            q_gemm_groups(y, &a, m, w, wrb, N, nblocks, q4, bias,
                          (__m512i *)(void *)(panels + t * panel_ws(K)), ga, gb);
    }
}

/* ---- interleaved weights (Q8_0X16 / Q4_0X16): every row count ------------------------------ */

/* MR activation rows from a's row r0 x one group of `lanes` interleaved
 * weight rows at grp over nb blocks (layout: synth/idf2_backend.h): per
 * block the 8 code zmm come straight from the weights (Q4_0: 4 loads, an
 * AND and a shift), lane c = weight row c, and each activation row costs
 * 8 vpdpbusd against its code quads broadcast from memory, a convert, a
 * multiply and an fma: no fold, no gathers, no repack.  With 1-2 rows two
 * chains per row (quads 0-3, 4-7) cover vpdpbusd's latency; the integer
 * sum is exact in any order, so the bits are the packed tiles'. */
KINL void qx_tile(const int MR, const bool q4, const struct qx *a, size_t r0, const uint8_t *grp,
                  size_t lanes, size_t nb, float *y, size_t ldy, const float *bias,
                  const struct q_ahead *pf)
{
    const size_t cb = q4 ? 16 : 32, cs = lanes * 4;
    const uint8_t *sc = grp + nb * lanes * cb;
    const __mmask64 lm = lanes >= 16 ? ~(__mmask64)0 : ((__mmask64)1 << cs) - 1;
    const __mmask16 cm = tail16(lanes);
    const __m512i nib = _mm512_set1_epi8(15);
    __m512 acc[Q_MR];
    const int8_t *xq[Q_MR];
    const float *dx[Q_MR];
    const int32_t *corr[Q_MR];
    q_tile_rows(MR, a, r0, acc, xq, dx, corr);
    for (size_t b = 0; b < nb; b++) {
        for (size_t i = 0; i < pf->per_block; i++)
            _mm_prefetch(pf->at + (b * pf->per_block + i) * 64, _MM_HINT_T0);
        if (pf->sc)
            _mm_prefetch(pf->sc + b * lanes * 2, _MM_HINT_T0);
        const uint8_t *cp = grp + b * lanes * cb;
        __m512i wv[8];
        if (q4) {
            _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++)
            {
                const __m512i v = _mm512_maskz_loadu_epi8(lm, cp + (size_t)j * cs);
                wv[j] = _mm512_and_si512(v, nib);
                wv[j + 4] = _mm512_and_si512(_mm512_srli_epi32(v, 4), nib);
            }
        } else {
            _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) wv[j] =
                _mm512_maskz_loadu_epi8(lm, cp + (size_t)j * cs);
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(cm, sc + b * lanes * 2));
        __m512i dot[Q_MR], dot2[2];
        _Pragma("GCC unroll 12") for (int r = 0; r < Q_MR; r++) if (r < MR) dot[r] =
            _mm512_set1_epi32(corr[r][b]);
        if (MR <= 2) {
            _Pragma("GCC unroll 2") for (int r = 0; r < 2; r++) if (r < MR) dot2[r] =
                _mm512_setzero_si512();
            _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++)
                _Pragma("GCC unroll 2") for (int r = 0; r < 2; r++) if (r < MR)
            {
                dot[r] = _mm512_dpbusd_epi32(dot[r], wv[j],
                                             _mm512_set1_epi32(ld32(xq[r] + b * 32 + 4 * j)));
                dot2[r] = _mm512_dpbusd_epi32(dot2[r], wv[j + 4],
                                              _mm512_set1_epi32(ld32(xq[r] + b * 32 + 16 + 4 * j)));
            }
            _Pragma("GCC unroll 2") for (int r = 0; r < 2; r++) if (r < MR) dot[r] =
                _mm512_add_epi32(dot[r], dot2[r]);
        } else {
            _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) _Pragma(
                "GCC unroll 12") for (int r = 0; r < Q_MR; r++) if (r < MR) dot[r] =
                _mm512_dpbusd_epi32(dot[r], wv[j], _mm512_set1_epi32(ld32(xq[r] + b * 32 + 4 * j)));
        }
        _Pragma("GCC unroll 12") for (int r = 0; r < Q_MR; r++) if (r < MR) acc[r] =
            q_step(acc[r], dot[r], dw, dx[r][b]);
    }
    _Pragma("GCC unroll 12") for (int r = 0; r < Q_MR; r++) if (r < MR)
        q_store(y + (size_t)r * ldy, cm, acc[r], bias);
}

/* One function per (rows, format): see STREAM_FN. */
#define QX_FN(R_, Q4_)                                                                             \
    KFN __attribute__((noinline)) void qx_tile_##R_##_##Q4_(                                       \
        const struct qx *a, size_t r0, const uint8_t *grp, size_t lanes, size_t nb, float *y,      \
        size_t ldy, const float *bias, const struct q_ahead *pf)                                   \
    {                                                                                              \
        qx_tile(R_, Q4_, a, r0, grp, lanes, nb, y, ldy, bias, pf);                                 \
    }
#define QX_FNS(R_) QX_FN(R_, 0) QX_FN(R_, 1)
QX_FNS(1)
QX_FNS(2)
QX_FNS(3)
QX_FNS(4)
QX_FNS(5)
QX_FNS(6)
QX_FNS(7)
QX_FNS(8)
QX_FNS(9)
QX_FNS(10)

#define QX_CASE(R_)                                                                                \
    case R_:                                                                                       \
        (q4 ? qx_tile_##R_##_1 : qx_tile_##R_##_0)(a, r0, grp, lanes, nb, y, ldy, bias, pf);       \
        break;

KFN void qx_tile_any(int MR, bool q4, const struct qx *a, size_t r0, const uint8_t *grp,
                     size_t lanes, size_t nb, float *y, size_t ldy, const float *bias,
                     const struct q_ahead *pf)
{
    switch (MR) {
        QX_CASE(1)
        QX_CASE(2)
        QX_CASE(3)
        QX_CASE(4)
        QX_CASE(5)
        QX_CASE(6)
        QX_CASE(7)
        QX_CASE(8)
        QX_CASE(9)
        QX_CASE(10)
    default:
        break;
    }
}

/* 1-2 activation rows (decode) x one whole group at grp over nb blocks,
 * qx_tile's sums for 16 lanes: plain loads, two chains per row (to cover
 * vpdpbusd's latency), and per block prefetched into L2: the lines
 * QX_PF_Q8 / QX_PF_Q4 bytes on in the thread's stream (past the group's
 * codes, the next group's, at nx) and a line of the next group's scales.  Q8_0X16: 8 code
 * zmm per block, chains over quads 0-3 and 4-7.  Q4_0X16: 4 loads, each
 * feeding its low nibbles (AND 0x0F) to the first chain and its high ones
 * unshifted (AND 0xF0, 16 x the code) to the second, which is shifted right
 * by 4 once per block: exact, as that sum is a multiple of 16 far from
 * overflow (16 x 15 x 127 x 16 per lane), and one op per block instead of
 * a shift per load.  Against qx_tile at 1 row (masked loads, a counted
 * prefetch loop, the next group's scales behind a test), 8 layers of the
 * Mistral-7B stack, quiet slots: Q8_0X16 47.9 against 35.7 GB/s in one
 * process, same bits; builds alternating, 84-87 % of the read probe
 * against 62-79 %.  Q4_0X16 (16 layers, alternating in one process, same
 * bits, quiet slot, 2026-12-07): best 44.9 / 44.8 against 42.1 / 42.2 GB/s,
 * medians 41.8 / 42.8 against 41.3 / 40.7; at 1 thread from L2 (1024 x
 * 1024) 48.3 against 43.2 GB/s. */
KINL void qx_stream(const int MR, const bool q4, const struct qx *a, const uint8_t *grp, size_t nb,
                    float *y, size_t ldy, const float *bias, const char *nx)
{
    const size_t cb = q4 ? 16 : 32, bcodes = Q_GROUP * cb, gcodes = nb * bcodes;
    const __m512i lo4 = _mm512_set1_epi8(0x0F), hi4 = _mm512_set1_epi8((char)0xF0);
    __m512 acc[2];
    const int8_t *xq[2];
    const float *dx[2];
    const int32_t *corr[2];
    _Pragma("GCC unroll 2") for (int r = 0; r < MR; r++)
    {
        acc[r] = _mm512_setzero_ps();
        xq[r] = qx_codes(a, (size_t)r);
        dx[r] = qx_dx(a, (size_t)r);
        corr[r] = qx_corr(a, (size_t)r);
    }
    for (size_t b = 0; b < nb; b++) {
        const uint8_t *cp = grp + b * bcodes;
        /* Addresses only: a prefetch never faults, so one past the matrix
         * (a tiny group's distance beyond the next group) is harmless. */
        const size_t o = b * bcodes + (q4 ? QX_PF_Q4 : QX_PF_Q8);
        const char *pc = o < gcodes ? (const char *)grp + o : nx + (o - gcodes);
        _Pragma("GCC unroll 8") for (size_t i = 0; i < bcodes / 64; i++)
            _mm_prefetch(pc + i * 64, QX_PF_HINT);
        _mm_prefetch(nx + gcodes + b * Q_GROUP * 2, QX_PF_HINT);
        /* wv[j] meets quad j (inputs 4j..), wv[j + 4] quad j + 4. */
        __m512i wv[8];
        if (q4) {
            _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++)
            {
                const __m512i v = _mm512_loadu_si512(cp + (size_t)j * 64);
                wv[j] = _mm512_and_si512(v, lo4);
                wv[j + 4] = _mm512_and_si512(v, hi4);
            }
        } else {
            _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) wv[j] =
                _mm512_loadu_si512(cp + (size_t)j * 64);
        }
        const __m512 dw = _mm512_cvtph_ps(
            _mm256_loadu_si256((const __m256i *)(const void *)(grp + gcodes + b * Q_GROUP * 2)));
        _Pragma("GCC unroll 2") for (int r = 0; r < MR; r++)
        {
            __m512i d0 = _mm512_set1_epi32(corr[r][b]), d1 = _mm512_setzero_si512();
            _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++)
            {
                d0 =
                    _mm512_dpbusd_epi32(d0, wv[j], _mm512_set1_epi32(ld32(xq[r] + b * 32 + 4 * j)));
                d1 = _mm512_dpbusd_epi32(d1, wv[j + 4],
                                         _mm512_set1_epi32(ld32(xq[r] + b * 32 + 16 + 4 * j)));
            }
            if (q4)
                d1 = _mm512_srai_epi32(d1, 4);
            acc[r] = q_step(acc[r], _mm512_add_epi32(d0, d1), dw, dx[r][b]);
        }
    }
    _Pragma("GCC unroll 2") for (int r = 0; r < MR; r++)
        q_store(y + (size_t)r * ldy, 0xFFFF, acc[r], bias);
}

/* One function per (rows, format): see STREAM_FN. */
#define QS_FN(R_, Q4_)                                                                             \
    KFN __attribute__((noinline)) void qx_stream_##R_##_##Q4_(                                     \
        const struct qx *a, const uint8_t *grp, size_t nb, float *y, size_t ldy,                   \
        const float *bias, const char *nx)                                                         \
    {                                                                                              \
        qx_stream(R_, Q4_, a, grp, nb, y, ldy, bias, nx);                                          \
    }
QS_FN(1, 0)
QS_FN(1, 1)
QS_FN(2, 0)
QS_FN(2, 1)

/* Groups of an x16 span: about Q_PANEL bytes, at least one group. */
static size_t qx_span_groups(size_t wrb)
{
    const size_t g = Q_PANEL / (Q_GROUP * wrb);
    return g ? g : 1;
}

/* A thread's groups [ga, gb).  1-2 rows: one pass, whole groups through
 * qx_stream, each prefetching a short way ahead into L2 and on into the
 * group after it in memory (QX_PF_Q8).  On an earlier machine (quiet slot,
 * 6-8 layers of the Q8_0X16 stack in one process) no software prefetch
 * read 30 GB/s against 43-46 for a whole group ahead into L1, an L2 hint a
 * whole group ahead 38-40 against 44-48, and two or four groups side by
 * side, as two or four streams, 44 against 48.  More: per span of groups
 * of about Q_PANEL bytes (L2), every row tile over every group of it, the tiles of up to
 * Q_AHEAD_ROWS rows fetching the next span meanwhile, as q_gemm_groups does with its panels. */
KFN void qx_groups(float *y, const struct qx *a, size_t m, const uint8_t *w, size_t wrb, size_t N,
                   size_t nb, bool q4, const float *bias, size_t ga, size_t gb)
{
    const size_t gbytes = Q_GROUP * wrb;
    if (m <= 2) {
        for (size_t g = ga; g < gb; g++) {
            const size_t n0 = g * Q_GROUP, lanes = idf2_min_sz(Q_GROUP, N - n0);
            const uint8_t *grp = w + n0 * wrb;
            float *yg = y + n0;
            const float *bg = bias ? bias + n0 : NULL;
            if (lanes == Q_GROUP) {
                (m == 1 ? (q4 ? qx_stream_1_1 : qx_stream_1_0)
                        : (q4 ? qx_stream_2_1 : qx_stream_2_0))(a, grp, nb, yg, N, bg,
                                                                (const char *)grp + gbytes);
                continue;
            }
            const size_t cb = q4 ? 16 : 32;
            const struct q_ahead pf = { (const char *)grp + gbytes, lanes * cb / 64,
                                        (const char *)grp + gbytes + nb * Q_GROUP * cb };
            qx_tile_any((int)m, q4, a, 0, grp, lanes, nb, yg, N, bg, &pf);
        }
        return;
    }
    const size_t pg = qx_span_groups(wrb);
    const size_t tiles = (m + Q_MR - 1) / Q_MR;
    for (size_t g0 = ga; g0 < gb; g0 += pg) {
        const size_t ng = idf2_min_sz(pg, gb - g0);
        const struct q_next nx = q_next_span(w, wrb, N, nb, m, g0 + ng, gb, pg, tiles * ng);
        size_t call = 0;
        for (size_t t = 0; t < tiles; t++) {
            const size_t r0 = m * t / tiles;
            const int mr = (int)(m * (t + 1) / tiles - r0);
            for (size_t g = 0; g < ng; g++, call++) {
                const size_t n0 = (g0 + g) * Q_GROUP;
                const struct q_ahead pf = q_next_slice(&nx, call);
                qx_tile_any(mr, q4, a, r0, w + n0 * wrb, idf2_min_sz(Q_GROUP, N - n0), nb,
                            y + r0 * N + n0, N, bias ? bias + n0 : NULL, &pf);
            }
        }
    }
}

size_t idf2_q8x_mm_ws(size_t m, size_t K)
{
    return idf2_align64(m * xq_bytes(K));
}

void idf2_q8x_mm(float *y, const float *x, size_t m, size_t x_stride, const void *w, size_t N,
                 size_t K, bool q4, const float *bias, void *ws, int nt)
{
    if (m == 0 || N == 0)
        return;
    const struct qx a = { ws, xq_bytes(K), xq_row(K), NULL };
    q_acts(ws, x, m, x_stride, K, q4, nt);
    const size_t groups = (N + Q_GROUP - 1) / Q_GROUP;
    const int team = m * N * K < (1u << 18) ? 1 : (nt > 0 ? nt : 1);
    const size_t wrb = w_row_bytes(K, q4);
    size_t next = 0;
#pragma omp parallel num_threads(team)
    {
        const size_t chunk = idf2_take_chunk(groups, (size_t)omp_get_num_threads(),
                                             m <= 2 ? 1 : qx_span_groups(wrb));
        for (size_t ga, gb; idf2_take(&next, groups, chunk, &ga, &gb);)
            qx_groups(y, &a, m, w, wrb, N, (K + 31) / 32, q4, bias, ga, gb);
    }
}
