/* idf2_kernels: the "vec" row, portable float32 kernels written with GCC
 * vector extensions (8 lanes, which -march picks up as AVX/AVX2 or two SSE
 * registers) for f32 and bf16 matmuls and attention; the rest is inherited
 * from the reference row.
 *
 * Owns nothing between calls; uses only the caller's workspace.  Must never
 * change a result with the thread count or the batch shape: every dot
 * product goes through tile() below, whose lane layout and combine order
 * are the same for any tile size, so a row computed alone (decode) and
 * inside a batch (prefill) are bitwise equal; attention's P V starts a
 * block of queries at a whole vector of keys, so neither depends on how a
 * prefill is cut into chunks.  Exactness before speed: no FMA contraction (ISO C
 * mode), no reassociation beyond the fixed 8-lane split. */
#include "idf2_kernels.h"

#include "synth/idf2_ref.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

typedef float v8sf __attribute__((vector_size(32)));
typedef uint32_t v8su __attribute__((vector_size(32)));
typedef uint16_t v8hu __attribute__((vector_size(16)));

#define IDF2_AINLINE static inline __attribute__((always_inline))

/* Matmul tiling: x rows per task, and a weight block of about this many
 * bytes once widened, so the block stays in L2 while a tile of x passes. */
#define MM_X_TILE        64
#define MM_W_BLOCK_BYTES (256u << 10)
/* Below this many x rows, weights are read in place (bf16 widened in
 * registers): decode steps are memory-bound and a widening copy would
 * double the traffic. */
#define MM_DIRECT_ROWS 4
/* Below this many multiply-adds a call runs on one thread: waking a team
 * costs more than the work (and much more on an oversubscribed machine). */
#define PAR_MIN_MACS (1u << 18)

static int threads_of(int nt, double macs)
{
    return macs < PAR_MIN_MACS ? 1 : nt;
}

IDF2_AINLINE v8sf load_x(const float *p)
{
    v8sf v;
    memcpy(&v, p, sizeof v);
    return v;
}

IDF2_AINLINE v8sf load_w(const void *p, size_t k, bool bf16)
{
    if (!bf16)
        return load_x((const float *)p + k);
    v8hu h;
    memcpy(&h, (const uint16_t *)p + k, sizeof h);
    v8su u = __builtin_convertvector(h, v8su) << 16;
    v8sf f;
    memcpy(&f, &u, sizeof f);
    return f;
}

IDF2_AINLINE float w_at(const void *p, size_t k, bool bf16)
{
    if (!bf16)
        return ((const float *)p)[k];
    uint32_t u = (uint32_t)((const uint16_t *)p)[k] << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

IDF2_AINLINE float lanes_sum(v8sf a)
{
    return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

/* out[r*C + c] = dot(xs[r], ws[c]) over K, for R <= 4 x rows and C <= 4
 * weight rows (16 accumulators: AVX-512VL has the 32 registers for them).  R and C are constants at
 * every call site, so the accumulators live in registers. */
IDF2_AINLINE void tile(const float *const *xs, int R, const void *const *ws, int C, bool bf16,
                       size_t K, float *out)
{
    v8sf acc[4][4];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            acc[r][c] = (v8sf){ 0 };
    size_t k = 0;
    for (; k + 8 <= K; k += 8) {
        v8sf wv[4];
        for (int c = 0; c < C; c++)
            wv[c] = load_w(ws[c], k, bf16);
        for (int r = 0; r < R; r++) {
            v8sf xv = load_x(xs[r] + k);
            for (int c = 0; c < C; c++)
                acc[r][c] += xv * wv[c];
        }
    }
    if (k < K) {
        /* The tail as one zero-filled vector: a term's lane is its index
         * mod 8 whatever K is, so trailing zero terms (attention's masked
         * keys) change nothing. */
        v8sf wv[4];
        for (int c = 0; c < C; c++) {
            float t[8] = { 0 };
            for (size_t e = k; e < K; e++)
                t[e - k] = w_at(ws[c], e, bf16);
            memcpy(&wv[c], t, sizeof t);
        }
        for (int r = 0; r < R; r++) {
            float t[8] = { 0 };
            memcpy(t, xs[r] + k, (K - k) * sizeof(float));
            v8sf xv;
            memcpy(&xv, t, sizeof t);
            for (int c = 0; c < C; c++)
                acc[r][c] += xv * wv[c];
        }
    }
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            out[r * C + c] = lanes_sum(acc[r][c]);
}

#define TILE_CASE(R_, C_, B_)                                                                      \
    case ((R_)-1) * 8 + ((C_)-1) * 2 + (B_):                                                       \
        tile(xs, R_, ws, C_, B_, K, out);                                                          \
        break;

/* tile() specialised for every shape a matmul needs. */
static void tile_any(const float *const *xs, int R, const void *const *ws, int C, bool bf16,
                     size_t K, float *out)
{
    switch ((R - 1) * 8 + (C - 1) * 2 + (int)bf16) {
        TILE_CASE(1, 1, 0)
        TILE_CASE(1, 1, 1)
        TILE_CASE(1, 2, 0)
        TILE_CASE(1, 2, 1)
        TILE_CASE(1, 3, 0)
        TILE_CASE(1, 3, 1)
        TILE_CASE(1, 4, 0)
        TILE_CASE(1, 4, 1)
        TILE_CASE(2, 1, 0)
        TILE_CASE(2, 1, 1)
        TILE_CASE(2, 2, 0)
        TILE_CASE(2, 2, 1)
        TILE_CASE(2, 3, 0)
        TILE_CASE(2, 3, 1)
        TILE_CASE(2, 4, 0)
        TILE_CASE(2, 4, 1)
        TILE_CASE(3, 1, 0)
        TILE_CASE(3, 1, 1)
        TILE_CASE(3, 2, 0)
        TILE_CASE(3, 2, 1)
        TILE_CASE(3, 3, 0)
        TILE_CASE(3, 3, 1)
        TILE_CASE(3, 4, 0)
        TILE_CASE(3, 4, 1)
        TILE_CASE(4, 1, 0)
        TILE_CASE(4, 1, 1)
        TILE_CASE(4, 2, 0)
        TILE_CASE(4, 2, 1)
        TILE_CASE(4, 3, 0)
        TILE_CASE(4, 3, 1)
        TILE_CASE(4, 4, 0)
        TILE_CASE(4, 4, 1)
    default:
        break;
    }
}

/* One tiled block of y = x W^T (+ bias): y[i * y_stride + j] for i in
 * [i0, i1), j in [j0, j1), row i of x at x + i * x_stride, row j of W at
 * w0 + (j - j0) * w_stride elements. */
struct mm_args {
    float *y;
    size_t y_stride;
    const float *x;
    size_t x_stride;
    const void *w0;
    size_t w_stride;
    bool bf16;
    size_t K;
    const float *bias;
};

static void mm_block(const struct mm_args *a, size_t i0, size_t i1, size_t j0, size_t j1)
{
    const size_t elem = a->bf16 ? 2 : 4;
    for (size_t i = i0; i < i1; i += 4) {
        int R = (int)(i1 - i < 4 ? i1 - i : 4);
        const float *xs[4];
        for (int r = 0; r < R; r++)
            xs[r] = a->x + (i + (size_t)r) * a->x_stride;
        for (size_t j = j0; j < j1; j += 4) {
            int C = (int)(j1 - j < 4 ? j1 - j : 4);
            const void *ws[4];
            for (int c = 0; c < C; c++)
                ws[c] = (const char *)a->w0 + (j - j0 + (size_t)c) * a->w_stride * elem;
            float o[16];
            tile_any(xs, R, ws, C, a->bf16, a->K, o);
            for (int r = 0; r < R; r++)
                for (int c = 0; c < C; c++)
                    a->y[(i + (size_t)r) * a->y_stride + j + (size_t)c] =
                        o[r * C + c] + (a->bias ? a->bias[j + (size_t)c] : 0.0f);
        }
    }
}

/* Weight rows per block on the tiled path: about MM_W_BLOCK_BYTES once
 * widened, a multiple of 4 in [4, 64]. */
static size_t mm_rows_per_block(size_t K)
{
    size_t rb = MM_W_BLOCK_BYTES / (K * sizeof(float));
    return rb < 4 ? 4 : rb > 64 ? 64 : rb & ~(size_t)3;
}

static size_t vec_matmul_ws(size_t n, const struct idf2_w *w, int nt)
{
    /* The block formats run the inherited reference matmul. */
    if (w->fmt != IDF2_WF_F32 && w->fmt != IDF2_WF_BF16)
        return idf2_ref_ops.matmul_ws(n, w, nt);
    if (w->fmt != IDF2_WF_BF16 || n <= MM_DIRECT_ROWS)
        return 0;
    return (size_t)nt * mm_rows_per_block((size_t)w->cols) * (size_t)w->cols * sizeof(float);
}

static void vec_matmul(float *y, const float *x, size_t n, const struct idf2_w *w,
                       const float *bias, const struct idf2_exec *ex)
{
    const size_t K = (size_t)w->cols, O = (size_t)w->rows;
    const bool bf16 = w->fmt == IDF2_WF_BF16;
    const size_t elem = bf16 ? 2 : 4;
    const int team = threads_of(ex->nt, (double)n * (double)O * (double)K);
    if (n == 0 || O == 0)
        return;
    if (n <= MM_DIRECT_ROWS) {
        /* Groups of 4 weight rows over threads; x is tiny and shared. */
        const long n_groups = (long)((O + 3) / 4);
#pragma omp parallel for schedule(static) num_threads(team)
        for (long p = 0; p < n_groups; p++) {
            size_t j0 = (size_t)p * 4, j1 = j0 + 4 < O ? j0 + 4 : O;
            const struct mm_args ma = { y, O,    x, K,   (const char *)w->data + j0 * K * elem,
                                        K, bf16, K, bias };
            mm_block(&ma, 0, n, j0, j1);
        }
        return;
    }
    const size_t rb = mm_rows_per_block(K);
    const size_t n_wb = (O + rb - 1) / rb, n_xt = (n + MM_X_TILE - 1) / MM_X_TILE;
#pragma omp parallel num_threads(team)
    {
        float *buf = bf16 ? (float *)ex->ws + (size_t)omp_get_thread_num() * rb * K : NULL;
        /* Weight block outer, x tile inner: a thread widens a block once
         * and reuses it across consecutive x tiles of its chunk. */
#pragma omp for schedule(static) collapse(2)
        for (size_t b = 0; b < n_wb; b++)
            for (size_t t = 0; t < n_xt; t++) {
                size_t j0 = b * rb, j1 = j0 + rb < O ? j0 + rb : O;
                size_t i0 = t * MM_X_TILE, i1 = i0 + MM_X_TILE < n ? i0 + MM_X_TILE : n;
                const void *wb = (const char *)w->data + j0 * K * elem;
                if (bf16) {
                    const uint16_t *src = wb;
                    for (size_t e = 0; e < (j1 - j0) * K; e++) {
                        uint32_t u = (uint32_t)src[e] << 16;
                        memcpy(&buf[e], &u, sizeof u);
                    }
                    wb = buf;
                }
                const struct mm_args ma = { y, O, x, K, wb, K, false, K, bias };
                mm_block(&ma, i0, i1, j0, j1);
            }
    }
}

/* Queries per attention task: a block's score rows (ATT_QB x n_kv floats,
 * 640 KiB at SigLIP's 4900 patches) stay in L2 between the two products. */
#define ATT_QB 32
/* tile()'s lanes: a block's keys start at a multiple of it. */
#define ATT_KEY_ALIGN (sizeof(v8sf) / sizeof(float))

/* The keys query i may see: [lo, hi). */
static void att_range(const struct idf2_attn *a, size_t i, size_t *lo, size_t *hi)
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

/* One task: queries [i0, i1) of head h, as two products through
 * mm_block: scores = Q K^T over the keys the block can see, a float32
 * softmax per row (masked keys weigh exactly 0, as HF's float-min mask
 * gives after the max is subtracted), then out = P V with V transposed
 * (vt: (head_dim, n_kv) for this head's kv group).  sc has room for ATT_QB
 * rows of n_kv; the products index the block's rows from 0. */
static void att_block(float *out, const struct idf2_attn *a, const float *vt, size_t i0, size_t i1,
                      int h, float *sc)
{
    const size_t hd = (size_t)a->head_dim, nkv = a->n_kv;
    const size_t g = (size_t)(h / (a->n_heads / a->n_kv_heads));
    size_t jlo, jhi, lo, hi;
    att_range(a, i0, &jlo, &hi);
    att_range(a, i1 - 1, &lo, &jhi);
    if (jhi <= jlo)
        return;
    /* From a whole vector of keys: P V's term for key j then falls in
     * lane j % 8 whichever block (and so whichever chunk of a prefill)
     * holds the query, the keys before its first one weighing exactly 0. */
    jlo = jlo / ATT_KEY_ALIGN * ATT_KEY_ALIGN;
    const struct mm_args qk = { sc,
                                nkv,
                                a->q + i0 * a->q_stride + (size_t)h * hd,
                                a->q_stride,
                                a->k + g * a->kv_head_stride + jlo * a->kv_row_stride,
                                a->kv_row_stride,
                                false,
                                hd,
                                NULL };
    mm_block(&qk, 0, i1 - i0, jlo, jhi);
    for (size_t i = i0; i < i1; i++) {
        float *row = sc + (i - i0) * nkv;
        att_range(a, i, &lo, &hi);
        float m = -INFINITY, s = 0;
        for (size_t j = lo; j < hi; j++) {
            row[j] *= a->scale;
            if (!a->key_mask || a->key_mask[j])
                m = row[j] > m ? row[j] : m;
        }
        for (size_t j = jlo; j < jhi; j++) {
            const bool seen = j >= lo && j < hi && (!a->key_mask || a->key_mask[j]);
            row[j] = seen ? expf(row[j] - m) : 0.0f;
            s += row[j];
        }
        for (size_t j = lo; j < hi; j++)
            row[j] /= s;
    }
    const struct mm_args pv = { out + i0 * (size_t)a->n_heads * hd + (size_t)h * hd,
                                (size_t)a->n_heads * hd,
                                sc + jlo,
                                nkv,
                                vt + jlo,
                                nkv,
                                false,
                                jhi - jlo,
                                NULL };
    mm_block(&pv, 0, i1 - i0, 0, hd);
}

static size_t vec_attention_ws(size_t n_q, size_t n_kv, int n_kv_heads, int head_dim, int nt)
{
    (void)n_q;
    const size_t nkv = n_kv ? n_kv : 1;
    return ((size_t)n_kv_heads * (size_t)head_dim + (size_t)nt * ATT_QB) * nkv * sizeof(float);
}

static void vec_attention(float *out, const struct idf2_attn *a, const struct idf2_exec *ex)
{
    const size_t hd = (size_t)a->head_dim, nkv = a->n_kv ? a->n_kv : 1;
    const long n_qb = (long)((a->n_q + ATT_QB - 1) / ATT_QB), n_tasks = n_qb * a->n_heads;
    const int team =
        threads_of(ex->nt, (double)a->n_q * a->n_heads * (double)a->n_kv * (double)hd * 2);
    float *vt = ex->ws;
#pragma omp parallel num_threads(team)
    {
        /* V per kv head as (head_dim, n_kv): P V becomes dot products along
         * the keys, the shape mm_block is fast at. */
#pragma omp for schedule(static) collapse(2)
        for (int g = 0; g < a->n_kv_heads; g++)
            for (size_t e = 0; e < hd; e++) {
                const float *src = a->v + (size_t)g * a->kv_head_stride + e;
                float *dst = vt + ((size_t)g * hd + e) * nkv;
                for (size_t j = 0; j < a->n_kv; j++)
                    dst[j] = src[j * a->kv_row_stride];
            }
        float *sc =
            vt + (size_t)a->n_kv_heads * hd * nkv + (size_t)omp_get_thread_num() * ATT_QB * nkv;
        /* Head-major: consecutive tasks of a thread share one head's keys
         * and values, which then stay in its caches. */
#pragma omp for schedule(static)
        for (long t = 0; t < n_tasks; t++) {
            const int h = (int)(t / n_qb);
            const size_t i0 = (size_t)(t % n_qb) * ATT_QB;
            const size_t i1 = i0 + ATT_QB < a->n_q ? i0 + ATT_QB : a->n_q;
            att_block(out, a, vt + (size_t)(h / (a->n_heads / a->n_kv_heads)) * hd * nkv, i0, i1, h,
                      sc);
        }
    }
}

/* The reference's row- and element-wise operations over contiguous slices,
 * one per thread: each row or element gets exactly the reference's value,
 * so the split changes nothing but the time.  SLICED(n, elems, call) runs
 * `call` with i0, i1 bounding this thread's slice of [0, n). */
#define SLICED(n_, elems_, call_)                                                                  \
    do {                                                                                           \
        const int team_ = (elems_) < IDF2_PAR_MIN_ELEMS ? 1 : ex->nt;                              \
        _Pragma("omp parallel num_threads(team_)")                                                 \
        {                                                                                          \
            const size_t t_ = (size_t)omp_get_thread_num(), k_ = (size_t)omp_get_num_threads();    \
            const size_t i0 = (n_)*t_ / k_, i1 = (n_) * (t_ + 1) / k_;                             \
            if (i1 > i0)                                                                           \
                call_;                                                                             \
        }                                                                                          \
    } while (0)

static void vec_layernorm(float *y, const float *x, size_t n, size_t d, const float *w,
                          const float *b, float eps, const struct idf2_exec *ex)
{
    SLICED(n, n * d, idf2_ref_ops.layernorm(y + i0 * d, x + i0 * d, i1 - i0, d, w, b, eps, ex));
}

static void vec_rmsnorm(float *y, const float *x, size_t n, size_t d, const float *w, float eps,
                        const struct idf2_exec *ex)
{
    SLICED(n, n * d, idf2_ref_ops.rmsnorm(y + i0 * d, x + i0 * d, i1 - i0, d, w, eps, ex));
}

static void vec_act(float *x, size_t n, enum idf2_act act, const struct idf2_exec *ex)
{
    SLICED(n, n, idf2_ref_ops.act(x + i0, i1 - i0, act, ex));
}

static void vec_act_mul(float *g, const float *u, size_t n, enum idf2_act act,
                        const struct idf2_exec *ex)
{
    SLICED(n, n, idf2_ref_ops.act_mul(g + i0, u + i0, i1 - i0, act, ex));
}

static void vec_add(float *y, const float *x, size_t n, const struct idf2_exec *ex)
{
    SLICED(n, n, idf2_ref_ops.add(y + i0, x + i0, i1 - i0, ex));
}

static void vec_rope(float *x, size_t n, size_t x_stride, int n_heads, int head_dim,
                     const float *cos_t, const float *sin_t, const int32_t *pos,
                     const struct idf2_exec *ex)
{
    SLICED(n, n * x_stride,
           idf2_ref_ops.rope(x + i0 * x_stride, i1 - i0, x_stride, n_heads, head_dim, cos_t, sin_t,
                             pos + i0, ex));
}

const struct idf2_ops idf2_vec_ops = {
    .name = "vec",
    .tol = { 1e-5, 1e-5 },
    .tol_other = 1e-5,
    .matmul = { vec_matmul, vec_matmul },
    .matmul_ws = vec_matmul_ws,
    .attention = vec_attention,
    .attention_ws = vec_attention_ws,
    .layernorm = vec_layernorm,
    .rmsnorm = vec_rmsnorm,
    .act = vec_act,
    .act_mul = vec_act_mul,
    .add = vec_add,
    .rope = vec_rope,
};
