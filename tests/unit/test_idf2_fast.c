/* Unit tests of the AVX-512 kernels (synth/idf2_cpu_avx512) against scalar
 * double references written here: bf16, Q8_0 and Q4_0 matmul on odd shapes
 * (K = 4304 and other tails, an odd number of blocks, row counts not a
 * multiple of the tile), bit-identity of every output across batch sizes
 * and thread counts (the caption stage's contract), and tiled attention
 * with a key mask against a direct double softmax.  On a CPU without
 * AVX-512 BF16/VNNI the cases pass vacuously (the backend never selects
 * these kernels there). */
#include "vc_test.h"

#include <float.h>
#include <stdbool.h>
#include <stdlib.h>

#include "synth/idf2_cpu_avx512.h"
#include "synth/safetensors.h"

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

/* ggml-layout rows (synth/idf2_backend.h defines the formats; until the
 * backend table lands this test packs them itself): Q8_0 d = amax/127,
 * Q4_0 d = (largest magnitude, signed)/-8, codes rounded to nearest. */
static uint16_t f16_of(float f)
{
    /* Exact for the test's scales: round through double to half by hand. */
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a < 0x38800000u) {
        float af;
        memcpy(&af, &a, 4);
        return (uint16_t)(sign | (uint32_t)rintf(af * 16777216.0f));
    }
    uint32_t r = a - 0x38000000u;
    r += 0xfffu + ((r >> 13) & 1u);
    return (uint16_t)(sign | (r >> 13));
}

static size_t row_bytes(enum idf2_mm_fmt f, size_t K)
{
    const size_t nb = (K + 31) / 32;
    return f == IDF2_MM_BF16 ? K * 2 : nb * (f == IDF2_MM_Q8_0 ? 34 : 18);
}

static void pack_row(enum idf2_mm_fmt f, const float *src, size_t K, unsigned char *dst)
{
    if (f == IDF2_MM_BF16) {
        for (size_t k = 0; k < K; k++) {
            uint16_t h = st_f32_to_bf16(src[k]);
            memcpy(dst + 2 * k, &h, 2);
        }
        return;
    }
    const size_t bb = f == IDF2_MM_Q8_0 ? 34 : 18;
    for (size_t b = 0; b < (K + 31) / 32; b++) {
        float v[32], amax = 0, mx = 0;
        for (size_t e = 0; e < 32; e++) {
            v[e] = b * 32 + e < K ? src[b * 32 + e] : 0.0f;
            if (fabsf(v[e]) > amax) {
                amax = fabsf(v[e]);
                mx = v[e];
            }
        }
        const float d = f == IDF2_MM_Q8_0 ? amax / 127.0f : mx / -8.0f;
        const uint16_t dh = f16_of(d);
        const float df = st_f16_to_f32(dh), id = df != 0 ? 1.0f / df : 0.0f;
        unsigned char *o = dst + b * bb;
        memcpy(o, &dh, 2);
        for (size_t e = 0; e < 32; e++) {
            long q = lrintf(v[e] * id);
            if (f == IDF2_MM_Q8_0) {
                q = q < -127 ? -127 : q > 127 ? 127 : q;
                o[2 + e] = (unsigned char)(int8_t)q;
            } else {
                q = q + 8 < 0 ? 0 : q + 8 > 15 ? 15 : q + 8;
                if (e < 16)
                    o[2 + e] = (unsigned char)q;
                else
                    o[2 + e - 16] |= (unsigned char)(q << 4);
            }
        }
    }
}

static float unpack_at(enum idf2_mm_fmt f, const unsigned char *row, size_t k)
{
    if (f == IDF2_MM_BF16) {
        uint16_t h;
        memcpy(&h, row + 2 * k, 2);
        return st_bf16_to_f32(h);
    }
    const size_t bb = f == IDF2_MM_Q8_0 ? 34 : 18, b = k / 32, e = k % 32;
    uint16_t dh;
    memcpy(&dh, row + b * bb, 2);
    const float d = st_f16_to_f32(dh);
    if (f == IDF2_MM_Q8_0)
        return d * (float)(int8_t)row[b * bb + 2 + e];
    const int nib = e < 16 ? row[b * bb + 2 + e] & 15 : row[b * bb + 2 + e - 16] >> 4;
    return d * (float)(nib - 8);
}

/* x as the kernel sees it: bf16 hi + lo terms, or int8 blocks of 32 with
 * d = amax/127 (computed here independently). */
static double x_seen(enum idf2_mm_fmt f, const float *xr, size_t K, size_t k)
{
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
    return f == IDF2_MM_BF16 ? "bf16" : f == IDF2_MM_Q8_0 ? "q8_0" : "q4_0";
}

static void check_matmul_shape(enum idf2_mm_fmt f, size_t M, size_t K, size_t N, uint32_t seed)
{
    float *wf = rand_vec(N * K, 0.05f, seed), *x = rand_vec(M * K, 1.0f, seed + 1);
    float *bias = rand_vec(N, 0.1f, seed + 2);
    const size_t rb = row_bytes(f, K);
    unsigned char *w = malloc(N * rb);
    for (size_t n = 0; n < N; n++)
        pack_row(f, wf + n * K, K, w + n * rb);
    float *y = malloc(M * N * sizeof *y), *y1 = malloc(N * sizeof *y1);
    void *ws = scratch_for(idf2_avx512_mm_ws(M, K, f, 2));
    idf2_avx512_mm(y, x, M, K, w, N, K, f, bias, ws, 2);
    /* float32 accumulation of K terms: a few ulps of the sum of magnitudes. */
    double worst = 0;
    for (size_t r = 0; r < M; r++)
        for (size_t n = 0; n < N; n++) {
            double ref = bias[n], mag = 0;
            for (size_t k = 0; k < K; k++) {
                double t = x_seen(f, x + r * K, K, k) * unpack_at(f, w + n * rb, k);
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
    free(w);
    free(bias);
    free(x);
    free(wf);
}

TEST(matmul_bf16)
{
    if (!idf2_avx512_usable())
        return;
    check_matmul_shape(IDF2_MM_BF16, 1, 64, 16, 10);
    check_matmul_shape(IDF2_MM_BF16, 7, 4304, 37, 11);
    check_matmul_shape(IDF2_MM_BF16, 13, 300, 70, 12);
    check_matmul_shape(IDF2_MM_BF16, 3, 33, 5, 13);
}

TEST(matmul_q8_0)
{
    if (!idf2_avx512_usable())
        return;
    check_matmul_shape(IDF2_MM_Q8_0, 1, 64, 4, 20);
    check_matmul_shape(IDF2_MM_Q8_0, 9, 4304, 37, 21);
    check_matmul_shape(IDF2_MM_Q8_0, 5, 100, 7, 22);
    check_matmul_shape(IDF2_MM_Q8_0, 2, 32, 3, 23);
}

TEST(matmul_q4_0)
{
    if (!idf2_avx512_usable())
        return;
    check_matmul_shape(IDF2_MM_Q4_0, 1, 64, 4, 30);
    check_matmul_shape(IDF2_MM_Q4_0, 9, 4304, 37, 31);
    check_matmul_shape(IDF2_MM_Q4_0, 6, 130, 11, 32);
    check_matmul_shape(IDF2_MM_Q4_0, 2, 32, 3, 33);
}

/* Batch sizes 1..14 and 1 or 2 threads give the same bits for row 0. */
TEST(matmul_batch_invariant)
{
    if (!idf2_avx512_usable())
        return;
    const size_t K = 1152, N = 100, M = 14;
    float *wf = rand_vec(N * K, 0.05f, 40), *x = rand_vec(M * K, 1.0f, 41);
    for (int fi = IDF2_MM_BF16; fi <= IDF2_MM_Q4_0; fi++) {
        const enum idf2_mm_fmt f = (enum idf2_mm_fmt)fi;
        const size_t rb = row_bytes(f, K);
        unsigned char *w = malloc(N * rb);
        for (size_t n = 0; n < N; n++)
            pack_row(f, wf + n * K, K, w + n * rb);
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
        free(w);
    }
    free(x);
    free(wf);
}

/* Tiled attention against a direct double softmax over all keys: one
 * self-attention shape (vision: 150 patches over five key blocks, a key
 * mask) and one cross-attention shape with grouped K/V heads (perceiver:
 * 20 queries, 2 kv heads for 4 query heads). */
static void check_attention(size_t n_q, size_t n_kv, int H, int KV, int hd, bool masked,
                            uint32_t seed)
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
    void *s = scratch_for(idf2_avx512_attn_ws(n_kv, KV, hd, 2));
    idf2_avx512_attention(out, q, D, n_q, k, v, (size_t)hd, row, n_kv, H, KV, hd, scale,
                          masked ? mask : NULL, s, 2);
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
    if (worst > 2e-5)
        fprintf(stderr, "  attention n_q=%zu n_kv=%zu worst %g\n", n_q, n_kv, worst);
    CHECK(worst <= 2e-5);
    free(p);
    free(s);
    free(out);
    free(mask);
    free(kv);
    free(q);
}

TEST(attention_tiled)
{
    if (!idf2_avx512_usable())
        return;
    check_attention(150, 150, 3, 3, 72, false, 50);
    check_attention(150, 150, 3, 3, 72, true, 51);
    check_attention(20, 150, 4, 2, 12, true, 52);
    check_attention(9, 33, 2, 1, 128, false, 53);
}

#define TESTS(X)                                                                                   \
    X(matmul_bf16)                                                                                 \
    X(matmul_q8_0)                                                                                 \
    X(matmul_q4_0)                                                                                 \
    X(matmul_batch_invariant)                                                                      \
    X(attention_tiled)
TEST_MAIN(TESTS)
