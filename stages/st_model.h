/* st_model: what the model stages (caption, ocr, score) share.
 *
 *   - the process's model pool: a checkpoint folder is loaded once per
 *     process whatever number of stages name it, its weights shared
 *     read-only; calls on one model are serialised (the engine serves one
 *     call at a time and uses every thread it is given);
 *   - provenance: the folder name and the sha256 of its config.json;
 *   - the engine calls: each stage keeps one engine context (KV caches,
 *     scratch) made on first use and reused for every batch;
 *   - the per-unit result cache that makes a task resumable inside itself:
 *     every finished request is appended to OUT/_work/<tag>-<unit>.cache
 *     and fsynced, one JSON line per sample, so a kill -9 loses at most
 *     the requests in flight (a torn last line is cut off when the file is
 *     reopened); at the end of the task the file is rewritten in sample
 *     order when the engine's finishing order was another;
 *   - the mapping from engine failures to ledger reasons;
 *   - the per-sample seed: sampling draws from a stream seeded by the
 *     spec's seed and the sample's key, never by its batch neighbours. */
#ifndef VC_STAGES_ST_MODEL_H
#define VC_STAGES_ST_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/vc_err.h"
#include "synth/idefics2.h"

struct cJSON;
struct sample;
struct stage_ctx;

struct st_model;

/* How a stage's model is loaded: its spec keys "compute" (f32 | bf16),
 * "backend" (auto | ref | vec | avx2 | avx512 | avx512bf16 | fast, as
 * `generate --backend`) and "quant" (none | q8_0 | q4_0, as
 * `generate --quant`: the text decoder's weights quantized at load). */
struct st_model_opts {
    bool bf16;
    const char *backend; /* NULL: auto (the fastest exact row); else a
                          * static name of the list above */
    enum idf2_text_quant quant;
    enum idf2_weights_place weights; /* "weights": copy (default) | map */
};
/* Reads the four keys of a stage entry (absent: f32, auto, none, copy); an
 * unknown value is VC_EUSAGE bad_spec naming `where` and the key. */
enum vc_status st_model_parse_opts(const struct cJSON *cfg, const char *where,
                                   struct st_model_opts *out, struct vc_err *err);

/* Opens `dir` (relative paths resolve against ctx->spec_dir) from the
 * pool, loading it on first use with `o` (one model per folder and
 * options).  Errors are the engine's load errors prefixed with `where`
 * (a backend this CPU does not run is one, VC_EUSAGE). */
enum vc_status st_model_open(const char *dir, const struct st_model_opts *o,
                             const struct stage_ctx *ctx, const char *where, struct st_model **out,
                             struct vc_err *err);
/* Adds the load options to a provenance object: "compute", and "backend"
 * and "quant" when the spec set them (defaults leave the record as
 * before).  False on out-of-memory. */
bool st_model_provenance(struct cJSON *p, const struct st_model *m);
/* Drops one reference; the last frees the model. */
void st_model_close(struct st_model *m);

/* The engine behind the handle, for idf2_model_info. */
const struct idf2_model *st_model_engine(const struct st_model *m);
/* The checkpoint folder's last path component and sha256(config.json). */
const char *st_model_name(const struct st_model *m);
const char *st_model_config_sha256(const struct st_model *m);

/* The engine calls, serialised on the model.  *ctx is the calling
 * stage's context: made with `p` on the first call (so a process that
 * never runs the stage's tasks never allocates it) and reused by every
 * later call, never allocated per batch; the stage frees it
 * (idf2_ctx_free) before closing the model.  `done` (may be NULL) is
 * called as each request finishes (idf2_ctx_on_done). */
enum vc_status st_model_generate(struct st_model *m, struct idf2_ctx **ctx,
                                 const struct idf2_ctx_params *p, const struct idf2_request *reqs,
                                 size_t n, struct idf2_result *results, idf2_done_fn done,
                                 void *arg, struct vc_err *err);
enum vc_status st_model_score(struct st_model *m, struct idf2_ctx **ctx,
                              const struct idf2_ctx_params *p, struct idf2_score_item *items,
                              size_t n, idf2_done_fn done, void *arg, struct vc_err *err);

/* How many samples a model stage asks the executor for at once: the
 * engine decodes `slots` of them together and refills a slot as soon as
 * its request stops, so a call of several slots' worth only waits for the
 * slowest requests at its end.  Every finished request is committed on
 * its own (st_model_sink_put), so a kill still loses only those in the
 * slots. */
size_t st_model_chunk(size_t slots);

/* The ledger reason of an engine failure: the engine's image and format
 * reasons pass through, a prompt over the context is too_long, everything
 * else (a request the engine refused, a malformed patch grid) is
 * engine_error.  Out of memory stays fatal. */
void st_model_sample_error(struct vc_err *err);

/* The key a model stage knows a sample by: the key as its source spelled
 * it (output keys are only made in PLAN); "" when it has none. */
const char *st_model_sample_key(const struct sample *s);

/* The sample's seed: the first 8 bytes (little endian) of
 * sha256("<seed>:<key>"), top bit cleared. */
uint64_t st_model_sample_seed(uint64_t seed, const char *key);

/* A stage's cache tag: "<stage>-" + 12 hex digits of the sha256 of its
 * spec entry, so a changed entry never reads an old cache.  tag[32]. */
enum vc_status st_model_tag(const char *stage, const struct cJSON *cfg, char tag[32],
                            struct vc_err *err);

/* ---- the per-unit result cache ---- */

struct st_model_cache;

/* Opens (creating) work_dir/<tag>-<unit:06>.cache and reads the records a
 * killed run committed. */
enum vc_status st_model_cache_open(const char *work_dir, const char *tag, uint32_t unit,
                                   struct st_model_cache **out, struct vc_err *err);
/* Reads the cache of a committed unit, read-only (PLAN's quantile cut).
 * Every unit a model stage ran has one, so a missing file is an error
 * naming it and the unit (VC_EFATAL io_error), not a unit without scores. */
enum vc_status st_model_cache_read(const char *work_dir, const char *tag, uint32_t unit,
                                   struct st_model_cache **out, struct vc_err *err);
void st_model_cache_close(struct st_model_cache *c);
/* The record of sample (index, key), or NULL; borrowed from the cache.
 * key NULL: any key (PLAN knows records by unit and index). */
const struct cJSON *st_model_cache_get(const struct st_model_cache *c, uint64_t index,
                                       const char *key);
/* Appends records (objects; "i" and "k" are added here) as one write and
 * fsyncs.  The records move into the cache (recs[i] set to NULL). */
enum vc_status st_model_cache_put(struct st_model_cache *c, const uint64_t *index,
                                  const char *const *key, struct cJSON **recs, size_t n,
                                  struct vc_err *err);
/* The end of a task's writing: unless the file already lists its records
 * once each in index order, replaces it (temp, fsync, rename) with that
 * list, so a unit's cache is the same bytes whatever order the engine
 * finished its requests in, and whether or not a kill split the unit
 * between two runs.  No put after it. */
enum vc_status st_model_cache_finish(struct st_model_cache *c, struct vc_err *err);

/* ---- the batch loop every model stage runs ---- */

struct stage_task_ctx;
struct stage_verdict;

/* Where a stage's compute hook delivers each record as soon as it has
 * it: committed to the unit's cache at once (one append + fsync), so a
 * kill loses only the requests still in the engine. */
struct st_model_sink;
/* The record of the j-th sample of the compute call (an object, or
 * {"reason", "msg"} for a sample the model cannot take) and the tokens
 * its requests generated or scored; the record moves into the sink.  rec
 * NULL means out of memory.  Call once per j. */
void st_model_sink_put(struct st_model_sink *s, size_t j, struct cJSON *rec, uint64_t tokens);
/* The run must stop (out of memory, I/O): the first such error wins. */
void st_model_sink_fail(struct st_model_sink *s, const struct vc_err *e);

struct st_model_batch_ops {
    /* Whether the stage has anything to compute for the sample (a caption
     * needs an image); a sample it does not want passes unchanged. */
    bool (*wants)(void *state, const struct sample *s);
    /* Computes the records of samples v[todo[0..n)] and puts each into the
     * sink as it finishes, in any order.  VC_EFATAL only when the run must
     * stop. */
    enum vc_status (*compute)(void *state, void *task, struct sample **v, const size_t *todo,
                              size_t n, struct st_model_sink *sink, const struct stage_ctx *run,
                              struct vc_err *err);
    /* Writes a record (computed now or read from the cache) into its
     * sample: VC_OK, VC_REJECT with *verdict, or VC_ESAMPLE. */
    enum vc_status (*apply)(void *state, struct sample *s, const struct cJSON *rec,
                            struct stage_task_ctx *ctx, struct stage_verdict *verdict,
                            struct vc_err *err);
};

/* The map_batch body: records from the cache where a killed run left
 * them, the rest computed in one call, each committed to the cache as it
 * finishes and before any sample changes, then every record applied.  `cache` may be NULL (no
 * work folder).  Returns VC_OK, or VC_EFATAL (every st[i] then too). */
enum vc_status st_model_map_batch(const struct st_model_batch_ops *ops, void *state, void *task,
                                  struct st_model_cache *cache, struct sample **v, size_t n,
                                  struct stage_task_ctx *ctx, enum vc_status *st,
                                  struct stage_verdict *verdicts, struct vc_err *errs);

/* A {"reason", "msg"} record; NULL on OOM. */
struct cJSON *st_model_error_record(const struct vc_err *e);
/* VC_ESAMPLE from such a record prefixed with `where`; VC_OK when rec is
 * not one. */
enum vc_status st_model_record_error(const struct cJSON *rec, const char *where,
                                     struct vc_err *err);

#endif
