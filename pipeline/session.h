/* session: what every task of a run needs to know, built from the spec
 * alone so that any process (the local executor's threads, one cluster
 * task) builds the same one: the rounds the stage list splits into
 * (stages/stage.h), the stages' context of each round, the names of the
 * files under OUT/_work, and the readers shared by the phases (a round's
 * records, the order a global stage left).  Nothing here writes. */
#ifndef VC_PIPELINE_SESSION_H
#define VC_PIPELINE_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/vc_err.h"
#include "manifests/manifest.h"
#include "progress.h"
#include "spec.h"
#include "spill.h"

/* Stages [first, end) run their map hooks in this round; `global` is the
 * stage that ends it (its reduce and plan), or -1 for the last round. */
struct session_round {
    size_t first, end;
    long global;
    bool model;   /* holds a STAGE_CAP_MODEL stage: units one at a time */
    size_t batch; /* samples per MAP batch: 1, or the model stages' largest */
};

/* Samples a model round holds at once, each in its own arena: larger
 * batches stop paying off on one accelerator well before this. */
#define SESSION_MAX_BATCH 256

struct session {
    struct spec *spec; /* borrowed */
    FILE *log;         /* error lines and progress (borrowed), NULL = silent */
    /* The executor's options from the command line (borrowed), NULL = none. */
    const struct cJSON *executor_opts;
    size_t n_units;
    struct session_round *rounds;
    size_t n_rounds;
    struct stage_ctx *ctx; /* per round: spec->ctx with round and n_units set */
    struct progress prog;  /* the phase running now */
};

/* Fills *ss (owned: session_fini).  Sets spec->threads when it is 0. */
enum vc_status session_init(struct session *ss, struct spec *spec, FILE *log, struct vc_err *err);
void session_fini(struct session *ss);

/* A path under OUT/_work (owned, NULL on OOM). */
char *session_work_path(const struct session *ss, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A unit's file as the ledger names it: relative to the spec's folder when
 * it lies below it, else as the spec spelled it.  Borrowed from `file`. */
const char *session_unit_file(const struct session *ss, const char *file);
/* An error message for the ledger: msg (a source names the files it opens
 * by the spec's folder as this command spelled it: relative to the current
 * folder, absolute, or resolved for `task`) with that folder cut from
 * every path that starts with it, as session_unit_file names a unit, so
 * the ledger's bytes do not depend on the current folder.  Writes at most
 * cap bytes, NUL included, into out. */
void session_unit_message(const struct session *ss, const char *msg, char *out, size_t cap);

/* Unit u's manifest of a round (owned: cJSON_Delete); VC_EFATAL naming
 * the unit when it is missing or names another spec. */
enum vc_status session_unit_manifest(const struct session *ss, size_t round, size_t u,
                                     struct cJSON **doc, struct vc_err *err);
/* Unit u's kept records of a round, in index order, one in memory at a
 * time: read from its .kept file once its manifest has vouched for it. */
struct session_kept {
    const struct session *ss;
    size_t unit;
    struct manifest_reader rd;
    struct cJSON *item;     /* the current record (owned); NULL at the end */
    struct manifest_kept k; /* its fields, borrowing from item */
};
/* Opens the records and reads the first. */
enum vc_status session_kept_open(struct session_kept *c, const struct session *ss, size_t round,
                                 size_t u, struct vc_err *err);
/* The next record (c->item NULL after the last). */
enum vc_status session_kept_next(struct session_kept *c, struct vc_err *err);
void session_kept_close(struct session_kept *c);
/* The current record as a stage sees it, borrowing from c. */
void session_kept_rec(const struct session_kept *c, struct stage_rec *r);

/* The records a round's MAP tasks kept, in (unit, index) order, read one
 * at a time: each record's key is copied into keys and its .extra
 * detached from its line (owned), ~150 bytes a record instead of its
 * 1-2.5 KB of cJSON nodes. */
struct session_recs {
    struct stage_rec *v;
    size_t n, cap, *first; /* first[u]: unit u's first record; first[n_units] = n */
    struct arena *keys;
};
enum vc_status session_recs_load(const struct session *ss, size_t round, struct session_recs *rs,
                                 struct vc_err *err);
void session_recs_free(struct session_recs *rs);

/* What the global stages before `round` left: the output order so far
 * (ordered false: none yet, every record in (unit, index) order; read
 * into `order` only with_order, else only counted: a reader that streams
 * it opens the file itself), shard sizing and the stages' report (owned). */
struct session_carry {
    bool ordered;
    struct spill_id *order; /* owned */
    size_t n_order;
    uint64_t samples_per_shard, shard_bytes;
    struct cJSON *report; /* owned */
};
enum vc_status session_carry_load(const struct session *ss, size_t round, bool with_order,
                                  struct session_carry *c, struct vc_err *err);
void session_carry_free(struct session_carry *c);
/* The positions in rs of the carried order's records still alive (or every
 * record): *order owned. */
enum vc_status session_carry_order(const struct session_carry *c, const struct session_recs *rs,
                                   size_t **order, size_t *n, struct vc_err *err);

#endif
