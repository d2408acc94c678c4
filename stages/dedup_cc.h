/* dedup_cc: connected components of a file of pairs of 64-bit node ids,
 * in a memory budget whatever the number of pairs and nodes: the dedup
 * plan's clusters.
 *
 * The pairs are taken in chunks that fit the budget (40 bytes a pair).  A
 * chunk is joined by union-find in memory, each of its components named by
 * its smallest node; the pairs left after it are streamed once and
 * renamed (a pair joined into one name vanishes), and so are the names
 * already given to nodes of earlier chunks; the chunk's own renamed nodes
 * are added to those.  When no pair is left, every renamed node carries
 * the smallest node of its component, and a final external sort adds each
 * component's smallest node (its own label) and orders them.  Every pass
 * streams files: the budget holds one chunk; the files of a pass are
 * written whole before they replace the last one.  Passes: one per chunk,
 * each reading what is left, so a run whose pairs fill k budgets reads
 * about k / 2 times the pair file. */
#ifndef VC_STAGES_DEDUP_CC_H
#define VC_STAGES_DEDUP_CC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/vc_err.h"

/* Two node ids; also (node, label) and the plan's (node, sequence). */
struct dedup_pair {
    uint64_t a, b;
};

/* Order by a, then b (for extsort_open_with and qsort). */
int dedup_pair_order(const void *a, const void *b);

/* Appends n pairs to f; VC_EFATAL io_error naming `path`. */
enum vc_status dedup_pairs_write(FILE *f, const char *path, const struct dedup_pair *v, size_t n,
                                 struct vc_err *err);

/* The components of the pairs in `pairs_path` (a != b; any order, repeats
 * allowed) into `labels_path`: (node, label) for every node of a pair,
 * sorted by node, label = the smallest node of its component.  Temporary
 * files are tmp_prefix + ".1", ".2", ... (removed when done).  mem_bytes:
 * the budget (at least 1 MiB is used).  *n_nodes: the nodes labelled. */
enum vc_status dedup_cc_labels(const char *pairs_path, const char *tmp_prefix, size_t mem_bytes,
                               const char *labels_path, uint64_t *n_nodes, struct vc_err *err);

#endif
