/* st_filter: the `filter` stage.  Adapts the filter library
 * (filters/filter_chain.h) to samples:
 *
 *   {"stage": "filter", "defaults": true,
 *    "filters": [{"name": "img_width", "min": 200}, {"name": "doc_lang", "enabled": false}]}
 *
 * "defaults" (default true) starts from the default chain (every filter as
 * its table says); "filters" adjusts, enables or disables filters by name.
 * With "defaults": false only the listed filters run.
 *
 * An interleaved document (a sample whose "json" holds "texts" and
 * "images" lists) is filtered the OBELICS way: failing images leave the
 * document, failing paragraphs leave their text node (an emptied node
 * leaves the lists), then the document filters judge what is left and may
 * reject the whole sample.  Any other sample is an image-text pair: its
 * main image and its caption ("txt", "caption" or "text") are judged; a
 * sample without any of those is an image alone and skips the caption
 * filters.  A rejection is VC_REJECT with the filter's
 * name, score and threshold in the verdict.  The scores computed for a
 * kept sample go to its metadata under "filter_scores", and the paragraphs
 * and images removed from a document, per filter, under "filter_removed". */
#ifndef VC_STAGES_ST_FILTER_H
#define VC_STAGES_ST_FILTER_H

#include "stage.h"

extern const struct stage_ops st_filter_ops;

#endif
