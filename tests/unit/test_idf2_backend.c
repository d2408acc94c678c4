/* idf2_backend: every operation of every row this CPU runs against the
 * scalar reference row on random shapes (tails included: K = 4304 and odd
 * sizes that are not multiples of the 32-weight block or the vector width),
 * within the row's declared tolerances, as ggml's test-backend-ops does;
 * the batch-invariance contract bit for bit (a matmul row alone equals the
 * same row inside a batch, 1 thread equals 2, an attention row decoded
 * alone equals the same row of a prefill); the reference itself against
 * hand-computed values and a double-precision naive attention; and the
 * block formats against values worked out by hand. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "synth/idf2_backend.h"
#include "synth/safetensors.h"
#include "tests/unit/vc_test.h"

static uint32_t rng_state = 12345;

static float frand(float scale)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return (float)((int)(rng_state >> 8) % 20001 - 10000) / 10000.0f * scale;
}

/* v[0..n) = frand(scale) each. */
static void fill(float *v, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++)
        v[i] = frand(scale);
}

/* An exec over a fresh workspace of `bytes`. */
static struct idf2_exec exec_new(const struct idf2_ops *ops, int nt, size_t bytes)
{
    return (struct idf2_exec){ ops, nt, aligned_alloc(64, (bytes + 64) / 64 * 64), bytes };
}

/* A random [O, K] weight in format f; *deq receives the dequantized values
 * (what the reference multiplies by). */
static void *make_weight(enum idf2_wfmt f, size_t O, size_t K, float **deq)
{
    const size_t rb = idf2_wfmt_row_bytes(f, K);
    char *w = malloc(O * rb);
    float *src = malloc(K * sizeof(float));
    *deq = malloc(O * K * sizeof(float));
    for (size_t j = 0; j < O; j++) {
        for (size_t k = 0; k < K; k++)
            src[k] = frand(0.5f);
        idf2_w_quantize_row(f, w, O, K, j, src);
        idf2_w_dequantize_row(f, w, O, K, j, *deq + j * K);
    }
    free(src);
    return w;
}

/* Matmul of one row on one shape and format: accuracy against the
 * reference, and bitwise batch/thread invariance. */
static void check_matmul(const struct idf2_ops *ops, enum idf2_wfmt f, size_t n, size_t K, size_t O,
                         bool with_bias)
{
    const struct idf2_ops *ref = idf2_backend_get(IDF2_BACKEND_REF);
    float *deq, *x = malloc(n * K * 4), *bias = malloc(O * 4);
    void *wd = make_weight(f, O, K, &deq);
    const struct idf2_w w = { .fmt = f, .data = wd, .rows = (int64_t)O, .cols = (int64_t)K };
    fill(x, n * K, 2.0f);
    fill(bias, O, 1.0f);
    const float *b = with_bias ? bias : NULL;
    float *y = malloc(n * O * 4), *yr = malloc(n * O * 4), *y1 = malloc(O * 4),
          *y2 = malloc(n * O * 4);
    /* Each row gets exactly the workspace it asks for (ASan sees a row
     * that asks for less than it, or a row it inherits from, uses). */
    const size_t ws = ops->matmul_ws(n, &w, 2);
    size_t wr = 0;
    idf2_ws_need_mm(&wr, ref, n, &w, 2);
    struct idf2_exec e2 = exec_new(ops, 2, ws), e1 = exec_new(ops, 1, ws),
                     er = exec_new(ref, 2, wr);
    ref->matmul[f](yr, x, n, &w, b, &er);
    ops->matmul[f](y, x, n, &w, b, &e2);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < O; j++) {
            double mag = 0;
            for (size_t k = 0; k < K; k++)
                mag += fabs((double)x[i * K + k] * deq[j * K + k]);
            const double d = fabs((double)y[i * O + j] - yr[i * O + j]);
            if (!(d <= ops->tol[f] * mag + 1e-30) && bad++ == 0)
                fprintf(stderr, "%s %s n=%zu K=%zu O=%zu: y[%zu,%zu] = %.9g, ref %.9g\n", ops->name,
                        idf2_wfmt_name(f), n, K, O, i, j, y[i * O + j], yr[i * O + j]);
        }
    CHECK_INT(bad, 0);
    ops->matmul[f](y2, x, n, &w, b, &e1);
    CHECK(memcmp(y, y2, n * O * 4) == 0);
    for (size_t i = 0; i < n; i += (n > 8 ? 7 : 1)) {
        ops->matmul[f](y1, x + i * K, 1, &w, b, &e2);
        CHECK(memcmp(y1, y + i * O, O * 4) == 0);
    }
    /* The row's packed layout (made once at load for the image path) gives
     * the same bits as the weights as stored, without reading them (data
     * NULL), for the whole batch and for rows alone, at 1 and 2 threads. */
    const size_t pb = ops->pack_bytes ? ops->pack_bytes(&w) : 0;
    CHECK(pb > 0 || f != IDF2_WF_BF16 || strncmp(ops->name, "avx512", 6) != 0);
    if (pb) {
        void *pk = aligned_alloc(64, idf2_align64(pb));
        ops->pack(pk, &w, 2);
        const struct idf2_w wp = {
            .fmt = f, .rows = (int64_t)O, .cols = (int64_t)K, .packed = pk, .packed_by = ops->pack
        };
        memset(y2, 0, n * O * 4);
        ops->matmul[f](y2, x, n, &wp, b, &e2);
        CHECK(memcmp(y, y2, n * O * 4) == 0);
        ops->matmul[f](y2, x, n, &wp, b, &e1);
        CHECK(memcmp(y, y2, n * O * 4) == 0);
        for (size_t i = 0; i < n; i += (n > 8 ? 7 : 1)) {
            ops->matmul[f](y1, x + i * K, 1, &wp, b, &e2);
            CHECK(memcmp(y1, y + i * O, O * 4) == 0);
        }
        /* Every batch size up to 18 from the packed layout (each tile
         * shape of the 1-2 row, 3-16 row and outer-product paths): the
         * first m rows of the whole batch, bit for bit. */
        for (size_t m = 2; m <= n && m <= 18; m++) {
            ops->matmul[f](y2, x, m, &wp, b, &e2);
            CHECK(memcmp(y2, y, m * O * 4) == 0);
        }
        free(pk);
    }
    free(e1.ws);
    free(e2.ws);
    free(er.ws);
    free(x);
    free(bias);
    free(wd);
    free(deq);
    free(y);
    free(yr);
    free(y1);
    free(y2);
}

TEST(matmul_every_row_every_format)
{
    static const size_t shapes[][3] = {
        { 1, 4304, 37 },
        { 3, 13, 5 },
        { 7, 1152, 33 },
        { 67, 301, 29 },
        { 5, 32, 8 },
        { 70, 4304, 9 },
        { 2, 40, 3 },
        { 130, 77, 66 },
        /* K over 5120 inputs: the outer-product kernel's K blocks
         * (synth/idf2_cpu_bf16mm.c). */
        { 17, 10300, 50 },
        /* The Q8_0/Q4_0 kernels (synth/idf2_cpu_q8.c): 16 weight rows per
         * tile with a partial last one, two rows streaming, a batch of
         * 16 in two row tiles, and more groups than a thread's panel holds
         * (K = 4304: 5 groups a panel, 13 groups over two threads). */
        { 2, 4304, 37 },
        { 16, 100, 47 },
        { 5, 4304, 200 },
        /* bf16's streaming tile at 9-16 rows (two row tiles, weight rows
         * in threes) and the outer product at an odd chunk count with
         * row tiles of 6 and 7. */
        { 11, 4304, 40 },
        { 33, 4000, 47 },
        /* Text-weight shapes read from the packed layout at every batch
         * size to 18: K over one 5120-input block with a tail, and 16
         * rows exactly. */
        { 18, 5170, 35 },
        { 16, 4096, 64 },
        /* Past 1,024 rows the outer product from the packed layout runs
         * the row tiles in blocks (two here), each over every group (7
         * groups: chunks of 3, the last short). */
        { 1703, 20, 100 },
    };
    const struct idf2_ops *ops;
    for (size_t r = 0; (ops = idf2_backend_at(r)); r++)
        for (int f = 0; f < IDF2_WF_COUNT; f++)
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                check_matmul(ops, (enum idf2_wfmt)f, shapes[s][0], shapes[s][1], shapes[s][2],
                             s % 2 == 0);
}

/* A matrix in ggml's row layout and in its x16 twin, quantized from the
 * same floats, is the same product for every row at every batch size:
 * dequantized they are equal, and each row's numerics depend on the
 * values only (the avx2 and avx512 rows' tiles read the two layouts in
 * different orders, with exact integer block sums).  Shapes: a partial
 * last group of 16 (37, 13 rows), one whole group, K with a block tail. */
TEST(matmul_x16_same_bits_every_row)
{
    static const size_t kn[][2] = { { 4304, 37 }, { 40, 13 }, { 96, 16 } };
    static const size_t ms[] = { 1, 2, 3, 5, 17 };
    const struct idf2_ops *ops;
    for (size_t s = 0; s < sizeof kn / sizeof kn[0]; s++)
        for (int q4 = 0; q4 < 2; q4++) {
            const size_t K = kn[s][0], N = kn[s][1], M = 17;
            const enum idf2_wfmt f = q4 ? IDF2_WF_Q4_0 : IDF2_WF_Q8_0,
                                 fx = q4 ? IDF2_WF_Q4_0X16 : IDF2_WF_Q8_0X16;
            const size_t rb = idf2_wfmt_row_bytes(f, K);
            char *w0 = malloc(N * rb), *w1 = malloc(N * rb);
            float *src = malloc(K * 4), *x = malloc(M * K * 4), *bias = malloc(N * 4);
            float *y0 = malloc(M * N * 4), *y1 = malloc(M * N * 4);
            for (size_t j = 0; j < N; j++) {
                for (size_t k = 0; k < K; k++)
                    src[k] = frand(0.5f);
                idf2_w_quantize_row(f, w0, N, K, j, src);
                idf2_w_quantize_row(fx, w1, N, K, j, src);
                bias[j] = frand(1.0f);
            }
            for (size_t i = 0; i < M * K; i++)
                x[i] = frand(2.0f);
            const struct idf2_w
                a = { .fmt = f, .data = w0, .rows = (int64_t)N, .cols = (int64_t)K },
                b = { .fmt = fx, .data = w1, .rows = (int64_t)N, .cols = (int64_t)K };
            for (size_t r = 0; (ops = idf2_backend_at(r)); r++) {
                size_t ws = 0;
                idf2_ws_need_mm(&ws, ops, M, &a, 2);
                idf2_ws_need_mm(&ws, ops, M, &b, 2);
                struct idf2_exec e = exec_new(ops, 2, ws);
                for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
                    ops->matmul[f](y0, x, ms[i], &a, bias, &e);
                    ops->matmul[fx](y1, x, ms[i], &b, bias, &e);
                    if (memcmp(y0, y1, ms[i] * N * 4) != 0) {
                        fprintf(stderr, "  %s %s m=%zu K=%zu N=%zu: x16 bits differ\n", ops->name,
                                idf2_wfmt_name(f), ms[i], K, N);
                        vc_test_failures++;
                    }
                }
                free(e.ws);
            }
            free(w0);
            free(w1);
            free(src);
            free(x);
            free(bias);
            free(y0);
            free(y1);
        }
}

/* The fused epilogue (idf2_mm_ep, the rows' matmul_ep) against the
 * matmul followed by the row's act, add or act_mul, bit for bit, for the
 * weights as stored and packed (the vision tower's fc1 + GELU, o and fc2 +
 * the residual, SwiGLU's up + its middle), at 1 and 2 threads: a fused store that rounds in another
 * order, skips a tail column or adds to the wrong row fails here. */
static void check_matmul_ep(const struct idf2_ops *ops, enum idf2_wfmt f, size_t n, size_t K,
                            size_t O)
{
    float *deq, *x = malloc(n * K * 4), *bias = malloc(O * 4), *y0 = malloc(n * O * 4);
    float *want = malloc(n * O * 4), *got = malloc(n * O * 4), *tmp = malloc(n * O * 4);
    float *stage = malloc(n * O * 4); /* the unfused calls' product */
    void *wd = make_weight(f, O, K, &deq);
    const struct idf2_w w = { .fmt = f, .data = wd, .rows = (int64_t)O, .cols = (int64_t)K };
    fill(x, n * K, 2.0f);
    fill(bias, O, 1.0f);
    fill(y0, n * O, 3.0f);
    const size_t pb = ops->pack_bytes ? ops->pack_bytes(&w) : 0;
    void *pk = pb ? aligned_alloc(64, idf2_align64(pb)) : NULL;
    if (pk)
        ops->pack(pk, &w, 2);
    const struct idf2_w wp = {
        .fmt = f, .rows = (int64_t)O, .cols = (int64_t)K, .packed = pk, .packed_by = ops->pack
    };
    static const enum idf2_act acts[] = { IDF2_ACT_GELU_TANH, IDF2_ACT_SILU, IDF2_ACT_GELU };
    for (int nt = 1; nt <= 2; nt++) {
        struct idf2_exec e = exec_new(ops, nt, ops->matmul_ws(n, &w, nt));
        for (int p = 0; p < (pk ? 2 : 1); p++) {
            const struct idf2_w *wv = p ? &wp : &w;
            ops->matmul[f](tmp, x, n, &w, bias, &e);
            for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
                memcpy(want, tmp, n * O * 4);
                ops->act(want, n * O, acts[a], &e);
                idf2_mm_ep(&e, got, x, n, wv, bias, IDF2_EP_ACT, acts[a], NULL);
                CHECK(memcmp(got, want, n * O * 4) == 0);
                /* SwiGLU's middle: y holds the gate's product. */
                memcpy(want, y0, n * O * 4);
                ops->act_mul(want, tmp, n * O, acts[a], &e);
                memcpy(got, y0, n * O * 4);
                idf2_mm_ep(&e, got, x, n, wv, bias, IDF2_EP_ACT_MUL, acts[a], stage);
                CHECK(memcmp(got, want, n * O * 4) == 0);
            }
            memcpy(want, y0, n * O * 4);
            ops->add(want, tmp, n * O, &e);
            memcpy(got, y0, n * O * 4);
            idf2_mm_ep(&e, got, x, n, wv, bias, IDF2_EP_ADD, IDF2_ACT_GELU_TANH, stage);
            CHECK(memcmp(got, want, n * O * 4) == 0);
        }
        free(e.ws);
    }
    free(pk);
    free(wd);
    free(deq);
    free(x);
    free(bias);
    free(y0);
    free(want);
    free(got);
    free(tmp);
    free(stage);
}

TEST(matmul_epilogue_every_row)
{
    /* Rows from one to past the streaming tiles' 16, columns with a tail
     * group, K with a tail chunk. */
    static const size_t shapes[][3] = { { 1, 64, 16 }, { 5, 100, 33 }, { 40, 301, 50 } };
    const struct idf2_ops *ops;
    for (size_t r = 0; (ops = idf2_backend_at(r)); r++)
        for (int f = 0; f < IDF2_WF_COUNT; f++)
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                check_matmul_ep(ops, (enum idf2_wfmt)f, shapes[s][0], shapes[s][1], shapes[s][2]);
}

/* Self-attention over n rows of random q (H heads), k and v (G kv heads),
 * packed row-major as the vision tower lays them out; scale 0.3. */
static struct idf2_attn attn_random(size_t n, int H, int G, int hd, float **q, float **k, float **v)
{
    const size_t qw = (size_t)H * (size_t)hd, kw = (size_t)G * (size_t)hd;
    *q = malloc(n * qw * 4);
    *k = malloc(n * kw * 4);
    *v = malloc(n * kw * 4);
    for (size_t i = 0; i < n * qw; i++)
        (*q)[i] = frand(1.5f);
    for (size_t i = 0; i < n * kw; i++) {
        (*k)[i] = frand(1.0f);
        (*v)[i] = frand(3.0f);
    }
    return (struct idf2_attn){
        .q = *q,
        .q_stride = qw,
        .k = *k,
        .v = *v,
        .kv_head_stride = (size_t)hd,
        .kv_row_stride = kw,
        .n_q = n,
        .n_kv = n,
        .n_heads = H,
        .n_kv_heads = G,
        .head_dim = hd,
        .scale = 0.3f,
    };
}

/* Attention of one row on one shape against the reference (relative to
 * the largest |v|), 1 vs 2 threads bitwise, and (causal, with a window or
 * without) each query computed alone as a decode step bitwise equal to
 * its prefill row, and the last two thirds of the queries as a second
 * chunk. */
static void check_attention(const struct idf2_ops *ops, size_t n, int H, int G, int hd,
                            size_t window, bool masked)
{
    const struct idf2_ops *ref = idf2_backend_get(IDF2_BACKEND_REF);
    const size_t qw = (size_t)H * (size_t)hd;
    float *q, *k, *v, *o = malloc(n * qw * 4), *o2 = malloc(n * qw * 4), *orf = malloc(n * qw * 4);
    struct idf2_attn a = attn_random(n, H, G, hd, &q, &k, &v);
    uint8_t *mask = malloc(n);
    for (size_t j = 0; j < n; j++)
        mask[j] = j % 5 != 3;
    a.causal = !masked;
    a.window = window;
    a.key_mask = masked ? mask : NULL;
    size_t ws = ops->attention_ws(n, n, G, hd, 2), wr = ref->attention_ws(n, n, G, hd, 2);
    ws = ws > wr ? ws : wr;
    struct idf2_exec e2 = exec_new(ops, 2, ws), e1 = exec_new(ops, 1, ws),
                     er = exec_new(ref, 2, ws);
    ref->attention(orf, &a, &er);
    ops->attention(o, &a, &e2);
    size_t bad = 0;
    for (size_t i = 0; i < n * qw; i++)
        if (!(fabs((double)o[i] - orf[i]) <= ops->tol_attn * 3.0 + 1e-6) && bad++ == 0)
            fprintf(stderr, "%s attention n=%zu hd=%d: out[%zu] = %.9g, ref %.9g\n", ops->name, n,
                    hd, i, o[i], orf[i]);
    CHECK_INT(bad, 0);
    ops->attention(o2, &a, &e1);
    CHECK(memcmp(o, o2, n * qw * 4) == 0);
    if (!masked)
        for (size_t i = 0; i < n; i += 3) {
            struct idf2_attn d = a;
            d.q = q + i * qw;
            d.n_q = 1;
            d.n_kv = i + 1;
            d.q_pos0 = i;
            ops->attention(o2, &d, &e2);
            CHECK(memcmp(o2, o + i * qw, qw * 4) == 0);
        }
    /* The queries from n/3 on as one chunk after a cache of n/3 keys (a
     * prefill in two calls), and from n/3 + 1 on (the chunk's blocks of
     * queries then start elsewhere against the whole call's): the same
     * rows, bit for bit. */
    for (size_t i0 = n / 3; !masked && i0 <= n / 3 + 1; i0++) {
        struct idf2_attn d = a;
        d.q = q + i0 * qw;
        d.n_q = n - i0;
        d.q_pos0 = i0;
        ops->attention(o2, &d, &e1);
        CHECK(memcmp(o2, o + i0 * qw, (n - i0) * qw * 4) == 0);
    }
    free(e1.ws);
    free(e2.ws);
    free(er.ws);
    free(q);
    free(k);
    free(v);
    free(o);
    free(o2);
    free(orf);
    free(mask);
}

TEST(attention_every_row)
{
    const struct idf2_ops *ops;
    for (size_t r = 0; (ops = idf2_backend_at(r)); r++) {
        check_attention(ops, 37, 4, 2, 20, 0, false);
        check_attention(ops, 70, 4, 2, 43, 0, false);
        check_attention(ops, 37, 4, 2, 20, 35, false);
        check_attention(ops, 45, 4, 4, 72, 0, true);
        check_attention(ops, 5, 2, 1, 128, 0, false);
        /* Several tiles of queries and spans of keys (the avx2 row's are
         * 24 and 128): a window that leaves whole spans behind, GQA, and
         * SigLIP's head dimension. */
        check_attention(ops, 150, 4, 2, 72, 0, false);
        check_attention(ops, 300, 2, 1, 72, 70, false);
        check_attention(ops, 150, 4, 2, 12, 0, true);
    }
}

/* Norms, activations, RoPE, embedding rows and add of every row against
 * the reference, on 70 rows (enough work to be split over threads), and
 * 1 thread against 2 bit for bit. */
TEST(elementwise_ops_every_row)
{
    const struct idf2_ops *ref = idf2_backend_get(IDF2_BACKEND_REF), *ops;
    const size_t n = 70, d = 4304 / 4 + 3; /* not a multiple of 8 or 32 */
    float *x = malloc(n * d * 4), *w = malloc(d * 4), *b = malloc(d * 4), *u = malloc(n * d * 4);
    float *y = malloc(n * d * 4), *yr = malloc(n * d * 4), *y1 = malloc(n * d * 4);
    for (size_t i = 0; i < n * d; i++) {
        x[i] = frand(4.0f);
        u[i] = frand(1.0f);
    }
    for (size_t i = 0; i < d; i++) {
        w[i] = frand(1.0f);
        b[i] = frand(1.0f);
    }
    const int hd = 16, heads = 3, n_pos = 9;
    float cos_t[9 * 16], sin_t[9 * 16];
    int32_t pos[70];
    for (int i = 0; i < n_pos * hd; i++) {
        cos_t[i] = cosf((float)i * 0.37f);
        sin_t[i] = sinf((float)i * 0.37f);
    }
    for (size_t i = 0; i < n; i++)
        pos[i] = (int32_t)(i * 7 % (size_t)n_pos);
    for (size_t r = 0; (ops = idf2_backend_at(r)); r++) {
        const double tol = ops->tol_other + 1e-7;
        const struct idf2_exec er = { ref, 2, NULL, 0 }, e2 = { ops, 2, NULL, 0 },
                               e1 = { ops, 1, NULL, 0 };
        /* `call` writes OUT through row OPS on exec EX; run on the
         * reference, on the row with 2 threads and with 1. */
#define SAME(count, call)                                                                          \
    do {                                                                                           \
        float *OUT = yr;                                                                           \
        const struct idf2_ops *OPS = ref;                                                          \
        const struct idf2_exec *EX = &er;                                                          \
        call;                                                                                      \
        OUT = y, OPS = ops, EX = &e2;                                                              \
        call;                                                                                      \
        OUT = y1, EX = &e1;                                                                        \
        call;                                                                                      \
        size_t bad_ = 0;                                                                           \
        for (size_t i_ = 0; i_ < (count); i_++)                                                    \
            bad_ += !(fabs((double)y[i_] - yr[i_]) <= tol * (1 + fabs((double)yr[i_])));           \
        if (bad_)                                                                                  \
            fprintf(stderr, "%s: %s: %zu values off\n", ops->name, #call, bad_);                   \
        CHECK_INT(bad_, 0);                                                                        \
        CHECK(memcmp(y, y1, (count) * sizeof(float)) == 0);                                        \
    } while (0)
        SAME(n * d, OPS->layernorm(OUT, x, n, d, w, b, 1e-6f, EX));
        SAME(n * d, OPS->rmsnorm(OUT, x, n, d, w, 1e-5f, EX));
        for (int act = IDF2_ACT_SILU; act <= IDF2_ACT_GELU; act++) {
            SAME(n * d, (memcpy(OUT, x, n * d * 4), OPS->act(OUT, n * d, (enum idf2_act)act, EX)));
            SAME(n * d,
                 (memcpy(OUT, x, n * d * 4), OPS->act_mul(OUT, u, n * d, (enum idf2_act)act, EX)));
        }
        SAME(n * d, (memcpy(OUT, x, n * d * 4), OPS->add(OUT, u, n * d, EX)));
        SAME(n * d,
             (memcpy(OUT, x, n * d * 4), OPS->rope(OUT, n, d, heads, hd, cos_t, sin_t, pos, EX)));
        for (int f = 0; f < IDF2_WF_COUNT; f++) {
            float *deq;
            void *table = make_weight((enum idf2_wfmt)f, 7, d, &deq);
            const struct idf2_w t = {
                .fmt = (enum idf2_wfmt)f, .data = table, .rows = 7, .cols = (int64_t)d
            };
            const int32_t ids[3] = { 6, 0, 6 };
            SAME(3 * d, OPS->embed_rows(OUT, &t, ids, 3, EX));
            CHECK(memcmp(yr, deq + 6 * d, d * 4) == 0);
            free(table);
            free(deq);
        }
#undef SAME
    }
    free(x);
    free(w);
    free(b);
    free(u);
    free(y);
    free(yr);
    free(y1);
}

/* Bit t set: act_mul was called from thread t of the team (spy_act_mul,
 * which runs spied's act_mul). */
static unsigned spy_threads;
static const struct idf2_ops *spied;

static void spy_act_mul(float *g, const float *u, size_t n, enum idf2_act act,
                        const struct idf2_exec *ex)
{
    __atomic_fetch_or(&spy_threads, 1u << omp_get_thread_num(), __ATOMIC_RELAXED);
    spied->act_mul(g, u, n, act, ex);
}

/* idf2_swiglu of every row with gate and up stacked (one [2I, K] matmul)
 * equals the two matmuls' path bit for bit at 1 and 2 threads, and over
 * 16 rows of I values, each under IDF2_PAR_MIN_ELEMS and together over
 * it, both threads compute products (one row at a time on the calling
 * thread before: a prefill's SiLU ran on one core). */
TEST(swiglu_stacked_rows_over_the_team)
{
    if (omp_get_thread_limit() < 2) {
        vc_test_skip("OpenMP allows one thread");
        return;
    }
    const size_t n = 16, K = 24, I = IDF2_PAR_MIN_ELEMS / 16 + 4;
    float *x = malloc(n * K * 4), *wg = malloc(2 * I * K * 4), *wd = malloc(K * I * 4);
    float *g = malloc(n * 2 * I * 4), *u = malloc(n * I * 4), *y0 = malloc(n * K * 4),
          *y1 = malloc(n * K * 4);
    for (size_t i = 0; i < n * K; i++)
        x[i] = frand(1.0f);
    for (size_t i = 0; i < 2 * I * K; i++)
        wg[i] = frand(0.5f);
    for (size_t i = 0; i < K * I; i++)
        wd[i] = frand(0.1f);
    const struct idf2_w
        gate = { .fmt = IDF2_WF_F32, .data = wg, .rows = (int64_t)I, .cols = (int64_t)K },
        up = { .fmt = IDF2_WF_F32, .data = wg + I * K, .rows = (int64_t)I, .cols = (int64_t)K },
        gate_up = { .fmt = IDF2_WF_F32, .data = wg, .rows = 2 * (int64_t)I, .cols = (int64_t)K },
        down = { .fmt = IDF2_WF_F32, .data = wd, .rows = (int64_t)K, .cols = (int64_t)I };
    const struct idf2_ops *ops;
    for (size_t r = 0; (ops = idf2_backend_at(r)); r++) {
        size_t ws = 0;
        idf2_ws_need_mm(&ws, ops, n, &gate_up, 2);
        idf2_ws_need_mm(&ws, ops, n, &down, 2);
        struct idf2_ops spy = *ops;
        spy.act_mul = spy_act_mul;
        spied = ops;
        struct idf2_exec e2 = exec_new(&spy, 2, ws), e1 = exec_new(ops, 1, ws);
        idf2_swiglu(&e2, y0, x, n, &gate, &up, NULL, &down, IDF2_ACT_SILU, g, u);
        spy_threads = 0;
        idf2_swiglu(&e2, y1, x, n, &gate, &up, &gate_up, &down, IDF2_ACT_SILU, g, NULL);
        if (spy_threads != 3)
            fprintf(stderr, "%s: act_mul called from threads %#x\n", ops->name, spy_threads);
        CHECK_INT(spy_threads, 3);
        CHECK(memcmp(y0, y1, n * K * 4) == 0);
        idf2_swiglu(&e1, y1, x, n, &gate, &up, &gate_up, &down, IDF2_ACT_SILU, g, NULL);
        CHECK(memcmp(y0, y1, n * K * 4) == 0);
        free(e1.ws);
        free(e2.ws);
    }
    free(x);
    free(wg);
    free(wd);
    free(g);
    free(u);
    free(y0);
    free(y1);
}
/* Every row's attention on a case small enough to work out by hand: one
 * query over three keys, GQA head mapping h / (H/K), a causal limit, a
 * window and a masked key. */
TEST(reference_attention_by_hand)
{
    const struct idf2_ops *ops;
    for (size_t r = 0; (ops = idf2_backend_at(r)); r++) {
        /* 2 query heads of dim 2 sharing 1 kv head; 3 keys. */
        const float q[4] = { 1, 0, 0, 1 };
        const float k[6] = { 0, 0, 1, 0, 0, 1 };
        const float v[6] = { 1, 2, 3, 4, 5, 6 };
        float out[4];
        struct idf2_attn a = {
            .q = q,
            .q_stride = 4,
            .k = k,
            .v = v,
            .kv_head_stride = 0,
            .kv_row_stride = 2,
            .n_q = 1,
            .n_kv = 3,
            .n_heads = 2,
            .n_kv_heads = 1,
            .head_dim = 2,
            .scale = 1.0f,
        };
        struct idf2_exec ex = exec_new(ops, 2, ops->attention_ws(1, 3, 1, 2, 2));
        /* A row with bf16 dot products: within its tolerance of max |v|. */
        const double tl = ops->tol_attn > ops->tol_other ? ops->tol_attn * 6 : 1e-6;
        ops->attention(out, &a, &ex);
        /* head 0 scores (0, 1, 0): weights e/(e+2), 1/(e+2) */
        const double e = exp(1.0), w1 = e / (e + 2), w0 = 1 / (e + 2);
        CHECK_NEAR(out[0], w0 * 1 + w1 * 3 + w0 * 5, tl);
        CHECK_NEAR(out[1], w0 * 2 + w1 * 4 + w0 * 6, tl);
        /* head 1 scores (0, 0, 1) */
        CHECK_NEAR(out[2], w0 * 1 + w0 * 3 + w1 * 5, tl);
        const uint8_t mask[3] = { 1, 0, 1 };
        a.key_mask = mask;
        ops->attention(out, &a, &ex);
        CHECK_NEAR(out[0], 0.5 * 1 + 0.5 * 5, tl);
        a.key_mask = NULL;
        a.causal = true;
        a.q_pos0 = 1; /* sees keys 0 and 1 */
        ops->attention(out, &a, &ex);
        CHECK_NEAR(out[0], (1 * 1 + e * 3) / (1 + e), tl);
        a.window = 1; /* only key 1 */
        ops->attention(out, &a, &ex);
        CHECK_NEAR(out[2], 3, tl);
        free(ex.ws);
    }
}

/* The reference matmul against a double-precision naive product computed
 * here, and the reference attention against softmax(q k^T * scale) v in
 * double (causal, window, GQA 4:2). */
TEST(reference_against_naive_double)
{
    const struct idf2_ops *ref = idf2_backend_get(IDF2_BACKEND_REF);
    const size_t n = 9, K = 301, O = 11;
    float *x = malloc(n * K * 4), *w = malloc(O * K * 4), *y = malloc(n * O * 4);
    for (size_t i = 0; i < n * K; i++)
        x[i] = frand(1.0f);
    for (size_t i = 0; i < O * K; i++)
        w[i] = frand(1.0f);
    const struct idf2_w W = {
        .fmt = IDF2_WF_F32, .data = w, .rows = (int64_t)O, .cols = (int64_t)K
    };
    struct idf2_exec ex = exec_new(ref, 2, ref->matmul_ws(n, &W, 2));
    ref->matmul[IDF2_WF_F32](y, x, n, &W, NULL, &ex);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < O; j++) {
            double want = 0;
            for (size_t k = 0; k < K; k++)
                want += (double)x[i * K + k] * w[j * K + k];
            CHECK_NEAR(y[i * O + j], want, 1e-6 * (1 + fabs(want)));
        }
    free(ex.ws);

    const int H = 4, G = 2, hd = 43;
    const size_t nq = 37, W_ = 35, qw = (size_t)H * hd, kw = (size_t)G * hd;
    float *q, *k, *v, *o = malloc(nq * qw * 4);
    struct idf2_attn a = attn_random(nq, H, G, hd, &q, &k, &v);
    a.causal = true;
    a.window = W_;
    ex = exec_new(ref, 2, ref->attention_ws(nq, nq, G, hd, 2));
    ref->attention(o, &a, &ex);
    for (size_t i = 0; i < nq; i++)
        for (int h = 0; h < H; h++) {
            const size_t g = (size_t)(h / (H / G)), lo = i + 1 > W_ ? i + 1 - W_ : 0;
            double sc[40], mx = -INFINITY, sum = 0;
            for (size_t j = lo; j <= i; j++) {
                double d = 0;
                for (int e = 0; e < hd; e++)
                    d += (double)q[i * qw + (size_t)h * hd + (size_t)e] *
                         k[j * kw + g * hd + (size_t)e];
                sc[j] = d * 0.3f;
                mx = fmax(mx, sc[j]);
            }
            for (size_t j = lo; j <= i; j++)
                sum += exp(sc[j] - mx);
            for (int e = 0; e < hd; e++) {
                double want = 0;
                for (size_t j = lo; j <= i; j++)
                    want += exp(sc[j] - mx) / sum * v[j * kw + g * hd + (size_t)e];
                CHECK_NEAR(o[i * qw + (size_t)h * hd + (size_t)e], want, 2e-6);
            }
        }
    free(ex.ws);
    free(x);
    free(w);
    free(y);
    free(q);
    free(k);
    free(v);
    free(o);
}

/* The block formats, worked out by hand: a Q8_0 block of 0, 0.5, .., 15.5
 * has d = 15.5/127 and q[k] = round(k * 127/31); a Q4_0 block whose
 * largest magnitude is -7.5 has d = 7.5/8 and stores that value exactly as
 * nibble 0; rows of K = 40 are two blocks, the second zero-filled; the
 * half-precision scale rounds to nearest even. */
TEST(block_formats_by_hand)
{
    CHECK_INT(idf2_wfmt_row_bytes(IDF2_WF_Q8_0, 4304), 135 * 34);
    CHECK_INT(idf2_wfmt_row_bytes(IDF2_WF_Q4_0, 4304), 135 * 18);
    CHECK_INT(idf2_wfmt_row_bytes(IDF2_WF_BF16, 4304), 8608);
    CHECK_INT(idf2_wfmt_row_bytes(IDF2_WF_Q8_0, SIZE_MAX - 5), 0);
    CHECK_INT(sizeof(struct idf2_block_q8_0), 34);
    CHECK_INT(sizeof(struct idf2_block_q4_0), 18);
    CHECK_INT(st_f32_to_f16(1.0f), 0x3c00);
    CHECK_INT(st_f32_to_f16(-2.0f), 0xc000);
    CHECK_INT(st_f32_to_f16(65504.0f), 0x7bff);
    CHECK_INT(st_f32_to_f16(1e6f), 0x7c00);
    CHECK_INT(st_f32_to_f16(5.9604645e-08f), 0x0001);     /* smallest subnormal */
    CHECK_INT(st_f32_to_f16(1.0f + 1.0f / 2048), 0x3c00); /* tie: to even */
    CHECK_INT(st_f32_to_f16(1.0f + 3.0f / 2048), 0x3c02);

    float src[40], back[40];
    for (int i = 0; i < 40; i++)
        src[i] = i < 32 ? 0.5f * (float)i : 1.0f;
    struct idf2_block_q8_0 q8[2];
    idf2_quantize_row(IDF2_WF_Q8_0, src, 40, q8);
    const float d8 = st_f16_to_f32(st_f32_to_f16(15.5f / 127));
    CHECK(st_f16_to_f32(q8[0].d) == d8);
    CHECK_INT(q8[0].q[31], 127);
    CHECK_INT(q8[0].q[0], 0);
    CHECK_INT(q8[0].q[10], (int)lrintf(5.0f / (15.5f / 127)));
    CHECK_INT(q8[1].q[7], 127);
    CHECK_INT(q8[1].q[8], 0); /* past the row's end */
    idf2_dequantize_row(IDF2_WF_Q8_0, q8, 40, back);
    for (int i = 0; i < 40; i++)
        CHECK_NEAR(back[i], src[i], d8 * 0.51 + 1e-3);

    float s4[32];
    for (int i = 0; i < 32; i++)
        s4[i] = i == 9 ? -7.5f : 0.25f * (float)(i % 7);
    struct idf2_block_q4_0 q4;
    idf2_quantize_row(IDF2_WF_Q4_0, s4, 32, &q4);
    CHECK(st_f16_to_f32(q4.d) == 7.5f / 8);
    CHECK_INT(q4.qs[9] & 15, 0);
    idf2_dequantize_row(IDF2_WF_Q4_0, &q4, 32, back);
    CHECK(back[9] == -7.5f);
    CHECK(back[0] == 0.0f);
    /* 0.25 * 6 = 1.5 at i = 6: 1.5 / 0.9375 = 1.6 -> 2 -> 1.875 */
    CHECK(back[6] == 1.875f);
    /* element 16 + j sits in the high nibble of byte j */
    CHECK_INT(q4.qs[0] >> 4, (int)lrintf(s4[16] / (7.5f / 8)) + 8);
}

/* The x16 layout (synth/idf2_backend.h) at byte offsets worked out by hand:
 * 18 rows of K = 40 (2 blocks, 68 bytes a Q8_0 row, 36 a Q4_0 one) are a
 * group of 16 rows and one of 2 (lanes), at 16 * 68 = 1088 (Q8_0).  Row 5,
 * block 1, chunk 7 (codes 28-31): 1 * 16 * 32 + 7 * 64 + 4 * 5 = 980, its
 * scale 2 * 16 * 32 + (1 * 16 + 5) * 2 = 1066; row 17 (group 1, lane 1),
 * block 1, chunk 3: 1088 + 1 * 2 * 32 + 3 * 8 + 4 = 1180, scale 1088 +
 * 2 * 2 * 32 + (1 * 2 + 1) * 2 = 1222.  Q8_0 codes are stored + 128. */
TEST(x16_layout_by_hand)
{
    enum { R = 18, K = 40 };
    unsigned char rows[R][68], q4rows[R][36], m8[R * 68], m4[R * 36];
    for (int r = 0; r < R; r++) {
        for (int i = 0; i < 68; i++)
            rows[r][i] = (unsigned char)(r * 7 + i);
        for (int i = 0; i < 36; i++)
            q4rows[r][i] = (unsigned char)(r * 5 + i * 3);
    }
    CHECK_INT(idf2_wfmt_row_bytes(IDF2_WF_Q8_0X16, K), 68);
    CHECK_INT(idf2_wfmt_row_bytes(IDF2_WF_Q4_0X16, K), 36);
    CHECK_INT(idf2_wfmt_base(IDF2_WF_Q4_0X16), IDF2_WF_Q4_0);
    memset(m8, 0xee, sizeof m8);
    memset(m4, 0xee, sizeof m4);
    for (int r = 0; r < R; r++) {
        idf2_w_store_row(IDF2_WF_Q8_0X16, m8, R, K, (size_t)r, rows[r]);
        idf2_w_store_row(IDF2_WF_Q4_0X16, m4, R, K, (size_t)r, q4rows[r]);
    }
    /* Row 5, block 1 (bytes 34-35 scale, 36.. codes), codes 28-31. */
    for (int i = 0; i < 4; i++)
        CHECK_INT(m8[980 + i], rows[5][36 + 28 + i] ^ 0x80);
    CHECK_INT(m8[1066] | m8[1067] << 8, rows[5][34] | rows[5][35] << 8);
    /* Row 17, block 1, codes 12-15. */
    for (int i = 0; i < 4; i++)
        CHECK_INT(m8[1180 + i], rows[17][36 + 12 + i] ^ 0x80);
    CHECK_INT(m8[1222] | m8[1223] << 8, rows[17][34] | rows[17][35] << 8);
    /* Q4_0: 16 bytes of nibbles a block.  Row 17 (group at 16 * 36 = 576),
     * block 1 (bytes 20-35), chunk 2 (nibble bytes 8-11): 576 + 1 * 2 * 16
     * + 2 * 8 + 4 = 628; its scale at 576 + 2 * 2 * 16 + 3 * 2 = 646. */
    for (int i = 0; i < 4; i++)
        CHECK_INT(m4[628 + i], q4rows[17][20 + 8 + i]);
    CHECK_INT(m4[646] | m4[647] << 8, q4rows[17][18] | q4rows[17][19] << 8);
    /* Every row reads back as the base format reads it (rows overlapping
     * in the layout would not). */
    for (int r = 0; r < R; r++) {
        float a[K], b[K];
        idf2_w_dequantize_row(IDF2_WF_Q8_0X16, m8, R, K, (size_t)r, a);
        idf2_dequantize_row(IDF2_WF_Q8_0, rows[r], K, b);
        CHECK(memcmp(a, b, sizeof a) == 0);
        idf2_w_dequantize_row(IDF2_WF_Q4_0X16, m4, R, K, (size_t)r, a);
        idf2_dequantize_row(IDF2_WF_Q4_0, q4rows[r], K, b);
        CHECK(memcmp(a, b, sizeof a) == 0);
    }
}

/* Selection: "ref" is always there and first, AUTO is a row this CPU
 * runs, names resolve, every resolved row is complete. */
TEST(selection_and_inheritance)
{
    const struct idf2_ops *ref = idf2_backend_get(IDF2_BACKEND_REF), *ops, *last = NULL;
    CHECK(ref && strcmp(ref->name, "ref") == 0);
    CHECK(idf2_backend_at(0) == ref);
    CHECK(idf2_backend_get(IDF2_BACKEND_AUTO) != NULL);
    CHECK(idf2_backend_by_name("ref") == ref);
    CHECK(idf2_backend_by_name("no-such-row") == NULL);
    for (size_t r = 0; (ops = idf2_backend_at(r)); r++) {
        for (int f = 0; f < IDF2_WF_COUNT; f++)
            CHECK(ops->matmul[f] != NULL && ops->tol[f] >= 0);
        CHECK(ops->buf_alloc && ops->buf_free && ops->matmul_ws && ops->attention &&
              ops->attention_ws && ops->layernorm && ops->rmsnorm && ops->act && ops->act_mul &&
              ops->add && ops->rope && ops->embed_rows);
        CHECK(idf2_backend_by_name(ops->name) == ops);
        last = ops;
    }
    /* AUTO: the last exact row; FAST ("fast"): the last row of all. */
    const struct idf2_ops *au = idf2_backend_get(IDF2_BACKEND_AUTO);
    CHECK(!au->approx && !ref->approx);
    for (size_t r = 0; (ops = idf2_backend_at(r)); r++)
        if (ops == au)
            for (size_t q = r + 1; (ops = idf2_backend_at(q)); q++)
                CHECK(ops->approx);
    CHECK(idf2_backend_get(IDF2_BACKEND_FAST) == last);
    CHECK(idf2_backend_by_name("fast") == last);
    /* A row inherits from the row it builds on, not from whichever row
     * precedes it here: where both avx2 and avx512 run, avx512's float32
     * matmul is vec's (its tolerance, no workspace beyond vec's), not
     * avx2's FMA tiles, which pack per call into a workspace the avx512
     * row's query does not count (ASan saw the overflow). */
    const struct idf2_ops *vec = idf2_backend_by_name("vec"),
                          *a512 = idf2_backend_by_name("avx512"),
                          *bf = idf2_backend_by_name("avx512bf16");
    if (a512) {
        CHECK(a512->matmul[IDF2_WF_F32] == vec->matmul[IDF2_WF_F32]);
        CHECK(a512->tol[IDF2_WF_F32] == vec->tol[IDF2_WF_F32]);
        CHECK(bf && bf->matmul[IDF2_WF_Q8_0] == a512->matmul[IDF2_WF_Q8_0] &&
              bf->matmul[IDF2_WF_F32] == a512->matmul[IDF2_WF_F32]);
    }
}

/* THPeligible of the smaps entry holding p: 1 once the range is advised for
 * huge pages under THP "madvise", what the kernel reports, not our own
 * bookkeeping; -1 where smaps has no such field or THP is off ("never"). */
static int thp_eligible(const void *p)
{
    char mode[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f) {
        if (!fgets(mode, sizeof mode, f))
            mode[0] = 0;
        fclose(f);
    }
    if (!mode[0] || strstr(mode, "[never]") || !(f = fopen("/proc/self/smaps", "r")))
        return -1;
    char line[256];
    int in = 0, v = -1;
    const uintptr_t a = (uintptr_t)p;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
            in = a >= lo && a < hi;
        else if (in && sscanf(line, "THPeligible: %d", &v) == 1)
            break;
    }
    fclose(f);
    return v;
}

/* Every CPU row's buffers of 2 MiB and more sit on a 2 MiB boundary in a
 * range advised for huge pages (the context's arena); small ones do not
 * need it. */
TEST(large_buffers_advised_for_huge_pages)
{
    const struct idf2_ops *ops;
    for (size_t r = 0; (ops = idf2_backend_at(r)); r++) {
        const size_t n = (size_t)6 << 20;
        char *big = ops->buf_alloc(n + 100);
        CHECK(big != NULL);
        if (!big)
            continue;
        memset(big, 1, n + 100);
        CHECK((uintptr_t)big % ((size_t)2 << 20) == 0);
        const int e = thp_eligible(big + n);
        CHECK(e == 1 || e == -1);
        ops->buf_free(big);
        char *small = ops->buf_alloc(1000);
        CHECK(small != NULL && (uintptr_t)small % 64 == 0);
        ops->buf_free(small);
    }
}

/* idf2_take_tail hands out every item once, never across a span
 * boundary, in takes of at most `chunk` that shrink toward `unit` as the
 * work runs out (worked out by hand for n 100, span 50, chunk 15, unit 3,
 * 2 threads: a quarter of what is left per thread, rounded down to units);
 * and two threads taking at once still take every item once. */
TEST(take_tail_by_hand)
{
    static const size_t want[][2] = { { 0, 12 },  { 12, 21 }, { 21, 30 }, { 30, 36 }, { 36, 42 },
                                      { 42, 48 }, { 48, 50 }, { 50, 56 }, { 56, 59 }, { 59, 62 },
                                      { 62, 65 }, { 65, 68 }, { 68, 71 }, { 71, 74 }, { 74, 77 },
                                      { 77, 80 }, { 80, 83 }, { 83, 86 }, { 86, 89 }, { 89, 92 },
                                      { 92, 95 }, { 95, 98 }, { 98, 100 } };
    const size_t n_want = sizeof want / sizeof want[0];
    size_t next = 0, a, b, k = 0;
    while (idf2_take_tail(&next, 100, 50, 15, 3, 2, &a, &b)) {
        CHECK(k < n_want);
        if (k < n_want) {
            CHECK_INT((long)a, (long)want[k][0]);
            CHECK_INT((long)b, (long)want[k][1]);
        }
        k++;
    }
    CHECK_INT((long)k, (long)n_want);
    enum { N = 100000 };
    static unsigned char seen[N];
    memset(seen, 0, sizeof seen);
    next = 0;
    int crossed = 0;
#pragma omp parallel num_threads(2) reduction(+ : crossed)
    for (size_t u0, u1; idf2_take_tail(&next, N, 4096, 600, 3, 2, &u0, &u1);) {
        crossed += u0 / 4096 != (u1 - 1) / 4096 || u1 - u0 > 600;
        for (size_t u = u0; u < u1; u++)
            seen[u]++;
    }
    CHECK_INT(crossed, 0);
    size_t once = 0;
    for (size_t u = 0; u < N; u++)
        once += seen[u] == 1;
    CHECK_INT((long)once, (long)N);
}

#define TESTS(X)                                                                                   \
    X(matmul_every_row_every_format)                                                               \
    X(matmul_x16_same_bits_every_row)                                                              \
    X(matmul_epilogue_every_row)                                                                   \
    X(attention_every_row)                                                                         \
    X(elementwise_ops_every_row)                                                                   \
    X(swiglu_stacked_rows_over_the_team)                                                           \
    X(reference_attention_by_hand)                                                                 \
    X(reference_against_naive_double)                                                              \
    X(block_formats_by_hand)                                                                       \
    X(x16_layout_by_hand)                                                                          \
    X(selection_and_inheritance)                                                                   \
    X(large_buffers_advised_for_huge_pages)                                                        \
    X(take_tail_by_hand)
TEST_MAIN(TESTS)
