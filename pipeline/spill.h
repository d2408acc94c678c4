/* spill: the binary files in which MAP tasks keep the samples they pass on
 * (OUT/_work/rR-map-UUUUUU.bin), read back by the next round's MAP tasks
 * and by REDUCE.  A spill is written by one task only, under a temporary
 * name, and renamed into place before the task's manifest commits it.
 *
 * Record format (integers little-endian): u32 n_fields, then per field
 * u16 name length, u64 size, the name, the bytes; then u32 meta length and
 * the sample's metadata object as compact JSON (0 = none).  A record is
 * addressed by (offset, length), both kept in the unit manifest, so a
 * reader seeks straight to the records it needs.
 *
 * Two small files carry a global stage's decisions to the next round:
 * the alive flags (u64 n_units, u64 first record of each unit and the
 * total, then one byte per record: 1 = kept), read by each MAP task for
 * its unit's slice only; and the output order, (u32 unit, u64 index)
 * pairs. */
#ifndef VC_PIPELINE_SPILL_H
#define VC_PIPELINE_SPILL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/sample.h"
#include "core/vc_err.h"

struct spill_writer {
    FILE *f;
    char *path, *tmp; /* owned */
    uint64_t off;     /* bytes written so far = the next record's offset */
};

/* Where one appended record landed, and what it adds to a tar shard. */
struct spill_rec {
    uint64_t off, len, tar_bytes;
};

/* Creates path's temporary file.  VC_EFATAL io_error naming it on failure. */
enum vc_status spill_writer_open(struct spill_writer *w, const char *path, struct vc_err *err);
/* Appends the sample's fields and metadata. */
enum vc_status spill_writer_add(struct spill_writer *w, const struct sample *s,
                                struct spill_rec *rec, struct vc_err *err);
/* ok: flush, fsync and rename onto the final path; !ok: remove the
 * temporary file.  Frees the writer's memory in both cases. */
enum vc_status spill_writer_close(struct spill_writer *w, bool ok, struct vc_err *err);

/* Reads records of one spill file with pread; one record in memory at a
 * time (in the sample's arena). */
struct spill_reader {
    int fd;
    char *path; /* owned */
};

enum vc_status spill_reader_open(struct spill_reader *r, const char *path, struct vc_err *err);
/* Fills `s` (sample_init'ed) with the fields of the record at (off, len),
 * in the sample's arena, and s->meta with its metadata (owned by s).  Keys
 * and ordinals live in the manifest: the caller sets them.  VC_EFATAL
 * (io_error naming the file, or mem_cap) on a short or malformed record. */
enum vc_status spill_reader_load(struct spill_reader *r, uint64_t off, uint64_t len,
                                 struct sample *s, struct vc_err *err);
void spill_reader_close(struct spill_reader *r);

/* A record's identity across rounds: its unit and its ordinal there. */
struct spill_id {
    uint32_t unit;
    uint64_t index;
};

/* Writes the alive file atomically: first[0..n_units] record offsets,
 * alive[0..first[n_units]) flags. */
enum vc_status spill_alive_write(const char *path, size_t n_units, const size_t *first,
                                 const uint8_t *alive, struct vc_err *err);
/* Unit `unit`'s flags: *out owned (free), *n of them.  VC_EFATAL naming
 * the file when it is missing or shorter than its header says. */
enum vc_status spill_alive_read(const char *path, size_t unit, uint8_t **out, size_t *n,
                                struct vc_err *err);
enum vc_status spill_order_write(const char *path, const struct spill_id *ids, size_t n,
                                 struct vc_err *err);
/* *out owned (free). */
enum vc_status spill_order_read(const char *path, struct spill_id **out, size_t *n,
                                struct vc_err *err);

#endif
