/* manifest: the schemas of the JSON documents a run writes about its own
 * tasks under OUT/_work and beside its shards, written and read here only,
 * so an executor on another machine (a cluster task) reads exactly what
 * the local one wrote.  Every document carries "spec_hash": a task is
 * committed when its document exists and names the run's spec
 * (commit_valid).  Documents (R = round, in files rR-...):
 *
 *   unit     rR-map-UUUUUU.json: a MAP task's counts (samples in, records
 *            kept, ledger lines) and whether its spill links bytes to round
 *            R-1's (spill.h).  The records themselves are JSON lines beside
 *            it, written as the task goes and read as streams, so that no
 *            task holds a unit's records whatever its size:
 *            rR-map-UUUUUU.kept, the records kept in index order (index,
 *            source key, where it sits in the task's spill, tar bytes, what
 *            the stages attached), and rR-map-UUUUUU.ledger, its ledger
 *            lines (rejects, errors);
 *   part     rR-STAGE-reduce-PPPPPP.json: one reduce part done;
 *   round    rR-plan.json: a global stage's shard sizing, its report and
 *            how many records it dropped; the drops themselves are
 *            rR-drops.jsonl, one JSON line each in (unit, index) order
 *            (unit, index, key, state, stage, reason and the kept
 *            duplicate's unit, index, key, method and distance), written
 *            and read as a stream so that no step holds them all;
 *   slice    what one output shard holds, in order (unit, index, spill
 *            offset and length, source, output key), part k of the indexed
 *            file plan-slices.bin (pipeline/spill.h): a REDUCE task reads
 *            its slice and nothing else of the plan;
 *   plan     plan.json: the PLAN commit: shard cuts and the run's report;
 *   shard    PREFIX-NNNNNN.json beside each shard: counts, bytes, sha256.
 *
 * Getters borrow from the document; builders return owned documents
 * (cJSON_Delete) or VC_EFATAL out_of_memory. */
#ifndef VC_MANIFESTS_MANIFEST_H
#define VC_MANIFESTS_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/vc_err.h"
#include "ledger.h"

struct cJSON;

/* ---- unit ---- */
struct manifest_kept {
    uint64_t index;
    const char *key; /* the key as the source spelled it */
    uint64_t off, len, tar_bytes;
    const struct cJSON *extra; /* NULL or an object */
};
struct manifest_unit_counts {
    uint64_t input;   /* samples that entered the task: kept + lines */
    uint64_t n_kept;  /* lines of its .kept file */
    uint64_t n_lines; /* lines of its .ledger file */
};
struct cJSON *manifest_unit_new(const char *hash, unsigned round, unsigned unit, const char *file);
enum vc_status manifest_unit_set_counts(struct cJSON *doc, const struct manifest_unit_counts *c,
                                        struct vc_err *err);
void manifest_unit_get_counts(const struct cJSON *doc, struct manifest_unit_counts *out);
/* Records that the task's spill links to the previous round's, which must
 * then be kept as long as it is. */
enum vc_status manifest_unit_set_links(struct cJSON *doc, struct vc_err *err);
bool manifest_unit_links(const struct cJSON *doc);
/* Append one kept record / one ledger line to a unit's .kept / .ledger
 * file.  VC_EFATAL io_error naming path, or out_of_memory. */
enum vc_status manifest_kept_write(FILE *f, const char *path, const struct manifest_kept *k,
                                   struct vc_err *err);
enum vc_status manifest_line_write(FILE *f, const char *path, const struct ledger_entry *e,
                                   struct vc_err *err);
/* A kept record read back (borrowing from item, which it may edit in
 * place: see raw_key); a ledger line's input index. */
void manifest_kept_get(const struct cJSON *item, struct manifest_kept *out);
uint64_t manifest_line_index(const struct cJSON *line);

/* ---- JSON lines files (.kept, .ledger, drops) read one line at a time ---- */
struct manifest_reader {
    FILE *f;
    char *path, *line; /* owned */
    size_t cap;
    const char *what; /* what a line is, for errors ("drop", "kept record") */
    uint64_t n;       /* lines read */
    uint64_t off;     /* where the line last read starts */
    uint64_t pos;     /* where the next one starts */
};
enum vc_status manifest_reader_open(struct manifest_reader *r, const char *path, const char *what,
                                    struct vc_err *err);
/* 1 and *item (owned: cJSON_Delete), 0 at the end, VC_EFATAL (< 0) naming
 * the file and line when it is unreadable or not an object. */
int manifest_reader_next(struct manifest_reader *r, struct cJSON **item, struct vc_err *err);
/* Moves to the line starting at off (a reader's .off of an earlier
 * line); a no-op when it is the next one. */
enum vc_status manifest_reader_seek(struct manifest_reader *r, uint64_t off, struct vc_err *err);
void manifest_reader_close(struct manifest_reader *r);

/* ---- part ---- */
struct cJSON *manifest_part_new(const char *hash, const char *stage, unsigned round, size_t part);

/* ---- round ---- */
struct manifest_drop {
    uint32_t unit;
    uint64_t index;
    const char *key, *state, *stage, *reason; /* state: "rejected" | "duplicate" */
    bool has_dup;
    uint32_t dup_unit;
    uint64_t dup_index;
    /* duplicate, optional (NULL when absent): the kept record's key, how
     * it was found and how close it is (see struct stage_rec). */
    const char *dup_key, *dup_method, *dup_measure;
    double dup_value;
};
struct manifest_sizing {
    uint64_t n_order, samples_per_shard, shard_bytes;
    uint64_t n_dropped; /* lines of the round's drop file */
};
/* `report` is copied. */
struct cJSON *manifest_round_new(const char *hash, const char *stage, unsigned round,
                                 const struct manifest_sizing *sz, const struct cJSON *report);
/* Appends d to a drop file as one line.  VC_EFATAL io_error naming path. */
enum vc_status manifest_drop_write(FILE *f, const char *path, const struct manifest_drop *d,
                                   struct vc_err *err);
void manifest_drop_get(const struct cJSON *item, struct manifest_drop *out);
void manifest_round_sizing(const struct cJSON *doc, struct manifest_sizing *out);
/* The report object, detached from doc: owned. */
struct cJSON *manifest_take_report(struct cJSON *doc);

/* ---- slice ---- */
struct manifest_slot {
    uint32_t unit, source;
    uint64_t index, off, len;
    const char *key; /* output key */
};
struct cJSON *manifest_slice_new(const char *hash, size_t shard, size_t first);
enum vc_status manifest_slice_add(struct cJSON *doc, const struct manifest_slot *s,
                                  struct vc_err *err);
/* Reads the slice's slots: *out owned (free), keys borrowed from doc.
 * VC_EFATAL json_invalid naming `what` when malformed. */
enum vc_status manifest_slice_slots(const struct cJSON *doc, const char *what,
                                    struct manifest_slot **out, size_t *n, struct vc_err *err);

/* ---- plan ---- */
/* starts: n_shards + 1 positions into the output order; report copied. */
struct cJSON *manifest_plan_new(const char *hash, const size_t *starts, size_t n_shards,
                                const struct cJSON *report);
/* *starts owned (free); VC_EFATAL json_invalid when malformed. */
enum vc_status manifest_plan_starts(const struct cJSON *doc, size_t **starts, size_t *n_shards,
                                    struct vc_err *err);
const struct cJSON *manifest_plan_report(const struct cJSON *doc);

/* ---- shard ---- */
struct manifest_shard {
    const char *name, *sha256, *first_key, *last_key;
    uint64_t samples, bytes, tar_bytes;
};
/* per_source: samples per source, names[i] for i < n_sources (0 = left out). */
struct cJSON *manifest_shard_new(const char *hash, const struct manifest_shard *m,
                                 const char *const *names, const uint64_t *per_source,
                                 size_t n_sources);
void manifest_shard_get(const struct cJSON *doc, struct manifest_shard *out);

#endif
