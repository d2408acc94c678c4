/* dedup_reduce: one partition of the dedup reduce.  It merges that
 * partition of every MAP task's signature file (core/extsort, bounded
 * memory), walks the groups of records sharing a key and writes the
 * duplicate pairs it finds (edges) to one file per partition:
 *
 *   exact methods   records with equal key and aux: an edge from the first
 *                   of the run to each other one (distance 0);
 *   image_phash     records sharing a band key: every pair of distinct
 *                   hashes within the radius, emitted only by the first
 *                   band the pair agrees on, so each pair is written once;
 *                   equal hashes: a star from the first, in band 0; in a
 *                   group of more than DEDUP_PHASH_WINDOW distinct hashes
 *                   each is checked against the next DEDUP_PHASH_WINDOW
 *                   in hash order only (pairs_skipped counts the rest);
 *   text_minhash    records sharing an LSH band key: a star from the first,
 *                   kept when the sketches estimate a Jaccard similarity of
 *                   at least the threshold;
 *   doc_image_url   counted, not paired (OBELICS's document rules): a group
 *   doc_paragraph   of at least the method's limit records (an image URL in
 *                   more than image_url_max documents, a paragraph seen
 *                   paragraph_repeat times in one domain) makes every member
 *                   an EDIT: "remove this image / paragraph from this
 *                   document", written to a second file sorted by sample
 *                   (key = unit << 32 | index, aux = the group's key, kind =
 *                   the method) for the next round to apply.
 *
 * Which sample survives is not decided here: the dedup stage's plan hook
 * joins the edges into clusters (dedup_cc) in its memory budget.  The edge file is written to a
 * temp name, fsynced and renamed, so a finished partition is committed whole; the part's marker,
 * written next into the same folder, makes the renames durable (vc_fs_rename_pending). */
#ifndef VC_STAGES_DEDUP_REDUCE_H
#define VC_STAGES_DEDUP_REDUCE_H

#include <stddef.h>
#include <stdint.h>

#include "core/vc_err.h"
#include "dedup_sig.h"

/* Distinct pHashes one hash is checked against in a band group. */
enum { DEDUP_PHASH_WINDOW = 1024 };

/* Methods, strongest first: a duplicate reachable by several is reported
 * under the smallest.  Pinned: they are written into edge files. */
enum dedup_method {
    DEDUP_M_IMAGE_SHA256 = 1,
    DEDUP_M_IMAGE_PIXELS = 2,
    DEDUP_M_IMAGE_PHASH = 3,
    DEDUP_M_TEXT_EXACT = 4,
    DEDUP_M_TEXT_MINHASH = 5,
    DEDUP_M_DOC_URL = 6,
    DEDUP_M_DOC_IMAGE_SET = 7,
    DEDUP_M_DOC_IMAGE_URL = 8,     /* counted: edits */
    DEDUP_M_DOC_PARAGRAPH = 9,     /* counted: edits */
    DEDUP_M_DOC_IMAGE_REPEAT = 10, /* inside one document, found by MAP alone */
    DEDUP_M_COUNT = 11,
};
/* "image_sha256", ...; "unknown" outside the enum. */
const char *dedup_method_name(unsigned m);

static inline uint16_t dedup_kind(enum dedup_method m, unsigned band)
{
    return (uint16_t)((unsigned)m << 8 | band);
}

/* The record of a 128-bit digest (the first 16 bytes of a SHA-256) found
 * by method m: key = the first half mixed with m (equal texts and images
 * never share a group), aux = the second half. */
struct dedup_sig dedup_sig_digest(enum dedup_method m, const uint8_t dg[32], uint32_t unit,
                                  uint32_t index, uint32_t weight);
/* The radius + 1 band records of a pHash into out[0..radius]. */
void dedup_sig_phash(uint64_t ph, int radius, uint32_t unit, uint32_t index, uint32_t weight,
                     struct dedup_sig *out);

/* One duplicate pair.  32 bytes. */
struct dedup_edge {
    uint32_t unit_a, index_a, unit_b, index_b;
    uint32_t weight_a, weight_b;
    uint16_t method;
    uint16_t score; /* Hamming distance (pHash), similarity * 1000 (MinHash), 0 (exact) */
    uint32_t pad;
};

/* How strong a pair is, lower is stronger: the method first, then the
 * distance (pHash) or the dissimilarity (MinHash).  A duplicate reports
 * the strongest pair that reached it, the earliest of equals. */
unsigned dedup_strength(unsigned method, unsigned score);

/* Calls fn on every pair of an edge file, in file order. */
typedef enum vc_status (*dedup_edge_fn)(void *ctx, const struct dedup_edge *e, struct vc_err *err);
enum vc_status dedup_edges_each(const char *path, dedup_edge_fn fn, void *ctx, struct vc_err *err);

struct dedup_reduce_opts {
    int phash_radius;          /* the pHash bands are phash_radius + 1 */
    double minhash_threshold;  /* estimated Jaccard needed for an edge; 0 = every band hit */
    unsigned part_bits;        /* partitions = 2^part_bits */
    size_t mem_bytes;          /* the merge's read buffers */
    size_t max_open;           /* files merged at once */
    uint32_t image_url_max;    /* doc_image_url: edits past this many documents */
    uint32_t paragraph_repeat; /* doc_paragraph: edits from this many occurrences */
};

struct dedup_reduce_stats {
    uint64_t records, groups, pairs_checked, edges;
    uint64_t largest_group; /* records in the largest key group */
    uint64_t edits;
    uint64_t pairs_skipped; /* pHash pairs left unchecked by the group cap */
};

/* Reduces partition `part` of the signature files `paths` into edges_path
 * and edits_path (a signature file of part_bits 0, read back with
 * dedup_sig_range; NULL: no edits written).  tmp_prefix names the merges' intermediate runs.
 * Memory: o->mem_bytes, three quarters for the merge's buffers and one for
 * the edits, which go to sorted temp runs when they outgrow it. */
enum vc_status dedup_reduce_part(char *const *paths, size_t n_paths, uint32_t part,
                                 const struct dedup_reduce_opts *o, const char *tmp_prefix,
                                 const char *edges_path, const char *edits_path,
                                 struct dedup_reduce_stats *stats, struct vc_err *err);

/* Clusters in memory for `vlmcurate stats` (the run's plan uses dedup_cc,
 * bounded): union-find over n samples, fed with edge files.  Per sample
 * also the largest weight a pair reported and the strongest pair that
 * reached it (method 0 = none).  About 24 bytes per sample. */
struct dedup_clusters {
    size_t n;
    size_t *parent;
    uint32_t *weight, *size; /* size: at roots, after dedup_clusters_count */
    uint16_t *method, *score;
    uint64_t pairs; /* pairs read whose both samples are known */
};
/* Maps (unit, index) to a sample number < n, or SIZE_MAX to skip the pair. */
typedef size_t (*dedup_id_fn)(const void *ctx, uint32_t unit, uint32_t index);

enum vc_status dedup_clusters_init(struct dedup_clusters *c, size_t n, struct vc_err *err);
/* Joins the pairs of one edge file (only those of `method`, 0 = all). */
enum vc_status dedup_clusters_add(struct dedup_clusters *c, const char *edges_path, unsigned method,
                                  dedup_id_fn id, const void *ctx, struct vc_err *err);
/* The root of i's cluster (the smallest sample number in it). */
size_t dedup_clusters_root(struct dedup_clusters *c, size_t i);
/* Compresses every path and fills size[] at the roots. */
void dedup_clusters_count(struct dedup_clusters *c);
void dedup_clusters_free(struct dedup_clusters *c);

#endif
