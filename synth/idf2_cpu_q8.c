/* idf2_cpu_q8: AVX-512 VNNI matmul over Q8_0 / Q4_0 weights.
 *
 * A tile is MR activation rows x NR weight rows over the whole of K;
 * accumulator (r, c) is one zmm whose lanes 0-7 follow the even block of
 * every 64-input chunk and lanes 8-15 the odd one, folded at the end by
 * lane_sum in a fixed order: output (m, n) is the same chain of operations
 * whatever MR, NR, m or the thread count (batch invariance).  Per chunk one
 * vpdpbusd per (activation row, weight row) on unsigned weight codes (Q8_0
 * q xor 0x80 = q + 128; Q4_0 nibbles) gives exact lane sums, corrected by
 * -off * (the lane's activation sum, one more vpdpbusd per activation row),
 * converted and scaled by d_w * d_x in float32.  Threads split weight rows
 * into contiguous ranges, walked in blocks of about Q_W_BLOCK bytes (kept in
 * L2) so that each weight block comes from memory once per call.  Decode
 * (1-2 activation rows, bound by memory) streams 8 weight rows per tile and
 * prefetches the next tile's rows as it goes. */
#include "idf2_cpu_q8.h"

#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "synth/idf2_backend.h"
#include "synth/idf2_cpu_avx512_inl.h"

/* Bytes of a thread's weight block (L2 is 1 MiB per core here). */
#define Q_W_BLOCK (384u << 10)
/* Bytes ahead that a streaming tile (one or two activation rows) prefetches. */
#define PF_AHEAD 1024
/* Activation rows and weight rows per tile. */
#define Q_MR     4
#define Q_NR     4
#define Q_NR_DEC 8

/* ggml block sizes (synth/idf2_backend.h): half scale, then the codes. */
#define Q8_BLOCK_BYTES 34
#define Q4_BLOCK_BYTES 18

/* Activation row stride in bytes: K padded to 64 inputs. */
static size_t xq_row(size_t K)
{
    return (K + 63) / 64 * 64;
}

static size_t w_row_bytes(size_t K, bool q4)
{
    return (K + 31) / 32 * (q4 ? Q4_BLOCK_BYTES : Q8_BLOCK_BYTES);
}

size_t idf2_q8_mm_ws(size_t m, size_t K, int nt)
{
    (void)nt;
    const size_t kp = xq_row(K);
    /* int8 codes, then per 64-input chunk 16 lane scales (d of the even
     * block in lanes 0-7, of the odd block in 8-15). */
    return idf2_align64(m * kp) + idf2_align64(m * (kp / 64) * 16 * sizeof(float));
}

/* One activation row: int8 codes (zero padded to kp) and per chunk the 16
 * lane scales. */
KFN void qact_row(int8_t *q, float *ds, const float *x, size_t K, size_t kp)
{
    const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
    for (size_t c = 0; c < kp / 64; c++) {
        float d[2];
        _Pragma("GCC unroll 2") for (int b = 0; b < 2; b++)
        {
            const size_t k = c * 64 + (size_t)b * 32;
            __m512 v0 = _mm512_maskz_loadu_ps(k < K ? tail16(K - k) : 0, x + k);
            __m512 v1 = _mm512_maskz_loadu_ps(k + 16 < K ? tail16(K - k - 16) : 0, x + k + 16);
            const float amax =
                _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
            d[b] = amax / 127.0f;
            const __m512 id = _mm512_set1_ps(d[b] != 0.0f ? 1.0f / d[b] : 0.0f);
            __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, id));
            __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, id));
            q0 = _mm512_min_epi32(_mm512_max_epi32(q0, lo), hi);
            q1 = _mm512_min_epi32(_mm512_max_epi32(q1, lo), hi);
            _mm_storeu_si128((__m128i *)(q + k), _mm512_cvtsepi32_epi8(q0));
            _mm_storeu_si128((__m128i *)(q + k + 16), _mm512_cvtsepi32_epi8(q1));
        }
        _mm512_storeu_ps(ds + c * 16,
                         _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(d[0]), _mm512_set1_ps(d[1])));
    }
}

/* Unsigned codes of the two blocks of the 64-input chunk from `b` on, and
 * their scales (d of the even block in lanes 0-7, of the odd one in 8-15).
 * The second block may be past the row's end (a row of an odd number of
 * blocks, `have` == 1): masked loads then read it as zero codes and a zero
 * scale, and never touch memory past the row. */
KINL void q_load2(const bool q4, const bool gpr, const uint8_t *b, int have, __m512i *codes,
                  __m512 *scale)
{
    const size_t bb = q4 ? Q4_BLOCK_BYTES : Q8_BLOCK_BYTES;
    /* The chunk's first 18 words (Q4_0: both blocks; Q8_0: up to the odd
     * block's scale), the scales at words 0 and bb/2. */
    const __mmask32 wm = have > 1 ? 0x3FFFF : q4 ? 0x1FF : 0x1;
    const __m512i raw = _mm512_maskz_loadu_epi16(wm, b);
    const __m512i sidx =
        _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, (short)(bb / 2),
                         (short)(bb / 2), (short)(bb / 2), (short)(bb / 2), (short)(bb / 2),
                         (short)(bb / 2), (short)(bb / 2), (short)(bb / 2), 0, 0, 0, 0, 0, 0, 0, 0);
    if (gpr) {
        /* The two halves through a general register: fewer vector
         * operations, which Q8_0's compute-bound tiles (3+ activation
         * rows) measured ~6 % faster with; the streaming ones slower. */
        uint16_t d0, d1 = 0;
        memcpy(&d0, b, 2);
        if (have > 1)
            memcpy(&d1, b + bb, 2);
        const __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)d0 | (uint32_t)d1 << 16)));
        *scale =
            _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0),
                                  _mm512_castps128_ps512(f));
    } else {
        *scale = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(sidx, raw)));
    }
    if (q4) {
        /* Element j < 16 of a block is the low nibble of its byte j, j + 16
         * the high one: qword q of the codes takes the block's bytes 0-7
         * (q even) or 8-15 (q odd), shifted right by 4 in qwords 2, 3, 6, 7
         * (the high nibbles), then masked. */
        const __m512i cidx =
            _mm512_set_epi16(17, 16, 15, 14, 13, 12, 11, 10, 17, 16, 15, 14, 13, 12, 11, 10, 8, 7,
                             6, 5, 4, 3, 2, 1, 8, 7, 6, 5, 4, 3, 2, 1);
        const __m512i y = _mm512_srlv_epi64(_mm512_permutexvar_epi16(cidx, raw),
                                            _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0));
        *codes = _mm512_and_si512(y, _mm512_set1_epi8(15));
    } else {
        const __m256i a = _mm256_loadu_si256((const __m256i *)(b + 2));
        const __m256i c = _mm256_maskz_loadu_epi8(have > 1 ? 0xFFFFFFFFu : 0, b + bb + 2);
        *codes = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(a), c, 1),
                                  _mm512_set1_epi8((char)0x80));
    }
}

KINL void q_tile(const int MR, const int NR, const bool q4, const int8_t *aq, const float *ads,
                 size_t kp, const uint8_t *w, size_t wrb, size_t nblocks, float *y, size_t ldy,
                 const float *bias)
{
    const size_t bb = q4 ? Q4_BLOCK_BYTES : Q8_BLOCK_BYTES;
    __m512 acc[Q_MR][Q_NR_DEC];
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
        _Pragma("GCC unroll 8") for (int c = 0; c < NR; c++) acc[r][c] = _mm512_setzero_ps();
    const __m512i offv = _mm512_set1_epi8(q4 ? 8 : (char)-128), zero = _mm512_setzero_si512();
    for (size_t ch = 0; ch < kp / 64; ch++) {
        const int have = 2 * ch + 1 < nblocks ? 2 : 1;
        __m512i wv[Q_NR_DEC];
        __m512 sw[Q_NR_DEC];
        _Pragma("GCC unroll 8") for (int c = 0; c < NR; c++)
        {
            const uint8_t *src = w + (size_t)c * wrb + 2 * ch * bb;
            if (MR <= 2)
                _mm_prefetch((const char *)src + PF_AHEAD, _MM_HINT_T0);
            q_load2(q4, !q4 && MR > 2, src, have, &wv[c], &sw[c]);
        }
        /* The tile's rows are contiguous and the next tile's follow: fetch
         * as much of it per chunk as this chunk reads, so that its rows
         * start warm (rows of 2-15 KiB are too short for the in-row
         * prefetch and the hardware's stream detection to hide their
         * first misses).  Q8_0's compute-bound tiles measured faster
         * without. */
        const size_t per = q4 || MR <= 2 ? (size_t)NR * 2 * bb : 0;
        for (size_t o = 0; o < per; o += 64)
            _mm_prefetch((const char *)w + (size_t)NR * wrb + ch * per + o, _MM_HINT_T0);
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
        {
            const size_t rc = (size_t)r * (kp / 64) + ch;
            const __m512i av = _mm512_loadu_si512(aq + (size_t)r * kp + ch * 64);
            /* -off * (the lane's activation sum), off the unsigned weight
             * codes' zero: the start of each vpdpbusd, so that it sums
             * (code - off) * a.  Computed here, not stored per call: a
             * stored copy makes a 4-row activation tile 1.5x larger and
             * the compute-bound tiles ~10 % slower. */
            const __m512i neg = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, offv, av));
            const __m512 sa = _mm512_loadu_ps(ads + rc * 16);
            _Pragma("GCC unroll 8") for (int c = 0; c < NR; c++)
            {
                const __m512i dot = _mm512_dpbusd_epi32(neg, wv[c], av);
                acc[r][c] =
                    _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(sw[c], sa), acc[r][c]);
            }
        }
    }
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
        tile_store_row(NR, y + (size_t)r * ldy, acc[r], bias);
}

#define Q_CASE(R_, C_, Q4_)                                                                        \
    case ((R_)*16 + (C_)) * 2 + (Q4_):                                                             \
        q_tile(R_, C_, Q4_, aq, ads, kp, w, wrb, nblocks, y, ldy, bias);                           \
        break;
#define Q_CASES(R_, C_) Q_CASE(R_, C_, 0) Q_CASE(R_, C_, 1)

/* MR <= 2 tiles stream up to Q_NR_DEC weight rows, wider ones Q_NR. */
KFN void q_tile_any(int MR, int NR, bool q4, const int8_t *aq, const float *ads, size_t kp,
                    const uint8_t *w, size_t wrb, size_t nblocks, float *y, size_t ldy,
                    const float *bias)
{
    switch ((MR * 16 + NR) * 2 + (int)q4) {
        Q_CASES(1, 1)
        Q_CASES(1, 2)
        Q_CASES(1, 3)
        Q_CASES(1, 4)
        Q_CASES(1, 5)
        Q_CASES(1, 6)
        Q_CASES(1, 7)
        Q_CASES(1, 8)
        Q_CASES(2, 1)
        Q_CASES(2, 2)
        Q_CASES(2, 3)
        Q_CASES(2, 4)
        Q_CASES(2, 5)
        Q_CASES(2, 6)
        Q_CASES(2, 7)
        Q_CASES(2, 8)
        Q_CASES(3, 1)
        Q_CASES(3, 2)
        Q_CASES(3, 3)
        Q_CASES(3, 4)
        Q_CASES(4, 1)
        Q_CASES(4, 2)
        Q_CASES(4, 3)
        Q_CASES(4, 4)
    default:
        break;
    }
}

/* ---- driver -------------------------------------------------------------------------------- */

void idf2_q8_mm(float *y, const float *x, size_t m, size_t x_stride, const void *w, size_t N,
                size_t K, bool q4, const float *bias, void *ws, int nt)
{
    if (m == 0 || N == 0)
        return;
    const size_t kp = xq_row(K), nblocks = (K + 31) / 32, wrb = w_row_bytes(K, q4);
    int8_t *aq = ws;
    float *ads = (float *)((char *)ws + idf2_align64(m * kp));
    const size_t terms = kp / 64 * 16; /* per activation row */
#pragma omp parallel for schedule(static) num_threads(m >= 8 ? nt : 1)
    for (long r = 0; r < (long)m; r++)
        qact_row(aq + (size_t)r * kp, ads + (size_t)r * terms, x + (size_t)r * x_stride, K, kp);
    /* One or two activation rows (decode) are bound by memory: more weight
     * rows in flight per tile. */
    const size_t nr = m <= 2 ? Q_NR_DEC : Q_NR;
    size_t nb = Q_W_BLOCK / wrb / nr * nr;
    nb = nb < nr ? nr : nb;
    const int team = m * N * K < (1u << 18) ? 1 : (nt > 0 ? nt : 1);
#pragma omp parallel num_threads(team)
    {
        const size_t t = (size_t)omp_get_thread_num(), T = (size_t)omp_get_num_threads();
        const size_t n_groups = (N + nr - 1) / nr;
        const size_t n0 = n_groups * t / T * nr, n1 = idf2_min_sz(N, n_groups * (t + 1) / T * nr);
        for (size_t b0 = n0; b0 < n1; b0 += nb) {
            const size_t b1 = idf2_min_sz(n1, b0 + nb);
            for (size_t m0 = 0; m0 < m; m0 += Q_MR) {
                const int mr = (int)idf2_min_sz(Q_MR, m - m0);
                for (size_t j = b0; j < b1; j += nr)
                    q_tile_any(mr, (int)idf2_min_sz(nr, b1 - j), q4, aq + m0 * kp, ads + m0 * terms,
                               kp, (const uint8_t *)w + j * wrb, wrb, nblocks, y + m0 * N + j, N,
                               bias ? bias + j : NULL);
            }
        }
    }
}
