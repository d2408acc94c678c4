/* sample: field bookkeeping and key sanitising.  Every byte is copied into
 * the sample's arena, so a sample never points into a reader's buffer that
 * the next read would overwrite. */
#include "sample.h"

#include "img.h"
#include "sha256.h"
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
    f->has_sha256 = false;
    f->src_data = NULL;
    return VC_OK;
}

const uint8_t *sample_field_sha256(struct sample_field *f)
{
    if (!f->has_sha256) {
        struct sha256 c;
        sha256_init(&c);
        sha256_update(&c, f->data, f->size);
        sha256_final(&c, f->sha256);
        f->has_sha256 = true;
    }
    return f->sha256;
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

bool sample_json_may_have_key(const struct sample_field *f, const char *name)
{
    size_t n = strlen(name);
    char quoted[64];
    if (!f->size)
        return false;
    if (n + 2 > sizeof quoted || memchr(f->data, '\\', f->size))
        return true;
    quoted[0] = '"';
    memcpy(quoted + 1, name, n);
    quoted[n + 1] = '"';
    return memmem(f->data, f->size, quoted, n + 2) != NULL;
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

static bool key_char_kept(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* The bytes `c` becomes in a key: itself, "%XX", or "_". */
static size_t key_char_width(unsigned char c)
{
    return key_char_kept(c) ? 1 : c >= 0x80 || c == '%' ? 3 : 1;
}

size_t sample_key_sanitize(const char *in, char *out, size_t out_cap)
{
    static const char hex[] = "0123456789ABCDEF";
    if (out_cap == 0)
        return 0;
    size_t room = out_cap - 1, full = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++)
        full += key_char_width(*p);
    /* Cut keys end in "-" and 8 hex digits of a hash of the whole key, so
     * long keys that share a beginning stay apart. */
    bool cut = full > room && room > SAMPLE_KEY_HASH_LEN;
    size_t limit = cut ? room - SAMPLE_KEY_HASH_LEN : room, n = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        /* A character's bytes go together: a cut never splits one. */
        size_t w = key_char_width(*p), whole = w;
        for (const unsigned char *q = p + 1; *p >= 0xC0 && (*q & 0xC0) == 0x80; q++)
            whole += 3;
        if (n + whole > limit)
            break;
        if (w == 3) {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        } else {
            out[n++] = key_char_kept(*p) ? (char)*p : '_';
        }
    }
    if (cut) {
        uint32_t h = 2166136261u; /* FNV-1a */
        for (const unsigned char *p = (const unsigned char *)in; *p; p++)
            h = (h ^ *p) * 16777619u;
        out[n++] = '-';
        for (int i = 7; i >= 0; i--)
            out[n++] = hex[(h >> (4 * i)) & 15];
    }
    if (n == 0 && out_cap > 1)
        out[n++] = '_';
    out[n] = '\0';
    return n;
}
