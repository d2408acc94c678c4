/* st_reshard: mixture, shuffle and shard sizing as one PLAN hook.  Works
 * on index arrays only (never sample bytes), so a plan over millions of
 * samples costs a few words per sample. */
#include "st_reshard.h"

#include "sample_stats.h"
#include "stage_cfg.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

enum reshard_shuffle { SHUFFLE_NONE, SHUFFLE_BUFFER, SHUFFLE_GLOBAL };
enum reshard_mix { MIX_AUTO, MIX_CONCAT, MIX_WEIGHTED };
enum reshard_stop { STOP_FIRST, STOP_ALL };
enum reshard_weight_by { BY_SAMPLES, BY_TOKENS };

/* A target size draws at most this many samples: the order costs a word
 * per sample, so this bounds PLAN's memory to 32 GiB. */
#define RESHARD_MAX_TOTAL (1ull << 32)

struct reshard {
    uint64_t seed;
    int shuffle, mix, stop, weight_by;
    uint64_t buffer;
    uint64_t samples_per_shard, shard_bytes;
    uint64_t total_samples; /* 0 = no target: the sources' budgets decide */
};

/* Independent streams for the two random steps, so turning the shuffle on
 * does not change which samples the mixture picks. */
#define RESHARD_STREAM_MIX     0x6d69787475726521ull
#define RESHARD_STREAM_SHUFFLE 0x73687566666c6521ull

void reshard_rng_seed(struct reshard_rng *r, uint64_t seed)
{
    r->state = seed;
}

uint64_t reshard_rng_next(struct reshard_rng *r)
{
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t reshard_rng_below(struct reshard_rng *r, uint64_t n)
{
    /* Reject the top partial bucket so every residue is equally likely. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = reshard_rng_next(r);
    while (x >= limit);
    return x % n;
}

double reshard_rng_unit(struct reshard_rng *r)
{
    return (double)(reshard_rng_next(r) >> 11) * 0x1.0p-53;
}

void reshard_shuffle_global(size_t *v, size_t n, uint64_t seed)
{
    struct reshard_rng r;
    reshard_rng_seed(&r, seed ^ RESHARD_STREAM_SHUFFLE);
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)reshard_rng_below(&r, i);
        size_t t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

enum vc_status reshard_shuffle_buffer(size_t *v, size_t n, size_t buffer, uint64_t seed,
                                      struct vc_err *err)
{
    if (buffer <= 1 || n <= 1)
        return VC_OK;
    if (buffer > n)
        buffer = n;
    size_t *buf = malloc(buffer * sizeof *buf);
    if (!buf)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "shuffle buffer");
    struct reshard_rng r;
    reshard_rng_seed(&r, seed ^ RESHARD_STREAM_SHUFFLE);
    size_t filled = 0, emitted = 0;
    /* Items are emitted strictly behind the read position (emitted <= i -
     * buffer + 1), so writing them back into v is safe. */
    for (size_t i = 0; i < n; i++) {
        if (filled < buffer) {
            buf[filled++] = v[i];
            continue;
        }
        size_t j = (size_t)reshard_rng_below(&r, buffer);
        v[emitted++] = buf[j];
        buf[j] = v[i];
    }
    for (size_t i = filled; i > 1; i--) {
        size_t j = (size_t)reshard_rng_below(&r, i);
        size_t t = buf[i - 1];
        buf[i - 1] = buf[j];
        buf[j] = t;
    }
    memcpy(v + emitted, buf, filled * sizeof *buf);
    free(buf);
    return VC_OK;
}

static enum vc_status reshard_create(const cJSON *cfg, const struct stage_ctx *ctx, void **state,
                                     struct vc_err *err)
{
    (void)ctx;
    static const char *const keys[] = {
        "stage",     "seed",          "shuffle",           "buffer_size", "mix", "stop",
        "weight_by", "total_samples", "samples_per_shard", "shard_bytes", NULL
    };
    static const char *const shuffles[] = { "none", "buffer", "global", NULL };
    static const char *const mixes[] = { "auto", "concat", "weighted", NULL };
    static const char *const stops[] = { "first_exhausted", "all_exhausted", NULL };
    static const char *const bys[] = { "samples", "tokens", NULL };
    const char *w = "stage 'reshard'";
    VC_TRY(stage_cfg_check_keys(cfg, w, keys, err));
    struct reshard *r = calloc(1, sizeof *r);
    if (!r)
        return vc_err_oom(err);
    enum vc_status rc;
    if ((rc = stage_cfg_u64(cfg, w, "seed", 0, 0, UINT64_MAX >> 11, &r->seed, err)) < 0 ||
        (rc = stage_cfg_enum(cfg, w, "shuffle", shuffles, SHUFFLE_NONE, &r->shuffle, err)) < 0 ||
        (rc = stage_cfg_u64(cfg, w, "buffer_size", 1000, 2, 100000000, &r->buffer, err)) < 0 ||
        (rc = stage_cfg_enum(cfg, w, "mix", mixes, MIX_AUTO, &r->mix, err)) < 0 ||
        (rc = stage_cfg_enum(cfg, w, "stop", stops, STOP_FIRST, &r->stop, err)) < 0 ||
        (rc = stage_cfg_enum(cfg, w, "weight_by", bys, BY_SAMPLES, &r->weight_by, err)) < 0 ||
        (rc = stage_cfg_u64(cfg, w, "total_samples", 0, 1, RESHARD_MAX_TOTAL, &r->total_samples,
                            err)) < 0 ||
        (rc = stage_cfg_u64(cfg, w, "samples_per_shard", 0, 1, UINT32_MAX, &r->samples_per_shard,
                            err)) < 0 ||
        (rc = stage_cfg_u64(cfg, w, "shard_bytes", 0, 4096, UINT64_MAX >> 11, &r->shard_bytes,
                            err)) < 0) {
        free(r);
        return rc;
    }
    *state = r;
    return VC_OK;
}

/* The text tokens of a sample, for weight_by tokens: whitespace-separated
 * words of its txt fields and of a document's "texts" (the unit a
 * trainer's token budget roughly scales with, without a tokenizer). */
static uint64_t sample_tokens(const struct sample *s)
{
    uint64_t total = 0;
    size_t words, chars;
    for (size_t i = 0; i < s->n_fields; i++) {
        const struct sample_field *f = &s->fields[i];
        size_t nl = strlen(f->name);
        if (strcmp(f->name, "txt") == 0 || (nl > 4 && strcmp(f->name + nl - 4, ".txt") == 0)) {
            sample_stats_text_len((const char *)f->data, f->size, &words, &chars);
            total += words;
        } else if (strcmp(f->name, "json") == 0) {
            cJSON *doc = cJSON_ParseWithLength((const char *)f->data, f->size);
            const cJSON *t;
            cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(doc, "texts"))
            {
                if (cJSON_IsString(t)) {
                    sample_stats_text_len(t->valuestring, strlen(t->valuestring), &words, &chars);
                    total += words;
                }
            }
            cJSON_Delete(doc);
        }
    }
    return total;
}

/* weight_by tokens: each sample carries its token count to PLAN. */
static enum vc_status reshard_map(void *state, struct sample *s, struct stage_task_ctx *ctx,
                                  struct vc_err *err)
{
    const struct reshard *r = state;
    if (r->weight_by != BY_TOKENS)
        return VC_OK;
    cJSON *extra = stage_task_extra(ctx);
    if (!extra || !cJSON_AddNumberToObject(extra, "tokens", (double)sample_tokens(s)))
        return vc_err_oom(err);
    return VC_OK;
}

static uint64_t rec_tokens(const struct stage_rec *rec)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rec->extra, "tokens");
    return cJSON_IsNumber(t) && t->valuedouble > 0 ? (uint64_t)t->valuedouble : 0;
}

/* Per-source draw state for the mixture. */
struct mix_src {
    size_t *recs; /* this source's KEEP records, in record order */
    size_t n, next, drawn;
    uint64_t budget; /* draws left: min(n * epochs, max_samples) */
    uint64_t tokens; /* weight_by tokens: the tokens of its n records */
    double rate;     /* draw weight: weight, or weight per mean token */
    bool active;
};

static void mark_unused(struct stage_plan *plan, const size_t *used)
{
    for (size_t i = 0; i < plan->n_recs; i++)
        if (plan->recs[i].state == STAGE_REC_KEEP && !used[i]) {
            plan->recs[i].state = STAGE_REC_REJECTED;
            plan->recs[i].stage = "mix";
            plan->recs[i].reason = VC_REASON_mix_unused;
        }
}

/* Draws a source allows: n records times its epochs, up to max_samples.
 * Without an explicit `epochs` (0) a target size may upsample it as often
 * as it needs; otherwise one pass. */
static uint64_t src_budget(const struct stage_source_info *si, size_t n, bool target)
{
    uint64_t b = si->epochs ? (uint64_t)n * si->epochs : target ? UINT64_MAX : (uint64_t)n;
    return si->max_samples && si->max_samples < b ? si->max_samples : b;
}

static size_t mix_draw(struct mix_src *m)
{
    size_t rec = m->recs[m->next];
    m->next = (m->next + 1) % m->n;
    m->drawn++;
    m->budget--;
    return rec;
}

/* Builds the mixed order, at most `limit` draws.  Weighted: each draw picks
 * an active source with probability proportional to its rate (its weight,
 * or with weight_by tokens its weight over its mean tokens per sample, so
 * that tokens come out in proportion to the weights); a source whose data
 * runs out ends the mixture (stop = first_exhausted) or leaves it
 * (all_exhausted); one that reaches its max_samples cap always just
 * leaves, and with a target size every source just leaves.  Concat: every
 * source in spec order, epochs times, up to its cap. */
static void mix(const struct reshard *r, struct stage_plan *plan, struct mix_src *ms, size_t *out,
                size_t limit, size_t *n_out)
{
    size_t ns = plan->n_sources, n = 0;
    bool weighted = r->mix == MIX_WEIGHTED || (r->mix == MIX_AUTO && ns > 1);
    if (!weighted) {
        for (size_t s = 0; s < ns; s++)
            while (ms[s].n && ms[s].budget && n < limit)
                out[n++] = mix_draw(&ms[s]);
        *n_out = n;
        return;
    }
    struct reshard_rng rng;
    reshard_rng_seed(&rng, r->seed ^ RESHARD_STREAM_MIX);
    while (n < limit) {
        double total = 0;
        for (size_t s = 0; s < ns; s++)
            if (ms[s].active)
                total += ms[s].rate;
        if (total <= 0)
            break;
        double u = reshard_rng_unit(&rng) * total, acc = 0;
        size_t pick = ns;
        for (size_t s = 0; s < ns; s++) {
            if (!ms[s].active)
                continue;
            pick = s;
            acc += ms[s].rate;
            if (u < acc)
                break;
        }
        struct mix_src *m = &ms[pick];
        out[n++] = mix_draw(m);
        if (m->budget == 0) {
            bool capped =
                plan->sources[pick].max_samples && m->drawn == plan->sources[pick].max_samples;
            if (!capped && !r->total_samples && r->stop == STOP_FIRST)
                break;
            m->active = false;
        }
    }
    *n_out = n;
}

static enum vc_status report_mix(const struct reshard *r, struct stage_plan *plan,
                                 const struct mix_src *ms, size_t n_out, const size_t *order,
                                 struct vc_err *err)
{
    static const char *const mixes[] = { "auto", "concat", "weighted" };
    static const char *const stops[] = { "first_exhausted", "all_exhausted" };
    double total_w = 0;
    for (size_t s = 0; s < plan->n_sources; s++)
        if (ms[s].n)
            total_w += plan->sources[s].weight;
    cJSON *rep = cJSON_CreateObject(), *srcs = cJSON_CreateObject();
    if (!rep || !srcs || !cJSON_AddItemToObject(rep, "sources", srcs)) {
        cJSON_Delete(rep);
        cJSON_Delete(srcs);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "mix report");
    }
    bool weighted = r->mix == MIX_WEIGHTED || (r->mix == MIX_AUTO && plan->n_sources > 1);
    cJSON_AddStringToObject(rep, "mode", mixes[weighted ? MIX_WEIGHTED : MIX_CONCAT]);
    cJSON_AddStringToObject(rep, "stop", stops[r->stop]);
    cJSON_AddNumberToObject(rep, "seed", (double)r->seed);
    cJSON_AddStringToObject(rep, "weight_by", r->weight_by == BY_TOKENS ? "tokens" : "samples");
    if (r->total_samples)
        cJSON_AddNumberToObject(rep, "total_samples", (double)r->total_samples);
    cJSON_AddNumberToObject(rep, "drawn", (double)n_out);
    uint64_t all_tokens = 0;
    for (size_t i = 0; i < n_out; i++)
        all_tokens += r->weight_by == BY_TOKENS ? rec_tokens(&plan->recs[order[i]]) : 0;
    for (size_t s = 0; s < plan->n_sources; s++) {
        cJSON *o = cJSON_AddObjectToObject(srcs, plan->sources[s].name);
        if (!o)
            continue;
        size_t distinct = ms[s].drawn < ms[s].n ? ms[s].drawn : ms[s].n;
        cJSON_AddNumberToObject(o, "weight", plan->sources[s].weight);
        cJSON_AddNumberToObject(o, "target",
                                ms[s].n && total_w > 0 ? plan->sources[s].weight / total_w : 0);
        cJSON_AddNumberToObject(o, "available", (double)ms[s].n);
        cJSON_AddNumberToObject(o, "used", (double)distinct);
        cJSON_AddNumberToObject(o, "drawn", (double)ms[s].drawn);
        cJSON_AddNumberToObject(o, "epochs",
                                ms[s].n ? (double)((ms[s].drawn + ms[s].n - 1) / ms[s].n) : 0);
        cJSON_AddNumberToObject(o, "proportion", n_out ? (double)ms[s].drawn / n_out : 0);
        if (r->weight_by == BY_TOKENS) {
            uint64_t t = 0;
            for (size_t i = 0; i < n_out; i++)
                t += plan->recs[order[i]].source == s ? rec_tokens(&plan->recs[order[i]]) : 0;
            cJSON_AddNumberToObject(o, "tokens", (double)t);
            cJSON_AddNumberToObject(o, "token_proportion",
                                    all_tokens ? (double)t / (double)all_tokens : 0);
        }
    }
    cJSON_DeleteItemFromObjectCaseSensitive(plan->report, "mix");
    cJSON_AddItemToObject(plan->report, "mix", rep);
    return VC_OK;
}

static enum vc_status reshard_plan(void *state, struct stage_plan *plan, struct vc_err *err)
{
    const struct reshard *r = state;
    size_t ns = plan->n_sources;
    struct mix_src *ms = calloc(ns ? ns : 1, sizeof *ms);
    size_t *used = calloc(plan->n_recs ? plan->n_recs : 1, sizeof *used);
    size_t *out = NULL;
    enum vc_status rc = VC_OK;
    if (!ms || !used)
        goto oom;
    /* Mix what the earlier plan hooks left in the order (each record
     * once: epochs are this stage's business). */
    for (size_t i = 0; i < plan->n_order; i++) {
        size_t rec = plan->order[i];
        if (used[rec]++)
            continue;
        struct mix_src *m = &ms[plan->recs[rec].source];
        if (m->n % 64 == 0) {
            size_t *g = realloc(m->recs, (m->n + 64) * sizeof *g);
            if (!g)
                goto oom;
            m->recs = g;
        }
        m->recs[m->n++] = rec;
    }
    uint64_t total = 0;
    for (size_t s = 0; s < ns; s++) {
        ms[s].budget = src_budget(&plan->sources[s], ms[s].n, r->total_samples > 0);
        ms[s].active = ms[s].n > 0 && ms[s].budget > 0;
        ms[s].rate = plan->sources[s].weight;
        for (size_t i = 0; r->weight_by == BY_TOKENS && i < ms[s].n; i++)
            ms[s].tokens += rec_tokens(&plan->recs[ms[s].recs[i]]);
        /* A source without text weighs as if it had one token a sample. */
        if (r->weight_by == BY_TOKENS && ms[s].tokens > ms[s].n)
            ms[s].rate /= (double)ms[s].tokens / (double)ms[s].n;
        total =
            ms[s].active && ms[s].budget > UINT64_MAX - total ? UINT64_MAX : total + ms[s].budget;
    }
    if (r->total_samples && r->total_samples < total)
        total = r->total_samples;
    out = malloc((total ? total : 1) * sizeof *out);
    if (!out)
        goto oom;
    size_t n_out = 0;
    mix(r, plan, ms, out, (size_t)total, &n_out);
    /* The mixed order, before the shuffle, feeds the token report. */
    rc = report_mix(r, plan, ms, n_out, out, err);
    memset(used, 0, plan->n_recs * sizeof *used);
    for (size_t i = 0; i < n_out; i++)
        used[out[i]] = 1;
    mark_unused(plan, used);
    if (rc == VC_OK && r->shuffle == SHUFFLE_GLOBAL)
        reshard_shuffle_global(out, n_out, r->seed);
    else if (rc == VC_OK && r->shuffle == SHUFFLE_BUFFER)
        rc = reshard_shuffle_buffer(out, n_out, (size_t)r->buffer, r->seed, err);
    if (rc == VC_OK) {
        stage_plan_set_order(plan, out, n_out);
        out = NULL;
        if (r->samples_per_shard)
            plan->samples_per_shard = r->samples_per_shard;
        if (r->shard_bytes)
            plan->shard_bytes = r->shard_bytes;
    }
    goto done;
oom:
    rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "reshard plan");
done:
    for (size_t s = 0; ms && s < ns; s++)
        free(ms[s].recs);
    free(ms);
    free(used);
    free(out);
    return rc;
}

static void reshard_destroy(void *state)
{
    free(state);
}

const struct stage_ops st_reshard_ops = {
    .name = "reshard",
    .caps = STAGE_CAP_ONCE,
    .create = reshard_create,
    .map = reshard_map,
    .plan = reshard_plan,
    .destroy = reshard_destroy,
};
