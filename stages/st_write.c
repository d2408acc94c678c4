/* st_write: image re-encoding and the output json.  Decoded pixels are
 * heap memory owned here for the span of one field; everything that stays
 * with the sample is copied into its arena.  Determinism rests on the
 * codecs' own (img_encode promises the same bytes for the same pixels). */
#include "st_write.h"

#include "core/img.h"
#include "core/sha256.h"
#include "core/vc_mem.h"
#include "core/vc_utf8.h"
#include "stage_cfg.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct writer_opts {
    int resize_mode; /* enum img_resize_mode */
    uint64_t image_size;
    enum img_format format; /* IMG_FORMAT_UNKNOWN = keep the source format */
    uint64_t quality;
    bool verify_header_only; /* "verify": "header" */
};

static enum vc_status write_create(const cJSON *cfg, const struct stage_ctx *ctx, void **state,
                                   struct vc_err *err)
{
    (void)ctx;
    static const char *const keys[] = {
        "stage", "resize_mode", "image_size", "encode_format", "encode_quality", "verify", NULL
    };
    /* img2dataset's names; the img module holds their geometry. */
    static const char *const modes[] = { "no",     "keep_ratio",         "center_crop",
                                         "border", "keep_ratio_largest", "fixed",
                                         NULL };
    static const char *const formats[] = { "keep", "jpg", "png", "webp", NULL };
    static const char *const verify[] = { "full", "header", NULL };
    const char *w = "stage 'write'";
    VC_TRY(stage_cfg_check_keys(cfg, w, keys, err));
    struct writer_opts *o = calloc(1, sizeof *o);
    if (!o)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    int fmt = 0, ver = 0;
    enum vc_status rc;
    if ((rc = stage_cfg_enum(cfg, w, "resize_mode", modes, 0, &o->resize_mode, err)) < 0 ||
        (rc = stage_cfg_u64(cfg, w, "image_size", 256, 8, 16384, &o->image_size, err)) < 0 ||
        (rc = stage_cfg_enum(cfg, w, "encode_format", formats, 0, &fmt, err)) < 0 ||
        (rc = stage_cfg_u64(cfg, w, "encode_quality", 95, 1, 100, &o->quality, err)) < 0 ||
        (rc = stage_cfg_enum(cfg, w, "verify", verify, 0, &ver, err)) < 0) {
        free(o);
        return rc;
    }
    o->resize_mode = (int)img_resize_mode_from_name(modes[o->resize_mode]);
    o->format = fmt ? img_format_from_name(formats[fmt]) : IMG_FORMAT_UNKNOWN;
    o->verify_header_only = ver == 1;
    *state = o;
    return VC_OK;
}

/* The field's name with its extension replaced: "0.png" -> "0.webp". */
static const char *renamed(struct arena *a, const char *name, const char *ext)
{
    const char *dot = strrchr(name, '.');
    size_t stem = dot ? (size_t)(dot - name) + 1 : 0;
    char *out = arena_alloc(a, stem + strlen(ext) + 1);
    if (out) {
        memcpy(out, name, stem);
        strcpy(out + stem, ext);
    }
    return out;
}

/* Field renames made by re-encoding ("0.png" -> "0.webp"). */
struct renames {
    const char *from[SAMPLE_MAX_FIELDS], *to[SAMPLE_MAX_FIELDS];
    size_t n;
};

/* A document's json names its image fields in "images": follow renames. */
static void apply_renames(cJSON *json, const struct renames *rn)
{
    cJSON *images = cJSON_GetObjectItemCaseSensitive(json, "images");
    cJSON *it;
    cJSON_ArrayForEach(it, images)
    {
        for (size_t i = 0; i < rn->n; i++)
            if (cJSON_IsString(it) && strcmp(it->valuestring, rn->from[i]) == 0) {
                cJSON_SetValuestring(it, rn->to[i]);
                break;
            }
    }
}

static enum vc_status reencode(const struct writer_opts *o, const struct stage_limits *lim,
                               struct sample *s, struct sample_field *f, enum img_format src_fmt,
                               struct renames *rn, struct vc_err *err)
{
    struct img_limits il = { .max_pixels = lim->max_pixels, .max_side = lim->max_side };
    struct img im = { 0 }, small = { 0 };
    uint8_t *bytes = NULL;
    size_t n = 0;
    enum img_format fmt = o->format ? o->format : src_fmt;
    enum vc_status rc = img_decode(f->data, f->size, &il, 0, &im, err);
    if (rc == VC_OK && o->resize_mode != IMG_RESIZE_NO) {
        rc = img_resize(&im, (enum img_resize_mode)o->resize_mode, (uint32_t)o->image_size, &small,
                        err);
        if (rc == VC_OK) {
            img_release(&im);
            im = small;
        }
    }
    if (rc == VC_OK)
        rc = img_encode(&im, fmt, (int)o->quality, &bytes, &n, err);
    img_release(&im);
    if (rc < 0)
        return rc;
    const char *name = f->name;
    if (fmt != src_fmt) {
        name = renamed(s->arena, f->name, img_format_ext(fmt));
        if (name && sample_field_get(s, name))
            rc = vc_err_set(err, VC_ESAMPLE, VC_REASON_encode_error,
                            "re-encoding would give a second field '%s'", name);
    }
    const uint8_t *copy = rc == VC_OK && name ? arena_memdup(s->arena, bytes, n) : NULL;
    free(bytes);
    if (rc < 0)
        return rc;
    if (!copy)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_mem_cap, "per-sample memory cap reached");
    if (name != f->name && rn->n < SAMPLE_MAX_FIELDS) {
        rn->from[rn->n] = f->name;
        rn->to[rn->n++] = name;
    }
    f->name = name;
    f->data = copy;
    f->size = n;
    return VC_OK;
}

/* width/height/format/sha256 of one image field, from its final bytes. */
static enum vc_status describe(const struct stage_limits *lim, const struct sample_field *f,
                               cJSON *into, struct vc_err *err)
{
    struct img_limits il = { .max_pixels = lim->max_pixels, .max_side = lim->max_side };
    struct img_info info;
    VC_TRY(img_probe(f->data, f->size, &il, &info, err));
    char hex[65];
    sha256_hex(f->data, f->size, hex);
    if (!cJSON_AddNumberToObject(into, "width", info.width) ||
        !cJSON_AddNumberToObject(into, "height", info.height) ||
        !cJSON_AddStringToObject(into, "format", img_format_ext(info.format)) ||
        !cJSON_AddStringToObject(into, "sha256", hex) ||
        (info.orientation > 1 &&
         !cJSON_AddNumberToObject(into, "exif_orientation", info.orientation)))
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    return VC_OK;
}

/* A document's image fields numbered 0, 1, 2, ... in document order,
 * without the gaps that dropped images leave ("0.jpg", "2.png" become
 * "0.jpg", "1.png"), the json's "images" entries renamed alike. */
static enum vc_status renumber_images(struct sample *s, cJSON *json, struct vc_err *err)
{
    cJSON *images = cJSON_GetObjectItemCaseSensitive(json, "images");
    if (!cJSON_IsArray(images) || !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(json, "texts")))
        return VC_OK;
    /* Fields first, names after: no lookup sees a half-renamed sample. */
    struct sample_field *fields[SAMPLE_MAX_FIELDS];
    cJSON *entries[SAMPLE_MAX_FIELDS];
    size_t n = 0;
    cJSON *it;
    cJSON_ArrayForEach(it, images)
    {
        struct sample_field *f = cJSON_IsString(it) ? sample_field_get(s, it->valuestring) : NULL;
        if (f && n < SAMPLE_MAX_FIELDS)
            fields[n] = f, entries[n++] = it;
    }
    for (size_t k = 0; k < n; k++) {
        const char *dot = strchr(fields[k]->name, '.');
        char name[64];
        snprintf(name, sizeof name, "%zu.%s", k, dot ? dot + 1 : "bin");
        if (strcmp(name, fields[k]->name) == 0)
            continue;
        const char *copy = arena_strdup(s->arena, name);
        if (!copy || !cJSON_SetValuestring(entries[k], name))
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_mem_cap, "per-sample memory cap reached");
        fields[k]->name = copy;
    }
    return VC_OK;
}

static void set_item(cJSON *obj, const char *key, cJSON *item)
{
    if (cJSON_GetObjectItemCaseSensitive(obj, key))
        cJSON_ReplaceItemInObjectCaseSensitive(obj, key, item);
    else
        cJSON_AddItemToObject(obj, key, item);
}

static enum vc_status compose_json(struct sample *s, const struct stage_limits *lim,
                                   const struct renames *rn, struct vc_err *err)
{
    struct sample_field *jf = sample_field_get(s, "json");
    cJSON *out = jf ? cJSON_ParseWithLength((const char *)jf->data, jf->size) : NULL;
    if (!jf)
        out = cJSON_CreateObject();
    if (!cJSON_IsObject(out)) {
        cJSON_Delete(out);
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_json_invalid, "field 'json' is not an object");
    }
    apply_renames(out, rn);
    enum vc_status rc = renumber_images(s, out, err);
    if (rc < 0) {
        cJSON_Delete(out);
        return rc;
    }
    /* The tool's own facts live under one key, so input columns named
     * source, width, format, ... pass through untouched; an input
     * "vlmcurate" object (our own output read again) is replaced. */
    cJSON *own = cJSON_CreateObject();
    if (!own || !cJSON_AddStringToObject(own, "source", s->source ? s->source : "") ||
        !vc_utf8_json_add(own, "orig_key", s->orig_key ? s->orig_key : "")) {
        cJSON_Delete(own);
        cJSON_Delete(out);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    }
    set_item(out, "vlmcurate", own);
    /* What stages computed (filter_scores, synthetic_caption, ...) stays
     * at the top level, where their readers look. */
    if (s->meta)
        while (s->meta->child) {
            cJSON *it = cJSON_DetachItemViaPointer(s->meta, s->meta->child);
            set_item(out, it->string, it);
        }
    cJSON *others = NULL;
    const struct sample_field *main_img = sample_main_image(s);
    for (size_t i = 0; rc == VC_OK && i < s->n_fields; i++) {
        const struct sample_field *f = &s->fields[i];
        if (!sample_field_is_image(f, NULL))
            continue;
        if (f == main_img) {
            rc = describe(lim, f, own, err);
            continue;
        }
        if (!others && !(others = cJSON_CreateObject()))
            break;
        cJSON *o = cJSON_AddObjectToObject(others, f->name);
        rc = o ? describe(lim, f, o, err)
               : vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
        if (rc < 0)
            vc_err_prefix(err, "field '%s'", f->name);
    }
    if (others)
        set_item(own, "images", others);
    char *text = rc == VC_OK ? vc_utf8_json_print(out, false) : NULL;
    cJSON_Delete(out);
    if (rc < 0)
        return rc;
    if (!text)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    rc = sample_set_field(s, "json", text, strlen(text), err);
    free(text);
    return rc;
}

static enum vc_status write_map(void *state, struct sample *s, struct stage_task_ctx *ctx,
                                struct vc_err *err)
{
    const struct writer_opts *o = state;
    const struct stage_limits *lim = ctx->run->limits;
    struct renames rn;
    rn.n = 0;
    struct img_limits il = { .max_pixels = lim->max_pixels, .max_side = lim->max_side };
    for (size_t i = 0; i < s->n_fields; i++) {
        struct sample_field *f = &s->fields[i];
        enum img_format src;
        if (!sample_field_is_image(f, &src))
            continue;
        const char *name = f->name;
        /* A GIF, a TIFF or bytes no codec knows: nothing a trainer's
         * loader could be promised to open. */
        if (src == IMG_FORMAT_UNKNOWN) {
            vc_err_set(err, VC_ESAMPLE, VC_REASON_unsupported_format,
                       "not a JPEG, PNG or WebP file (%zu bytes)", f->size);
            return vc_err_prefix(err, "field '%s'", name);
        }
        bool convert = o->format != IMG_FORMAT_UNKNOWN && o->format != src;
        enum vc_status rc;
        if (o->resize_mode != IMG_RESIZE_NO || convert)
            rc = reencode(o, lim, s, f, src, &rn, err); /* a full, strict decode */
        else if (!o->verify_header_only)
            rc = img_verify(f->data, f->size, &il, err);
        else
            rc = VC_OK;
        if (rc < 0)
            return vc_err_prefix(err, "field '%s'", name);
    }
    return compose_json(s, lim, &rn, err);
}

static void write_destroy(void *state)
{
    free(state);
}

const struct stage_ops st_write_ops = {
    .name = "write",
    .caps = STAGE_CAP_LAST | STAGE_CAP_ONCE,
    .create = write_create,
    .map = write_map,
    .destroy = write_destroy,
};
