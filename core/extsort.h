/* extsort: the one external sort of the tool, within a memory budget: for
 * the steps of a run that see every record at once (PLAN, FINISH) and for
 * the dedup reduce, so their memory is the budget whatever the dataset's
 * size.
 *
 * Two kinds of records.  Byte records (extsort_open) have any length up
 * to EXTSORT_MAX_REC and compare as bytes (memcmp, a prefix first):
 * callers encode what they sort by big-endian and strings NUL-terminated.
 * Fixed-size records (extsort_open_with, rec_size > 0) compare with the
 * caller's function and are stored and read in place, without a length:
 * the dedup signatures, whose files are runs already.
 *
 * Records are buffered up to the budget, then sorted and written as a run
 * to a temporary file (PREFIX.N, removed when the sort is closed); runs
 * sorted elsewhere join with extsort_add_run.  Reading merges the runs (in
 * passes of at most max_fanin runs, each read through a window of an equal
 * share of the budget) or, when everything fitted, walks the sorted
 * buffer.  Opening a sort removes the runs a killed process left under the
 * same prefix: one sort per prefix at a time.  Equal records come out in
 * any order: make them differ (add a position). */
#ifndef VC_PIPELINE_EXTSORT_H
#define VC_PIPELINE_EXTSORT_H

#include <stddef.h>
#include <stdint.h>

#include "core/vc_err.h"

/* Runs merged at once by default: each gets an equal share of the budget
 * as its read window, and file descriptors stay well under the usual
 * 1024. */
enum { EXTSORT_FANIN = 64 };
/* The largest byte record accepted. */
enum { EXTSORT_MAX_REC = 1u << 16 };

struct extsort;

/* Orders two fixed-size records: < 0, 0, > 0. */
typedef int (*extsort_cmp_fn)(const void *a, const void *b);

struct extsort_opts {
    size_t rec_size;    /* 0: byte records; else every record has this size */
    extsort_cmp_fn cmp; /* fixed-size records: their order (NULL = memcmp) */
    size_t max_fanin;   /* runs merged at once (0 = EXTSORT_FANIN); fewer
                         * when the budget gives each less than 32 KiB */
};

/* tmp_prefix: where runs go (copied); mem_bytes: the budget (at least
 * 1 MiB is used).  VC_EFATAL out_of_memory. */
enum vc_status extsort_open(struct extsort **out, const char *tmp_prefix, size_t mem_bytes,
                            struct vc_err *err);
enum vc_status extsort_open_with(struct extsort **out, const char *tmp_prefix, size_t mem_bytes,
                                 const struct extsort_opts *o, struct vc_err *err);
/* Adds one record of n bytes (byte records: n <= EXTSORT_MAX_REC; fixed:
 * n = rec_size); may write a run: VC_EFATAL io_error naming the file. */
enum vc_status extsort_add(struct extsort *s, const void *rec, size_t n, struct vc_err *err);
/* Adds a run sorted elsewhere: `bytes` bytes of `path` from offset `off`,
 * laid out as the sort's own runs (fixed-size records back to back; byte
 * records as a host-order u32 length and the bytes).  The file is read,
 * never removed.  Before extsort_done only. */
enum vc_status extsort_add_run(struct extsort *s, const char *path, uint64_t off, uint64_t bytes,
                               struct vc_err *err);
/* Ends the input; reading starts. */
enum vc_status extsort_done(struct extsort *s, struct vc_err *err);
/* The next record in order: *rec (valid until the next call) and *n; 1
 * when there is one, 0 at the end, VC_EFATAL (< 0) on a read error. */
int extsort_next(struct extsort *s, const uint8_t **rec, size_t *n, struct vc_err *err);
/* Reads the records again from the first. */
enum vc_status extsort_rewind(struct extsort *s, struct vc_err *err);
/* Records added with extsort_add. */
uint64_t extsort_count(const struct extsort *s);
/* Frees it and removes its temporary files. */
void extsort_close(struct extsort *s);

/* Big-endian helpers for the records' sort keys. */
void extsort_put_be(uint8_t *p, uint64_t v, int bytes);
uint64_t extsort_get_be(const uint8_t *p, int bytes);

#endif
