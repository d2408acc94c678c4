/* stage_registry: the one table of stages and the one table of sources,
 * plus the small helpers every stage shares (default limits, the extra
 * object, plan order).  A new stage is a module plus a row here. */
#include "stage.h"

#include "core/img.h"
#include "source.h"
#include "st_caption.h"
#include "st_dedup.h"
#include "st_filter.h"
#include "st_ingest.h"
#include "st_reshard.h"
#include "st_score.h"
#include "st_stats.h"
#include "st_write.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const struct source_ops src_wds_ops, src_pairs_ops, src_docs_ops, src_urls_ops, src_pdf_ops;

const struct stage_ops *const stage_table[] = {
    &st_ingest_ops, &st_filter_ops,  &st_dedup_ops, &st_caption_ops, &st_ocr_ops,
    &st_score_ops,  &st_reshard_ops, &st_stats_ops, &st_write_ops,   NULL,
};

const struct source_ops *const source_table[] = {
    &src_wds_ops, &src_pairs_ops, &src_docs_ops, &src_urls_ops, &src_pdf_ops, NULL,
};

const struct stage_ops *stage_find(const char *name)
{
    for (size_t i = 0; stage_table[i]; i++)
        if (strcmp(stage_table[i]->name, name) == 0)
            return stage_table[i];
    return NULL;
}

const struct source_ops *source_find(const char *name)
{
    for (size_t i = 0; source_table[i]; i++)
        if (strcmp(source_table[i]->name, name) == 0)
            return source_table[i];
    return NULL;
}

void stage_limits_default(struct stage_limits *l)
{
    /* 64 MiB: ten times the largest photo a web crawl keeps; anything
     * larger is a video, an archive or an attack. */
    l->max_entry_bytes = 64ull << 20;
    l->max_pixels = IMG_DEFAULT_MAX_PIXELS;
    l->max_side = IMG_DEFAULT_MAX_SIDE;
    /* 64 KiB of text per field: captions are < 1 KiB and an OBELICS text
     * node rarely passes 10 KiB; longer is scraped boilerplate. */
    l->max_text_bytes = 64u << 10;
    /* 4 MiB per json field / JSONL record: a long document with its
     * metadata fits many times over. */
    l->max_json_bytes = 4u << 20;
    /* The per-sample arena: a few maximal entries plus decode scratch. */
    l->max_sample_bytes = 256ull << 20;
    l->max_fields = SAMPLE_MAX_FIELDS;
    /* 2 GiB of decoded pixels for the whole run: the largest image the
     * pixel limits let through (16383 x 10920, RGBA: 715 MB) twice over,
     * or a hundred 5-megapixel photos at once. */
    l->max_decode_bytes = 2ull << 30;
}

cJSON *stage_task_extra(struct stage_task_ctx *ctx)
{
    if (!ctx->extra)
        ctx->extra = cJSON_CreateObject();
    return ctx->extra;
}

void stage_plan_set_order(struct stage_plan *plan, size_t *order, size_t n)
{
    if (plan->order != order)
        free(plan->order);
    plan->order = order;
    plan->n_order = n;
}

size_t stage_plan_find(const struct stage_plan *plan, uint32_t unit, uint64_t index)
{
    size_t lo = 0, hi = plan->n_recs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct stage_rec *r = &plan->recs[mid];
        if (r->unit < unit || (r->unit == unit && r->index < index))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < plan->n_recs && plan->recs[lo].unit == unit && plan->recs[lo].index == index
               ? lo
               : SIZE_MAX;
}

enum vc_status stage_plan_drop(struct stage_plan_stream *p, const struct stage_drop *d,
                               struct vc_err *err)
{
    return p->drop(p, d, err);
}

bool stage_work_path(char *buf, size_t cap, const struct stage_ctx *ctx, const char *stage,
                     const char *what, uint64_t n)
{
    int k = snprintf(buf, cap, "%s/r%u-%s-%s-%06llu", ctx->work_dir, (unsigned)ctx->round, stage,
                     what, (unsigned long long)n);
    return k >= 0 && (size_t)k < cap;
}

bool stage_is_global(const struct stage_ops *ops, const void *state)
{
    return (ops->plan || ops->plan_stream || ops->reduce) &&
           (!ops->is_global || ops->is_global(state));
}
