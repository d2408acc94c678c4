/* source: where samples come from, behind one table (stage_registry.c):
 * webdataset shards, image-caption pairs (image folder + JSONL/CSV/TSV)
 * and OBELICS-style interleaved documents (JSONL).
 *
 * A source splits its input into units deterministically (a shard file; a
 * run of records of a list file), and streams the samples of one unit in
 * order.  Units are the tasks of the MAP phase: any thread may open any
 * unit, so open/next/close must not touch shared mutable state. */
#ifndef VC_STAGES_SOURCE_H
#define VC_STAGES_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "core/sample.h"
#include "core/vc_err.h"
#include "stage.h"

struct cJSON;

/* One unit of input.  Owned by the source state (freed by destroy). */
struct source_unit {
    char *file;            /* the input file, as the spec spelled it */
    uint64_t begin, end;   /* byte range of a list file; 0, 0 for a shard */
    uint64_t first_record; /* ordinal of the unit's first record in the file */
    uint64_t first_line;   /* 1-based line of that record in a list file; 0 for a shard */
};

struct source_ops {
    const char *name; /* the spec's "type" */
    /* Validates cfg (the whole source object; the common keys name, type,
     * weight, max_samples, epochs are already checked) and enumerates the
     * units, which may read the input files (a list file is scanned once
     * to split it).  *state owned, freed by destroy. */
    enum vc_status (*create)(const struct cJSON *cfg, const char *where,
                             const struct stage_ctx *ctx, void **state, struct vc_err *err);
    /* The units: borrowed until destroy. */
    const struct source_unit *(*units)(void *state, size_t *n);
    /* A cursor over one unit: owned, freed by close. */
    enum vc_status (*open)(void *state, const struct source_unit *u, void **cursor,
                           struct vc_err *err);
    /* Like wds_reader_next: VC_OK, VC_EOF, VC_ESAMPLE (s->orig_key and
     * s->src_index identify the bad sample; call again), VC_ESHARD (the
     * rest of the unit is unreadable).  A field's src_data/src_off, when
     * set, say where its bytes lie in u->file (spills point there). */
    enum vc_status (*next)(void *cursor, struct sample *s, struct vc_err *err);
    void (*close)(void *cursor);
    /* Optional: the samples the open unit holds, when the source knows
     * without reading them (pages of a PDF); 0 = unknown.  Only the
     * progress line's ETA uses it. */
    uint64_t (*n_samples)(void *cursor);
    void (*destroy)(void *state);
};

extern const struct source_ops *const source_table[]; /* NULL-terminated */
const struct source_ops *source_find(const char *name);

/* The keys every source object may carry besides its type's own. */
#define SOURCE_COMMON_KEYS "name", "type", "weight", "max_samples", "epochs"

#endif
