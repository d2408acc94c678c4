/* idf2_ref: the scalar reference row.
 *
 * Owns nothing.  Threads split output rows (matmul) or (query, head) pairs
 * (attention), never a sum, so results are the same at any thread count;
 * the other operations run on the calling thread.  Every one of those is
 * row- or element-wise, so a row that runs them on slices of the rows (or
 * elements) gets exactly the reference's values.
 * Workspace: one dequantized weight row (matmul) or one score row
 * (attention) per thread. */
#include "idf2_ref.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define REF_ALIGN 64
#define REF_HUGE  ((size_t)2 << 20)

/* A buffer of 2 MiB or more (a context's arena: activations, KV cache)
 * starts on a huge-page boundary and is advised for transparent huge pages:
 * Debian's THP is "madvise" only, so it would get 4 KiB pages, and every
 * layer of a pass walks these megabytes again; the TLB misses cost the
 * 378 px image path about 3 %.  Advice only: where the kernel gives no huge
 * page, the buffer works the same. */
static void *ref_alloc(size_t bytes)
{
    const size_t align = bytes >= REF_HUGE ? REF_HUGE : REF_ALIGN;
    const size_t rounded = (bytes + align - 1) / align * align;
    if (rounded < bytes)
        return NULL;
    void *p = aligned_alloc(align, rounded ? rounded : align);
    if (p && align == REF_HUGE)
        madvise(p, rounded, MADV_HUGEPAGE);
    return p;
}

static size_t per_thread_floats(size_t n, int nt)
{
    return ((n + 15) / 16 * 16) * (size_t)(nt > 0 ? nt : 1) * sizeof(float);
}

static size_t ref_matmul_ws(size_t n, const struct idf2_w *w, int nt)
{
    (void)n;
    return per_thread_floats((size_t)w->cols, nt);
}

static void ref_matmul(float *y, const float *x, size_t n, const struct idf2_w *w,
                       const float *bias, const struct idf2_exec *ex)
{
    const size_t K = (size_t)w->cols, O = (size_t)w->rows;
    const size_t stride = (K + 15) / 16 * 16;
#pragma omp parallel for schedule(static) num_threads(ex->nt)
    for (size_t j = 0; j < O; j++) {
        float *wr = (float *)ex->ws + (size_t)omp_get_thread_num() * stride;
        idf2_w_dequantize_row(w->fmt, w->data, O, K, j, wr);
        for (size_t i = 0; i < n; i++) {
            double s = bias ? bias[j] : 0.0;
            for (size_t k = 0; k < K; k++)
                s += (double)x[i * K + k] * wr[k];
            y[i * O + j] = (float)s;
        }
    }
}

static size_t ref_attention_ws(size_t n_q, size_t n_kv, int n_kv_heads, int head_dim, int nt)
{
    (void)n_q, (void)n_kv_heads, (void)head_dim;
    return per_thread_floats(n_kv, nt);
}

static void ref_attention(float *out, const struct idf2_attn *a, const struct idf2_exec *ex)
{
    const size_t hd = (size_t)a->head_dim, stride = (a->n_kv + 15) / 16 * 16;
    const long tasks = (long)a->n_q * a->n_heads;
#pragma omp parallel for schedule(static) num_threads(ex->nt)
    for (long t = 0; t < tasks; t++) {
        const size_t i = (size_t)t / (size_t)a->n_heads;
        const int h = (int)(t % a->n_heads);
        const size_t g = (size_t)(h / (a->n_heads / a->n_kv_heads));
        float *sc = (float *)ex->ws + (size_t)omp_get_thread_num() * stride;
        const float *q = a->q + i * a->q_stride + (size_t)h * hd;
        const size_t qp = a->q_pos0 + i;
        float mx = -INFINITY;
        for (size_t j = 0; j < a->n_kv; j++) {
            const bool seen = (!a->causal || (j <= qp && (!a->window || qp - j < a->window))) &&
                              (!a->key_mask || a->key_mask[j]);
            if (!seen) {
                sc[j] = -INFINITY;
                continue;
            }
            const float *k = a->k + g * a->kv_head_stride + j * a->kv_row_stride;
            double d = 0;
            for (size_t e = 0; e < hd; e++)
                d += (double)q[e] * k[e];
            sc[j] = (float)d * a->scale;
            mx = sc[j] > mx ? sc[j] : mx;
        }
        double sum = 0;
        for (size_t j = 0; j < a->n_kv; j++) {
            sc[j] = sc[j] == -INFINITY ? 0.0f : expf(sc[j] - mx);
            sum += sc[j];
        }
        float *o = out + i * (size_t)a->n_heads * hd + (size_t)h * hd;
        for (size_t e = 0; e < hd; e++) {
            double s = 0;
            for (size_t j = 0; j < a->n_kv; j++)
                if (sc[j] != 0)
                    s += (double)sc[j] * a->v[g * a->kv_head_stride + j * a->kv_row_stride + e];
            o[e] = (float)(s / sum);
        }
    }
}

static void ref_layernorm(float *y, const float *x, size_t n, size_t d, const float *w,
                          const float *b, float eps, const struct idf2_exec *ex)
{
    (void)ex;
    for (size_t i = 0; i < n; i++) {
        const float *xi = x + i * d;
        float *yi = y + i * d;
        double mean = 0, var = 0;
        for (size_t k = 0; k < d; k++)
            mean += xi[k];
        mean /= (double)d;
        for (size_t k = 0; k < d; k++)
            var += ((double)xi[k] - mean) * ((double)xi[k] - mean);
        var /= (double)d;
        const float rstd = (float)(1.0 / sqrt(var + (double)eps)), m = (float)mean;
        for (size_t k = 0; k < d; k++)
            yi[k] = (xi[k] - m) * rstd * w[k] + b[k];
    }
}

static void ref_rmsnorm(float *y, const float *x, size_t n, size_t d, const float *w, float eps,
                        const struct idf2_exec *ex)
{
    (void)ex;
    for (size_t i = 0; i < n; i++) {
        const float *xi = x + i * d;
        float *yi = y + i * d;
        double ss = 0;
        for (size_t k = 0; k < d; k++)
            ss += (double)xi[k] * xi[k];
        const float r = (float)(1.0 / sqrt(ss / (double)d + (double)eps));
        for (size_t k = 0; k < d; k++)
            yi[k] = w[k] * (xi[k] * r);
    }
}

static float act1(float v, enum idf2_act act)
{
    switch (act) {
    case IDF2_ACT_SILU:
        return v / (1.0f + expf(-v));
    case IDF2_ACT_GELU_TANH:
        return 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    case IDF2_ACT_GELU:
        return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    }
    return v;
}

static void ref_act(float *x, size_t n, enum idf2_act act, const struct idf2_exec *ex)
{
    (void)ex;
    for (size_t i = 0; i < n; i++)
        x[i] = act1(x[i], act);
}

static void ref_act_mul(float *g, const float *u, size_t n, enum idf2_act act,
                        const struct idf2_exec *ex)
{
    (void)ex;
    for (size_t i = 0; i < n; i++)
        g[i] = act1(g[i], act) * u[i];
}

static void ref_add(float *y, const float *x, size_t n, const struct idf2_exec *ex)
{
    (void)ex;
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}

static void ref_rope(float *x, size_t n, size_t x_stride, int n_heads, int head_dim,
                     const float *cos_t, const float *sin_t, const int32_t *pos,
                     const struct idf2_exec *ex)
{
    (void)ex;
    const size_t half = (size_t)head_dim / 2, hd = (size_t)head_dim;
    for (size_t i = 0; i < n; i++) {
        const float *c = cos_t + (size_t)pos[i] * hd, *s = sin_t + (size_t)pos[i] * hd;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + i * x_stride + (size_t)h * hd;
            for (size_t j = 0; j < half; j++) {
                const float a = v[j], b = v[j + half];
                v[j] = a * c[j] - b * s[j];
                v[j + half] = b * c[j + half] + a * s[j + half];
            }
        }
    }
}

static void ref_embed_rows(float *out, const struct idf2_w *table, const int32_t *ids, size_t n,
                           const struct idf2_exec *ex)
{
    (void)ex;
    const size_t d = (size_t)table->cols;
    for (size_t i = 0; i < n; i++)
        idf2_w_dequantize_row(table->fmt, table->data, (size_t)table->rows, d, (size_t)ids[i],
                              out + i * d);
}

const struct idf2_ops idf2_ref_ops = {
    .name = "ref",
    .buf_alloc = ref_alloc,
    .buf_free = free,
    .matmul = { ref_matmul, ref_matmul, ref_matmul, ref_matmul, ref_matmul, ref_matmul },
    .matmul_ws = ref_matmul_ws,
    .attention = ref_attention,
    .attention_ws = ref_attention_ws,
    .layernorm = ref_layernorm,
    .rmsnorm = ref_rmsnorm,
    .act = ref_act,
    .act_mul = ref_act_mul,
    .add = ref_add,
    .rope = ref_rope,
    .embed_rows = ref_embed_rows,
};
