/* spill: the binary files in which MAP tasks keep the samples they pass on
 * (OUT/_work/rR-map-UUUUUU.bin), read back by the next round's MAP tasks
 * and by REDUCE.  A spill is written by one task only, under a temporary
 * name, and renamed into place before the task's manifest commits it.
 *
 * Record format (integers little-endian): u32 n_fields, then per field
 * u16 name length, u64 size, the name, when the name length's top bit is
 * set the field's cached SHA-256 (32 bytes, so the next round hashes the
 * bytes no second time), the bytes; then u32 meta length and
 * the sample's metadata object as compact JSON (0 = none).  A record is
 * addressed by (offset, length), both kept in the unit manifest, so a
 * reader seeks straight to the records it needs.
 *
 * Linked records.  When the name length's second bit (0x4000) is set, the
 * field's bytes are not in the record: a u64 offset follows instead, where
 * the same bytes sit in the spill the record was read from (its BASE).
 * The last round writes such records for the fields it passes on
 * unchanged (the pictures, most of a sample's bytes), so what the round
 * before spilled is not copied a second time; REDUCE reads those bytes
 * from the base, which therefore lives as long as the last round's spill.
 *
 * Source links.  When the third bit (0x2000) is set instead, a u64 offset
 * follows too, into the unit's source file: a field a source read from a
 * plain tar and no stage replaced (sample_field's src_data), linked in any
 * round, so round 0 does not copy the pictures of its input either.  Such
 * a spill ends with a trailer, "vcspsrc1", then the source's size and
 * mtime in nanoseconds (u64 each) when the first field was linked; a
 * reader compares them with the file before reading from it, so a source
 * replaced between a map task and the tasks after it is an error, never
 * wrong bytes.
 *
 * Indexed files hold n parts, each read alone: u64 n, u64 start[0..n]
 * (byte offsets into the data; start[n] = its size), then the data, part k
 * being data[start[k], start[k + 1]).  Written part by part in order, the
 * header last, one fsync.  Two of them: a global stage's alive flags (one
 * part per unit, one byte per record: 1 = kept), read by each MAP task of
 * the next round for its unit only; and the plan's slices (phase_plan.h),
 * one part per output shard.  The output order a global stage leaves is
 * (u32 unit, u64 index) pairs. */
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
    uint64_t linked;  /* fields linked to the base so far */
    char *src;        /* owned; NULL: fields are never linked to a source */
    uint64_t src_size, src_mtime_ns, src_linked;
};

/* Where one appended record landed, and what it adds to a tar shard. */
struct spill_rec {
    uint64_t off, len, tar_bytes;
};

/* Where a record read back by spill_reader_load lies: its bytes in memory
 * (buf, in the sample's arena) and in its file (off, len). */
struct spill_base {
    const uint8_t *buf;
    uint64_t off, len;
};

/* Fields smaller than this are copied even when linked: a reader pays a
 * pread per linked field. */
#define SPILL_LINK_MIN 4096

/* Creates path's temporary file.  VC_EFATAL io_error naming it on failure.
 * src: the unit's source file, where fields whose src_data is valid are
 * linked (NULL: none is). */
enum vc_status spill_writer_open(struct spill_writer *w, const char *path, const char *src,
                                 struct vc_err *err);
/* Appends the sample's fields and metadata.  base NULL: every field's
 * bytes; else the sample was loaded from the record `base` of the file the
 * reader of this spill names as its base, and fields of at least
 * SPILL_LINK_MIN bytes still lying inside base->buf are linked to it. */
enum vc_status spill_writer_add(struct spill_writer *w, const struct sample *s,
                                const struct spill_base *base, struct spill_rec *rec,
                                struct vc_err *err);
/* ok: flush, fsync and rename onto the final path, leaving the folder's
 * fsync to the commit marker every caller writes next into the same folder
 * (vc_fs_rename_pending); !ok: remove the temporary file.  Frees the
 * writer's memory in both cases. */
enum vc_status spill_writer_close(struct spill_writer *w, bool ok, struct vc_err *err);

/* Reads records of one spill file with pread; one record in memory at a
 * time (in the sample's arena). */
struct spill_reader {
    int fd, base_fd, src_fd;           /* base_fd, src_fd: opened at their first link */
    char *path, *base_path, *src_path; /* owned; base_path, src_path NULL: none */
};
/* A reader not open (spill_reader_close may still be called). */
#define SPILL_READER_CLOSED                                                                        \
    {                                                                                              \
        .fd = -1, .base_fd = -1, .src_fd = -1                                                      \
    }

/* base_path: the spill its linked fields point into, or NULL when it has
 * none (a linked field is then a malformed record); src_path: the unit's
 * source file, for source links (NULL: none may occur).  Loaded fields
 * linked to the source keep src_data/src_off, so a later spill links them
 * there again. */
enum vc_status spill_reader_open(struct spill_reader *r, const char *path, const char *base_path,
                                 const char *src_path, struct vc_err *err);
/* Fills `s` (sample_init'ed) with the fields of the record at (off, len),
 * in the sample's arena, and s->meta with its metadata (owned by s).  Keys
 * and ordinals live in the manifest: the caller sets them.  `at` (NULL =
 * not wanted): where the record lies, for linking a later record to it.
 * VC_EFATAL (io_error naming the file or its base, or mem_cap) on a short
 * or malformed record. */
enum vc_status spill_reader_load(struct spill_reader *r, uint64_t off, uint64_t len,
                                 struct sample *s, struct spill_base *at, struct vc_err *err);
void spill_reader_close(struct spill_reader *r);

/* A record's identity across rounds: its unit and its ordinal there. */
struct spill_id {
    uint32_t unit;
    uint64_t index;
};

struct spill_index_writer {
    struct spill_writer w;
    uint64_t *start; /* owned */
    size_t n, k;     /* parts announced, parts added */
};
/* Creates path's temporary file for n parts. */
enum vc_status spill_index_open(struct spill_index_writer *w, const char *path, size_t n,
                                struct vc_err *err);
/* Appends the next part. */
enum vc_status spill_index_add(struct spill_index_writer *w, const void *data, size_t len,
                               struct vc_err *err);
/* ok (every part added): header, fsync, rename onto path; !ok: removes the
 * temporary file.  Frees the writer in both cases. */
enum vc_status spill_index_close(struct spill_index_writer *w, bool ok, struct vc_err *err);
/* Part k: *out owned (free; NUL-terminated past its *n bytes).  VC_EFATAL
 * naming the file when it is missing, has no part k or is shorter than its
 * header says. */
enum vc_status spill_index_read(const char *path, size_t k, uint8_t **out, size_t *n,
                                struct vc_err *err);

/* Writes the alive file atomically: first[0..n_units] record offsets,
 * alive[0..first[n_units]) flags; unit u's flags are part u. */
enum vc_status spill_alive_write(const char *path, size_t n_units, const size_t *first,
                                 const uint8_t *alive, struct vc_err *err);
enum vc_status spill_order_write(const char *path, const struct spill_id *ids, size_t n,
                                 struct vc_err *err);
/* The order file written one id at a time (spill_writer's temp file,
 * fsync and rename at close when ok). */
enum vc_status spill_order_add(struct spill_writer *w, const struct spill_id *id,
                               struct vc_err *err);
/* *out owned (free). */
enum vc_status spill_order_read(const char *path, struct spill_id **out, size_t *n,
                                struct vc_err *err);

/* The order file read one id at a time (n: how many it holds). */
struct spill_order_reader {
    FILE *f;
    char *path;
    uint64_t n, i;
};
enum vc_status spill_order_open(struct spill_order_reader *r, const char *path, struct vc_err *err);
/* 1 and *id, 0 at the end, VC_EFATAL (< 0) on a read error. */
int spill_order_next(struct spill_order_reader *r, struct spill_id *id, struct vc_err *err);
void spill_order_close(struct spill_order_reader *r);

#endif
