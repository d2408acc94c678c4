/* dedup_doc: documents for the dedup stage (see the header). */
#include "dedup_doc.h"

#include "dedup_hash.h"
#include "dedup_reduce.h"

#include "core/vc_utf8.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static const char eod_token[] = "END_OF_DOCUMENT_TOKEN_TO_BE_REPLACED";

static const char *str_item(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The host of an absolute URL, lower-cased, without user or port. */
static void host_of(const char *url, char *out, size_t cap)
{
    out[0] = '\0';
    const char *p = url ? strstr(url, "://") : NULL;
    if (!p)
        return;
    p += 3;
    size_t n = strcspn(p, "/?#");
    const char *at = memchr(p, '@', n);
    if (at) {
        n -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    const char *colon = memchr(p, ':', n);
    if (colon)
        n = (size_t)(colon - p);
    if (n >= cap)
        n = cap - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)p[i]);
    out[n] = '\0';
}

/* OBELICS's "general_metadata" is a JSON string; a nested object is taken
 * as is. */
static void find_domain(struct dedup_doc *d)
{
    const char *url = str_item(d->json, "url");
    cJSON *gm = NULL;
    if (!url) {
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(d->json, "general_metadata");
        gm = cJSON_IsString(g) ? cJSON_Parse(g->valuestring) : NULL;
        url = str_item(gm ? gm : g, "url");
    }
    host_of(url, d->domain, sizeof d->domain);
    cJSON_Delete(gm);
}

enum vc_status dedup_doc_open(struct dedup_doc *d, const struct sample *s, bool *is_doc,
                              struct vc_err *err)
{
    memset(d, 0, sizeof *d);
    *is_doc = false;
    const struct sample_field *f = sample_field_get(s, "json");
    if (!f || !sample_json_may_have_key(f, "texts"))
        return VC_OK;
    d->json = vc_json_parse_exact((const char *)f->data, f->size);
    d->texts = cJSON_GetObjectItemCaseSensitive(d->json, "texts");
    d->images = cJSON_GetObjectItemCaseSensitive(d->json, "images");
    if (!cJSON_IsArray(d->texts) || !cJSON_IsArray(d->images) ||
        cJSON_GetArraySize(d->texts) != cJSON_GetArraySize(d->images)) {
        cJSON_Delete(d->json);
        memset(d, 0, sizeof *d);
        return VC_OK;
    }
    *is_doc = true;
    int n = cJSON_GetArraySize(d->texts);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(d->json, "metadata");
    d->meta = cJSON_IsString(m)  ? vc_json_parse_exact(m->valuestring, strlen(m->valuestring))
              : cJSON_IsArray(m) ? cJSON_Duplicate(m, 1)
                                 : NULL;
    if (!d->meta && cJSON_IsArray(m))
        return vc_err_oom(err);
    /* Used only while it lines up with the lists; otherwise left as it is. */
    if (d->meta && (!cJSON_IsArray(d->meta) || cJSON_GetArraySize(d->meta) != n)) {
        cJSON_Delete(d->meta);
        d->meta = NULL;
    }
    find_domain(d);
    return VC_OK;
}

void dedup_doc_close(struct dedup_doc *d)
{
    cJSON_Delete(d->json);
    cJSON_Delete(d->meta);
    memset(d, 0, sizeof *d);
}

int dedup_doc_positions(const struct dedup_doc *d)
{
    return cJSON_GetArraySize(d->texts);
}

static enum vc_status note(struct dedup_doc *d, struct sample *s, unsigned method, int position,
                           cJSON **rec, struct vc_err *err)
{
    cJSON *meta = sample_meta(s);
    cJSON *list = meta ? cJSON_GetObjectItemCaseSensitive(meta, "dedup_removed") : NULL;
    if (meta && !list)
        list = cJSON_AddArrayToObject(meta, "dedup_removed");
    cJSON *o = list ? cJSON_CreateObject() : NULL;
    if (!o || !cJSON_AddItemToArray(list, o) ||
        !cJSON_AddStringToObject(o, "method", dedup_method_name(method)) ||
        !cJSON_AddStringToObject(o, "reason",
                                 method < 16 && d->reason[method] ? d->reason[method] : "") ||
        !cJSON_AddNumberToObject(o, "position", position))
        return vc_err_oom(err);
    *rec = o;
    d->changed = true;
    return VC_OK;
}

/* The image at `pos`: its key and URL (NULL without one). */
static uint64_t image_key(const struct dedup_doc *d, const struct sample_field *f, int pos,
                          const char **src)
{
    *src = d->meta ? str_item(cJSON_GetArrayItem(d->meta, pos), "src") : NULL;
    if (*src && (*src)[0])
        return dedup_hash_bytes(*src, strlen(*src), 0x75726c); /* "url" */
    *src = NULL;
    return f ? dedup_hash_bytes(f->data, f->size, 0x62797465) : 0; /* "byte" */
}

/* The paragraphs of one text node: the kept ones re-joined with "\n\n";
 * *out (malloc'd) is NULL when nothing was removed. */
static enum vc_status visit_text(struct dedup_doc *d, struct sample *s, const char *text, int pos,
                                 dedup_doc_judge_fn judge, void *ctx, char **out,
                                 struct vc_err *err)
{
    *out = NULL;
    uint64_t dom = dedup_hash_bytes(d->domain, strlen(d->domain), 0x646f6d); /* "dom" */
    size_t len = strlen(text), w = 0, removed = 0;
    char *buf = malloc(len + 1);
    if (!buf)
        return vc_err_oom(err);
    bool kept_any = false;
    enum vc_status rc = VC_OK;
    for (const char *p = text; rc == VC_OK;) {
        const char *end = strstr(p, "\n\n");
        if (!end)
            end = text + len;
        size_t n = (size_t)(end - p);
        unsigned m = 0;
        if (d->domain[0] && n > 0 && !(n == sizeof eod_token - 1 && !memcmp(p, eod_token, n)))
            m = judge(ctx, DEDUP_M_DOC_PARAGRAPH, dedup_hash_bytes(p, n, dom), &rc, err);
        cJSON *rec;
        if (rc == VC_OK && m) {
            removed++;
            rc = note(d, s, m, pos, &rec, err);
            if (rc == VC_OK && !cJSON_AddNumberToObject(rec, "bytes", (double)n))
                rc = vc_err_oom(err);
        } else if (rc == VC_OK) {
            if (kept_any)
                buf[w++] = '\n', buf[w++] = '\n';
            memcpy(buf + w, p, n);
            w += n;
            kept_any = true;
        }
        if (end == text + len)
            break;
        p = end + 2;
    }
    buf[w] = '\0';
    if (rc == VC_OK && removed)
        *out = buf;
    else
        free(buf);
    return rc;
}

static void drop_position(struct dedup_doc *d, int pos)
{
    cJSON_DeleteItemFromArray(d->texts, pos);
    cJSON_DeleteItemFromArray(d->images, pos);
    if (d->meta)
        cJSON_DeleteItemFromArray(d->meta, pos);
    d->changed = true;
}

enum vc_status dedup_doc_visit(struct dedup_doc *d, struct sample *s, dedup_doc_judge_fn judge,
                               void *ctx, struct vc_err *err)
{
    int pos = 0, orig = 0;
    for (cJSON *t = d->texts->child, *im = d->images->child; t && im; orig++) {
        cJSON *t_next = t->next, *im_next = im->next;
        bool drop = false;
        enum vc_status rc = VC_OK;
        if (cJSON_IsString(im)) {
            const struct sample_field *f = sample_field_get(s, im->valuestring);
            const char *src;
            uint64_t key = image_key(d, f, pos, &src);
            unsigned m = judge(ctx, DEDUP_M_DOC_IMAGE_URL, key, &rc, err);
            VC_TRY(rc);
            if (m) {
                cJSON *rec;
                VC_TRY(note(d, s, m, orig, &rec, err));
                if (!cJSON_AddStringToObject(rec, "field", im->valuestring) ||
                    (src && !cJSON_AddStringToObject(rec, "src", src)))
                    return vc_err_oom(err);
                sample_remove_field(s, im->valuestring);
                drop = true;
            }
        } else if (cJSON_IsString(t)) {
            char *kept;
            VC_TRY(visit_text(d, s, t->valuestring, orig, judge, ctx, &kept, err));
            if (kept && !kept[0])
                drop = true;
            else if (kept && !cJSON_SetValuestring(t, kept))
                rc = vc_err_oom(err);
            free(kept);
            VC_TRY(rc);
        }
        if (drop)
            drop_position(d, pos);
        else
            pos++;
        t = t_next, im = im_next;
    }
    return VC_OK;
}

enum vc_status dedup_doc_store(struct dedup_doc *d, struct sample *s, struct vc_err *err)
{
    if (!d->changed)
        return VC_OK;
    if (d->meta) {
        bool as_string = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(d->json, "metadata"));
        char *text = as_string ? cJSON_PrintUnformatted(d->meta) : NULL;
        cJSON *item =
            as_string ? (text ? cJSON_CreateString(text) : NULL) : cJSON_Duplicate(d->meta, 1);
        free(text);
        if (!item || !cJSON_ReplaceItemInObjectCaseSensitive(d->json, "metadata", item)) {
            cJSON_Delete(item);
            return vc_err_oom(err);
        }
    }
    char *json = cJSON_PrintUnformatted(d->json);
    if (!json)
        return vc_err_oom(err);
    enum vc_status rc = sample_set_field(s, "json", json, strlen(json), err);
    free(json);
    return rc;
}
