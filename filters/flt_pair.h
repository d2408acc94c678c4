/* flt_pair: filters on the caption (alt text) of an image-text pair: the
 * DataComp "basic" length rule (more than 2 words and more than 5
 * characters, mlfoundations/datacomp baselines/apply_filter.py) and
 * captions that say nothing: only a file name ("IMG_1234.jpg"), only a URL,
 * only a number or date, or a boilerplate phrase ("image", "untitled").
 * The boolean checks score 1 when the caption is junk and reject above
 * max 0. */
#ifndef VC_FILTERS_FLT_PAIR_H
#define VC_FILTERS_FLT_PAIR_H

#include "filter.h"

extern const struct filter_ops flt_cap_words;
extern const struct filter_ops flt_cap_chars;
extern const struct filter_ops flt_cap_filename;
extern const struct filter_ops flt_cap_url;
extern const struct filter_ops flt_cap_number;
extern const struct filter_ops flt_cap_boilerplate;

#endif
