/* st_stats: the audit inside a run.  MAP records every sample that reaches
 * the stage (sample_stats_observe, plus each filter score the filter stage
 * left in the sample's metadata) into one stats object per task, written to
 * OUT/_work/stats-<unit>.json when the task ends.  FINISH merges them in
 * unit order with the funnel read back from the run's ledger (every input
 * sample's fate, reasons, scores of rejected samples, per source) and
 * writes OUT/stats.json and OUT/report.html.  Never rejects a sample.
 *
 * Params: {"stage": "stats", "decode": false, "language": true,
 *          "title": "..."}. */
#include "st_stats.h"

#include "core/vc_fs.h"
#include "filters/flt_lang.h"
#include "manifests/report_html.h"
#include "manifests/stats.h"
#include "sample_stats.h"
#include "stage_cfg.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WHERE "stage 'stats'"

/* A ledger line is a few hundred bytes; 1 MiB means a corrupt file. */
#define LEDGER_MAX_LINE (1u << 20)

struct st_stats {
    struct sample_stats_opts opts;
    struct langid *lang; /* owned; NULL when language counting is off */
    char title[256];
    const char *work_dir, *out_dir; /* borrowed for the run */
};

static const char *lang_of(const char *text, size_t n, void *ctx)
{
    struct langid_result r;
    struct vc_err err;
    if (langid_identify(ctx, text, n, -1, &r, &err) != VC_OK)
        return NULL;
    return r.best;
}

static enum vc_status stats_create(const cJSON *cfg, const struct stage_ctx *ctx, void **state,
                                   struct vc_err *err)
{
    static const char *const keys[] = { "stage", "decode", "language", "title", NULL };
    VC_TRY(stage_cfg_check_keys(cfg, WHERE, keys, err));
    bool decode, language;
    const char *title;
    VC_TRY(stage_cfg_bool(cfg, WHERE, "decode", false, &decode, err));
    VC_TRY(stage_cfg_bool(cfg, WHERE, "language", true, &language, err));
    VC_TRY(stage_cfg_str(cfg, WHERE, "title", "vlmcurate run report", &title, err));
    struct st_stats *st = calloc(1, sizeof *st);
    if (!st)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    st->opts.decode = decode;
    snprintf(st->title, sizeof st->title, "%s", title);
    st->work_dir = ctx ? ctx->work_dir : NULL;
    st->out_dir = ctx ? ctx->out_dir : NULL;
    if (language) {
        /* Scots is left out as the language filter does: its fingerprint
         * is a near copy of English's and would split English counts. */
        static const char *const skip[] = { "sco" };
        enum vc_status rc = langid_load(LANGID_DEFAULT_DIR, skip, 1, &st->lang, err);
        if (rc != VC_OK) {
            free(st);
            return vc_err_prefix(err, WHERE);
        }
        st->opts.lang = lang_of;
        st->opts.lang_ctx = st->lang;
    }
    *state = st;
    return VC_OK;
}

static void stats_destroy(void *state)
{
    struct st_stats *st = state;
    if (!st)
        return;
    langid_free(st->lang);
    free(st);
}

static enum vc_status stats_task_begin(void *state, struct stage_task_ctx *ctx, struct vc_err *err)
{
    (void)state;
    ctx->task_state = stats_new();
    if (!ctx->task_state)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    return VC_OK;
}

/* Filter scores of kept samples: meta "filter_scores" {name: score}. */
static void observe_scores(struct stats *st, const struct sample *s)
{
    const cJSON *scores =
        s->meta ? cJSON_GetObjectItemCaseSensitive(s->meta, "filter_scores") : NULL;
    const cJSON *it;
    cJSON_ArrayForEach(it, scores)
    {
        if (!cJSON_IsNumber(it))
            continue;
        char name[160];
        snprintf(name, sizeof name, "score.%s", it->string);
        stats_observe(st, "all", name, it->valuedouble);
    }
}

static enum vc_status stats_map(void *state, struct sample *s, struct stage_task_ctx *ctx,
                                struct vc_err *err)
{
    struct st_stats *st = state;
    struct vc_err ignored;
    /* A broken image was counted under "error" by the observer; the
     * ingest stage owns the decision to drop it, so the sample goes on. */
    sample_stats_observe(ctx->task_state, s, &st->opts, &ignored);
    observe_scores(ctx->task_state, s);
    (void)err;
    return VC_OK;
}

static void task_file(const struct st_stats *st, uint32_t unit, char *out, size_t cap)
{
    snprintf(out, cap, "%s/stats-%06u.json", st->work_dir, unit);
}

static enum vc_status stats_task_end(void *state, struct stage_task_ctx *ctx, struct vc_err *err)
{
    struct st_stats *st = state;
    char path[4096];
    task_file(st, ctx->unit, path, sizeof path);
    enum vc_status rc = stats_write_json(ctx->task_state, path, err);
    stats_free(ctx->task_state);
    ctx->task_state = NULL;
    return rc;
}

static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* One ledger line into the funnel: state counts overall and per source,
 * the reason (filter name for filter rejections) with the key as example,
 * and the score of a rejected sample into its filter's histogram. */
static void count_ledger_line(struct stats *st, const cJSON *line)
{
    const char *state = json_str(line, "state");
    const char *source = json_str(line, "source");
    const char *key = json_str(line, "key");
    if (!state)
        return;
    char group[160];
    snprintf(group, sizeof group, "source:%s", source ? source : "?");
    stats_count(st, "all", "funnel", "input", 1, NULL);
    stats_count(st, group, "funnel", "input", 1, NULL);
    stats_count(st, "all", "funnel", state, 1, NULL);
    stats_count(st, group, "funnel", state, 1, NULL);
    const char *filter = json_str(line, "filter");
    const char *reason = json_str(line, "reason");
    const char *why = filter ? filter : reason ? reason : "unknown";
    if (strcmp(state, "rejected") == 0) {
        stats_count(st, "all", "reject", why, 1, key);
        stats_count(st, group, "reject", why, 1, key);
        const cJSON *score = cJSON_GetObjectItemCaseSensitive(line, "score");
        if (filter && cJSON_IsNumber(score)) {
            char name[160];
            snprintf(name, sizeof name, "score.%s", filter);
            stats_observe(st, "all", name, score->valuedouble);
        }
    } else if (strcmp(state, "error") == 0) {
        stats_count(st, "all", "error", why, 1, key);
        stats_count(st, group, "error", why, 1, key);
    }
}

static enum vc_status read_ledger(const char *path, struct stats *st, struct vc_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "cannot open ledger %s", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    enum vc_status rc = VC_OK;
    while ((n = getline(&line, &cap, f)) > 0) {
        if ((size_t)n > LEDGER_MAX_LINE) {
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_json_invalid, "%s: line over %u bytes", path,
                            LEDGER_MAX_LINE);
            break;
        }
        cJSON *j = cJSON_ParseWithLength(line, (size_t)n);
        if (!j) {
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_json_invalid, "%s: a line is not JSON", path);
            break;
        }
        count_ledger_line(st, j);
        cJSON_Delete(j);
    }
    free(line);
    fclose(f);
    return rc;
}

static enum vc_status stats_finish(void *state, const struct stage_finish_ctx *ctx,
                                   struct vc_err *err)
{
    struct st_stats *st = state;
    struct stats *merged = stats_new();
    if (!merged)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    enum vc_status rc = VC_OK;
    for (size_t u = 0; u < ctx->n_units && rc == VC_OK; u++) {
        char path[4096];
        task_file(st, (uint32_t)u, path, sizeof path);
        if (!vc_fs_exists(path))
            continue; /* a unit that never reached this stage */
        struct stats *part = NULL;
        rc = stats_read_json(path, &part, err);
        if (rc == VC_OK)
            rc = stats_merge(merged, part, err);
        stats_free(part);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/ledger.jsonl", st->out_dir);
    if (rc == VC_OK && vc_fs_exists(path))
        rc = read_ledger(path, merged, err);
    if (rc == VC_OK) {
        snprintf(path, sizeof path, "%s/stats.json", st->out_dir);
        rc = stats_write_json(merged, path, err);
    }
    if (rc == VC_OK) {
        snprintf(path, sizeof path, "%s/report.html", st->out_dir);
        rc = report_html_write(merged, st->title, path, err);
    }
    stats_free(merged);
    return rc;
}

const struct stage_ops st_stats_ops = {
    .name = "stats",
    .caps = STAGE_CAP_ONCE,
    .create = stats_create,
    .task_begin = stats_task_begin,
    .map = stats_map,
    .task_end = stats_task_end,
    .finish = stats_finish,
    .destroy = stats_destroy,
};
