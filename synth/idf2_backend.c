/* idf2_backend: the row table, run-time selection, the weight formats'
 * reference definitions, and the compositions of operations (SwiGLU).
 *
 * Owns the resolved rows: built once (pthread_once) by copying each
 * registered row and filling its NULL entries from its parent row, so a
 * resolved row is complete and immutable.  Rows register in `rows` below,
 * in order of preference (the last one this CPU runs is AUTO's pick), each
 * after its parent. */
#include "idf2_backend.h"

#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <string.h>

#include "core/vc_mem.h"
#include "synth/idf2_cpu_avx2.h"
#include "synth/idf2_cpu_avx512.h"
#include "synth/idf2_kernels.h"
#include "synth/idf2_ref.h"
#include "synth/safetensors.h"

static bool always(void)
{
    return true;
}

static const struct {
    enum idf2_backend_id id;
    const struct idf2_ops *ops;
    bool (*runs_here)(void);
    /* The row whose operations fill this one's NULL entries (its index
     * here): avx2 and avx512 both build on vec, so on a CPU that runs both
     * the avx512 row's float32 matmul is vec's, the one its workspace
     * query counts, never the avx2 row's. */
    size_t parent;
} rows[] = {
    { IDF2_BACKEND_REF, &idf2_ref_ops, always, 0 },
    { IDF2_BACKEND_VEC, &idf2_vec_ops, always, 0 },
    { IDF2_BACKEND_AVX2, &idf2_avx2_ops, idf2_avx2_usable, 1 },
    { IDF2_BACKEND_AVX512, &idf2_avx512_ops, idf2_avx512_usable, 1 },
    { IDF2_BACKEND_AVX512_BF16, &idf2_avx512bf16_ops, idf2_avx512_usable, 3 },
};
#define N_ROWS (sizeof rows / sizeof rows[0])

static struct idf2_ops resolved[N_ROWS];
static bool usable[N_ROWS];
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Each function-pointer member of struct idf2_ops, for inheritance. */
#define INHERIT(dst, src, field)                                                                   \
    do {                                                                                           \
        if (!(dst)->field)                                                                         \
            (dst)->field = (src)->field;                                                           \
    } while (0)

static void resolve(void)
{
    for (size_t r = 0; r < N_ROWS; r++) {
        struct idf2_ops *o = &resolved[r];
        *o = *rows[r].ops;
        usable[r] = rows[r].runs_here();
        if (r == 0)
            continue;
        const struct idf2_ops *p = &resolved[rows[r].parent];
        INHERIT(o, p, buf_alloc);
        INHERIT(o, p, buf_free);
        const bool same_ep = !o->act && !o->act_mul && !o->add;
        for (int f = 0; f < IDF2_WF_COUNT; f++)
            if (!o->matmul[f]) {
                o->matmul[f] = p->matmul[f];
                o->tol[f] = p->tol[f];
                if (same_ep && !o->matmul_ep[f])
                    o->matmul_ep[f] = p->matmul_ep[f];
            }
        if (o->tol_other < p->tol_other)
            o->tol_other = p->tol_other;
        if (o->tol_attn < p->tol_attn)
            o->tol_attn = p->tol_attn;
        if (o->tol_attn < o->tol_other)
            o->tol_attn = o->tol_other;
        INHERIT(o, p, matmul_ws);
        INHERIT(o, p, pack_bytes);
        INHERIT(o, p, pack);
        INHERIT(o, p, attention);
        INHERIT(o, p, attention_ws);
        INHERIT(o, p, layernorm);
        INHERIT(o, p, rmsnorm);
        INHERIT(o, p, act);
        INHERIT(o, p, act_mul);
        INHERIT(o, p, add);
        INHERIT(o, p, rope);
        INHERIT(o, p, embed_rows);
    }
}

const struct idf2_ops *idf2_backend_get(enum idf2_backend_id id)
{
    pthread_once(&once, resolve);
    const struct idf2_ops *best = NULL;
    for (size_t r = 0; r < N_ROWS; r++)
        if (usable[r] && ((id == IDF2_BACKEND_AUTO && !resolved[r].approx) ||
                          id == IDF2_BACKEND_FAST || rows[r].id == id))
            best = &resolved[r];
    return best;
}

const struct idf2_ops *idf2_backend_at(size_t i)
{
    pthread_once(&once, resolve);
    for (size_t r = 0; r < N_ROWS; r++)
        if (usable[r] && i-- == 0)
            return &resolved[r];
    return NULL;
}

const struct idf2_ops *idf2_backend_by_name(const char *name)
{
    if (strcmp(name, "fast") == 0)
        return idf2_backend_get(IDF2_BACKEND_FAST);
    const struct idf2_ops *o;
    for (size_t i = 0; (o = idf2_backend_at(i)); i++)
        if (strcmp(o->name, name) == 0)
            return o;
    return NULL;
}

/* ------------------------------------------------------------ formats */

const char *idf2_wfmt_name(enum idf2_wfmt f)
{
    static const char *const names[IDF2_WF_COUNT] = { "f32",  "bf16",    "q8_0",
                                                      "q4_0", "q8_0x16", "q4_0x16" };
    return (unsigned)f < IDF2_WF_COUNT ? names[f] : "?";
}

enum idf2_wfmt idf2_wfmt_base(enum idf2_wfmt f)
{
    return f == IDF2_WF_Q8_0X16 ? IDF2_WF_Q8_0 : f == IDF2_WF_Q4_0X16 ? IDF2_WF_Q4_0 : f;
}

size_t idf2_w_bytes(const struct idf2_w *w)
{
    return (size_t)w->rows * idf2_wfmt_row_bytes(w->fmt, (size_t)w->cols);
}

size_t idf2_wfmt_row_bytes(enum idf2_wfmt f, size_t cols)
{
    const size_t blocks = cols / IDF2_QBLOCK + (cols % IDF2_QBLOCK != 0);
    size_t out = 0;
    switch (idf2_wfmt_base(f)) {
    case IDF2_WF_F32:
        return cols > SIZE_MAX / 4 ? 0 : cols * 4;
    case IDF2_WF_BF16:
        return cols > SIZE_MAX / 2 ? 0 : cols * 2;
    case IDF2_WF_Q8_0:
        out = blocks * sizeof(struct idf2_block_q8_0);
        return blocks && out / blocks != sizeof(struct idf2_block_q8_0) ? 0 : out;
    case IDF2_WF_Q4_0:
        out = blocks * sizeof(struct idf2_block_q4_0);
        return blocks && out / blocks != sizeof(struct idf2_block_q4_0) ? 0 : out;
    default:
        break;
    }
    return 0;
}

/* The block's values with zeros past the row's end. */
static void block_of(const float *src, size_t cols, size_t b, float v[IDF2_QBLOCK])
{
    for (size_t e = 0; e < IDF2_QBLOCK; e++) {
        const size_t k = b * IDF2_QBLOCK + e;
        v[e] = k < cols ? src[k] : 0.0f;
    }
}

void idf2_quantize_row(enum idf2_wfmt f, const float *src, size_t cols, void *dst)
{
    const size_t nb = cols / IDF2_QBLOCK + (cols % IDF2_QBLOCK != 0);
    float v[IDF2_QBLOCK];
    switch (f) {
    case IDF2_WF_F32:
        memcpy(dst, src, cols * sizeof(float));
        return;
    case IDF2_WF_BF16:
        for (size_t k = 0; k < cols; k++)
            ((uint16_t *)dst)[k] = st_f32_to_bf16(src[k]);
        return;
    case IDF2_WF_Q8_0:
        for (size_t b = 0; b < nb; b++) {
            struct idf2_block_q8_0 *q = (struct idf2_block_q8_0 *)dst + b;
            block_of(src, cols, b, v);
            float amax = 0;
            for (int e = 0; e < IDF2_QBLOCK; e++)
                amax = fabsf(v[e]) > amax ? fabsf(v[e]) : amax;
            const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
            q->d = st_f32_to_f16(d);
            for (int e = 0; e < IDF2_QBLOCK; e++)
                q->q[e] = (int8_t)lrintf(v[e] * id);
        }
        return;
    case IDF2_WF_Q4_0:
        for (size_t b = 0; b < nb; b++) {
            struct idf2_block_q4_0 *q = (struct idf2_block_q4_0 *)dst + b;
            block_of(src, cols, b, v);
            float amax = 0, mx = 0;
            for (int e = 0; e < IDF2_QBLOCK; e++)
                if (fabsf(v[e]) > amax) {
                    amax = fabsf(v[e]);
                    mx = v[e];
                }
            const float d = mx / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
            q->d = st_f32_to_f16(d);
            for (int e = 0; e < IDF2_QBLOCK / 2; e++) {
                long lo = lrintf(v[e] * id) + 8, hi = lrintf(v[e + IDF2_QBLOCK / 2] * id) + 8;
                lo = lo < 0 ? 0 : lo > 15 ? 15 : lo;
                hi = hi < 0 ? 0 : hi > 15 ? 15 : hi;
                q->qs[e] = (uint8_t)(lo | hi << 4);
            }
        }
        return;
    default:
        idf2_w_quantize_row(f, dst, 1, cols, 0, src);
        return;
    }
}

void idf2_dequantize_row(enum idf2_wfmt f, const void *row, size_t cols, float *dst)
{
    for (size_t k = 0; k < cols; k++) {
        const size_t b = k / IDF2_QBLOCK, e = k % IDF2_QBLOCK;
        switch (f) {
        case IDF2_WF_F32:
            dst[k] = ((const float *)row)[k];
            break;
        case IDF2_WF_BF16:
            dst[k] = st_bf16_to_f32(((const uint16_t *)row)[k]);
            break;
        case IDF2_WF_Q8_0: {
            const struct idf2_block_q8_0 *q = (const struct idf2_block_q8_0 *)row + b;
            dst[k] = st_f16_to_f32(q->d) * (float)q->q[e];
            break;
        }
        case IDF2_WF_Q4_0: {
            const struct idf2_block_q4_0 *q = (const struct idf2_block_q4_0 *)row + b;
            const int nib = e < IDF2_QBLOCK / 2 ? q->qs[e] & 15 : q->qs[e - IDF2_QBLOCK / 2] >> 4;
            dst[k] = st_f16_to_f32(q->d) * (float)(nib - 8);
            break;
        }
        default:
            idf2_w_dequantize_row(f, row, 1, cols, 0, dst);
            return;
        }
    }
}

/* Where row r's block b is in an x16 matrix: *codes (chunk j at
 * + j * lanes * 4, then + 4 * lane) and *scale; cb: code bytes per row and
 * block (32 or 16). */
struct x16_at {
    size_t lanes, lane;
    unsigned char *codes, *scale;
};

static struct x16_at x16_locate(const void *mat, size_t nrows, size_t cols, size_t cb, size_t r,
                                size_t b)
{
    const size_t nb = cols / IDF2_QBLOCK + (cols % IDF2_QBLOCK != 0), g = r / 16;
    const size_t lanes = idf2_min_sz(16, nrows - g * 16);
    unsigned char *grp = (unsigned char *)mat + g * 16 * nb * (cb + 2);
    return (struct x16_at){ lanes, r % 16, grp + b * lanes * cb,
                            grp + nb * lanes * cb + (b * lanes + r % 16) * 2 };
}

/* Block b of row r of an x16 matrix from blk, the block in its base
 * format's bytes. */
static void x16_put_block(enum idf2_wfmt base, void *mat, size_t nrows, size_t cols, size_t r,
                          size_t b, const unsigned char *blk)
{
    const size_t cb = base == IDF2_WF_Q8_0 ? IDF2_QBLOCK : IDF2_QBLOCK / 2;
    const struct x16_at at = x16_locate(mat, nrows, cols, cb, r, b);
    memcpy(at.scale, blk, 2);
    for (size_t j = 0; j < cb / 4; j++)
        for (size_t i = 0; i < 4; i++)
            at.codes[(j * at.lanes + at.lane) * 4 + i] =
                (unsigned char)(blk[2 + 4 * j + i] ^ (base == IDF2_WF_Q8_0 ? 0x80 : 0));
}

void idf2_w_quantize_row(enum idf2_wfmt f, void *mat, size_t nrows, size_t cols, size_t r,
                         const float *src)
{
    const enum idf2_wfmt base = idf2_wfmt_base(f);
    if (base == f) {
        idf2_quantize_row(f, src, cols, (char *)mat + r * idf2_wfmt_row_bytes(f, cols));
        return;
    }
    const size_t nb = cols / IDF2_QBLOCK + (cols % IDF2_QBLOCK != 0);
    for (size_t b = 0; b < nb; b++) {
        /* One block quantized alone is the row's block (blocks are
         * independent). */
        unsigned char blk[sizeof(struct idf2_block_q8_0)];
        idf2_quantize_row(base, src + b * IDF2_QBLOCK,
                          idf2_min_sz(IDF2_QBLOCK, cols - b * IDF2_QBLOCK), blk);
        x16_put_block(base, mat, nrows, cols, r, b, blk);
    }
}

void idf2_w_store_row(enum idf2_wfmt f, void *mat, size_t nrows, size_t cols, size_t r,
                      const void *row)
{
    const enum idf2_wfmt base = idf2_wfmt_base(f);
    const size_t rb = idf2_wfmt_row_bytes(base, cols);
    if (base == f) {
        memcpy((char *)mat + r * rb, row, rb);
        return;
    }
    const size_t bb =
        base == IDF2_WF_Q8_0 ? sizeof(struct idf2_block_q8_0) : sizeof(struct idf2_block_q4_0);
    for (size_t b = 0; b < rb / bb; b++)
        x16_put_block(base, mat, nrows, cols, r, b, (const unsigned char *)row + b * bb);
}

void idf2_w_dequantize_row(enum idf2_wfmt f, const void *mat, size_t nrows, size_t cols, size_t r,
                           float *dst)
{
    const enum idf2_wfmt base = idf2_wfmt_base(f);
    if (base == f) {
        idf2_dequantize_row(f, (const char *)mat + r * idf2_wfmt_row_bytes(f, cols), cols, dst);
        return;
    }
    const size_t nb = cols / IDF2_QBLOCK + (cols % IDF2_QBLOCK != 0);
    const size_t cb = base == IDF2_WF_Q8_0 ? IDF2_QBLOCK : IDF2_QBLOCK / 2;
    for (size_t b = 0; b < nb; b++) {
        unsigned char blk[sizeof(struct idf2_block_q8_0)];
        const struct x16_at at = x16_locate(mat, nrows, cols, cb, r, b);
        memcpy(blk, at.scale, 2);
        for (size_t j = 0; j < cb / 4; j++)
            for (size_t i = 0; i < 4; i++)
                blk[2 + 4 * j + i] = (unsigned char)(at.codes[(j * at.lanes + at.lane) * 4 + i] ^
                                                     (base == IDF2_WF_Q8_0 ? 0x80 : 0));
        float v[IDF2_QBLOCK];
        idf2_dequantize_row(base, blk, IDF2_QBLOCK, v);
        memcpy(dst + b * IDF2_QBLOCK, v,
               idf2_min_sz(IDF2_QBLOCK, cols - b * IDF2_QBLOCK) * sizeof *v);
    }
}

/* ---------------------------------------------------------------- arena */

void *idf2_carve(struct idf2_carve *c, size_t n, size_t elem)
{
    size_t bytes, end;
    const size_t start = (c->off + 63) / 64 * 64;
    if (c->overflow || start < c->off || !vc_mul_ok(n, elem, &bytes) ||
        !vc_add_ok(start, bytes, &end)) {
        c->overflow = true;
        return NULL;
    }
    c->off = end;
    return c->base ? c->base + start : NULL;
}

/* --------------------------------------------------- activations, norms */

void idf2_act_spans(idf2_act_span_fn *span, size_t lanes, float *x, const float *u, size_t n,
                    enum idf2_act act, const struct idf2_exec *ex)
{
    if (act != IDF2_ACT_SILU && act != IDF2_ACT_GELU_TANH) {
        if (u)
            idf2_vec_ops.act_mul(x, u, n, act, ex);
        else
            idf2_vec_ops.act(x, n, act, ex);
        return;
    }
    const size_t nv = (n + lanes - 1) / lanes;
#pragma omp parallel num_threads(n >= IDF2_PAR_MIN_ELEMS && ex->nt > 1 ? ex->nt : 1)
    {
        const size_t t = (size_t)omp_get_thread_num(), T = (size_t)omp_get_num_threads();
        const size_t i0 = nv * t / T * lanes, i1 = idf2_min_sz(n, nv * (t + 1) / T * lanes);
        if (i1 > i0)
            span(x + i0, u ? u + i0 : NULL, i1 - i0, act);
    }
}

void idf2_norm_spans(idf2_norm_rows_fn *norm, float *y, const float *x, size_t n, size_t d,
                     const float *w, const float *b, bool ln, float eps, const struct idf2_exec *ex)
{
#pragma omp parallel num_threads(n *d >= IDF2_PAR_MIN_ELEMS && ex->nt > 1 ? ex->nt : 1)
    {
        const size_t t = (size_t)omp_get_thread_num(), T = (size_t)omp_get_num_threads();
        const size_t i0 = n * t / T, i1 = n * (t + 1) / T;
        if (i1 > i0)
            norm(y + i0 * d, x + i0 * d, i1 - i0, d, w, b, ln, eps);
    }
}

/* ---------------------------------------------------------- compositions */

bool idf2_w_stack(const struct idf2_ops *ops, const struct idf2_w *const *parts, size_t n,
                  struct idf2_w *out)
{
    if (n == 0 || !ops->pack || !ops->pack_bytes)
        return false;
    const struct idf2_w *a = parts[0];
    if (!a->packed || a->packed_by != ops->pack)
        return false;
    *out = (struct idf2_w){
        .fmt = a->fmt, .cols = a->cols, .packed = a->packed, .packed_by = a->packed_by
    };
    size_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        const struct idf2_w *p = parts[i];
        const size_t b = p->packed_by == ops->pack && p->fmt == a->fmt && p->cols == a->cols
                             ? ops->pack_bytes(p)
                             : 0;
        /* A part before the last must fill its layout's last row group:
         * then one more row takes more bytes (16-row groups: 27 rows pack
         * as 32, and a next part would not start at row 27). */
        struct idf2_w more = *p;
        more.rows++;
        if (!b || (const char *)p->packed != (const char *)a->packed + sum ||
            (i + 1 < n && ops->pack_bytes(&more) == b))
            return false;
        sum += b;
        out->rows += p->rows;
    }
    return ops->pack_bytes(out) == sum;
}

/* act(gate) * up of n rows of gate|up side by side (the [n, 2I] matrix at
 * g) into the [n, I] matrix at g.  A row (14,336 values at 8B) is under
 * what act_mul splits over threads, a prefill's or a batch's rows are not:
 * the team takes whole rows, each row's product into its gate half, then
 * moved to row i.  Row i's new place overlaps the old place of row i / 2
 * alone, so rows go in waves [0, 1), [1, 2), [2, 4), [4, 8) ...: a wave
 * moves rows only over rows an earlier wave has finished.  Each value is
 * act_mul's whoever computes it (act_mul uses no workspace, so the team
 * shares ex's). */
static void act_mul_stacked(const struct idf2_exec *ex, float *g, size_t n, size_t I,
                            enum idf2_act act)
{
    const int team = n > 1 && n * I >= IDF2_PAR_MIN_ELEMS ? ex->nt : 1;
    const struct idf2_exec row_ex = { ex->ops, team > 1 ? 1 : ex->nt, ex->ws, ex->ws_bytes };
#pragma omp parallel num_threads(team)
    for (size_t w0 = 0, w1 = 1; w0 < n; w0 = w1, w1 = idf2_min_sz(2 * w1, n)) {
#pragma omp for schedule(static)
        for (size_t i = w0; i < w1; i++) {
            float *row = g + 2 * i * I;
            ex->ops->act_mul(row, row + I, I, act, &row_ex);
            if (i > 0)
                memmove(g + i * I, row, I * sizeof(float));
        }
    }
}

void idf2_swiglu(const struct idf2_exec *ex, float *y, const float *x, size_t n,
                 const struct idf2_w *gate, const struct idf2_w *up, const struct idf2_w *gate_up,
                 const struct idf2_w *down, enum idf2_act act, float *g, float *u)
{
    const size_t I = (size_t)gate->rows;
    if (gate_up) {
        idf2_mm(ex, g, x, n, gate_up, NULL);
        act_mul_stacked(ex, g, n, I, act);
    } else {
        idf2_mm(ex, g, x, n, gate, NULL);
        idf2_mm_ep(ex, g, x, n, up, NULL, IDF2_EP_ACT_MUL, act, u);
    }
    idf2_mm(ex, y, g, n, down, NULL);
}

void idf2_mm_ep(const struct idf2_exec *ex, float *y, const float *x, size_t n,
                const struct idf2_w *w, const float *bias, enum idf2_ep ep, enum idf2_act act,
                float *tmp)
{
    const struct idf2_ops *o = ex->ops;
    if (o->matmul_ep[w->fmt] && o->matmul_ep[w->fmt](y, x, n, w, bias, ep, act, ex))
        return;
    const size_t ny = n * (size_t)w->rows;
    if (ep == IDF2_EP_ACT) {
        idf2_mm(ex, y, x, n, w, bias);
        o->act(y, ny, act, ex);
        return;
    }
    idf2_mm(ex, tmp, x, n, w, bias);
    if (ep == IDF2_EP_ADD)
        o->add(y, tmp, ny, ex);
    else
        o->act_mul(y, tmp, ny, act, ex);
}

void idf2_ws_need_mm(size_t *need, const struct idf2_ops *ops, size_t n, const struct idf2_w *w,
                     int nt)
{
    const size_t b = ops->matmul_ws(n, w, nt);
    *need = b > *need ? b : *need;
}
