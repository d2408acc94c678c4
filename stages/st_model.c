/* st_model: the model pool, provenance, the per-unit result cache and the
 * engine-error mapping of the model stages.  The pool is the one piece of
 * process-wide state of the stages: a spec with a caption and a score
 * stage on the same folder holds one copy of the weights. */
#include "st_model.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/sha256.h"
#include "core/vc_buf.h"
#include "core/vc_fs.h"
#include "core/vc_mem.h"
#include "core/sample.h"
#include "stage.h"
#include "stage_cfg.h"

/* config.json of idefics2-8b is 7 KB. */
#define ST_MODEL_MAX_CONFIG ((size_t)1 << 20)
/* One cache line holds a caption or an OCR page with its token ids; a
 * cache over this is not ours. */
#define ST_MODEL_MAX_CACHE ((size_t)1 << 30)

struct st_model {
    struct st_model *next;
    char *path; /* realpath of the folder */
    struct st_model_opts opts;
    int refs;
    char *name;
    char config_sha[65];
    struct idf2_model *engine;
    pthread_mutex_t call; /* one engine call at a time */
};

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct st_model *pool;

static const char *const backends[] = { "auto",   "ref",        "vec",  "avx2",
                                        "avx512", "avx512bf16", "fast", NULL };
static const char *const quants[] = { "none", "q8_0", "q4_0", NULL };
/* In idf2_weights_place order after DEFAULT. */
static const char *const places[] = { "copy", "map", NULL };

enum vc_status st_model_parse_opts(const cJSON *cfg, const char *where, struct st_model_opts *out,
                                   struct vc_err *err)
{
    static const char *const computes[] = { "f32", "bf16", NULL };
    int compute = 0, backend = 0, quant = 0, place = 0;
    VC_TRY(stage_cfg_enum(cfg, where, "compute", computes, 0, &compute, err));
    VC_TRY(stage_cfg_enum(cfg, where, "backend", backends, 0, &backend, err));
    VC_TRY(stage_cfg_enum(cfg, where, "quant", quants, 0, &quant, err));
    VC_TRY(stage_cfg_enum(cfg, where, "weights", places, 0, &place, err));
    *out = (struct st_model_opts){
        .bf16 = compute == 1,
        .backend = backend ? backends[backend] : NULL,
        .quant = quant == 1   ? IDF2_TEXT_QUANT_Q8_0
                 : quant == 2 ? IDF2_TEXT_QUANT_Q4_0
                              : IDF2_TEXT_QUANT_NONE,
        .weights = place == 1 ? IDF2_WEIGHTS_MAP : IDF2_WEIGHTS_COPY,
    };
    return VC_OK;
}

static bool same_opts(const struct st_model_opts *a, const struct st_model_opts *b)
{
    return a->bf16 == b->bf16 && a->quant == b->quant && a->weights == b->weights &&
           (a->backend == b->backend ||
            (a->backend && b->backend && strcmp(a->backend, b->backend) == 0));
}

bool st_model_provenance(cJSON *p, const struct st_model *m)
{
    const struct st_model_opts *o = &m->opts;
    return cJSON_AddStringToObject(p, "compute", o->bf16 ? "bf16" : "f32") &&
           (!o->backend || cJSON_AddStringToObject(p, "backend", o->backend)) &&
           (o->quant == IDF2_TEXT_QUANT_NONE ||
            cJSON_AddStringToObject(p, "quant", quants[o->quant == IDF2_TEXT_QUANT_Q8_0 ? 1 : 2]));
}

static enum vc_status load(const char *path, const struct st_model_opts *opts, const char *where,
                           struct st_model **out, struct vc_err *err)
{
    struct st_model *m = calloc(1, sizeof *m);
    char *cfg_path = m ? vc_malloc_array(strlen(path) + 16, 1) : NULL;
    if (!cfg_path) {
        free(m);
        return vc_err_oom(err);
    }
    sprintf(cfg_path, "%s/config.json", path);
    char *cfg = NULL;
    size_t cfg_size = 0;
    enum vc_status rc = vc_fs_read_file(cfg_path, ST_MODEL_MAX_CONFIG, &cfg, &cfg_size, err);
    free(cfg_path);
    if (rc >= 0) {
        sha256_hex(cfg, cfg_size, m->config_sha);
        free(cfg);
        const char *slash = strrchr(path, '/');
        m->path = vc_strdup(path);
        m->name = vc_strdup(slash && slash[1] ? slash + 1 : path);
        if (!m->path || !m->name)
            rc = vc_err_oom(err);
    }
    if (rc >= 0) {
        struct idf2_load_opts o = { .compute = opts->bf16 ? IDF2_COMPUTE_BF16 : IDF2_COMPUTE_F32,
                                    .backend = opts->backend,
                                    .text_quant = opts->quant,
                                    .weights = opts->weights };
        rc = idf2_model_load(path, &o, &m->engine, err);
    }
    if (rc < 0) {
        /* A checkpoint that does not load is the spec's problem. */
        if (rc != VC_EFATAL || err->reason != VC_REASON_out_of_memory)
            err->status = rc = VC_EUSAGE;
        vc_err_prefix(err, "%s: model '%s'", where, path);
        free(m->path);
        free(m->name);
        free(m);
        return rc;
    }
    pthread_mutex_init(&m->call, NULL);
    m->opts = *opts;
    *out = m;
    return VC_OK;
}

enum vc_status st_model_open(const char *dir, const struct st_model_opts *o,
                             const struct stage_ctx *ctx, const char *where, struct st_model **out,
                             struct vc_err *err)
{
    char joined[PATH_MAX], real[PATH_MAX];
    const char *base =
        ctx && ctx->spec_dir && ctx->spec_dir[0] && dir[0] != '/' ? ctx->spec_dir : NULL;
    if (snprintf(joined, sizeof joined, "%s%s%s", base ? base : "", base ? "/" : "", dir) >=
        (int)sizeof joined)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "%s: model path too long", where);
    if (!realpath(joined, real))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint, "%s: model '%s': %s", where,
                          joined, strerror(errno));
    enum vc_status rc = VC_OK;
    pthread_mutex_lock(&pool_lock);
    struct st_model *m = pool;
    while (m && (strcmp(m->path, real) != 0 || !same_opts(&m->opts, o)))
        m = m->next;
    if (!m && (rc = load(real, o, where, &m, err)) >= 0) {
        m->next = pool;
        pool = m;
    }
    if (m)
        m->refs++;
    pthread_mutex_unlock(&pool_lock);
    *out = m;
    return rc;
}

void st_model_close(struct st_model *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&pool_lock);
    bool last = --m->refs == 0;
    if (last)
        for (struct st_model **p = &pool; *p; p = &(*p)->next)
            if (*p == m) {
                *p = m->next;
                break;
            }
    pthread_mutex_unlock(&pool_lock);
    if (!last)
        return;
    idf2_model_free(m->engine);
    pthread_mutex_destroy(&m->call);
    free(m->path);
    free(m->name);
    free(m);
}

const struct idf2_model *st_model_engine(const struct st_model *m)
{
    return m->engine;
}

const char *st_model_name(const struct st_model *m)
{
    return m->name;
}

const char *st_model_config_sha256(const struct st_model *m)
{
    return m->config_sha;
}

/* Makes the stage's context on first use; the caller holds m->call. */
static enum vc_status ctx_get(struct st_model *m, struct idf2_ctx **ctx,
                              const struct idf2_ctx_params *p, idf2_done_fn done, void *arg,
                              struct vc_err *err)
{
    if (!*ctx)
        VC_TRY(idf2_ctx_new(m->engine, p, ctx, err));
    idf2_ctx_on_done(*ctx, done, arg);
    return VC_OK;
}

enum vc_status st_model_generate(struct st_model *m, struct idf2_ctx **ctx,
                                 const struct idf2_ctx_params *p, const struct idf2_request *reqs,
                                 size_t n, struct idf2_result *results, idf2_done_fn done,
                                 void *arg, struct vc_err *err)
{
    pthread_mutex_lock(&m->call);
    enum vc_status rc = ctx_get(m, ctx, p, done, arg, err);
    if (rc >= 0)
        rc = idf2_ctx_generate(*ctx, reqs, n, results, err);
    pthread_mutex_unlock(&m->call);
    return rc;
}

enum vc_status st_model_score(struct st_model *m, struct idf2_ctx **ctx,
                              const struct idf2_ctx_params *p, struct idf2_score_item *items,
                              size_t n, idf2_done_fn done, void *arg, struct vc_err *err)
{
    pthread_mutex_lock(&m->call);
    enum vc_status rc = ctx_get(m, ctx, p, done, arg, err);
    if (rc >= 0)
        rc = idf2_ctx_score(*ctx, items, n, err);
    pthread_mutex_unlock(&m->call);
    return rc;
}

/* Four slots' worth: the drain at the end of a call (slots idle while the
 * longest requests finish) is paid once per four refills of every slot. */
#define ST_MODEL_REFILL 4
/* SESSION_MAX_BATCH: what the executor holds in memory at most. */
#define ST_MODEL_MAX_CHUNK 256

size_t st_model_chunk(size_t slots)
{
    size_t c = slots * ST_MODEL_REFILL;
    return c < ST_MODEL_MAX_CHUNK ? c : ST_MODEL_MAX_CHUNK;
}

void st_model_sample_error(struct vc_err *err)
{
    if (err->status == VC_EFATAL && err->reason == VC_REASON_out_of_memory)
        return;
    switch (err->reason) {
    case VC_REASON_image_too_large:
    case VC_REASON_decode_error:
    case VC_REASON_unsupported_format:
    case VC_REASON_truncated:
    case VC_REASON_missing_image:
        break;
    case VC_REASON_field_too_long:
        err->reason = VC_REASON_too_long;
        break;
    default:
        err->reason = VC_REASON_engine_error;
        break;
    }
    err->status = VC_ESAMPLE;
}

const char *st_model_sample_key(const struct sample *s)
{
    return s->orig_key ? s->orig_key : s->key ? s->key : "";
}

uint64_t st_model_sample_seed(uint64_t seed, const char *key)
{
    struct sha256 c;
    char head[32];
    int n = snprintf(head, sizeof head, "%llu:", (unsigned long long)seed);
    sha256_init(&c);
    sha256_update(&c, head, (size_t)n);
    sha256_update(&c, key, strlen(key));
    uint8_t d[32];
    sha256_final(&c, d);
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | d[i];
    /* 63 bits: what `vlmcurate generate --seed` accepts. */
    return v & (uint64_t)INT64_MAX;
}

enum vc_status st_model_tag(const char *stage, const cJSON *cfg, char tag[32], struct vc_err *err)
{
    char *text = cJSON_PrintUnformatted(cfg);
    if (!text)
        return vc_err_oom(err);
    char hex[65];
    sha256_hex(text, strlen(text), hex);
    free(text);
    snprintf(tag, 32, "%.16s-%.12s", stage, hex);
    return VC_OK;
}

/* ------------------------------------------------------------------ cache */

struct cache_rec {
    uint64_t index;
    cJSON *rec;
};

struct st_model_cache {
    int fd;
    char *path;
    struct cache_rec *recs; /* sorted by index */
    size_t n, cap;
    /* The file's lines so far, and whether they are in strictly increasing
     * index order: the engine finishes requests in an order that depends
     * on which requests share its slots, and a resumed unit shares them
     * differently, so appends alone would not give the same file. */
    uint64_t lines, last;
    bool ordered;
};

static enum vc_status io_fail(struct vc_err *err, const char *what, const char *path)
{
    return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s '%s': %s", what, path,
                      strerror(errno));
}

/* A line of record `index` is in the file now. */
static void cache_note_line(struct st_model_cache *c, uint64_t index)
{
    if (c->lines++ && index <= c->last)
        c->ordered = false;
    c->last = index;
}

/* Keeps recs sorted: samples arrive in index order, so this is an append
 * except after a resume. */
static enum vc_status cache_insert(struct st_model_cache *c, uint64_t index, cJSON *rec,
                                   struct vc_err *err)
{
    struct cache_rec *r = vc_grow_array(c->recs, &c->cap, c->n + 1, sizeof *r, 64);
    if (!r)
        return vc_err_oom(err);
    c->recs = r;
    size_t at = c->n;
    while (at > 0 && c->recs[at - 1].index > index)
        at--;
    if (at > 0 && c->recs[at - 1].index == index) {
        /* A line written twice (a batch redone): the newest wins. */
        cJSON_Delete(c->recs[at - 1].rec);
        c->recs[at - 1].rec = rec;
        return VC_OK;
    }
    memmove(c->recs + at + 1, c->recs + at, (c->n - at) * sizeof *c->recs);
    c->recs[at] = (struct cache_rec){ index, rec };
    c->n++;
    return VC_OK;
}

/* Reads the committed lines; when writable, cuts a torn last line (the
 * kill hit the write) so the next append starts on a line boundary. */
static enum vc_status cache_load(struct st_model_cache *c, bool writable, struct vc_err *err)
{
    struct stat sb;
    if (fstat(c->fd, &sb) != 0)
        return io_fail(err, "cannot stat", c->path);
    if (sb.st_size == 0)
        return VC_OK;
    char *data = NULL;
    size_t size = 0;
    VC_TRY(vc_fs_read_file(c->path, ST_MODEL_MAX_CACHE, &data, &size, err));
    size_t good = 0;
    enum vc_status rc = VC_OK;
    for (size_t pos = 0; rc >= 0 && pos < size;) {
        char *nl = memchr(data + pos, '\n', size - pos);
        if (!nl)
            break;
        cJSON *rec = cJSON_ParseWithLength(data + pos, (size_t)(nl - (data + pos)));
        const cJSON *i = cJSON_GetObjectItemCaseSensitive(rec, "i");
        if (!cJSON_IsNumber(i) || i->valuedouble < 0) {
            cJSON_Delete(rec);
            break; /* not ours from here on: recompute */
        }
        rc = cache_insert(c, (uint64_t)i->valuedouble, rec, err);
        if (rc < 0)
            cJSON_Delete(rec);
        cache_note_line(c, (uint64_t)i->valuedouble);
        pos = good = (size_t)(nl - data) + 1;
    }
    free(data);
    VC_TRY(rc);
    if (writable && (off_t)good != sb.st_size && ftruncate(c->fd, (off_t)good) != 0)
        return io_fail(err, "cannot truncate", c->path);
    return VC_OK;
}

void st_model_cache_close(struct st_model_cache *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    for (size_t i = 0; i < c->n; i++)
        cJSON_Delete(c->recs[i].rec);
    free(c->recs);
    free(c->path);
    free(c);
}

/* committed: read-only, the file must exist; otherwise created and open
 * for appending. */
static enum vc_status cache_open(const char *work_dir, const char *tag, uint32_t unit,
                                 bool committed, struct st_model_cache **out, struct vc_err *err)
{
    *out = NULL;
    struct st_model_cache *c = calloc(1, sizeof *c);
    if (!c)
        return vc_err_oom(err);
    c->fd = -1;
    c->ordered = true;
    c->path = vc_malloc_array(strlen(work_dir) + strlen(tag) + 32, 1);
    if (!c->path) {
        free(c);
        return vc_err_oom(err);
    }
    sprintf(c->path, "%s/%s-%06u.cache", work_dir, tag, (unsigned)unit);
    enum vc_status rc = committed ? VC_OK : vc_fs_mkdirs(work_dir, err);
    const int flags = committed ? O_RDONLY | O_CLOEXEC : O_RDWR | O_CREAT | O_CLOEXEC;
    if (rc >= 0 && (c->fd = open(c->path, flags, 0644)) < 0)
        rc = !committed ? io_fail(err, "cannot open", c->path)
                        : vc_err_set(err, VC_EFATAL, VC_REASON_io_error,
                                     "cannot read the result cache '%s' of committed unit %u: %s "
                                     "(its scores are lost: delete '%s' to start the run over)",
                                     c->path, (unsigned)unit, strerror(errno), work_dir);
    if (rc >= 0)
        rc = cache_load(c, !committed, err);
    if (rc >= 0 && lseek(c->fd, 0, SEEK_END) < 0)
        rc = io_fail(err, "cannot seek", c->path);
    if (rc < 0) {
        st_model_cache_close(c);
        return rc;
    }
    *out = c;
    return VC_OK;
}

enum vc_status st_model_cache_open(const char *work_dir, const char *tag, uint32_t unit,
                                   struct st_model_cache **out, struct vc_err *err)
{
    return cache_open(work_dir, tag, unit, false, out, err);
}

enum vc_status st_model_cache_read(const char *work_dir, const char *tag, uint32_t unit,
                                   struct st_model_cache **out, struct vc_err *err)
{
    return cache_open(work_dir, tag, unit, true, out, err);
}

const cJSON *st_model_cache_get(const struct st_model_cache *c, uint64_t index, const char *key)
{
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->recs[mid].index < index)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == c->n || c->recs[lo].index != index)
        return NULL;
    /* The index is the sample's place in its unit; the key confirms the
     * unit still holds the same sample. */
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(c->recs[lo].rec, "k");
    return !key || (cJSON_IsString(k) && strcmp(k->valuestring, key) == 0) ? c->recs[lo].rec : NULL;
}

/* Appends rec's line (compact JSON + '\n') to out. */
static enum vc_status cache_print(struct vc_buf *out, const cJSON *rec, struct vc_err *err)
{
    char *line = cJSON_PrintUnformatted(rec);
    bool ok =
        line && vc_buf_append(out, line, strlen(line)) == 0 && vc_buf_append(out, "\n", 1) == 0;
    free(line);
    return ok ? VC_OK : vc_err_oom(err);
}

enum vc_status st_model_cache_put(struct st_model_cache *c, const uint64_t *index,
                                  const char *const *key, cJSON **recs, size_t n,
                                  struct vc_err *err)
{
    struct vc_buf buf;
    vc_buf_init(&buf, ST_MODEL_MAX_CACHE);
    enum vc_status rc = VC_OK;
    for (size_t i = 0; rc >= 0 && i < n; i++) {
        if (!cJSON_AddNumberToObject(recs[i], "i", (double)index[i]) ||
            !cJSON_AddStringToObject(recs[i], "k", key[i]))
            rc = vc_err_oom(err);
        else
            rc = cache_print(&buf, recs[i], err);
    }
    if (rc >= 0 && buf.len && !vc_fs_write_all(c->fd, buf.data, buf.len))
        rc = io_fail(err, "cannot write", c->path);
    vc_buf_free(&buf);
    if (rc >= 0 && fsync(c->fd) != 0)
        rc = io_fail(err, "cannot fsync", c->path);
    for (size_t i = 0; rc >= 0 && i < n; i++) {
        cache_note_line(c, index[i]);
        rc = cache_insert(c, index[i], recs[i], err);
        if (rc >= 0)
            recs[i] = NULL;
    }
    return rc;
}

enum vc_status st_model_cache_finish(struct st_model_cache *c, struct vc_err *err)
{
    if (c->ordered)
        return VC_OK;
    struct vc_buf buf;
    vc_buf_init(&buf, ST_MODEL_MAX_CACHE);
    enum vc_status rc = VC_OK;
    for (size_t i = 0; rc >= 0 && i < c->n; i++)
        rc = cache_print(&buf, c->recs[i].rec, err);
    /* The unit manifest written after task_end makes the rename durable;
     * a kill before it leaves either file, and either reloads to the same
     * records. */
    if (rc >= 0)
        rc = vc_fs_write_pending(c->path, buf.data, buf.len, err);
    vc_buf_free(&buf);
    if (rc < 0)
        return rc;
    /* The descriptor holds the replaced file: nothing may go there now. */
    close(c->fd);
    c->fd = -1;
    c->ordered = true;
    return VC_OK;
}

/* ------------------------------------------------------------ batch loop */

cJSON *st_model_error_record(const struct vc_err *e)
{
    cJSON *rec = cJSON_CreateObject();
    if (rec && (!cJSON_AddStringToObject(rec, "reason", vc_reason_name(e->reason)) ||
                !cJSON_AddStringToObject(rec, "msg", e->msg))) {
        cJSON_Delete(rec);
        return NULL;
    }
    return rec;
}

enum vc_status st_model_record_error(const cJSON *rec, const char *where, struct vc_err *err)
{
    const cJSON *reason = cJSON_GetObjectItemCaseSensitive(rec, "reason");
    if (!cJSON_IsString(reason))
        return VC_OK;
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(rec, "msg");
    int code = vc_reason_from_name(reason->valuestring);
    return vc_err_set(err, VC_ESAMPLE, code < 0 ? VC_REASON_engine_error : (enum vc_reason)code,
                      "%s: %s", where, cJSON_IsString(msg) ? msg->valuestring : "failed");
}

struct st_model_sink {
    struct st_model_cache *cache; /* NULL: records stay in fresh */
    const uint64_t *index;
    const char *const *keys;
    cJSON **fresh;
    bool *put;
    struct stage_task_ctx *task;
    struct vc_err fatal;
};

void st_model_sink_fail(struct st_model_sink *s, const struct vc_err *e)
{
    if (s->fatal.status >= 0) {
        s->fatal = *e;
        s->fatal.status = VC_EFATAL;
    }
}

void st_model_sink_put(struct st_model_sink *s, size_t j, cJSON *rec, uint64_t tokens)
{
    s->put[j] = true;
    if (s->task->model_progress)
        s->task->model_progress(s->task, 1, tokens);
    if (!rec) {
        struct vc_err e = { 0 };
        vc_err_oom(&e);
        st_model_sink_fail(s, &e);
        return;
    }
    s->fresh[j] = rec;
    if (s->cache && s->fatal.status >= 0)
        st_model_cache_put(s->cache, &s->index[j], &s->keys[j], &s->fresh[j], 1, &s->fatal);
}

enum vc_status st_model_map_batch(const struct st_model_batch_ops *ops, void *state, void *task,
                                  struct st_model_cache *cache, struct sample **v, size_t n,
                                  struct stage_task_ctx *ctx, enum vc_status *st,
                                  struct stage_verdict *verdicts, struct vc_err *errs)
{
    size_t *todo = vc_malloc_array(n + 1, sizeof *todo);
    const cJSON **have = calloc(n + 1, sizeof *have);
    uint64_t *index = vc_malloc_array(n + 1, sizeof *index);
    const char **keys = vc_malloc_array(n + 1, sizeof *keys);
    struct st_model_sink sink = { .cache = cache,
                                  .index = index,
                                  .keys = keys,
                                  .fresh = calloc(n + 1, sizeof *sink.fresh),
                                  .put = calloc(n + 1, sizeof *sink.put),
                                  .task = ctx };
    struct vc_err fatal = { 0 };
    enum vc_status rc =
        todo && have && index && keys && sink.fresh && sink.put ? VC_OK : vc_err_oom(&fatal);
    size_t n_todo = 0;
    for (size_t i = 0; rc >= 0 && i < n; i++) {
        st[i] = VC_OK;
        vc_err_clear(&errs[i]);
        if (!ops->wants(state, v[i]))
            continue;
        have[i] =
            cache ? st_model_cache_get(cache, v[i]->src_index, st_model_sample_key(v[i])) : NULL;
        if (!have[i]) {
            index[n_todo] = v[i]->src_index;
            keys[n_todo] = st_model_sample_key(v[i]);
            todo[n_todo++] = i;
        }
    }
    if (rc >= 0 && n_todo)
        rc = ops->compute(state, task, v, todo, n_todo, &sink, ctx->run, &fatal);
    if (rc >= 0 && sink.fatal.status < 0)
        rc = VC_EFATAL, fatal = sink.fatal;
    /* Every record is committed before any sample changes: a kill after
     * this line redoes nothing of this call. */
    for (size_t j = 0; rc >= 0 && j < n_todo; j++) {
        have[todo[j]] = cache ? st_model_cache_get(cache, index[j], keys[j]) : sink.fresh[j];
        if (!sink.put[j] || !have[todo[j]])
            rc = vc_err_set(&fatal, VC_EFATAL, VC_REASON_engine_error,
                            "sample '%s': the stage delivered no result", keys[j]);
    }
    for (size_t i = 0; rc >= 0 && i < n; i++) {
        if (!have[i])
            continue;
        st[i] = ops->apply(state, v[i], have[i], ctx, &verdicts[i], &errs[i]);
        if (st[i] == VC_EFATAL)
            rc = VC_EFATAL, fatal = errs[i];
    }
    /* Records the cache took are NULL here; the others are ours. */
    for (size_t j = 0; sink.fresh && j < n_todo; j++)
        cJSON_Delete(sink.fresh[j]);
    free(todo);
    free(have);
    free(sink.fresh);
    free(sink.put);
    free(index);
    free(keys);
    if (rc < 0)
        for (size_t i = 0; i < n; i++)
            st[i] = rc, errs[i] = fatal;
    return rc;
}
