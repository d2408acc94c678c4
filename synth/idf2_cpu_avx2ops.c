/* idf2_cpu_avx2ops: attention, norms and activations of the "avx2" row (see the
 * header for the numerics).  Owns nothing between calls and uses only the
 * caller's workspace; never reads a key past n_kv.
 *
 * Attention: per kv head, K is copied transposed in blocks of AV_KB keys
 * ([ldk / AV_KB][hd][AV_KB]: a block's 2 x hd ymm are contiguous; with
 * [hd][ldk] every dimension was another page, and the walk over 72 of them
 * missed the TLB at 4,900 keys) and V with
 * rows padded to whole ymm ([ldk][ldv], zeros past hd and past the last
 * key), then threads take tiles of AV_QR query rows of one head.  A tile
 * walks the keys in spans of AV_SPAN: scores of AV_QG rows x AV_KB keys in
 * 12 ymm accumulators (the K block, 2 x hd floats, stays in L1 while the
 * groups pass), one max, exponential and sum per row and span, then P V
 * with 4 rows x 3 ymm of output in registers.  Spans and blocks nobody in
 * the tile may see are skipped: a skipped key adds an exact zero to a
 * row's sums, so the row's bits do not change. */
#include "idf2_cpu_avx2ops.h"

#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#define T_AVX2 "avx2,fma"
#define KFN    static __attribute__((target(T_AVX2)))
#define KINL   static inline __attribute__((always_inline, target(T_AVX2)))
/* OpenMP regions live in plain functions and call KFN functions only
 * (clang does not give an outlined region its function's target). */

/* Query rows per tile (AV_QG at a time through q k^T, AV_PR through P V),
 * keys per score block and per softmax span.  QG x 2 ymm of scores fill
 * 12 of the 16 registers, the broadcasts of q taking the load ports' spare
 * slots (Zen 1 splits a ymm load in two).  A span of 128 keys keeps the
 * per-row work of the softmax (a max, a libm expf for the rescale) small
 * beside the products: 4 % more GFLOP per CPU-second than 64 at 729
 * patches. */
#define AV_QR   24
#define AV_QG   6
#define AV_KB   16
#define AV_SPAN 128
#define AV_PR   4
#define AV_PC   3
/* Below this many multiply-adds one thread does the call. */
#define PAR_MIN_MACS (1u << 18)

/* e^x in float32 for x <= 0 (and -inf, NaN: 0): 2^n e^r with
 * |r| <= ln2/2, degree-7 Taylor polynomial (below 1e-8 relative); 0 below
 * -87.3, where 2^n would leave the normal range. */
KINL __m256 av_exp(__m256 x)
{
    const __m256 lim = _mm256_set1_ps(-87.3f);
    const __m256 live = _mm256_cmp_ps(x, lim, _CMP_GE_OQ);
    x = _mm256_max_ps(x, lim);
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187e-06f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), live);
}

/* The fixed folds of 8 lanes: halves 4, 2, 1. */
KINL float av_hsum(__m256 a)
{
    const __m128 r4 = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    const __m128 r2 = _mm_add_ps(r4, _mm_movehl_ps(r4, r4));
    return _mm_cvtss_f32(_mm_add_ss(r2, _mm_shuffle_ps(r2, r2, 1)));
}

KINL float av_hmax(__m256 a)
{
    const __m128 r4 = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    const __m128 r2 = _mm_max_ps(r4, _mm_movehl_ps(r4, r4));
    return _mm_cvtss_f32(_mm_max_ss(r2, _mm_shuffle_ps(r2, r2, 1)));
}

/* ---- attention ------------------------------------------------------------------------------ */

static size_t av_ldk(size_t n_kv)
{
    return (n_kv + AV_SPAN - 1) / AV_SPAN * AV_SPAN;
}

static size_t av_ldv(int hd)
{
    return ((size_t)hd + 7) / 8 * 8;
}

/* K transposed and V padded, each per kv head. */
static size_t av_kv_bytes(size_t n_kv, int n_kv_heads, int hd)
{
    const size_t w = av_ldv(hd);
    return 2 * idf2_align64((size_t)n_kv_heads * w * av_ldk(n_kv) * sizeof(float));
}

/* Per-thread tile: O [AV_QR][ldv], S (scores, then probabilities)
 * [AV_QR][AV_SPAN]. */
static size_t av_tile_bytes(int hd)
{
    return idf2_align64((size_t)AV_QR * (av_ldv(hd) + AV_SPAN) * sizeof(float));
}

size_t idf2_avx2ops_attention_ws(size_t n_q, size_t n_kv, int n_kv_heads, int head_dim, int nt)
{
    (void)n_q;
    return av_kv_bytes(n_kv, n_kv_heads, head_dim) +
           (size_t)(nt > 0 ? nt : 1) * av_tile_bytes(head_dim);
}

/* What one call's tiles share. */
struct av_call {
    const struct idf2_attn *a;
    const float *kt;         /* per kv head: [ldk / AV_KB][hd][AV_KB] */
    size_t ldk, ldv, n_keys; /* keys copied: [0, n_keys) */
    /* V: the copy (per kv head [ldk][ldv]) or the caller's rows. */
    const float *v;
    size_t v_head_stride, v_row_stride;
};

/* The keys query i may see: [lo, hi). */
static void av_range(const struct idf2_attn *a, size_t i, size_t *lo, size_t *hi)
{
    *lo = 0;
    *hi = a->n_kv;
    if (a->causal) {
        const size_t qp = a->q_pos0 + i;
        *hi = qp + 1 < *hi ? qp + 1 : *hi;
        if (a->window && qp + 1 > a->window)
            *lo = qp + 1 - a->window;
    }
}

/* Scores of AV_QG rows (q rows qr) for the AV_KB keys of block kb into S
 * (row stride AV_SPAN): one FMA chain per score over d. */
KINL void av_scores(const int G, float *S, const float *const *qr, const float *kb, int hd)
{
    __m256 s[AV_QG][2];
    _Pragma("GCC unroll 8") for (int r = 0; r < G; r++) s[r][0] = s[r][1] = _mm256_setzero_ps();
    for (int d = 0; d < hd; d++) {
        const __m256 k0 = _mm256_loadu_ps(kb + (size_t)d * AV_KB);
        const __m256 k1 = _mm256_loadu_ps(kb + (size_t)d * AV_KB + 8);
        _Pragma("GCC unroll 8") for (int r = 0; r < G; r++)
        {
            const __m256 qb = _mm256_broadcast_ss(qr[r] + d);
            s[r][0] = _mm256_fmadd_ps(qb, k0, s[r][0]);
            s[r][1] = _mm256_fmadd_ps(qb, k1, s[r][1]);
        }
    }
    _Pragma("GCC unroll 8") for (int r = 0; r < G; r++)
    {
        _mm256_storeu_ps(S + (size_t)r * AV_SPAN, s[r][0]);
        _mm256_storeu_ps(S + (size_t)r * AV_SPAN + 8, s[r][1]);
    }
}

/* O[r] = O[r] * corr[r] + sum_j P[r][j] v_j for R rows from O and
 * C ymm of dimensions, keys [j0, j1) of the span at s0. */
KINL void av_pv(const int R, const int C, float *O, size_t ldo, const float *P, const float *corr,
                const float *v, size_t ldv, size_t s0, size_t j0, size_t j1)
{
    __m256 o[AV_PR][AV_PC];
    _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)
        _Pragma("GCC unroll 4") for (int c = 0; c < C; c++) o[r][c] = _mm256_mul_ps(
            _mm256_loadu_ps(O + (size_t)r * ldo + (size_t)c * 8), _mm256_set1_ps(corr[r]));
    for (size_t j = j0; j < j1; j++) {
        __m256 vv[AV_PC];
        _Pragma("GCC unroll 4") for (int c = 0; c < C; c++) vv[c] =
            _mm256_loadu_ps(v + j * ldv + (size_t)c * 8);
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)
        {
            const __m256 pb = _mm256_broadcast_ss(P + (size_t)r * AV_SPAN + (j - s0));
            _Pragma("GCC unroll 4") for (int c = 0; c < C; c++) o[r][c] =
                _mm256_fmadd_ps(pb, vv[c], o[r][c]);
        }
    }
    _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)
        _Pragma("GCC unroll 4") for (int c = 0; c < C; c++)
            _mm256_storeu_ps(O + (size_t)r * ldo + (size_t)c * 8, o[r][c]);
}

/* One row's span: scores (S, AV_SPAN of them) scaled, keys it may not see
 * at -inf, then the online softmax's step: S becomes the probabilities
 * against the new maximum, *corr the factor of the old ones. */
KINL void av_softmax(float *S, const struct av_call *c, size_t i, size_t s0, float *mx, float *l,
                     float *corr)
{
    const struct idf2_attn *a = c->a;
    size_t lo, hi;
    av_range(a, i, &lo, &hi);
    const __m256 ninf = _mm256_set1_ps(-INFINITY), sc = _mm256_set1_ps(a->scale);
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    /* A span the row sees whole (no mask, no causal edge): no lane masks. */
    const bool whole = !a->key_mask && lo <= s0 && hi >= s0 + AV_SPAN;
    __m256 bm = ninf;
    for (size_t j = 0; j < AV_SPAN; j += 8) {
        if (whole) {
            const __m256 x = _mm256_mul_ps(_mm256_loadu_ps(S + j), sc);
            _mm256_storeu_ps(S + j, x);
            bm = _mm256_max_ps(bm, x);
            continue;
        }
        /* Key k + lane is seen when lo <= it < hi. */
        const size_t k = s0 + j;
        const int f = lo <= k ? 0 : lo - k > 8 ? 8 : (int)(lo - k);
        const int t = hi <= k ? 0 : hi - k > 8 ? 8 : (int)(hi - k);
        __m256i seen = _mm256_and_si256(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(f - 1)),
                                        _mm256_cmpgt_epi32(_mm256_set1_epi32(t), idx));
        if (a->key_mask) {
            int32_t km[8];
            for (int e = 0; e < 8; e++)
                km[e] = s0 + j + (size_t)e < a->n_kv && a->key_mask[s0 + j + (size_t)e] ? -1 : 0;
            seen = _mm256_and_si256(seen, _mm256_loadu_si256((const __m256i *)km));
        }
        const __m256 x = _mm256_blendv_ps(ninf, _mm256_mul_ps(_mm256_loadu_ps(S + j), sc),
                                          _mm256_castsi256_ps(seen));
        _mm256_storeu_ps(S + j, x);
        bm = _mm256_max_ps(bm, x);
    }
    const float b = av_hmax(bm), mn = b > *mx ? b : *mx;
    if (mn == -INFINITY) {
        *corr = 1.0f;
        memset(S, 0, AV_SPAN * sizeof *S);
        return;
    }
    *corr = expf(*mx - mn);
    const __m256 mv = _mm256_set1_ps(mn);
    __m256 sum = _mm256_setzero_ps();
    for (size_t j = 0; j < AV_SPAN; j += 8) {
        const __m256 p = av_exp(_mm256_sub_ps(_mm256_loadu_ps(S + j), mv));
        _mm256_storeu_ps(S + j, p);
        sum = _mm256_add_ps(sum, p);
    }
    *l = *l * *corr + av_hsum(sum);
    *mx = mn;
}

#define SC_CASE(G_)                                                                                \
    case G_:                                                                                       \
        av_scores(G_, S, qr, kb, hd);                                                              \
        break;

/* The groups' row counts as constants (a decode step's single row does not
 * pay for six). */
KFN void av_scores_any(int G, float *S, const float *const *qr, const float *kb, int hd)
{
    switch (G) {
        SC_CASE(1)
        SC_CASE(2)
        SC_CASE(3)
        SC_CASE(4)
        SC_CASE(5)
        SC_CASE(6)
    default:
        break;
    }
}

#define PV_CASE(R_, C_)                                                                            \
    case (R_)*4 + (C_):                                                                            \
        av_pv(R_, C_, O, ldo, P, corr, v, ldv, s0, j0, j1);                                        \
        break;
#define PV_CASES(R_) PV_CASE(R_, 1) PV_CASE(R_, 2) PV_CASE(R_, 3)

KFN void av_pv_any(int R, int C, float *O, size_t ldo, const float *P, const float *corr,
                   const float *v, size_t ldv, size_t s0, size_t j0, size_t j1)
{
    switch (R * 4 + C) {
        PV_CASES(1)
        PV_CASES(2)
        PV_CASES(3)
        PV_CASES(4)
    default:
        break;
    }
}

/* Query rows [i0, i0 + AV_QR) (those below n_q) of head h. */
KFN void av_tile(float *out, const struct av_call *c, int h, size_t i0, float *tile)
{
    const struct idf2_attn *a = c->a;
    const int hd = a->head_dim;
    const size_t g = (size_t)(h / (a->n_heads / a->n_kv_heads)), ldo = c->ldv;
    const float *kt = c->kt + g * (size_t)hd * c->ldk, *v = c->v + g * c->v_head_stride;
    float *O = tile, *S = tile + AV_QR * ldo;
    const int R = (int)(a->n_q - i0 < AV_QR ? a->n_q - i0 : AV_QR);
    /* Keys the tile may see: from its first row's lo to its last's hi. */
    size_t lo, hi, unused;
    av_range(a, i0, &lo, &unused);
    av_range(a, i0 + (size_t)R - 1, &unused, &hi);
    hi = hi < c->n_keys ? hi : c->n_keys;
    float mx[AV_QR], l[AV_QR], corr[AV_QR];
    const float *qr[AV_QR];
    for (int r = 0; r < R; r++) {
        mx[r] = -INFINITY;
        l[r] = 0;
        corr[r] = 1.0f;
        qr[r] = a->q + (i0 + (size_t)r) * a->q_stride + (size_t)h * (size_t)hd;
    }
    /* The rows in use: a block's scores nobody computed are masked by
     * av_softmax, but not read uninitialised. */
    memset(O, 0, (size_t)R * ldo * sizeof(float));
    memset(S, 0, (size_t)R * AV_SPAN * sizeof(float));
    for (size_t s0 = lo / AV_SPAN * AV_SPAN; s0 < hi; s0 += AV_SPAN) {
        const size_t j0 = s0 > lo ? s0 : lo, j1 = s0 + AV_SPAN < hi ? s0 + AV_SPAN : hi;
        for (size_t b0 = j0 / AV_KB * AV_KB; b0 < j1; b0 += AV_KB)
            for (int g0 = 0; g0 < R; g0 += AV_QG)
                av_scores_any(R - g0 < AV_QG ? R - g0 : AV_QG, S + (size_t)g0 * AV_SPAN + (b0 - s0),
                              qr + g0, kt + b0 * (size_t)hd, hd);
        for (int r = 0; r < R; r++)
            av_softmax(S + (size_t)r * AV_SPAN, c, i0 + (size_t)r, s0, &mx[r], &l[r], &corr[r]);
        for (int r0 = 0; r0 < R; r0 += AV_PR)
            for (size_t c0 = 0; c0 < ldo / 8; c0 += AV_PC)
                av_pv_any(R - r0 < AV_PR ? R - r0 : AV_PR, (int)idf2_min_sz(AV_PC, ldo / 8 - c0),
                          O + (size_t)r0 * ldo + c0 * 8, ldo, S + (size_t)r0 * AV_SPAN, corr + r0,
                          v + c0 * 8, c->v_row_stride, s0, j0, j1);
    }
    const size_t D = (size_t)a->n_heads * (size_t)hd;
    for (int r = 0; r < R; r++) {
        const float inv = l[r] > 0 ? 1.0f / l[r] : 0.0f;
        float *o = out + (i0 + (size_t)r) * D + (size_t)h * (size_t)hd;
        for (int t = 0; t < hd; t++)
            o[t] = O[(size_t)r * ldo + (size_t)t] * inv;
    }
}

void idf2_avx2ops_attention(float *out, const struct idf2_attn *a, const struct idf2_exec *ex)
{
    if (a->n_q == 0 || a->n_kv == 0)
        return;
    const int hd = a->head_dim;
    size_t unused, n_keys; /* what the last query may see ends the keys copied */
    av_range(a, a->n_q - 1, &unused, &n_keys);
    const size_t ldk = av_ldk(n_keys), ldv = av_ldv(hd);
    float *kt = ex->ws;
    float *vc = (float *)((char *)ex->ws + av_kv_bytes(a->n_kv, a->n_kv_heads, hd) / 2);
    char *tiles = (char *)ex->ws + av_kv_bytes(a->n_kv, a->n_kv_heads, hd);
    /* A tile per head (decode steps, short chunks) reads V once: from the
     * caller's rows when they hold whole ymm, instead of copying it. */
    const bool v_copy = hd % 8 != 0 || a->n_q >= AV_QR;
    const struct av_call c = { a,
                               kt,
                               ldk,
                               ldv,
                               n_keys,
                               v_copy ? vc : a->v,
                               v_copy ? ldk * ldv : a->kv_head_stride,
                               v_copy ? ldv : a->kv_row_stride };
    const long n_qt = (long)((a->n_q + AV_QR - 1) / AV_QR), items = n_qt * a->n_heads;
    const double macs = 2.0 * (double)a->n_q * a->n_heads * (double)n_keys * hd;
    const int team = macs < PAR_MIN_MACS ? 1 : ex->nt;
#pragma omp parallel num_threads(team > 0 ? team : 1)
    {
        /* Keys past n_keys are zeros in the copies: a span's tail then
         * adds nothing and reads nothing undefined. */
#pragma omp for schedule(static)
        for (long gj = 0; gj < (long)a->n_kv_heads * (long)ldk; gj++) {
            const size_t g = (size_t)gj / ldk, j = (size_t)gj % ldk;
            const float *kr = a->k + g * a->kv_head_stride + j * a->kv_row_stride;
            const float *vr = a->v + g * a->kv_head_stride + j * a->kv_row_stride;
            float *kd = kt + (g * ldk + j / AV_KB * AV_KB) * (size_t)hd + j % AV_KB;
            float *vd = vc + (g * ldk + j) * ldv;
            for (size_t d = 0; d < (size_t)hd; d++)
                kd[d * AV_KB] = j < n_keys ? kr[d] : 0.0f;
            for (size_t d = 0; v_copy && d < ldv; d++)
                vd[d] = j < n_keys && d < (size_t)hd ? vr[d] : 0.0f;
        }
        float *tile = (float *)(tiles + (size_t)omp_get_thread_num() * av_tile_bytes(hd));
        /* Head-major: a thread's consecutive tiles share one head's keys.
         * Causal tiles differ in work; who takes one does not change it. */
#pragma omp for schedule(dynamic, 1)
        for (long it = 0; it < items; it++)
            av_tile(out, &c, (int)(it / n_qt), (size_t)(it % n_qt) * AV_QR, tile);
    }
}

/* ---- activations ---------------------------------------------------------------------------- */

/* SiLU and GELU (tanh form) as x * sigmoid(a): a = x, or a = 2 sqrt(2/pi)
 * (x + 0.044715 x^3), since 0.5 (1 + tanh(z)) = sigmoid(2z); sigmoid from
 * av_exp(-|a|), so no exp overflows.  Within a few ulp of the reference's
 * expf/tanhf forms.  u != NULL: times u (SwiGLU's middle).  The tail goes
 * through a zero-padded vector.  The row's idf2_act_span_fn: idf2_act_spans
 * splits a call over the threads. */
KFN void av_act_span(float *x, const float *u, size_t n, enum idf2_act act)
{
    const __m256 one = _mm256_set1_ps(1.0f), c1 = _mm256_set1_ps(1.5957691216057308f),
                 c3 = _mm256_set1_ps(1.5957691216057308f * 0.044715f), sign = _mm256_set1_ps(-0.0f);
    for (size_t i = 0; i < n; i += 8) {
        const size_t m = idf2_min_sz(8, n - i);
        float xb[8] = { 0 }, ub[8] = { 0 };
        memcpy(xb, x + i, m * sizeof *xb);
        if (u)
            memcpy(ub, u + i, m * sizeof *ub);
        const __m256 v = _mm256_loadu_ps(xb);
        const __m256 a = act == IDF2_ACT_SILU
                             ? v
                             : _mm256_mul_ps(v, _mm256_fmadd_ps(c3, _mm256_mul_ps(v, v), c1));
        const __m256 t = av_exp(_mm256_or_ps(a, sign));
        const __m256 neg = _mm256_cmp_ps(a, _mm256_setzero_ps(), _CMP_LT_OQ);
        const __m256 sig = _mm256_div_ps(_mm256_blendv_ps(one, t, neg), _mm256_add_ps(one, t));
        __m256 y = _mm256_mul_ps(v, sig);
        if (u)
            y = _mm256_mul_ps(y, _mm256_loadu_ps(ub));
        _mm256_storeu_ps(xb, y);
        memcpy(x + i, xb, m * sizeof *xb);
    }
}

void idf2_avx2ops_act(float *x, size_t n, enum idf2_act act, const struct idf2_exec *ex)
{
    idf2_act_spans(av_act_span, 8, x, NULL, n, act, ex);
}

void idf2_avx2ops_act_mul(float *g, const float *u, size_t n, enum idf2_act act,
                          const struct idf2_exec *ex)
{
    idf2_act_spans(av_act_span, 8, g, u, n, act, ex);
}

/* ---- norms ---------------------------------------------------------------------------------- */

/* Sum of x[0..d) (sq: of (x - mean)^2) in double, 8 inputs at a time in
 * two 4-lane accumulators, folded in a fixed order, the tail last: the
 * reference's double sums up to rounding order (float32 inputs widen
 * exactly), at several inputs per cycle instead of one add's latency. */
KINL double av_norm_sum(const float *x, size_t d, bool sq, double mean)
{
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    const __m256d mv = _mm256_set1_pd(mean);
    size_t k = 0;
    for (; k + 8 <= d; k += 8) {
        const __m256 v = _mm256_loadu_ps(x + k);
        __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
        __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
        if (sq) {
            lo = _mm256_sub_pd(lo, mv);
            hi = _mm256_sub_pd(hi, mv);
            lo = _mm256_mul_pd(lo, lo);
            hi = _mm256_mul_pd(hi, hi);
        }
        a0 = _mm256_add_pd(a0, lo);
        a1 = _mm256_add_pd(a1, hi);
    }
    const __m256d a = _mm256_add_pd(a0, a1);
    const __m128d h = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    double sum = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
    for (; k < d; k++)
        sum += sq ? ((double)x[k] - mean) * ((double)x[k] - mean) : (double)x[k];
    return sum;
}

/* Rows [0, n) of the reference's LayerNorm (ln) or RMSNorm: the same
 * float32 operations, in the same order, after the sums. */
KFN void av_norm_rows(float *y, const float *x, size_t n, size_t d, const float *w, const float *b,
                      bool ln, float eps)
{
    for (size_t i = 0; i < n; i++) {
        const float *xi = x + i * d;
        float *yi = y + i * d;
        float sub = 0, r;
        if (ln) {
            const double mean = av_norm_sum(xi, d, false, 0) / (double)d;
            const double var = av_norm_sum(xi, d, true, mean) / (double)d;
            r = (float)(1.0 / sqrt(var + (double)eps));
            sub = (float)mean;
        } else {
            r = (float)(1.0 / sqrt(av_norm_sum(xi, d, true, 0) / (double)d + (double)eps));
        }
        const __m256 rv = _mm256_set1_ps(r), sv = _mm256_set1_ps(sub);
        size_t k = 0;
        for (; k + 8 <= d; k += 8) {
            const __m256 v = _mm256_loadu_ps(xi + k), wv = _mm256_loadu_ps(w + k);
            const __m256 o =
                ln ? _mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(_mm256_sub_ps(v, sv), rv), wv),
                                   _mm256_loadu_ps(b + k))
                   : _mm256_mul_ps(wv, _mm256_mul_ps(v, rv));
            _mm256_storeu_ps(yi + k, o);
        }
        for (; k < d; k++)
            yi[k] = ln ? (xi[k] - sub) * r * w[k] + b[k] : w[k] * (xi[k] * r);
    }
}

void idf2_avx2ops_layernorm(float *y, const float *x, size_t n, size_t d, const float *w,
                            const float *b, float eps, const struct idf2_exec *ex)
{
    idf2_norm_spans(av_norm_rows, y, x, n, d, w, b, true, eps, ex);
}

void idf2_avx2ops_rmsnorm(float *y, const float *x, size_t n, size_t d, const float *w, float eps,
                          const struct idf2_exec *ex)
{
    idf2_norm_spans(av_norm_rows, y, x, n, d, w, NULL, false, eps, ex);
}
