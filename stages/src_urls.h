/* src_urls: the "urls" source: URL lists (parquet, CSV/TSV with a header
 * row, or JSONL) whose images are downloaded during the run, as
 * img2dataset does for LAION, DataComp and COYO metadata.  Each record
 * becomes a sample with fields <ext> (jpg/png/webp by the body's magic
 * bytes), "txt" (caption_col) and "json" (the URL and save_cols), or a
 * ledger error with a stable reason.  Units are runs of urls_per_unit
 * records; the download policy is stages/fetch. */
#ifndef VC_STAGES_SRC_URLS_H
#define VC_STAGES_SRC_URLS_H

#include "source.h"

extern const struct source_ops src_urls_ops;

#endif
