/* ocr_tess: the Tesseract backend.  Owns one TessBaseAPI per handle and
 * nothing else; the image decoding is core/img's. */
#include "ocr_tess.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/vc_mem.h"

/* capi.h declares some functions with empty parameter lists. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <tesseract/capi.h>
#pragma GCC diagnostic pop

struct ocr_tess {
    TessBaseAPI *api;
};

enum vc_status ocr_tess_new(const char *lang, struct ocr_tess **out, struct vc_err *err)
{
    *out = NULL;
    struct ocr_tess *t = calloc(1, sizeof *t);
    if (!t || !(t->api = TessBaseAPICreate())) {
        free(t);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    }
    /* Tesseract reports a missing language on stderr; the message we
     * return names it too. */
    if (TessBaseAPIInit3(t->api, NULL, lang) != 0) {
        ocr_tess_free(t);
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "tesseract: no traineddata for language '%s' (install "
                          "tesseract-ocr-%s)",
                          lang, lang);
    }
    /* Its diagnostics ("Estimating resolution ...") would interleave with
     * the run's progress lines. */
    TessBaseAPISetVariable(t->api, "debug_file", "/dev/null");
    *out = t;
    return VC_OK;
}

void ocr_tess_free(struct ocr_tess *t)
{
    if (!t)
        return;
    if (t->api) {
        TessBaseAPIEnd(t->api);
        TessBaseAPIDelete(t->api);
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
    TessBaseAPISetImage(t->api, im.pixels, (int)im.w, (int)im.h, im.ch, (int)(im.w * im.ch));
    /* Tesseract's LSTM asks OpenMP for 4 threads per text line: on a busy
     * machine the spinning teams cost 100x the work (measured: minutes per
     * page).  One thread per page; the pipeline runs pages in parallel. */
    const int levels = omp_get_max_active_levels();
    omp_set_max_active_levels(0);
    char *out = TessBaseAPIGetUTF8Text(t->api);
    omp_set_max_active_levels(levels);
    TessBaseAPIClear(t->api);
    img_release(&im);
    if (!out)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_engine_error, "tesseract recognised nothing");
    *text = vc_strdup(out);
    TessDeleteText(out);
    return *text ? VC_OK : vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
}

void ocr_tess_version(char *out, size_t cap)
{
    snprintf(out, cap, "tesseract %s", TessVersion());
}
