/* ocr_tess: page images to text through libtesseract's C API, the fast
 * OCR backend of the `ocr` stage.  A handle is not thread-safe: one per
 * task.  The traineddata comes from Debian's tesseract-ocr-<lang>
 * packages (TESSDATA_PREFIX overrides the folder). */
#ifndef VC_STAGES_OCR_TESS_H
#define VC_STAGES_OCR_TESS_H

#include <stddef.h>
#include <stdint.h>

#include "core/img.h"
#include "core/vc_err.h"

struct ocr_tess;

/* VC_EUSAGE bad_spec when the language's traineddata is not installed. */
enum vc_status ocr_tess_new(const char *lang, struct ocr_tess **out, struct vc_err *err);
void ocr_tess_free(struct ocr_tess *t);
/* Decodes the encoded image (limits checked on its header) and recognises
 * it.  *text is owned (free()).  Decode failures are VC_ESAMPLE. */
enum vc_status ocr_tess_text(struct ocr_tess *t, const uint8_t *data, size_t size,
                             const struct img_limits *limits, char **text, struct vc_err *err);
/* "tesseract <version>" into out[cap]. */
void ocr_tess_version(char *out, size_t cap);

#endif
