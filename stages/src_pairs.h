/* src_pairs: the "pairs" source: a folder of images plus a list (JSONL, or
 * CSV/TSV with a header row) of {image path, caption, extra columns}, the
 * way img2dataset and many Hugging Face datasets export image-text pairs.
 * Each record becomes a sample with fields <ext> (jpg/png/webp by the
 * image's magic bytes), "txt" (the caption) and "json" (the extra columns
 * and the original "image_path").  Units are runs of records_per_unit
 * records of the list. */
#ifndef VC_STAGES_SRC_PAIRS_H
#define VC_STAGES_SRC_PAIRS_H

#include "source.h"

extern const struct source_ops src_pairs_ops;

#endif
