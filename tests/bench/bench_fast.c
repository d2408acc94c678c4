/* Benchmark of the AVX-512 kernels (synth/idf2_cpu_avx512) in the weight
 * formats bf16, q8_0 and q4_0 (ggml blocks), q8_0x16 and q4_0x16 (the same
 * blocks, 16 rows interleaved), and bf16x1 (bf16 weights,
 * activations rounded once to bf16: the avx512bf16 row):
 *
 *   bench_fast shapes [--threads N]
 *       one matmul per format at the Mistral-7B / SigLIP shapes: ms,
 *       GFLOP/s and weight GB/s;
 *   bench_fast model FMT [--threads N] [--decode T] [--prefill P] [--batch B]
 *                        [--probe S] [--layout packed|stored|compare] [--layers L]
 *       the 32-layer Mistral-7B matmul stack (q, k, v, o, gate, up, down
 *       and the 32000-row head; the weights of every layer in their own
 *       memory, advised for transparent huge pages as the engine's copied
 *       text weights, the block formats collapsed into them afterwards as
 *       the engine's quantizing load does) in format FMT (bf16, bf16x1, q8_0, q4_0): decode
 * tokens/s at batch 1 with the weight bytes streamed per token and GB/s, and prefill of P tokens in
 * tokens/s; with B > 1 also T decode steps of B rows (one weight pass for the batch, the head on
 * every row) against the batch-1 step; with --probe S, the read probe below (S seconds) right
 * before and after the batch-1 decode in the same process, and the decode's GB/s as a share of the
 * better one's mean (probe_pct). bf16 weights are held as the engine holds its text weights, packed
 *       for the outer product (--layout packed, the default); stored: as
 *       in the checkpoint (the streaming tiles); compare: every pass stored,
 *       then packed in the same process (the stored copy freed: both do not
 *       fit), the steps' ratios and whether the outputs are the same bits.
 *       --layers L: the first L layers only (quicker runs while tuning);
 *       --calls 1: every call of the batch-1 and batch-B steps timed too,
 *       per kind (q ... head) its mean call in the stack against the same
 *       calls back to back, GFLOP/s and share of the peak, and the step's
 *       time outside any call;
 *       Attention, norms and rotary are not run (at a context under 600
 *       tokens they are under 1 % of the work);
 *   bench_fast gemm FMT M K N [--threads N] [--layout packed]
 *       one matmul of M activation rows by an [N, K] weight matrix in FMT
 *       (the shape a profile looks at: perf record bench_fast gemm ...),
 *       bf16 weights as stored, or with --layout packed as the engine's
 *       --weights copy holds them;
 *       and its share of the bf16 peak measured in the same process;
 *   bench_fast qgemm q8_0|q4_0 M K N [--threads N] [--decode R]
 *       the format in ggml's rows (its kernels) against its x16 twin (16
 *       rows interleaved) over the same values, alternating for R rounds
 *       (8) in one process, the best call of each: ms, speedup, GOP/s,
 *       weight GB/s, both as a share of the vpdpbusd peak measured in the
 *       same process, and whether the outputs are the same bits (exit 1
 *       if not);
 *   bench_fast qmodel q8_0|q4_0 [--threads N] [--decode T] [--batch B] [--layers L]
 *       the model stack (L of its 32 layers, and the head) in the format
 *       in ggml's rows and in its x16 twin, decode steps of each
 *       alternating for T rounds in one process (batch 1, then B rows):
 *       mean step ms, speedup and weight GB/s of each, same bits checked;
 *   bench_fast attn N [--threads N]
 *       SigLIP self-attention over N patches (16 heads of 72), float32 and
 *       with bf16 dot products: CPU ms per thread and their ratio;
 *   bench_fast probe [--threads N] [--seconds S]
 *       read bandwidth of a 1 GiB array (sum of 64-byte loads), GB/s;
 *   bench_fast peak [--threads N]
 *       the vdpbf16ps peak: 24 independent register chains per thread,
 *       no memory operands, GFLOP/s (64 per instruction).
 *
 * tests/bench/sidebyside.sh runs these against llama.cpp's llama-bench. */
#include <omp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <immintrin.h>

#include "bench_clock.h"
#include "synth/idf2_cpu_avx512.h"
#include "synth/idf2_cpu_bf16mm.h"
#include "synth/idf2_cpu_ops512.h"
#include "synth/idf2_place.h"

static void fill(float *x, size_t n, unsigned seed, float scale)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = ((float)(seed >> 8) / 16777216.0f * 2.0f - 1.0f) * scale;
    }
}

static void *xalloc(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0) {
        fprintf(stderr, "bench_fast: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

/* A weight matrix in one of the kernel's layouts, random contents: bf16
 * values of about 0.02, or random codes with a half scale of 2^-10. */
struct mat {
    enum idf2_mm_fmt f;
    size_t N, K, bytes;
    unsigned char *data;
    void *packed; /* bf16 in the outer product's layout (data then NULL), or NULL */
};

static enum idf2_wfmt wfmt_of(enum idf2_mm_fmt f)
{
    switch (f) {
    case IDF2_MM_Q8_0:
        return IDF2_WF_Q8_0;
    case IDF2_MM_Q4_0:
        return IDF2_WF_Q4_0;
    case IDF2_MM_Q8_0X16:
        return IDF2_WF_Q8_0X16;
    case IDF2_MM_Q4_0X16:
        return IDF2_WF_Q4_0X16;
    default:
        return IDF2_WF_BF16;
    }
}

static bool is_bf16(enum idf2_mm_fmt f)
{
    return f == IDF2_MM_BF16 || f == IDF2_MM_BF16X1;
}

static size_t row_bytes(enum idf2_mm_fmt f, size_t K)
{
    return idf2_wfmt_row_bytes(wfmt_of(f), K);
}

/* bf16x1: bf16 weights, activations rounded once (the avx512bf16 row). */
static const char *fmt_name(enum idf2_mm_fmt f)
{
    return f == IDF2_MM_BF16X1 ? "bf16x1" : idf2_wfmt_name(wfmt_of(f));
}

static bool fmt_parse(const char *s, enum idf2_mm_fmt *f)
{
    for (int i = IDF2_MM_BF16; i <= IDF2_MM_Q4_0X16; i++)
        if (strcmp(s, fmt_name((enum idf2_mm_fmt)i)) == 0) {
            *f = (enum idf2_mm_fmt)i;
            return true;
        }
    return false;
}

/* In transparent huge pages, as the engine holds its text weights by
 * default (synth/idf2_place.h): in 4 KiB pages the 3-16 row tiles, which
 * touch 48 rows 8-28 KB apart per K block, lose to TLB walks. */
static void *huge_alloc(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, (size_t)2 << 20, bytes) != 0) {
        fprintf(stderr, "bench_fast: out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    madvise(p, bytes, MADV_HUGEPAGE);
    return p;
}

static void mat_random(struct mat *m, enum idf2_mm_fmt f, size_t N, size_t K, unsigned seed)
{
    m->f = f;
    m->N = N;
    m->K = K;
    const size_t rb = row_bytes(f, K);
    m->bytes = N * rb;
    m->packed = NULL;
    m->data = huge_alloc(m->bytes);
    /* Row by row in the base layout, stored through idf2_w_store_row: a
     * format and its x16 twin from one seed hold the same values. */
    unsigned char *row = xalloc(rb + 4);
    const enum idf2_wfmt base = idf2_wfmt_base(wfmt_of(f));
    uint32_t st = seed;
    for (size_t r = 0; r < N; r++) {
        for (size_t i = 0; i < rb; i += 4) {
            st = st * 1664525u + 1013904223u;
            uint32_t v = st;
            if (is_bf16(f)) /* two bf16 in [-0.03, 0.03]: exponent 2^-6 */
                v = (v & 0x807f807fu) | 0x3c803c80u;
            memcpy(row + i, &v, 4);
        }
        if (!is_bf16(f)) {
            const size_t bb = base == IDF2_WF_Q8_0 ? 34 : 18;
            const uint16_t d = 0x1400; /* 2^-10 */
            for (size_t b = 0; b < rb / bb; b++)
                memcpy(row + b * bb, &d, 2);
        }
        idf2_w_store_row(wfmt_of(f), m->data, N, K, r, row);
    }
    free(row);
}

/* Chains of vdpbf16ps per thread: enough independent accumulators to
 * cover the instruction's latency on two pipes. */
#define PEAK_CHAINS 24

__attribute__((target("avx512f,avx512bf16"))) static float peak_loop(long iters, float seed)
{
    __m512 acc[PEAK_CHAINS];
    for (int i = 0; i < PEAK_CHAINS; i++)
        acc[i] = _mm512_set1_ps(seed * (float)i);
    const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80), b = (__m512bh)_mm512_set1_epi32(0);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 24
        for (int i = 0; i < PEAK_CHAINS; i++)
            acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
    }
    __m512 s = acc[0];
    for (int i = 1; i < PEAK_CHAINS; i++)
        s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}

/* The same with vpdpbusd (int8 x uint8, 128 operations per instruction). */
__attribute__((target("avx512f,avx512vnni"))) static int vnni_peak_loop(long iters, int seed)
{
    __m512i acc[PEAK_CHAINS];
    for (int i = 0; i < PEAK_CHAINS; i++)
        acc[i] = _mm512_set1_epi32(seed * i);
    const __m512i a = _mm512_set1_epi8(1), b = _mm512_set1_epi8(0);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 24
        for (int i = 0; i < PEAK_CHAINS; i++)
            acc[i] = _mm512_dpbusd_epi32(acc[i], a, b);
    }
    __m512i s = acc[0];
    for (int i = 1; i < PEAK_CHAINS; i++)
        s = _mm512_add_epi32(s, acc[i]);
    return _mm512_reduce_add_epi32(s);
}

/* GOP/s of nt threads running vnni_peak_loop, the best of passes over
 * about `seconds` (wall time). */
static double vnni_peak(int nt, double seconds)
{
    const long iters = 1L << 20;
    double best = 0, t_end = bench_wall_s() + seconds;
    int sink = 0;
    do {
        const double t0 = bench_wall_s();
        int s = 0;
#pragma omp parallel num_threads(nt) reduction(+ : s)
        s += vnni_peak_loop(iters, omp_get_thread_num());
        const double dt = bench_wall_s() - t0;
        sink += s;
        const double ops = (double)nt * iters * PEAK_CHAINS * 128.0;
        best = ops / dt * 1e-9 > best ? ops / dt * 1e-9 : best;
    } while (bench_wall_s() < t_end);
    return sink == 12345 ? best + 1e-9 : best;
}

/* The engine's layout of bf16 text weights (idf2_place_copy packs them at
 * load): packed for the outer product, the stored copy freed. */
static void mat_pack(struct mat *m, int nt)
{
    m->packed = huge_alloc(idf2_bf16mm_packed_bytes(m->N, m->K));
    idf2_bf16mm_pack(m->packed, (const uint16_t *)m->data, m->N, m->K, nt);
    free(m->data);
    m->data = NULL;
}

/* y = x W^T as the engine's row runs it for either layout. */
static void mat_mm(float *y, const float *x, size_t M, const struct mat *w, void *ws, int nt)
{
    if (w->packed)
        idf2_bf16mm(y, x, M, w->K, NULL, w->packed, w->N, w->K, w->f == IDF2_MM_BF16, NULL, ws, nt);
    else
        idf2_avx512_mm(y, x, M, w->K, w->data, w->N, w->K, w->f, NULL, ws, nt);
}

/* GFLOP/s of nt threads running peak_loop for about `seconds`, the best
 * of a few passes (a busy machine takes cycles from some), by wall time
 * and (*cpu) by CPU time per thread, as bench_shape reports both. */
static double bf16_peak(int nt, double seconds, double *cpu)
{
    const long iters = 1L << 20;
    double best = 0, best_cpu = 0, t_end = bench_wall_s() + seconds;
    float sink = 0;
    do {
        const double t0 = bench_wall_s(), c0 = bench_cpu_s();
        float s = 0;
#pragma omp parallel num_threads(nt) reduction(+ : s)
        s += peak_loop(iters, (float)omp_get_thread_num());
        const double dt = bench_wall_s() - t0, dc = (bench_cpu_s() - c0) / nt;
        sink += s;
        const double flop = (double)nt * iters * PEAK_CHAINS * 64.0;
        best = flop / dt * 1e-9 > best ? flop / dt * 1e-9 : best;
        best_cpu = flop / dc * 1e-9 > best_cpu ? flop / dc * 1e-9 : best_cpu;
    } while (bench_wall_s() < t_end);
    *cpu = best_cpu;
    return sink == 12345.0f ? best + 1e-9 : best;
}

static void bench_shape(const char *label, enum idf2_mm_fmt f, size_t M, size_t K, size_t N, int nt,
                        bool packed)
{
    struct mat w;
    mat_random(&w, f, N, K, 7);
    if (packed && is_bf16(f))
        mat_pack(&w, nt);
    float *x = xalloc(M * K * sizeof(float)), *y = xalloc(M * N * sizeof(float));
    fill(x, M * K, 3, 1.0f);
    void *s = xalloc(idf2_avx512_mm_ws(M, K, f, nt));
    mat_mm(y, x, M, &w, s, nt);
    int reps = 0;
    double t0 = bench_wall_s(), c0 = bench_cpu_s(), dt;
    do {
        mat_mm(y, x, M, &w, s, nt);
        reps++;
        dt = bench_wall_s() - t0;
    } while (dt < 0.5);
    dt /= reps;
    const double dc = (bench_cpu_s() - c0) / reps / nt;
    const double flop = 2.0 * (double)M * (double)K * (double)N, bytes = (double)w.bytes;
    printf("%-18s %-4s M=%4zu K=%5zu N=%5zu  wall %8.3f ms %6.1f GFLOP/s %5.1f GB/s | cpu/thread "
           "%8.3f ms %6.1f GFLOP/s %5.1f GB/s\n",
           label, fmt_name(f), M, K, N, dt * 1e3, flop / dt * 1e-9, bytes / dt * 1e-9, dc * 1e3,
           flop / dc * 1e-9, bytes / dc * 1e-9);
    if (is_bf16(f)) {
        double peak_cpu;
        const double peak = bf16_peak(nt, 0.3, &peak_cpu);
        printf("%-18s bf16 peak wall %6.1f GFLOP/s, cpu/thread %6.1f: of it wall %.1f %%, "
               "cpu/thread %.1f %%\n",
               label, peak, peak_cpu, 100.0 * flop / dt * 1e-9 / peak,
               100.0 * flop / dc * 1e-9 / peak_cpu);
    }
    free(s);
    free(y);
    free(x);
    free(w.data);
    free(w.packed);
}

/* One call's wall seconds: the best of `reps` runs. */
static double best_call(const struct mat *w, const float *x, float *y, size_t M, void *s, int nt,
                        int reps)
{
    double best = 1e30;
    for (int i = 0; i < reps; i++) {
        const double t0 = bench_wall_s();
        idf2_avx512_mm(y, x, M, w->K, w->data, w->N, w->K, w->f, NULL, s, nt);
        const double dt = bench_wall_s() - t0;
        best = dt < best ? dt : best;
    }
    return best;
}

/* The block format f (q8_0 or q4_0) in ggml's rows against its x16 twin
 * over the same values, alternating in rounds in one process (the best
 * call of each per round, the rounds' medians... the best round kept),
 * their outputs compared bit for bit, and both against the VNNI peak
 * measured in the same process. */
static int cmd_qgemm(enum idf2_mm_fmt f, size_t M, size_t K, size_t N, int nt, int rounds)
{
    const enum idf2_mm_fmt fx = f == IDF2_MM_Q8_0 ? IDF2_MM_Q8_0X16 : IDF2_MM_Q4_0X16;
    struct mat w0, w1;
    mat_random(&w0, f, N, K, 7);
    mat_random(&w1, fx, N, K, 7);
    float *x = xalloc(M * K * sizeof(float)), *y0 = xalloc(M * N * sizeof(float)),
          *y1 = xalloc(M * N * sizeof(float));
    fill(x, M * K, 3, 1.0f);
    const size_t ws0 = idf2_avx512_mm_ws(M, K, f, nt), ws1 = idf2_avx512_mm_ws(M, K, fx, nt);
    void *s = xalloc(ws0 > ws1 ? ws0 : ws1);
    idf2_avx512_mm(y0, x, M, K, w0.data, N, K, f, NULL, s, nt);
    idf2_avx512_mm(y1, x, M, K, w1.data, N, K, fx, NULL, s, nt);
    const bool same = memcmp(y0, y1, M * N * sizeof(float)) == 0;
    /* Enough calls per round for about 0.2 s of the old kernel. */
    const double one = best_call(&w0, x, y0, M, s, nt, 1);
    const int reps = one > 0.2 ? 1 : (int)(0.2 / one) + 1;
    double t0 = 1e30, t1 = 1e30;
    for (int r = 0; r < rounds; r++) {
        const double a = best_call(&w0, x, y0, M, s, nt, reps);
        const double b = best_call(&w1, x, y1, M, s, nt, reps);
        t0 = a < t0 ? a : t0;
        t1 = b < t1 ? b : t1;
    }
    const double peak = vnni_peak(nt, 0.3), ops = 2.0 * (double)M * (double)K * (double)N;
    printf("RESULT qgemm %s M=%zu K=%zu N=%zu threads=%d ms ggml %.3f x16 %.3f speedup %.2f "
           "GOP/s ggml %.0f x16 %.0f GB/s ggml %.1f x16 %.1f vnni_peak GOP/s %.0f pct ggml %.1f "
           "x16 %.1f same_bits %s\n",
           fmt_name(f), M, K, N, nt, t0 * 1e3, t1 * 1e3, t0 / t1, ops / t0 * 1e-9, ops / t1 * 1e-9,
           (double)w0.bytes / t0 * 1e-9, (double)w1.bytes / t1 * 1e-9, peak,
           100.0 * ops / t0 * 1e-9 / peak, 100.0 * ops / t1 * 1e-9 / peak, same ? "yes" : "NO");
    free(s);
    free(y1);
    free(y0);
    free(x);
    free(w1.data);
    free(w0.data);
    return same ? 0 : 1;
}

/* SigLIP self-attention: n patches, 16 heads of 72, float32 or with bf16
 * dot products (the avx512bf16 row's); CPU ms per thread. */
static double bench_attention(size_t n, int nt, bool bf16)
{
    const int H = 16, hd = 72;
    const size_t D = (size_t)H * hd;
    float *qkv = xalloc(n * 3 * D * sizeof(float)), *out = xalloc(n * D * sizeof(float));
    fill(qkv, n * 3 * D, 9, 1.0f);
    const size_t wsb =
        bf16 ? idf2_avx512_attn_bf16_ws(n, H, hd, nt) : idf2_avx512_attn_ws(n, H, hd, nt);
    void *ws = xalloc(wsb);
    int reps = 0;
    double t0 = bench_wall_s(), c0 = bench_cpu_s(), dt;
    do {
        if (bf16)
            idf2_avx512_attention_bf16(out, qkv, 3 * D, n, qkv + D, qkv + 2 * D, (size_t)hd, 3 * D,
                                       n, H, H, hd, 0.1178f, NULL, ws, nt);
        else
            idf2_avx512_attention(out, qkv, 3 * D, n, qkv + D, qkv + 2 * D, (size_t)hd, 3 * D, n, H,
                                  H, hd, 0.1178f, NULL, ws, nt);
        reps++;
        dt = bench_wall_s() - t0;
    } while (dt < 0.5);
    dt /= reps;
    const double dc = (bench_cpu_s() - c0) / reps / nt;
    const double flop = 4.0 * (double)n * (double)n * (double)D;
    printf("attention %s %5zu patches x 16 heads: wall %8.2f ms %6.1f GFLOP/s | cpu/thread %8.2f "
           "ms %6.1f GFLOP/s | workspace %.1f MB\n",
           bf16 ? "bf16" : "f32 ", n, dt * 1e3, flop / dt * 1e-9, dc * 1e3, flop / dc * 1e-9,
           (double)wsb * 1e-6);
    free(ws);
    free(out);
    free(qkv);
    return dc;
}

/* Both attentions at n patches, and the ratio of their CPU times. */
static int cmd_attn(size_t n, int nt)
{
    const double f = bench_attention(n, nt, false), b = bench_attention(n, nt, true);
    printf("RESULT attention patches=%zu threads=%d f32_ms=%.2f bf16_ms=%.2f speedup=%.2f\n", n, nt,
           f * 1e3, b * 1e3, f / b);
    return 0;
}

static int cmd_shapes(int nt)
{
    for (int f = IDF2_MM_BF16; f <= IDF2_MM_BF16X1; f++) {
        enum idf2_mm_fmt q = (enum idf2_mm_fmt)f;
        bench_shape("decode q/o", q, 1, 4096, 4096, nt, false);
        bench_shape("decode gate/up", q, 1, 4096, 14336, nt, false);
        bench_shape("decode down", q, 1, 14336, 4096, nt, false);
        bench_shape("prefill q/o", q, 512, 4096, 4096, nt, false);
        bench_shape("prefill down", q, 512, 14336, 4096, nt, false);
    }
    for (int f = IDF2_MM_BF16; f <= IDF2_MM_BF16X1; f += IDF2_MM_BF16X1 - IDF2_MM_BF16) {
        bench_shape("vision qkvo 378px", (enum idf2_mm_fmt)f, 729, 1152, 1152, nt, false);
        bench_shape("vision fc1 378px", (enum idf2_mm_fmt)f, 729, 1152, 4304, nt, false);
        bench_shape("vision fc2 378px", (enum idf2_mm_fmt)f, 729, 4304, 1152, nt, false);
    }
    cmd_attn(729, nt);
    cmd_attn(4900, nt);
    return 0;
}

/* Read bandwidth of nt threads over a 1 GiB array (one 64-byte line per
 * step, two loads of it) for about `seconds`: mean and best pass, GB/s;
 * returns the passes.  *sink: a bit of the loads' sum, for the caller to
 * print, so that the loads are not optimised away. */
static int probe_gbs(int nt, double seconds, double *mean, double *best, long *sink)
{
    const size_t n = (size_t)1 << 30;
    char *a = xalloc(n);
    memset(a, 1, n);
    double sum = 0;
    int passes = 0;
    double t_end = bench_wall_s() + seconds;
    *best = 0;
    *sink = 0;
    while (bench_wall_s() < t_end) {
        double t0 = bench_wall_s();
        long acc = 0;
#pragma omp parallel for reduction(+ : acc) num_threads(nt) schedule(static)
        for (size_t i = 0; i < n; i += 64) {
            long v;
            memcpy(&v, a + i, sizeof v);
            long u;
            memcpy(&u, a + i + 32, sizeof u);
            acc += v ^ u;
        }
        *sink = (*sink + acc) & 1;
        double gbs = (double)n / (bench_wall_s() - t0) * 1e-9;
        *best = gbs > *best ? gbs : *best;
        sum += gbs;
        passes++;
    }
    *mean = passes ? sum / passes : 0;
    free(a);
    return passes;
}

static int cmd_probe(int nt, double seconds)
{
    double mean, best;
    long sink;
    const int passes = probe_gbs(nt, seconds, &mean, &best, &sink);
    printf("RESULT probe threads=%d read GB/s mean %.1f best %.1f passes %d (%ld)\n", nt, mean,
           best, passes, sink);
    return 0;
}

/* Mistral-7B: hidden 4096, 32 layers, 32 heads / 8 KV heads of 128, FFN
 * 14336, vocabulary 32000. */
enum { L_Q, L_K, L_V, L_O, L_GATE, L_UP, L_DOWN, L_N };
static const size_t shape_rows[L_N] = { 4096, 1024, 1024, 4096, 14336, 14336, 4096 };
static const size_t shape_cols[L_N] = { 4096, 4096, 4096, 4096, 4096, 4096, 14336 };
#define N_LAYERS 32
#define VOCAB    32000

/* This process's anonymous memory in huge pages, GB (how much of the
 * stack got them depends on the machine's free 2 MiB blocks). */
static double huge_gb(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    char line[256];
    unsigned long long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "AnonHugePages: %llu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return (double)kb * 1024e-9;
}

enum layout { LAYOUT_PACKED, LAYOUT_STORED, LAYOUT_COMPARE };

static const char *const kind_name[L_N + 1] = { "q", "k", "v", "o", "gate", "up", "down", "head" };

/* --calls: where a step's time goes, per kind of matmul: its mean call in
 * the stack (t_stack, seconds summed over `steps` steps) against the same
 * calls back to back, each kind over the layers' copies (from memory, as
 * in the stack: a kind's copy in one layer is not in the cache after the
 * other layers' matrices), and the step time outside any call.  Where the
 * stack loses against single calls shows up as a kind's ratio over 1. */
static void calls_report(struct mat layers[][L_N], const struct mat *head, int n_layers, float *y,
                         const float *x, size_t M, void *scratch, int nt, int steps,
                         const double t_stack[L_N + 1], double t_step, const char *tag)
{
    double peak_cpu;
    const double peak = bf16_peak(nt, 1.0, &peak_cpu);
    double in_calls = 0, flop_all = 0;
    for (int s = 0; s <= L_N; s++) {
        const int n = s < L_N ? n_layers : 1;
        double t = 0;
        for (int it = 0; it <= steps; it++)
            for (int l = 0; l < n; l++) {
                const struct mat *w = s < L_N ? &layers[l][s] : head;
                const double ts = bench_wall_s();
                mat_mm(y, x, M, w, scratch, nt);
                if (it > 0)
                    t += bench_wall_s() - ts;
            }
        const struct mat *w = s < L_N ? &layers[0][s] : head;
        const double flop = 2.0 * (double)M * (double)w->N * (double)w->K * n;
        const double stack = t_stack[s] / steps, alone = t / steps;
        in_calls += stack;
        flop_all += flop;
        printf("RESULT calls %s rows=%zu %-4s x%d call ms stack %.3f alone %.3f ratio %.3f "
               "GFLOP/s stack %.1f alone %.1f peak_pct stack %.1f alone %.1f\n",
               tag, M, kind_name[s], n, stack / n * 1e3, alone / n * 1e3, stack / alone,
               flop / stack * 1e-9, flop / alone * 1e-9, 100.0 * flop / stack * 1e-9 / peak,
               100.0 * flop / alone * 1e-9 / peak);
    }
    printf("RESULT calls %s rows=%zu step ms %.2f in calls %.2f outside %.3f GFLOP/s %.1f peak "
           "GFLOP/s %.1f peak_pct %.1f\n",
           tag, M, t_step * 1e3, in_calls * 1e3, (t_step - in_calls) * 1e3,
           flop_all / t_step * 1e-9, peak, 100.0 * flop_all / t_step * 1e-9 / peak);
}

static int cmd_model(enum idf2_mm_fmt f, int nt, int decode, int prefill, int batch, double probe_s,
                     enum layout lay, int n_layers, bool calls)
{
    static struct mat layers[N_LAYERS][L_N], head;
    const struct mat *all[N_LAYERS * L_N + 1];
    size_t total = 0, n_all = 0;
    double t0 = bench_wall_s();
    for (int l = 0; l < n_layers; l++)
        for (int s = 0; s < L_N; s++) {
            mat_random(&layers[l][s], f, shape_rows[s], shape_cols[s],
                       100u * (unsigned)l + (unsigned)s);
            total += layers[l][s].bytes;
            all[n_all++] = &layers[l][s];
        }
    mat_random(&head, f, VOCAB, 4096, 99);
    total += head.bytes;
    all[n_all++] = &head;
    fprintf(stderr, "model %s: %.2f GB of weights made in %.1f s, %.2f GB in huge pages\n",
            fmt_name(f), (double)total * 1e-9, bench_wall_s() - t0, huge_gb());
    if (!is_bf16(f)) {
        /* As the engine's load leaves its quantized blocks
         * (idf2_weights_quantize): what the faults got in 4 KiB pages
         * collapsed into huge pages. */
        t0 = bench_wall_s();
        for (size_t i = 0; i < n_all; i++)
            idf2_place_collapse(all[i]->data, all[i]->bytes, NULL, 0);
        fprintf(stderr, "model %s: collapsed in %.1f s, %.2f GB in huge pages\n", fmt_name(f),
                bench_wall_s() - t0, huge_gb());
    }
    size_t P = prefill > 1 ? (size_t)prefill : 1;
    P = batch > (int)P ? (size_t)batch : P;
    float *x = xalloc(P * 14336 * sizeof(float)), *y = xalloc(P * VOCAB * sizeof(float));
    /* The head's output of the batch-1 and batch steps in the first
     * layout, to check that the second gives the same bits. */
    float *ref[2] = { xalloc(P * VOCAB * sizeof(float)), xalloc(P * VOCAB * sizeof(float)) };
    fill(x, P * 14336, 5, 1.0f);
    void *scratch = xalloc(idf2_avx512_mm_ws(P, 14336, f, nt));
    /* compare: the stored layout first, then every matrix packed (the
     * stored copy freed as it goes: both do not fit in memory), then the
     * same passes again. */
    const bool packable = is_bf16(f) && lay != LAYOUT_STORED;
    const int rounds = packable && lay == LAYOUT_COMPARE ? 2 : 1;
    double step1[2] = { 0, 0 }, stepb[2] = { 0, 0 };
    for (int round = 0; round < rounds; round++) {
        if (packable && (lay == LAYOUT_PACKED || round == 1)) {
            t0 = bench_wall_s();
            for (size_t i = 0; i < n_all; i++)
                mat_pack((struct mat *)all[i], nt);
            fprintf(stderr, "model %s: packed in %.1f s, %.2f GB in huge pages\n", fmt_name(f),
                    bench_wall_s() - t0, huge_gb());
        }
        const char *tag = head.packed ? "packed" : "stored";
        for (int pass = 0; pass < 3; pass++) {
            /* 0: decode at batch 1; 1: a decode step of `batch` rows (one
             * weight pass for all, the head on every row); 2: prefill. */
            const size_t M = pass == 0 ? 1 : pass == 1 ? (size_t)batch : (size_t)prefill;
            const size_t Mh = pass == 2 ? 1 : M;
            const int steps = pass == 0   ? decode
                              : pass == 1 ? (batch > 1 ? decode : 0)
                                          : (prefill > 0 ? 1 : 0);
            if (steps <= 0)
                continue;
            double pm[2] = { 0, 0 }, pb;
            long sink = 0;
            if (pass == 0 && probe_s > 0)
                probe_gbs(nt, probe_s, &pm[0], &pb, &sink);
            /* One untimed warm-up step, then the timed steps (with
             * --calls, each call timed too: t_kind). */
            double t = 0, t_kind[L_N + 1] = { 0 };
            for (int it = 0; it <= steps; it++) {
                double ts = bench_wall_s();
                for (int l = 0; l < n_layers; l++)
                    for (int s = 0; s < L_N; s++) {
                        const double tc = calls ? bench_wall_s() : 0;
                        mat_mm(y, x, M, &layers[l][s], scratch, nt);
                        if (calls && it > 0)
                            t_kind[s] += bench_wall_s() - tc;
                    }
                /* As in generation, the head runs for every decoded row,
                 * and for the last position only of a prefill. */
                const double tc = calls ? bench_wall_s() : 0;
                mat_mm(y, x, Mh, &head, scratch, nt);
                if (it > 0) {
                    t += bench_wall_s() - ts;
                    t_kind[L_N] += calls ? bench_wall_s() - tc : 0;
                }
            }
            t /= steps;
            if (calls && pass < 2)
                calls_report(layers, &head, n_layers, y, x, M, scratch, nt, steps, t_kind, t, tag);
            if (pass < 2 && rounds == 2) {
                if (round == 0)
                    memcpy(ref[pass], y, M * VOCAB * sizeof(float));
                else
                    printf("RESULT fast %s threads=%d layout_bits batch%zu %s\n", fmt_name(f), nt,
                           M, memcmp(ref[pass], y, M * VOCAB * sizeof(float)) ? "DIFFER" : "same");
            }
            if (pass == 0) {
                step1[round] = t;
                printf("RESULT fast %s threads=%d layout=%s decode tok/s %.3f GB/s %.2f\n",
                       fmt_name(f), nt, tag, 1.0 / t, (double)total / t * 1e-9);
                if (probe_s > 0) {
                    /* Against the better of the probes around it: the
                     * share of the read bandwidth the decode reaches. */
                    probe_gbs(nt, probe_s, &pm[1], &pb, &sink);
                    const double p = pm[0] > pm[1] ? pm[0] : pm[1];
                    printf("RESULT fast %s threads=%d layout=%s decode GB/s %.2f probe GB/s before "
                           "%.1f after %.1f probe_pct %.1f (%ld)\n",
                           fmt_name(f), nt, tag, (double)total / t * 1e-9, pm[0], pm[1],
                           p > 0 ? 100.0 * (double)total / t * 1e-9 / p : 0, sink);
                }
            } else if (pass == 1) {
                stepb[round] = t;
                printf("RESULT fast %s threads=%d layout=%s decode_batch%d step ms %.1f batch1 "
                       "step ms %.1f ratio %.2f\n",
                       fmt_name(f), nt, tag, batch, t * 1e3, step1[round] * 1e3,
                       step1[round] > 0 ? t / step1[round] : 0);
            } else
                printf("RESULT fast %s threads=%d layout=%s prefill%zu tok/s %.2f\n", fmt_name(f),
                       nt, tag, M, (double)M / t);
            fflush(stdout);
        }
    }
    if (rounds == 2)
        printf("RESULT fast %s threads=%d packed_over_stored decode_batch1 %.3f decode_batch%d "
               "%.3f\n",
               fmt_name(f), nt, step1[1] / step1[0], batch, stepb[0] > 0 ? stepb[1] / stepb[0] : 0);
    return 0;
}

/* The Mistral-7B stack (layers of it, the head) in the block format f in
 * ggml's rows and in its x16 twin, the same values, alternating decode
 * steps of each (batch 1, then `batch` rows when > 1) for `steps` rounds
 * in one process: their mean step times and ratio, and the same bits
 * checked on the last layer's down projection. */
static int cmd_qmodel(enum idf2_mm_fmt f, int nt, int steps, int batch, int layers)
{
    const enum idf2_mm_fmt fx = f == IDF2_MM_Q8_0 ? IDF2_MM_Q8_0X16 : IDF2_MM_Q4_0X16;
    const int nl = layers > 0 && layers < N_LAYERS ? layers : N_LAYERS;
    static struct mat st[2][N_LAYERS][L_N], head[2];
    size_t total = 0;
    for (int k = 0; k < 2; k++) {
        for (int l = 0; l < nl; l++)
            for (int s = 0; s < L_N; s++) {
                mat_random(&st[k][l][s], k ? fx : f, shape_rows[s], shape_cols[s],
                           100u * (unsigned)l + (unsigned)s);
                total += k ? 0 : st[k][l][s].bytes;
            }
        mat_random(&head[k], k ? fx : f, VOCAB, 4096, 99);
    }
    total += head[0].bytes;
    const size_t P = batch > 1 ? (size_t)batch : 1;
    float *x = xalloc(P * 14336 * sizeof(float)), *y = xalloc(P * VOCAB * sizeof(float)),
          *y2 = xalloc(P * 4096 * sizeof(float));
    fill(x, P * 14336, 5, 1.0f);
    const size_t a = idf2_avx512_mm_ws(P, 14336, f, nt), b = idf2_avx512_mm_ws(P, 14336, fx, nt);
    void *scratch = xalloc(a > b ? a : b);
    for (int pass = 0; pass < (batch > 1 ? 2 : 1); pass++) {
        const size_t M = pass ? P : 1;
        double t[2] = { 0, 0 };
        for (int it = 0; it <= steps; it++)
            for (int k = 0; k < 2; k++) {
                const double ts = bench_wall_s();
                for (int l = 0; l < nl; l++)
                    for (int s = 0; s < L_N; s++)
                        idf2_avx512_mm(y, x, M, shape_cols[s], st[k][l][s].data, shape_rows[s],
                                       shape_cols[s], k ? fx : f, NULL, scratch, nt);
                idf2_avx512_mm(y, x, M, 4096, head[k].data, VOCAB, 4096, k ? fx : f, NULL, scratch,
                               nt);
                if (it > 0) /* the first round warms up */
                    t[k] += bench_wall_s() - ts;
            }
        const struct mat *d0 = &st[0][nl - 1][L_DOWN], *d1 = &st[1][nl - 1][L_DOWN];
        idf2_avx512_mm(y, x, M, d0->K, d0->data, d0->N, d0->K, f, NULL, scratch, nt);
        idf2_avx512_mm(y2, x, M, d1->K, d1->data, d1->N, d1->K, fx, NULL, scratch, nt);
        const bool same = memcmp(y, y2, M * d0->N * sizeof(float)) == 0;
        printf("RESULT qmodel %s layers=%d threads=%d rows=%zu step ms ggml %.1f x16 %.1f "
               "speedup %.3f GB/s ggml %.2f x16 %.2f same_bits %s\n",
               fmt_name(f), nl, nt, M, t[0] / steps * 1e3, t[1] / steps * 1e3, t[0] / t[1],
               (double)total / (t[0] / steps) * 1e-9, (double)total / (t[1] / steps) * 1e-9,
               same ? "yes" : "NO");
        fflush(stdout);
    }
    return 0;
}

/* Also for a misspelt option or value: figures of another configuration
 * than the command line says must not pass silently. */
static int usage(void)
{
    fprintf(stderr, "usage: bench_fast shapes|model FMT|gemm|qgemm FMT M K N|qmodel FMT|attn "
                    "N|probe|peak [--threads N] [--decode T] [--prefill P] [--batch B] "
                    "[--probe S] [--layout packed|stored|compare] [--layers L] [--calls 1] "
                    "[--seconds S]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    int nt = 1, decode = 8, prefill = 0, batch = 0, argi = 2;
    double seconds = 5, probe_s = 0;
    enum layout lay = LAYOUT_PACKED;
    bool lay_set = false;
    int layers = N_LAYERS;
    bool calls = false;
    enum idf2_mm_fmt f = IDF2_MM_BF16;
    size_t gm = 0, gk = 0, gn = 0;
    if (strcmp(argv[1], "gemm") == 0 || strcmp(argv[1], "qgemm") == 0) {
        if (argc < 6 || !fmt_parse(argv[2], &f) || (gm = strtoul(argv[3], NULL, 10)) == 0 ||
            (gk = strtoul(argv[4], NULL, 10)) == 0 || (gn = strtoul(argv[5], NULL, 10)) == 0) {
            fprintf(stderr, "bench_fast: gemm needs a format (bf16, bf16x1, q8_0, q4_0, q8_0x16, "
                            "q4_0x16) and M K N\n");
            return 2;
        }
        argi = 6;
    }
    if (strcmp(argv[1], "attn") == 0) {
        if (argc < 3 || (gm = strtoul(argv[2], NULL, 10)) == 0) {
            fprintf(stderr, "bench_fast: attn needs a patch count\n");
            return 2;
        }
        argi = 3;
    }
    if (strcmp(argv[1], "model") == 0 || strcmp(argv[1], "qmodel") == 0) {
        if (argc < 3 || !fmt_parse(argv[2], &f)) {
            fprintf(
                stderr,
                "bench_fast: model needs a format: bf16, bf16x1, q8_0, q4_0, q8_0x16 or q4_0x16\n");
            return 2;
        }
        argi = 3;
    }
    if ((argc - argi) % 2)
        return usage();
    for (int i = argi; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--threads") == 0)
            nt = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--decode") == 0)
            decode = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--prefill") == 0)
            prefill = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--batch") == 0)
            batch = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--probe") == 0)
            probe_s = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--layout") == 0) {
            const char *v = argv[i + 1];
            lay_set = true;
            if (strcmp(v, "stored") && strcmp(v, "compare") && strcmp(v, "packed"))
                return usage();
            lay = strcmp(v, "stored") == 0    ? LAYOUT_STORED
                  : strcmp(v, "compare") == 0 ? LAYOUT_COMPARE
                                              : LAYOUT_PACKED;
        } else if (strcmp(argv[i], "--layers") == 0)
            layers = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--calls") == 0)
            calls = atoi(argv[i + 1]) != 0;
        else
            return usage();
    }
    if (strcmp(argv[1], "probe") == 0)
        return cmd_probe(nt, seconds);
    if (strcmp(argv[1], "peak") == 0) {
        double cpu;
        const double wall = bf16_peak(nt, seconds, &cpu);
        printf("RESULT peak bf16 threads=%d GFLOP/s %.1f cpu/thread %.1f\n", nt, wall, cpu);
        return 0;
    }
    if (!idf2_avx512_usable()) {
        fprintf(stderr, "bench_fast: this CPU lacks AVX-512 BF16/VNNI\n");
        return 1;
    }
    if (strcmp(argv[1], "shapes") == 0)
        return cmd_shapes(nt);
    if (strcmp(argv[1], "gemm") == 0) {
        const bool packed = lay_set && lay == LAYOUT_PACKED && is_bf16(f);
        bench_shape(packed ? "gemm packed" : "gemm", f, gm, gk, gn, nt, packed);
        return 0;
    }
    if (strcmp(argv[1], "qgemm") == 0 || strcmp(argv[1], "qmodel") == 0) {
        if (f != IDF2_MM_Q8_0 && f != IDF2_MM_Q4_0) {
            fprintf(stderr, "bench_fast: qgemm and qmodel take q8_0 or q4_0\n");
            return 2;
        }
        return argv[1][1] == 'g' ? cmd_qgemm(f, gm, gk, gn, nt, decode)
                                 : cmd_qmodel(f, nt, decode, batch, layers);
    }
    if (strcmp(argv[1], "model") == 0)
        return cmd_model(f, nt, decode, prefill, batch, probe_s, lay,
                         layers > 0 && layers < N_LAYERS ? layers : N_LAYERS, calls);
    if (strcmp(argv[1], "attn") == 0)
        return cmd_attn(gm, nt);
    fprintf(stderr, "bench_fast: unknown command %s\n", argv[1]);
    return 2;
}
