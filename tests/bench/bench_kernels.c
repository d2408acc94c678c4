/* Kernel benchmark: idf2_matmul and idf2_attention at the shapes of
 * idefics2-8b (vision 378 px = 729 patches, prompt prefill, one decode
 * step, SigLIP attention at 729 and 4900 patches), for f32 and bf16
 * weights.  Prints GFLOP/s and, for the weight-streaming decode shapes,
 * GB/s: compare with the machine's peak fp32 rate and DRAM read bandwidth
 * (shared/research/engine-anchors.md).  Random data; results unused.
 *
 * usage: bench_kernels [--threads N] [--reps N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "synth/idf2_kernels.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fill(float *x, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((int)(seed >> 9) % 2001 - 1000) * 1e-3f;
    }
}

static void bench_matmul(const char *label, size_t n, size_t K, size_t O, enum st_dtype dt, int nt,
                         int reps)
{
    float *x = malloc(n * K * 4), *y = malloc(n * O * 4), *wf = malloc(O * K * 4);
    void *w = dt == ST_BF16 ? malloc(O * K * 2) : wf;
    fill(x, n * K, 1);
    fill(wf, O * K, 2);
    if (dt == ST_BF16)
        for (size_t i = 0; i < O * K; i++)
            ((uint16_t *)w)[i] = st_f32_to_bf16(wf[i]);
    const struct idf2_w W = { dt, w, (int64_t)O, (int64_t)K };
    idf2_matmul(y, x, n, &W, NULL, nt);
    double t0 = now();
    for (int r = 0; r < reps; r++)
        idf2_matmul(y, x, n, &W, NULL, nt);
    double dt_s = (now() - t0) / reps;
    double flop = 2.0 * (double)n * (double)K * (double)O;
    double bytes = (double)O * (double)K * (dt == ST_BF16 ? 2 : 4);
    printf("matmul %-26s %-4s %5zu x %5zu -> %5zu  %8.2f ms  %7.1f GFLOP/s  %6.1f GB/s weights\n",
           label, dt == ST_BF16 ? "bf16" : "f32", n, K, O, dt_s * 1e3, flop / dt_s * 1e-9,
           bytes / dt_s * 1e-9);
    if (w != wf)
        free(w);
    free(wf);
    free(x);
    free(y);
}

static void bench_attention(size_t P, int H, int hd, int nt, int reps)
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
    double t0 = now();
    for (int r = 0; r < reps; r++)
        idf2_attention(o, &a, nt);
    double dt_s = (now() - t0) / reps;
    double flop = 4.0 * (double)P * (double)P * (double)D;
    printf("attention %5zu tokens %2d heads x %3d              %8.2f ms  %7.1f GFLOP/s\n", P, H, hd,
           dt_s * 1e3, flop / dt_s * 1e-9);
    free(q);
    free(k);
    free(v);
    free(o);
}

int main(int argc, char **argv)
{
    int nt = 0, reps = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads"))
            nt = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
    }
    for (int d = 0; d < 2; d++) {
        const enum st_dtype dt = d ? ST_BF16 : ST_F32;
        bench_matmul("vision fc1 (378 px)", 729, 1152, 4304, dt, nt, reps);
        bench_matmul("text gate (prefill 128)", 128, 4096, 14336, dt, nt, reps);
        bench_matmul("text gate (decode)", 1, 4096, 14336, dt, nt, reps * 4);
        bench_matmul("text down (decode)", 1, 14336, 4096, dt, nt, reps * 4);
    }
    bench_attention(729, 16, 72, nt, reps);
    bench_attention(4900, 16, 72, nt, 1);
    return 0;
}
