/* ocr_tess: the Tesseract backend.  Owns one TessBaseAPI per handle and
 * nothing else; the image decoding is core/img's. */
#include "ocr_tess.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/vc_dl.h"
#include "core/vc_mem.h"

/* capi.h declares some functions with empty parameter lists. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <tesseract/capi.h>
#pragma GCC diagnostic pop

/* Loaded at the first OCR handle (vc_dl): most runs never need it. */
// clang-format off
#define TESS_FNS(X, t)                                                                             \
    X(t, TessVersion) X(t, TessBaseAPICreate) X(t, TessBaseAPIInit3)                               \
    X(t, TessBaseAPISetVariable) X(t, TessBaseAPIEnd) X(t, TessBaseAPIDelete)                      \
    X(t, TessBaseAPISetImage) X(t, TessBaseAPIGetUTF8Text) X(t, TessBaseAPIClear)                  \
    X(t, TessDeleteText)
// clang-format on
static struct {
    TESS_FNS(VC_DL_MEMBER, )
} tess;
static const struct vc_dl_fn tess_fns[] = { TESS_FNS(VC_DL_ENTRY, tess) };
static struct vc_dl_lib tess_lib = VC_DL_LIB(VC_SONAME_TESSERACT, tess_fns);

struct ocr_tess {
    TessBaseAPI *api;
};

enum vc_status ocr_tess_new(const char *lang, struct ocr_tess **out, struct vc_err *err)
{
    *out = NULL;
    VC_TRY(vc_dl_load(&tess_lib, err));
    struct ocr_tess *t = calloc(1, sizeof *t);
    if (!t || !(t->api = tess.TessBaseAPICreate())) {
        free(t);
        return vc_err_oom(err);
    }
    /* Tesseract reports a missing language on stderr; the message we
     * return names it too. */
    if (tess.TessBaseAPIInit3(t->api, NULL, lang) != 0) {
        ocr_tess_free(t);
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "tesseract: no traineddata for language '%s' (install "
                          "tesseract-ocr-%s)",
                          lang, lang);
    }
    /* Its diagnostics ("Estimating resolution ...") would interleave with
     * the run's progress lines. */
    tess.TessBaseAPISetVariable(t->api, "debug_file", "/dev/null");
    *out = t;
    return VC_OK;
}

void ocr_tess_free(struct ocr_tess *t)
{
    if (!t)
        return;
    if (t->api) {
        tess.TessBaseAPIEnd(t->api);
        tess.TessBaseAPIDelete(t->api);
    }
    free(t);
}

enum vc_status ocr_tess_text(struct ocr_tess *t, const uint8_t *data, size_t size,
                             const struct img_limits *limits, char **text, struct vc_err *err)
{
    *text = NULL;
    struct img im = { 0 };
    VC_TRY(img_decode(data, size, limits, 0, &im, err));
    if (im.w > (uint32_t)INT32_MAX / 3) {
        img_release(&im);
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_image_too_large, "image %ux%u", im.w, im.h);
    }
    tess.TessBaseAPISetImage(t->api, im.pixels, (int)im.w, (int)im.h, im.ch, (int)(im.w * im.ch));
    /* Tesseract's LSTM asks OpenMP for 4 threads per text line: on a busy
     * machine the spinning teams cost 100x the work (measured: minutes per
     * page).  One thread per page; the pipeline runs pages in parallel. */
    const int levels = omp_get_max_active_levels();
    omp_set_max_active_levels(0);
    char *out = tess.TessBaseAPIGetUTF8Text(t->api);
    omp_set_max_active_levels(levels);
    tess.TessBaseAPIClear(t->api);
    img_release(&im);
    if (!out)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_engine_error, "tesseract recognised nothing");
    *text = vc_strdup(out);
    tess.TessDeleteText(out);
    return *text ? VC_OK : vc_err_oom(err);
}

void ocr_tess_version(char *out, size_t cap)
{
    struct vc_err err;
    if (vc_dl_load(&tess_lib, &err) == VC_OK)
        snprintf(out, cap, "tesseract %s", tess.TessVersion());
    else
        snprintf(out, cap, "tesseract (%s)", err.msg);
}
