/* Unit tests of the AVX-512 kernels (synth/idf2_cpu_avx512) against scalar
 * double references written here: bf16, Q8_0 and Q4_0 matmul on odd shapes
 * (K = 4304 and other tails, an odd number of blocks, row counts not a
 * multiple of the tile), bit-identity of every output across batch sizes
 * and thread counts (the caption stage's contract), and tiled attention
 * with a key mask against a direct double softmax.  On a CPU without
 * AVX-512 BF16/VNNI the cases report themselves skipped (the backend never
 * selects these kernels there). */
#include "vc_test.h"

#include <float.h>
#include <stdbool.h>
#include <stdlib.h>

#include "synth/idf2_backend.h"
#include "synth/idf2_cpu_avx512.h"
#include "synth/idf2_cpu_ops512.h"
#include "synth/safetensors.h"

#define NO_AVX512 "this CPU lacks AVX-512 BF16/VNNI"

static uint32_t rng_state;

static float frand(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((double)(rng_state >> 8) / 16777216.0 * 2.0 - 1.0);
}

static float *rand_vec(size_t n, float scale, uint32_t seed)
{
    rng_state = seed;
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = frand() * scale;
    return v;
}

static void *scratch_for(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0)
        return NULL;
    return p;
}

/* The weight formats as synth/idf2_backend.h defines and packs them. */
static enum idf2_wfmt wfmt_of(enum idf2_mm_fmt f)
{
    static const enum idf2_wfmt w[] = { IDF2_WF_BF16, IDF2_WF_Q8_0,    IDF2_WF_Q4_0,
                                        IDF2_WF_BF16, IDF2_WF_Q8_0X16, IDF2_WF_Q4_0X16 };
    return w[f];
}

/* N rows of K random weights packed in format f; *deq: their values. */
static unsigned char *pack_rows(enum idf2_mm_fmt f, const float *src, size_t N, size_t K,
                                float **deq)
{
    const size_t rb = idf2_wfmt_row_bytes(wfmt_of(f), K);
    unsigned char *w = malloc(N * rb);
    *deq = malloc(N * K * sizeof(float));
    for (size_t n = 0; n < N; n++) {
        idf2_w_quantize_row(wfmt_of(f), w, N, K, n, src + n * K);
        idf2_w_dequantize_row(wfmt_of(f), w, N, K, n, *deq + n * K);
    }
    return w;
}

/* x as the kernel sees it: bf16 hi + lo terms, one bf16 (bf16x1), or int8
 * blocks of 32 with d = amax/127 (computed here independently). */
static double x_seen(enum idf2_mm_fmt f, const float *xr, size_t K, size_t k)
{
    if (f == IDF2_MM_BF16X1)
        return st_bf16_to_f32(st_f32_to_bf16(xr[k]));
    if (f == IDF2_MM_BF16) {
        const float hi = st_bf16_to_f32(st_f32_to_bf16(xr[k]));
        return (double)hi + st_bf16_to_f32(st_f32_to_bf16(xr[k] - hi));
    }
    float amax = 0;
    for (size_t e = k / 32 * 32; e < k / 32 * 32 + 32 && e < K; e++)
        amax = fabsf(xr[e]) > amax ? fabsf(xr[e]) : amax;
    const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    long q = lrintf(xr[k] * id);
    return (double)d * (double)(q < -127 ? -127 : q > 127 ? 127 : q);
}

static const char *fmt_name(enum idf2_mm_fmt f)
{
    static const char *const names[] = { "bf16", "q8_0", "q4_0", "bf16x1", "q8_0x16", "q4_0x16" };
    return names[f];
}

static void check_matmul_shape(enum idf2_mm_fmt f, size_t M, size_t K, size_t N, uint32_t seed)
{
    float *wf = rand_vec(N * K, 0.05f, seed), *x = rand_vec(M * K, 1.0f, seed + 1);
    float *bias = rand_vec(N, 0.1f, seed + 2);
    float *deq;
    unsigned char *w = pack_rows(f, wf, N, K, &deq);
    float *y = malloc(M * N * sizeof *y), *y1 = malloc(N * sizeof *y1);
    void *ws = scratch_for(idf2_avx512_mm_ws(M, K, f, 2));
    idf2_avx512_mm(y, x, M, K, w, N, K, f, bias, ws, 2);
    /* float32 accumulation of K terms: a few ulps of the sum of magnitudes. */
    double worst = 0;
    for (size_t r = 0; r < M; r++)
        for (size_t n = 0; n < N; n++) {
            double ref = bias[n], mag = 0;
            for (size_t k = 0; k < K; k++) {
                double t = x_seen(f, x + r * K, K, k) * deq[n * K + k];
                ref += t;
                mag += fabs(t);
            }
            double e = fabs(y[r * N + n] - ref) / (mag + 1e-30);
            worst = e > worst ? e : worst;
        }
    if (worst > 1e-5)
        fprintf(stderr, "  %s M=%zu K=%zu N=%zu worst relative %g\n", fmt_name(f), M, K, N, worst);
    CHECK(worst <= 1e-5);
    /* Batch invariance: each row alone, one thread, equals its row in the batch. */
    for (size_t r = 0; r < M; r++) {
        idf2_avx512_mm(y1, x + r * K, 1, K, w, N, K, f, bias, ws, 1);
        if (memcmp(y1, y + r * N, N * sizeof *y1) != 0) {
            fprintf(stderr, "  %s M=%zu row %zu differs alone\n", fmt_name(f), M, r);
            vc_test_failures++;
        }
    }
    free(ws);
    free(y1);
    free(y);
    free(deq);
    free(w);
    free(bias);
    free(x);
    free(wf);
}

/* Shapes: M activation rows, K inputs (tails of 1, 16 and 33 inputs, an
 * odd number of blocks, K = 4304), N weight rows (not multiples of 4).
 * { 2, 4304, 37 } (two threads) and { 1, 2080, 50 }: the streaming (1-2
 * row) tiles on full and partial 16-row groups and a lone last block. */
static const size_t shapes[][3] = {
    { 1, 64, 16 }, { 7, 4304, 37 }, { 13, 300, 70 }, { 3, 33, 5 },
    { 2, 32, 3 },  { 9, 100, 7 },   { 2, 4304, 37 }, { 1, 2080, 50 }
};

static void check_format(enum idf2_mm_fmt f)
{
    if (!idf2_avx512_usable()) {
        vc_test_skip(NO_AVX512);
        return;
    }
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        check_matmul_shape(f, shapes[i][0], shapes[i][1], shapes[i][2],
                           10 * (uint32_t)f + (uint32_t)i);
}

TEST(matmul_bf16)
{
    check_format(IDF2_MM_BF16);
}

TEST(matmul_bf16x1)
{
    check_format(IDF2_MM_BF16X1);
}

TEST(matmul_q8_0)
{
    check_format(IDF2_MM_Q8_0);
}

TEST(matmul_q4_0)
{
    check_format(IDF2_MM_Q4_0);
}

TEST(matmul_q8_0x16)
{
    check_format(IDF2_MM_Q8_0X16);
}

TEST(matmul_q4_0x16)
{
    check_format(IDF2_MM_Q4_0X16);
}

/* The x16 formats hold the same blocks as Q8_0 / Q4_0 and must give the
 * same bits as their kernels at every row count (1-2 row streaming tiles,
 * 3-16 rows with the next span fetched, more in several row tiles), on
 * full and partial 16-row groups, K tails and an odd block count. */
TEST(matmul_x16_same_bits)
{
    if (!idf2_avx512_usable()) {
        vc_test_skip(NO_AVX512);
        return;
    }
    static const size_t kn[][2] = { { 4304, 37 }, { 4096, 1000 }, { 40, 13 }, { 96, 16 } };
    static const size_t ms[] = { 1, 2, 3, 5, 10, 11, 16, 17, 33, 130 };
    for (int q4 = 0; q4 < 2; q4++)
        for (size_t s = 0; s < sizeof kn / sizeof kn[0]; s++) {
            const size_t K = kn[s][0], N = kn[s][1], M = 130;
            const enum idf2_mm_fmt f = q4 ? IDF2_MM_Q4_0 : IDF2_MM_Q8_0,
                                   fx = q4 ? IDF2_MM_Q4_0X16 : IDF2_MM_Q8_0X16;
            float *wf = rand_vec(N * K, 0.05f, 60 + (uint32_t)s), *x = rand_vec(M * K, 1.0f, 61);
            float *bias = rand_vec(N, 0.1f, 62), *d0, *d1;
            unsigned char *w0 = pack_rows(f, wf, N, K, &d0), *w1 = pack_rows(fx, wf, N, K, &d1);
            CHECK(memcmp(d0, d1, N * K * sizeof(float)) == 0);
            const size_t a = idf2_avx512_mm_ws(M, K, f, 2), b = idf2_avx512_mm_ws(M, K, fx, 2);
            void *ws = scratch_for(a > b ? a : b);
            float *y0 = malloc(M * N * sizeof(float)), *y1 = malloc(M * N * sizeof(float));
            for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
                idf2_avx512_mm(y0, x, ms[i], K, w0, N, K, f, bias, ws, 2);
                idf2_avx512_mm(y1, x, ms[i], K, w1, N, K, fx, bias, ws, 2);
                if (memcmp(y0, y1, ms[i] * N * sizeof(float)) != 0) {
                    fprintf(stderr, "  %s M=%zu K=%zu N=%zu: x16 bits differ\n", fmt_name(f), ms[i],
                            K, N);
                    vc_test_failures++;
                }
            }
            free(y1);
            free(y0);
            free(ws);
            free(d1);
            free(d0);
            free(w1);
            free(w0);
            free(bias);
            free(x);
            free(wf);
        }
}

/* Batch sizes 1..14 and 1 or 2 threads give the same bits for row 0. */
TEST(matmul_batch_invariant)
{
    if (!idf2_avx512_usable()) {
        vc_test_skip(NO_AVX512);
        return;
    }
    const size_t K = 1152, N = 100, M = 14;
    float *wf = rand_vec(N * K, 0.05f, 40), *x = rand_vec(M * K, 1.0f, 41);
    for (int fi = IDF2_MM_BF16; fi <= IDF2_MM_Q4_0X16; fi++) {
        const enum idf2_mm_fmt f = (enum idf2_mm_fmt)fi;
        float *deq;
        unsigned char *w = pack_rows(f, wf, N, K, &deq);
        void *ws = scratch_for(idf2_avx512_mm_ws(M, K, f, 2));
        float *y0 = malloc(M * N * sizeof(float)), *y = malloc(M * N * sizeof(float));
        idf2_avx512_mm(y0, x, 1, K, w, N, K, f, NULL, ws, 1);
        for (size_t b = 1; b <= M; b++)
            for (int nt = 1; nt <= 2; nt++) {
                idf2_avx512_mm(y, x, b, K, w, N, K, f, NULL, ws, nt);
                CHECK(memcmp(y, y0, N * sizeof(float)) == 0);
            }
        free(y);
        free(y0);
        free(ws);
        free(deq);
        free(w);
    }
    free(x);
    free(wf);
}

/* One of the two tiled attentions (float32, or bf16 dot products). */
static void attention_on(bool bf16, float *out, const float *q, size_t D, size_t n_q,
                         const float *k, const float *v, size_t hd, size_t row, size_t n_kv, int H,
                         int KV, float scale, const uint8_t *mask, void *s, int nt)
{
    if (bf16)
        idf2_avx512_attention_bf16(out, q, D, n_q, k, v, hd, row, n_kv, H, KV, (int)hd, scale, mask,
                                   s, nt);
    else
        idf2_avx512_attention(out, q, D, n_q, k, v, hd, row, n_kv, H, KV, (int)hd, scale, mask, s,
                              nt);
}

/* Tiled attention against a direct double softmax over all keys: one
 * self-attention shape (vision: 150 patches over five key blocks, a key
 * mask) and one cross-attention shape with grouped K/V heads (perceiver:
 * 20 queries, 2 kv heads for 4 query heads); within tol of the largest
 * |v| (1); bit for bit the same at 1 and 2 threads and for a query row
 * computed alone. */
static void check_attention(bool bf16, double tol, size_t n_q, size_t n_kv, int H, int KV, int hd,
                            bool masked, uint32_t seed)
{
    const size_t D = (size_t)H * hd, Dkv = (size_t)KV * hd;
    float *q = rand_vec(n_q * D, 1.0f, seed), *kv = rand_vec(n_kv * 2 * Dkv, 1.0f, seed + 1);
    const float *k = kv, *v = kv + Dkv; /* rows of [k | v], heads of hd */
    const size_t row = 2 * Dkv;
    uint8_t *mask = malloc(n_kv);
    for (size_t j = 0; j < n_kv; j++)
        mask[j] = !masked || (j % 7 != 3 && j + 10 < n_kv);
    float *out = malloc(n_q * D * sizeof *out);
    const float scale = 1.0f / sqrtf((float)hd);
    void *s = scratch_for(bf16 ? idf2_avx512_attn_bf16_ws(n_kv, KV, hd, 2)
                               : idf2_avx512_attn_ws(n_kv, KV, hd, 2));
    attention_on(bf16, out, q, D, n_q, k, v, (size_t)hd, row, n_kv, H, KV, scale,
                 masked ? mask : NULL, s, 2);
    float *o1 = malloc(n_q * D * sizeof *o1);
    attention_on(bf16, o1, q, D, n_q, k, v, (size_t)hd, row, n_kv, H, KV, scale,
                 masked ? mask : NULL, s, 1);
    CHECK(memcmp(out, o1, n_q * D * sizeof *o1) == 0);
    for (size_t i = 0; i < n_q; i += 7) {
        attention_on(bf16, o1, q + i * D, D, 1, k, v, (size_t)hd, row, n_kv, H, KV, scale,
                     masked ? mask : NULL, s, 2);
        CHECK(memcmp(o1, out + i * D, D * sizeof *o1) == 0);
    }
    free(o1);
    double worst = 0;
    double *p = malloc(n_kv * sizeof *p);
    for (int h = 0; h < H; h++) {
        const size_t g = (size_t)(h / (H / KV));
        for (size_t i = 0; i < n_q; i++) {
            const float *qi = q + i * D + (size_t)h * hd;
            double mx = -DBL_MAX, sum = 0;
            for (size_t j = 0; j < n_kv; j++) {
                const float *kj = k + j * row + g * (size_t)hd;
                double d = 0;
                for (int t = 0; t < hd; t++)
                    d += (double)qi[t] * kj[t];
                p[j] = mask[j] ? d * scale : -DBL_MAX;
                mx = p[j] > mx ? p[j] : mx;
            }
            for (size_t j = 0; j < n_kv; j++) {
                p[j] = p[j] == -DBL_MAX ? 0 : exp(p[j] - mx);
                sum += p[j];
            }
            for (int t = 0; t < hd; t++) {
                double o = 0;
                for (size_t j = 0; j < n_kv; j++)
                    o += p[j] * v[j * row + g * (size_t)hd + (size_t)t];
                double e = fabs(o / sum - out[i * D + (size_t)h * hd + (size_t)t]);
                worst = e > worst ? e : worst;
            }
        }
    }
    printf("  attention %s n_q=%zu n_kv=%zu hd=%d: worst %.3g (tolerance %.3g)\n",
           bf16 ? "bf16" : "f32", n_q, n_kv, hd, worst, tol);
    CHECK(worst <= tol);
    free(p);
    free(s);
    free(out);
    free(mask);
    free(kv);
    free(q);
}

TEST(attention_tiled)
{
    if (!idf2_avx512_usable()) {
        vc_test_skip(NO_AVX512);
        return;
    }
    check_attention(false, 2e-5, 150, 150, 3, 3, 72, false, 50);
    check_attention(false, 2e-5, 150, 150, 3, 3, 72, true, 51);
    check_attention(false, 2e-5, 20, 150, 4, 2, 12, true, 52);
    check_attention(false, 2e-5, 9, 33, 2, 1, 128, false, 53);
}

/* The bf16 attention on the same shapes and on odd head sizes (a pair and
 * a 16-dimension chunk cut short): rounding q, k, v and the
 * probabilities to bf16 costs ~2^-9 relative on each term. */
TEST(attention_tiled_bf16)
{
    if (!idf2_avx512_usable()) {
        vc_test_skip(NO_AVX512);
        return;
    }
    check_attention(true, 3e-3, 150, 150, 3, 3, 72, false, 50);
    check_attention(true, 3e-3, 150, 150, 3, 3, 72, true, 51);
    check_attention(true, 3e-3, 20, 150, 4, 2, 12, true, 52);
    check_attention(true, 3e-3, 9, 33, 2, 1, 128, false, 53);
    check_attention(true, 3e-3, 70, 200, 2, 2, 21, true, 54);
    check_attention(true, 3e-3, 5, 64, 4, 4, 96, false, 55);
    /* Keys over two softmax spans (1,024 keys each). */
    check_attention(true, 3e-3, 9, 1100, 2, 2, 72, true, 56);
}

#define TESTS(X)                                                                                   \
    X(matmul_bf16)                                                                                 \
    X(matmul_bf16x1)                                                                               \
    X(matmul_q8_0)                                                                                 \
    X(matmul_q4_0)                                                                                 \
    X(matmul_q8_0x16)                                                                              \
    X(matmul_q4_0x16)                                                                              \
    X(matmul_x16_same_bits)                                                                        \
    X(matmul_batch_invariant)                                                                      \
    X(attention_tiled)                                                                             \
    X(attention_tiled_bf16)
TEST_MAIN(TESTS)
