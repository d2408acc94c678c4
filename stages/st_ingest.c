/* st_ingest: validation only.  Limits come from the spec's "limits" (see
 * stage_limits_default); this module never allocates beyond what the
 * codecs need for a probe (or, with "decode", one image at a time). */
#include "st_ingest.h"

#include "src_util.h"

#include "core/img.h"
#include "core/vc_utf8.h"
#include "stage_cfg.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

struct ingest {
    bool decode;
};

enum ingest_kind ingest_field_kind(const char *name)
{
    if (sample_field_name_is_image(name))
        return INGEST_IMAGE;
    const char *dot = strrchr(name, '.');
    const char *ext = dot ? dot + 1 : name;
    if (!strcmp(ext, "txt") || !strcmp(ext, "text") || !strcmp(ext, "caption"))
        return INGEST_TEXT;
    if (!strcmp(ext, "json"))
        return INGEST_JSON;
    return INGEST_OTHER;
}

/* Member names become "<key>.<field>" in a ustar header; the writer takes
 * [A-Za-z0-9_.-] without a leading dot, which every reader handles. */
static bool field_name_ok(const char *name)
{
    if (!name[0] || name[0] == '.')
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '.' || *p == '-'))
            return false;
    return true;
}

static enum vc_status ingest_create(const cJSON *cfg, const struct stage_ctx *ctx, void **state,
                                    struct vc_err *err)
{
    (void)ctx;
    static const char *const keys[] = { "stage", "decode", NULL };
    VC_TRY(stage_cfg_check_keys(cfg, "stage 'ingest'", keys, err));
    struct ingest *in = calloc(1, sizeof *in);
    if (!in)
        return vc_err_oom(err);
    enum vc_status rc = stage_cfg_bool(cfg, "stage 'ingest'", "decode", false, &in->decode, err);
    if (rc < 0) {
        free(in);
        return rc;
    }
    *state = in;
    return VC_OK;
}

static enum vc_status check_image(const struct ingest *in, const struct stage_limits *lim,
                                  const struct sample_field *f, struct vc_err *err)
{
    struct img_limits il = { .max_pixels = lim->max_pixels, .max_side = lim->max_side };
    struct img_info info;
    VC_TRY(img_probe(f->data, f->size, &il, &info, err));
    return in->decode ? img_verify(f->data, f->size, &il, err) : VC_OK;
}

static enum vc_status check_text(const struct stage_limits *lim, const struct sample_field *f,
                                 enum ingest_kind kind, struct vc_err *err)
{
    uint64_t cap = kind == INGEST_JSON ? lim->max_json_bytes : lim->max_text_bytes;
    if (f->size > cap)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_field_too_long, "%zu bytes, the limit is %llu",
                          f->size, (unsigned long long)cap);
    size_t at;
    if (!vc_utf8_valid(f->data, f->size, &at))
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_text_not_utf8, "invalid UTF-8 at byte %zu",
                          at);
    if (kind == INGEST_JSON) {
        cJSON *j;
        VC_TRY(src_json_object((const char *)f->data, f->size, &j, err));
        cJSON_Delete(j);
    }
    return VC_OK;
}

static enum vc_status ingest_map(void *state, struct sample *s, struct stage_task_ctx *ctx,
                                 struct vc_err *err)
{
    const struct ingest *in = state;
    const struct stage_limits *lim = ctx->run->limits;
    if (s->n_fields == 0)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_missing_field, "sample has no fields");
    if (s->n_fields > lim->max_fields)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_too_many_fields, "%zu fields, the limit is %u",
                          s->n_fields, lim->max_fields);
    for (size_t i = 0; i < s->n_fields; i++) {
        const struct sample_field *f = &s->fields[i];
        enum vc_status rc = VC_OK;
        if (!field_name_ok(f->name))
            rc = vc_err_set(err, VC_ESAMPLE, VC_REASON_unsafe_path,
                            "field name has characters other than [A-Za-z0-9_.-]");
        else if (f->size > lim->max_entry_bytes)
            rc = vc_err_set(err, VC_ESAMPLE, VC_REASON_entry_too_large,
                            "%zu bytes, the limit is %llu", f->size,
                            (unsigned long long)lim->max_entry_bytes);
        else if (ingest_field_kind(f->name) == INGEST_IMAGE)
            rc = check_image(in, lim, f, err);
        else if (ingest_field_kind(f->name) != INGEST_OTHER)
            rc = check_text(lim, f, ingest_field_kind(f->name), err);
        if (rc < 0)
            return vc_err_prefix(err, "field '%s'", f->name);
    }
    return VC_OK;
}

static void ingest_destroy(void *state)
{
    free(state);
}

const struct stage_ops st_ingest_ops = {
    .name = "ingest",
    .caps = STAGE_CAP_FIRST | STAGE_CAP_ONCE,
    .create = ingest_create,
    .map = ingest_map,
    .destroy = ingest_destroy,
};
