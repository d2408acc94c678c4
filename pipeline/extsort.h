/* extsort: an external sort of byte records within a memory budget, for
 * the steps of a run that see every record at once (PLAN, FINISH), so
 * their memory is the budget whatever the dataset's size.
 *
 * Records are compared as bytes (memcmp, a prefix first): callers encode
 * what they sort by big-endian and strings NUL-terminated.  Records are
 * buffered up to the budget, then sorted and written as a run to a
 * temporary file (PREFIX.N, removed when the sort is closed); reading
 * merges the runs (in passes of at most EXTSORT_FANIN runs when there are
 * more) or, when everything fitted, walks the sorted buffer.  Opening a
 * sort removes the runs a killed process left under the same prefix: one
 * sort per prefix at a time.  Equal
 * records come out in any order: make them differ (add a position). */
#ifndef VC_PIPELINE_EXTSORT_H
#define VC_PIPELINE_EXTSORT_H

#include <stddef.h>
#include <stdint.h>

#include "core/vc_err.h"

/* Runs merged at once: each gets an equal share of the budget as its read
 * buffer, and file descriptors stay well under the usual 1024. */
enum { EXTSORT_FANIN = 64 };
/* The largest record accepted. */
enum { EXTSORT_MAX_REC = 1u << 16 };

struct extsort;

/* tmp_prefix: where runs go (copied); mem_bytes: the budget (at least
 * 1 MiB is used).  VC_EFATAL out_of_memory. */
enum vc_status extsort_open(struct extsort **out, const char *tmp_prefix, size_t mem_bytes,
                            struct vc_err *err);
/* Adds one record of n bytes (n <= EXTSORT_MAX_REC); may write a run:
 * VC_EFATAL io_error naming the file. */
enum vc_status extsort_add(struct extsort *s, const void *rec, size_t n, struct vc_err *err);
/* Ends the input; reading starts. */
enum vc_status extsort_done(struct extsort *s, struct vc_err *err);
/* The next record in order: *rec (valid until the next call) and *n; 1
 * when there is one, 0 at the end, VC_EFATAL (< 0) on a read error. */
int extsort_next(struct extsort *s, const uint8_t **rec, size_t *n, struct vc_err *err);
/* Reads the records again from the first. */
enum vc_status extsort_rewind(struct extsort *s, struct vc_err *err);
/* Records added. */
uint64_t extsort_count(const struct extsort *s);
/* Frees it and removes its temporary files. */
void extsort_close(struct extsort *s);

/* Big-endian helpers for the records' sort keys. */
void extsort_put_be(uint8_t *p, uint64_t v, int bytes);
uint64_t extsort_get_be(const uint8_t *p, int bytes);

#endif
