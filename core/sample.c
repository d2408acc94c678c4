/* sample: field bookkeeping and key sanitising.  Every byte is copied into
 * the sample's arena, so a sample never points into a reader's buffer that
 * the next read would overwrite. */
#include "sample.h"

#include "img.h"
#include "vc_mem.h"

#include <cjson/cJSON.h>
#include <string.h>
#include <strings.h>

void sample_init(struct sample *s, struct arena *arena)
{
    memset(s, 0, sizeof *s);
    s->arena = arena;
}

void sample_fini(struct sample *s)
{
    cJSON_Delete(s->meta);
    s->meta = NULL;
}

struct sample_field *sample_field_get(const struct sample *s, const char *name)
{
    for (size_t i = 0; i < s->n_fields; i++)
        if (strcmp(s->fields[i].name, name) == 0)
            return &s->fields[i];
    return NULL;
}

static enum vc_status copy_into(struct sample *s, struct sample_field *f, const void *data,
                                size_t size, struct vc_err *err)
{
    uint8_t *copy = arena_memdup(s->arena, data, size);
    if (!copy)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_mem_cap,
                          "field '%s' of %zu bytes exceeds the per-sample memory cap", f->name,
                          size);
    f->data = copy;
    f->size = size;
    return VC_OK;
}

enum vc_status sample_add_field(struct sample *s, const char *name, const void *data, size_t size,
                                struct vc_err *err)
{
    if (sample_field_get(s, name))
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_too_many_fields,
                          "field '%s' appears twice in one sample", name);
    if (s->n_fields >= SAMPLE_MAX_FIELDS)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_too_many_fields,
                          "more than %d fields in one sample", SAMPLE_MAX_FIELDS);
    if (s->n_fields == s->cap_fields) {
        size_t cap = s->cap_fields ? s->cap_fields * 2 : 8;
        struct sample_field *grown = arena_alloc_array(s->arena, cap, sizeof *grown);
        if (!grown)
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_mem_cap, "per-sample memory cap reached");
        if (s->n_fields)
            memcpy(grown, s->fields, s->n_fields * sizeof *grown);
        s->fields = grown;
        s->cap_fields = cap;
    }
    struct sample_field *f = &s->fields[s->n_fields];
    f->name = arena_strdup(s->arena, name);
    if (!f->name)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_mem_cap, "per-sample memory cap reached");
    VC_TRY(copy_into(s, f, data, size, err));
    s->n_fields++;
    return VC_OK;
}

enum vc_status sample_set_field(struct sample *s, const char *name, const void *data, size_t size,
                                struct vc_err *err)
{
    struct sample_field *f = sample_field_get(s, name);
    if (!f)
        return sample_add_field(s, name, data, size, err);
    return copy_into(s, f, data, size, err);
}

void sample_remove_field(struct sample *s, const char *name)
{
    struct sample_field *f = sample_field_get(s, name);
    if (!f)
        return;
    size_t i = (size_t)(f - s->fields);
    memmove(&s->fields[i], &s->fields[i + 1], (s->n_fields - i - 1) * sizeof *f);
    s->n_fields--;
}

bool sample_field_name_is_image(const char *name)
{
    static const char *const exts[] = { "jpg", "jpeg", "png", "webp", "gif", "tif", "tiff", "bmp" };
    const char *dot = strrchr(name, '.');
    const char *ext = dot ? dot + 1 : name;
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
        if (strcasecmp(ext, exts[i]) == 0)
            return true;
    return false;
}

bool sample_field_is_image(const struct sample_field *f, enum img_format *format)
{
    if (!sample_field_name_is_image(f->name))
        return false;
    if (format)
        *format = img_sniff(f->data, f->size);
    return true;
}

/* "0.png", "12.jpg": an image of an interleaved document. */
static bool is_document_image(const char *name)
{
    size_t digits = strspn(name, "0123456789");
    return digits > 0 && name[digits] == '.';
}

struct sample_field *sample_main_image(const struct sample *s)
{
    for (size_t i = 0; i < s->n_fields; i++)
        if (sample_field_name_is_image(s->fields[i].name) && !is_document_image(s->fields[i].name))
            return &s->fields[i];
    return NULL;
}

struct sample_field *sample_main_text(const struct sample *s)
{
    static const char *const names[] = { "txt", "caption", "text" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct sample_field *f = sample_field_get(s, names[i]);
        if (f)
            return f;
    }
    return NULL;
}

struct cJSON *sample_meta(struct sample *s)
{
    if (!s->meta)
        s->meta = cJSON_CreateObject();
    return s->meta;
}

size_t sample_key_sanitize(const char *in, char *out, size_t out_cap)
{
    if (out_cap == 0)
        return 0;
    size_t n = 0;
    for (; in[n] && n + 1 < out_cap; n++) {
        unsigned char c = (unsigned char)in[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        out[n] = ok ? (char)c : '_';
    }
    if (n == 0 && out_cap > 1)
        out[n++] = '_';
    out[n] = '\0';
    return n;
}
