/* Benchmark of the model stages against the engine called directly:
 *
 *   captions/hour: the same N images (378 px squares, procedurally
 *   painted PNGs) captioned (1) by idf2_generate_batch in batches of B
 *   and (2) by a `vlmcurate run` of a webdataset shard of them through
 *   the caption stage at batch B (in process: spec_parse + exec_run, its
 *   MAP phase timed; the model load is in both cases outside the timing).
 *   The overhead is (2)/(1) - 1; the target is at most 5 %.
 *
 *   OCR pages/s: the pages of a PDF rendered by the pdf source, read by
 *   the ocr stage with Tesseract and with the engine (OCR prompt, image
 *   splitting on), both through exec_run.
 *
 * Every figure comes from one process run, so the ratios compare like with
 * like; the caption paths run interleaved, best of 3 each.  The engine uses --threads OpenMP
 * threads in both paths.
 *
 * usage: bench_caption --model DIR [--images N (32)] [--max-new T (16)] [--threads T (1)]
 *                      [--pdf FILE] [--pages P (2)] [--work DIR (/tmp/bench-caption)]
 * Output folders are WORK/out-PID-*, left for inspection (delete WORK after).
 * --model: a checkpoint folder: the real-size random one of bench_mkcheckpoint
 * for the README's figures, ../shared/fixtures/idefics2-tiny for a smoke run. */
#include "core/img.h"
#include "core/vc_fs.h"
#include "core/vc_mem.h"
#include "pipeline/exec.h"
#include "pipeline/progress.h"
#include "pipeline/spec.h"
#include "synth/idefics2.h"

#include <cjson/cJSON.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SIDE 378
#define REPS 3

struct opts {
    const char *model, *pdf, *work;
    int images, max_new, threads, pages;
};

static double now_s(void)
{
    return (double)progress_now_ns() * 1e-9;
}

static _Noreturn void die(const char *what, const struct vc_err *e)
{
    fprintf(stderr, "bench_caption: %s: %s\n", what, e ? e->msg : "failed");
    exit(1);
}

/* Gradients and stripes, different per image, so no two inputs are alike. */
static uint8_t *paint_png(int k, size_t *size)
{
    struct img im = { .w = SIDE, .h = SIDE, .ch = 3, .pixels = malloc((size_t)SIDE * SIDE * 3) };
    if (!im.pixels)
        die("paint", NULL);
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++) {
            uint8_t *p = im.pixels + ((size_t)y * SIDE + x) * 3;
            p[0] = (uint8_t)(x * 255 / SIDE + k * 37);
            p[1] = (uint8_t)(y * 255 / SIDE + k * 11);
            p[2] = (uint8_t)(((x / (8 + k % 5)) ^ (y / 9)) & 1 ? 220 : 40);
        }
    uint8_t *png = NULL;
    struct vc_err err = { 0 };
    if (img_encode(&im, IMG_FORMAT_PNG, 0, &png, size, &err) < 0)
        die("encode", &err);
    free(im.pixels);
    return png;
}

/* A ustar member: header (name, size, checksum) + data padded to 512. */
static void tar_member(FILE *f, const char *name, const void *data, size_t n)
{
    char h[512] = { 0 };
    snprintf(h, 100, "%s", name);
    memcpy(h + 100, "0000644", 8);
    memcpy(h + 108, "0000000", 8);
    memcpy(h + 116, "0000000", 8);
    snprintf(h + 124, 12, "%011llo", (unsigned long long)n);
    memcpy(h + 136, "00000000000", 12);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += (unsigned char)h[i];
    snprintf(h + 148, 8, "%06o", sum);
    fwrite(h, 1, 512, f);
    fwrite(data, 1, n, f);
    static const char zeros[512];
    fwrite(zeros, 1, (512 - n % 512) % 512, f);
}

/* Runs spec text through exec_run; the MAP phase's seconds. */
static double run_spec(const char *text, const struct opts *o, const char *out, uint64_t *written)
{
    struct spec_overrides ov = { .out_dir = out, .threads = o->threads };
    struct spec *sp = NULL;
    struct vc_err err = { 0 };
    if (spec_parse(text, strlen(text), o->work, &ov, &sp, &err) < 0)
        die("spec", &err);
    struct exec_opts eo = { .force = true };
    struct exec_result res = { 0 };
    if (exec_run(sp, &eo, &res, &err) < 0)
        die("run", &err);
    spec_free(sp);
    *written = res.totals.written;
    return res.seconds_map;
}

static void captions(const struct opts *o, int batch, uint8_t **png, size_t *png_size,
                     struct idf2_model *m)
{
    const char *prompt = "Describe this image in one sentence.";
    struct idf2_image_bytes *imgs = calloc((size_t)o->images, sizeof *imgs);
    struct idf2_request *reqs = calloc((size_t)o->images, sizeof *reqs);
    struct idf2_result *res = calloc((size_t)o->images, sizeof *res);
    size_t tokens = 0;
    for (int i = 0; i < o->images; i++) {
        imgs[i] = (struct idf2_image_bytes){ png[i], png_size[i], NULL };
        reqs[i] = (struct idf2_request){ .images = &imgs[i],
                                         .n_images = 1,
                                         .chat = prompt,
                                         .image_splitting = 0,
                                         .gen = { .max_new_tokens = o->max_new } };
    }
    struct vc_err err = { 0 };
    char spec[2048], out[1100];
    snprintf(spec, sizeof spec,
             "{\"sources\": [{\"name\": \"b\", \"type\": \"webdataset\", \"urls\": "
             "\"images.tar\"}], \"stages\": [{\"stage\": \"caption\", \"model\": \"%s\", "
             "\"max_new_tokens\": %d, \"batch\": %d, \"image_splitting\": false}], "
             "\"output\": {\"prefix\": \"b\"}}",
             o->model, o->max_new, batch);
    /* Interleaved, best of REPS each: a busy machine slows whichever path
     * it happens to hit, the minimum is what the path costs. */
    double direct = 1e300, stage = 1e300;
    uint64_t written = 0;
    for (int rep = 0; rep < REPS; rep++) {
        double t0 = now_s();
        for (int i = 0; i < o->images; i += batch) {
            size_t n = (size_t)(i + batch <= o->images ? batch : o->images - i);
            if (idf2_generate_batch(m, reqs + i, n, res + i, &err) < 0)
                die("generate", &err);
        }
        double d = now_s() - t0;
        direct = d < direct ? d : direct;
        tokens = 0;
        for (int i = 0; i < o->images; i++) {
            tokens += res[i].n_ids;
            idf2_result_release(&res[i]);
        }
        /* A fresh output folder: an old one would resume, not recompute. */
        snprintf(out, sizeof out, "%s/out-%d-b%d-r%d", o->work, (int)getpid(), batch, rep);
        double s = run_spec(spec, o, out, &written);
        stage = s < stage ? s : stage;
    }
    printf("captions, batch %2d, %d images of %dx%d, %zu tokens: direct %.2f s (%.0f "
           "captions/h), stage %.2f s (%.0f captions/h, %llu written): overhead %+.1f %%\n",
           batch, o->images, SIDE, SIDE, tokens, direct, o->images * 3600.0 / direct, stage,
           o->images * 3600.0 / stage, (unsigned long long)written, (stage / direct - 1.0) * 100.0);
    free(imgs);
    free(reqs);
    free(res);
}

static void ocr(const struct opts *o)
{
    char spec[2048], out[1100];
    double secs[2];
    uint64_t pages[2];
    for (int k = 0; k < 2; k++) {
        snprintf(spec, sizeof spec,
                 "{\"sources\": [{\"name\": \"p\", \"type\": \"pdf\", \"urls\": \"%s\", \"dpi\": "
                 "150, \"last_page\": %d}], \"stages\": [{\"stage\": \"ocr\", %s%s%s%s "
                 "\"max_new_tokens\": %d}], \"output\": {\"prefix\": \"o\"}}",
                 o->pdf, o->pages, k ? "\"model\": \"" : "\"engine\": \"tesseract\"",
                 k ? o->model : "", k ? "\"" : "", k ? "," : ",", o->max_new);
        snprintf(out, sizeof out, "%s/out-%d-ocr%d", o->work, (int)getpid(), k);
        secs[k] = run_spec(spec, o, out, &pages[k]);
    }
    printf("ocr, %llu pages of %s at 150 dpi: tesseract %.2f pages/s, engine (%d new tokens, "
           "splitting on) %.3f pages/s: tesseract %.1fx faster\n",
           (unsigned long long)pages[0], o->pdf, (double)pages[0] / secs[0], o->max_new,
           (double)pages[1] / secs[1], (secs[1] / (double)pages[1]) / (secs[0] / (double)pages[0]));
}

int main(int argc, char **argv)
{
    struct opts o = { .images = 32,
                      .max_new = 16,
                      .threads = 1,
                      .pages = 2,
                      .work = "/tmp/bench-caption",
                      .pdf = "/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf" };
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model"))
            o.model = argv[i + 1];
        else if (!strcmp(argv[i], "--images"))
            o.images = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-new"))
            o.max_new = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            o.threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--pdf"))
            o.pdf = argv[i + 1];
        else if (!strcmp(argv[i], "--pages"))
            o.pages = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--work"))
            o.work = argv[i + 1];
    }
    if (!o.model || o.images < 1 || o.max_new < 1 || o.threads < 1 || o.pages < 1) {
        fprintf(stderr, "usage: bench_caption --model DIR [--images N] [--max-new T] "
                        "[--threads T] [--pdf FILE] [--pages P] [--work DIR]\n");
        return 2;
    }
    omp_set_num_threads(o.threads);
    struct vc_err err = { 0 };
    if (vc_fs_mkdirs(o.work, &err) < 0)
        die(o.work, &err);
    uint8_t **png = calloc((size_t)o.images, sizeof *png);
    size_t *png_size = calloc((size_t)o.images, sizeof *png_size);
    char path[1100];
    snprintf(path, sizeof path, "%s/images.tar", o.work);
    FILE *f = fopen(path, "wb");
    if (!f || !png || !png_size)
        die(path, NULL);
    for (int i = 0; i < o.images; i++) {
        png[i] = paint_png(i, &png_size[i]);
        char name[32];
        snprintf(name, sizeof name, "img%06d.png", i);
        tar_member(f, name, png[i], png_size[i]);
    }
    static const char end[1024];
    fwrite(end, 1, sizeof end, f);
    if (fclose(f) != 0)
        die(path, NULL);

    struct idf2_load_opts lo = { .compute = IDF2_COMPUTE_F32, .n_threads = o.threads };
    struct idf2_model *m = NULL;
    if (idf2_model_load(o.model, &lo, &m, &err) < 0)
        die(o.model, &err);
    printf("model %s, %d thread(s), max_new_tokens %d\n", o.model, o.threads, o.max_new);
    captions(&o, 1, png, png_size, m);
    captions(&o, 16, png, png_size, m);
    idf2_model_free(m);
    ocr(&o);
    for (int i = 0; i < o.images; i++)
        free(png[i]);
    free(png);
    free(png_size);
    return 0;
}
