/* st_stats: the audit inside a run.  MAP records every sample that reaches
 * the stage (sample_stats_observe, plus each filter score the filter stage
 * left in the sample's metadata) into one stats object per task, written to
 * OUT/stats/input-<unit>.json when the task ends.  FINISH merges them in
 * unit order with the funnel read back from the run's ledger (every input
 * sample's fate, reasons, scores of rejected samples, per source) and
 * writes OUT/stats.json and OUT/report.html.  Never rejects a sample.
 *
 * Params: {"stage": "stats", "decode": false, "language": true,
 *          "title": "..."}. */
#include "st_stats.h"

#include "core/vc_fs.h"
#include "manifests/report_html.h"
#include "manifests/stats.h"
#include "sample_stats.h"
#include "stage_cfg.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WHERE "stage 'stats'"

struct st_stats {
    struct sample_stats_opts opts;
    char title[256];
    const char *out_dir; /* borrowed for the run */
};

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
        return vc_err_oom(err);
    st->opts.decode = decode;
    snprintf(st->title, sizeof st->title, "%s", title);
    st->out_dir = ctx ? ctx->out_dir : NULL;
    if (language && sample_stats_lang_on(&st->opts, err) != VC_OK) {
        free(st);
        return vc_err_prefix(err, WHERE);
    }
    *state = st;
    return VC_OK;
}

static void stats_destroy(void *state)
{
    struct st_stats *st = state;
    if (!st)
        return;
    sample_stats_lang_off(&st->opts);
    free(st);
}

static enum vc_status stats_task_begin(void *state, struct stage_task_ctx *ctx, struct vc_err *err)
{
    (void)state;
    ctx->task_state = stats_new();
    if (!ctx->task_state)
        return vc_err_oom(err);
    return VC_OK;
}

static enum vc_status stats_map(void *state, struct sample *s, struct stage_task_ctx *ctx,
                                struct vc_err *err)
{
    struct st_stats *st = state;
    struct vc_err ignored;
    /* A broken image was counted under "error" by the observer; the
     * ingest stage owns the decision to drop it, so the sample goes on. */
    sample_stats_observe(ctx->task_state, s, &st->opts, &ignored);
    /* Scores of kept samples; the rejected ones' come from the ledger. */
    sample_stats_observe_scores(ctx->task_state, s->meta);
    (void)err;
    return VC_OK;
}

/* Per input unit, beside the outputs: the audit "per shard" of the input. */
static void task_file(const struct st_stats *st, uint32_t unit, char *out, size_t cap)
{
    snprintf(out, cap, "%s/stats/input-%06u.json", st->out_dir, unit);
}

static enum vc_status stats_task_end(void *state, struct stage_task_ctx *ctx, struct vc_err *err)
{
    struct st_stats *st = state;
    char path[4096];
    snprintf(path, sizeof path, "%s/stats", st->out_dir);
    enum vc_status rc = vc_fs_mkdirs(path, err);
    task_file(st, ctx->unit, path, sizeof path);
    if (rc == VC_OK)
        rc = stats_write_json(ctx->task_state, path, err);
    stats_free(ctx->task_state);
    ctx->task_state = NULL;
    return rc;
}

static enum vc_status stats_finish(void *state, const struct stage_finish_ctx *ctx,
                                   struct vc_err *err)
{
    struct st_stats *st = state;
    struct stats *merged = stats_new();
    if (!merged)
        return vc_err_oom(err);
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
        rc = sample_stats_read_ledger(path, merged, err);
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
