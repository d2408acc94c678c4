/* idf2_image against the fixture's expected.safetensors: for every case,
 * pixel_values, pixel_attention_mask and patch_attention_mask exactly,
 * starting from the reference's decoded pixels (image.<file>.rgb) so that
 * preprocessing is tested apart from decoding; then the same starting from
 * our own decoder, and the decoder's pixels against the reference's.  Both
 * use libjpeg-turbo's default (islow) IDCT, so the JPEG is held to exact
 * too, although the README would tolerate a level or two between
 * different JPEG libraries.  Small hand-worked resamples and target sizes pin the
 * arithmetic independently of the fixture. */
#include <cjson/cJSON.h>
#include <stdlib.h>

#include "synth/idf2_config.h"
#include "synth/idf2_image.h"
#include "synth/safetensors.h"
#include "tests/unit/vc_test.h"

struct fixture {
    struct idf2_config cfg;
    struct st_file *expected;
    cJSON *cases;
};

static bool fixture_open(struct fixture *f)
{
    struct vc_err err = { 0 };
    memset(f, 0, sizeof *f);
    size_t n;
    unsigned char *data = vc_test_read_file(vc_test_fixture("idefics2-tiny/cases.json"), &n);
    f->cases = data ? cJSON_ParseWithLength((const char *)data, n) : NULL;
    free(data);
    if (idf2_config_load_dir(vc_test_fixture("idefics2-tiny"), &f->cfg, &err) != VC_OK ||
        st_file_open(vc_test_fixture("idefics2-tiny/expected.safetensors"), &f->expected, &err) !=
            VC_OK ||
        !f->cases) {
        fprintf(stderr, "fixture: %s\n", err.msg);
        vc_test_failures++;
        return false;
    }
    return true;
}

static void fixture_close(struct fixture *f)
{
    cJSON_Delete(f->cases);
    st_file_close(f->expected);
    idf2_config_release(&f->cfg);
}

/* Tensor data in a .safetensors file need not be aligned: read by memcpy. */
static int64_t i64_at(const struct st_tensor *t, size_t i)
{
    int64_t v;
    memcpy(&v, (const char *)t->data + 8 * i, 8);
    return v;
}

static const struct st_tensor *tensor(const struct fixture *f, const char *name, const char *suffix)
{
    char full[512];
    snprintf(full, sizeof full, "%s.%s", name, suffix);
    const struct st_tensor *t = st_file_find(f->expected, full);
    if (!t) {
        fprintf(stderr, "expected.safetensors lacks %s\n", full);
        vc_test_failures++;
    }
    return t;
}

/* The reference's decoded RGB of images/<file>, as a borrowed struct img. */
static struct img golden_rgb(const struct fixture *f, const char *path)
{
    const char *file = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char name[256];
    snprintf(name, sizeof name, "image.%s", file);
    const struct st_tensor *t = tensor(f, name, "rgb");
    struct img im = { 0 };
    if (t && t->dtype == ST_U8 && t->n_dims == 3 && t->shape[2] == 3)
        im = (struct img){ (uint32_t)t->shape[1], (uint32_t)t->shape[0], 3, (uint8_t *)t->data, 0 };
    return im;
}

/* Compares our batch with <case>.pixel_values / pixel_attention_mask /
 * patch_attention_mask and the resized sizes listed in cases.json. */
static void compare_case(const struct fixture *f, const cJSON *c, const struct idf2_pixels *px)
{
    const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
    const struct st_tensor *pv = tensor(f, name, "pixel_values");
    const struct st_tensor *pm = tensor(f, name, "pixel_attention_mask");
    const struct st_tensor *patch = tensor(f, name, "patch_attention_mask");
    if (!pv || !pm || !patch)
        return;
    CHECK_INT(px->n_images, pv->shape[1]);
    CHECK_INT(px->height, pv->shape[3]);
    CHECK_INT(px->width, pv->shape[4]);
    if ((int64_t)px->n_images != pv->shape[1] || px->height != pv->shape[3] ||
        px->width != pv->shape[4])
        return;
    size_t n_vals = (size_t)pv->n_elems, n_bad = 0;
    double max_diff = 0;
    for (size_t i = 0; i < n_vals; i++) {
        double d = fabs((double)px->values[i] - (double)st_get_f32(pv, (int64_t)i));
        n_bad += d != 0.0;
        max_diff = d > max_diff ? d : max_diff;
    }
    if (n_bad)
        fprintf(stderr, "%s: %zu of %zu pixel values differ (max %g)\n", name, n_bad, n_vals,
                max_diff);
    CHECK_INT(n_bad, 0);
    size_t mask_bad = 0;
    for (size_t i = 0; i < (size_t)pm->n_elems; i++)
        mask_bad += px->mask[i] != i64_at(pm, i);
    CHECK_INT(mask_bad, 0);

    struct vc_err err = { 0 };
    uint8_t *pmask = NULL;
    uint32_t gh = 0, gw = 0;
    CHECK_INT(idf2_pixels_patch_mask(px, f->cfg.model.vision.patch_size, &pmask, &gh, &gw, &err),
              VC_OK);
    CHECK_INT(gh, patch->shape[1]);
    CHECK_INT(gw, patch->shape[2]);
    size_t patch_bad = 0;
    for (size_t i = 0; pmask && i < (size_t)patch->n_elems; i++)
        patch_bad += pmask[i] != i64_at(patch, i);
    CHECK_INT(patch_bad, 0);
    free(pmask);

    const cJSON *sizes = cJSON_GetObjectItem(c, "resized_sizes_hw");
    CHECK_INT(cJSON_GetArraySize(sizes), px->n_images);
    for (size_t i = 0; i < px->n_images && i < (size_t)cJSON_GetArraySize(sizes); i++) {
        const cJSON *hw = cJSON_GetArrayItem(sizes, (int)i);
        CHECK_INT(px->real_h[i], cJSON_GetArrayItem(hw, 0)->valuedouble);
        CHECK_INT(px->real_w[i], cJSON_GetArrayItem(hw, 1)->valuedouble);
    }
}

/* Runs every image case, from the golden RGB or from our decoder. */
static void run_cases(bool from_decoder)
{
    struct fixture f;
    if (!fixture_open(&f))
        return;
    int n_run = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(f.cases, "cases"))
    {
        const cJSON *images = cJSON_GetObjectItem(c, "images");
        size_t n = (size_t)cJSON_GetArraySize(images);
        if (n == 0)
            continue;
        struct img ims[8] = { 0 };
        bool usable = n <= 8;
        for (size_t i = 0; usable && i < n; i++) {
            const char *path = cJSON_GetArrayItem(images, (int)i)->valuestring;
            if (!from_decoder) {
                ims[i] = golden_rgb(&f, path);
                usable = ims[i].pixels != NULL;
                continue;
            }
            char rel[512];
            snprintf(rel, sizeof rel, "idefics2-tiny/%s", path);
            size_t size;
            unsigned char *bytes = vc_test_read_file(vc_test_fixture(rel), &size);
            struct vc_err err = { 0 };
            if (bytes) {
                CHECK_INT(idf2_image_decode(bytes, size, NULL, &ims[i], &err), VC_OK);
                free(bytes);
            }
            usable = ims[i].pixels != NULL;
        }
        if (usable) {
            struct idf2_preproc_config cfg = f.cfg.preproc;
            cfg.do_image_splitting = cJSON_IsTrue(cJSON_GetObjectItem(c, "do_image_splitting"));
            struct idf2_pixels px;
            struct vc_err err = { 0 };
            CHECK_INT(idf2_image_preprocess(&cfg, ims, n, &px, &err), VC_OK);
            if (px.values)
                compare_case(&f, c, &px);
            idf2_pixels_free(&px);
            n_run++;
        }
        for (size_t i = 0; from_decoder && i < n; i++)
            img_release(&ims[i]);
    }
    CHECK_INT(n_run, 5); /* every case with images */
    fixture_close(&f);
}

TEST(cases_from_reference_rgb)
{
    run_cases(false);
}

TEST(cases_from_our_decoder)
{
    run_cases(true);
}

TEST(decoder_matches_reference_rgb)
{
    struct fixture f;
    if (!fixture_open(&f))
        return;
    static const char *files[] = { "photo_100x70.png", "tall_61x97.jpg", "wide_300x40.png",
                                   "small_20x15.png",  "rgba_45x33.png", "square_200x200.png" };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "idefics2-tiny/images/%s", files[i]);
        size_t size;
        unsigned char *bytes = vc_test_read_file(vc_test_fixture(rel), &size);
        struct img im = { 0 };
        struct vc_err err = { 0 };
        CHECK(bytes != NULL);
        if (!bytes)
            continue;
        CHECK_INT(idf2_image_decode(bytes, size, NULL, &im, &err), VC_OK);
        free(bytes);
        struct img want = golden_rgb(&f, files[i]);
        CHECK(want.pixels && im.pixels && im.w == want.w && im.h == want.h && im.ch == 3);
        if (want.pixels && im.pixels && im.w == want.w && im.h == want.h) {
            size_t n = (size_t)im.w * im.h * 3, n_bad = 0;
            int max_diff = 0;
            for (size_t k = 0; k < n; k++) {
                int d = abs((int)im.pixels[k] - (int)want.pixels[k]);
                n_bad += d != 0;
                max_diff = d > max_diff ? d : max_diff;
            }
            if (n_bad)
                fprintf(stderr, "%s: %zu bytes differ (max %d)\n", files[i], n_bad, max_diff);
            CHECK_INT(n_bad, 0);
        }
        img_release(&im);
    }
    fixture_close(&f);
}

TEST(target_sizes_by_hand)
{
    static const struct {
        uint32_t w, h, longest, shortest, want_w, want_h;
    } cases[] = {
        /* SPEC §4.3: 1029x420, L 980: trunc(980 / 2.45) = 399 in doubles
         * (the exact quotient is 400), at or above the shortest side. */
        { 1029, 420, 980, 378, 980, 399 },
        { 1029, 420, 980, 100, 980, 399 },
        /* SPEC §13: 1000x800 -> 980 x trunc(980/1.25) = 784. */
        { 1000, 800, 980, 378, 980, 784 },
        /* Small images are enlarged per axis, distorting the aspect. */
        { 20, 15, 84, 28, 28, 28 },
        { 300, 40, 84, 28, 84, 28 },
        /* Tall: h = L, w = trunc(L * 61/97) = trunc(52.82) = 52. */
        { 61, 97, 84, 28, 52, 84 },
        /* Below L on both sides: untouched. */
        { 500, 400, 980, 378, 500, 400 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t w, h;
        idf2_image_target_size(cases[i].w, cases[i].h, cases[i].longest, cases[i].shortest, &w, &h);
        CHECK_INT(w, cases[i].want_w);
        CHECK_INT(h, cases[i].want_h);
    }
}

TEST(resample_by_hand)
{
    struct vc_err err = { 0 };
    /* One row 0, 100, 200, 255 (grey) shrunk to 2 pixels.  scale 2,
     * support 2.  Output 0: centre 1.0, taps x = 0..2 with triangle weights
     * 0.75, 0.75, 0.25 / 1.75 -> k = 1797559, 1797559, 599186; acc =
     * 2^21 + 100*1797559 + 200*599186 = 301690252 -> >> 22 = 71.
     * Output 1: centre 3.0, taps 1..3 weights 0.25, 0.75, 0.75 ->
     * acc = 2^21 + 100*599186 + 200*1797559 + 255*1797559 = 879905097
     * -> 209. */
    uint8_t row[12] = { 0, 0, 0, 100, 100, 100, 200, 200, 200, 255, 255, 255 };
    struct img in = { 4, 1, 3, row, 0 }, out;
    CHECK_INT(idf2_image_resize(&in, 2, 1, &out, &err), VC_OK);
    CHECK_INT(out.pixels[0], 71);
    CHECK_INT(out.pixels[3], 209);
    CHECK_INT(out.pixels[1], out.pixels[0]);
    img_release(&out);
    /* Enlarging 2 -> 4 (scale 0.5, support 1), taps at x + 0.5 - centre:
     * output 0 (centre 0.25) sees only pixel 0 -> 0; output 1 (centre 0.75)
     * weighs 0.75 * 0 + 0.25 * 100 -> 2^21 + 100 * 2^20 >> 22 = 25;
     * output 2 (centre 1.25) 0.25 * 0 + 0.75 * 100 -> 75; output 3 sees
     * only pixel 1 -> 100. */
    uint8_t two[6] = { 0, 0, 0, 100, 100, 100 };
    struct img in2 = { 2, 1, 3, two, 0 };
    CHECK_INT(idf2_image_resize(&in2, 4, 1, &out, &err), VC_OK);
    CHECK_INT(out.pixels[0], 0);
    CHECK_INT(out.pixels[3], 25);
    CHECK_INT(out.pixels[6], 75);
    CHECK_INT(out.pixels[9], 100);
    img_release(&out);
    /* Vertical only: a 1x2 column gets the same numbers. */
    struct img col = { 1, 2, 3, two, 0 };
    CHECK_INT(idf2_image_resize(&col, 1, 4, &out, &err), VC_OK);
    CHECK_INT(out.pixels[3], 25);
    CHECK_INT(out.pixels[6], 75);
    img_release(&out);
    /* Same size: an exact copy, no filtering. */
    CHECK_INT(idf2_image_resize(&in, 4, 1, &out, &err), VC_OK);
    CHECK(memcmp(out.pixels, row, sizeof row) == 0);
    img_release(&out);
    CHECK_INT(idf2_image_resize(&in, 0, 1, &out, &err), VC_EUSAGE);
}

TEST(bad_inputs_refused)
{
    struct vc_err err = { 0 };
    struct idf2_preproc_config cfg = { .do_resize = true,
                                       .do_rescale = true,
                                       .do_normalize = true,
                                       .do_pad = true,
                                       .do_image_splitting = true,
                                       .longest_edge = 84,
                                       .shortest_edge = 28,
                                       .resample = 2,
                                       .rescale_factor = 1.0 / 255,
                                       .image_mean = { 0.5, 0.5, 0.5 },
                                       .image_std = { 0.5, 0.5, 0.5 } };
    uint8_t px[16] = { 0 };
    struct img one = { 1, 1, 3, px, 0 }, rgba = { 2, 2, 4, px, 0 };
    struct idf2_pixels out;
    /* A 1-pixel side cannot be split (an empty crop). */
    CHECK_INT(idf2_image_preprocess(&cfg, &one, 1, &out, &err), VC_ESAMPLE);
    CHECK(out.values == NULL);
    CHECK_INT(idf2_image_preprocess(&cfg, &rgba, 1, &out, &err), VC_ESAMPLE);
    CHECK_INT(idf2_image_preprocess(&cfg, &one, 0, &out, &err), VC_EUSAGE);
    cfg.do_image_splitting = false;
    cfg.resample = 3;
    CHECK_INT(idf2_image_preprocess(&cfg, &one, 1, &out, &err), VC_EUSAGE);
    cfg.resample = 2;
    /* Unsplit 1x1 -> 28x28, all one value: (0/255 - 0.5)/0.5 = -1. */
    CHECK_INT(idf2_image_preprocess(&cfg, &one, 1, &out, &err), VC_OK);
    CHECK_INT(out.height, 28);
    CHECK_INT(out.width, 28);
    CHECK(out.values && out.values[0] == -1.0f && out.values[3 * 28 * 28 - 1] == -1.0f);
    idf2_pixels_free(&out);
    /* Corrupt bytes are a decode error, not a crash. */
    struct img im;
    CHECK(idf2_image_decode((const uint8_t *)"\x89PNG\r\n\x1a\n", 8, NULL, &im, &err) < 0);
}

#define TESTS(X)                                                                                   \
    X(cases_from_reference_rgb)                                                                    \
    X(cases_from_our_decoder)                                                                      \
    X(decoder_matches_reference_rgb)                                                               \
    X(target_sizes_by_hand)                                                                        \
    X(resample_by_hand)                                                                            \
    X(bad_inputs_refused)
TEST_MAIN(TESTS)
