/* dedup_sig: the dedup stage's signature records and the sorted
 * partitioned file each MAP task writes; a partition of such a file is a
 * run that core/extsort merges with the same partition of the others.
 *
 * File layout (little-endian, this host's struct layout, checked by the
 * magic and the record size): "VCDSIG01", u32 part_bits, u32 record size,
 * u64 n_records, then 2^part_bits + 1 u64 record offsets (partition p is
 * records [off[p], off[p+1])), then the records sorted by dedup_sig_cmp.
 * A record's partition is the top part_bits bits of its key, so every
 * record sharing a key lands in one partition. */
#ifndef VC_STAGES_DEDUP_SIG_H
#define VC_STAGES_DEDUP_SIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/vc_err.h"

/* One signature of one sample.  32 bytes; 1M samples with every method on
 * make ~20M records = 640 MB of files, read once by the reduce. */
struct dedup_sig {
    uint64_t key;  /* what candidates share: a hash, or a band of one */
    uint64_t aux;  /* checked inside a key group: the full pHash, the
                    * second half of a 128-bit digest, a MinHash sketch */
    uint32_t unit; /* the sample: input unit and ordinal in it */
    uint32_t index;
    uint32_t weight; /* what "keep": "largest" compares (pixels or bytes) */
    uint16_t kind;   /* method << 8 | band */
    uint16_t pad;    /* 0, so files compare byte for byte */
};

/* Sort order: key, kind, aux, unit, index.  Total on the sample fields, so
 * the merge output does not depend on the order of its inputs. */
int dedup_sig_cmp(const struct dedup_sig *a, const struct dedup_sig *b);

static inline uint32_t dedup_sig_part(uint64_t key, unsigned part_bits)
{
    return part_bits ? (uint32_t)(key >> (64 - part_bits)) : 0;
}

/* Sorts `v` in place and writes it as a signature file (through
 * dedup_sig_stream: temp + fsync + rename, the rename made durable by the
 * task's commit marker written next in the same folder). */
enum vc_status dedup_sig_write(const char *path, struct dedup_sig *v, size_t n, unsigned part_bits,
                               struct vc_err *err);

/* A sorted run: n records from byte `base` of a file (a partition of a
 * signature file). */
struct dedup_run {
    char *path; /* owned */
    uint64_t base, n;
};

/* Partition `part` of a signature file as a run (n may be 0).  VC_EFATAL
 * naming the file when it is not a signature file of part_bits. */
enum vc_status dedup_sig_run(const char *path, unsigned part_bits, uint32_t part,
                             struct dedup_run *out, struct vc_err *err);

/* dedup_sig_cmp for qsort and extsort (struct dedup_sig pointers). */
int dedup_sig_order(const void *a, const void *b);

/* An external sort of signatures (core/extsort.h) in dedup_sig_cmp
 * order, merging up to max_fanin runs at once. */
struct extsort;
enum vc_status dedup_sig_sorter(struct extsort **out, const char *tmp_prefix, size_t mem_bytes,
                                size_t max_fanin, struct vc_err *err);
/* Adds partition `part` of a signature file to such a sort as a run. */
enum vc_status dedup_sig_add_part(struct extsort *s, const char *path, unsigned part_bits,
                                  uint32_t part, struct vc_err *err);
/* Ends such a sort's input and calls fn on each record in order; a
 * non-OK return stops it. */
typedef enum vc_status (*dedup_sig_fn)(void *ctx, const struct dedup_sig *s, struct vc_err *err);
enum vc_status dedup_sig_drain(struct extsort *s, dedup_sig_fn fn, void *ctx, struct vc_err *err);

/* Sorts v[0..n) by dedup_sig_cmp. */
void dedup_sig_sort(struct dedup_sig *v, size_t n);

/* A signature file written record by record, in dedup_sig_cmp order (a
 * sort's or a merge's output), so that no writer holds its records; the
 * header and partition table are filled in and the file fsynced and
 * renamed into place by dedup_sig_stream_close(commit = true), the rename
 * made durable by the task's marker (vc_fs_rename_pending).  A record out
 * of partition order is VC_EFATAL. */
struct dedup_sig_stream {
    FILE *f;
    char *path, *tmp;
    uint64_t n;
    unsigned part_bits;
    uint32_t part;   /* the partition of the last record */
    uint64_t *start; /* 2^part_bits + 1: each partition's first record */
};
enum vc_status dedup_sig_stream_open(struct dedup_sig_stream *w, const char *path,
                                     unsigned part_bits, struct vc_err *err);
enum vc_status dedup_sig_stream_add(void *w, const struct dedup_sig *s, struct vc_err *err);
/* Always frees; without commit the temp file is removed. */
enum vc_status dedup_sig_stream_close(struct dedup_sig_stream *w, bool commit, struct vc_err *err);
/* Ends the sort s's input and writes its records as the signature file
 * `path` of part_bits (a dedup_sig_stream, committed when every record is
 * written); s stays the caller's to close. */
enum vc_status dedup_sig_write_sorted(struct extsort *s, const char *path, unsigned part_bits,
                                      struct vc_err *err);

/* The records of a part_bits-0 signature file whose key lies in [lo, hi],
 * found by binary search and read with pread: appended to *v (realloc'd;
 * *n records, *cap allocated). */
enum vc_status dedup_sig_range(const char *path, uint64_t lo, uint64_t hi, struct dedup_sig **v,
                               size_t *n, size_t *cap, struct vc_err *err);

#endif
