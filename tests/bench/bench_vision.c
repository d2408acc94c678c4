/* Vision tower + connector benchmark on a real-size checkpoint: only the
 * image path of the engine (synth/idf2_vision.c, synth/idf2_connector.c)
 * on the context's own buffers, so it touches the vision and connector
 * weights (~1.3 GB of idefics2-8b's 16.8) and neither tokenizer, prompt
 * nor decoder.  Random pixels (normalised range) on a square grid of
 * patches per side: 27 is a 378 px image (729 patches), 35 a 490 px crop
 * of a split 980 px image (1,225), 70 a 980 px image (4,900).
 *
 * For each grid and thread count: the best of --reps passes (after one
 * 378 px warm-up pass per thread count that maps the weights in) of the
 * vision tower, of the modality projection and of the perceiver, wall and
 * CPU seconds; then
 * `RESULT vision ...` lines with the 1 -> 2 thread ratio.  The grid
 * `split` is a split 980 px image (4 x 35x35 crops + the 70x70 whole) as
 * one figure, the way `generate --image-splitting on` encodes it: the four
 * crops share one pass (4,900 patches), the whole takes another; `split1`
 * is the same five images one pass each (how it ran before the crops were
 * batched; the outputs are the same bit for bit).  --split adds `split`.
 * `SxK` is K images (K <= 8) of S x S patches sharing passes, the way the
 * engine encodes K requests admitted together (`27x6`: six 378 px
 * captions in one 4,374-patch pass); against K times grid `S`, that is
 * what sharing the pass saves.
 * --packing off runs on the weights as stored (the kernel row packs them
 * per call, as before packing at load); both runs each pass that way and
 * then packed, with a `RESULT vision_packing` line of CPU and wall
 * seconds (best of 2+ reps: the first unpacked pass reads back the mapped
 * pages the packing dropped).
 * --qkv both alternates passes with q, k and v from one fused matmul (the
 * default where the weights are packed at load) and from three, and
 * prints `RESULT vision_qkv` with both (same outputs bit for bit,
 * checked).  --epilogue both does the same with GELU and the residual
 * adds as passes of their own and fused into the matmuls' stores
 * (idf2_mm_ep; the default), printing `RESULT vision_epilogue`.
 *
 * usage: bench_vision CKPT_DIR [--backend NAME (fast)] [--grids 27,70,split1]
 *                     [--threads 1,2] [--reps N (2)] [--split]
 *                     [--packing on|off|both] [--qkv both | --epilogue both] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_clock.h"
#include "synth/idf2_ctx.h"

#define MAX_IMAGES 8

/* Wall and CPU seconds of the three stages of one image pass. */
struct pass_time {
    double wall[3], cpu[3];
};

/* The images of one pass (n <= MAX_IMAGES)
 * through the vision tower, the modality projection and the perceiver on
 * context c, as generate runs them. */
static int one_pass(struct idf2_ctx *c, const struct idf2_vision_image *im, size_t n, float *feats,
                    struct pass_time *t)
{
    const struct idf2_model *m = c->m;
    const struct idf2_model_config *mc = &m->cfg.model;
    size_t P = 0, rows[MAX_IMAGES];
    for (size_t i = 0; i < n; i++)
        P += rows[i] = (size_t)im[i].nh * im[i].nw;
    struct vc_err err = { 0 };
    double w0 = bench_wall_s(), c0 = bench_cpu_s();
    if (idf2_vision_encode(&c->ex, &mc->vision, &m->w->vision, &c->vs, im, n, c->vis, &err) < 0) {
        fprintf(stderr, "bench_vision: %s\n", err.msg);
        return -1;
    }
    double w1 = bench_wall_s(), c1 = bench_cpu_s();
    idf2_connector_project(&c->ex, mc, &m->w->connector, &c->cs, c->vis, P, c->proj);
    double w2 = bench_wall_s(), c2 = bench_cpu_s();
    idf2_connector_resample(&c->ex, mc, &m->w->connector, &c->cs, c->proj, rows, n, feats);
    double w3 = bench_wall_s(), c3 = bench_cpu_s();
    *t = (struct pass_time){ { w1 - w0, w2 - w1, w3 - w2 }, { c1 - c0, c2 - c1, c3 - c2 } };
    return 0;
}

/* best = per stage the faster (by wall time) of best and t; first: t. */
static void keep_best(struct pass_time *best, const struct pass_time *t, bool first)
{
    for (int s = 0; s < 3; s++)
        if (first || t->wall[s] < best->wall[s]) {
            best->wall[s] = t->wall[s];
            best->cpu[s] = t->cpu[s];
        }
}

/* The best (by wall time) of reps passes, per stage. */
static int best_of(struct idf2_ctx *c, const struct idf2_vision_image *im, size_t n, float *feats,
                   int reps, struct pass_time *best)
{
    for (int r = 0; r < reps; r++) {
        struct pass_time t;
        if (one_pass(c, im, n, feats, &t) < 0)
            return -1;
        keep_best(best, &t, r == 0);
    }
    return 0;
}

/* --qkv both, --epilogue both: reps pairs of passes with *apart set (q,
 * k and v from three matmuls; GELU and the residual adds as passes of
 * their own) then clear (one matmul; fused into the matmuls' stores), the
 * best of each; *same: every pair's features (the first nf floats: the
 * pass's images) agreed bit for bit. */
static int apart_pairs(struct idf2_ctx *c, bool *apart, const struct idf2_vision_image *im,
                       size_t n, float *feats, float *other, size_t nf, int reps,
                       struct pass_time *t_apart, struct pass_time *t_fused, bool *same)
{
    for (int r = 0; r < reps; r++) {
        struct pass_time t[2];
        for (int f = 0; f < 2; f++) {
            *apart = f == 0;
            if (one_pass(c, im, n, f ? feats : other, &t[f]) < 0)
                return -1;
        }
        keep_best(t_apart, &t[0], r == 0);
        keep_best(t_fused, &t[1], r == 0);
        *same = *same && memcmp(feats, other, nf * sizeof(float)) == 0;
    }
    *apart = false;
    return 0;
}

static double total(const double v[3])
{
    return v[0] + v[1] + v[2];
}

int main(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: bench_vision CKPT_DIR [--backend NAME] [--grids 27,70] "
                        "[--threads 1,2] [--reps N] [--split] [--packing on|off|both] "
                        "[--qkv both | --epilogue both]\n");
        return 2;
    }
    /* Mapped: the text weights this never reads are not copied (only the
     * image path's 2.2 GiB are read, and packed on a row with a packed
     * layout). */
    struct idf2_load_opts opts = { .compute = IDF2_COMPUTE_BF16,
                                   .backend = "fast",
                                   .weights = IDF2_WEIGHTS_MAP };
    char grids[64] = "27,70", threads[32] = "1,2";
    int reps = 2, split = 0;
    bool qkv_both = false, ep_both = false;
    const char *packing = "on";
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--backend") && i + 1 < argc)
            opts.backend = argv[++i];
        else if (!strcmp(argv[i], "--grids") && i + 1 < argc)
            snprintf(grids, sizeof grids, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            snprintf(threads, sizeof threads, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--split"))
            split = 1;
        else if (!strcmp(argv[i], "--packing") && i + 1 < argc)
            packing = argv[++i];
        else if (!strcmp(argv[i], "--qkv") && i + 1 < argc)
            qkv_both = !strcmp(argv[++i], "both");
        else if (!strcmp(argv[i], "--epilogue") && i + 1 < argc)
            ep_both = !strcmp(argv[++i], "both");
    }
    if (reps < 1)
        reps = 1;
    struct idf2_model *m = NULL;
    struct vc_err err = { 0 };
    if (idf2_model_load(argv[1], &opts, &m, &err) < 0) {
        fprintf(stderr, "load: %s\n", err.msg);
        return 1;
    }
    const struct idf2_model_config *mc = &m->cfg.model;
    const bool both = !strcmp(packing, "both");
    const size_t nm = idf2_weights_image_mats(m->w, mc, NULL);
    struct idf2_w **mats = malloc(nm * sizeof *mats);
    const void **packed = malloc(nm * sizeof *packed);
    if (!mats || !packed)
        return 1;
    idf2_weights_image_mats(m->w, mc, mats);
    for (size_t i = 0; i < nm; i++) {
        packed[i] = mats[i]->packed;
        if (!strcmp(packing, "off"))
            mats[i]->packed = NULL;
    }
    const uint32_t p = (uint32_t)mc->vision.patch_size,
                   N = (uint32_t)(mc->vision.image_size / mc->vision.patch_size);
    const size_t px_max = (size_t)N * p;
    float *pixels = malloc(3 * px_max * px_max * sizeof(float));
    const size_t nf = MAX_IMAGES * (size_t)mc->perceiver.n_latents * mc->text.hidden_size;
    float *feats = malloc(nf * sizeof(float)), *other = malloc(nf * sizeof(float));
    if (!pixels || !feats || !other)
        return 1;
    uint32_t seed = 7;
    for (size_t i = 0; i < 3 * px_max * px_max; i++) {
        seed = seed * 1664525u + 1013904223u;
        pixels[i] = (float)(seed >> 8) / 8388608.0f - 1.0f;
    }
    struct idf2_load_report rep;
    idf2_model_report(m, &rep);
    printf("kernels %s; image weights packed at load: %.1f MiB%s%s; best of %d passes; seconds "
           "wall (cpu): vision, projection, perceiver\n",
           m->ops->name, (double)rep.bytes_packed / 1048576.0, rep.pack_note[0] ? ", " : "",
           rep.pack_note, reps);
    int status = 0;
    double first[8] = { 0 }; /* per grid: total wall at the first thread count */
    for (char *s1 = NULL, *tt = strtok_r(threads, ",", &s1); tt && !status;
         tt = strtok_r(NULL, ",", &s1)) {
        const struct idf2_ctx_params cp = { .n_slots = 1, .n_ctx = 16, .n_threads = atoi(tt) };
        struct idf2_ctx *c = NULL;
        if (idf2_ctx_new(m, &cp, &c, &err) < 0) {
            fprintf(stderr, "context: %s\n", err.msg);
            return 1;
        }
        bool *apart = qkv_both ? &c->vs.qkv_apart : ep_both ? &c->vs.ep_apart : NULL;
        /* A warm-up pass maps the weights in and touches the context. */
        struct pass_time warm;
        const uint32_t ws = N < 27 ? N : 27;
        const struct idf2_vision_image wi = { pixels, ws, ws, ws * p, ws * p };
        if (one_pass(c, &wi, 1, feats, &warm) < 0)
            return 1;
        char gl[64];
        snprintf(gl, sizeof gl, "%s%s", grids, split ? ",split" : "");
        int gi = 0;
        for (char *s2 = NULL, *g = strtok_r(gl, ",", &s2); g && !status;
             g = strtok_r(NULL, ",", &s2), gi++) {
            struct pass_time b = { 0 };
            const char *x = strchr(g, 'x');
            const bool is_split = !strcmp(g, "split") || !strcmp(g, "split1");
            const bool batched = !strcmp(g, "split") || x;
            /* A split 980 px image: four 490 px crops and the whole. */
            const uint32_t sides[5] = { 35, 35, 35, 35, 70 };
            struct idf2_vision_image im[MAX_IMAGES];
            const size_t n_im = is_split ? 5 : x ? (size_t)atoi(x + 1) : 1;
            if (n_im < 1 || n_im > MAX_IMAGES) {
                fprintf(stderr, "bench_vision: grid %s: 1 to %d images\n", g, MAX_IMAGES);
                status = 1;
                break;
            }
            for (size_t k = 0; k < n_im; k++) {
                const uint32_t side = is_split ? sides[k] : (uint32_t)atoi(g);
                im[k] = (struct idf2_vision_image){ pixels, side, side, side * p, side * p };
                if (side == 0 || side > N) {
                    fprintf(stderr, "bench_vision: grid %u is not within 1..%u\n", side, N);
                    status = 1;
                }
            }
            /* With --packing both, each pass runs first on the weights as
             * stored (packed per call), then on the packed copies: the
             * packing's gain in one process. */
            double unpacked_cpu[3] = { 0 }, unpacked_wall = 0, apart_cpu = 0, apart_wall = 0;
            bool same = true;
            for (size_t i0 = 0, k; i0 < n_im && !status; i0 += k) {
                k = batched ? idf2_vision_pass_images(im + i0, n_im - i0, c->max_patches) : 1;
                struct pass_time t = { 0 }, u = { 0 };
                for (size_t w = 0; w < nm && both; w++)
                    mats[w]->packed = NULL;
                if (both && best_of(c, im + i0, k, feats, reps, &u) < 0)
                    status = 1;
                for (size_t w = 0; w < nm && both; w++)
                    mats[w]->packed = packed[w];
                struct pass_time a = { 0 };
                if (status || (apart ? apart_pairs(c, apart, im + i0, k, feats, other,
                                                   nf / MAX_IMAGES * k, reps, &a, &t, &same)
                                     : best_of(c, im + i0, k, feats, reps, &t)) < 0) {
                    status = 1;
                    break;
                }
                apart_cpu += total(a.cpu);
                apart_wall += total(a.wall);
                for (int s = 0; s < 3; s++) {
                    b.wall[s] += t.wall[s];
                    b.cpu[s] += t.cpu[s];
                    unpacked_cpu[s] += u.cpu[s];
                    unpacked_wall += u.wall[s];
                }
            }
            if (status)
                break;
            const double w = total(b.wall);
            if (gi < 8 && first[gi] == 0)
                first[gi] = w;
            printf("grid %-5s threads %s: %.3f (%.3f) + %.3f (%.3f) + %.3f (%.3f) = %.3f s\n", g,
                   tt, b.wall[0], b.cpu[0], b.wall[1], b.cpu[1], b.wall[2], b.cpu[2], w);
            printf("RESULT vision kernels=%s grid=%s threads=%s vision_s=%.3f projection_s=%.3f "
                   "perceiver_s=%.3f total_s=%.3f cpu_s=%.3f speedup_vs_first=%.2f\n",
                   m->ops->name, g, tt, b.wall[0], b.wall[1], b.wall[2], w, total(b.cpu),
                   gi < 8 && w > 0 ? first[gi] / w : 0);
            if (both)
                printf("RESULT vision_packing grid=%s threads=%s cpu_s_packed_per_call=%.3f "
                       "(%.3f + %.3f + %.3f) cpu_s_packed_at_load=%.3f (%.3f + %.3f + %.3f) "
                       "cpu_ratio=%.2f wall_s_packed_per_call=%.3f wall_s_packed_at_load=%.3f "
                       "wall_ratio=%.2f\n",
                       g, tt, total(unpacked_cpu), unpacked_cpu[0], unpacked_cpu[1],
                       unpacked_cpu[2], total(b.cpu), b.cpu[0], b.cpu[1], b.cpu[2],
                       total(b.cpu) > 0 ? total(unpacked_cpu) / total(b.cpu) : 0, unpacked_wall, w,
                       w > 0 ? unpacked_wall / w : 0);
            if (qkv_both)
                printf(
                    "RESULT vision_qkv grid=%s threads=%s wall_s_three_matmuls=%.3f "
                    "wall_s_fused=%.3f wall_ratio=%.3f cpu_s_three_matmuls=%.3f cpu_s_fused=%.3f "
                    "cpu_ratio=%.3f same_bits=%s\n",
                    g, tt, apart_wall, w, w > 0 ? apart_wall / w : 0, apart_cpu, total(b.cpu),
                    total(b.cpu) > 0 ? apart_cpu / total(b.cpu) : 0, same ? "yes" : "NO");
            if (ep_both && !qkv_both)
                printf("RESULT vision_epilogue grid=%s threads=%s wall_s_apart=%.3f "
                       "wall_s_fused=%.3f wall_ratio=%.3f cpu_s_apart=%.3f cpu_s_fused=%.3f "
                       "cpu_ratio=%.3f same_bits=%s\n",
                       g, tt, apart_wall, w, w > 0 ? apart_wall / w : 0, apart_cpu, total(b.cpu),
                       total(b.cpu) > 0 ? apart_cpu / total(b.cpu) : 0, same ? "yes" : "NO");
            fflush(stdout);
        }
        idf2_ctx_free(c);
    }
    free(pixels);
    free(feats);
    free(other);
    free(mats);
    free(packed);
    idf2_model_free(m);
    return status;
}
