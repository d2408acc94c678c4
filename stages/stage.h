/* stage: the one interface every pipeline stage implements, and the one
 * table that lists them (stages/stage_registry.c).  A stage is a name, a
 * few capability bits and optional hooks.
 *
 * Rounds.  A stage with a reduce or plan hook is GLOBAL: it needs every
 * unit's records before it can decide (unless its is_global hook says its
 * configuration does not).  The executor splits the spec's stage list
 * after each global stage into ROUNDS.  Round k runs the map hooks of the
 * stages after global stage k-1 up to and including global stage k over
 * every input unit (MAP tasks, in parallel, each committed by its unit
 * manifest), then global stage k's reduce parts (each a task of its own),
 * then its plan hook.  Round 0 reads the sources; round k > 0 reads what
 * round k-1 kept (its spill) and never sees a record a global stage
 * dropped, so a stage listed after dedup or a mixture sees only the
 * survivors.  The last round (the stages after the last global stage,
 * write among them) is followed by the executor's own PLAN (shard cuts,
 * output keys), REDUCE (shards) and FINISH (finish hooks).
 *
 * Hooks, in the order the executor calls them:
 *
 *   create   once per run: validates its JSON params (unknown keys and bad
 *            values are refused naming the stage and the key) and builds
 *            its read-only state;
 *   task_begin / map / task_end
 *            a MAP task, one per input unit and round, any thread:
 *            task_begin makes the per-task scratch, map sees every sample
 *            of the unit that reached the stage, in order, and keeps
 *            (VC_OK), rejects (VC_REJECT, with ctx->verdict) or errors it
 *            (VC_ESAMPLE); task_end flushes per-task results.  A task may
 *            write side files (signatures) under ctx->run->work_dir named
 *            by round, stage and unit (stage_work_path); they must be
 *            complete (temp + fsync + rename) when task_end returns, since
 *            the unit manifest written after it is what commits them.  A
 *            task killed midway is run again from the start, so writing a
 *            side file must replace any older one of the same name;
 *   map_batch
 *            instead of map, for stages with STAGE_CAP_MODEL: up to
 *            batch_size(state) samples of one unit per call, in order.
 *            Per-sample outcomes go to st[i] (VC_OK, VC_REJECT with
 *            verdicts[i], VC_ESAMPLE with errs[i]); the return value is
 *            VC_OK or VC_EFATAL (errs[0] then says why).  A round with a
 *            model stage runs its units one at a time and leaves every
 *            thread to the stage (the model is loaded once, in create,
 *            and shared read-only); ctx->extra is not available there;
 *   reduce_parts / reduce
 *            a global stage's partitioned reduce, after every MAP task of
 *            its round committed: reduce_parts says how many parts (0 =
 *            none); reduce(part) is one independent task, run in parallel
 *            (locally) or as an array task (on a cluster), that reads only
 *            files under ctx->work_dir and writes its own outputs there
 *            with temp + rename.  The executor commits each part with a
 *            marker (OUT/_work/rR-STAGE-reduce-PPPPPP.json) written after
 *            reduce returns, so a killed part is run again and a committed
 *            one never is;
 *   edit_begin / edit / edit_end
 *            a global stage whose decisions change samples rather than
 *            drop them (dedup's document rules): in the NEXT round's MAP
 *            task, edit sees every sample the stage let live, in order,
 *            before that round's stages, and may change it (VC_OK), reject
 *            it (VC_REJECT, ctx->verdict) or error it (VC_ESAMPLE);
 *            edit_begin / edit_end bracket the task as task_begin /
 *            task_end do.  ctx->run is the context of the stage's own
 *            round, so stage_work_path names the files its reduce wrote;
 *   plan     once per run, single-threaded, after the reduce parts: applies
 *            the decisions to the records (marks them duplicate or
 *            rejected, or sets the output order: mix, shuffle).  Must be
 *            cheap: a few words per record;
 *   plan_stream
 *            instead of plan, for a stage whose decisions touch few
 *            records (dedup): the records are not loaded; the hook reads
 *            them from disk with plan->each (as often as it needs, one
 *            unit manifest in memory at a time) and lists what it removes
 *            with stage_plan_drop, in (unit, index) order.  The executor
 *            keeps the carried output order minus those records.  Its
 *            memory is what the hook holds (per removed record), never a
 *            table of the round;
 *   keyed    REDUCE, each sample of a shard once its output key is set,
 *            just before it is written (the last stage only);
 *   finish   FINISH phase, once, after every shard and the ledger are
 *            written;
 *   destroy  frees the state.
 *
 * Every hook may run in another process than create's caller saw last (a
 * resumed run, a cluster task): state is built by create alone, and what a
 * hook learns at run time travels through work_dir files, never memory.
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
    uint64_t max_decode_bytes; /* decoded pixels held by all threads together (img_budget_set) */
};
void stage_limits_default(struct stage_limits *l);

/* What a source is, for stages that weigh sources against each other. */
struct stage_source_info {
    const char *name; /* borrowed for the run */
    const char *type;
    double weight;        /* mixture weight, > 0 */
    uint64_t max_samples; /* mixture cap on draws from this source; 0 = none */
    uint32_t epochs;      /* how many times the mixture may draw a sample; 0 = not
                           * given: once, or as often as a target size needs */
};

/* Run-wide context, read-only once MAP starts. */
struct stage_ctx {
    const struct stage_limits *limits;
    const char *spec_dir; /* relative input paths in the spec resolve against it */
    const char *out_dir;  /* the run's output folder */
    const char *work_dir; /* OUT/_work: where stages may keep per-task files */
    const struct stage_source_info *sources;
    size_t n_sources;
    /* Set by the executor in the context it hands to task, reduce, plan
     * and finish hooks (zero in create's): the round the hook runs in and
     * the number of input units (unit numbers run from 0). */
    uint32_t round;
    size_t n_units;
    /* The input files were checked when the run was submitted (the spec as
     * re-read from OUT by `vlmcurate task` and `status`): a source does not
     * look at them again, so a file gone since fails only its own unit's
     * task, not every task that reloads the spec. */
    bool inputs_checked;
    /* The run's threads (task hooks only): a model stage's engine uses
     * them all, since its round runs one unit at a time. */
    int threads;
};

/* Writes "WORK/rROUND-STAGE-WHAT-NNNNNN" (the round and work_dir from
 * ctx) into buf: the name a stage gives its side files, so that files of
 * different rounds and stages never collide.  false when it does not fit. */
bool stage_work_path(char *buf, size_t cap, const struct stage_ctx *ctx, const char *stage,
                     const char *what, uint64_t n);

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
    /* Set by the executor for model stages, NULL otherwise: a model stage
     * reports every sample as its request finishes (1 image, the tokens
     * generated or scored), so the progress line moves inside a long
     * map_batch call. */
    void (*model_progress)(struct stage_task_ctx *ctx, uint64_t images, uint64_t tokens);
    void *progress_arg;
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
    /* STAGE_REC_DUPLICATE, optional: how it was found (static string,
     * "image_phash", ...) and how close it is: dup_measure "distance" or
     * "similarity" (static) with dup_value; NULL when not measured. */
    const char *dup_method, *dup_measure;
    double dup_value;
};

/* A plan hook's working set: the records alive after its round's MAP
 * tasks, in (unit, index) order.  order lists the
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
    const struct stage_ctx *run;
};

/* The position in plan->recs of the record (unit, index), or SIZE_MAX
 * when no such record is alive.  Binary search: O(log n_recs). */
size_t stage_plan_find(const struct stage_plan *plan, uint32_t unit, uint64_t index);

/* Replaces plan->order by `order` (malloc'd, ownership moves to the plan). */
void stage_plan_set_order(struct stage_plan *plan, size_t *order, size_t n);

/* A record a plan_stream hook removes; the strings are the hook's, used
 * during the call only. */
struct stage_drop {
    uint32_t unit, dup_unit;
    uint64_t index, dup_index; /* dup_*: STAGE_REC_DUPLICATE, the kept record */
    const char *key, *dup_key;
    enum stage_rec_state state; /* REJECTED or DUPLICATE */
    const char *stage;          /* static string */
    enum vc_reason reason;
    const char *dup_method, *dup_measure; /* as in struct stage_rec */
    double dup_value;
};

/* Called on each record by stage_plan_stream.each; r and what it borrows
 * (key, extra) are valid during the call only. */
typedef enum vc_status (*stage_rec_fn)(void *ctx, const struct stage_rec *r, struct vc_err *err);

/* A plan_stream hook's working set: the records alive after its round's
 * MAP tasks, streamed from disk in (unit, index) order by each(). */
struct stage_plan_stream {
    enum vc_status (*each)(const struct stage_plan_stream *p, stage_rec_fn fn, void *ctx,
                           struct vc_err *err);
    /* Writes a removal to the round's drop file on disk (the executor's),
     * so a plan holds none of them: see stage_plan_drop. */
    enum vc_status (*drop)(const struct stage_plan_stream *p, const struct stage_drop *d,
                           struct vc_err *err);
    const void *impl; /* the executor's */
    const struct stage_source_info *sources;
    size_t n_sources;
    struct cJSON *report;
    const struct stage_ctx *run;
};

/* Records a removal, which must come after every earlier one in (unit,
 * index) order.  VC_EFATAL when it does not, or io_error writing it. */
enum vc_status stage_plan_drop(struct stage_plan_stream *p, const struct stage_drop *d,
                               struct vc_err *err);

/* Context of the FINISH hook. */
struct stage_finish_ctx {
    const struct stage_ctx *run;
    size_t n_units, n_shards;
};

enum stage_caps {
    STAGE_CAP_FIRST = 1u << 0, /* must be the first stage of the spec */
    STAGE_CAP_LAST = 1u << 1,  /* must be the last stage */
    STAGE_CAP_ONCE = 1u << 2,  /* at most one in a spec */
    STAGE_CAP_MODEL = 1u << 3, /* has map_batch: runs a model on batches */
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
    /* STAGE_CAP_MODEL only; n <= batch_size(state); st, verdicts and errs
     * have n entries, zeroed by the executor. */
    enum vc_status (*map_batch)(void *state, struct sample **v, size_t n,
                                struct stage_task_ctx *ctx, enum vc_status *st,
                                struct stage_verdict *verdicts, struct vc_err *errs);
    size_t (*batch_size)(const void *state); /* NULL or 0 = one sample */
    size_t (*reduce_parts)(void *state, const struct stage_ctx *ctx);
    enum vc_status (*reduce)(void *state, const struct stage_ctx *ctx, size_t part,
                             struct vc_err *err);
    enum vc_status (*edit_begin)(void *state, struct stage_task_ctx *ctx, struct vc_err *err);
    enum vc_status (*edit)(void *state, struct sample *s, struct stage_task_ctx *ctx,
                           struct vc_err *err);
    enum vc_status (*edit_end)(void *state, struct stage_task_ctx *ctx, struct vc_err *err);
    enum vc_status (*plan)(void *state, struct stage_plan *plan, struct vc_err *err);
    enum vc_status (*plan_stream)(void *state, struct stage_plan_stream *plan, struct vc_err *err);
    /* Optional, for a stage with reduce or plan hooks: whether this
     * configuration needs them (NULL: always).  When it says no, the
     * stage is a per-sample stage of its round and those hooks never run. */
    bool (*is_global)(const void *state);
    enum vc_status (*finish)(void *state, const struct stage_finish_ctx *ctx, struct vc_err *err);
    /* Optional, STAGE_CAP_LAST stages: REDUCE calls it on every sample of
     * a shard once s->key holds the output key, just before the sample is
     * written, to complete what names the key (the write stage's member
     * list of its "positions" layout).  Must be deterministic; anything
     * but VC_OK stops the shard as fatal, since MAP checked the sample. */
    enum vc_status (*keyed)(const void *state, struct sample *s, struct vc_err *err);
    void (*destroy)(void *state);
};

/* A global stage (one that ends a round): it has a reduce or plan hook
 * and its configuration (state, from create) needs them. */
bool stage_is_global(const struct stage_ops *ops, const void *state);

/* The table, NULL-terminated, in the order `vlmcurate help run` lists it. */
extern const struct stage_ops *const stage_table[];
/* NULL when no stage has that name. */
const struct stage_ops *stage_find(const char *name);

#endif
