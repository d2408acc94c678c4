/* flt_text: OBELICS's paragraph-level ("node level") and document-level
 * text filters and the images-per-document filter.  Every text filter
 * scores the analysis the chain already ran (struct filter_input.ts), so a
 * paragraph is tokenized once however many filters look at it.
 *
 * Defaults are OBELICS's obelics/configs/config_filter_web_documents.yaml
 * (paper Table 3); the spam-word cut is build_obelics/13_final_processing.py
 * (paragraph level only, as there).  The language filters live in
 * flt_lang.h. */
#ifndef VC_FILTERS_FLT_TEXT_H
#define VC_FILTERS_FLT_TEXT_H

#include "filter.h"

extern const struct filter_ops flt_par_word_count;
extern const struct filter_ops flt_par_char_repetition;
extern const struct filter_ops flt_par_word_repetition;
extern const struct filter_ops flt_par_special_chars;
extern const struct filter_ops flt_par_stopword_ratio;
extern const struct filter_ops flt_par_flagged_ratio;
extern const struct filter_ops flt_par_punctuation_ratio;
extern const struct filter_ops flt_par_spam_ratio;
extern const struct filter_ops flt_par_common_ratio;

extern const struct filter_ops flt_doc_images;
extern const struct filter_ops flt_doc_word_count;
extern const struct filter_ops flt_doc_char_repetition;
extern const struct filter_ops flt_doc_word_repetition;
extern const struct filter_ops flt_doc_special_chars;
extern const struct filter_ops flt_doc_stopword_ratio;
extern const struct filter_ops flt_doc_flagged_ratio;
extern const struct filter_ops flt_doc_punctuation_ratio;
extern const struct filter_ops flt_doc_common_ratio;

#endif
