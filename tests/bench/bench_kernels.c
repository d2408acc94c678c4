/* Kernel benchmark: one backend row's matmul and attention
 * (synth/idf2_backend.h) at the shapes of idefics2-8b (vision 378 px = 729
 * patches, prompt prefill, one decode step, batch-16 decode, SigLIP
 * attention at 729 and 4900 patches), for each weight format asked, weights packed as the engine
 * packs them at load when the row has a packed layout, and SwiGLU's SiLU(gate) x up over the
 * stacked gate|up product at prefill 128 and batch 16 (its matmuls stubbed).  Prints GFLOP/s and
 * GB/s of weights, and the share of this machine's limits measured first in the same process: the
 * fp32 FMA peak for the GEMM shapes (3 rows and more), the read probe for the weight-streaming
 * decode shapes (1-2 rows).  Random data; results unused.
 *
 *   peak:  12 independent chains of 8-lane FMAs in registers per thread (no memory), GFLOP/s;
 *   probe: read bandwidth of a 1 GiB array, one contiguous half per thread, plain 32-byte loads
 *          into 4 accumulators, best of 3, GB/s.
 *
 * usage: bench_kernels [peak | probe] [--threads N] [--reps N] [--backend NAME (fastest)]
 *                      [--formats f32,bf16,q8_0,q4_0 (f32,bf16)] [--attention 0|1 (1)]
 *                      [--decode 0|1 (0)]
 *   --decode 1: only the one-row (weight-streaming) shapes, then the probe again: the quick
 *   read of a decode kernel against the probe on both sides of it.
 *   peak / probe alone print those limits at 1 .. N threads and exit. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <immintrin.h>
#include <omp.h>

#include "bench_clock.h"
#include "synth/idf2_backend.h"

static void fill(float *x, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((int)(seed >> 9) % 2001 - 1000) * 1e-3f;
    }
}

/* Per thread: 12 FMA chains (Zen 1's 5-cycle latency at two 128-bit FMAs
 * a cycle needs 10 in flight) over `iters` steps; the sum keeps them live. */
__attribute__((target("avx2,fma"))) static float peak_chains(long iters)
{
    __m256 a[12];
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int j = 0; j < 12; j++)
        a[j] = _mm256_set1_ps((float)j * 1e-3f);
    for (long i = 0; i < iters; i++)
        for (int j = 0; j < 12; j++)
            a[j] = _mm256_fmadd_ps(a[j], m, c);
    float s = 0, t[8];
    for (int j = 0; j < 12; j++) {
        _mm256_storeu_ps(t, a[j]);
        s += t[0];
    }
    return s;
}

/* The fp32 FMA peak of nt threads, GFLOP/s (0 without AVX2/FMA). */
static double peak_gflops(int nt)
{
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
        return 0;
    const long iters = 20000000;
    volatile float sink = 0;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        const double t0 = bench_wall_s();
#pragma omp parallel num_threads(nt)
        {
            const float s = peak_chains(iters);
#pragma omp atomic
            sink += s;
        }
        const double g = 2.0 * 12 * 8 * (double)iters * nt / (bench_wall_s() - t0) * 1e-9;
        best = g > best ? g : best;
    }
    return best;
}

__attribute__((target("avx2"))) static float probe_sum(const float *a, size_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0; i + 32 <= n; i += 32) {
        s0 = _mm256_add_ps(s0, _mm256_loadu_ps(a + i));
        s1 = _mm256_add_ps(s1, _mm256_loadu_ps(a + i + 8));
        s2 = _mm256_add_ps(s2, _mm256_loadu_ps(a + i + 16));
        s3 = _mm256_add_ps(s3, _mm256_loadu_ps(a + i + 24));
    }
    float t[8];
    _mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    return t[0];
}

/* Read bandwidth of nt threads over a 1 GiB array, GB/s (0 without AVX2
 * or memory). */
static double probe_gbs(int nt)
{
    const size_t n = (size_t)1 << 28; /* floats: 1 GiB */
    float *a = __builtin_cpu_supports("avx2") ? aligned_alloc(64, n * 4) : NULL;
    if (!a)
        return 0;
#pragma omp parallel num_threads(nt)
    {
        const size_t t = (size_t)omp_get_thread_num(), T = (size_t)omp_get_num_threads();
        memset(a + n * t / T, 0, (n * (t + 1) / T - n * t / T) * 4);
    }
    volatile float sink = 0;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        const double t0 = bench_wall_s();
#pragma omp parallel num_threads(nt)
        {
            const size_t t = (size_t)omp_get_thread_num(), T = (size_t)omp_get_num_threads();
            const float s = probe_sum(a + n * t / T, n * (t + 1) / T - n * t / T);
#pragma omp atomic
            sink += s;
        }
        const double g = (double)n * 4 / (bench_wall_s() - t0) * 1e-9;
        best = g > best ? g : best;
    }
    free(a);
    return best;
}

/* The limits a matmul line compares with (0: not measured). */
static double g_peak_gflops, g_probe_gbs;

static void bench_matmul(const struct idf2_ops *ops, const char *label, size_t n, size_t K,
                         size_t O, enum idf2_wfmt f, int nt, int reps)
{
    const size_t rb = idf2_wfmt_row_bytes(f, K);
    float *x = malloc(n * K * 4), *y = malloc(n * O * 4), *row = malloc(K * 4);
    char *w = malloc(O * rb);
    fill(x, n * K, 1);
    for (size_t j = 0; j < O; j++) {
        fill(row, K, 2 + (unsigned)j);
        idf2_w_quantize_row(f, w, O, K, j, row);
    }
    struct idf2_w W = { .fmt = f, .data = w, .rows = (int64_t)O, .cols = (int64_t)K };
    const size_t pb = ops->pack_bytes ? ops->pack_bytes(&W) : 0;
    void *pk = pb ? aligned_alloc(64, idf2_align64(pb)) : NULL;
    if (pk) {
        ops->pack(pk, &W, nt);
        W.packed = pk;
        W.packed_by = ops->pack;
    }
    const size_t ws = ops->matmul_ws(n, &W, nt);
    struct idf2_exec ex = { ops, nt, aligned_alloc(64, (ws + 64) / 64 * 64), ws };
    ops->matmul[f](y, x, n, &W, NULL, &ex);
    double t0 = bench_wall_s();
    for (int r = 0; r < reps; r++)
        ops->matmul[f](y, x, n, &W, NULL, &ex);
    double dt_s = (bench_wall_s() - t0) / reps;
    const double flop = 2.0 * (double)n * (double)K * (double)O, gflops = flop / dt_s * 1e-9,
                 gbs = (double)(O * rb) / dt_s * 1e-9;
    const double share = n <= 2 ? (g_probe_gbs > 0 ? gbs / g_probe_gbs : 0)
                                : (g_peak_gflops > 0 ? gflops / g_peak_gflops : 0);
    printf("matmul %-26s %-4s %5zu x %5zu -> %5zu  %8.2f ms  %7.1f GFLOP/s  %6.1f GB/s weights"
           "  %5.1f %% of %s%s\n",
           label, idf2_wfmt_name(f), n, K, O, dt_s * 1e3, gflops, gbs, share * 100,
           n <= 2 ? "probe" : "peak", pk ? "  (packed)" : "");
    free(pk);
    free(ex.ws);
    free(w);
    free(row);
    free(x);
    free(y);
}

static void bench_attention(const struct idf2_ops *ops, size_t P, int H, int hd, int nt, int reps)
{
    const size_t D = (size_t)H * (size_t)hd;
    float *q = malloc(P * D * 4), *k = malloc(P * D * 4), *v = malloc(P * D * 4),
          *o = malloc(P * D * 4);
    fill(q, P * D, 3);
    fill(k, P * D, 4);
    fill(v, P * D, 5);
    const struct idf2_attn a = {
        .q = q,
        .q_stride = D,
        .k = k,
        .v = v,
        .kv_head_stride = (size_t)hd,
        .kv_row_stride = D,
        .n_q = P,
        .n_kv = P,
        .n_heads = H,
        .n_kv_heads = H,
        .head_dim = hd,
        .scale = 0.1f,
    };
    const size_t ws = ops->attention_ws(P, P, H, hd, nt);
    struct idf2_exec ex = { ops, nt, aligned_alloc(64, (ws + 64) / 64 * 64), ws };
    double t0 = bench_wall_s();
    for (int r = 0; r < reps; r++)
        ops->attention(o, &a, &ex);
    double dt_s = (bench_wall_s() - t0) / reps;
    double flop = 4.0 * (double)P * (double)P * (double)D;
    printf("attention %5zu tokens %2d heads x %3d              %8.2f ms  %7.1f GFLOP/s\n", P, H, hd,
           dt_s * 1e3, flop / dt_s * 1e-9);
    free(ex.ws);
    free(q);
    free(k);
    free(v);
    free(o);
}

/* A matmul that leaves y as it is (bench_swiglu stubs idf2_swiglu's three). */
static void mm_none(float *y, const float *x, size_t n, const struct idf2_w *w, const float *bias,
                    const struct idf2_exec *ex)
{
    (void)y, (void)x, (void)n, (void)w, (void)bias, (void)ex;
}

/* What idf2_swiglu does between its matmuls with gate and up stacked:
 * SiLU(gate) * up of n rows of the [n, 2I] product into an [n, I] matrix,
 * through ops' act_mul, its matmuls stubbed.  Each repetition starts from
 * the same values (copied in outside the timing). */
static void bench_swiglu(const struct idf2_ops *ops, size_t n, size_t I, int nt, int reps)
{
    struct idf2_ops mid = *ops;
    for (int f = 0; f < IDF2_WF_COUNT; f++)
        mid.matmul[f] = mm_none;
    float *g0 = malloc(n * 2 * I * 4), *g = malloc(n * 2 * I * 4), xy[1] = { 0 };
    fill(g0, n * 2 * I, 6);
    const struct idf2_w gate = { .rows = (int64_t)I, .cols = 1 },
                        gate_up = { .rows = 2 * (int64_t)I, .cols = 1 },
                        down = { .rows = 1, .cols = (int64_t)I };
    const struct idf2_exec ex = { &mid, nt, NULL, 0 };
    double dt_s = 0;
    for (int r = 0; r <= reps; r++) {
        memcpy(g, g0, n * 2 * I * 4);
        const double t0 = bench_wall_s();
        idf2_swiglu(&ex, xy, xy, n, &gate, &gate, &gate_up, &down, IDF2_ACT_SILU, g, NULL);
        dt_s += r ? bench_wall_s() - t0 : 0; /* the first warms up */
    }
    dt_s /= reps;
    printf("swiglu SiLU(gate) x up, stacked %5zu x %5zu       %8.3f ms  %7.2f Gvalues/s\n", n, I,
           dt_s * 1e3, (double)(n * I) / dt_s * 1e-9);
    free(g0);
    free(g);
}

int main(int argc, char **argv)
{
    int nt = omp_get_max_threads(), reps = 3, attention = 1, decode = 0;
    const char *backend = NULL, *formats = "f32,bf16";
    const bool peak = argc > 1 && !strcmp(argv[1], "peak"),
               probe = argc > 1 && !strcmp(argv[1], "probe");
    const int argi = peak || probe ? 2 : 1;
    /* A misspelt option must not pass silently: the figures would be of
     * another configuration than the command line says. */
    if ((argc - argi) % 2) {
        fprintf(stderr, "usage: bench_kernels [peak|probe] [--threads N] [--reps R] "
                        "[--backend NAME] [--formats f32,bf16] [--attention 0|1] [--decode 0|1]\n");
        return 2;
    }
    for (int i = argi; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads"))
            nt = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--backend"))
            backend = argv[i + 1];
        else if (!strcmp(argv[i], "--formats"))
            formats = argv[i + 1];
        else if (!strcmp(argv[i], "--attention"))
            attention = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--decode"))
            decode = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_kernels: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (peak || probe) {
        for (int t = 1; t <= nt; t++)
            if (peak)
                printf("peak  %d threads  %7.1f GFLOP/s fp32 FMA\n", t, peak_gflops(t));
            else
                printf("probe %d threads  %7.1f GB/s read\n", t, probe_gbs(t));
        return 0;
    }
    const struct idf2_ops *ops =
        backend ? idf2_backend_by_name(backend) : idf2_backend_get(IDF2_BACKEND_AUTO);
    if (!ops || nt < 1) {
        fprintf(stderr, "bench_kernels: no backend row '%s' on this CPU (or bad --threads)\n",
                backend ? backend : "");
        return 2;
    }
    g_peak_gflops = peak_gflops(nt);
    g_probe_gbs = probe_gbs(nt);
    printf("backend %s, %d threads; peak %.1f GFLOP/s, probe %.1f GB/s\n", ops->name, nt,
           g_peak_gflops, g_probe_gbs);
    for (int f = 0; f < IDF2_WF_COUNT; f++) {
        const char *name = idf2_wfmt_name((enum idf2_wfmt)f), *hit = strstr(formats, name);
        if (!hit || (hit[strlen(name)] != '\0' && hit[strlen(name)] != ','))
            continue;
        const enum idf2_wfmt wf = (enum idf2_wfmt)f;
        if (!decode) {
            bench_matmul(ops, "vision fc1 (378 px)", 729, 1152, 4304, wf, nt, reps);
            bench_matmul(ops, "text gate (prefill 128)", 128, 4096, 14336, wf, nt, reps);
        }
        bench_matmul(ops, "text gate (decode)", 1, 4096, 14336, wf, nt, reps * 4);
        if (!decode)
            bench_matmul(ops, "text gate (decode x16)", 16, 4096, 14336, wf, nt, reps * 4);
        bench_matmul(ops, "text down (decode)", 1, 14336, 4096, wf, nt, reps * 4);
    }
    if (decode) {
        printf("probe again %.1f GB/s\n", probe_gbs(nt));
        return 0;
    }
    bench_swiglu(ops, 128, 14336, nt, reps * 4);
    bench_swiglu(ops, 16, 14336, nt, reps * 16);
    if (attention) {
        bench_attention(ops, 729, 16, 72, nt, reps);
        bench_attention(ops, 4900, 16, 72, nt, 1);
    }
    return 0;
}
