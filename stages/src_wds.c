/* src_wds: a thin adapter from wds_read to the source table.  Shards are
 * units in the order "urls" lists them; nothing is globbed, so the order
 * (and with it every output byte) is fixed by the spec. */
#include "src_wds.h"

#include "src_util.h"
#include "stage_cfg.h"
#include "wds_read.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

struct src_wds {
    struct source_unit *units;
    size_t n;
    struct wds_read_limits limits;
};

static void wds_destroy(void *state)
{
    struct src_wds *w = state;
    if (!w)
        return;
    src_units_free(w->units, w->n);
    free(w);
}

static enum vc_status wds_create(const cJSON *cfg, const char *where, const struct stage_ctx *ctx,
                                 void **state, struct vc_err *err)
{
    static const char *const keys[] = { SOURCE_COMMON_KEYS, "urls", NULL };
    VC_TRY(stage_cfg_check_keys(cfg, where, keys, err));
    const cJSON *urls = cJSON_GetObjectItemCaseSensitive(cfg, "urls");
    if (!urls)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "%s: key 'urls' is required", where);
    char **paths = NULL;
    size_t n = 0;
    VC_TRY(src_urls_expand(urls, where, "urls", ctx, &paths, &n, err));
    struct src_wds *w = calloc(1, sizeof *w);
    if (w)
        w->units = calloc(n, sizeof *w->units);
    if (!w || !w->units) {
        free(w);
        src_paths_free(paths, n);
        return vc_err_oom(err);
    }
    for (size_t i = 0; i < n; i++)
        w->units[i].file = paths[i]; /* ownership moves */
    free(paths);
    w->n = n;
    w->limits.max_entry_bytes = ctx->limits->max_entry_bytes;
    w->limits.max_fields = ctx->limits->max_fields;
    *state = w;
    return VC_OK;
}

static const struct source_unit *wds_units(void *state, size_t *n)
{
    struct src_wds *w = state;
    *n = w->n;
    return w->units;
}

static enum vc_status wds_open(void *state, const struct source_unit *u, void **cursor,
                               struct vc_err *err)
{
    const struct src_wds *w = state;
    struct wds_reader *r;
    VC_TRY(wds_reader_open(u->file, &w->limits, &r, err));
    wds_reader_keep_offsets(r);
    *cursor = r;
    return VC_OK;
}

/* A document in webdataset form (a json holding "texts" and "images"): its
 * positions pass the documents source's check, and each image entry names
 * a field of the sample, so what is written lays out as a sequence. */
static enum vc_status check_document(const struct sample *s, struct vc_err *err)
{
    const struct sample_field *jf = sample_field_get(s, "json");
    /* Most samples are pairs: no parse unless the json may be a document. */
    if (!jf || !sample_json_may_have_key(jf, "images"))
        return VC_OK;
    cJSON *j = cJSON_ParseWithLength((const char *)jf->data, jf->size);
    const cJSON *texts = cJSON_GetObjectItemCaseSensitive(j, "texts");
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(j, "images");
    enum vc_status rc = VC_OK;
    if (texts && images)
        rc = src_doc_positions(texts, images, err);
    int pos = 0;
    for (const cJSON *im = images ? images->child : NULL; rc == VC_OK && texts && im;
         im = im->next, pos++)
        if (cJSON_IsString(im) && !sample_field_get(s, im->valuestring))
            rc = vc_err_set(err, VC_ESAMPLE, VC_REASON_missing_image,
                            "position %d names image '%s', which the sample lacks", pos,
                            im->valuestring);
    cJSON_Delete(j);
    return rc;
}

static enum vc_status wds_next(void *cursor, struct sample *s, struct vc_err *err)
{
    enum vc_status rc = wds_reader_next(cursor, s, err);
    return rc == VC_OK ? check_document(s, err) : rc;
}

static void wds_close(void *cursor)
{
    wds_reader_close(cursor);
}

const struct source_ops src_wds_ops = {
    .name = "webdataset",
    .create = wds_create,
    .units = wds_units,
    .open = wds_open,
    .next = wds_next,
    .close = wds_close,
    .destroy = wds_destroy,
};
