/* st_dedup: global deduplication across every shard, unit and source of a
 * run.  MAP computes each sample's signatures (dedup_hash) and writes one
 * sorted, partitioned binary file per unit (dedup_sig); the reduce merges
 * one hash-prefix partition of all of them at a time in bounded memory and
 * writes the duplicate pairs it finds (dedup_reduce); PLAN joins the pairs
 * into clusters (dedup_cc, in the same budget as the reduce, through
 * external sorts) and keeps one sample per cluster, marking the
 * others duplicate with the method that found them.  On documents it also
 * applies OBELICS's rules that edit rather than drop (dedup_doc): MAP
 * drops an image repeated inside a document, the reduce counts image URLs
 * and per-domain paragraphs and writes edits, and the next round applies
 * them (edit hooks) before its first stage.
 *
 * Params (defaults shown):
 *   {"stage": "dedup",
 *    "image": {"exact": true, "pixels": false, "phash": {"radius": 10}},
 *    "text":  {"exact": true, "minhash": {"ngram": 5, "bands": 14, "rows": 8,
 *                                         "threshold": 0.8}},
 *    "documents": {"url": true, "image_set": true, "image_url_max": 10,
 *                  "image_repeat": true, "paragraph_repeat": 3},
 *    "keep": "largest",          // or "first"
 *    "memory_mb": 256, "partitions": 16}
 * "image", "text", "phash", "minhash" and "documents" may be false. */
#ifndef VC_STAGES_ST_DEDUP_H
#define VC_STAGES_ST_DEDUP_H

#include "stage.h"

extern const struct stage_ops st_dedup_ops;

#endif
