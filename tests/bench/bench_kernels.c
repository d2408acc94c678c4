/* Kernel benchmark: one backend row's matmul and attention
 * (synth/idf2_backend.h) at the shapes of idefics2-8b (vision 378 px = 729
 * patches, prompt prefill, one decode step, batch-16 decode, SigLIP
 * attention at 729 and 4900 patches), for each weight format asked.  Prints GFLOP/s and, for the
 * weight-streaming decode shapes, GB/s: compare with the machine's peak fp32 rate and DRAM read
 * bandwidth (shared/research/engine-anchors.md).  Random data; results unused.
 *
 * usage: bench_kernels [--threads N] [--reps N] [--backend NAME (fastest)]
 *                      [--formats f32,bf16,q8_0,q4_0 (f32,bf16)] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    const struct idf2_w W = { .fmt = f, .data = w, .rows = (int64_t)O, .cols = (int64_t)K };
    const size_t ws = ops->matmul_ws(n, &W, nt);
    struct idf2_exec ex = { ops, nt, aligned_alloc(64, (ws + 64) / 64 * 64), ws };
    ops->matmul[f](y, x, n, &W, NULL, &ex);
    double t0 = bench_wall_s();
    for (int r = 0; r < reps; r++)
        ops->matmul[f](y, x, n, &W, NULL, &ex);
    double dt_s = (bench_wall_s() - t0) / reps;
    double flop = 2.0 * (double)n * (double)K * (double)O;
    printf("matmul %-26s %-4s %5zu x %5zu -> %5zu  %8.2f ms  %7.1f GFLOP/s  %6.1f GB/s weights\n",
           label, idf2_wfmt_name(f), n, K, O, dt_s * 1e3, flop / dt_s * 1e-9,
           (double)(O * rb) / dt_s * 1e-9);
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

int main(int argc, char **argv)
{
    int nt = omp_get_max_threads(), reps = 3;
    const char *backend = NULL, *formats = "f32,bf16";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads"))
            nt = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--backend"))
            backend = argv[i + 1];
        else if (!strcmp(argv[i], "--formats"))
            formats = argv[i + 1];
    }
    const struct idf2_ops *ops =
        backend ? idf2_backend_by_name(backend) : idf2_backend_get(IDF2_BACKEND_AUTO);
    if (!ops || nt < 1) {
        fprintf(stderr, "bench_kernels: no backend row '%s' on this CPU (or bad --threads)\n",
                backend ? backend : "");
        return 2;
    }
    printf("backend %s, %d threads\n", ops->name, nt);
    for (int f = 0; f < IDF2_WF_COUNT; f++) {
        const char *name = idf2_wfmt_name((enum idf2_wfmt)f), *hit = strstr(formats, name);
        if (!hit || (hit[strlen(name)] != '\0' && hit[strlen(name)] != ','))
            continue;
        const enum idf2_wfmt wf = (enum idf2_wfmt)f;
        bench_matmul(ops, "vision fc1 (378 px)", 729, 1152, 4304, wf, nt, reps);
        bench_matmul(ops, "text gate (prefill 128)", 128, 4096, 14336, wf, nt, reps);
        bench_matmul(ops, "text gate (decode)", 1, 4096, 14336, wf, nt, reps * 4);
        bench_matmul(ops, "text gate (decode x16)", 16, 4096, 14336, wf, nt, reps * 4);
        bench_matmul(ops, "text down (decode)", 1, 14336, 4096, wf, nt, reps * 4);
    }
    bench_attention(ops, 729, 16, 72, nt, reps);
    bench_attention(ops, 4900, 16, 72, nt, 1);
    return 0;
}
