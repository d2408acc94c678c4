/* stage: the one interface every pipeline stage implements, and the one
 * table that lists them (stages/stage_registry.c).  A stage is a name, a
 * few capability bits and optional hooks:
 *
 *   create   once per run: validates its JSON params (unknown keys and bad
 *            values are refused naming the stage and the key) and builds
 *            its read-only state;
 *   task_begin / map / task_end
 *            MAP phase, in parallel over input units: task_begin makes the
 *            per-task scratch, map sees every sample of the unit in order
 *            and keeps (VC_OK), rejects (VC_REJECT, with ctx->verdict) or
 *            errors it (VC_ESAMPLE); task_end flushes per-task results;
 *   plan     PLAN phase, once, single-threaded, over the records of every
 *            unit: decides the output order (mix, shuffle) or marks
 *            records duplicate/rejected (dedup);
 *   finish   FINISH phase, once, after every shard is written;
 *   destroy  frees the state.
 *
 * Stages never include pipeline headers and never print: the executor
 * turns their statuses into ledger lines.  Adding a stage = one module
 * plus one row in stage_table. */
#ifndef VC_STAGES_STAGE_H
#define VC_STAGES_STAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/sample.h"
#include "core/vc_err.h"

struct cJSON;

/* Limits on untrusted input, from the spec's "limits" object.  Defaults in
 * stage_limits_default, documented in the README with their rationale. */
struct stage_limits {
    uint64_t max_entry_bytes;  /* one tar member, image file or list record */
    uint64_t max_pixels;       /* width * height from the image header */
    uint32_t max_side;         /* either image dimension */
    uint64_t max_text_bytes;   /* one text field (txt, caption, document text) */
    uint64_t max_json_bytes;   /* one json field or one JSONL record */
    uint64_t max_sample_bytes; /* the per-sample arena cap (all fields + scratch) */
    uint32_t max_fields;       /* fields in one sample */
};
void stage_limits_default(struct stage_limits *l);

/* What a source is, for stages that weigh sources against each other. */
struct stage_source_info {
    const char *name; /* borrowed for the run */
    const char *type;
    double weight;        /* mixture weight, > 0 */
    uint64_t max_samples; /* mixture cap on draws from this source; 0 = none */
    uint32_t epochs;      /* how many times the mixture may draw a sample */
};

/* Run-wide context, read-only once MAP starts. */
struct stage_ctx {
    const struct stage_limits *limits;
    const char *spec_dir; /* relative input paths in the spec resolve against it */
    const char *out_dir;  /* the run's output folder */
    const char *work_dir; /* OUT/_work: where stages may keep per-task files */
    const struct stage_source_info *sources;
    size_t n_sources;
};

/* Why a map hook rejected a sample; written to the ledger. */
struct stage_verdict {
    enum vc_reason reason; /* VC_REASON_filtered unless more specific */
    const char *filter;    /* filter name or NULL; must outlive the task */
    bool has_score;
    double score, threshold;
};

/* Per-task context handed to task_begin/map/task_end. */
struct stage_task_ctx {
    const struct stage_ctx *run;
    uint32_t unit;         /* global input unit number */
    const char *unit_file; /* the unit's input file */
    void *task_state;      /* what this stage's task_begin returned */
    /* Object (created on demand by stage_task_extra) carried with the
     * sample's record into the PLAN phase: signatures for dedup, scores
     * for stats.  Reset by the executor for every sample. */
    struct cJSON *extra;
    struct stage_verdict verdict; /* fill before returning VC_REJECT */
};

/* The extra object of the current sample, created on first use; NULL on
 * OOM.  Borrowed until the executor moves on to the next sample. */
struct cJSON *stage_task_extra(struct stage_task_ctx *ctx);

enum stage_rec_state {
    STAGE_REC_KEEP = 0,
    STAGE_REC_REJECTED,
    STAGE_REC_DUPLICATE,
};

/* One sample that survived MAP, as PLAN sees it. */
struct stage_rec {
    uint32_t unit, source;
    uint64_t index;            /* the sample's ordinal in its unit (src_index) */
    uint64_t bytes;            /* what the sample adds to a tar shard */
    const char *key;           /* sanitised source key; borrowed for PLAN */
    const struct cJSON *extra; /* what map hooks attached, or NULL; borrowed */
    enum stage_rec_state state;
    const char *stage; /* who dropped it (static string) */
    enum vc_reason reason;
    uint64_t dup_of; /* STAGE_REC_DUPLICATE: index into recs of the kept one */
};

/* PLAN's working set.  recs are in (unit, index) order.  order lists the
 * records to write, in output order (indices into recs; a record may appear
 * more than once when a source is drawn for several epochs).  A plan hook
 * that drops a record from order must set its state, stage and reason. */
struct stage_plan {
    struct stage_rec *recs;
    size_t n_recs;
    size_t *order; /* owned by the plan; replace with stage_plan_set_order */
    size_t n_order;
    const struct stage_source_info *sources;
    size_t n_sources;
    /* Shard sizing, from the spec's "output"; a stage (reshard) may
     * override it.  0 = no limit of that kind. */
    uint64_t samples_per_shard, shard_bytes;
    struct cJSON *report; /* object: a stage adds its summary for run.json */
};

/* Replaces plan->order by `order` (malloc'd, ownership moves to the plan). */
void stage_plan_set_order(struct stage_plan *plan, size_t *order, size_t n);

/* Context of the FINISH hook. */
struct stage_finish_ctx {
    const struct stage_ctx *run;
    size_t n_units, n_shards;
};

enum stage_caps {
    STAGE_CAP_FIRST = 1u << 0, /* must be the first stage of the spec */
    STAGE_CAP_LAST = 1u << 1,  /* must be the last stage */
    STAGE_CAP_ONCE = 1u << 2,  /* at most one in a spec */
};

struct stage_ops {
    const char *name;
    unsigned caps;
    /* Required.  *state is owned by the stage (freed by destroy). */
    enum vc_status (*create)(const struct cJSON *cfg, const struct stage_ctx *ctx, void **state,
                             struct vc_err *err);
    enum vc_status (*task_begin)(void *state, struct stage_task_ctx *ctx, struct vc_err *err);
    enum vc_status (*map)(void *state, struct sample *s, struct stage_task_ctx *ctx,
                          struct vc_err *err);
    enum vc_status (*task_end)(void *state, struct stage_task_ctx *ctx, struct vc_err *err);
    enum vc_status (*plan)(void *state, struct stage_plan *plan, struct vc_err *err);
    enum vc_status (*finish)(void *state, const struct stage_finish_ctx *ctx, struct vc_err *err);
    void (*destroy)(void *state);
};

/* The table, NULL-terminated, in the order `vlmcurate help run` lists it. */
extern const struct stage_ops *const stage_table[];
/* NULL when no stage has that name. */
const struct stage_ops *stage_find(const char *name);

#endif
