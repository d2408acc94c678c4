/* idf2_cpu_avx512: AVX-512 BF16/VNNI matmul and the avx512 row tables
 * (attention, norms and activations: synth/idf2_cpu_ops512.c).
 *
 * bf16 matmul of up to BF16_STREAM_M (16) activation rows (decode, batched
 * decode), streaming each weight once from memory as stored: a tile is up
 * to 8 activation rows x NR weight rows over the whole of K; accumulator
 * (r, c) is one zmm whose 16 lanes each follow a fixed slice of K (input
 * pair 2l, 2l+1 of every 32-input chunk), folded at the end by lane_sum in
 * a fixed order.  More rows (prefill, vision) go to the outer-product
 * kernel of synth/idf2_cpu_bf16mm.c, which computes every output by the
 * same chain of operations, so output (m, n) does not depend on m, the
 * other rows or the thread count: the batch invariance the caption stage
 * needs.  Threads split weight rows into contiguous ranges; a thread walks
 * its rows in blocks of about MM_W_BLOCK bytes.  Weights packed at load
 * (the text weights with --weights copy, the image path's) go to the
 * outer product at every row count instead (row_mm).
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
#include "synth/idf2_cpu_ops512.h"
#include "synth/idf2_cpu_q8.h"
#include "synth/idf2_kernels.h"

/* Bytes of a thread's weight block (L2 is 1 MiB per core here). */
#define MM_W_BLOCK (384u << 10)
/* Bytes ahead that a streaming tile prefetches. */
#define PF_AHEAD 1024
/* Activation rows (at most) per bf16 tile; weight rows per tile: MM_NR
 * for one or two rows (decode), BF16_NR_WIDE for more (24 accumulators). */
#define BF16_MR      8
#define MM_NR        4
#define BF16_NR_WIDE 3
/* Rows up to which bf16 streams the weights as stored, each weight block
 * going through every row tile from L1/L2 while it is there (batched
 * decode: memory bound, where packing for the outer product cost more than
 * its compute); more rows go to the outer product. */
#define BF16_STREAM_M 16
/* Past 2 rows: inputs per K block (the block of every row's activations,
 * 16 KB at 16 rows, stays in L1 while the weight rows of a cache block
 * pass through the row tiles) and weight rows per cache block (their
 * tiles' accumulators wait in a per-thread buffer between K blocks). */
#define BF16_KB         512
#define BF16_CARRY_ROWS 48

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

/* Weight rows per cache block of a thread (a multiple of nr). */
static size_t block_rows(size_t K, size_t nr)
{
    const size_t nb = MM_W_BLOCK / (K ? K * 2 : 1) / nr * nr;
    return nb < nr ? nr : nb;
}

/* Bytes of a thread's waiting accumulators past 2 rows: two row tiles of
 * every weight tile of a cache block. */
static size_t carry_bytes(size_t m)
{
    return m > 2 ? BF16_CARRY_ROWS / BF16_NR_WIDE * 2 * BF16_MR * MM_NR * sizeof(__m512) : 0;
}

static size_t x_part(size_t m, size_t K)
{
    return idf2_align64(2 * m * xq_row(K) * 2);
}

size_t idf2_avx512_mm_ws(size_t m, size_t K, enum idf2_mm_fmt f, int nt)
{
    if (f == IDF2_MM_Q8_0X16 || f == IDF2_MM_Q4_0X16)
        return idf2_q8x_mm_ws(m, K);
    if (!is_bf16(f))
        return idf2_q8_mm_ws(m, K, nt);
    const size_t mine =
        m > BF16_STREAM_M ? 0 : x_part(m, K) + (size_t)(nt > 0 ? nt : 1) * carry_bytes(m);
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

/* lo == NULL: hi only (the bf16x1 format).  Chunk c (inputs 32c ..
 * 32c+31) goes to hi + c * cs. */
KFN void to_bf16_row(uint16_t *hi, uint16_t *lo, const float *x, size_t K, size_t kp, size_t cs)
{
    for (size_t k = 0; k < kp; k += 16) {
        const __m512 v = _mm512_maskz_loadu_ps(k < K ? tail16(K - k) : 0, x + k);
        const __m256bh h = _mm512_cvtneps_pbh(v);
        const size_t at = k / 32 * cs + k % 32;
        _mm256_storeu_si256((__m256i *)(hi + at), (__m256i)h);
        if (lo) {
            const __m256bh l = _mm512_cvtneps_pbh(_mm512_sub_ps(v, bf16_widen(h)));
            _mm256_storeu_si256((__m256i *)(lo + at), (__m256i)l);
        }
    }
}

/* Where a streaming tile's work goes. */
struct bf16_io {
    const uint16_t *xb; /* the tile's activations (see mm_prepare) */
    size_t xlo;         /* from hi to lo terms */
    const uint16_t *w;  /* the tile's first weight row */
    size_t K, k0, k1;   /* inputs; this K block (k1 <= K padded to 32) */
    ptrdiff_t pf;       /* prefetch weights this far from each load */
    __m512 *carry;      /* accumulators between K blocks, [r][MM_NR] */
    float *y;           /* output of the first row and weight row */
    size_t ldy;         /* between rows */
    const float *bias;  /* at the first weight row, or NULL */
};

/* A tile over inputs [k0, k1); weight c's inputs k .. k+31 at w + c * K +
 * k, inputs past K read as zero; row r's at xb + k * MR + r * 32.  two: hi
 * and lo activation terms (else hi only).  Accumulators start at zero on
 * the first block, else from carry, and go back there unless the block
 * is the last, where they are folded and stored. */
KINL void bf16_tile(const int MR, const int NR, const bool two, const struct bf16_io *io)
{
    __m512 acc[BF16_MR][MM_NR];
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
        _Pragma("GCC unroll 8") for (int c = 0; c < NR; c++) acc[r][c] =
            io->k0 == 0 ? _mm512_setzero_ps() : io->carry[r * MM_NR + c];
    const size_t K = io->K, kfull = K / 32 * 32, kpad = (K + 31) / 32 * 32;
    for (size_t k = io->k0; k < io->k1; k += 32) {
        const __mmask32 km = k < kfull ? 0xFFFFFFFFu : tail32(K - k);
        __m512bh wv[MM_NR];
        _Pragma("GCC unroll 8") for (int c = 0; c < NR; c++)
        {
            const uint16_t *src = io->w + (size_t)c * K + k;
            _mm_prefetch((const char *)(src + io->pf), _MM_HINT_T0);
            wv[c] = (__m512bh)_mm512_maskz_loadu_epi16(km, src);
        }
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
        {
            const uint16_t *xr = io->xb + k * (size_t)MR + (size_t)r * 32;
            const __m512bh xh = (__m512bh)_mm512_loadu_si512(xr);
            if (two) {
                const __m512bh xl = (__m512bh)_mm512_loadu_si512(xr + io->xlo);
                _Pragma("GCC unroll 8") for (int c = 0; c < NR; c++) acc[r][c] =
                    _mm512_dpbf16_ps(_mm512_dpbf16_ps(acc[r][c], xh, wv[c]), xl, wv[c]);
            } else {
                _Pragma("GCC unroll 8") for (int c = 0; c < NR; c++) acc[r][c] =
                    _mm512_dpbf16_ps(acc[r][c], xh, wv[c]);
            }
        }
    }
    if (io->k1 < kpad) {
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
            _Pragma("GCC unroll 8") for (int c = 0; c < NR; c++)
                io->carry[r * MM_NR + c] = acc[r][c];
        return;
    }
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
        tile_store_row(NR, io->y + (size_t)r * io->ldy, acc[r], io->bias);
}

#define BF16_CASE2(R_, C_, TWO_)                                                                   \
    case ((R_)*8 + (C_)) * 2 + (TWO_):                                                             \
        bf16_tile(R_, C_, TWO_, io);                                                               \
        break;
#define BF16_CASE(R_, C_) BF16_CASE2(R_, C_, 0) BF16_CASE2(R_, C_, 1)
#define BF16_ROW_WIDE(R_) BF16_CASE(R_, 1) BF16_CASE(R_, 2) BF16_CASE(R_, 3)

KFN void bf16_tile_any(int MR, int NR, bool two, const struct bf16_io *io)
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
        BF16_ROW_WIDE(3)
        BF16_ROW_WIDE(4)
        BF16_ROW_WIDE(5)
        BF16_ROW_WIDE(6)
        BF16_ROW_WIDE(7)
        BF16_ROW_WIDE(8)
    default:
        break;
    }
}

/* ---- driver -------------------------------------------------------------------------------- */

/* Activations as bf16 terms per row tile (rows r0 .. r1 of `tiles`
 * balanced ones, from r0 * kp on; lo terms m * kp further), in the order a
 * tile reads them: chunk by chunk (32 inputs), the tile's rows together,
 * so that a tile addresses every row from one pointer (a pointer per row
 * spilled registers in its loop, at half the rate). */
static void mm_prepare(const float *x, size_t m, size_t x_stride, size_t K, enum idf2_mm_fmt f,
                       size_t tiles, void *ws)
{
    const size_t kp = xq_row(K);
    for (size_t i = 0; i < tiles; i++) {
        const size_t r0 = m * i / tiles, r1 = m * (i + 1) / tiles;
        for (size_t r = r0; r < r1; r++) {
            uint16_t *hi = (uint16_t *)ws + r0 * kp + (r - r0) * 32;
            to_bf16_row(hi, f == IDF2_MM_BF16 ? hi + m * kp : NULL, x + r * x_stride, K, kp,
                        (r1 - r0) * 32);
        }
    }
}

void idf2_avx512_mm(float *y, const float *x, size_t m, size_t x_stride, const void *w, size_t N,
                    size_t K, enum idf2_mm_fmt f, const float *bias, void *ws, int nt)
{
    if (f == IDF2_MM_Q8_0X16 || f == IDF2_MM_Q4_0X16) {
        idf2_q8x_mm(y, x, m, x_stride, w, N, K, f == IDF2_MM_Q4_0X16, bias, ws, nt);
        return;
    }
    if (!is_bf16(f)) {
        idf2_q8_mm(y, x, m, x_stride, w, N, K, f == IDF2_MM_Q4_0, bias, ws, nt);
        return;
    }
    if (m == 0 || N == 0)
        return;
    const bool two = f == IDF2_MM_BF16;
    if (m > BF16_STREAM_M) {
        idf2_bf16mm(y, x, m, x_stride, w, NULL, N, K, two, bias, ws, nt);
        return;
    }
    /* Up to 2 rows: tiles of 4 weight rows over the whole of K.  More: row
     * tiles of balanced sizes (3 to 8 rows) x 3 weight rows over K blocks
     * (BF16_KB), each weight read from memory once. */
    const bool wide = m > 2;
    const size_t nr = wide ? BF16_NR_WIDE : MM_NR, tiles = (m + BF16_MR - 1) / BF16_MR;
    const size_t kp = xq_row(K), kpad = (K + 31) / 32 * 32, kb = wide ? BF16_KB : kpad;
    const size_t nb = wide ? idf2_min_sz(block_rows(K, nr), BF16_CARRY_ROWS) : block_rows(K, nr);
    mm_prepare(x, m, x_stride, K, f, tiles, ws);
    const int team = m * N * K < (1u << 18) ? 1 : (nt > 0 ? nt : 1);
#pragma omp parallel num_threads(team)
    {
        const size_t t = (size_t)omp_get_thread_num(), T = (size_t)omp_get_num_threads();
        const size_t n_groups = (N + nr - 1) / nr;
        const size_t n0 = n_groups * t / T * nr, n1 = idf2_min_sz(N, n_groups * (t + 1) / T * nr);
        __m512 *carry = (__m512 *)((char *)ws + x_part(m, K) + t * carry_bytes(m));
        for (size_t b0 = n0; b0 < n1; b0 += nb) {
            const size_t b1 = idf2_min_sz(n1, b0 + nb);
            for (size_t k0 = 0; k0 < kpad; k0 += kb)
                for (size_t j = b0; j < b1; j += nr) {
                    /* Past 2 rows, the weight tile after next in this
                     * order (within a K block tile by tile, then the next
                     * K block) is prefetched. */
                    ptrdiff_t pf = PF_AHEAD / 2;
                    if (wide) {
                        size_t jn = j + 2 * nr, kn = k0;
                        if (jn >= b1) {
                            jn = b0 + (jn - b1) % (b1 - b0);
                            kn += kb;
                        }
                        pf = ((ptrdiff_t)jn - (ptrdiff_t)j) * (ptrdiff_t)K + (ptrdiff_t)kn -
                             (ptrdiff_t)k0;
                    }
                    for (size_t i = 0; i < tiles; i++) {
                        const size_t r0 = m * i / tiles, r1 = m * (i + 1) / tiles;
                        const struct bf16_io io = {
                            .xb = (const uint16_t *)ws + r0 * kp,
                            .xlo = m * kp,
                            .w = (const uint16_t *)w + j * K,
                            .K = K,
                            .k0 = k0,
                            .k1 = idf2_min_sz(kpad, k0 + kb),
                            .pf = pf,
                            .carry = carry + ((j - b0) / nr * 2 + i) * BF16_MR * MM_NR,
                            .y = y + r0 * N + j,
                            .ldy = N,
                            .bias = bias ? bias + j : NULL,
                        };
                        bf16_tile_any((int)(r1 - r0), (int)idf2_min_sz(nr, b1 - j), two, &io);
                    }
                }
        }
    }
}

/* ---- the backend row ----------------------------------------------------------------------- */

static void row_pack(void *dst, const struct idf2_w *w, int nt)
{
    idf2_bf16mm_pack(dst, w->data, (size_t)w->rows, (size_t)w->cols, nt);
}

static size_t row_pack_bytes(const struct idf2_w *w)
{
    return w->fmt == IDF2_WF_BF16 ? idf2_bf16mm_packed_bytes((size_t)w->rows, (size_t)w->cols) : 0;
}

/* Packed bf16 weights go to the outer product at any row count (the
 * streaming tile's results are the same bits, and its weights as stored
 * may no longer be resident). */
static void row_mm(float *y, const float *x, size_t n, const struct idf2_w *w, const float *bias,
                   const struct idf2_exec *ex, enum idf2_mm_fmt f)
{
    if (w->packed && w->packed_by == row_pack && is_bf16(f)) {
        idf2_bf16mm(y, x, n, (size_t)w->cols, NULL, w->packed, (size_t)w->rows, (size_t)w->cols,
                    f == IDF2_MM_BF16, bias, ex->ws, ex->nt);
        return;
    }
    idf2_avx512_mm(y, x, n, (size_t)w->cols, w->data, (size_t)w->rows, (size_t)w->cols, f, bias,
                   ex->ws, ex->nt);
}

/* The outer product (packed weights, or past BF16_STREAM_M rows: where
 * row_mm's bf16 calls go to it) stores the epilogue itself; SiLU and
 * GELU-tanh are the activations idf2_ops512_act and idf2_ops512_act_mul
 * compute by the same act_vec. */
static bool row_mm_ep(float *y, const float *x, size_t n, const struct idf2_w *w, const float *bias,
                      enum idf2_ep ep, enum idf2_act act, const struct idf2_exec *ex, bool two)
{
    const bool packed = w->packed && w->packed_by == row_pack;
    if (!packed && n <= BF16_STREAM_M)
        return false;
    enum idf2_bf16mm_ep bep = IDF2_BF16MM_ADD;
    if (ep != IDF2_EP_ADD && act == IDF2_ACT_SILU)
        bep = ep == IDF2_EP_ACT ? IDF2_BF16MM_SILU : IDF2_BF16MM_SILU_MUL;
    else if (ep != IDF2_EP_ADD && act == IDF2_ACT_GELU_TANH)
        bep = ep == IDF2_EP_ACT ? IDF2_BF16MM_GELU_TANH : IDF2_BF16MM_GELU_TANH_MUL;
    else if (ep != IDF2_EP_ADD)
        return false;
    idf2_bf16mm_ep(y, x, n, (size_t)w->cols, packed ? NULL : w->data, packed ? w->packed : NULL,
                   (size_t)w->rows, (size_t)w->cols, two, bias, bep, ex->ws, ex->nt);
    return true;
}

static bool row_mm_ep_bf16(float *y, const float *x, size_t n, const struct idf2_w *w,
                           const float *bias, enum idf2_ep ep, enum idf2_act act,
                           const struct idf2_exec *ex)
{
    return row_mm_ep(y, x, n, w, bias, ep, act, ex, true);
}

static bool row_mm_ep_bf16x1(float *y, const float *x, size_t n, const struct idf2_w *w,
                             const float *bias, enum idf2_ep ep, enum idf2_act act,
                             const struct idf2_exec *ex)
{
    return row_mm_ep(y, x, n, w, bias, ep, act, ex, false);
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

static void row_mm_q8_0x16(float *y, const float *x, size_t n, const struct idf2_w *w,
                           const float *bias, const struct idf2_exec *ex)
{
    row_mm(y, x, n, w, bias, ex, IDF2_MM_Q8_0X16);
}

static void row_mm_q4_0x16(float *y, const float *x, size_t n, const struct idf2_w *w,
                           const float *bias, const struct idf2_exec *ex)
{
    row_mm(y, x, n, w, bias, ex, IDF2_MM_Q4_0X16);
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
    case IDF2_WF_Q8_0X16:
    case IDF2_WF_Q4_0X16:
        return idf2_q8x_mm_ws(n, (size_t)w->cols);
    case IDF2_WF_F32:
        break;
    }
    return idf2_vec_ops.matmul_ws(n, w, nt);
}

/* Error relative to sum |x w|: bf16, 2^-16 per product plus float32
 * accumulation; Q8_0/Q4_0, the int8 activation codes (1/254 of a block's
 * largest activation each). */
const struct idf2_ops idf2_avx512_ops = {
    .name = "avx512",
    .tol = { [IDF2_WF_BF16] = 1e-2,
             [IDF2_WF_Q8_0] = 3e-2,
             [IDF2_WF_Q4_0] = 3e-2,
             [IDF2_WF_Q8_0X16] = 3e-2,
             [IDF2_WF_Q4_0X16] = 3e-2 },
    .tol_other = 1e-5,
    .matmul = { [IDF2_WF_BF16] = row_mm_bf16,
                [IDF2_WF_Q8_0] = row_mm_q8_0,
                [IDF2_WF_Q4_0] = row_mm_q4_0,
                [IDF2_WF_Q8_0X16] = row_mm_q8_0x16,
                [IDF2_WF_Q4_0X16] = row_mm_q4_0x16 },
    .matmul_ws = row_mm_ws,
    .matmul_ep = { [IDF2_WF_BF16] = row_mm_ep_bf16 },
    .pack_bytes = row_pack_bytes,
    .pack = row_pack,
    .attention = idf2_ops512_attention,
    .attention_ws = idf2_ops512_attention_ws,
    .layernorm = idf2_ops512_layernorm,
    .rmsnorm = idf2_ops512_rmsnorm,
    .act = idf2_ops512_act,
    .act_mul = idf2_ops512_act_mul,
};

/* The avx512 row with activations rounded once to bf16 before a bf16
 * matmul (one vdpbf16ps per input pair, llama.cpp's numerics): about
 * twice the compute-bound throughput (prefill, vision, batched decode),
 * products within 2^-9 of float32 ones; and the non-causal attention with
 * bf16 dot products (synth/idf2_cpu_ops512.h), about 1e-3 of the largest
 * |v| off the float32 result.  Everything else is the avx512 row's. */
const struct idf2_ops idf2_avx512bf16_ops = {
    .name = "avx512bf16",
    .approx = true,
    .tol = { [IDF2_WF_BF16] = 1e-2 },
    .tol_attn = 3e-3,
    .matmul = { [IDF2_WF_BF16] = row_mm_bf16x1 },
    .matmul_ep = { [IDF2_WF_BF16] = row_mm_ep_bf16x1 },
    .attention = idf2_ops512_attention_bf16,
    .attention_ws = idf2_ops512_attention_bf16_ws,
};
