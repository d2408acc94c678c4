/* st_caption: the `caption` and `ocr` stages, text from the bundled
 * Idefics2 engine (or, for ocr, optionally Tesseract) for the main image of
 * every sample that reaches them:
 *
 *   {"stage": "caption", "model": "/models/idefics2-8b",
 *    "prompt": "short",             // "short" | "detailed" | any user message
 *    (or "raw_prompt": "<image>A picture of"   // the processor's text as is: base models)
 *    "max_new_tokens": 64, "sampling": {"temperature": 0, "top_p": 1.0, "seed": 7},
 *    "field": "synthetic_caption", "replace_txt": false, "batch": 16}
 *
 *   {"stage": "ocr", "model": "...", "field": "ocr_text"}   // Idefics2, image splitting on
 *   {"stage": "ocr", "engine": "tesseract", "lang": "eng"}
 *
 * The text goes to the sample's json under "field" (or, with replace_txt,
 * into txt, the old txt moving to json "original_txt"), with its
 * provenance under "<field>_provenance".  A sample without an image passes
 * unchanged.  A sample the engine cannot take is VC_ESAMPLE with the reason
 * st_model_sample_error gives.  Results are committed per batch to the
 * unit's cache (st_model.h) so a killed task resumes after its last batch. */
#ifndef VC_STAGES_ST_CAPTION_H
#define VC_STAGES_ST_CAPTION_H

#include "stage.h"

extern const struct stage_ops st_caption_ops, st_ocr_ops;

#endif
