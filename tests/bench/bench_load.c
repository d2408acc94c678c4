/* Benchmark of the checkpoint loader alone: config, tokenizer, safetensors
 * headers, the weight view (with conversion when the compute dtype differs
 * from the stored one), then one pass touching every weight page (what the
 * first forward pass would pay), reporting seconds, bytes mapped/converted
 * and peak RSS at each step.  Run it on the real-size checkpoint written by
 * bench_mkcheckpoint (bf16 for the zero-copy path, f32 for the
 * convert-at-load path that must fit a 24 GiB machine).
 *
 * usage: bench_load CKPT_DIR [--compute bf16|f32] [--cache] [--no-touch] */
#include "bench_clock.h"
#include "synth/idf2_config.h"
#include "synth/idf2_tokenizer.h"
#include "synth/idf2_weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double gib(size_t b)
{
    return (double)b / (double)(1u << 30);
}

static void report(const char *step, double secs)
{
    printf("%-28s %8.3f s   rss %6.2f GiB   peak rss %6.2f GiB\n", step, secs,
           gib(idf2_rss_bytes()), gib(idf2_peak_rss_bytes()));
    fflush(stdout);
}

/* Reads one byte per 4 KiB page of a matrix; returns a checksum so the
 * reads cannot be optimised away. */
static unsigned touch(const struct idf2_w *w, size_t *bytes)
{
    size_t n = idf2_w_bytes(w);
    const unsigned char *p = w->data;
    unsigned sum = 0;
    for (size_t i = 0; i < n; i += 4096)
        sum += p[i];
    *bytes += n;
    return sum;
}

static unsigned touch_all(const struct idf2_weights *w, const struct idf2_model_config *m,
                          size_t *bytes)
{
    unsigned s = touch(&w->vision.patch, bytes);
    for (int i = 0; i < m->vision.num_hidden_layers; i++) {
        const struct idf2_vision_layer *l = &w->vision.layers[i];
        s += touch(&l->q, bytes) + touch(&l->k, bytes) + touch(&l->v, bytes) + touch(&l->o, bytes) +
             touch(&l->fc1, bytes) + touch(&l->fc2, bytes);
    }
    const struct idf2_connector_weights *c = &w->connector;
    s += touch(&c->mp_gate, bytes) + touch(&c->mp_up, bytes) + touch(&c->mp_down, bytes);
    for (int j = 0; j < m->perceiver.depth; j++) {
        const struct idf2_perceiver_layer *l = &c->layers[j];
        s += touch(&l->q, bytes) + touch(&l->k, bytes) + touch(&l->v, bytes) + touch(&l->o, bytes) +
             touch(&l->gate, bytes) + touch(&l->up, bytes) + touch(&l->down, bytes);
    }
    s += touch(&w->text.embed, bytes) + touch(&w->text.lm_head, bytes);
    for (int i = 0; i < m->text.num_hidden_layers; i++) {
        const struct idf2_text_layer *l = &w->text.layers[i];
        s += touch(&l->q, bytes) + touch(&l->k, bytes) + touch(&l->v, bytes) + touch(&l->o, bytes) +
             touch(&l->gate, bytes) + touch(&l->up, bytes) + touch(&l->down, bytes);
    }
    return s;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: bench_load CKPT_DIR [--compute bf16|f32] [--cache] [--no-touch]\n");
        return 2;
    }
    const char *dir = argv[1];
    struct idf2_weights_opts opts = { ST_BF16, IDF2_CACHE_OFF };
    int do_touch = 1;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--compute") && i + 1 < argc)
            opts.compute = strcmp(argv[++i], "f32") == 0 ? ST_F32 : ST_BF16;
        else if (!strcmp(argv[i], "--cache"))
            opts.cache = IDF2_CACHE_USE;
        else if (!strcmp(argv[i], "--no-touch"))
            do_touch = 0;
    }
    struct vc_err err = { 0 };
    struct idf2_config cfg;
    double t = bench_wall_s();
    if (idf2_config_load_dir(dir, &cfg, &err) < 0) {
        fprintf(stderr, "config: %s\n", err.msg);
        return 1;
    }
    report("configs", bench_wall_s() - t);

    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    struct idf2_tokenizer *tok = NULL;
    t = bench_wall_s();
    if (idf2_tokenizer_load(path, &tok, &err) < 0) {
        fprintf(stderr, "tokenizer: %s\n", err.msg);
        return 1;
    }
    report("tokenizer.json", bench_wall_s() - t);
    printf("  %d ids\n", idf2_tokenizer_n_ids(tok));

    struct idf2_weights *w = NULL;
    t = bench_wall_s();
    if (idf2_weights_load(dir, &cfg.model, &opts, &w, &err) < 0) {
        fprintf(stderr, "weights: %s\n", err.msg);
        return 1;
    }
    double load_s = bench_wall_s() - t;
    report(opts.compute == ST_BF16 ? "weights (compute bf16)" : "weights (compute f32)", load_s);
    printf("  mapped in place %.2f GiB, converted %.2f GiB, from cache %d, cache written %d\n",
           gib(w->bytes_mapped), gib(w->bytes_owned), w->from_cache, w->cache_written);
    if (do_touch) {
        size_t bytes = 0;
        t = bench_wall_s();
        unsigned sum = touch_all(w, &cfg.model, &bytes);
        double secs = bench_wall_s() - t;
        report("touch every weight page", secs);
        printf("  %.2f GiB of matrices, %.2f GB/s (checksum %u)\n", gib(bytes),
               (double)bytes * 1e-9 / secs, sum);
    }
    idf2_weights_free(w);
    idf2_tokenizer_free(tok);
    idf2_config_release(&cfg);
    printf("peak RSS %.2f GiB\n", gib(idf2_peak_rss_bytes()));
    return 0;
}
