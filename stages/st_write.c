/* st_write: image re-encoding and the output json.  Decoded pixels are
 * heap memory owned here for the span of one field; everything that stays
 * with the sample is copied into its arena.  Determinism rests on the
 * codecs' own (img_encode promises the same bytes for the same pixels). */
#include "st_write.h"

#include "core/img.h"
#include "core/sha256.h"
#include "core/vc_buf.h"
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
    bool positions;          /* "layout": "positions" */
};

static enum vc_status write_create(const cJSON *cfg, const struct stage_ctx *ctx, void **state,
                                   struct vc_err *err)
{
    (void)ctx;
    static const char *const keys[] = { "stage",          "resize_mode",
                                        "image_size",     "encode_format",
                                        "encode_quality", "verify",
                                        "layout",         NULL };
    /* img2dataset's names; the img module holds their geometry. */
    static const char *const modes[] = { "no",     "keep_ratio",         "center_crop",
                                         "border", "keep_ratio_largest", "fixed",
                                         NULL };
    static const char *const formats[] = { "keep", "jpg", "png", "webp", NULL };
    static const char *const verify[] = { "full", "header", NULL };
    static const char *const layouts[] = { "json", "positions", NULL };
    const char *w = "stage 'write'";
    VC_TRY(stage_cfg_check_keys(cfg, w, keys, err));
    struct writer_opts *o = calloc(1, sizeof *o);
    if (!o)
        return vc_err_oom(err);
    int fmt = 0, ver = 0, layout = 0;
    enum vc_status rc;
    if ((rc = stage_cfg_enum(cfg, w, "resize_mode", modes, 0, &o->resize_mode, err)) < 0 ||
        (rc = stage_cfg_u64(cfg, w, "image_size", 256, 8, 16384, &o->image_size, err)) < 0 ||
        (rc = stage_cfg_enum(cfg, w, "encode_format", formats, 0, &fmt, err)) < 0 ||
        (rc = stage_cfg_u64(cfg, w, "encode_quality", 95, 1, 100, &o->quality, err)) < 0 ||
        (rc = stage_cfg_enum(cfg, w, "verify", verify, 0, &ver, err)) < 0 ||
        (rc = stage_cfg_enum(cfg, w, "layout", layouts, 0, &layout, err)) < 0) {
        free(o);
        return rc;
    }
    o->resize_mode = (int)img_resize_mode_from_name(modes[o->resize_mode]);
    o->format = fmt ? img_format_from_name(formats[fmt]) : IMG_FORMAT_UNKNOWN;
    o->verify_header_only = ver == 1;
    o->positions = layout == 1;
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

/* What re-encoding changed: field renames ("0.png" -> "0.webp"), and the
 * size each resized image had before (img2dataset's original_width and
 * original_height: the filters saw that size, the shard holds another). */
struct renames {
    const char *from[SAMPLE_MAX_FIELDS], *to[SAMPLE_MAX_FIELDS];
    size_t n;
    const struct sample_field *resized[SAMPLE_MAX_FIELDS];
    uint32_t orig_w[SAMPLE_MAX_FIELDS], orig_h[SAMPLE_MAX_FIELDS];
    size_t n_resized;
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

/* The format a field's name promises ("0.jpeg": JPEG), which the bytes
 * need not keep: web downloads are saved under the URL's extension, so a
 * "jpg" member may hold a PNG. */
static enum img_format named_format(const struct sample_field *f)
{
    const char *dot = strrchr(f->name, '.');
    return img_format_from_name(dot ? dot + 1 : f->name);
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
        const uint32_t w0 = im.w, h0 = im.h;
        rc = img_resize(&im, (enum img_resize_mode)o->resize_mode, (uint32_t)o->image_size, &small,
                        err);
        if (rc == VC_OK) {
            img_release(&im);
            im = small;
            if ((im.w != w0 || im.h != h0) && rn->n_resized < SAMPLE_MAX_FIELDS) {
                rn->resized[rn->n_resized] = f;
                rn->orig_w[rn->n_resized] = w0;
                rn->orig_h[rn->n_resized++] = h0;
            }
        }
    }
    if (rc == VC_OK)
        rc = img_encode(&im, fmt, (int)o->quality, &bytes, &n, err);
    img_release(&im);
    if (rc < 0)
        return rc;
    /* The name follows the bytes written, not the bytes read: a PNG stored
     * as "jpg" re-encoded to JPEG keeps its name, one kept as PNG becomes
     * "png". */
    const char *name = f->name;
    if (named_format(f) != fmt) {
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
    f->has_sha256 = false;
    return VC_OK;
}

/* width/height/format/sha256 of one image field, from its final bytes,
 * and its size before a resize. */
static enum vc_status describe(const struct stage_limits *lim, const struct renames *rn,
                               struct sample_field *f, cJSON *into, struct vc_err *err)
{
    struct img_limits il = { .max_pixels = lim->max_pixels, .max_side = lim->max_side };
    struct img_info info;
    VC_TRY(img_probe(f->data, f->size, &il, &info, err));
    char hex[65];
    sha256_digest_to_hex(sample_field_sha256(f), hex);
    if (!cJSON_AddNumberToObject(into, "width", info.width) ||
        !cJSON_AddNumberToObject(into, "height", info.height) ||
        !cJSON_AddStringToObject(into, "format", img_format_ext(info.format)) ||
        !cJSON_AddStringToObject(into, "sha256", hex) ||
        (info.orientation > 1 &&
         !cJSON_AddNumberToObject(into, "exif_orientation", info.orientation)))
        return vc_err_oom(err);
    for (size_t i = 0; i < rn->n_resized; i++)
        if (rn->resized[i] == f &&
            (!cJSON_AddNumberToObject(into, "original_width", rn->orig_w[i]) ||
             !cJSON_AddNumberToObject(into, "original_height", rn->orig_h[i])))
            return vc_err_oom(err);
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

/* Sets obj[key] = item, in the old key's place if there is one. cJSON's
 * replace by name frees the replacement's name before copying key, so when
 * key is that very name (a stage's item moved here from the sample's meta,
 * e.g. a synthetic_caption the input json already had) it read freed
 * memory and the new value was dropped: an item already named key is
 * swapped in by pointer instead. */
static void set_item(cJSON *obj, const char *key, cJSON *item)
{
    cJSON *old = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!old)
        cJSON_AddItemToObject(obj, key, item);
    else if (item->string == key)
        cJSON_ReplaceItemViaPointer(obj, old, item);
    else
        cJSON_ReplaceItemInObjectCaseSensitive(obj, key, item);
}

/* The member list of the "positions" layout, before REDUCE knows the key:
 * the sample's field names, one per line (write_keyed prefixes them). */
#define POSITIONS_LIST "metadata.txt"

/* The "positions" layout, which the Idefics2 training code's webdataset
 * reader takes: one member per position of the document, "P.text.txt" or
 * "P.image.EXT" with P the position (0, 1, 2, ... in document order), and
 * POSITIONS_LIST naming the members.  That reader refuses members of any
 * other shape, so the document's json and any other field are left out.
 * The fields are rebuilt in place: image bytes are not copied. */
static enum vc_status to_positions(struct sample *s, const cJSON *doc, struct vc_err *err)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(doc, "texts")->child;
    const cJSON *im = cJSON_GetObjectItemCaseSensitive(doc, "images")->child;
    struct sample_field *v = arena_alloc_array(s->arena, SAMPLE_MAX_FIELDS, sizeof *v);
    struct vc_buf list;
    vc_buf_init(&list, (size_t)SAMPLE_MAX_FIELDS * 64);
    if (!v)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_mem_cap, "per-sample memory cap reached");
    if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "texts")) !=
        cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "images")))
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_json_invalid,
                          "document 'texts' and 'images' differ in length");
    size_t n = 0;
    enum vc_status rc = VC_OK;
    for (int pos = 0; rc == VC_OK && t && im; pos++, t = t->next, im = im->next) {
        /* The sources refuse such positions; a webdataset document may
         * still bring one. */
        if (cJSON_IsString(t) == cJSON_IsString(im)) {
            rc = vc_err_set(
                err, VC_ESAMPLE, VC_REASON_json_invalid, "document position %d holds %s", pos,
                cJSON_IsString(t) ? "both a text and an image" : "neither a text nor an image");
            break;
        }
        if (n + 1 >= SAMPLE_MAX_FIELDS) {
            rc = vc_err_set(err, VC_ESAMPLE, VC_REASON_too_many_fields,
                            "the positions layout needs a member per position: more than %d",
                            SAMPLE_MAX_FIELDS - 1);
            break;
        }
        char name[64];
        if (cJSON_IsString(t)) {
            snprintf(name, sizeof name, "%d.text.txt", pos);
            v[n].has_sha256 = false;
            v[n].src_data = NULL;
            v[n].size = strlen(t->valuestring);
            v[n].data = arena_memdup(s->arena, t->valuestring, v[n].size + 1);
        } else {
            const struct sample_field *f = sample_field_get(s, im->valuestring);
            if (!f) {
                rc = vc_err_set(err, VC_ESAMPLE, VC_REASON_missing_image,
                                "document position %d names image '%s', which the sample lacks",
                                pos, im->valuestring);
                break;
            }
            snprintf(name, sizeof name, "%d.image.%s", pos, strrchr(f->name, '.') + 1);
            v[n] = *f; /* the same bytes: the cached digest stays valid */
        }
        v[n].name = arena_strdup(s->arena, name);
        if (!v[n].name || !v[n].data)
            rc = vc_err_set(err, VC_ESAMPLE, VC_REASON_mem_cap, "per-sample memory cap reached");
        vc_buf_printf(&list, "%s%s", n ? "\n" : "", name);
        n++;
    }
    if (rc == VC_OK) {
        v[n].name = POSITIONS_LIST;
        v[n].has_sha256 = false;
        v[n].src_data = NULL;
        v[n].data = list.data ? arena_memdup(s->arena, list.data, list.len) : NULL;
        v[n].size = list.len;
        if (list.failed || !v[n].data)
            rc = vc_err_set(err, VC_ESAMPLE, VC_REASON_mem_cap, "per-sample memory cap reached");
    }
    vc_buf_free(&list);
    if (rc != VC_OK)
        return rc;
    s->fields = v;
    s->n_fields = n + 1;
    s->cap_fields = SAMPLE_MAX_FIELDS;
    return VC_OK;
}

static bool is_document(const cJSON *json)
{
    return cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(json, "images")) &&
           cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(json, "texts"));
}

static enum vc_status compose_json(struct sample *s, const struct writer_opts *opts,
                                   const struct stage_limits *lim, const struct renames *rn,
                                   struct vc_err *err)
{
    struct sample_field *jf = sample_field_get(s, "json");
    cJSON *out = jf ? vc_json_parse_exact((const char *)jf->data, jf->size) : NULL;
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
        return vc_err_oom(err);
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
        struct sample_field *f = &s->fields[i];
        if (!sample_field_is_image(f, NULL))
            continue;
        if (f == main_img) {
            rc = describe(lim, rn, f, own, err);
            continue;
        }
        if (!others && !(others = cJSON_CreateObject()))
            break;
        cJSON *facts = cJSON_AddObjectToObject(others, f->name);
        rc = facts ? describe(lim, rn, f, facts, err) : vc_err_oom(err);
        if (rc < 0)
            vc_err_prefix(err, "field '%s'", f->name);
    }
    if (others)
        set_item(own, "images", others);
    if (rc == VC_OK && opts->positions && is_document(out)) {
        rc = to_positions(s, out, err);
        cJSON_Delete(out);
        return rc;
    }
    if (rc == VC_OK && opts->positions && sample_field_get(s, POSITIONS_LIST)) {
        cJSON_Delete(out);
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_bad_member_name,
                          "field '" POSITIONS_LIST "' is the positions layout's member list; "
                          "only a document may have one");
    }
    char *text = rc == VC_OK ? vc_utf8_json_print(out, false) : NULL;
    cJSON_Delete(out);
    if (rc < 0)
        return rc;
    if (!text)
        return vc_err_oom(err);
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
    rn.n_resized = 0;
    struct img_limits il = { .max_pixels = lim->max_pixels, .max_side = lim->max_side };
    const cJSON *dec =
        s->meta ? cJSON_GetObjectItemCaseSensitive(s->meta, SAMPLE_META_DECODED_SHA256) : NULL;
    for (size_t i = 0; i < s->n_fields; i++) {
        struct sample_field *f = &s->fields[i];
        enum img_format src;
        if (!sample_field_is_image(f, &src))
            continue;
        char sha[65] = "";
        if (cJSON_IsString(dec))
            sha256_digest_to_hex(sample_field_sha256(f), sha);
        bool decoded = cJSON_IsString(dec) && strcmp(sha, dec->valuestring) == 0;
        const char *name = f->name;
        /* A GIF, a TIFF or bytes no codec knows: nothing a trainer's
         * loader could be promised to open. */
        if (src == IMG_FORMAT_UNKNOWN) {
            vc_err_set(err, VC_ESAMPLE, VC_REASON_unsupported_format,
                       "not a JPEG, PNG or WebP file (%zu bytes)", f->size);
            return vc_err_prefix(err, "field '%s'", name);
        }
        /* Converting also renames a field whose name promises another
         * format than the one asked for, whatever its bytes already are. */
        bool convert =
            o->format != IMG_FORMAT_UNKNOWN && (o->format != src || named_format(f) != o->format);
        enum vc_status rc;
        if (o->resize_mode != IMG_RESIZE_NO || convert)
            rc = reencode(o, lim, s, f, src, &rn, err); /* a full, strict decode */
        else if (!o->verify_header_only && !decoded)
            rc = img_verify(f->data, f->size, &il, err);
        else
            rc = VC_OK;
        if (rc < 0)
            return vc_err_prefix(err, "field '%s'", name);
    }
    if (s->meta)
        cJSON_DeleteItemFromObjectCaseSensitive(s->meta, SAMPLE_META_DECODED_SHA256);
    return compose_json(s, o, lim, &rn, err);
}

/* REDUCE: the positions layout's member list names each member in full,
 * "KEY.P.text.txt", and the key is known only now. */
static enum vc_status write_keyed(const void *state, struct sample *s, struct vc_err *err)
{
    const struct writer_opts *o = state;
    const struct sample_field *f = o->positions ? sample_field_get(s, POSITIONS_LIST) : NULL;
    if (!f)
        return VC_OK;
    struct vc_buf b;
    vc_buf_init(&b, f->size + (f->size + 1) * (strlen(s->key) + 1) + 1);
    const char *p = (const char *)f->data, *end = p + f->size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        vc_buf_printf(&b, "%s.%.*s%s", s->key, (int)len, p, nl ? "\n" : "");
        p += len + (nl != NULL);
    }
    enum vc_status rc = b.failed
                            ? vc_err_oom(err)
                            : sample_set_field(s, POSITIONS_LIST, b.data ? b.data : "", b.len, err);
    vc_buf_free(&b);
    return rc;
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
    .keyed = write_keyed,
    .destroy = write_destroy,
};
