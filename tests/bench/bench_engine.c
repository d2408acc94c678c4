/* Real-size engine benchmark: loads a checkpoint through the public API
 * (synth/idefics2.h) and captions one synthetic photo at each requested
 * size with image splitting off, so one image = one vision pass at that
 * resolution (378 px: 27x27 = 729 patches; 980 px: 70x70 = 4900).  Prints
 * load time, peak RSS, vision seconds per image, prefill tokens/s and
 * decode tokens/s: the baseline of the engine-speed work.  Meant for the
 * random-weight idefics2-8b written by bench_mkcheckpoint (the text is
 * gibberish; the timings are what count).
 *
 * --split: Idefics2's image splitting (4 crops + the whole image, five
 * vision passes per image), the way a 980 px image is normally captioned.
 *
 * --batch B1,B2,..: each size runs as a batch of B requests on one context
 * of B slots (one weight pass per decode step for all of them): prints the
 * wall time, the captions per hour it implies, and the cost of one decode
 * step at that batch size (taken from the last request admitted, whose
 * decode steps all run with the whole batch decoding), plus its ratio to
 * the first batch size of the list.  Size 0 is a text-only prompt: decode
 * cost without the vision tower.
 *
 * Where a batch's time goes (the context's figures, idf2_ctx_stats):
 * vision_total_s, every request's image encoding; prefill_total_s, the
 * decoder passes of prompt rows only; decode_total_s, of decoding rows
 * only; mixed_total_s, passes with both.
 *
 * usage: bench_engine CKPT_DIR [--compute bf16|f32] [--threads N] [--max-new N (16)]
 *                     [--sizes 378,980] [--cache] [--batch 1,16] [--backend NAME] [--split]
 *                     [--quant q8_0|q4_0] [--weights copy|map] [--prompt-tokens N,..]
 *                     [--vs-stack N] [--vs-apart N]
 * --quant and --weights load the model as generate's options of the same
 * name do.
 *
 * --max-new and --prompt-tokens take a list: the k-th value is the k-th
 * size's (the last value serves the sizes after it).  --prompt-tokens N: a
 * text-only size (0) gets a raw prompt of exactly N tokens, BOS included,
 * instead of the chat turn (0: the chat turn), so `--sizes 0,0,0
 * --prompt-tokens 512,512,1 --max-new 1,1,33` runs a 512-token prefill
 * twice (the first a warm-up) and then 32 decode steps right after the BOS:
 * llama-bench's pp512 and tg32 (tests/bench/sidebyside.sh).
 *
 * Every row is also printed as one `RESULT engine ...` line, with the page
 * faults of the row (majflt: weight pages read from disk during it, a warm
 * row should have none, or its timings measure the disk; minflt: pages
 * mapped in from memory).
 *
 * --vs-stack N: after each text-only row (size 0), N rounds in the same
 * process, each the same batch generated again and then as many passes of
 * only the decoder's weight matmuls at B rows (idf2_text_matmuls: the
 * matmul stack on the model's own weights, the floor of a decode step) as
 * the generation had decode steps; prints both step times and their ratio
 * per round and over all rounds (`RESULT engine_vs_stack`): what
 * attention, norms, RoPE, sampling and the threads' hand-offs add to a
 * decode step, taken alternately so that a change of the machine's speed
 * between runs does not show up as a gap.
 *
 * --vs-apart N: likewise N rounds after each text-only row, each the batch
 * generated with a matmul per weight matrix (idf2_text_scratch.apart) and
 * with q|k|v and gate|up stacked into one matmul each (in turns, either
 * first; stacking is the default
 * where the packed weights lie back to back): both decode steps, their
 * ratio, and whether the generated tokens agreed (`RESULT
 * engine_vs_apart`); then the decoder's weight matmuls alone
 * (idf2_text_matmuls) both ways, alternating pass by pass. */
#include "bench_clock.h"
#include "core/img.h"
#include "synth/idefics2.h"
#include "synth/idf2_ctx.h"

#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double gib(size_t b)
{
    return (double)b / (double)(1u << 30);
}

/* Major page faults of this process so far: weights read from disk
 * (mmapped pages the page cache had lost) instead of from memory. */
static long major_faults(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_majflt : 0;
}

static long minor_faults(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_minflt : 0;
}

/* A photo-like PNG of side s: smooth gradients, a disc, mild noise. */
static int make_png(uint32_t s, uint8_t **png, size_t *size)
{
    struct img im = { .w = s, .h = s, .ch = 3, .pixels = malloc((size_t)s * s * 3) };
    if (!im.pixels)
        return -1;
    uint32_t seed = 12345;
    for (uint32_t y = 0; y < s; y++)
        for (uint32_t x = 0; x < s; x++) {
            uint8_t *p = im.pixels + ((size_t)y * s + x) * 3;
            double dx = (double)x / s - 0.5, dy = (double)y / s - 0.4;
            int disc = dx * dx + dy * dy < 0.04;
            seed = seed * 1664525u + 1013904223u;
            int noise = (int)(seed >> 28) - 8;
            p[0] = (uint8_t)(disc ? 220 : 40 + 150 * x / s);
            p[1] = (uint8_t)(disc ? 180 : 90 + 100 * y / s);
            p[2] = (uint8_t)(120 + noise);
        }
    struct vc_err err = { 0 };
    enum vc_status rc = img_encode(&im, IMG_FORMAT_PNG, 0, png, size, &err);
    free(im.pixels);
    if (rc < 0)
        fprintf(stderr, "encode: %s\n", err.msg);
    return rc < 0 ? -1 : 0;
}

/* The k-th value of a comma list (the last one past its end). */
static int list_at(const char *list, int k)
{
    int v = 0;
    for (const char *p = list; k >= 0 && *p; k--) {
        char *end = NULL;
        v = (int)strtol(p, &end, 10);
        p = *end == ',' ? end + 1 : end;
    }
    return v;
}

/* Sets req's raw prompt (owned: *text) to BOS and then words, as many as
 * make exactly n tokens: the tokenizer may merge or split the first word,
 * so the count is checked and the word count corrected. */
static int exact_prompt(const struct idf2_model *m, struct idf2_request *req, size_t n, char **text,
                        struct vc_err *err)
{
    static const char word[] = "the ";
    size_t words = n > 0 ? n - 1 : 0;
    for (int tries = 0; tries < 8; tries++) {
        char *t = realloc(*text, words * (sizeof word - 1) + 1);
        if (!t)
            return -1;
        *text = t;
        for (size_t i = 0; i < words; i++)
            memcpy(t + i * (sizeof word - 1), word, sizeof word - 1);
        t[words ? words * (sizeof word - 1) - 1 : 0] = '\0';
        req->prompt = t;
        req->chat = NULL;
        size_t got = 0;
        if (idf2_request_tokens(m, req, &got, err) < 0)
            return -1;
        if (got == n)
            return 0;
        if (got > n && words < got - n)
            break;
        words = words + n - got;
    }
    snprintf(err->msg, sizeof err->msg, "no prompt of exactly %zu tokens from repeated \"%s\"", n,
             word);
    return -1;
}

/* Decode step seconds of the batch's last request (all its steps run with
 * the whole batch decoding); 0 without steps. */
static double step_s(const struct idf2_result *last)
{
    return last->n_ids > 1 ? last->decode_seconds / (double)(last->n_ids - 1) : 0;
}

/* The batch generated again: its decode step seconds, or -1 (said). */
static double regenerate(struct idf2_ctx *ctx, const struct idf2_request *reqs,
                         struct idf2_result *res, size_t B, const char *what, int k)
{
    for (size_t i = 0; i < B; i++)
        idf2_result_release(&res[i]);
    struct vc_err err = { 0 };
    if (idf2_ctx_generate(ctx, reqs, B, res, &err) < 0 || res[0].status < 0 ||
        res[B - 1].n_ids < 2) {
        fprintf(stderr, "%s round %d: %s\n", what, k, res[0].status < 0 ? res[0].err.msg : err.msg);
        return -1;
    }
    return step_s(&res[B - 1]);
}

/* --vs-stack: rounds of the batch generated again, then its decode steps'
 * count of matmul-only passes at B rows. */
static void vs_stack_rounds(struct idf2_ctx *ctx, const struct idf2_request *reqs,
                            struct idf2_result *res, size_t B, int rounds)
{
    const struct idf2_model *m = ctx->m;
    double whole = 0, stack = 0;
    int done = 0;
    for (int k = 1; k <= rounds; k++) {
        const double w = regenerate(ctx, reqs, res, B, "vs-stack", k);
        if (w < 0)
            return;
        const size_t steps = res[B - 1].n_ids - 1;
        const double t0 = bench_wall_s();
        for (size_t t = 0; t < steps; t++)
            idf2_text_matmuls(&ctx->ex, &m->w->text, m->cfg.model.text.num_hidden_layers, &ctx->ts,
                              B, ctx->logits);
        const double st = (bench_wall_s() - t0) / (double)steps;
        printf("RESULT engine_vs_stack batch=%zu round=%d whole_step_ms=%.1f "
               "stack_step_ms=%.1f ratio=%.3f\n",
               B, k, w * 1e3, st * 1e3, w / st);
        whole += w;
        stack += st;
        done++;
    }
    if (done)
        printf("RESULT engine_vs_stack batch=%zu rounds=%d whole_step_ms=%.1f "
               "stack_step_ms=%.1f ratio=%.3f\n",
               B, done, whole / done * 1e3, stack / done * 1e3, whole / stack);
    fflush(stdout);
}

/* --vs-apart: rounds of the batch generated with a matmul per matrix
 * (ts.apart), then with the stacked q|k|v and gate|up: both decode steps,
 * their ratio, and whether every request's tokens agreed. */
static void vs_apart_rounds(struct idf2_ctx *ctx, const struct idf2_request *reqs,
                            struct idf2_result *res, struct idf2_result *other, size_t B,
                            int rounds)
{
    double t[4] = { 0, 0, 0, 0 }; /* apart, stacked: whole steps, then matmuls alone */
    int done = 0;
    bool same = true;
    for (int k = 1; k <= rounds; k++) {
        /* Odd rounds apart first, even rounds stacked first: neither
         * always gets the machine as the other leaves it. */
        double st[2] = { 0, 0 }; /* apart, stacked */
        for (int j = 0; j < 2 && st[0] >= 0 && st[1] >= 0; j++) {
            const int apart = (j + k + 1) % 2 == 0;
            ctx->ts.apart = apart;
            st[!apart] = regenerate(ctx, reqs, apart ? other : res, B, "vs-apart", k);
        }
        const double a = st[0], f = st[1];
        if (a < 0 || f < 0)
            break;
        /* The weight matmuls alone (idf2_text_matmuls), as many passes of
         * each as the generation had decode steps, in turns. */
        double mm[2] = { 0, 0 };
        const size_t steps = res[B - 1].n_ids - 1;
        for (size_t p = 0; p < 2 * steps; p++) {
            const int apart = (int)((p + (size_t)k) % 2);
            ctx->ts.apart = apart;
            const double t0 = bench_wall_s();
            idf2_text_matmuls(&ctx->ex, &ctx->m->w->text, ctx->m->cfg.model.text.num_hidden_layers,
                              &ctx->ts, B, ctx->logits);
            mm[!apart] += (bench_wall_s() - t0) / (double)steps;
        }
        printf("RESULT engine_vs_apart batch=%zu round=%d matmuls apart_step_ms=%.1f "
               "stacked_step_ms=%.1f apart_over_stacked=%.3f\n",
               B, k, mm[0] * 1e3, mm[1] * 1e3, mm[0] / mm[1]);
        t[2] += mm[0];
        t[3] += mm[1];
        for (size_t i = 0; i < B; i++)
            same = same && res[i].n_ids == other[i].n_ids &&
                   !memcmp(res[i].ids, other[i].ids, res[i].n_ids * sizeof *res[i].ids);
        printf("RESULT engine_vs_apart batch=%zu round=%d apart_step_ms=%.1f "
               "stacked_step_ms=%.1f apart_over_stacked=%.3f\n",
               B, k, a * 1e3, f * 1e3, a / f);
        t[0] += a;
        t[1] += f;
        done++;
    }
    ctx->ts.apart = false;
    if (done) {
        printf("RESULT engine_vs_apart batch=%zu rounds=%d apart_step_ms=%.1f "
               "stacked_step_ms=%.1f apart_over_stacked=%.3f tokens %s\n",
               B, done, t[0] / done * 1e3, t[1] / done * 1e3, t[0] / t[1],
               same ? "same" : "DIFFER");
        printf("RESULT engine_vs_apart batch=%zu rounds=%d matmuls apart_step_ms=%.1f "
               "stacked_step_ms=%.1f apart_over_stacked=%.3f\n",
               B, done, t[2] / done * 1e3, t[3] / done * 1e3, t[2] / t[3]);
    }
    fflush(stdout);
}

/* A misspelt option must not pass silently: the figures would be of
 * another configuration than the command line says. */
static int usage(void)
{
    fprintf(stderr, "usage: bench_engine CKPT_DIR [--compute bf16|f32] [--threads N] "
                    "[--max-new N,..] [--sizes 378,980] [--cache] [--batch 1,16] "
                    "[--backend NAME] [--split] [--quant q8_0|q4_0] [--weights copy|map] "
                    "[--prompt-tokens N,..] [--vs-stack N] [--vs-apart N]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-')
        return usage();
    struct idf2_load_opts opts = { .compute = IDF2_COMPUTE_BF16, .n_threads = 0 };
    int split = 0, vs_stack = 0, vs_apart = 0;
    char sizes[64] = "378,980", batches[64] = "1", max_new_list[64] = "16", prompt_list[64] = "0";
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--compute") && i + 1 < argc) {
            const char *c = argv[++i];
            if (strcmp(c, "f32") && strcmp(c, "bf16"))
                return usage();
            opts.compute = !strcmp(c, "f32") ? IDF2_COMPUTE_F32 : IDF2_COMPUTE_BF16;
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            opts.n_threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--max-new") && i + 1 < argc)
            snprintf(max_new_list, sizeof max_new_list, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--prompt-tokens") && i + 1 < argc)
            snprintf(prompt_list, sizeof prompt_list, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--sizes") && i + 1 < argc)
            snprintf(sizes, sizeof sizes, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--cache"))
            opts.use_cache = true;
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            snprintf(batches, sizeof batches, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--backend") && i + 1 < argc)
            opts.backend = argv[++i];
        else if (!strcmp(argv[i], "--vs-stack") && i + 1 < argc)
            vs_stack = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--vs-apart") && i + 1 < argc)
            vs_apart = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--split"))
            split = 1;
        else if (!strcmp(argv[i], "--quant") && i + 1 < argc) {
            const char *q = argv[++i];
            if (strcmp(q, "q8_0") && strcmp(q, "q4_0"))
                return usage();
            opts.text_quant = !strcmp(q, "q8_0") ? IDF2_TEXT_QUANT_Q8_0 : IDF2_TEXT_QUANT_Q4_0;
        } else if (!strcmp(argv[i], "--weights") && i + 1 < argc) {
            if (!idf2_weights_place_parse(argv[++i], &opts.weights)) {
                fprintf(stderr, "--weights takes copy or map\n");
                return 2;
            }
        } else
            return usage();
    }
    const char *quant = opts.text_quant == IDF2_TEXT_QUANT_Q8_0   ? "q8_0"
                        : opts.text_quant == IDF2_TEXT_QUANT_Q4_0 ? "q4_0"
                                                                  : "none";
    struct idf2_model *m = NULL;
    struct vc_err err = { 0 };
    if (idf2_model_load(argv[1], &opts, &m, &err) < 0) {
        fprintf(stderr, "load: %s\n", err.msg);
        return 1;
    }
    struct idf2_load_report rep;
    idf2_model_report(m, &rep);
    printf("load %.2f s (%s compute), mapped %.2f GiB, converted %.2f GiB, cache read %d "
           "written %d, peak RSS %.2f GiB\n",
           rep.load_seconds, opts.compute == IDF2_COMPUTE_BF16 ? "bf16" : "f32",
           gib(rep.bytes_mapped), gib(rep.bytes_owned), rep.from_cache, rep.cache_written,
           gib(rep.peak_rss_bytes));
    printf("text weights copied %.2f GiB (%.2f GiB of arena in the kernels' packed layout; "
           "%.2f GiB in huge pages, %.2f of them at the copy's faults; %.2f GiB dropped from the "
           "page cache)%s%s%s%s\n",
           gib(rep.bytes_copied), gib(rep.bytes_text_packed), gib(rep.bytes_huge),
           gib(rep.bytes_huge_faulted), gib(rep.bytes_uncached), rep.weights_note[0] ? ": " : "",
           rep.weights_note, rep.huge_note[0] ? ": " : "", rep.huge_note);
    printf("text weights quantized at load %.2f GiB (%.2f GiB in huge pages, %.2f of them at the "
           "quantizer's faults)%s%s\n",
           gib(rep.bytes_quantized), gib(rep.bytes_quantized_huge),
           gib(rep.bytes_quantized_huge_faulted), rep.quant_huge_note[0] ? ": " : "",
           rep.quant_huge_note);
    printf("image weights packed %.2f GiB (%.2f GiB in huge pages)%s%s\n", gib(rep.bytes_packed),
           gib(rep.bytes_packed_huge), rep.pack_huge_note[0] ? ": " : "", rep.pack_huge_note);
    const char *where = opts.weights == IDF2_WEIGHTS_MAP ? "map" : "copy";
    struct idf2_model_info info;
    idf2_model_info(m, &info);
    printf("kernels %s, %d threads\n", info.backend, opts.n_threads);
    printf("%6s %5s %8s %8s %10s %12s %12s %10s %9s %10s %9s %8s\n", "px", "batch", "patches",
           "prompt", "vision s", "prefill t/s", "decode t/s", "generated", "wall s", "capt/hour",
           "step ms", "vs first");
    fflush(stdout);
    int status = 0;
    int nth = 0;
    for (char *save = NULL, *tok = strtok_r(sizes, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save), nth++) {
        const uint32_t s = (uint32_t)atoi(tok);
        const int max_new = list_at(max_new_list, nth),
                  n_prompt = s ? 0 : list_at(prompt_list, nth);
        uint8_t *png = NULL;
        size_t png_size = 0;
        if (s > 0 && make_png(s, &png, &png_size) < 0)
            return 1;
        struct idf2_image_bytes image = { png, png_size, NULL };
        struct idf2_request proto = {
            .images = s ? &image : NULL,
            .n_images = s ? 1 : 0,
            .chat = "Describe this image in one sentence.",
            .image_splitting = split,
            .gen = { .max_new_tokens = max_new },
        };
        char *prompt_text = NULL;
        if (n_prompt > 0 && exact_prompt(m, &proto, (size_t)n_prompt, &prompt_text, &err) < 0) {
            fprintf(stderr, "--prompt-tokens %d: %s\n", n_prompt, err.msg);
            return 1;
        }
        double first_step = 0;
        char blist[64];
        snprintf(blist, sizeof blist, "%s", batches);
        for (char *save2 = NULL, *bt = strtok_r(blist, ",", &save2); bt;
             bt = strtok_r(NULL, ",", &save2)) {
            const size_t B = (size_t)atoi(bt);
            struct idf2_request *reqs = calloc(B ? B : 1, sizeof *reqs);
            struct idf2_result *res = calloc(B ? B : 1, sizeof *res);
            for (size_t i = 0; i < B; i++)
                reqs[i] = proto;
            /* A context as idf2_generate_batch makes one (B slots, each as
             * long as a request), kept for its time figures. */
            size_t L = 0;
            struct idf2_ctx *ctx = NULL;
            struct idf2_ctx_stats cs = { 0 };
            const bool ok =
                B > 0 && idf2_request_tokens(m, &reqs[0], &L, &err) >= 0 &&
                idf2_ctx_new(
                    m, &(struct idf2_ctx_params){ .n_slots = (int)B, .n_ctx = (int)L + max_new },
                    &ctx, &err) >= 0;
            const double t0 = bench_wall_s();
            const long mf0 = major_faults(), nf0 = minor_faults();
            if (!ok || idf2_ctx_generate(ctx, reqs, B, res, &err) < 0 || res[0].status < 0) {
                fprintf(stderr, "generate at %u px, batch %zu: %s\n", s, B,
                        B ? (res[0].status < 0 ? res[0].err.msg : err.msg) : "bad --batch");
                status = 1;
            } else {
                const double wall = bench_wall_s() - t0;
                /* The first token comes out of the prefill; each later one is
                 * a decode step. */
                const struct idf2_result *r = &res[0], *last = &res[B - 1];
                const double prefill = (double)r->n_prompt_tokens / r->prefill_seconds;
                const double decode = r->n_ids > 1 && r->decode_seconds > 0
                                          ? (double)(r->n_ids - 1) / r->decode_seconds
                                          : 0;
                const double step = step_s(last);
                if (first_step == 0)
                    first_step = step;
                const unsigned side = s / 14; /* whole 14-px patches */
                printf("%6u %5zu %8u %8zu %10.2f %12.1f %12.2f %10zu %9.1f %10.0f %9.1f %8.2f\n", s,
                       B, side * side, r->n_prompt_tokens, r->vision_seconds, prefill, decode,
                       r->n_ids, wall, (double)B / wall * 3600.0, step * 1e3,
                       first_step > 0 ? step / first_step : 0);
                idf2_ctx_stats(ctx, &cs);
                printf("RESULT engine kernels=%s quant=%s weights=%s threads=%d px=%u split=%d "
                       "batch=%zu prompt_tokens=%zu vision_s=%.3f prefill_tps=%.2f "
                       "decode_tps=%.3f step_ms=%.1f step_vs_first=%.2f captions_per_hour=%.0f "
                       "wall_s=%.1f vision_total_s=%.1f vision_passes=%zu prefill_total_s=%.1f "
                       "decode_total_s=%.1f mixed_total_s=%.1f majflt=%ld minflt=%ld",
                       info.backend, quant, where, opts.n_threads, s, split, B, r->n_prompt_tokens,
                       r->vision_seconds, prefill, decode, step * 1e3,
                       first_step > 0 ? step / first_step : 0, (double)B / wall * 3600.0, wall,
                       cs.vision_seconds, cs.vision_passes, cs.prefill.seconds, cs.decode.seconds,
                       cs.mixed.seconds, major_faults() - mf0, minor_faults() - nf0);
                /* Each kind of decoder pass: count, token rows, the FLOP rate
                 * of the layers' matmuls. */
                const struct idf2_pass_stats *kinds[3] = { &cs.prefill, &cs.decode, &cs.mixed };
                static const char *const names[3] = { "prefill", "decode", "mixed" };
                for (int k = 0; k < 3; k++)
                    printf(" %s_passes=%zu %s_rows=%zu %s_gflops=%.0f", names[k], kinds[k]->passes,
                           names[k], kinds[k]->rows, names[k],
                           kinds[k]->seconds > 0 ? (double)kinds[k]->rows * info.text_row_flops /
                                                       kinds[k]->seconds * 1e-9
                                                 : 0);
                printf("\n");
                fflush(stdout);
                if (s == 0)
                    vs_stack_rounds(ctx, reqs, res, B, vs_stack);
                if (s == 0 && vs_apart > 0) {
                    struct idf2_result *other = calloc(B, sizeof *other);
                    if (other)
                        vs_apart_rounds(ctx, reqs, res, other, B, vs_apart);
                    for (size_t i = 0; other && i < B; i++)
                        idf2_result_release(&other[i]);
                    free(other);
                }
            }
            idf2_ctx_free(ctx);
            for (size_t i = 0; i < B; i++)
                idf2_result_release(&res[i]);
            free(reqs);
            free(res);
        }
        free(png);
        free(prompt_text);
    }
    idf2_model_free(m);
    return status;
}
